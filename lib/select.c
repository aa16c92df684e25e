/* select.c: being written */ typedef int llorch_placeholder_select;

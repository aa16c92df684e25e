/* kinds.c: being written */ typedef int llorch_placeholder_kinds;

/* Links the capture library and llama.cpp through the installed package:
 * prints the default capture parameters' queue bound and llama.cpp's
 * system info. */
#include <llorch_capture.h>

#include <stdio.h>

int main(void) {
    struct llorch_capture_params p = llorch_capture_default_params();
    printf("queue bound %zu bytes; %s\n", (size_t) p.queue_bytes, llama_print_system_info());
    return 0;
}

/* rpc_server.c - a ggml RPC server on this machine's CPU, for the test that
 * captures from tensors in remote (non-host) buffers.
 *
 *   rpc_server HOST:PORT        serves until killed */
#include <ggml-backend.h>
#include <stdio.h>
#include <string.h>

typedef void (*start_server_fn)(const char *endpoint, const char *cache_dir, size_t n_threads, size_t n_devices,
                                ggml_backend_dev_t *devices);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: rpc_server HOST:PORT\n");
        return 2;
    }
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    void *symbol = rpc != NULL ? ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_start_server") : NULL;
    start_server_fn start = NULL;
    if (symbol != NULL) {
        memcpy(&start, &symbol, sizeof start);
    }
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (start == NULL || cpu == NULL) {
        fprintf(stderr, "rpc_server: this ggml has no RPC backend or no CPU device\n");
        return 77;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    start(argv[1], NULL, 1, 1, &cpu);
    return 0;
}

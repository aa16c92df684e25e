/* gguf_strip - copies a GGUF model without the tensors whose names end with
 * a given suffix (".scale": the per-weight scales that llama.cpp's own
 * architecture test models carry on every weight).
 *
 *   gguf_strip IN.gguf OUT.gguf SUFFIX
 *
 * Prints how many tensors it dropped. Exit status 1 on any error. */
#include <ggml.h>
#include <gguf.h>
#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: gguf_strip IN.gguf OUT.gguf SUFFIX\n");
        return 1;
    }
    struct ggml_context    *data = NULL;
    struct gguf_init_params params = {.no_alloc = false, .ctx = &data};
    struct gguf_context    *in = gguf_init_from_file(argv[1], params);
    if (in == NULL) {
        fprintf(stderr, "gguf_strip: cannot read %s\n", argv[1]);
        return 1;
    }
    struct gguf_context *out = gguf_init_empty();
    gguf_set_kv(out, in);
    int dropped = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(in); i++) {
        const char *name = gguf_get_tensor_name(in, i);
        if (ends_with(name, argv[3])) {
            dropped++;
            continue;
        }
        gguf_add_tensor(out, ggml_get_tensor(data, name));
    }
    int ok = gguf_write_to_file(out, argv[2], false);
    gguf_free(out);
    gguf_free(in);
    ggml_free(data);
    if (!ok) {
        fprintf(stderr, "gguf_strip: cannot write %s\n", argv[2]);
        return 1;
    }
    printf("gguf_strip: %s: dropped %d tensors ending in %s\n", argv[2], dropped, argv[3]);
    return 0;
}

/*
 * test_gguf_fingerprint.c - prints llorch_ckpt_gguf_fingerprint of each
 * GGUF file given, one "FINGERPRINT  PATH" line each, for
 * tests/fingerprint_check.py to hold against Python, Rust and its own
 * computation; exit 1 with the error on the first file that fails.
 */
#include "llorch_checkpoint.h"

#include <stdio.h>

int main(int argc, char **argv) {
    char fp[LLORCH_CKPT_FINGERPRINT_SIZE], err[1024];
    if (argc < 2) {
        fprintf(stderr, "usage: test_gguf_fingerprint MODEL.gguf...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (llorch_ckpt_gguf_fingerprint(argv[i], fp, sizeof fp, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        if (!llorch_ckpt_fingerprint_valid(fp)) {
            fprintf(stderr, "error: %s: the fingerprint %s has not a fingerprint's form\n", argv[i], fp);
            return 1;
        }
        printf("%s  %s\n", fp, argv[i]);
    }
    return 0;
}

/*
 * fuzz_npy.c - libFuzzer target: the .npy reader on arbitrary bytes.
 * A file that parses must be readable in full: every element, a gather
 * over all of them and the CRC-32 stay inside the buffer.
 */
#include "llorch_compare.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char               err[512];
    llorch_ckpt_array *a = llorch_ckpt_array_parse(data, size, "fuzz.npy", err, sizeof err);
    if (!a) {
        return 0;
    }
    int64_t n = llorch_ckpt_array_count(a);
    double  sum = 0, chunk[64];
    for (int64_t i = 0; i < n; i++) {
        sum += llorch_ckpt_array_value(a, i);
    }
    for (int64_t i = 0; i < n; i += 64) {
        int64_t m = n - i < 64 ? n - i : 64;
        if (llorch_ckpt_array_gather(a, i, 1, m, chunk) != 0) {
            abort(); /* in range by construction */
        }
    }
    size_t bytes;
    llorch_ckpt_array_data(a, &bytes);
    if (llorch_ckpt_array_crc32(a) == 0 && sum == 12345.678) {
        abort(); /* keeps the reads from being optimised away */
    }
    llorch_ckpt_array_free(a);
    return 0;
}

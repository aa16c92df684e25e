/*
 * fuzz_container.c - libFuzzer target: the .npz and safetensors indexes
 * on arbitrary bytes. The first byte picks the form; an index that opens
 * must let every member be found by name and read in full.
 */
#include "read_container.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    char                       err[512];
    enum llorch_container_form form = (data[0] & 1) ? LLORCH_CONTAINER_SAFETENSORS : LLORCH_CONTAINER_NPZ;
    llorch_container          *c = llorch_container_open_mem(data + 1, size - 1, form, "fuzz", err, sizeof err);
    if (!c) {
        return 0;
    }
    for (size_t i = 0; i < llorch_container_n_members(c); i++) {
        const struct llorch_container_member *m = llorch_container_member(c, i);
        if (llorch_container_find(c, m->name) != m || m->offset > size - 1 || m->size > size - 1 - m->offset) {
            abort(); /* found by name, inside the input */
        }
        unsigned char *bytes;
        if (llorch_container_read(c, m, &bytes, err, sizeof err) != 0) {
            abort();
        }
        if (m->size > 0 && memcmp(bytes, data + 1 + m->offset, m->size) != 0) {
            abort();
        }
        free(bytes);
    }
    llorch_container_free(c);
    return 0;
}

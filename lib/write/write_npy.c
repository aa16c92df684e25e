/* write_npy.c - one tensor as a .npy file (or its .txt twin), written as
 * NAME.part and renamed when whole. */
#include "write_internal.h"

#include "atomic_file.h"
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t llorch_write_elements(const struct llorch_ckpt_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        n *= (size_t) t->shape[i];
    }
    return n;
}

/* Element i as a line of text: %.9g round-trips float32 exactly. */
static int format_value(char *buf, size_t size, enum llorch_ckpt_dtype dtype, const void *data, size_t i) {
    switch (dtype) {
        case LLORCH_CKPT_DTYPE_F32: {
            float v;
            memcpy(&v, (const char *) data + 4 * i, 4);
            return snprintf(buf, size, "%.9g\n", (double) v);
        }
        case LLORCH_CKPT_DTYPE_F16: {
            uint16_t h;
            memcpy(&h, (const char *) data + 2 * i, 2);
            return snprintf(buf, size, "%.9g\n", (double) llorch_half_to_float(h));
        }
        case LLORCH_CKPT_DTYPE_I32: {
            int32_t v;
            memcpy(&v, (const char *) data + 4 * i, 4);
            return snprintf(buf, size, "%d\n", v);
        }
    }
    return 0;
}

int llorch_write_npy_file(const char *dir, const char *name, const struct llorch_ckpt_tensor *t, bool text, char *err,
                          size_t err_size) {
    struct llorch_atomic_file f;
    if (llorch_atomic_create(&f, dir, name, err, err_size) != 0) {
        return -1;
    }
    size_t n = llorch_write_elements(t);
    if (text) {
        for (size_t i = 0; i < n; i++) {
            char line[64];
            int  len = format_value(line, sizeof line, t->dtype, t->data, i);
            llorch_atomic_write(&f, line, len > 0 ? (size_t) len : 0);
        }
    } else {
        char   header[512];
        size_t header_size = llorch_npy_header(header, sizeof header, t->dtype, t->n_dims, t->shape);
        if (header_size == 0) {
            llorch_atomic_abort(&f);
            snprintf(err, err_size, "cannot format the .npy header of %s", name);
            return -1;
        }
        llorch_atomic_write(&f, header, header_size);
        llorch_atomic_write(&f, t->data, n * llorch_dtype_size(t->dtype));
    }
    return llorch_atomic_commit(&f, false, err, err_size);
}

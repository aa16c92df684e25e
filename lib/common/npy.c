/* npy.c - the dtype table and numpy .npy v1.0 headers (the format's
 * reference: numpy/lib/format.py). Little-endian, C order. */
#include "npy.h"

#include "util.h"

#include <stdio.h>
#include <string.h>

size_t llorch_dtype_size(enum llorch_ckpt_dtype dtype) {
    return dtype == LLORCH_CKPT_DTYPE_F16 ? 2 : 4;
}

/* Indexed by enum llorch_ckpt_dtype. */
static const char *const descrs[] = {"<f4", "<f2", "<i4"};
static const char *const names[] = {"float32", "float16", "int32"};
#define N_DTYPES (sizeof names / sizeof names[0])

const char *llorch_dtype_descr(enum llorch_ckpt_dtype dtype) {
    return llorch_enum_name(descrs, N_DTYPES, (int) dtype, NULL);
}

const char *llorch_ckpt_dtype_name(enum llorch_ckpt_dtype dtype) {
    return llorch_enum_name(names, N_DTYPES, (int) dtype, NULL);
}

static int dtype_of(int value, enum llorch_ckpt_dtype *out) {
    if (value < 0) {
        return -1;
    }
    *out = (enum llorch_ckpt_dtype) value;
    return 0;
}

int llorch_dtype_from_name(const char *name, enum llorch_ckpt_dtype *out) {
    return dtype_of(llorch_enum_value(names, N_DTYPES, name), out);
}

int llorch_dtype_from_descr(const char *descr, enum llorch_ckpt_dtype *out) {
    return dtype_of(llorch_enum_value(descrs, N_DTYPES, descr), out);
}

size_t llorch_npy_header(char *buf, size_t size, enum llorch_ckpt_dtype dtype, int n_dims, const int64_t *shape) {
    char dict[256];
    int  n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", llorch_dtype_descr(dtype));
    for (int i = 0; i < n_dims && n > 0 && (size_t) n < sizeof dict; i++) {
        /* a 1-tuple needs its trailing comma: (5,) */
        n += snprintf(dict + n, sizeof dict - (size_t) n, "%lld%s", (long long) shape[i],
                      (n_dims == 1 || i + 1 < n_dims) ? "," : "");
        if (i + 1 < n_dims && (size_t) n < sizeof dict) {
            dict[n++] = ' ';
        }
    }
    if (n < 0 || (size_t) n >= sizeof dict - 8) {
        return 0;
    }
    n += snprintf(dict + n, sizeof dict - (size_t) n, "), }");

    /* magic(6) + version(2) + length(2) + dict + padding + '\n' */
    size_t total = 10 + (size_t) n + 1;
    total = (total + LLORCH_NPY_ALIGN - 1) / LLORCH_NPY_ALIGN * LLORCH_NPY_ALIGN;
    if (total > size || total - 10 > 0xffff) {
        return 0;
    }
    size_t header_len = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char) (header_len & 0xff);
    buf[9] = (char) (header_len >> 8);
    memcpy(buf + 10, dict, (size_t) n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t) n - 1);
    buf[total - 1] = '\n';
    return total;
}

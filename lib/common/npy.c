/* npy.c - numpy .npy v1.0 headers (the format's reference:
 * numpy/lib/format.py). Little-endian, C order. */
#include "npy.h"

#include <stdio.h>
#include <string.h>

const char *llorch_npy_descr(enum llorch_ckpt_dtype dtype) {
    switch (dtype) {
        case LLORCH_CKPT_DTYPE_F32: return "<f4";
        case LLORCH_CKPT_DTYPE_F16: return "<f2";
        case LLORCH_CKPT_DTYPE_I32: return "<i4";
    }
    return NULL;
}

const char *llorch_npy_dtype_name(enum llorch_ckpt_dtype dtype) {
    switch (dtype) {
        case LLORCH_CKPT_DTYPE_F32: return "float32";
        case LLORCH_CKPT_DTYPE_F16: return "float16";
        case LLORCH_CKPT_DTYPE_I32: return "int32";
    }
    return NULL;
}

size_t llorch_npy_dtype_size(enum llorch_ckpt_dtype dtype) {
    return dtype == LLORCH_CKPT_DTYPE_F16 ? 2 : 4;
}

size_t llorch_npy_header(char *buf, size_t size, enum llorch_ckpt_dtype dtype, int n_dims, const int64_t *shape) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", llorch_npy_descr(dtype));
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

float llorch_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {                 /* inf / nan */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {             /* normal */
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {            /* zero */
        bits = sign;
    } else {                           /* subnormal: normalize */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while ((mant & 0x400) == 0);
        bits = sign | ((uint32_t) (112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

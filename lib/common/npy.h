/* npy.h - the dtypes of a dump and numpy's .npy v1.0 header: one table
 * for every part (writer, readers, capture), and one f16 decoder. */
#ifndef LLORCH_NPY_H
#define LLORCH_NPY_H

#include "llorch_checkpoint.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LLORCH_NPY_ALIGN 64

/* Bytes per element: 4, 2, 4. */
size_t llorch_dtype_size(enum llorch_ckpt_dtype dtype);
/* numpy's descr: "<f4", "<f2", "<i4"; NULL for an unknown dtype. */
const char *llorch_dtype_descr(enum llorch_ckpt_dtype dtype);
/* The inverse of llorch_ckpt_dtype_name and of llorch_dtype_descr; -1 when unknown. */
int llorch_dtype_from_name(const char *name, enum llorch_ckpt_dtype *out);
int llorch_dtype_from_descr(const char *descr, enum llorch_ckpt_dtype *out);

/* Writes the whole header (magic .. '\n') into buf. Returns its size, a
 * multiple of LLORCH_NPY_ALIGN, or 0 if buf is too small. */
size_t llorch_npy_header(char *buf, size_t size, enum llorch_ckpt_dtype dtype, int n_dims, const int64_t *shape);

/* IEEE half to float, exactly (NaN payloads included), without ggml and
 * without branches, so that loops calling it vectorise: the method of the
 * FP16 library, which ggml uses where the CPU has no conversion
 * instruction. A mask from an equality test, not a branch or an unsigned
 * comparison, keeps it vectorisable with SSE2 alone. */
static inline float llorch_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t two_w = (uint32_t) h << 17; /* exponent and mantissa, sign shifted out */
    uint32_t normal_bits = (two_w >> 4) + (0xe0u << 23);
    uint32_t denormal_bits = (two_w >> 17) | (126u << 23);
    float    normal, denormal;
    memcpy(&normal, &normal_bits, sizeof normal);
    memcpy(&denormal, &denormal_bits, sizeof denormal);
    normal *= 0x1.0p-112f;
    denormal -= 0.5f;
    uint32_t nb, db;
    memcpy(&nb, &normal, sizeof nb);
    memcpy(&db, &denormal, sizeof db);
    uint32_t denormal_mask = 0u - (uint32_t) ((h & 0x7c00) == 0);
    uint32_t bits = sign | (db & denormal_mask) | (nb & ~denormal_mask);
    float    f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#endif

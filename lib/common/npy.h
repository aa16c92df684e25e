/* npy.h - numpy .npy v1.0 headers, and the dtype table. */
#ifndef LLORCH_NPY_H
#define LLORCH_NPY_H

#include "llorch_checkpoint.h"

#include <stddef.h>
#include <stdint.h>

#define LLORCH_NPY_ALIGN 64

/* "<f4", "<f2", "<i4" */
const char *llorch_npy_descr(enum llorch_ckpt_dtype dtype);
/* "float32", "float16", "int32" (the manifest's dtype names) */
const char *llorch_npy_dtype_name(enum llorch_ckpt_dtype dtype);
size_t llorch_npy_dtype_size(enum llorch_ckpt_dtype dtype);

/* Writes the whole header (magic .. '\n') into buf. Returns its size, a
 * multiple of LLORCH_NPY_ALIGN, or 0 if buf is too small. */
size_t llorch_npy_header(char *buf, size_t size, enum llorch_ckpt_dtype dtype, int n_dims, const int64_t *shape);

/* IEEE half to float, without ggml (the format library needs no ggml). */
float llorch_half_to_float(uint16_t h);

#endif

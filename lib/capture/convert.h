/* convert.h - copy a ggml tensor (any backend, any strides, any type) into
 * a contiguous buffer in the dump's layout: a strided gather with an axis
 * map and per-axis limits, and type conversion through ggml's type traits. */
#ifndef LLORCH_CONVERT_H
#define LLORCH_CONVERT_H

#include "llorch_checkpoint.h"

#include <ggml.h>
#include <stdbool.h>
#include <stdint.h>

/* Output axis i (ggml order, i = 0 fastest) reads source axis src_axis[i],
 * indices 0 .. ne[i]-1, or, where index[i] is set, source indices
 * index[i][0 .. ne[i]-1] (the kept token rows, one sequence's cache cells).
 * Identity with ne = t->ne is a plain copy. */
struct llorch_gather {
    int            src_axis[4];
    int64_t        ne[4];
    const int32_t *index[4];
};

/* Which part of a tensor a checkpoint is, in which layout. */
struct llorch_layout {
    struct llorch_gather g;
    int                  n_dims;
    int32_t              n_key; /* valid key cells (cache, scores), else 0 */
    const char          *axes;  /* NULL: the kind's default axes */
    bool                 raw;
    int                  token_axis; /* the gather axis of the token rows, or -1 */
    int                  key_axis;   /* the gather axis of the key cells, or -1 */
};

/* The layout of checkpoint `kind` read from t in a step of n_tokens tokens
 * with n_key filled cache cells: activations as they are; the cache windows
 * and the scores trimmed to the filled cells, V un-transposed; everything
 * as llama.cpp holds it with raw. -1 with a reason in err when t does not
 * have the shape the kind needs. */
int llorch_convert_layout(const struct ggml_tensor *t, enum llorch_ckpt_kind kind, int32_t n_tokens, int32_t n_key,
                          bool raw, struct llorch_layout *out, char *err, size_t err_size);

/* The identity gather over the whole tensor. */
struct llorch_gather llorch_gather_identity(const struct ggml_tensor *t);

/* Output dtype for a source type: f16 stays f16 when native is asked for,
 * everything else becomes f32. */
enum llorch_ckpt_dtype llorch_convert_dtype(enum ggml_type type, bool native);

/* True when this gather can be done for this type: block-quantized types
 * need whole, contiguous rows (output axis 0 = source axis 0, full length). */
bool llorch_convert_supported(const struct ggml_tensor *t, const struct llorch_gather *g);

/* Size in bytes of the gathered output. */
size_t llorch_convert_size(const struct llorch_gather *g, enum llorch_ckpt_dtype dtype);

/* Fills dst. `host` is the tensor's bytes from t->data on (the tensor itself
 * when its buffer is host memory, else a copy made with
 * ggml_backend_tensor_get). */
void llorch_convert_gather(const struct ggml_tensor *t, const void *host, const struct llorch_gather *g,
                           enum llorch_ckpt_dtype dtype, void *dst);

/* IEEE half to float as the gather converts it (exact; exposed for tests). */
float llorch_convert_half(uint16_t h);

#endif

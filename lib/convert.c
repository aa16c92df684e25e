/* convert.c - strided gather + type conversion, on the compute thread.
 * The common case (f32 rows read in order) is a memcpy per row; the rest
 * converts a row at a time through ggml's type traits. */
#include "convert.h"

#include <string.h>

struct llorch_gather llorch_gather_identity(const struct ggml_tensor *t) {
    struct llorch_gather g;
    for (int i = 0; i < 4; i++) {
        g.src_axis[i] = i;
        g.ne[i] = t->ne[i];
    }
    return g;
}

enum llorch_ckpt_dtype llorch_convert_dtype(enum ggml_type type, bool native) {
    return (native && type == GGML_TYPE_F16) ? LLORCH_CKPT_F16 : LLORCH_CKPT_F32;
}

static bool is_element_type(enum ggml_type type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

bool llorch_convert_supported(const struct ggml_tensor *t, const struct llorch_gather *g) {
    if (is_element_type(t->type)) {
        return true;
    }
    const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
    return tr->to_float != NULL && g->src_axis[0] == 0 && g->ne[0] == t->ne[0] &&
           t->nb[0] == ggml_type_size(t->type);
}

size_t llorch_convert_size(const struct llorch_gather *g, enum llorch_ckpt_dtype dtype) {
    size_t n = dtype == LLORCH_CKPT_F16 ? 2 : 4;
    for (int i = 0; i < 4; i++) {
        n *= (size_t) g->ne[i];
    }
    return n;
}

/* One source element as float. */
static float element(enum ggml_type type, const char *p) {
    switch (type) {
        case GGML_TYPE_F32: {
            float v;
            memcpy(&v, p, sizeof v);
            return v;
        }
        case GGML_TYPE_F16: {
            ggml_fp16_t h;
            memcpy(&h, p, sizeof h);
            return ggml_fp16_to_fp32(h);
        }
        default: {
            ggml_bf16_t b;
            memcpy(&b, p, sizeof b);
            return ggml_bf16_to_fp32(b);
        }
    }
}

/* One output row (ne[0] values) as f32 into out. */
static void gather_row_f32(const struct ggml_tensor *t, const char *row, size_t stride0, int64_t n, float *out) {
    bool contiguous = stride0 == ggml_type_size(t->type);
    if (contiguous && t->type == GGML_TYPE_F32) {
        memcpy(out, row, (size_t) n * sizeof(float));
    } else if (contiguous && t->type == GGML_TYPE_F16) {
        ggml_fp16_to_fp32_row((const ggml_fp16_t *) (const void *) row, out, n);
    } else if (!is_element_type(t->type)) {
        ggml_get_type_traits(t->type)->to_float(row, out, n);   /* whole quantized row */
    } else {
        for (int64_t i = 0; i < n; i++) {
            out[i] = element(t->type, row + (size_t) i * stride0);
        }
    }
}

/* One output row kept as f16 (only for f16 sources). */
static void gather_row_f16(const char *row, size_t stride0, int64_t n, uint16_t *out) {
    if (stride0 == 2) {
        memcpy(out, row, (size_t) n * 2);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(&out[i], row + (size_t) i * stride0, 2);
    }
}

void llorch_convert_gather(const struct ggml_tensor *t, const void *host, const struct llorch_gather *g,
                           enum llorch_ckpt_dtype dtype, void *dst) {
    const char *base = host;
    size_t stride[4];
    for (int i = 0; i < 4; i++) {
        stride[i] = t->nb[g->src_axis[i]];
    }
    size_t row_bytes = (size_t) g->ne[0] * (dtype == LLORCH_CKPT_F16 ? 2 : 4);
    char *out = dst;
    for (int64_t i3 = 0; i3 < g->ne[3]; i3++) {
        for (int64_t i2 = 0; i2 < g->ne[2]; i2++) {
            for (int64_t i1 = 0; i1 < g->ne[1]; i1++) {
                const char *row = base + i1 * stride[1] + i2 * stride[2] + i3 * stride[3];
                if (dtype == LLORCH_CKPT_F16) {
                    gather_row_f16(row, stride[0], g->ne[0], (uint16_t *) (void *) out);
                } else {
                    gather_row_f32(t, row, stride[0], g->ne[0], (float *) (void *) out);
                }
                out += row_bytes;
            }
        }
    }
}

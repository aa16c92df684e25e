/* convert.c - strided gather + type conversion, on the compute thread.
 * The common case (f32 rows read in order) is a memcpy per row; f16 rows
 * convert in a vectorised loop; transposed reads go tile by tile; quantized
 * rows convert through ggml's type traits. */
#include "convert.h"

#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct llorch_gather llorch_gather_identity(const struct ggml_tensor *t) {
    struct llorch_gather g;
    for (int i = 0; i < 4; i++) {
        g.src_axis[i] = i;
        g.ne[i] = t->ne[i];
    }
    for (int i = 0; i < 4; i++) {
        g.index[i] = NULL;
    }
    return g;
}

enum llorch_ckpt_dtype llorch_convert_dtype(enum ggml_type type, bool native) {
    if (type == GGML_TYPE_I32) {
        return LLORCH_CKPT_DTYPE_I32; /* indices (top-k, argsort) stay integers */
    }
    return (native && type == GGML_TYPE_F16) ? LLORCH_CKPT_DTYPE_F16 : LLORCH_CKPT_DTYPE_F32;
}

static bool is_element_type(enum ggml_type type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

bool llorch_convert_supported(const struct ggml_tensor *t, const struct llorch_gather *g) {
    if (is_element_type(t->type) || t->type == GGML_TYPE_I32) {
        return true;
    }
    const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
    return tr->to_float != NULL && g->src_axis[0] == 0 && g->ne[0] == t->ne[0] && t->nb[0] == ggml_type_size(t->type);
}

size_t llorch_convert_size(const struct llorch_gather *g, enum llorch_ckpt_dtype dtype) {
    size_t n = llorch_dtype_size(dtype);
    for (int i = 0; i < 4; i++) {
        n *= (size_t) g->ne[i];
    }
    return n;
}

float llorch_convert_half(uint16_t h) {
    return llorch_half_to_float(h);
}

/* One source element as float. */
static inline float element(enum ggml_type type, const char *p) {
    switch (type) {
        case GGML_TYPE_F32: {
            float v;
            memcpy(&v, p, sizeof v);
            return v;
        }
        case GGML_TYPE_F16: {
            uint16_t h;
            memcpy(&h, p, sizeof h);
            return llorch_half_to_float(h);
        }
        default: {
            ggml_bf16_t b;
            memcpy(&b, p, sizeof b);
            return ggml_bf16_to_fp32(b);
        }
    }
}

static void half_row_to_float(const uint16_t *in, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = llorch_half_to_float(in[i]);
    }
}

/* One output row (ne[0] values) as f32 into out. */
static void gather_row_f32(const struct ggml_tensor *t, const char *row, size_t stride0, int64_t n, float *out) {
    bool contiguous = stride0 == ggml_type_size(t->type);
    if (contiguous && t->type == GGML_TYPE_F32) {
        memcpy(out, row, (size_t) n * sizeof(float));
    } else if (contiguous && t->type == GGML_TYPE_F16) {
        half_row_to_float((const uint16_t *) (const void *) row, n, out);
    } else if (!is_element_type(t->type)) {
        ggml_get_type_traits(t->type)->to_float(row, out, n); /* whole quantized row */
    } else {
        for (int64_t i = 0; i < n; i++) {
            out[i] = element(t->type, row + (size_t) i * stride0);
        }
    }
}

/* One output row read at the source indices index[0 .. n-1] along axis 0. */
static void gather_row_indexed(const struct ggml_tensor *t, const char *row, size_t stride0, const int32_t *index,
                               int64_t n, enum llorch_ckpt_dtype dtype, char *out) {
    size_t size = llorch_dtype_size(dtype);
    for (int64_t i = 0; i < n; i++) {
        const char *p = row + (int64_t) index[i] * (int64_t) stride0;
        if (dtype == LLORCH_CKPT_DTYPE_F32) {
            float v = element(t->type, p);
            memcpy(out + (size_t) i * size, &v, size);
        } else {
            memcpy(out + (size_t) i * size, p, size); /* f16 kept as f16, i32 */
        }
    }
}

/* One output row of elements kept as they are (f16 kept as f16, i32). */
static void gather_row_same(const char *row, size_t stride0, size_t size, int64_t n, char *out) {
    if (stride0 == size) {
        memcpy(out, row, (size_t) n * size);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(out + (size_t) i * size, row + (size_t) i * stride0, size);
    }
}

/* The output axis (1 or 2) along which the source is contiguous while
 * output axis 0 is not: a transposed read (the V cache without flash
 * attention). 0 when there is none. */
static int transposed_axis(const struct ggml_tensor *t, const struct llorch_gather *g, const size_t stride[4]) {
    size_t elem = ggml_type_size(t->type);
    if (!is_element_type(t->type) || stride[0] == elem || g->ne[0] < 2) {
        return 0;
    }
    return stride[1] == elem ? 1 : stride[2] == elem ? 2 : 0;
}

#define TILE 32

/* Reads a block of raw elements of `elem` bytes (2 or 4; constant sizes
 * keep the copies inline) into tile[ia][i0], walking the source in order. */
static void read_tile(const char *src, size_t stride_a, size_t stride0, size_t elem, int64_t na, int64_t n0,
                      unsigned char *tile) {
    for (int64_t i0 = 0; i0 < n0; i0++) {
        const char    *s = src + i0 * (int64_t) stride0;
        unsigned char *d = tile + (size_t) i0 * elem;
        if (elem == 2) {
            for (int64_t ia = 0; ia < na; ia++) {
                memcpy(d + (size_t) ia * TILE * 2, s + ia * (int64_t) stride_a, 2);
            }
        } else {
            for (int64_t ia = 0; ia < na; ia++) {
                memcpy(d + (size_t) ia * TILE * 4, s + ia * (int64_t) stride_a, 4);
            }
        }
    }
}

/* A transposed read in tiles of TILE x TILE elements, so that both the
 * source rows and the output rows of a tile stay in cache, instead of one
 * cache line per element; each tile row then converts as a contiguous row. */
static void gather_tiled(const struct ggml_tensor *t, const char *base, const struct llorch_gather *g,
                         const size_t stride[4], int a, enum llorch_ckpt_dtype dtype, char *out) {
    size_t        elem = ggml_type_size(t->type), osize = llorch_dtype_size(dtype);
    size_t        ostride[4] = {osize, osize * (size_t) g->ne[0], osize * (size_t) (g->ne[0] * g->ne[1]),
                                osize * (size_t) (g->ne[0] * g->ne[1] * g->ne[2])};
    int           o = a == 1 ? 2 : 1; /* the third axis, walked in the outer loop */
    unsigned char tile[TILE * TILE * 4];
    for (int64_t i3 = 0; i3 < g->ne[3]; i3++) {
        for (int64_t io = 0; io < g->ne[o]; io++) {
            const char *src = base + i3 * stride[3] + io * stride[o];
            char       *dst = out + i3 * ostride[3] + io * ostride[o];
            for (int64_t ja = 0; ja < g->ne[a]; ja += TILE) {
                int64_t na = g->ne[a] - ja < TILE ? g->ne[a] - ja : TILE;
                for (int64_t j0 = 0; j0 < g->ne[0]; j0 += TILE) {
                    int64_t n0 = g->ne[0] - j0 < TILE ? g->ne[0] - j0 : TILE;
                    read_tile(src + ja * stride[a] + j0 * stride[0], stride[a], stride[0], elem, na, n0, tile);
                    for (int64_t ia = 0; ia < na; ia++) {
                        const unsigned char *row = tile + (size_t) ia * TILE * elem;
                        char                *d = dst + (ja + ia) * ostride[a] + j0 * (int64_t) osize;
                        if (dtype == LLORCH_CKPT_DTYPE_F32 && t->type != GGML_TYPE_F32) {
                            gather_row_f32(t, (const char *) row, elem, n0, (float *) (void *) d);
                        } else {
                            memcpy(d, row, (size_t) n0 * osize); /* same type in and out */
                        }
                    }
                }
            }
        }
    }
}

void llorch_convert_gather(const struct ggml_tensor *t, const void *host, const struct llorch_gather *g,
                           enum llorch_ckpt_dtype dtype, void *dst) {
    const char *base = host;
    size_t      stride[4];
    for (int i = 0; i < 4; i++) {
        stride[i] = t->nb[g->src_axis[i]];
    }
    bool indexed = g->index[0] != NULL || g->index[1] != NULL || g->index[2] != NULL || g->index[3] != NULL;
    int  a = indexed ? 0 : transposed_axis(t, g, stride);
    if (a != 0 && (dtype == LLORCH_CKPT_DTYPE_F32 || ggml_type_size(t->type) == llorch_dtype_size(dtype))) {
        gather_tiled(t, base, g, stride, a, dtype, dst);
        return;
    }
    size_t  row_bytes = (size_t) g->ne[0] * llorch_dtype_size(dtype);
    char   *out = dst;
    int64_t i[4];
    for (i[3] = 0; i[3] < g->ne[3]; i[3]++) {
        for (i[2] = 0; i[2] < g->ne[2]; i[2]++) {
            for (i[1] = 0; i[1] < g->ne[1]; i[1]++) {
                const char *row = base;
                for (int k = 1; k < 4; k++) {
                    row += (g->index[k] != NULL ? g->index[k][i[k]] : i[k]) * (int64_t) stride[k];
                }
                if (g->index[0] != NULL) {
                    gather_row_indexed(t, row, stride[0], g->index[0], g->ne[0], dtype, out);
                } else if (dtype == LLORCH_CKPT_DTYPE_F16 || dtype == LLORCH_CKPT_DTYPE_I32) {
                    gather_row_same(row, stride[0], llorch_dtype_size(dtype), g->ne[0], out);
                } else {
                    gather_row_f32(t, row, stride[0], g->ne[0], (float *) (void *) out);
                }
                out += row_bytes;
            }
        }
    }
}

/* --- layouts --------------------------------------------------------------- */

static const char *raw_axes(int n_dims) {
    static const char *axes[] = {"ne0", "ne1,ne0", "ne2,ne1,ne0", "ne3,ne2,ne1,ne0"};
    return axes[n_dims - 1];
}

/* Trims the key axis to the filled cells 0..K-1 (the window is padded). With
 * flash attention off, V is stored transposed: [n_kv, heads, dim] with a
 * head stride larger than the cell stride; it is read back as [dim, heads,
 * n_kv], the layout of K. */
static int key_layout(const struct ggml_tensor *t, enum llorch_ckpt_kind kind, int32_t K, struct llorch_layout *l,
                      char *err, size_t err_size) {
    l->g = llorch_gather_identity(t);
    l->n_dims = 3;
    l->n_key = K;
    l->key_axis = kind == LLORCH_CKPT_KQ_SOFT_MAX ? 0 : 2;
    int src_key_axis = l->key_axis;
    if (kind == LLORCH_CKPT_CACHE_V && t->nb[1] > t->nb[2]) {
        l->g.src_axis[0] = 2;
        l->g.src_axis[2] = 0;
        l->g.ne[0] = t->ne[2];
        src_key_axis = 0;
    }
    l->g.ne[l->key_axis] = K;
    if (t->ne[src_key_axis] < K || t->ne[3] != 1) {
        snprintf(err, err_size, "%s holds %lld key cells, fewer than the %d filled so far", t->name,
                 (long long) t->ne[src_key_axis], K);
        return -1;
    }
    return 0;
}

/* The recurrent state: the written rows as one vector, in llama.cpp's
 * memory order. The capture decodes one sequence per step on such models,
 * so the copy writes one row; its view must be contiguous. */
static int state_layout(const struct ggml_tensor *t, struct llorch_layout *l, char *err, size_t err_size) {
    int64_t n = t->ne[0];
    for (int i = 1; i < 4; i++) {
        if (t->ne[i] > 1 && t->nb[i] != t->nb[i - 1] * (size_t) t->ne[i - 1]) {
            snprintf(err, err_size, "%s is a strided view of the recurrent state, not one contiguous row", t->name);
            return -1;
        }
        n *= t->ne[i];
    }
    if (t->nb[0] != ggml_type_size(t->type) || ggml_blck_size(t->type) != 1) {
        snprintf(err, err_size, "%s is a strided view of the recurrent state, not one contiguous row", t->name);
        return -1;
    }
    l->g = llorch_gather_identity(t);
    l->g.ne[0] = n;
    l->g.ne[1] = l->g.ne[2] = l->g.ne[3] = 1;
    l->n_dims = 1;
    return 0;
}

int llorch_convert_layout(const struct ggml_tensor *t, enum llorch_ckpt_kind kind, int32_t n_tokens, int32_t n_key,
                          bool raw, struct llorch_layout *l, char *err, size_t err_size) {
    memset(l, 0, sizeof *l);
    l->token_axis = -1;
    l->key_axis = -1;
    bool keyed = kind == LLORCH_CKPT_CACHE_K || kind == LLORCH_CKPT_CACHE_V || kind == LLORCH_CKPT_KQ_SOFT_MAX;
    /* raw only changes the tensors that are otherwise trimmed or
     * un-transposed; activations are written as llama.cpp holds them anyway */
    if ((raw && keyed) || kind == LLORCH_CKPT_GRAPH) {
        l->g = llorch_gather_identity(t);
        l->n_dims = 4; /* ggml_n_dims would drop an empty axis: 0 is not 1 */
        while (l->n_dims > 1 && t->ne[l->n_dims - 1] == 1) {
            l->n_dims--;
        }
        l->axes = raw_axes(l->n_dims);
        l->raw = true;
        return 0;
    }
    if (keyed) {
        l->token_axis = kind == LLORCH_CKPT_KQ_SOFT_MAX ? 1 : -1; /* [head, token, key] */
        return key_layout(t, kind, n_key, l, err, err_size);
    }
    if (kind == LLORCH_CKPT_CACHE_R || kind == LLORCH_CKPT_CACHE_S) {
        return state_layout(t, l, err, err_size);
    }
    const char *axes = llorch_ckpt_kind_info(kind)->axes;
    bool        heads = strchr(axes, ',') != strrchr(axes, ','); /* token,head,channel */
    l->g = llorch_gather_identity(t);
    l->n_dims = heads ? 3 : 2;
    l->token_axis = l->n_dims - 1;
    if (t->ne[l->n_dims - 1] != n_tokens || (!heads && t->ne[2] * t->ne[3] != 1) || (heads && t->ne[3] != 1)) {
        snprintf(err, err_size, "%s has %lld rows for a step of %d tokens", t->name, (long long) t->ne[l->n_dims - 1],
                 n_tokens);
        return -1;
    }
    return 0;
}

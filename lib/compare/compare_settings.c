/*
 * compare_settings.c - the numerics settings of both dumps (docs/FORMAT.md,
 * "Settings that change numbers"): which of them differ, what each
 * difference can change and how to remove it, and the precision class
 * that each checkpoint is computed in on either side (the floor of the
 * default judgement, compare_judge.c).
 *
 * A setting a dump does not state is taken as its f32 default: an engine
 * that states nothing is judged as an f32 engine.
 */
#include "compare_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading a dump's settings ----------------------------------------------------- */

/* The numerics settings of one dump, as text ("" when not stated). */
struct numerics {
    char type_k[32], type_v[32], flash_attn[32], weight_type[32], compute_dtype[32], dtype[32], backend[32];
    char ffn_activation_type[32], n_ubatch[32];
};

struct field_target {
    const char *key;    /* the manifest key, flattened */
    size_t      offset; /* in struct numerics */
};

#define FIELD(key, member)                                                                                             \
    { key, offsetof(struct numerics, member) }
static const struct field_target fields[] = {
    FIELD("settings.type_k", type_k),
    FIELD("settings.type_v", type_v),
    FIELD("settings.flash_attn", flash_attn),
    FIELD("settings.weight_type", weight_type),
    FIELD("settings.compute_dtype", compute_dtype),
    FIELD("settings.dtype", dtype),
    FIELD("settings.backend", backend),
    FIELD("settings.ffn_activation_type", ffn_activation_type),
    FIELD("settings.n_ubatch", n_ubatch),
};
#undef FIELD

static void take_field(void *ctx, const char *key, const char *value) {
    struct numerics *n = ctx;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(key, fields[i].key) == 0) {
            snprintf((char *) n + fields[i].offset, sizeof n->type_k, "%s", value);
        }
    }
}

/* llama.cpp's n_gpu_layers > 0 is a GPU backend for its layers. */
static void take_gpu_layers(void *ctx, const char *key, const char *value) {
    struct numerics *n = ctx;
    if (strcmp(key, "settings.n_gpu_layers") == 0 && atoi(value) > 0 && !n->backend[0]) {
        snprintf(n->backend, sizeof n->backend, "gpu");
    }
}

static void read_numerics(const llorch_ckpt_dump *d, struct numerics *n) {
    memset(n, 0, sizeof *n);
    llorch_ckpt_dump_fields(d, take_field, n);
    llorch_ckpt_dump_fields(d, take_gpu_layers, n);
}

/* ---- precision classes ------------------------------------------------------------- */

/* The class of a ggml type name or dtype: what rounding it brings. */
static int type_class(const char *t) {
    if (!t[0] || strcmp(t, "f32") == 0 || strcmp(t, "F32") == 0 || strcmp(t, "float32") == 0) {
        return LLORCH_CMP_CLASS_F32;
    }
    if (strcmp(t, "f16") == 0 || strcmp(t, "bf16") == 0 || strcmp(t, "F16") == 0 || strcmp(t, "BF16") == 0 ||
        strcmp(t, "float16") == 0 || strcmp(t, "bfloat16") == 0 || strcmp(t, "native") == 0) {
        return LLORCH_CMP_CLASS_HALF;
    }
    if (strncmp(t, "q8", 2) == 0 || strncmp(t, "Q8", 2) == 0) {
        return LLORCH_CMP_CLASS_Q8;
    }
    return LLORCH_CMP_CLASS_QLOW; /* q4_0, q4_K, iq2_xs, ... */
}

static int max_int(int a, int b) {
    return a > b ? a : b;
}

/* Each side's classes; the comparison takes the coarser of the two. */
static void classes_of(const struct numerics *n, struct llorch_cmp_classes *c) {
    bool fa = strcmp(n->flash_attn, "true") == 0;
    bool gpu = n->backend[0] && strcmp(n->backend, "cpu") != 0 && strcmp(n->backend, "CPU") != 0;
    c->all = max_int(type_class(n->compute_dtype), type_class(n->dtype));
    c->all = max_int(c->all, gpu ? LLORCH_CMP_CLASS_HALF : LLORCH_CMP_CLASS_F32);
    c->matmul = type_class(n->weight_type);
    c->ffn = type_class(n->ffn_activation_type);
    c->cache_k = max_int(type_class(n->type_k), fa ? LLORCH_CMP_CLASS_HALF : LLORCH_CMP_CLASS_F32);
    c->cache_v = max_int(type_class(n->type_v), fa ? LLORCH_CMP_CLASS_HALF : LLORCH_CMP_CLASS_F32);
}

int llorch_cmp_row_class(const struct llorch_cmp_classes *c, int kind, bool attention, enum llorch_ckpt_dtype ref_dtype,
                         enum llorch_ckpt_dtype cand_dtype) {
    int cls = c->all;
    if (ref_dtype == LLORCH_CKPT_DTYPE_F16 || cand_dtype == LLORCH_CKPT_DTYPE_F16) {
        cls = max_int(cls, LLORCH_CMP_CLASS_HALF); /* the files themselves are rounded */
    }
    switch (kind) {
        case LLORCH_CKPT_CACHE_K:
            return max_int(cls, c->cache_k);
        case LLORCH_CKPT_CACHE_V:
            return max_int(cls, c->cache_v);
        case LLORCH_CKPT_KQ_SOFT_MAX: /* Q meets K in the cache's type */
            return max_int(cls, c->cache_k);
        case LLORCH_CKPT_ATTN_OUT_PROJ: /* the scores meet V in its type, then a matmul; a recurrent
                                           mixer reads no V */
            return max_int(max_int(cls, attention ? c->cache_v : LLORCH_CMP_CLASS_F32), c->matmul);
        case LLORCH_CKPT_FFN_OUT: /* a matmul after the activation */
        case LLORCH_CKPT_FFN_OUT_FINAL:
        case LLORCH_CKPT_FFN_MOE_OUT:
        case LLORCH_CKPT_FFN_SHEXP_OUT:
        case LLORCH_CKPT_FFN_DENSE_OUT:
            return max_int(max_int(cls, c->ffn), c->matmul);
        case LLORCH_CKPT_ATTN_NORM:
        case LLORCH_CKPT_FFN_INP:
        case LLORCH_CKPT_L_OUT:
        case LLORCH_CKPT_EMBD:
        case LLORCH_CKPT_RESULT_NORM:
            return cls;
        default: /* projections, FFN outputs, logits, extras, graph tensors */
            return max_int(cls, c->matmul);
    }
}

/* ---- differences ------------------------------------------------------------------- */

struct setting_rule {
    const char *key;
    size_t      offset;
    bool        changes_numbers; /* false: summation order only */
    const char *affects;
};

#define RULE(key, member, changes, affects)                                                                            \
    { key, offsetof(struct numerics, member), changes, affects }
static const struct setting_rule rules[] = {
    RULE("type_k", type_k, true, "cache_k and the attention scores after it"),
    RULE("type_v", type_v, true, "cache_v and the attention output after it"),
    RULE("flash_attn", flash_attn, true, "the attention scores and output (flash attention rounds Q, K and V to f16)"),
    RULE("weight_type", weight_type, true,
         "every matrix product (llama.cpp multiplies in the weights' own type and rounds the activations to it)"),
    RULE("compute_dtype", compute_dtype, true, "every checkpoint"),
    RULE("dtype", dtype, true, "every checkpoint (the files are stored rounded)"),
    RULE("backend", backend, true, "every checkpoint (another backend's kernels)"),
    RULE("ffn_activation_type", ffn_activation_type, true,
         "ffn_out (llama.cpp's CPU GELU rounds its input and output to f16: a table lookup)"),
    RULE("n_ubatch", n_ubatch, false, "summation order only (float rounding, not a difference in kind)"),
};
#undef RULE

static const char *stated(const char *v) {
    return v[0] ? v : NULL;
}

/* Two values that mean the same: absent means the f32 default. */
static bool same_value(const struct setting_rule *r, const char *a, const char *b) {
    if (strcmp(a, b) == 0) {
        return true;
    }
    if (!r->changes_numbers) {
        return !a[0] || !b[0]; /* not stated on one side: nothing to say */
    }
    if (strcmp(r->key, "flash_attn") == 0) {
        return (strcmp(a, "true") == 0) == (strcmp(b, "true") == 0);
    }
    if (strcmp(r->key, "backend") == 0) {
        return !a[0] || !b[0] ? (!a[0] ? strcmp(b, "cpu") == 0 : strcmp(a, "cpu") == 0) : false;
    }
    return type_class(a) == type_class(b) && (!a[0] || !b[0] ? true : strcmp(a, b) == 0);
}

/* How to remove the difference. */
static void describe_fix(char *buf, size_t size, const struct setting_rule *r, const struct numerics *ref,
                         const struct numerics *cand) {
    const char *k = r->key;
    if (strcmp(k, "type_k") == 0 || strcmp(k, "type_v") == 0) {
        snprintf(buf, size,
                 "re-run the reference with -ctk %s -ctv %s (the candidate's cache types), or compare with "
                 "--preset f16",
                 cand->type_k[0] ? cand->type_k : "f32", cand->type_v[0] ? cand->type_v : "f32");
    } else if (strcmp(k, "flash_attn") == 0) {
        snprintf(buf, size, "re-run the reference with -fa %s, or compare with --preset backend",
                 strcmp(cand->flash_attn, "true") == 0 ? "on" : "off");
    } else if (strcmp(k, "weight_type") == 0) {
        snprintf(buf, size,
                 "compare with --preset backend, or give the reference a model whose weights are %s (the default "
                 "judgement allows for the coarser type)",
                 cand->weight_type[0] ? cand->weight_type : "f32");
    } else if (strcmp(k, "ffn_activation_type") == 0) {
        snprintf(buf, size,
                 "round the GELU's input and output to f16 in the candidate as ggml's table does, or "
                 "compare with --preset f16");
    } else if (strcmp(k, "dtype") == 0) {
        snprintf(buf, size, "re-run with --dtype f32, or compare with --preset f16");
    } else if (strcmp(k, "n_ubatch") == 0) {
        snprintf(buf, size, "none needed: both are right; -ub %s on the reference gives the same order",
                 cand->n_ubatch[0] ? cand->n_ubatch : "N");
    } else {
        snprintf(buf, size, "compare with --preset backend, or --noise with a second reference from %s",
                 ref->backend[0] ? "the candidate's backend" : "another backend");
    }
}

static int add_diff(struct llorch_ckpt_comparison *c, const struct setting_rule *r, const struct numerics *ref,
                    const struct numerics *cand) {
    char                             fix[512];
    const char                      *a = (const char *) ref + r->offset, *b = (const char *) cand + r->offset;
    struct llorch_ckpt_setting_diff *grown = realloc(c->settings, (c->n_settings + 1) * sizeof *grown);
    if (!grown) {
        return -1;
    }
    c->settings = grown;
    describe_fix(fix, sizeof fix, r, ref, cand);
    c->settings[c->n_settings++] = (struct llorch_ckpt_setting_diff){
        .key = r->key,
        .ref_value = llorch_cmp_keep(c, stated(a)),
        .cand_value = llorch_cmp_keep(c, stated(b)),
        .changes_numbers = r->changes_numbers,
        .affects = r->affects,
        .fix = llorch_cmp_keep(c, fix),
    };
    return 0;
}

int llorch_cmp_read_settings(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                             const llorch_ckpt_dump *cand) {
    struct numerics           a, b;
    struct llorch_cmp_classes ca, cb;
    read_numerics(ref, &a);
    read_numerics(cand, &b);
    classes_of(&a, &ca);
    classes_of(&b, &cb);
    c->classes = (struct llorch_cmp_classes){max_int(ca.all, cb.all), max_int(ca.matmul, cb.matmul),
                                             max_int(ca.cache_k, cb.cache_k), max_int(ca.cache_v, cb.cache_v),
                                             max_int(ca.ffn, cb.ffn)};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *va = (const char *) &a + rules[i].offset, *vb = (const char *) &b + rules[i].offset;
        if (!same_value(&rules[i], va, vb) && add_diff(c, &rules[i], &a, &b) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- explaining failures ----------------------------------------------------------- */

/* The kinds a setting reaches first; everything after them in the
 * dataflow inherits. */
static bool reaches(const char *key, int kind) {
    if (strcmp(key, "type_k") == 0) {
        return kind == LLORCH_CKPT_CACHE_K || kind == LLORCH_CKPT_KQ_SOFT_MAX;
    }
    if (strcmp(key, "type_v") == 0) {
        return kind == LLORCH_CKPT_CACHE_V || kind == LLORCH_CKPT_ATTN_OUT_PROJ;
    }
    if (strcmp(key, "flash_attn") == 0) {
        return kind == LLORCH_CKPT_KQ_SOFT_MAX || kind == LLORCH_CKPT_ATTN_OUT_PROJ;
    }
    if (strcmp(key, "ffn_activation_type") == 0) {
        return kind == LLORCH_CKPT_FFN_OUT || kind == LLORCH_CKPT_FFN_OUT_FINAL || kind == LLORCH_CKPT_FFN_MOE_OUT ||
               kind == LLORCH_CKPT_FFN_SHEXP_OUT || kind == LLORCH_CKPT_FFN_DENSE_OUT;
    }
    if (strcmp(key, "weight_type") == 0) {
        return kind != LLORCH_CKPT_ATTN_NORM && kind != LLORCH_CKPT_FFN_INP && kind != LLORCH_CKPT_L_OUT &&
               kind != LLORCH_CKPT_EMBD && kind != LLORCH_CKPT_RESULT_NORM && kind != LLORCH_CKPT_CACHE_K &&
               kind != LLORCH_CKPT_CACHE_V;
    }
    return true; /* dtype, compute_dtype, backend: everything */
}

/* The errors a difference of settings can make: the NMSE of the f16
 * preset for a rounding to half precision, of the backend preset
 * otherwise (the element counts were made against the row's own
 * tolerance and cannot be judged again). */
static bool within_settings_error(const struct llorch_ckpt_row *r, bool coarse) {
    return r->metrics.n_nonfinite == 0 && r->metrics.nmse <= (coarse ? 1e-3 : 1e-4);
}

/* The first row, in the reference's order (the graph's), that a
 * difference of settings reaches: every row from there on may carry it. */
static size_t first_reached(const struct llorch_ckpt_comparison *c) {
    for (size_t i = 0; i < c->n_rows; i++) {
        for (size_t s = 0; s < c->n_settings; s++) {
            if (c->settings[s].changes_numbers && reaches(c->settings[s].key, c->kinds[i])) {
                return i;
            }
        }
    }
    return c->n_rows;
}

static bool reached_directly(const struct llorch_ckpt_comparison *c, size_t i) {
    for (size_t s = 0; s < c->n_settings; s++) {
        if (c->settings[s].changes_numbers && reaches(c->settings[s].key, c->kinds[i])) {
            return true;
        }
    }
    return false;
}

/* A failure the settings explain: within the errors such a difference
 * makes, and at a row the difference reaches, or inherited from one (the
 * rows are checked in order, so its failed input is explained too). Under
 * fixed limits in a chained comparison, any row from the first one reached
 * on: a small rounding crosses a fixed limit wherever the data amplify it
 * (a norm of a small residual). The default judgement already allows for
 * the settings, and a fed comparison cuts their error off at every layer:
 * a failure introduced there is the row's own. */
static bool explained(const struct llorch_ckpt_comparison *c, size_t i, size_t from, bool coarse) {
    const struct llorch_ckpt_row *r = &c->rows[i];
    if (i < from || !within_settings_error(r, coarse)) {
        return false;
    }
    if (reached_directly(c, i) || r->origin == LLORCH_CKPT_ORIGIN_INHERITED) {
        return true;
    }
    return !c->auto_judgement && c->fed_side == 0;
}

/* Only when every failure is explained: one real divergence among them is
 * named as usual, with the differences listed above it. */
void llorch_cmp_explain_by_settings(struct llorch_ckpt_comparison *c) {
    bool   coarse = false;
    size_t n_failed = 0, from = first_reached(c);
    for (size_t s = 0; s < c->n_settings; s++) {
        const char *k = c->settings[s].key;
        coarse |= c->settings[s].changes_numbers && strcmp(k, "type_k") != 0 && strcmp(k, "type_v") != 0 &&
                  strcmp(k, "dtype") != 0;
    }
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status == LLORCH_CKPT_STATUS_FAIL) {
            n_failed++;
            if (!explained(c, i, from, coarse)) {
                return;
            }
        }
    }
    if (n_failed == 0) {
        return;
    }
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status == LLORCH_CKPT_STATUS_FAIL) {
            c->rows[i].origin = LLORCH_CKPT_ORIGIN_SETTINGS;
        }
    }
    c->settings_explain = true;
}

/* identify.c - names + op + structure -> checkpoint kind.
 * The graph facts this relies on are in docs/LLAMA_GRAPH.md. */
#define _POSIX_C_SOURCE 200809L
#include "identify.h"

#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- model facts --------------------------------------------------------- */

static bool has_tensor(const struct gguf_context *g, const char *fmt, int layer) {
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    return gguf_find_tensor(g, name) >= 0;
}

int llorch_model_facts_load(struct llorch_model_facts *f, const struct llama_model *model, const char *path,
                            char *err, size_t err_size) {
    memset(f, 0, sizeof *f);
    llama_model_meta_val_str(model, "general.architecture", f->arch, sizeof f->arch);
    f->n_layer = llama_model_n_layer(model);
    f->n_embd = llama_model_n_embd(model);
    f->n_head = llama_model_n_head(model);
    f->n_head_kv = llama_model_n_head_kv(model);
    f->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    f->rope = llama_model_rope_type(model) != LLAMA_ROPE_TYPE_NONE;

    struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (g == NULL) {
        snprintf(err, err_size, "cannot read the tensor list of '%s'", path);
        return -1;
    }
    size_t n = f->n_layer > 0 ? (size_t) f->n_layer : 1;
    f->attn_out_weight = calloc(n, sizeof(bool));
    f->attn_out_bias = calloc(n, sizeof(bool));
    f->ffn_down_weight = calloc(n, sizeof(bool));
    f->ffn_down_bias = calloc(n, sizeof(bool));
    for (int il = 0; il < f->n_layer && f->ffn_down_bias != NULL; il++) {
        f->attn_out_weight[il] = has_tensor(g, "blk.%d.attn_output.weight", il);
        f->attn_out_bias[il] = has_tensor(g, "blk.%d.attn_output.bias", il);
        f->ffn_down_weight[il] = has_tensor(g, "blk.%d.ffn_down.weight", il);
        f->ffn_down_bias[il] = has_tensor(g, "blk.%d.ffn_down.bias", il);
    }
    f->pos_embd = gguf_find_tensor(g, "position_embd.weight") >= 0;
    gguf_free(g);
    if (f->attn_out_weight == NULL || f->attn_out_bias == NULL || f->ffn_down_weight == NULL ||
        f->ffn_down_bias == NULL) {
        llorch_model_facts_free(f);
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

void llorch_model_facts_free(struct llorch_model_facts *f) {
    free(f->attn_out_weight);
    free(f->attn_out_bias);
    free(f->ffn_down_weight);
    free(f->ffn_down_bias);
    memset(f, 0, sizeof *f);
}

/* --- name parsing -------------------------------------------------------- */

/* "attn_norm-3" -> base "attn_norm", layer 3. False for names with a suffix
 * such as "Qcur-0 (view)" and for names without a layer. */
static bool split_layer_name(const char *name, char *base, size_t size, int *layer) {
    const char *dash = strrchr(name, '-');
    if (dash == NULL || dash == name || dash[1] == '\0') {
        return false;
    }
    int il = 0;
    for (const char *p = dash + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || il > 100000) {
            return false;
        }
        il = il * 10 + (*p - '0');
    }
    size_t len = (size_t) (dash - name);
    if (len >= size) {
        return false;
    }
    memcpy(base, name, len);
    base[len] = '\0';
    *layer = il;
    return true;
}

/* "blk.12.attn_output.weight" with suffix "attn_output.weight" -> 12. */
static int weight_layer(const struct ggml_tensor *w, const char *suffix) {
    int il;
    int consumed = 0;
    if (w == NULL || sscanf(w->name, "blk.%d.%n", &il, &consumed) != 1 || consumed == 0) {
        return -1;
    }
    return strcmp(w->name + consumed, suffix) == 0 ? il : -1;
}

/* "cache_k_l7" -> 7 for prefix "cache_k_l". */
static int cache_layer(const struct ggml_tensor *t, const char *prefix) {
    size_t n = strlen(prefix);
    if (t == NULL || strncmp(t->name, prefix, n) != 0 || t->name[n] == '\0') {
        return -1;
    }
    int il = 0;
    for (const char *p = t->name + n; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        il = il * 10 + (*p - '0');
    }
    return il;
}

/* --- rules --------------------------------------------------------------- */

/* A [head_dim, heads, tokens] view of a projection, not the 2-D matmul. */
static bool is_head_view(const struct ggml_tensor *t, int heads) {
    return (t->op == GGML_OP_VIEW || t->op == GGML_OP_RESHAPE || t->op == GGML_OP_CONT) && t->ne[1] == heads;
}

static int identify_qkv(const struct llorch_model_facts *f, const char *base, const struct ggml_tensor *t) {
    bool q = strcmp(base, "Qcur") == 0, k = strcmp(base, "Kcur") == 0, v = strcmp(base, "Vcur") == 0;
    if (!q && !k && !v) {
        return -1;
    }
    int heads = q ? f->n_head : f->n_head_kv;
    if (v) {
        return is_head_view(t, heads) ? LLORCH_CKPT_VCUR : -1;
    }
    if (f->rope && t->op == GGML_OP_ROPE) {
        return q ? LLORCH_CKPT_QCUR : LLORCH_CKPT_KCUR;
    }
    if (!is_head_view(t, heads)) {
        return -1;
    }
    if (f->rope) {
        return q ? LLORCH_CKPT_QCUR_PRE_ROPE : LLORCH_CKPT_KCUR_PRE_ROPE;
    }
    return q ? LLORCH_CKPT_QCUR : LLORCH_CKPT_KCUR;
}

/* Tensors named by upstream llama.cpp's builders: name + op. */
static int identify_by_layer_name(const struct llorch_model_facts *f, enum llorch_capture_identify mode,
                                  const char *base, const struct ggml_tensor *t) {
    if (strcmp(base, "attn_norm") == 0) {
        return LLORCH_CKPT_ATTN_NORM;
    }
    if (strcmp(base, "kq_soft_max") == 0) {
        return t->op == GGML_OP_SOFT_MAX ? LLORCH_CKPT_KQ_SOFT_MAX : -1;
    }
    if (strcmp(base, "ffn_inp") == 0) {
        return LLORCH_CKPT_FFN_INP;
    }
    if (strcmp(base, "l_out") == 0) {
        return LLORCH_CKPT_L_OUT;
    }
    if (mode == LLORCH_IDENTIFY_AUTO) {   /* the patch's names */
        if (strcmp(base, "cache_k") == 0 && t->op == GGML_OP_VIEW) {
            return LLORCH_CKPT_CACHE_K;
        }
        if (strcmp(base, "cache_v") == 0 && t->op == GGML_OP_VIEW) {
            return LLORCH_CKPT_CACHE_V;
        }
        if (strcmp(base, "attn_out_proj") == 0) {
            return LLORCH_CKPT_ATTN_OUT_PROJ;
        }
    }
    return identify_qkv(f, base, t);
}

/* The output of a projection: the bias ADD where the layer has a bias,
 * else the MUL_MAT that reads the weight. */
static int projection_layer(const struct ggml_tensor *t, const char *weight, const char *bias,
                            const bool *has_bias, int n_layer) {
    int il = -1;
    if (t->op == GGML_OP_MUL_MAT) {
        il = weight_layer(t->src[0], weight);
        return (il >= 0 && il < n_layer && !has_bias[il]) ? il : -1;
    }
    if (t->op == GGML_OP_ADD) {
        il = weight_layer(t->src[1], bias);
        return (il >= 0 && il < n_layer) ? il : -1;
    }
    return -1;
}

/* Tensors found by graph structure (named or not). */
static int identify_by_structure(const struct llorch_model_facts *f, const struct ggml_tensor *t, int *layer) {
    if (t->op == GGML_OP_VIEW) {
        /* the window attention reads: a VIEW of the cache (the write into the
         * cache is a SET_ROWS under a similar name) */
        if ((*layer = cache_layer(t->view_src, "cache_k_l")) >= 0) {
            return LLORCH_CKPT_CACHE_K;
        }
        if ((*layer = cache_layer(t->view_src, "cache_v_l")) >= 0) {
            return LLORCH_CKPT_CACHE_V;
        }
    }
    if ((*layer = projection_layer(t, "attn_output.weight", "attn_output.bias", f->attn_out_bias, f->n_layer)) >= 0) {
        return LLORCH_CKPT_ATTN_OUT_PROJ;
    }
    if ((*layer = projection_layer(t, "ffn_down.weight", "ffn_down.bias", f->ffn_down_bias, f->n_layer)) >= 0) {
        return LLORCH_CKPT_FFN_OUT;
    }
    return -1;
}

static int identify_model_level(const struct llorch_model_facts *f, const struct ggml_tensor *t) {
    if (strcmp(t->name, f->pos_embd ? "inpL" : "embd") == 0) {
        return LLORCH_CKPT_EMBD;
    }
    if (strcmp(t->name, "result_norm") == 0) {
        return LLORCH_CKPT_RESULT_NORM;
    }
    if (strcmp(t->name, "result_output") == 0) {
        return LLORCH_CKPT_LOGITS;
    }
    return -1;
}

int llorch_identify(const struct llorch_model_facts *f, enum llorch_capture_identify mode,
                    const struct ggml_tensor *t, int *layer) {
    char base[GGML_MAX_NAME];
    if (split_layer_name(t->name, base, sizeof base, layer) && *layer < f->n_layer) {
        int kind = identify_by_layer_name(f, mode, base, t);
        if (kind >= 0) {
            return kind;
        }
    }
    int kind = identify_by_structure(f, t, layer);
    if (kind >= 0) {
        return kind;
    }
    *layer = -1;
    return identify_model_level(f, t);
}

bool llorch_identify_is_patch_name(const char *name) {
    return strncmp(name, "cache_k-", 8) == 0 || strncmp(name, "cache_v-", 8) == 0 ||
           strncmp(name, "attn_out_proj-", 14) == 0;
}

const char *llorch_identify_absent_reason(const struct llorch_model_facts *f, enum llorch_ckpt_kind kind,
                                          bool flash_attn) {
    switch (kind) {
        case LLORCH_CKPT_QCUR_PRE_ROPE:
        case LLORCH_CKPT_KCUR_PRE_ROPE:
            return f->rope ? NULL : "this architecture applies no RoPE: Qcur/Kcur are the values entering attention";
        case LLORCH_CKPT_KQ_SOFT_MAX:
            return flash_attn ? "flash attention computes the scores inside one fused node (use -fa off)" : NULL;
        default:
            return NULL;
    }
}

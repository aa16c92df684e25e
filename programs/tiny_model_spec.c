/*
 * tiny_model_spec.c - what a gpt2, llama or qwen2 GGUF holds: tensor names
 * and shapes as llama.cpp's loaders expect them (src/models/gpt2.cpp,
 * src/models/llama.cpp, src/models/qwen2.cpp) and the metadata keys they read.
 */
#include "tiny_model.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "gguf.h"

/* How values are drawn. Norm weights and biases are deliberately not 1 and
 * 0: a reference implementation that forgets one of them must disagree. */
static const struct tiny_init INIT_MATRIX = {0.0, 0.02};
static const struct tiny_init INIT_NORM = {1.0, 0.1};
static const struct tiny_init INIT_BIAS = {0.0, 0.02};
static const struct tiny_init INIT_POS = {0.0, 0.01};

/* llama_ftype values (llama.h); written as numbers so that this program
 * needs only ggml. */
enum {
    FTYPE_ALL_F32 = 0,
    FTYPE_MOSTLY_F16 = 1,
    FTYPE_MOSTLY_Q8_0 = 7,
    FTYPE_MOSTLY_Q4_K_S = 14,
};

const char *tiny_arch_name(enum tiny_arch arch) {
    static const char *const names[] = {"gpt2", "llama", "qwen2"};
    return names[arch];
}

/* Appends tensors to a bounded array. */
struct tensor_list {
    const struct tiny_config *cfg;
    struct tiny_tensor       *items;
    int                       n, max;
};

static void add(struct tensor_list *l, struct tiny_init init, int64_t ne0, int64_t ne1, const char *fmt, ...) {
    if (l->n >= l->max) {
        l->n++; /* counted, so the caller sees the overflow */
        return;
    }
    struct tiny_tensor *t = &l->items[l->n++];
    memset(t, 0, sizeof(*t));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof(t->name), fmt, ap);
    va_end(ap);
    t->n_dims = ne1 > 0 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 > 0 ? ne1 : 1;
    /* Only matrices take the chosen type; norms, biases and vectors stay F32
     * as in every llama.cpp conversion. */
    t->type = t->n_dims == 2 ? l->cfg->wtype : GGML_TYPE_F32;
    t->init = init;
}

static void add_gpt2_layer(struct tensor_list *l, int il) {
    const struct tiny_config *c = l->cfg;
    const int64_t             E = c->n_embd, F = c->n_ff;
    add(l, INIT_NORM, E, 0, "blk.%d.attn_norm.weight", il);
    add(l, INIT_BIAS, E, 0, "blk.%d.attn_norm.bias", il);
    add(l, INIT_MATRIX, E, 3 * E, "blk.%d.attn_qkv.weight", il); /* fused Q, K, V */
    add(l, INIT_BIAS, 3 * E, 0, "blk.%d.attn_qkv.bias", il);
    add(l, INIT_MATRIX, E, E, "blk.%d.attn_output.weight", il);
    add(l, INIT_BIAS, E, 0, "blk.%d.attn_output.bias", il);
    add(l, INIT_NORM, E, 0, "blk.%d.ffn_norm.weight", il);
    add(l, INIT_BIAS, E, 0, "blk.%d.ffn_norm.bias", il);
    add(l, INIT_MATRIX, E, F, "blk.%d.ffn_up.weight", il);
    add(l, INIT_BIAS, F, 0, "blk.%d.ffn_up.bias", il);
    add(l, INIT_MATRIX, F, E, "blk.%d.ffn_down.weight", il);
    add(l, INIT_BIAS, E, 0, "blk.%d.ffn_down.bias", il);
}

static void add_llama_layer(struct tensor_list *l, int il) {
    const struct tiny_config *c = l->cfg;
    const int64_t             E = c->n_embd, F = c->n_ff;
    const int64_t             E_kv = (int64_t) (c->n_embd / c->n_head) * c->n_head_kv; /* GQA */
    add(l, INIT_NORM, E, 0, "blk.%d.attn_norm.weight", il);
    const bool bias = c->arch == TINY_ARCH_QWEN2; /* qwen2: q, k and v have biases */
    add(l, INIT_MATRIX, E, E, "blk.%d.attn_q.weight", il);
    if (bias) {
        add(l, INIT_BIAS, E, 0, "blk.%d.attn_q.bias", il);
    }
    add(l, INIT_MATRIX, E, E_kv, "blk.%d.attn_k.weight", il);
    if (bias) {
        add(l, INIT_BIAS, E_kv, 0, "blk.%d.attn_k.bias", il);
    }
    add(l, INIT_MATRIX, E, E_kv, "blk.%d.attn_v.weight", il);
    if (bias) {
        add(l, INIT_BIAS, E_kv, 0, "blk.%d.attn_v.bias", il);
    }
    add(l, INIT_MATRIX, E, E, "blk.%d.attn_output.weight", il);
    add(l, INIT_NORM, E, 0, "blk.%d.ffn_norm.weight", il);
    add(l, INIT_MATRIX, E, F, "blk.%d.ffn_gate.weight", il);
    add(l, INIT_MATRIX, E, F, "blk.%d.ffn_up.weight", il);
    add(l, INIT_MATRIX, F, E, "blk.%d.ffn_down.weight", il);
}

int tiny_model_tensors(const struct tiny_config *cfg, struct tiny_tensor *out, int max) {
    struct tensor_list l = {cfg, out, 0, max};
    const int64_t      E = cfg->n_embd;

    add(&l, INIT_MATRIX, E, cfg->n_vocab, "token_embd.weight");
    if (cfg->arch == TINY_ARCH_GPT2) {
        add(&l, INIT_POS, E, cfg->n_ctx, "position_embd.weight");
    }
    for (int il = 0; il < cfg->n_layer; il++) {
        if (cfg->arch == TINY_ARCH_GPT2) {
            add_gpt2_layer(&l, il);
        } else {
            add_llama_layer(&l, il);
        }
    }
    add(&l, INIT_NORM, E, 0, "output_norm.weight");
    if (cfg->arch == TINY_ARCH_GPT2) {
        add(&l, INIT_BIAS, E, 0, "output_norm.bias");
        /* No output.weight: gpt2's head is tied to token_embd. */
    } else {
        add(&l, INIT_MATRIX, E, cfg->n_vocab, "output.weight");
    }
    return l.n <= max ? l.n : -1;
}

int tiny_model_max_tensors(const struct tiny_config *cfg) {
    return 4 + 12 * cfg->n_layer;
}

int64_t tiny_model_n_params(const struct tiny_tensor *tensors, int n) {
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        sum += tensors[i].ne[0] * tensors[i].ne[1];
    }
    return sum;
}

static uint32_t file_type(enum ggml_type t) {
    switch (t) {
        case GGML_TYPE_F16:
            return FTYPE_MOSTLY_F16;
        case GGML_TYPE_Q8_0:
            return FTYPE_MOSTLY_Q8_0;
        case GGML_TYPE_Q4_K:
            return FTYPE_MOSTLY_Q4_K_S;
        default:
            return FTYPE_ALL_F32;
    }
}

static void set_u32(struct gguf_context *g, const char *arch, const char *key, uint32_t v) {
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    gguf_set_val_u32(g, full, v);
}

static void set_f32(struct gguf_context *g, const char *arch, const char *key, float v) {
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    gguf_set_val_f32(g, full, v);
}

/* A record of how the file was made. Only machine-independent facts (the
 * vocab's base name, not its path) so that the bytes do not depend on where
 * the program runs. */
static void set_description(const struct tiny_config *c, struct gguf_context *g) {
    const char *slash = strrchr(c->vocab_path, '/');
    char        llama_flags[96] = "";
    if (c->arch != TINY_ARCH_GPT2) {
        snprintf(llama_flags, sizeof(llama_flags), " --heads-kv %d --rope-base %g", c->n_head_kv,
                 (double) c->rope_base);
    }
    char desc[512];
    snprintf(desc, sizeof(desc),
             "random weights by llorch-make-tiny-model --arch %s --layers %d --embd %d --heads %d%s"
             " --ff %d --ctx %d --type %s --seed %llu --vocab %s",
             tiny_arch_name(c->arch), c->n_layer, c->n_embd, c->n_head, llama_flags, c->n_ff, c->n_ctx,
             ggml_type_name(c->wtype), (unsigned long long) c->seed, slash ? slash + 1 : c->vocab_path);
    gguf_set_val_str(g, "general.description", desc);
}

void tiny_model_set_metadata(const struct tiny_config *c, struct gguf_context *g) {
    const char *arch = tiny_arch_name(c->arch);
    char        name[64];
    snprintf(name, sizeof(name), "llorch-tiny-%s", arch);

    gguf_set_val_str(g, "general.architecture", arch);
    gguf_set_val_str(g, "general.name", name);
    set_description(c, g);
    gguf_set_val_u32(g, "general.file_type", file_type(c->wtype));
    gguf_set_val_u32(g, "general.quantization_version", GGML_QNT_VERSION);

    set_u32(g, arch, "context_length", (uint32_t) c->n_ctx);
    set_u32(g, arch, "embedding_length", (uint32_t) c->n_embd);
    set_u32(g, arch, "block_count", (uint32_t) c->n_layer);
    set_u32(g, arch, "feed_forward_length", (uint32_t) c->n_ff);
    set_u32(g, arch, "attention.head_count", (uint32_t) c->n_head);
    set_u32(g, arch, "attention.head_count_kv", (uint32_t) c->n_head_kv);
    if (c->arch == TINY_ARCH_GPT2) {
        set_f32(g, arch, "attention.layer_norm_epsilon", 1e-5f);
    } else {
        set_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
        set_u32(g, arch, "rope.dimension_count", (uint32_t) (c->n_embd / c->n_head));
        set_f32(g, arch, "rope.freq_base", c->rope_base);
        set_u32(g, arch, "vocab_size", (uint32_t) c->n_vocab);
    }
}

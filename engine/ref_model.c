/*
 * ref_model.c - read a GGUF model with ggml's GGUF reader and convert every
 * weight to float32.
 *
 * This is the only place that touches ggml, and only for file parsing and
 * data conversion (F16/BF16/Q8_0/Q4_K -> f32 through the type's to_float).
 * All arithmetic of the forward pass is in ref_forward.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "ref_model.h"

#include <ggml.h>
#include <gguf.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Everything the loading functions share, so that each stays short. */
struct loader {
    struct gguf_context *gguf;
    struct ggml_context *data; /* holds the tensors' bytes */
    struct ref_model    *m;
    const char          *path;
    char                *err;
    size_t               err_size;
    bool                 failed;
};

static void fail(struct loader *ld, const char *fmt, ...) {
    if (ld->failed) {
        return; /* keep the first message: it names the real cause */
    }
    ld->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->err_size, fmt, ap);
    va_end(ap);
}

/* ggml's GGUF reader logs its own diagnostics; we report one line ourselves. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void) level;
    (void) text;
    (void) user;
}

/* ---- metadata ---------------------------------------------------------- */

static void arch_key(const struct loader *ld, char *buf, size_t size, const char *suffix) {
    snprintf(buf, size, "%s.%s", ld->m->hp.arch_name, suffix);
}

/* An integer hyperparameter "ARCH.suffix". Missing: def, or an error when
 * def < 0 (required). Per-layer arrays are not supported. */
static int read_int(struct loader *ld, const char *suffix, int def) {
    char key[128];
    arch_key(ld, key, sizeof key, suffix);
    int64_t id = gguf_find_key(ld->gguf, key);
    if (id < 0) {
        if (def < 0) {
            fail(ld, "%s: missing metadata key '%s'; the file is not a complete %s model", ld->path, key,
                 ld->m->hp.arch_name);
        }
        return def;
    }
    switch (gguf_get_kv_type(ld->gguf, id)) {
        case GGUF_TYPE_UINT32:
            return (int) gguf_get_val_u32(ld->gguf, id);
        case GGUF_TYPE_INT32:
            return (int) gguf_get_val_i32(ld->gguf, id);
        case GGUF_TYPE_UINT64:
            return (int) gguf_get_val_u64(ld->gguf, id);
        case GGUF_TYPE_INT64:
            return (int) gguf_get_val_i64(ld->gguf, id);
        default:
            fail(ld,
                 "%s: metadata key '%s' is not a single integer (per-layer values are not supported); "
                 "use a model with one value for all layers",
                 ld->path, key);
            return def;
    }
}

static float read_float(struct loader *ld, const char *suffix, float def, bool required) {
    char key[128];
    arch_key(ld, key, sizeof key, suffix);
    int64_t id = gguf_find_key(ld->gguf, key);
    if (id < 0) {
        if (required) {
            fail(ld, "%s: missing metadata key '%s'; the file is not a complete %s model", ld->path, key,
                 ld->m->hp.arch_name);
        }
        return def;
    }
    switch (gguf_get_kv_type(ld->gguf, id)) {
        case GGUF_TYPE_FLOAT32:
            return gguf_get_val_f32(ld->gguf, id);
        case GGUF_TYPE_FLOAT64:
            return (float) gguf_get_val_f64(ld->gguf, id);
        default:
            fail(ld, "%s: metadata key '%s' is not a number; repair or re-convert the model", ld->path, key);
            return def;
    }
}

static const char *read_string(struct loader *ld, const char *key) {
    int64_t id = gguf_find_key(ld->gguf, key);
    if (id < 0 || gguf_get_kv_type(ld->gguf, id) != GGUF_TYPE_STRING) {
        return NULL;
    }
    return gguf_get_val_str(ld->gguf, id);
}

static void read_architecture(struct loader *ld) {
    struct ref_hparams *hp = &ld->m->hp;
    const char         *arch = read_string(ld, "general.architecture");
    if (arch == NULL) {
        fail(ld, "%s: no 'general.architecture' key; pass a GGUF model converted by llama.cpp", ld->path);
        return;
    }
    snprintf(hp->arch_name, sizeof hp->arch_name, "%s", arch);
    if (strcmp(arch, "gpt2") == 0) {
        hp->arch = REF_ARCH_GPT2;
    } else if (strcmp(arch, "llama") == 0) {
        hp->arch = REF_ARCH_LLAMA;
    } else if (strcmp(arch, "qwen2") == 0) {
        hp->arch = REF_ARCH_LLAMA; /* llama with Q/K/V biases and NEOX RoPE */
        hp->rope_neox = true;
    } else {
        fail(ld, "%s: architecture '%s' is not supported; this engine runs gpt2, llama and qwen2 models", ld->path,
             arch);
    }
}

/* llama.cpp features this engine leaves out are refused, never ignored:
 * ignoring them would give wrong numbers that look right. */
static void refuse_unsupported_llama(struct loader *ld) {
    char key[128];
    if (read_int(ld, "expert_count", 0) > 0) {
        fail(ld, "%s: mixture-of-experts llama models are not supported; use a dense model", ld->path);
    }
    arch_key(ld, key, sizeof key, "rope.scaling.type");
    const char *scaling = read_string(ld, key);
    if (scaling != NULL && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0) {
        fail(ld, "%s: RoPE scaling '%s' is not supported (only none and linear); use a model without it", ld->path,
             scaling);
    }
    if (read_float(ld, "rope.scaling.attn_factor", 1.0f, false) != 1.0f) {
        fail(ld, "%s: a RoPE attention factor is not supported; use a model without '%s.rope.scaling.attn_factor'",
             ld->path, ld->m->hp.arch_name);
    }
    if (gguf_find_tensor(ld->gguf, "rope_freqs.weight") >= 0) {
        fail(ld,
             "%s: RoPE frequency factors (rope_freqs.weight, llama 3.1 style) are not supported; "
             "use a model without them",
             ld->path);
    }
}

static void read_hparams(struct loader *ld) {
    struct ref_hparams *hp = &ld->m->hp;
    hp->n_ctx_train = read_int(ld, "context_length", -1);
    hp->n_embd = read_int(ld, "embedding_length", -1);
    hp->n_ff = read_int(ld, "feed_forward_length", -1);
    hp->n_layer = read_int(ld, "block_count", -1);
    hp->n_head = read_int(ld, "attention.head_count", -1);
    hp->n_head_kv = read_int(ld, "attention.head_count_kv", hp->n_head);
    if (ld->failed) {
        return;
    }
    if (hp->n_embd <= 0 || hp->n_ff <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->n_ctx_train <= 0 ||
        (hp->arch == REF_ARCH_GPT2 && hp->n_embd % hp->n_head != 0)) {
        fail(ld,
             "%s: inconsistent hyperparameters (n_embd %d, n_ff %d, n_layer %d, n_head %d, n_head_kv %d, "
             "n_ctx_train %d); repair or re-convert the model",
             ld->path, hp->n_embd, hp->n_ff, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ctx_train);
        return;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->arch == REF_ARCH_GPT2) {
        hp->norm_eps = read_float(ld, "attention.layer_norm_epsilon", 0.0f, true);
        hp->kq_scale = 1.0f / sqrtf((float) hp->head_dim);
        return;
    }
    hp->head_dim = read_int(ld, "attention.key_length", hp->head_dim);
    int value_length = read_int(ld, "attention.value_length", hp->head_dim);
    int rope_dim = read_int(ld, "rope.dimension_count", hp->head_dim);
    hp->norm_eps = read_float(ld, "attention.layer_norm_rms_epsilon", 0.0f, true);
    hp->rope_freq_base = read_float(ld, "rope.freq_base", 10000.0f, false);
    float factor = read_float(ld, "rope.scaling.factor", 0.0f, false);
    if (factor == 0.0f) {
        factor = read_float(ld, "rope.scale_linear", 0.0f, false); /* the older key */
    }
    hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor; /* as llama.cpp */
    float scale = read_float(ld, "attention.scale", 0.0f, false);
    hp->kq_scale = scale != 0.0f ? scale : 1.0f / sqrtf((float) hp->head_dim);
    if (!ld->failed &&
        (value_length != hp->head_dim || rope_dim != hp->head_dim || hp->head_dim <= 0 || hp->head_dim % 2 != 0)) {
        fail(ld,
             "%s: key length %d, value length %d and RoPE dimension %d must be equal, even and positive; "
             "this model is not a plain llama",
             ld->path, hp->head_dim, value_length, rope_dim);
    }
    refuse_unsupported_llama(ld);
}

/* ---- tensors ----------------------------------------------------------- */

static bool type_supported(enum ggml_type type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 || type == GGML_TYPE_Q8_0 ||
           type == GGML_TYPE_Q4_K;
}

static float *remember(struct loader *ld, float *buf) {
    struct ref_model *m = ld->m;
    float           **grown = realloc(m->owned, (size_t) (m->n_owned + 1) * sizeof *grown);
    if (grown == NULL) {
        free(buf);
        fail(ld, "%s: out of memory while converting the weights", ld->path);
        return NULL;
    }
    m->owned = grown;
    m->owned[m->n_owned++] = buf;
    return buf;
}

/* Converts a whole tensor to float32. F32 is copied; other types go through
 * ggml's to_float, which is a pure data conversion. */
static float *to_f32(struct loader *ld, const struct ggml_tensor *t) {
    int64_t n = ggml_nelements(t);
    float  *out = malloc((size_t) n * sizeof *out);
    if (out == NULL) {
        fail(ld, "%s: out of memory converting tensor '%s'", ld->path, t->name);
        return NULL;
    }
    if (t->type == GGML_TYPE_F32) {
        memcpy(out, t->data, (size_t) n * sizeof *out);
    } else {
        ggml_get_type_traits(t->type)->to_float(t->data, out, n);
    }
    return remember(ld, out);
}

/* The tensor `name` as float32, checked to have ggml shape {ne0, ne1}
 * (ne1 = 1 for a vector). Missing: NULL, and an error when required. */
static float *load(struct loader *ld, const char *name, int64_t ne0, int64_t ne1, bool required) {
    if (ld->failed) {
        return NULL;
    }
    struct ggml_tensor *t = ggml_get_tensor(ld->data, name);
    if (t == NULL) {
        if (required) {
            fail(ld, "%s: tensor '%s' is missing; the file is not a complete %s model", ld->path, name,
                 ld->m->hp.arch_name);
        }
        return NULL;
    }
    if (!type_supported(t->type)) {
        fail(ld,
             "%s: tensor '%s' has type %s, which this engine does not read; "
             "use a model in F32, F16, BF16, Q8_0 or Q4_K",
             ld->path, name, ggml_type_name(t->type));
        return NULL;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        fail(ld,
             "%s: tensor '%s' has shape {%lld, %lld, %lld, %lld}, expected {%lld, %lld}; "
             "the file does not match its own hyperparameters",
             ld->path, name, (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3],
             (long long) ne0, (long long) ne1);
        return NULL;
    }
    return to_f32(ld, t);
}

static float *load_layer(struct loader *ld, int il, const char *suffix, int64_t ne0, int64_t ne1, bool required) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return load(ld, name, ne0, ne1, required);
}

/* Fused QKV (gpt2 always, llama sometimes) or separate Q, K, V. */
static void load_qkv(struct loader *ld, struct ref_layer *l, int il) {
    const struct ref_hparams *hp = &ld->m->hp;
    int64_t                   n_q = (int64_t) hp->n_head * hp->head_dim;
    int64_t                   n_kv = (int64_t) hp->n_head_kv * hp->head_dim;
    bool                      fused_required = hp->arch == REF_ARCH_GPT2;
    l->wqkv = load_layer(ld, il, "attn_qkv.weight", hp->n_embd, n_q + 2 * n_kv, fused_required);
    if (l->wqkv != NULL) {
        l->bqkv = load_layer(ld, il, "attn_qkv.bias", n_q + 2 * n_kv, 1, fused_required);
        return;
    }
    l->wq = load_layer(ld, il, "attn_q.weight", hp->n_embd, n_q, true);
    l->wk = load_layer(ld, il, "attn_k.weight", hp->n_embd, n_kv, true);
    l->wv = load_layer(ld, il, "attn_v.weight", hp->n_embd, n_kv, true);
    l->bq = load_layer(ld, il, "attn_q.bias", n_q, 1, false);
    l->bk = load_layer(ld, il, "attn_k.bias", n_kv, 1, false);
    l->bv = load_layer(ld, il, "attn_v.bias", n_kv, 1, false);
}

static void load_layer_weights(struct loader *ld, struct ref_layer *l, int il) {
    const struct ref_hparams *hp = &ld->m->hp;
    bool                      gpt2 = hp->arch == REF_ARCH_GPT2;
    int64_t                   n_q = (int64_t) hp->n_head * hp->head_dim;
    l->attn_norm_w = load_layer(ld, il, "attn_norm.weight", hp->n_embd, 1, true);
    l->attn_norm_b = load_layer(ld, il, "attn_norm.bias", hp->n_embd, 1, gpt2);
    load_qkv(ld, l, il);
    l->wo = load_layer(ld, il, "attn_output.weight", n_q, hp->n_embd, true);
    l->bo = load_layer(ld, il, "attn_output.bias", hp->n_embd, 1, gpt2);
    l->ffn_norm_w = load_layer(ld, il, "ffn_norm.weight", hp->n_embd, 1, true);
    l->ffn_norm_b = load_layer(ld, il, "ffn_norm.bias", hp->n_embd, 1, gpt2);
    l->ffn_up = load_layer(ld, il, "ffn_up.weight", hp->n_embd, hp->n_ff, true);
    l->ffn_up_b = load_layer(ld, il, "ffn_up.bias", hp->n_ff, 1, gpt2);
    l->ffn_down = load_layer(ld, il, "ffn_down.weight", hp->n_ff, hp->n_embd, true);
    l->ffn_down_b = load_layer(ld, il, "ffn_down.bias", hp->n_embd, 1, gpt2);
    if (!gpt2) {
        l->ffn_gate = load_layer(ld, il, "ffn_gate.weight", hp->n_embd, hp->n_ff, true);
        l->ffn_gate_b = load_layer(ld, il, "ffn_gate.bias", hp->n_ff, 1, false);
    }
}

static void load_weights(struct loader *ld) {
    struct ref_model   *m = ld->m;
    struct ref_hparams *hp = &m->hp;
    bool                gpt2 = hp->arch == REF_ARCH_GPT2;
    struct ggml_tensor *embd = ggml_get_tensor(ld->data, "token_embd.weight");
    if (embd == NULL) {
        fail(ld, "%s: tensor 'token_embd.weight' is missing; the file is not a complete model", ld->path);
        return;
    }
    hp->n_vocab = (int) embd->ne[1];
    m->token_embd = load(ld, "token_embd.weight", hp->n_embd, hp->n_vocab, true);
    m->pos_embd = gpt2 ? load(ld, "position_embd.weight", hp->n_embd, hp->n_ctx_train, true) : NULL;
    m->output_norm_w = load(ld, "output_norm.weight", hp->n_embd, 1, true);
    m->output_norm_b = load(ld, "output_norm.bias", hp->n_embd, 1, gpt2);
    m->output = load(ld, "output.weight", hp->n_embd, hp->n_vocab, false);
    if (m->output == NULL) {
        m->output = m->token_embd; /* tied embeddings, as llama.cpp does */
    }
    m->layers = calloc((size_t) hp->n_layer, sizeof *m->layers);
    if (m->layers == NULL) {
        fail(ld, "%s: out of memory", ld->path);
        return;
    }
    for (int il = 0; il < hp->n_layer && !ld->failed; il++) {
        load_layer_weights(ld, &m->layers[il], il);
    }
}

/* ---- entry points ------------------------------------------------------ */

static bool open_gguf(struct loader *ld) {
    struct stat st;
    if (stat(ld->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(ld, "%s: no such model file; pass the path of a .gguf file with -m", ld->path);
        return false;
    }
    ld->m->file_size = (int64_t) st.st_size;
    struct gguf_init_params params = {.no_alloc = false, .ctx = &ld->data};
    ld->gguf = gguf_init_from_file(ld->path, params);
    if (ld->gguf == NULL) {
        fail(ld, "%s: not a valid GGUF file (corrupt or truncated); pass a .gguf model file", ld->path);
        return false;
    }
    return true;
}

int ref_model_load(struct ref_model *m, const char *path, char *err, size_t err_size) {
    memset(m, 0, sizeof *m);
    struct loader ld = {.m = m, .path = path, .err = err, .err_size = err_size};
    ggml_log_set(quiet_log, NULL);
    if (open_gguf(&ld)) {
        m->path = strdup(path);
        read_architecture(&ld);
        if (!ld.failed) {
            read_hparams(&ld);
        }
        if (!ld.failed) {
            load_weights(&ld);
        }
    }
    if (ld.data != NULL) {
        ggml_free(ld.data); /* the weights are all copied to float32 now */
    }
    if (ld.gguf != NULL) {
        gguf_free(ld.gguf);
    }
    ggml_log_set(NULL, NULL);
    if (ld.failed) {
        ref_model_free(m);
        return -1;
    }
    return 0;
}

void ref_model_free(struct ref_model *m) {
    for (int i = 0; i < m->n_owned; i++) {
        free(m->owned[i]);
    }
    free(m->owned);
    free(m->layers);
    free(m->path);
    memset(m, 0, sizeof *m);
}

/*
 * ref_model.h - the weights and hyperparameters of a GPT-2, llama or qwen2 model,
 * read from a GGUF file and converted to float32.
 *
 * Every weight matrix is stored as llama.cpp stores it: ggml shape
 * {n_in, n_out}, that is n_out rows of n_in floats, row-major. A matrix
 * times a vector is then one dot product per row (see matmul in
 * ref_forward.c).
 */
#ifndef REF_MODEL_H
#define REF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ref_arch {
    REF_ARCH_GPT2,  /* LayerNorm, learned positions, fused QKV, GELU FFN  */
    REF_ARCH_LLAMA, /* RMSNorm, RoPE, separate Q/K/V, GQA, SwiGLU FFN     */
};

struct ref_hparams {
    enum ref_arch arch;
    char          arch_name[32];   /* general.architecture                        */
    int           n_vocab;         /* rows of token_embd                          */
    int           n_ctx_train;     /* ARCH.context_length                         */
    int           n_embd;          /* ARCH.embedding_length                       */
    int           n_ff;            /* ARCH.feed_forward_length                    */
    int           n_layer;         /* ARCH.block_count                            */
    int           n_head;          /* ARCH.attention.head_count                   */
    int           n_head_kv;       /* ARCH.attention.head_count_kv, default n_head */
    int           head_dim;        /* n_embd / n_head                             */
    float         norm_eps;        /* LayerNorm or RMSNorm epsilon                */
    float         kq_scale;        /* attention score scale, 1/sqrt(head_dim)     */
    float         rope_freq_base;  /* llama: ARCH.rope.freq_base, default 10000   */
    float         rope_freq_scale; /* llama: 1 / ARCH.rope.scaling.factor (linear) */
    bool          rope_neox;       /* qwen2: RoPE rotates the two halves of a head */
};

/* One transformer block. Pointers the architecture does not use, and
 * optional biases the file does not have, are NULL. */
struct ref_layer {
    float *attn_norm_w, *attn_norm_b;   /* b: gpt2 only                      */
    float *wqkv, *bqkv;                 /* gpt2: fused {n_embd, 3*n_embd}    */
    float *wq, *bq, *wk, *bk, *wv, *bv; /* llama: separate, biases optional  */
    float *wo, *bo;                     /* attention output projection       */
    float *ffn_norm_w, *ffn_norm_b;     /* b: gpt2 only                      */
    float *ffn_gate, *ffn_gate_b;       /* llama only                        */
    float *ffn_up, *ffn_up_b;
    float *ffn_down, *ffn_down_b;
};

struct ref_model {
    struct ref_hparams hp;
    char              *path;
    int64_t            file_size;
    float             *token_embd; /* {n_embd, n_vocab}                 */
    float             *pos_embd;   /* gpt2: {n_embd, n_ctx_train}       */
    float             *output_norm_w, *output_norm_b;
    float             *output; /* {n_embd, n_vocab}; may alias token_embd */
    struct ref_layer  *layers;
    float            **owned; /* every buffer above, for ref_model_free */
    int                n_owned;
};

/* Reads path into m. On failure returns -1 with one line in err that names
 * the file and says what to do; m is then left empty (safe to free). */
int  ref_model_load(struct ref_model *m, const char *path, char *err, size_t err_size);
void ref_model_free(struct ref_model *m);

#endif /* REF_MODEL_H */

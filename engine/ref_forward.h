/*
 * ref_forward.h - the forward pass of GPT-2 and llama in plain C, with a
 * KV cache, writing checkpoints as it goes.
 *
 * Accuracy: every sum is a float32 loop in the obvious order, so results
 * agree with llama.cpp to float32 rounding (llama.cpp sums in SIMD lanes and
 * blocks, in another order), not bit for bit. See engine/README.md.
 */
#ifndef REF_FORWARD_H
#define REF_FORWARD_H

#include "ref_checkpoints.h"
#include "ref_model.h"

#include <stdbool.h>
#include <stdint.h>

/* Deliberate bugs, one per run, to test that a dump comparison finds them. */
enum ref_fault_kind {
    REF_FAULT_NONE,
    REF_FAULT_EPS,          /* layer L's attention norm uses REF_FAULT_EPS_VALUE  */
    REF_FAULT_SWAP_HEADS,   /* layer L swaps query heads 0 and 1 before RoPE      */
    REF_FAULT_ROPE_OFFSET,  /* layer L's RoPE uses position + 1 (for Q and K)     */
    REF_FAULT_NO_ATTN_BIAS, /* layer L drops the attention output bias            */
    REF_FAULT_MASK,         /* layer L's attention mask ignores sequence ids      */
    REF_FAULT_FFN_EPS,      /* layer L's FFN norm uses the fault's value as eps   */
};

#define REF_FAULT_EPS_VALUE 1e-1f

struct ref_fault {
    enum ref_fault_kind kind;
    int                 layer;
    float               value; /* eps and ffn-eps: the epsilon used (default REF_FAULT_EPS_VALUE) */
};

struct ref_feed; /* ref_feed.h */

/* How a run computes, beyond the model. */
struct ref_options {
    struct ref_fault fault;
    /* --feed: each layer's input (and the FFN's) replaced by the
     * reference's rows after the engine's own are written; NULL: none. */
    const struct ref_feed *feed;
    /* GELU as llama.cpp's CPU backend computes it: the input rounded to
     * f16, looked up in a table of f16 results. Off: the exact tanh
     * formula in float32 (what the GPU backends compute). */
    bool gelu_f16_table;
};

/* One unified KV cache for every sequence of the run: cell c holds the
 * c-th token decoded (whatever its sequence), with its position and
 * sequence id. Keys and values are laid out [layer][cell][kv head][head_dim].
 * A run of one sequence fills cell p with position p, so the slice of one
 * layer for cells 0..K-1 is then exactly the cache_k / cache_v checkpoint. */
struct ref_kv_cache {
    int      n_ctx;  /* cells                                            */
    int      n_used; /* cells filled so far, in decode order             */
    int      row;    /* floats per cell: n_head_kv * head_dim            */
    bool     f16;    /* round K, V (and Q, P in attention) to f16, as llama.cpp does with an f16 cache */
    float   *k;
    float   *v;
    int32_t *cell_pos; /* [n_ctx] position of the token in each cell  */
    int32_t *cell_seq; /* [n_ctx] its sequence id                      */
};

int  ref_kv_cache_init(struct ref_kv_cache *cache, const struct ref_hparams *hp, int n_ctx, bool f16);
void ref_kv_cache_free(struct ref_kv_cache *cache);

/* One step's tokens, each with its position and sequence id. The tokens
 * of one sequence are consecutive and in position order, and sequences
 * come in order of id (as the engine decodes them; see ref_engine.c). */
struct ref_batch {
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    int            n_tokens;
};

/* Runs the batch through the model, putting its keys and values into the
 * next free cells of the cache, and writes logits [n_tokens][n_vocab].
 * A token attends to the cells of its own sequence at positions up to its
 * own. ck says which checkpoints to write (may be NULL), opt how to compute
 * (may be NULL: no fault, exact GELU).
 * Returns 0, or -1 when out of memory or out of cache cells. */
int ref_forward(const struct ref_model *m, struct ref_kv_cache *cache, const struct ref_options *opt,
                const struct ref_batch *batch, struct ref_checkpoints *ck, float *logits);

/* The value x rounded to the nearest float16 (ties to even), as a float. */
float ref_round_to_f16(float x);

#endif /* REF_FORWARD_H */

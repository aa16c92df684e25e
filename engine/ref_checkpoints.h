/*
 * ref_checkpoints.h - hands the forward pass's intermediate tensors to the
 * library's dump writer. This is the part an engine author copies: one call
 * per checkpoint, placed where the engine has the tensor in hand.
 *
 * Every buffer of the forward pass is already laid out in the dump's numpy
 * order (see docs/FORMAT.md), so each call only describes the shape.
 */
#ifndef REF_CHECKPOINTS_H
#define REF_CHECKPOINTS_H

#include "llorch_checkpoint.h"

#include <stdbool.h>

struct ref_checkpoints {
    llorch_ckpt_writer          *writer;    /* NULL: write nothing        */
    const llorch_ckpt_selection *selection; /* what the user asked for    */
    int                          step;      /* graph evaluation, from 0   */
    int                          pos_start; /* position of the step's first token */
    int                          n_pos;     /* tokens in this step (T)    */
    bool                         failed;    /* a write failed; see llorch_ckpt_writer_error */
};

/* True when the user asked for this checkpoint (and there is a writer).
 * The forward pass asks first only where producing the data costs extra. */
bool ref_ckpt_wanted(const struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer);

/* (T, width): attn_norm, attn_out_proj, ffn_out, ffn_inp, l_out, embd,
 * result_norm, logits. layer -1 for model-level tensors. */
void ref_ckpt_rows(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int width);

/* (T, n_heads, head_dim): Qcur, Kcur, Vcur and their pre-RoPE twins. */
void ref_ckpt_heads(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim);

/* (n_key, n_heads, head_dim): cache_k, cache_v, key positions 0..n_key-1. */
void ref_ckpt_cache(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_key,
                    int n_heads, int head_dim);

/* (n_heads, T, n_key): kq_soft_max. */
void ref_ckpt_scores(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                     int n_key);

#endif /* REF_CHECKPOINTS_H */

/*
 * ref_checkpoints.h - hands the forward pass's intermediate tensors to the
 * library's dump writer. This is the part an engine author copies: one call
 * per checkpoint, placed where the engine has the tensor in hand.
 *
 * Every buffer of the forward pass is already laid out in the dump's numpy
 * order (see docs/FORMAT.md), so each call only describes the shape; only
 * the tensors with a key axis (the cache, the scores) are gathered first,
 * because the unified cache of several sequences interleaves their cells.
 *
 * A run of several sequences writes each tensor once per sequence of the
 * step (in_seq): that sequence's rows and its own cache cells only, so
 * that each file is what a run of that sequence alone would write.
 */
#ifndef REF_CHECKPOINTS_H
#define REF_CHECKPOINTS_H

#include "llorch_checkpoint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The rows of one sequence in a step, and its cache cells. */
struct ref_ckpt_seq {
    int32_t  seq;
    int      row;       /* its first row in the step's tensors            */
    int      n_rows;    /* its tokens in the step                         */
    int32_t  pos_start; /* the position of its first row                  */
    int      n_key;     /* its cells so far: key positions 0..n_key-1     */
    int32_t *cells;     /* the cache cell of each key position            */
};

struct ref_checkpoints {
    llorch_ckpt_writer          *writer;    /* NULL: write nothing        */
    const llorch_ckpt_selection *selection; /* what the user asked for    */
    int                          step;      /* graph evaluation, from 0   */
    bool                         in_seq;    /* several sequences: write each tensor per sequence */
    bool                         failed;    /* a write failed; see llorch_ckpt_writer_error */
    /* Set by ref_ckpt_begin_step: */
    int                  n_rows;  /* tokens in the step (T)                     */
    int                  n_cells; /* cache cells filled: the scores' key axis   */
    struct ref_ckpt_seq *seqs;    /* the sequences of the step, in order of id  */
    int                  n_seqs;
    int32_t             *cells;  /* storage of every seqs[i].cells              */
    float               *gather; /* one sequence's slice of a key-axis tensor   */
};

/* Describes the step about to be written: row_seq and row_pos give each of
 * its n_rows tokens' sequence and position (a sequence's rows consecutive,
 * sequences in order of id), cell_seq the sequence of each of the n_cells
 * filled cache cells (in decode order, so a sequence's cells are in
 * position order). gather_floats: the largest key-axis tensor of the step.
 * Returns 0, or -1 when out of memory. Nothing to do without a writer. */
int  ref_ckpt_begin_step(struct ref_checkpoints *ck, const int32_t *row_seq, const int32_t *row_pos, int n_rows,
                         const int32_t *cell_seq, int n_cells, size_t gather_floats);
void ref_ckpt_end_step(struct ref_checkpoints *ck);

/* True when the user asked for this checkpoint (and there is a writer).
 * The forward pass asks first only where producing the data costs extra. */
bool ref_ckpt_wanted(const struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer);

/* (T, width): attn_norm, attn_out_proj, ffn_out, ffn_inp, l_out, embd,
 * result_norm, logits. layer -1 for model-level tensors. */
void ref_ckpt_rows(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int width);

/* (T, n_heads, head_dim): Qcur, Kcur, Vcur and their pre-RoPE twins. */
void ref_ckpt_heads(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim);

/* cache_k, cache_v: data is one layer of the cache, [cell][n_heads][head_dim];
 * each sequence's file is (n_key, n_heads, head_dim), its cells in position
 * order. */
void ref_ckpt_cache(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim);

/* kq_soft_max: data is [n_heads][T][n_cells]; each sequence's file is
 * (n_heads, its rows, n_key), the columns of its own cells. */
void ref_ckpt_scores(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads);

#endif /* REF_CHECKPOINTS_H */

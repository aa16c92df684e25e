/* capture_rows.c - which rows of a step go into which file.
 *
 * One sequence (llorch_capture_begin_step): a step's files hold the rows
 * that --positions keeps (all of them by default), and cache cell i holds
 * position i.
 *
 * Several sequences (llorch_capture_begin_batch): every file of a step is
 * written once per sequence, with that sequence's rows and, along a key
 * axis, that sequence's cache cells in position order, so that each file
 * looks like the same file of a run of that sequence alone. Which cell
 * holds which token is known without reading llama.cpp's cache: a unified
 * cache (llama_context_params.kv_unified) that starts empty and is never
 * edited fills its cells in decode order, micro-batch after micro-batch,
 * each in batch order (llama_kv_cache::find_slot from an empty cache), so
 * the capture keeps a table of cells as it goes. The scores check the
 * table: a token's probability on a cell of another sequence must be 0. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "util.h"

#include <ggml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the batch ----------------------------------------------------------------- */

/* Grows two arrays of *cap integers each to hold n. */
static int grow_pair(int32_t **a, int32_t **b, int32_t *cap, int32_t n) {
    if (n <= *cap) {
        return 0;
    }
    int32_t  want = n > 2 * *cap ? n : 2 * *cap;
    int32_t *ga = realloc(*a, (size_t) want * sizeof *ga);
    if (ga != NULL) {
        *a = ga;
    }
    int32_t *gb = ga != NULL ? realloc(*b, (size_t) want * sizeof *gb) : NULL;
    if (gb == NULL) {
        return -1;
    }
    *b = gb;
    *cap = want;
    return 0;
}

/* The checks that make the cell table sound, one token at a time. */
static int check_token(llorch_capture *cap, const struct llama_batch *b, int32_t i, int32_t seq, int32_t pos) {
    if (b->n_seq_id != NULL && b->n_seq_id[i] != 1) {
        llorch_capture_set_error(cap,
                                 "token %d of the batch belongs to %d sequences; the capture takes one sequence "
                                 "per token (decode a shared prompt once per sequence)",
                                 i, b->n_seq_id[i]);
        return -1;
    }
    if (seq < 0 || seq >= cap->n_seq_max) {
        llorch_capture_set_error(cap,
                                 "sequence id %d (token %d of the batch) is past the context's n_seq_max %d; "
                                 "raise llama_context_params.n_seq_max or use ids 0 to %d",
                                 seq, i, cap->n_seq_max, cap->n_seq_max - 1);
        return -1;
    }
    if (pos != cap->next_pos[seq]) {
        llorch_capture_set_error(cap,
                                 "sequence %d: token %d of the batch has position %d where %d comes next; the "
                                 "capture follows each sequence from position 0, in order, without gaps",
                                 seq, i, pos, cap->next_pos[seq]);
        return -1;
    }
    if (b->logits == NULL || b->logits[i] == 0) {
        llorch_capture_set_error(cap,
                                 "token %d of the batch is not an output; mark every token as one "
                                 "(batch.logits[i] = 1): llama.cpp drops the other rows before the last layer",
                                 i);
        return -1;
    }
    return 0;
}

/* The context must keep one cache for all sequences, filled in decode order. */
static int check_context(llorch_capture *cap, bool several) {
    if (!cap->kv_unified && cap->n_seq_max > 1) {
        llorch_capture_set_error(cap, "capturing sequences needs a unified KV cache: set "
                                      "llama_context_params.kv_unified = true before llorch_capture_attach");
        return -1;
    }
    if (several && (llama_model_is_recurrent(cap->p.model) || llama_model_is_hybrid(cap->p.model))) {
        llorch_capture_set_error(cap,
                                 "%s keeps a recurrent state per sequence, and llama.cpp splits its batches by "
                                 "sequence: decode one sequence per llama_decode",
                                 cap->arch);
        return -1;
    }
    if (cap->p.raw) {
        llorch_capture_set_error(cap, "raw cache and score files hold every sequence's cells; capture sequences "
                                      "without raw");
        return -1;
    }
    return 0;
}

int llorch_capture_take_batch(llorch_capture *cap, const struct llama_batch *batch) {
    int32_t n = batch->n_tokens;
    if (cap->step > 0 && !cap->in_seq) {
        llorch_capture_set_error(cap, "llorch_capture_begin_batch after llorch_capture_begin_step: a capture "
                                      "takes one sequence or batches of sequences, not both");
        return -1;
    }
    if (cap->p.feed != NULL) {
        llorch_capture_set_error(cap, "a fed capture takes one sequence: call llorch_capture_begin_step, not "
                                      "llorch_capture_begin_batch");
        return -1;
    }
    if (cap->next_pos == NULL) {
        cap->next_pos = calloc((size_t) (cap->n_seq_max > 0 ? cap->n_seq_max : 1), sizeof *cap->next_pos);
    }
    if (cap->next_pos == NULL || grow_pair(&cap->batch_seq, &cap->batch_pos, &cap->cap_batch, n) != 0) {
        llorch_capture_set_error(cap, "out of memory");
        return -1;
    }
    bool several = false; /* sequences in this batch */
    for (int32_t i = 0; i < n; i++) {
        int32_t seq = batch->seq_id != NULL ? batch->seq_id[i][0] : 0;
        int32_t pos = batch->pos != NULL ? batch->pos[i] : (seq >= 0 && seq < cap->n_seq_max ? cap->next_pos[seq] : 0);
        if (check_token(cap, batch, i, seq, pos) != 0) {
            return -1;
        }
        several |= i > 0 && seq != cap->batch_seq[0];
        cap->next_pos[seq] = pos + 1;
        cap->batch_seq[i] = seq;
        cap->batch_pos[i] = pos;
    }
    if (check_context(cap, several) != 0) {
        return -1;
    }
    cap->in_seq = true;
    cap->batch_n = n;
    cap->batch_done = 0;
    cap->batch_pos0 = n > 0 ? cap->batch_pos[0] : 0;
    return 0;
}

/* --- the row sets of a micro-batch --------------------------------------------- */

/* Room for n sets and m integers of rows, positions and cells. */
static int reserve_sets(llorch_capture *cap, int n, size_t m) {
    if (n > cap->cap_sets) {
        struct llorch_row_set *grown = realloc(cap->sets, (size_t) n * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        cap->sets = grown;
        cap->cap_sets = n;
    }
    if (m > cap->cap_set_ints) {
        int32_t *grown = realloc(cap->set_ints, m * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        cap->set_ints = grown;
        cap->cap_set_ints = m;
    }
    return 0;
}

/* One sequence: the rows --positions keeps; cell i holds position i. */
static int one_sequence_set(llorch_capture *cap) {
    int32_t n = cap->n_tokens;
    if (reserve_sets(cap, 1, (size_t) (2 * n + 1)) != 0) {
        return -1;
    }
    int32_t *rows = cap->set_ints, *positions = rows + n, kept = 0;
    for (int32_t r = 0; r < n; r++) {
        if (llorch_ckpt_selection_position(cap->p.selection, cap->pos_start + r)) {
            positions[kept] = cap->pos_start + r;
            rows[kept++] = r;
        }
    }
    cap->sets[0] = (struct llorch_row_set){
        .rows = rows,
        .n_rows = kept,
        .pos_start = cap->pos_start,
        .positions = kept < n ? positions : NULL,
        .n_key = cap->pos_start + n,
    };
    cap->n_sets = 1;
    return 0;
}

/* The micro-batch's tokens take the next cells, in batch order. */
static int fill_cells(llorch_capture *cap, const int32_t *seq, const int32_t *pos, int32_t n) {
    if (grow_pair(&cap->cell_seq, &cap->cell_pos, &cap->cap_cells, cap->n_cells + n) != 0) {
        return -1;
    }
    for (int32_t i = 0; i < n; i++) {
        cap->cell_seq[cap->n_cells] = seq[i];
        cap->cell_pos[cap->n_cells++] = pos[i];
    }
    return 0;
}

/* Sequence s's kept rows of the micro-batch and its cells so far. */
static void sequence_set(llorch_capture *cap, int32_t s, const int32_t *seq, const int32_t *pos, int32_t *ints,
                         struct llorch_row_set *set) {
    int32_t  n = cap->n_tokens, kept = 0, n_cells = 0;
    int32_t *rows = ints, *positions = ints + n, *cells = ints + 2 * n;
    for (int32_t r = 0; r < n; r++) {
        if (seq[r] == s && llorch_ckpt_selection_position(cap->p.selection, pos[r])) {
            positions[kept] = pos[r];
            rows[kept++] = r;
        }
    }
    for (int32_t c = 0; c < cap->n_cells; c++) {
        if (cap->cell_seq[c] == s) {
            cells[n_cells++] = c; /* in position order: a sequence is decoded in order */
        }
    }
    bool consecutive = kept == 0 || positions[kept - 1] - positions[0] == kept - 1;
    *set = (struct llorch_row_set){
        .in_seq = true,
        .seq = s,
        .rows = rows,
        .n_rows = kept,
        .pos_start = kept > 0 ? positions[0] : 0,
        .positions = consecutive ? NULL : positions,
        .cells = cells,
        .n_key = n_cells,
    };
}

/* Several sequences: one set per sequence of the micro-batch, in order of
 * sequence id. */
static int sequence_sets(llorch_capture *cap) {
    const int32_t *seq = cap->batch_seq + cap->batch_done, *pos = cap->batch_pos + cap->batch_done;
    int32_t        n = cap->n_tokens;
    if (fill_cells(cap, seq, pos, n) != 0) {
        return -1;
    }
    int n_seqs = 0;
    for (int32_t s = 0; s < cap->n_seq_max; s++) {
        for (int32_t r = 0; r < n; r++) {
            if (seq[r] == s) {
                n_seqs++;
                break;
            }
        }
    }
    size_t per_set = (size_t) (2 * n) + (size_t) cap->n_cells;
    if (reserve_sets(cap, n_seqs, per_set * (size_t) n_seqs + 1) != 0) {
        return -1;
    }
    cap->n_sets = 0;
    for (int32_t s = 0; s < cap->n_seq_max && cap->n_sets < n_seqs; s++) {
        for (int32_t r = 0; r < n; r++) {
            if (seq[r] == s) {
                sequence_set(cap, s, seq, pos, cap->set_ints + per_set * (size_t) cap->n_sets, &cap->sets[cap->n_sets]);
                cap->n_sets++;
                break;
            }
        }
    }
    return 0;
}

int llorch_capture_make_row_sets(llorch_capture *cap) {
    if ((cap->in_seq ? sequence_sets(cap) : one_sequence_set(cap)) != 0) {
        llorch_capture_set_error(cap, "out of memory");
        return -1;
    }
    cap->capturing = false; /* --positions may keep no row of this step */
    for (int i = 0; i < cap->n_sets; i++) {
        cap->capturing |= cap->sets[i].n_rows > 0;
    }
    return 0;
}

/* --- the check of the cell table ------------------------------------------------ */

static float score_at(const struct ggml_tensor *t, const char *p) {
    if (t->type == GGML_TYPE_F16) {
        ggml_fp16_t h;
        memcpy(&h, p, sizeof h);
        return ggml_fp16_to_fp32(h);
    }
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

bool llorch_capture_scores_in_seq(const llorch_capture *cap, const struct ggml_tensor *t, const void *host,
                                  const struct llorch_row_set *s, int32_t *cell) {
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) {
        return true; /* nothing to read it with; the table stands on its construction */
    }
    const char *base = host;
    for (int64_t h = 0; h < t->ne[2]; h++) {
        for (int32_t r = 0; r < s->n_rows; r++) {
            const char *row = base + h * (int64_t) t->nb[2] + s->rows[r] * (int64_t) t->nb[1];
            for (int32_t c = 0; c < cap->n_cells && c < t->ne[0]; c++) {
                if (cap->cell_seq[c] != s->seq && score_at(t, row + c * (int64_t) t->nb[0]) != 0.0f) {
                    *cell = c;
                    return false;
                }
            }
        }
    }
    return true;
}

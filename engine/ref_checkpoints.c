/*
 * ref_checkpoints.c - one llorch_ckpt_writer_write call per checkpoint and
 * sequence.
 */
#include "ref_checkpoints.h"

#include <stdlib.h>
#include <string.h>

/* ---- the step: which rows and cells belong to which sequence ----------- */

/* Splits the step's rows into runs of one sequence each. */
static void find_sequences(struct ref_checkpoints *ck, const int32_t *row_seq, const int32_t *row_pos) {
    ck->n_seqs = 0;
    for (int r = 0; r < ck->n_rows; r++) {
        if (r == 0 || row_seq[r] != row_seq[r - 1]) {
            ck->seqs[ck->n_seqs++] = (struct ref_ckpt_seq){.seq = row_seq[r], .row = r, .pos_start = row_pos[r]};
        }
        ck->seqs[ck->n_seqs - 1].n_rows++;
    }
}

/* Gives each sequence its cells, in cell order, which is its position
 * order: a sequence's tokens are decoded in position order. A sequence
 * that came back later in the step would need more cells than there are:
 * refused (-1) rather than overrun. */
static int find_cells(struct ref_checkpoints *ck, const int32_t *cell_seq) {
    int used = 0;
    for (int i = 0; i < ck->n_seqs; i++) {
        struct ref_ckpt_seq *s = &ck->seqs[i];
        s->cells = &ck->cells[used];
        for (int c = 0; c < ck->n_cells; c++) {
            if (cell_seq[c] != s->seq) {
                continue;
            }
            if (used == ck->n_cells) {
                return -1;
            }
            ck->cells[used++] = c;
            s->n_key++;
        }
    }
    return 0;
}

int ref_ckpt_begin_step(struct ref_checkpoints *ck, const int32_t *row_seq, const int32_t *row_pos, int n_rows,
                        const int32_t *cell_seq, int n_cells, size_t gather_floats) {
    if (ck == NULL || ck->writer == NULL) {
        return 0;
    }
    ck->n_rows = n_rows;
    ck->n_cells = n_cells;
    ck->seqs = malloc((size_t) n_rows * sizeof *ck->seqs);
    ck->cells = malloc((size_t) n_cells * sizeof *ck->cells);
    ck->gather = malloc(gather_floats * sizeof *ck->gather);
    if (ck->seqs == NULL || ck->cells == NULL || ck->gather == NULL) {
        return -1;
    }
    find_sequences(ck, row_seq, row_pos);
    return find_cells(ck, cell_seq);
}

void ref_ckpt_end_step(struct ref_checkpoints *ck) {
    if (ck == NULL) {
        return;
    }
    free(ck->seqs);
    free(ck->cells);
    free(ck->gather);
    ck->seqs = NULL;
    ck->cells = NULL;
    ck->gather = NULL;
    ck->n_seqs = 0;
}

/* ---- writing ----------------------------------------------------------- */

bool ref_ckpt_wanted(const struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer) {
    return ck != NULL && ck->writer != NULL && !ck->failed && llorch_ckpt_selection_has(ck->selection, kind, layer);
}

/* Writes one sequence's part of a tensor. A run of one sequence writes
 * plain tensors (in_seq false): its files are named and described as
 * before sequences existed. */
static void write_tensor(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer,
                         const struct ref_ckpt_seq *s, const float *data, int n_key, int n_dims, const int64_t *shape) {
    struct llorch_ckpt_tensor t = {
        .kind = kind,
        .layer = layer,
        .step = ck->step,
        .pos_start = s->pos_start,
        .n_pos = s->n_rows,
        .n_key = n_key,
        .n_dims = n_dims,
        .dtype = LLORCH_CKPT_DTYPE_F32,
        .data = data,
        .in_seq = ck->in_seq,
        .seq = ck->in_seq ? s->seq : 0,
        .cells = ck->in_seq && n_key > 0 ? s->cells : NULL,
    };
    for (int i = 0; i < n_dims; i++) {
        t.shape[i] = shape[i];
    }
    if (!ck->failed && llorch_ckpt_writer_write(ck->writer, &t) != 0) {
        ck->failed = true;
    }
}

/* A (T, tail...) tensor: each sequence's rows are consecutive, so its part
 * is a slice of the buffer. */
static void write_token_rows(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data,
                             int n_tail, const int64_t *tail) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    size_t row_floats = 1;
    for (int i = 0; i < n_tail; i++) {
        row_floats *= (size_t) tail[i];
    }
    for (int i = 0; i < ck->n_seqs; i++) {
        const struct ref_ckpt_seq *s = &ck->seqs[i];
        int64_t                    shape[4] = {s->n_rows};
        memcpy(&shape[1], tail, (size_t) n_tail * sizeof *tail);
        write_tensor(ck, kind, layer, s, &data[(size_t) s->row * row_floats], 0, n_tail + 1, shape);
    }
}

void ref_ckpt_rows(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int width) {
    int64_t tail[1] = {width};
    write_token_rows(ck, kind, layer, data, 1, tail);
}

void ref_ckpt_heads(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim) {
    int64_t tail[2] = {n_heads, head_dim};
    write_token_rows(ck, kind, layer, data, 2, tail);
}

void ref_ckpt_cache(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    size_t row = (size_t) n_heads * head_dim;
    for (int i = 0; i < ck->n_seqs; i++) {
        const struct ref_ckpt_seq *s = &ck->seqs[i];
        for (int j = 0; j < s->n_key; j++) {
            memcpy(&ck->gather[j * row], &data[(size_t) s->cells[j] * row], row * sizeof(float));
        }
        int64_t shape[3] = {s->n_key, n_heads, head_dim};
        write_tensor(ck, kind, layer, s, ck->gather, s->n_key, 3, shape);
    }
}

void ref_ckpt_scores(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data,
                     int n_heads) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    for (int i = 0; i < ck->n_seqs; i++) {
        const struct ref_ckpt_seq *s = &ck->seqs[i];
        float                     *out = ck->gather;
        for (int h = 0; h < n_heads; h++) {
            for (int r = s->row; r < s->row + s->n_rows; r++) {
                const float *in = &data[((size_t) h * ck->n_rows + r) * ck->n_cells];
                for (int j = 0; j < s->n_key; j++) {
                    *out++ = in[s->cells[j]];
                }
            }
        }
        int64_t shape[3] = {n_heads, s->n_rows, s->n_key};
        write_tensor(ck, kind, layer, s, ck->gather, s->n_key, 3, shape);
    }
}

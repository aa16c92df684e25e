/*
 * ref_checkpoints.c - one llorch_ckpt_writer_write call per checkpoint.
 */
#include "ref_checkpoints.h"

bool ref_ckpt_wanted(const struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer) {
    return ck != NULL && ck->writer != NULL && !ck->failed && llorch_ckpt_selection_has(ck->selection, kind, layer);
}

/* Fills in what every tensor of this step shares, then writes it. */
static void write_tensor(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data,
                         int n_key, int n_dims, const int64_t *shape) {
    struct llorch_ckpt_tensor t = {
        .kind = kind,
        .layer = layer,
        .step = ck->step,
        .pos_start = ck->pos_start,
        .n_pos = ck->n_pos,
        .n_key = n_key,
        .n_dims = n_dims,
        .dtype = LLORCH_CKPT_DTYPE_F32,
        .data = data,
    };
    for (int i = 0; i < n_dims; i++) {
        t.shape[i] = shape[i];
    }
    if (llorch_ckpt_writer_write(ck->writer, &t) != 0) {
        ck->failed = true;
    }
}

void ref_ckpt_rows(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int width) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    int64_t shape[2] = {ck->n_pos, width};
    write_tensor(ck, kind, layer, data, 0, 2, shape);
}

void ref_ckpt_heads(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                    int head_dim) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    int64_t shape[3] = {ck->n_pos, n_heads, head_dim};
    write_tensor(ck, kind, layer, data, 0, 3, shape);
}

void ref_ckpt_cache(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_key,
                    int n_heads, int head_dim) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    int64_t shape[3] = {n_key, n_heads, head_dim};
    write_tensor(ck, kind, layer, data, n_key, 3, shape);
}

void ref_ckpt_scores(struct ref_checkpoints *ck, enum llorch_ckpt_kind kind, int layer, const float *data, int n_heads,
                     int n_key) {
    if (!ref_ckpt_wanted(ck, kind, layer)) {
        return;
    }
    int64_t shape[3] = {n_heads, ck->n_pos, n_key};
    write_tensor(ck, kind, layer, data, n_key, 3, shape);
}

/*
 * read_residual.c - a dump's residual stream by layer and absolute
 * position: what an engine fed by that dump uses as each layer's input
 * (docs/FORMAT.md, "Fed runs").
 *
 * The rows of one (checkpoint, layer) may lie in one file (a run of one
 * step), one per step (token by token, -ub), in files that keep only some
 * positions ("positions"), or once per sequence (format version 3). Each
 * asked position takes its row from the latest file that holds it, as
 * compare lines rows up (docs/COMPARE.md): the highest step, then the last
 * of that step in the manifest. Only the files that provide a row are
 * read, each once, and each is checked against the manifest (dtype,
 * shape, crc32) by llorch_ckpt_dump_load.
 *
 * The work is bounded by the request and by what the manifest holds, never
 * by a declared shape: consecutive rows are intersected with the asked
 * range arithmetically, and "positions" lists were read from the manifest.
 */
#include "error.h"
#include "read_internal.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where one asked row comes from. */
struct source {
    size_t  entry; /* index into the dump's entries; SIZE_MAX: none yet */
    int64_t row;   /* its row in that file                              */
    int64_t out;   /* the asked row it fills (index into out)           */
};

int llorch_ckpt_residual_source(enum llorch_ckpt_residual where, int layer, const char **checkpoint, int *src_layer) {
    switch (where) {
        case LLORCH_CKPT_RESIDUAL_LAYER_INPUT:
            *checkpoint = layer == 0 ? "embd" : "l_out";
            *src_layer = layer == 0 ? -1 : layer - 1;
            return 0;
        case LLORCH_CKPT_RESIDUAL_FFN_INPUT:
            *checkpoint = "ffn_inp";
            *src_layer = layer;
            return 0;
    }
    return -1;
}

/* "l_out of layer 1 (the input of layer 2)", "embd (the input of layer
 * 0)", "ffn_inp of layer 3 (the FFN's input)", with the sequence where
 * the dump has several. */
static void describe(char *buf, size_t size, const llorch_ckpt_dump *d, enum llorch_ckpt_residual where, int layer,
                     int seq) {
    const char *name = "";
    int         src = 0;
    char        seq_text[48] = "";
    llorch_ckpt_residual_source(where, layer, &name, &src);
    if (d->n_sequences > 0) {
        snprintf(seq_text, sizeof seq_text, " of sequence %d", seq);
    }
    if (where == LLORCH_CKPT_RESIDUAL_FFN_INPUT) {
        snprintf(buf, size, "ffn_inp of layer %d%s (the FFN's input)", layer, seq_text);
    } else if (layer == 0) {
        snprintf(buf, size, "embd%s (the input of layer 0)", seq_text);
    } else {
        snprintf(buf, size, "l_out of layer %d%s (the input of layer %d)", src, seq_text, layer);
    }
}

/* Whether entry e holds rows of the residual asked for. */
static bool entry_matches(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e, const char *name, int layer,
                          int seq) {
    return strcmp(e->checkpoint, name) == 0 && e->layer == layer && (d->n_sequences == 0 || e->seq == seq);
}

/* The entry's layout must be (token, channel) of n_embd floats. */
static int check_layout(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e, int64_t n_embd, char *err,
                        size_t err_size) {
    char path[4096];
    llorch_read_join_path(path, sizeof path, d->dir ? d->dir : d->name, e->file);
    if (e->raw || e->n_dims != 2 || strcmp(e->axes[0], "token") != 0 || strcmp(e->axes[1], "channel") != 0) {
        llorch_set_error(err, err_size, "%s: %s is not laid out (token, channel); it cannot feed a layer", path,
                         e->checkpoint);
        return -1;
    }
    if (e->shape[1] != n_embd) {
        llorch_set_error(err, err_size, "%s: %lld channels, but the model's n_embd is %lld", path,
                         (long long) e->shape[1], (long long) n_embd);
        return -1;
    }
    if (e->dtype != LLORCH_CKPT_DTYPE_F32 && e->dtype != LLORCH_CKPT_DTYPE_F16) {
        llorch_set_error(err, err_size, "%s: dtype %s; the residual stream must be float32 or float16", path,
                         llorch_ckpt_dtype_name(e->dtype));
        return -1;
    }
    return 0;
}

/* Later wins: a higher step, then a later entry (entries are visited in
 * manifest order, so a later one of the same step replaces). */
static void offer(struct source *s, const llorch_ckpt_dump *d, size_t entry, int64_t row, int64_t out) {
    if (s->entry == SIZE_MAX || d->entries[entry].step >= d->entries[s->entry].step) {
        s->entry = entry;
        s->row = row;
        s->out = out;
    }
}

/* Offers entry i's rows inside [pos_start, pos_start + n_pos). */
static void offer_entry(struct source *src, const llorch_ckpt_dump *d, size_t i, int64_t pos_start, int64_t n_pos) {
    const struct llorch_ckpt_entry *e = &d->entries[i];
    int64_t                         end = pos_start + n_pos;
    if (e->positions) {
        for (int64_t r = 0; r < e->n_pos; r++) {
            if (e->positions[r] >= pos_start && e->positions[r] < end) {
                offer(&src[e->positions[r] - pos_start], d, i, r, e->positions[r] - pos_start);
            }
        }
        return;
    }
    int64_t lo = e->pos_start > pos_start ? e->pos_start : pos_start;
    int64_t hi = e->pos_start + e->n_pos < end ? e->pos_start + e->n_pos : end;
    for (int64_t p = lo; p < hi; p++) {
        offer(&src[p - pos_start], d, i, p - e->pos_start, p - pos_start);
    }
}

/* The positions the dump holds of this residual, as "0-7" (lowest-highest)
 * or "none", for the message. */
static void held_range(char *buf, size_t size, const llorch_ckpt_dump *d, const char *name, int layer, int seq) {
    int64_t lo = INT64_MAX, hi = -1;
    for (size_t i = 0; i < d->n_entries; i++) {
        const struct llorch_ckpt_entry *e = &d->entries[i];
        if (!entry_matches(d, e, name, layer, seq) || e->n_pos == 0) {
            continue;
        }
        int64_t first = e->positions ? e->positions[0] : e->pos_start;
        int64_t last = e->positions ? e->positions[e->n_pos - 1] : e->pos_start + e->n_pos - 1;
        lo = first < lo ? first : lo;
        hi = last > hi ? last : hi;
    }
    if (hi < 0) {
        snprintf(buf, size, "none");
    } else {
        snprintf(buf, size, "%lld-%lld", (long long) lo, (long long) hi);
    }
}

/* One line: which rows are missing (the first run of them and how many in
 * all), what the dump holds, how to fix it. */
static int report_missing(const llorch_ckpt_dump *d, const struct source *src, int64_t pos_start, int64_t n_pos,
                          enum llorch_ckpt_residual where, int layer, int seq, char *err, size_t err_size) {
    const char *name = "";
    int         src_layer = 0;
    char        what[160], held[64], at[64];
    int64_t     first = -1, last = -1, missing = 0;
    llorch_ckpt_residual_source(where, layer, &name, &src_layer);
    for (int64_t r = 0; r < n_pos; r++) {
        if (src[r].entry == SIZE_MAX) {
            missing++;
            first = first < 0 ? r : first;
            last = last == r - 1 || last < 0 ? r : last;
        }
    }
    describe(what, sizeof what, d, where, layer, seq);
    held_range(held, sizeof held, d, name, src_layer, seq);
    if (strcmp(held, "none") == 0) {
        llorch_set_error(err, err_size,
                         "%s: holds no %s; make the reference with --checkpoints all (or at least embd,l_out,ffn_inp) "
                         "over these tokens",
                         d->name, what);
        return -1;
    }
    if (last > first) {
        snprintf(at, sizeof at, "positions %lld-%lld", (long long) (pos_start + first), (long long) (pos_start + last));
    } else {
        snprintf(at, sizeof at, "position %lld", (long long) (pos_start + first));
    }
    llorch_set_error(err, err_size,
                     "%s: no %s at %s (%lld of the %lld positions %lld-%lld asked are missing); it holds positions %s; "
                     "make the reference over the same tokens (prompt and generated)",
                     d->name, what, at, (long long) missing, (long long) n_pos, (long long) pos_start,
                     (long long) (pos_start + n_pos - 1), held);
    return -1;
}

static int source_order(const void *pa, const void *pb) {
    const struct source *a = pa, *b = pb;
    if (a->entry != b->entry) {
        return a->entry < b->entry ? -1 : 1;
    }
    return (a->out > b->out) - (a->out < b->out);
}

static float f32_at(const unsigned char *p) {
    uint32_t bits = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
    float    f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Copies the rows of the sources s[0..n-1], which all come from one entry. */
static int copy_rows(const llorch_ckpt_dump *d, const struct source *s, size_t n, int64_t n_embd, float *out, char *err,
                     size_t err_size) {
    llorch_ckpt_array *a = llorch_ckpt_dump_load(d, s[0].entry, err, err_size);
    if (!a) {
        return -1;
    }
    size_t               bytes;
    const unsigned char *data = llorch_ckpt_array_data(a, &bytes);
    bool                 f16 = llorch_ckpt_array_dtype(a) == LLORCH_CKPT_DTYPE_F16;
    for (size_t k = 0; k < n; k++) {
        float  *dst = &out[(size_t) s[k].out * (size_t) n_embd];
        int64_t base = s[k].row * n_embd; /* the load checked the shape: in range */
        for (int64_t c = 0; c < n_embd; c++) {
            dst[c] = f16 ? (float) llorch_ckpt_array_value(a, base + c) : f32_at(&data[(size_t) (base + c) * 4]);
        }
    }
    llorch_ckpt_array_free(a);
    return 0;
}

/* The arguments, against the dump: -1 with a message when they cannot be
 * served at all. */
static int check_request(const llorch_ckpt_dump *d, int layer, enum llorch_ckpt_residual where, int seq,
                         int64_t pos_start, int64_t n_pos, const float *out, char *err, size_t err_size) {
    const struct llorch_ckpt_model *m = &d->model;
    int                             max_layer = m->n_layer < 0                              ? INT32_MAX
                                                : where == LLORCH_CKPT_RESIDUAL_LAYER_INPUT ? m->n_layer
                                                                                            : m->n_layer - 1;
    if (where != LLORCH_CKPT_RESIDUAL_LAYER_INPUT && where != LLORCH_CKPT_RESIDUAL_FFN_INPUT) {
        llorch_set_error(err, err_size, "%s: unknown residual %d (LAYER_INPUT or FFN_INPUT)", d->name, (int) where);
        return -1;
    }
    if (layer < 0 || layer > max_layer) {
        llorch_set_error(err, err_size, "%s: layer %d is out of range: the model has layers 0-%d", d->name, layer,
                         m->n_layer - 1);
        return -1;
    }
    if (pos_start < 0 || n_pos < 0 || pos_start > INT32_MAX || n_pos > INT32_MAX || (n_pos > 0 && !out)) {
        llorch_set_error(err, err_size, "%s: positions %lld + %lld rows: not a range of token positions", d->name,
                         (long long) pos_start, (long long) n_pos);
        return -1;
    }
    if (m->n_embd <= 0) {
        llorch_set_error(err, err_size, "%s: the manifest gives no model.n_embd: the rows' width is unknown", d->name);
        return -1;
    }
    if ((uint64_t) n_pos * (uint64_t) m->n_embd > SIZE_MAX / sizeof(float)) {
        llorch_set_error(err, err_size, "%s: %lld rows of %d floats do not fit in memory", d->name, (long long) n_pos,
                         m->n_embd);
        return -1;
    }
    if (d->n_sequences > 0 && seq < 0) {
        llorch_set_error(err, err_size, "%s: holds %zu sequences (format version 3); say which sequence's rows (seq)",
                         d->name, d->n_sequences);
        return -1;
    }
    bool known = d->n_sequences == 0;
    for (size_t i = 0; i < d->n_sequences && !known; i++) {
        known = d->sequences[i].seq == seq;
    }
    if (!known) {
        llorch_set_error(err, err_size, "%s: has no sequence %d; its sequences are 0-%zu", d->name, seq,
                         d->n_sequences - 1);
        return -1;
    }
    return 0;
}

int llorch_ckpt_dump_residual(const llorch_ckpt_dump *d, int layer, enum llorch_ckpt_residual where, int seq,
                              int64_t pos_start, int64_t n_pos, float *out, char *err, size_t err_size) {
    const char *name = "";
    int         src_layer = 0;
    if (check_request(d, layer, where, seq, pos_start, n_pos, out, err, err_size) != 0) {
        return -1;
    }
    llorch_ckpt_residual_source(where, layer, &name, &src_layer);
    struct source *src = malloc((size_t) (n_pos > 0 ? n_pos : 1) * sizeof *src);
    if (!src) {
        llorch_set_error(err, err_size, "%s: out of memory for %lld rows", d->name, (long long) n_pos);
        return -1;
    }
    for (int64_t r = 0; r < n_pos; r++) {
        src[r] = (struct source){SIZE_MAX, 0, r};
    }
    int rc = 0;
    for (size_t i = 0; i < d->n_entries && rc == 0; i++) {
        if (entry_matches(d, &d->entries[i], name, src_layer, seq)) {
            rc = check_layout(d, &d->entries[i], d->model.n_embd, err, err_size);
            if (rc == 0) {
                offer_entry(src, d, i, pos_start, n_pos);
            }
        }
    }
    for (int64_t r = 0; r < n_pos && rc == 0; r++) {
        if (src[r].entry == SIZE_MAX) {
            rc = report_missing(d, src, pos_start, n_pos, where, layer, seq, err, err_size);
        }
    }
    if (rc == 0) {
        llorch_sort(src, (size_t) n_pos, sizeof *src, source_order);
        for (size_t k = 0, next; k < (size_t) n_pos && rc == 0; k = next) {
            for (next = k + 1; next < (size_t) n_pos && src[next].entry == src[k].entry; next++) {
            }
            rc = copy_rows(d, &src[k], next - k, d->model.n_embd, out, err, err_size);
        }
    }
    free(src);
    return rc;
}

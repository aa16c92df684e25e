/* capture_copy.c - the data phase of a capture point: each planned tensor
 * is gathered and converted into a buffer of the writer queue (the only
 * work on the compute thread) and held (capture_sink.c) until the tensors
 * of earlier nodes are in. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "convert.h"
#include "util.h"

#include <ggml-backend.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "Qcur-0" seen again in this step becomes "Qcur-0#1", "Qcur-0#2", ... */
static void unique_graph_name(llorch_capture *cap, const char *name, char *out, size_t size) {
    for (int i = 0; i < cap->n_graph_names; i++) {
        if (strcmp(cap->graph_names[i].name, name) == 0) {
            snprintf(out, size, "%s#%d", name, cap->graph_names[i].count++);
            return;
        }
    }
    struct graph_name_count *grown = realloc(cap->graph_names, (size_t) (cap->n_graph_names + 1) * sizeof *grown);
    if (grown != NULL) {
        cap->graph_names = grown;
        snprintf(grown[cap->n_graph_names].name, sizeof grown->name, "%s", name);
        grown[cap->n_graph_names++].count = 1;
    }
    snprintf(out, size, "%s", name);
}

/* The row set's positions and cells, kept after the data in the item's
 * buffer (4-byte aligned, as every dtype's size is a multiple of 2): the
 * item outlives the step. */
static void keep_rows(struct llorch_queue_item *item, const struct llorch_layout *l, const struct llorch_row_set *s,
                      int32_t n_tokens) {
    struct llorch_ckpt_tensor *d = &item->tensor;
    int32_t                   *ints = (int32_t *) (void *) ((char *) item->data + (item->bytes + 3) / 4 * 4);
    d->in_seq = s->in_seq;
    d->seq = s->seq;
    d->pos_start = s->pos_start;
    /* one sequence: a file without token rows (the cache) still counts the step's */
    d->n_pos = s->in_seq || (l->token_axis >= 0 && s->positions != NULL) ? s->n_rows : n_tokens;
    if (l->token_axis >= 0 && s->positions != NULL) {
        memcpy(ints, s->positions, (size_t) s->n_rows * sizeof *ints);
        d->positions = ints;
        ints += s->n_rows;
    }
    if (l->key_axis >= 0 && s->cells != NULL) {
        memcpy(ints, s->cells, (size_t) s->n_key * sizeof *ints);
        d->cells = ints;
    }
}

/* The name of the device buffer t is read from (an RPC server, a GPU), or
 * NULL for host memory. */
static const char *device_of(const struct ggml_tensor *t, char *buf, size_t size) {
    const struct ggml_tensor *base = t->view_src != NULL ? t->view_src : t;
    if (base->buffer == NULL || ggml_backend_buffer_is_host(base->buffer)) {
        return NULL;
    }
    snprintf(buf, size, "%s", ggml_backend_buffer_name(base->buffer));
    return buf;
}

static struct llorch_queue_item *new_item(llorch_capture *cap, const struct ggml_tensor *t,
                                          const struct llorch_plan_item *pi, const struct llorch_layout *l,
                                          const struct llorch_row_set *s, enum llorch_ckpt_dtype dtype) {
    struct llorch_queue_item *item = calloc(1, sizeof *item);
    size_t                    bytes = llorch_convert_size(&l->g, dtype);
    size_t ints = (s->positions != NULL ? (size_t) s->n_rows : 0) + (s->cells != NULL ? (size_t) s->n_key : 0);
    size_t room = (bytes + 3) / 4 * 4 + ints * sizeof(int32_t);
    if (item != NULL) {
        item->data = cap->queue != NULL ? llorch_queue_buffer(cap->queue, room, &item->chunk) : malloc(room);
    }
    if (item == NULL || item->data == NULL) {
        free(item);
        llorch_capture_set_error(cap, "out of memory copying %s (%zu bytes); lower the model size or the selection",
                                 t->name, bytes);
        return NULL;
    }
    item->bytes = bytes;
    item->node = pi->node;
    if (pi->kind == LLORCH_CKPT_GRAPH) {
        unique_graph_name(cap, t->name, item->graph_name, sizeof item->graph_name);
    } else {
        snprintf(item->graph_name, sizeof item->graph_name, "%s", t->name);
    }
    snprintf(item->graph_op, sizeof item->graph_op, "%s", ggml_op_desc(t));
    struct llorch_ckpt_tensor *d = &item->tensor;
    d->kind = pi->kind;
    d->layer = pi->layer;
    d->step = cap->step;
    keep_rows(item, l, s, cap->n_tokens);
    d->n_key = l->n_key;
    d->n_dims = l->n_dims;
    for (int i = 0; i < l->n_dims; i++) {
        d->shape[i] = l->g.ne[l->n_dims - 1 - i]; /* numpy order: ne reversed */
    }
    d->dtype = dtype;
    d->data = item->data;
    d->graph_name = item->graph_name;
    d->graph_op = item->graph_op;
    d->device = device_of(t, item->device, sizeof item->device);
    if (d->device != NULL && !cap->report.writer_during_decode && cap->queue != NULL) {
        cap->report.writer_during_decode = true; /* a device computes: the cores are free */
        llorch_queue_set_eager(cap->queue, true);
    }
    d->axes = l->axes;
    d->raw = l->raw;
    return item;
}

/* The layout of t for row set s: its rows only (--positions, one
 * sequence's) and, with several sequences, its cells only. */
static int set_layout(llorch_capture *cap, const struct ggml_tensor *t, const struct llorch_plan_item *pi,
                      const struct llorch_row_set *s, struct llorch_layout *l) {
    char    why[256];
    int32_t n_key = s->in_seq ? cap->n_cells : s->n_key; /* the window holds every filled cell */
    if (llorch_convert_layout(t, pi->kind, cap->n_tokens, n_key, cap->p.raw, l, why, sizeof why) != 0) {
        llorch_capture_set_error(cap,
                                 "%s; decode at most n_ubatch tokens per step (llorch_capture_begin_step) and mark "
                                 "every token of the batch as an output",
                                 why);
        return -1;
    }
    if (l->token_axis >= 0 && (s->in_seq || s->n_rows < cap->n_tokens)) { /* gather the kept rows only */
        l->g.index[l->token_axis] = s->rows;
        l->g.ne[l->token_axis] = s->n_rows;
    }
    if (l->key_axis >= 0 && s->in_seq) {
        l->g.index[l->key_axis] = s->cells;
        l->g.ne[l->key_axis] = s->n_key;
        l->n_key = s->n_key;
    }
    if (!llorch_convert_supported(t, &l->g)) {
        llorch_capture_set_error(cap, "%s has type %s, which this ggml build cannot convert to f32", t->name,
                                 ggml_type_name(t->type));
        return -1;
    }
    return 0;
}

/* Several sequences: a score on another sequence's cell means that the
 * cells are not where the capture holds them; nothing is written then. */
static int check_cells(llorch_capture *cap, const struct ggml_tensor *t, const void *host,
                       const struct llorch_row_set *s, enum llorch_ckpt_kind kind) {
    int32_t cell;
    if (!s->in_seq || kind != LLORCH_CKPT_KQ_SOFT_MAX || llorch_capture_scores_in_seq(cap, t, host, s, &cell)) {
        return 0;
    }
    llorch_capture_set_error(cap,
                             "%s: sequence %d attends to cache cell %d, which holds sequence %d position %d by the "
                             "capture's count; the cache was edited, shared or not unified, which the capture "
                             "of several sequences does not follow",
                             t->name, s->seq, cell, cap->cell_seq[cell], cap->cell_pos[cell]);
    return -1;
}

/* The recurrent state is the whole row of llama.cpp's state tensor that
 * the layer's copies wrote (identify_state.c): one copy, or several that
 * each write a part of the row (kimi-linear's three convolution windows).
 * The row is read through a tensor of its own over the state's memory,
 * kept in cap->state_rows (one per item: the fetch knows tensors by their
 * address). */
static const struct ggml_tensor *item_tensor(llorch_capture *cap, const struct llorch_plan_item *pi) {
    const struct ggml_tensor *t = cap->step_t[pi->node];
    const struct ggml_tensor *leaf = t->view_src;
    bool                      state = pi->kind == LLORCH_CKPT_CACHE_R || pi->kind == LLORCH_CKPT_CACHE_S;
    if (!state || leaf == NULL || leaf->ne[2] * leaf->ne[3] != 1 || leaf->nb[1] == 0 || ggml_nbytes(t) == 0) {
        return t;
    }
    size_t i = (size_t) (pi - cap->sched->items);
    if (i >= cap->n_state_rows) {
        size_t              n = cap->sched->n_items > 0 ? (size_t) cap->sched->n_items : 1;
        struct ggml_tensor *grown = realloc(cap->state_rows, n * sizeof *grown);
        if (grown == NULL) {
            return t;
        }
        cap->state_rows = grown;
        cap->n_state_rows = n;
    }
    size_t              first = t->view_offs / leaf->nb[1], last = (t->view_offs + ggml_nbytes(t) - 1) / leaf->nb[1];
    struct ggml_tensor *row = &cap->state_rows[i];
    *row = *leaf;
    row->ne[1] = (int64_t) (last - first + 1);
    row->data = (char *) leaf->data + first * leaf->nb[1];
    row->view_src = (struct ggml_tensor *) leaf;
    row->view_offs = first * leaf->nb[1];
    row->op = t->op; /* the manifest names the last copy, its op and its name */
    snprintf(row->name, sizeof row->name, "%s", t->name);
    return row;
}

static void capture_set(llorch_capture *cap, const struct llorch_plan_item *pi, const struct llorch_row_set *s) {
    const struct ggml_tensor *t = item_tensor(cap, pi);
    struct llorch_layout      l;
    if (set_layout(cap, t, pi, s, &l) != 0) {
        return;
    }
    bool                      native = cap->p.native_dtype && cap->p.sink != LLORCH_CAPTURE_SINK_STATS;
    const void               *host = llorch_fetch_host(cap->fetch, t);
    struct llorch_queue_item *item = new_item(cap, t, pi, &l, s, llorch_convert_dtype(t->type, native));
    if (item == NULL || host == NULL || check_cells(cap, t, host, s, pi->kind) != 0) {
        if (item != NULL) {
            llorch_capture_drop_item(cap, item);
        }
        return;
    }
    llorch_convert_gather(t, host, &l.g, item->tensor.dtype, item->data);
    cap->report.tensors++;
    cap->report.bytes += item->bytes;
    cap->report.kind_tensors[pi->kind]++;
    cap->report.kind_bytes[pi->kind] += item->bytes;
    if (pi->kind != LLORCH_CKPT_GRAPH && pi->layer >= -1 && pi->layer < cap->n_layer) {
        cap->ever[llorch_capture_ever_index(cap, pi->kind, pi->layer)] = true;
    }
    llorch_capture_hold(cap, item);
}

/* An item read after the graph whose memory llama.cpp did not keep (the
 * graph was not the one marked): nothing is read, the step notes it, and
 * later steps are captured at graph splits. */
static bool output_lost(llorch_capture *cap, const struct llorch_plan_item *pi) {
    if (!pi->output || llorch_capture_output_intact(cap->step_t[pi->node])) {
        return false;
    }
    char reason[256];
    snprintf(reason, sizeof reason,
             "not captured in step %d: llama.cpp did not keep %s as a graph output; later steps use graph splits",
             cap->step, cap->step_t[pi->node]->name);
    llorch_capture_note_missing(cap, pi->kind, pi->layer, reason);
    cap->outputs_off = true;
    return true;
}

/* One file per row set that keeps rows (one per sequence of the step); a
 * graph tensor is the whole step's, written once, under the first. */
static void capture_item(llorch_capture *cap, const struct llorch_plan_item *pi) {
    bool once = pi->kind == LLORCH_CKPT_GRAPH;
    if (output_lost(cap, pi)) {
        return;
    }
    for (int i = 0; i < cap->n_sets && !cap->failed; i++) {
        if (cap->sets[i].n_rows > 0) {
            capture_set(cap, pi, &cap->sets[i]);
            if (once) {
                return;
            }
        }
    }
}

/* The point's tensors on devices, read in one round trip. */
static void fetch_point(llorch_capture *cap, int node) {
    const struct llorch_schedule *sched = cap->sched;
    char                          err[256];
    llorch_fetch_reset(cap->fetch);
    for (int i = cap->next_item; i < sched->n_items && sched->items[i].at == node; i++) {
        if (llorch_fetch_add(cap->fetch, item_tensor(cap, &sched->items[i])) != 0) {
            llorch_capture_set_error(cap, "out of memory reading %s from its device",
                                     cap->step_t[sched->items[i].node]->name);
            return;
        }
    }
    if (llorch_fetch_run(cap->fetch, err, sizeof err) != 0) {
        llorch_capture_set_error(cap, "%s", err);
    }
}

/* The data phase of capture point `node`. */
void llorch_capture_point(llorch_capture *cap, int node) {
    const struct llorch_schedule *sched = cap->sched;
    fetch_point(cap, node);
    while (cap->next_item < sched->n_items && sched->items[cap->next_item].at == node && !cap->failed) {
        capture_item(cap, &sched->items[cap->next_item++]);
    }
    cap->next_point++;
    /* what is still to come has nodes at or after the next item's */
    int before = INT32_MAX;
    for (int i = cap->next_item; i < sched->n_items; i++) {
        before = sched->items[i].node < before ? sched->items[i].node : before;
    }
    llorch_capture_release_held(cap, before);
}

/* feed.c - a fed run (docs/FORMAT.md, "Fed runs"): after llama.cpp computes
 * a residual-stream tensor that a layer reads (embd: layer 0's input; l_out
 * of layer L-1: layer L's input; ffn_inp: the FFN's input), the capture
 * point at that node reads it as every capture point does, and then
 * overwrites it with the rows that the feed supplies for the step's token
 * positions, before any later node reads it.
 *
 * Why the write is safe (ggml_backend_sched_compute_splits, ggml-alloc):
 *  - Each fed tensor's node is a capture point of the plan (plan.c), so the
 *    callback answers true for it in the ask phase: the scheduler computes
 *    the nodes up to it as one graph view, synchronizes the backend and
 *    calls back with ask == false before it computes any later node. Every
 *    consumer of the tensor comes later in graph order, so none has run, in
 *    place or not; a consumer on another backend reads a copy that the
 *    scheduler makes when that backend's split starts, later still.
 *  - ggml-alloc gives a node's memory to another node only after that
 *    node's last reader has been allocated. The fed tensor's memory is
 *    therefore its own from its computation to its last reader (all
 *    later), and whatever held that memory before is dead: no node still
 *    to run reads it, and the capture has read every item in it by this
 *    point (plan.c ends their intervals here at the latest).
 *  - A marked graph output would be read after the graph, past the write:
 *    a fed run never marks (capture_outputs.c); it reads at splits.
 * Host memory is written in place, row by row (nb[1]); a device tensor
 * (RPC, CUDA) through ggml_backend_tensor_set, which returns once written.
 *
 * Nothing here runs without a feed: the callback asks llorch_capture_feed_at
 * only where cap->p.feed is set. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "util.h"

#include <ggml-backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

llorch_feed_mask llorch_capture_feed_mask(const llorch_capture *cap) {
    if (cap->p.feed == NULL) {
        return 0;
    }
    llorch_feed_mask m = (1u << LLORCH_CKPT_EMBD) | (1u << LLORCH_CKPT_L_OUT);
    return cap->p.feed_ffn_inp ? m | (1u << LLORCH_CKPT_FFN_INP) : m;
}

static const struct llorch_plan_feed *find_feed(const struct llorch_plan *plan, enum llorch_ckpt_kind kind, int layer) {
    for (int f = 0; f < plan->n_feeds; f++) {
        if (plan->feeds[f].kind == kind && plan->feeds[f].layer == layer) {
            return &plan->feeds[f];
        }
    }
    return NULL;
}

/* One fed tensor of a new plan: present, [n_embd, n_tokens], f32 or f16. */
static int check_one(llorch_capture *cap, const struct llorch_plan *plan, enum llorch_ckpt_kind kind, int layer) {
    const char                    *name = llorch_ckpt_kind_info(kind)->name;
    const struct llorch_plan_feed *f = find_feed(plan, kind, layer);
    if (f == NULL) {
        const char *why = llorch_identity_absent_reason(&plan->identity, kind, layer);
        llorch_capture_set_error(cap,
                                 "cannot feed %s of layer %d: the %s graph of this llama.cpp has none (%s); feed "
                                 "without it or use another model",
                                 name, layer, cap->arch, why != NULL ? why : "not found by its dataflow");
        return -1;
    }
    const struct llorch_gnode *n = &plan->graph.nodes[f->node];
    if (n->ne[0] != cap->n_embd || n->ne[1] != plan->n_tokens || n->ne[2] != 1 || n->ne[3] != 1 ||
        (n->type != GGML_TYPE_F32 && n->type != GGML_TYPE_F16)) {
        llorch_capture_set_error(cap,
                                 "cannot feed %s of layer %d (%s): it is %s [%lld, %lld, %lld, %lld], not "
                                 "[n_embd %d, %d tokens] of f32 or f16; mark every token of the batch as an output",
                                 name, layer, n->name, ggml_type_name(n->type), (long long) n->ne[0],
                                 (long long) n->ne[1], (long long) n->ne[2], (long long) n->ne[3], cap->n_embd,
                                 plan->n_tokens);
        return -1;
    }
    return 0;
}

int llorch_capture_feed_check_plan(llorch_capture *cap, const struct llorch_plan *plan) {
    if (cap->p.feed == NULL) {
        return 0;
    }
    int rc = check_one(cap, plan, LLORCH_CKPT_EMBD, -1);
    for (int il = 0; il < cap->n_layer && rc == 0; il++) {
        if (il < cap->n_layer - 1) {
            rc = check_one(cap, plan, LLORCH_CKPT_L_OUT, il);
        }
        if (rc == 0 && cap->p.feed_ffn_inp) {
            rc = check_one(cap, plan, LLORCH_CKPT_FFN_INP, il);
        }
    }
    return rc;
}

bool llorch_capture_feed_at(const llorch_capture *cap, int i) {
    const struct llorch_plan *plan = cap->plan;
    return cap->next_feed < plan->n_feeds && plan->feeds[cap->next_feed].node == i;
}

/* Scratch for n rows: the feed's f32 rows, the same in the tensor's type
 * (f16 at most as large), and the positions. */
static int grow_scratch(llorch_capture *cap, int32_t n) {
    if ((size_t) n <= cap->feed_cap) {
        return 0;
    }
    size_t elems = (size_t) n * (size_t) cap->n_embd;
    float *rows = realloc(cap->feed_rows, elems * sizeof *rows);
    if (rows != NULL) {
        cap->feed_rows = rows;
    }
    void *bytes = rows != NULL ? realloc(cap->feed_bytes, elems * sizeof(ggml_fp16_t)) : NULL;
    if (bytes != NULL) {
        cap->feed_bytes = bytes;
    }
    int32_t *pos = bytes != NULL ? realloc(cap->feed_pos, (size_t) n * sizeof *pos) : NULL;
    if (pos == NULL) {
        llorch_capture_set_error(cap, "out of memory feeding %d rows", n);
        return -1;
    }
    cap->feed_pos = pos;
    cap->feed_cap = (size_t) n;
    return 0;
}

/* The rows in t's type: the f32 rows themselves, or converted to f16. */
static const void *rows_in_type(llorch_capture *cap, const struct ggml_tensor *t, size_t elems) {
    if (t->type == GGML_TYPE_F32) {
        return cap->feed_rows;
    }
    ggml_fp32_to_fp16_row(cap->feed_rows, cap->feed_bytes, (int64_t) elems);
    return cap->feed_bytes;
}

/* Writes n rows of row_bytes each into t: row i at byte offset i * nb[1]
 * (the elements of a row are contiguous: nb[0] is the type's size). */
static void write_rows(struct ggml_tensor *t, const void *src, int32_t n, size_t row_bytes) {
    const char *from = src;
    bool        host = ggml_backend_buffer_is_host(t->buffer);
    if (!host && t->nb[1] == row_bytes) { /* one device round trip for the whole tensor */
        ggml_backend_tensor_set(t, from, 0, row_bytes * (size_t) n);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        if (host) {
            memcpy((char *) t->data + (size_t) i * t->nb[1], from + (size_t) i * row_bytes, row_bytes);
        } else {
            ggml_backend_tensor_set(t, from + (size_t) i * row_bytes, (size_t) i * t->nb[1], row_bytes);
        }
    }
}

/* One fed tensor of the step: the feed's rows for its positions, in. */
static void feed_one(llorch_capture *cap, const struct llorch_plan_feed *f, struct ggml_tensor *t) {
    int32_t n = cap->n_tokens;
    if (t->ne[0] != cap->n_embd || t->ne[1] != n || t->ne[2] != 1 || t->ne[3] != 1 ||
        (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) || t->nb[0] != ggml_type_size(t->type) ||
        t->buffer == NULL) {
        llorch_capture_set_error(cap, "cannot feed %s (%s layer %d): not [n_embd %d, %d tokens] of f32 or f16 rows",
                                 t->name, llorch_ckpt_kind_info(f->kind)->name, f->layer, cap->n_embd, n);
        return;
    }
    if (grow_scratch(cap, n) != 0) {
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        cap->feed_pos[i] = cap->pos_start + i; /* one sequence: token i of the micro-batch */
    }
    char err[512] = "";
    if (cap->p.feed(cap->p.feed_ctx, f->kind, f->layer, cap->feed_pos, n, cap->feed_rows, err, sizeof err) != 0) {
        llorch_capture_set_error(cap, "%s", err[0] != '\0' ? err : "the feed supplied no rows");
        return;
    }
    size_t elems = (size_t) n * (size_t) cap->n_embd;
    write_rows(t, rows_in_type(cap, t, elems), n, (size_t) cap->n_embd * ggml_type_size(t->type));
    cap->report.fed_tensors++;
}

void llorch_capture_feed_point(llorch_capture *cap, int node) {
    while (!cap->failed && llorch_capture_feed_at(cap, node)) {
        feed_one(cap, &cap->plan->feeds[cap->next_feed++], (struct ggml_tensor *) cap->step_t[node]);
    }
}

void llorch_capture_feed_end_step(llorch_capture *cap) {
    if (cap->p.feed == NULL || cap->plan == NULL || cap->failed || cap->stop) {
        return;
    }
    if (cap->next_feed < cap->plan->n_feeds) {
        const struct llorch_plan_feed *f = &cap->plan->feeds[cap->next_feed];
        llorch_capture_set_error(cap,
                                 "step %d: %s of layer %d was not fed: the graph differs from the prepared one at "
                                 "node %d; a fed run needs every step's graph to have the prepared structure",
                                 cap->step, llorch_ckpt_kind_info(f->kind)->name, f->layer, cap->diverged_at);
    }
}

void llorch_capture_feed_free(llorch_capture *cap) {
    void *const owned[] = {cap->feed_rows, cap->feed_bytes, cap->feed_pos};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
}

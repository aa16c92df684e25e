/* capture_callback.c - the eval callback: records each node of a step,
 * checks it against the plan (by pointer while the graph is the plan's,
 * else by structure) and answers true at the plan's capture points; and
 * the abort callback that ends a preparing decode once the graph is
 * recorded, or any decode after an error or a stop request. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* While preparing: the whole graph is recorded. The number of nodes is
 * known where llama.cpp asked about them before allocating the graph;
 * elsewhere llama.cpp's own outputs (logits, embeddings) end its graphs. */
static bool learned(const llorch_capture *cap) {
    return cap->pass_nodes > 0 ? cap->rec.n_nodes >= cap->pass_nodes : cap->saw_output;
}

bool llorch_capture_abort_callback(void *data) {
    llorch_capture *cap = data;
    if (cap->stop || cap->failed || (cap->learning && learned(cap))) {
        return true;
    }
    return cap->prev_abort != NULL && cap->prev_abort(cap->prev_abort_data);
}

/* --- the callback ---------------------------------------------------------- */

/* True when t is the plan's node i with the plan's inputs: a reused graph,
 * or one rebuilt the same way into the same memory. Then its structure is
 * the plan's without recording it. */
static bool is_plan_node(const struct llorch_plan *plan, int i, const struct ggml_tensor *t) {
    const struct llorch_gnode *n = &plan->graph.nodes[i];
    if (n->t != t || n->op != t->op) {
        return false;
    }
    for (int s = 0; s < GGML_MAX_SRC; s++) {
        if ((s < n->n_src ? n->src_t[s] : NULL) != t->src[s]) {
            return false;
        }
    }
    return true;
}

/* Records t as this step's next node and checks it against the plan: by
 * pointers while they match, else by structure (node, name, inputs).
 * Returns its index, or -1 after an error. */
static int add_step_node(llorch_capture *cap, const struct ggml_tensor *t) {
    int i = cap->n_step;
    if (i >= cap->plan->graph.n_nodes && cap->diverged_at < 0) {
        llorch_capture_set_error(cap,
                                 "%s: the step computed more nodes than its plan, likely a graph more than "
                                 "llorch_capture_begin_step announced: give it every token of the llama_decode",
                                 t->name);
        return -1;
    }
    if (i == cap->cap_step) {
        int                        n = cap->cap_step != 0 ? cap->cap_step * 2 : 1024;
        const struct ggml_tensor **grown = realloc(cap->step_t, (size_t) n * sizeof *grown);
        if (grown == NULL) {
            llorch_capture_set_error(cap, "out of memory recording the graph");
            return -1;
        }
        cap->step_t = grown;
        cap->cap_step = n;
    }
    cap->step_t[cap->n_step++] = t;
    if (cap->same_pointers && i < cap->plan->graph.n_nodes && is_plan_node(cap->plan, i, t)) {
        return i;
    }
    if (cap->same_pointers) { /* from here on: record, and compare by structure */
        cap->same_pointers = false;
        for (int k = 0; k < i; k++) {
            llorch_graph_add(&cap->rec, cap->step_t[k]);
        }
    }
    if (llorch_graph_add(&cap->rec, t) < 0) {
        llorch_capture_set_error(cap, "out of memory recording the graph");
        return -1;
    }
    if (cap->diverged_at < 0 && !llorch_plan_matches(cap->plan, &cap->rec, i)) {
        cap->diverged_at = i;
    }
    return i;
}

/* Whether t starts the graph of the decode's next micro-batch. While the
 * graph follows its plan, that is exactly when the plan's last node was
 * computed: a graph of n tokens always has its plan's node count. After a
 * divergence the count says nothing, and the next graph is known by its
 * first node: the plan's first node's op and name (the embedding lookup,
 * computed once per graph). */
static bool starts_next_graph(const llorch_capture *cap, const struct ggml_tensor *t) {
    int32_t next = cap->batch_done + cap->n_tokens;
    if (cap->n_step == 0 || next >= cap->batch_n) {
        return false;
    }
    if (cap->diverged_at < 0) {
        return cap->n_step >= cap->plan->graph.n_nodes;
    }
    const struct llorch_plan  *p = llorch_capture_plan_for(cap, llorch_capture_next_micro_batch_size(cap, next));
    const struct llorch_gnode *first = p != NULL && p->graph.n_nodes > 0 ? &p->graph.nodes[0] : NULL;
    return first != NULL && first->op == t->op && strcmp(first->name, t->name) == 0;
}

/* The first computed node of a micro-batch's graph: which schedule its
 * step follows. */
static void choose_schedule(llorch_capture *cap) {
    cap->sched = llorch_capture_schedule(cap);
    if (cap->sched == &cap->plan->outputs) {
        cap->report.steps_outputs++;
        if (cap->plan->marked_bytes > cap->report.marked_bytes) {
            cap->report.marked_bytes = cap->plan->marked_bytes;
        }
    } else {
        cap->report.steps_splits++;
    }
}

static bool ask(llorch_capture *cap, struct ggml_tensor *t) {
    if (t->buffer == NULL) { /* the patched llama.cpp asks before it allocates a graph */
        llorch_capture_pass_node(cap, t);
        return false;
    }
    if (t->op == GGML_OP_FLASH_ATTN_EXT) {
        cap->report.flash_attn = true;
    }
    if (t->op == GGML_OP_UNARY && ggml_backend_buffer_is_host(t->buffer) &&
        (ggml_get_unary_op(t) == GGML_UNARY_OP_GELU || ggml_get_unary_op(t) == GGML_UNARY_OP_GELU_QUICK)) {
        cap->report.gelu_f16 = true; /* the CPU's GELU goes through an f16 table (ggml-cpu/vec.h) */
    }
    if (!cap->report.patched_names && llorch_identify_is_patch_name(t->name)) {
        cap->report.patched_names = true;
    }
    if (cap->learning) {
        cap->saw_output |= (t->flags & GGML_TENSOR_FLAG_OUTPUT) != 0;
        if (llorch_graph_add(&cap->rec, t) < 0) {
            cap->failed = 1;
        }
        return false;
    }
    if (cap->failed || cap->stop || cap->plan == NULL) {
        return false;
    }
    if (starts_next_graph(cap, t)) {
        llorch_capture_next_micro_batch(cap);
        if (cap->failed || cap->plan == NULL) {
            return false;
        }
    }
    if (cap->n_step == 0) {
        choose_schedule(cap);
    }
    int i = add_step_node(cap, t);
    if (i < 0) {
        return false;
    }
    bool point = cap->next_point < cap->sched->n_points && cap->sched->points[cap->next_point] == i;
    /* a fed run takes every point: the feed writes even in steps that keep no rows */
    point = point && cap->diverged_at < 0 && (cap->capturing || cap->p.feed != NULL);
    cap->report.splits += point && i < cap->plan->graph.n_nodes - 1; /* the last node ends the graph anyway */
    return point;
}

bool llorch_capture_eval_callback(struct ggml_tensor *t, bool asking, void *user_data) {
    llorch_capture *cap = user_data;
    if (asking) {
        return ask(cap, t);
    }
    int node = cap->n_step - 1;
    if (cap->plan == NULL || node < 0 || cap->step_t[node] != t) {
        return true;
    }
    double start = llorch_now_seconds();
    llorch_capture_point(cap, node);
    if (cap->p.feed != NULL) {
        llorch_capture_feed_point(cap, node); /* after the point has read what llama.cpp computed */
    }
    cap->report.copy_seconds += llorch_now_seconds() - start;
    return true; /* never false: a false return only ends the current split; stopping is llorch_capture_abort_callback's
                    job */
}

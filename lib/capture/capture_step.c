/* capture_step.c - the steps: a batch given to llama_decode is computed
 * as micro-batches, one graph each; each micro-batch is one step of the
 * dump. Begin a step (one sequence) or a batch (several), move on where
 * capture_callback.c sees the next graph begin, end the step. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include <stdio.h>

/* llama.cpp computes a batch larger than n_ubatch as micro-batches of
 * n_ubatch consecutive tokens of the batch (the last one shorter), one
 * graph each (llama_batch_allocr::split_simple; with several sequences,
 * too, as long as the cache is unified). */
int32_t llorch_capture_next_micro_batch_size(const llorch_capture *cap, int32_t done) {
    int32_t left = cap->batch_n - done;
    return cap->n_ubatch > 0 && left > cap->n_ubatch ? cap->n_ubatch : left;
}

/* The bytes the coming step will likely capture: the step before's and an
 * eighth (the cache windows grow by a row a token), or before the first
 * step, the planned tensors' sizes in the prepared graph, at most a
 * quarter of the bound: its cache windows are padded (llama.cpp pads the
 * cells a graph reads to 256), far more than a short first step reads. */
static size_t expected_step_bytes(const llorch_capture *cap) {
    if (cap->last_step_bytes > 0) {
        return cap->last_step_bytes + cap->last_step_bytes / 8;
    }
    size_t                        sum = 0;
    const struct llorch_schedule *s = &cap->plan->splits;
    for (int i = 0; i < s->n_items; i++) {
        const int64_t *ne = cap->plan->graph.nodes[s->items[i].node].ne;
        sum += (size_t) (ne[0] * ne[1] * ne[2] * ne[3]) * sizeof(float);
    }
    return sum < cap->p.queue_bytes / 4 ? sum : cap->p.queue_bytes / 4;
}

/* Copies written to files are held until the writer gets to them, which
 * on a machine whose cores all compute is after the last step: every
 * step's copies land in fresh memory. Mapped before the step, that memory's
 * first touch stays off the compute path. */
static void reserve_step_memory(llorch_capture *cap) {
    if (cap->queue != NULL && cap->plan != NULL && cap->p.sink == LLORCH_CAPTURE_SINK_WRITE) {
        llorch_queue_reserve(cap->queue, expected_step_bytes(cap));
    }
    cap->step_bytes_start = cap->report.bytes;
}

/* One micro-batch: one graph, one step of the dump. */
void llorch_capture_begin_micro_batch(llorch_capture *cap, int32_t n_tokens) {
    cap->pos_start = cap->in_seq ? cap->batch_pos[cap->batch_done] : cap->batch_pos0 + cap->batch_done;
    cap->n_tokens = n_tokens;
    cap->n_graph_names = 0;
    cap->plan = llorch_capture_plan_for(cap, n_tokens);
    cap->sched = cap->plan != NULL ? &cap->plan->splits : NULL; /* until its graph starts computing */
    reserve_step_memory(cap);
    llorch_capture_make_row_sets(cap);
    cap->next_point = 0;
    cap->next_item = 0;
    cap->next_feed = 0;
    cap->diverged_at = -1;
    cap->n_step = 0;
    cap->same_pointers = true;
    llorch_graph_reset(&cap->rec);
    if (cap->plan == NULL && llorch_capture_active(cap)) {
        llorch_capture_set_error(cap,
                                 "no capture plan for a micro-batch of %d tokens: call llorch_capture_prepare(cap, "
                                 "ctx, %d) before the first llama_decode (for n_ubatch and for the last, shorter "
                                 "micro-batch of a larger batch)",
                                 n_tokens, n_tokens);
    }
}

void llorch_capture_begin_step(llorch_capture *cap, int32_t pos_start, int32_t n_tokens) {
    if (cap->in_seq) {
        llorch_capture_set_error(cap, "llorch_capture_begin_step after llorch_capture_begin_batch: a capture "
                                      "takes one sequence or batches of sequences, not both");
        return;
    }
    cap->batch_n = n_tokens;
    cap->batch_done = 0;
    cap->batch_pos0 = pos_start;
    llorch_capture_begin_micro_batch(cap, llorch_capture_next_micro_batch_size(cap, 0));
}

static void end_micro_batch(llorch_capture *cap) {
    llorch_capture_feed_end_step(cap);
    llorch_capture_release_held(cap, INT32_MAX);
    cap->last_step_bytes = cap->report.bytes - cap->step_bytes_start;
    if (cap->queue != NULL) {
        llorch_queue_flush(cap->queue); /* eager: the step's files get written while the next one computes */
    }
    if (cap->plan != NULL && cap->diverged_at >= 0 && !cap->failed) {
        char        reason[256];
        const char *name = cap->diverged_at < cap->n_step ? cap->step_t[cap->diverged_at]->name : "";
        for (int i = cap->next_item; i < cap->sched->n_items; i++) {
            const struct llorch_plan_item *it = &cap->sched->items[i];
            snprintf(reason, sizeof reason,
                     "not captured in step %d: its graph differs from the prepared one at "
                     "node %d (%s)",
                     cap->step, cap->diverged_at, name);
            llorch_capture_note_missing(cap, it->kind, it->layer, reason);
        }
        /* the steps after this one likely have the new structure */
        if (llorch_capture_learn_plan(cap, cap->n_tokens) != 0) {
            llorch_capture_set_error(cap, "out of memory recording the graph of step %d", cap->step);
        }
    }
    cap->plan = NULL;
    cap->sched = NULL;
    cap->step++;
}

/* capture_callback.c sees where one micro-batch's graph ends and the
 * next one's begins. */
void llorch_capture_next_micro_batch(llorch_capture *cap) {
    end_micro_batch(cap);
    cap->batch_done += cap->n_tokens;
    llorch_capture_begin_micro_batch(cap, llorch_capture_next_micro_batch_size(cap, cap->batch_done));
}

int llorch_capture_end_step(llorch_capture *cap) {
    end_micro_batch(cap);
    return cap->failed ? -1 : 0;
}

int llorch_capture_begin_batch(llorch_capture *cap, const struct llama_batch *batch) {
    if (llorch_capture_take_batch(cap, batch) != 0) {
        return -1;
    }
    llorch_capture_begin_micro_batch(cap, llorch_capture_next_micro_batch_size(cap, 0));
    return cap->failed ? -1 : 0;
}

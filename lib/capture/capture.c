/* capture.c - the capture's lifecycle: create, attach the callbacks,
 * begin and end each step, finish, report.
 *
 * The scheduler asks the eval callback about every node once, in execution
 * order, before computing it (ask == true); a true answer computes the
 * nodes so far and calls back with the data (ask == false). Every true
 * answer costs a graph split, so the callback answers true only at the
 * capture points of a plan (plan.h, capture_plans.c).
 *
 * The steps record their nodes and check them against the plan's graph
 * (capture_callback.c); where the structure differs, the rest of that step
 * is not captured, and a plan for the new structure is made for the steps
 * after it. The data phase (capture_copy.c) gathers and converts into
 * buffers (the only work on the compute thread) and hands them, in graph
 * order, to the writer thread. The callback never writes to a tensor. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llorch_capture_set_error(llorch_capture *cap, const char *fmt, ...) {
    if (cap->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cap->error, sizeof cap->error, fmt, ap);
    va_end(ap);
    cap->failed = 1;
}

size_t llorch_capture_ever_index(const llorch_capture *cap, int kind, int layer) {
    return (size_t) kind * (size_t) (cap->n_layer + 1) + (size_t) (layer + 1);
}

/* --- the writer thread ----------------------------------------------------- */

static int consume(void *ctx, const struct llorch_queue_item *item) {
    llorch_capture *cap = ctx;
    if (cap->p.sink != LLORCH_CAPTURE_SINK_WRITE) {
        return 0; /* memory sink: copied, then dropped */
    }
    double start = llorch_now_seconds();
    int    rc = llorch_ckpt_writer_write(cap->p.writer, &item->tensor);
    atomic_store(&cap->write_seconds, atomic_load(&cap->write_seconds) + (llorch_now_seconds() - start));
    if (rc != 0) {
        snprintf(cap->write_error, sizeof cap->write_error, "%s", llorch_ckpt_writer_error(cap->p.writer));
        return -1;
    }
    return 0;
}

/* --- create / attach ------------------------------------------------------- */

struct llorch_capture_params llorch_capture_default_params(void) {
    struct llorch_capture_params p;
    memset(&p, 0, sizeof p);
    p.sink = LLORCH_CAPTURE_SINK_WRITE;
    p.identify = LLORCH_CAPTURE_IDENTIFY_AUTO;
    p.queue_bytes = (size_t) 256 << 20;
    return p;
}

llorch_capture *llorch_capture_create(const struct llorch_capture_params *params, char *err, size_t err_size) {
    if (params->selection == NULL || params->model == NULL ||
        (params->sink == LLORCH_CAPTURE_SINK_WRITE && params->writer == NULL)) {
        snprintf(err, err_size, "capture needs a selection, a model and (to write) a writer");
        return NULL;
    }
    llorch_capture *cap = calloc(1, sizeof *cap);
    if (cap == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    cap->p = *params;
    if (cap->p.stats_out == NULL) {
        cap->p.stats_out = stdout;
    }
    llama_model_meta_val_str(params->model, "general.architecture", cap->arch, sizeof cap->arch);
    cap->n_layer = llama_model_n_layer(params->model);
    cap->n_embd = llama_model_n_embd(params->model);
    cap->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(params->model));
    cap->diverged_at = -1;
    llorch_graph_init(&cap->rec);
    llorch_graph_init(&cap->pass.rec);
    cap->ever = calloc(llorch_capture_ever_index(cap, LLORCH_CKPT_KIND_COUNT, -1), sizeof(bool));
    cap->fetch = llorch_fetch_create();
    if (cap->ever == NULL || cap->fetch == NULL) {
        llorch_capture_free(cap);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (cap->p.sink != LLORCH_CAPTURE_SINK_STATS && !llorch_ckpt_selection_empty(cap->p.selection)) {
        cap->queue = llorch_queue_create(cap->p.queue_bytes, consume, cap);
        if (cap->queue == NULL) {
            llorch_capture_free(cap);
            snprintf(err, err_size, "cannot start the writer thread");
            return NULL;
        }
    }
    return cap;
}

void llorch_capture_attach(llorch_capture *cap, struct llama_context_params *cparams) {
    cap->kv_unified = cparams->kv_unified; /* how the cache holds sequences (capture_rows.c) */
    cap->n_seq_max = (int32_t) cparams->n_seq_max;
    if (!llorch_capture_active(cap)) {
        return; /* no callback: the scheduler keeps its fast path */
    }
    cparams->cb_eval = llorch_capture_eval_callback;
    cparams->cb_eval_user_data = cap;
    cap->prev_abort = cparams->abort_callback;
    cap->prev_abort_data = cparams->abort_callback_data;
    cparams->abort_callback = llorch_capture_abort_callback;
    cparams->abort_callback_data = cap;
}

/* --- steps ----------------------------------------------------------------- */

/* llama.cpp computes a batch larger than n_ubatch as micro-batches of
 * n_ubatch consecutive tokens of the batch (the last one shorter), one
 * graph each (llama_batch_allocr::split_simple; with several sequences,
 * too, as long as the cache is unified). */
int32_t llorch_capture_next_micro_batch_size(const llorch_capture *cap, int32_t done) {
    int32_t left = cap->batch_n - done;
    return cap->n_ubatch > 0 && left > cap->n_ubatch ? cap->n_ubatch : left;
}

/* One micro-batch: one graph, one step of the dump. */
void llorch_capture_begin_micro_batch(llorch_capture *cap, int32_t n_tokens) {
    cap->pos_start = cap->in_seq ? cap->batch_pos[cap->batch_done] : cap->batch_pos0 + cap->batch_done;
    cap->n_tokens = n_tokens;
    cap->n_graph_names = 0;
    cap->plan = llorch_capture_plan_for(cap, n_tokens);
    cap->sched = cap->plan != NULL ? &cap->plan->splits : NULL; /* until its graph starts computing */
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

void llorch_capture_note_missing(llorch_capture *cap, enum llorch_ckpt_kind kind, int layer, const char *reason) {
    for (int i = 0; i < cap->n_missing; i++) {
        if (cap->missing[i].kind == kind && cap->missing[i].layer == layer) {
            return;
        }
    }
    struct missing_note *grown = realloc(cap->missing, (size_t) (cap->n_missing + 1) * sizeof *grown);
    if (grown == NULL) {
        llorch_capture_set_error(cap, "out of memory");
        return;
    }
    cap->missing = grown;
    struct missing_note *m = &cap->missing[cap->n_missing++];
    m->kind = kind;
    m->layer = layer;
    snprintf(m->reason, sizeof m->reason, "%s", reason);
}

static void end_micro_batch(llorch_capture *cap) {
    llorch_capture_feed_end_step(cap);
    llorch_capture_release_held(cap, INT32_MAX);
    if (cap->queue != NULL) {
        llorch_queue_flush(cap->queue); /* the step's files get written while the next one computes */
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

void llorch_capture_request_stop(llorch_capture *cap) {
    cap->stop = 1;
}

/* --- finish ---------------------------------------------------------------- */

int llorch_capture_sync(llorch_capture *cap) {
    if (cap->queue != NULL && llorch_queue_drain(cap->queue) != 0) {
        llorch_capture_set_error(cap, "%s", cap->write_error);
    }
    return cap->failed ? -1 : 0;
}

/* What was asked for and never captured, with the reason a plan gave. */
static void record_missing(llorch_capture *cap) {
    char reason[256];
    for (int k = 0; k < LLORCH_CKPT_GRAPH; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        if (info->optional && !llorch_ckpt_selection_named(cap->p.selection, (enum llorch_ckpt_kind) k)) {
            continue; /* extras of some architectures only: absent is no news */
        }
        int first = info->per_layer ? 0 : -1, last = info->per_layer ? cap->n_layer - 1 : -1;
        for (int il = first; il <= last; il++) {
            if (!llorch_ckpt_selection_has(cap->p.selection, (enum llorch_ckpt_kind) k, il) ||
                cap->ever[llorch_capture_ever_index(cap, k, il)]) {
                continue;
            }
            const char *why = NULL;
            for (int p = 0; p < cap->n_plans && why == NULL; p++) {
                why = llorch_identity_absent_reason(&cap->plans[p].identity, (enum llorch_ckpt_kind) k, il);
            }
            if (why == NULL) {
                snprintf(reason, sizeof reason, "not found in the %s graph of this llama.cpp", cap->arch);
                why = reason;
            }
            llorch_capture_note_missing(cap, (enum llorch_ckpt_kind) k, il, why);
        }
    }
}

int llorch_capture_finish(llorch_capture *cap) {
    if (cap->queue != NULL) {
        if (llorch_queue_finish(cap->queue) != 0) {
            llorch_capture_set_error(cap, "%s", cap->write_error);
        }
        llorch_queue_stats(cap->queue, &cap->report.wait_seconds, &cap->report.queue_peak_bytes,
                           &cap->report.memory_peak_bytes);
    }
    if (cap->step > 0 || cap->n_plans > 0) {
        record_missing(cap);
    }
    for (int i = 0; i < cap->n_missing && cap->p.writer != NULL; i++) {
        llorch_ckpt_writer_note_missing(cap->p.writer, cap->missing[i].kind, cap->missing[i].layer,
                                        cap->missing[i].reason);
    }
    for (int i = 0; i < cap->n_missing && cap->p.sink == LLORCH_CAPTURE_SINK_STATS; i++) {
        fprintf(cap->p.stats_out, "%-14s %5d missing: %s\n", llorch_ckpt_kind_info(cap->missing[i].kind)->name,
                cap->missing[i].layer, cap->missing[i].reason);
    }
    cap->n_missing = 0;
    return cap->failed ? -1 : 0;
}

void llorch_capture_get_report(const llorch_capture *cap, struct llorch_capture_report *report) {
    *report = cap->report;
    report->write_seconds = atomic_load(&cap->write_seconds);
}

const char *llorch_capture_error(const llorch_capture *cap) {
    return cap->error;
}

void llorch_capture_free(llorch_capture *cap) {
    if (cap == NULL) {
        return;
    }
    for (int i = 0; i < cap->n_held; i++) {
        llorch_capture_drop_item(cap, cap->held[i]);
    }
    llorch_queue_free(cap->queue);
    for (int i = 0; i < cap->n_plans; i++) {
        llorch_plan_free(&cap->plans[i]);
    }
    llorch_graph_free(&cap->rec);
    llorch_capture_free_marks(cap);
    llorch_fetch_free(cap->fetch);
    llorch_capture_feed_free(cap);
    void *const owned[] = {
        cap->held,     cap->plans,     cap->step_t,    cap->ever,     cap->graph_names, cap->missing,  cap->sets,
        cap->set_ints, cap->batch_seq, cap->batch_pos, cap->next_pos, cap->cell_seq,    cap->cell_pos, cap};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
}

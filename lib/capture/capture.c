/* capture.c - the capture's lifecycle (the top of lib/capture): create,
 * attach the callbacks, sync, finish, report, free. The steps are
 * capture_step.c's.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        cap->queue = llorch_queue_create(cap->p.queue_bytes, llorch_capture_consume, cap);
        if (cap->queue == NULL) {
            llorch_capture_free(cap);
            snprintf(err, err_size, "cannot start the writer thread");
            return NULL;
        }
    }
    return cap;
}

/* The writer writes while graphs compute only where a core is left to it.
 * Where the compute threads take every core, its occasional time slices
 * stall their barriers (BENCHMARKS.md: 1.16 against 1.00 for the decode
 * to disk at -t 2 on two cores), so it writes after the last step, or
 * once the queue's bound comes near. A graph computed on a device leaves
 * the cores free: the first device tensor read makes it eager again
 * (capture_copy.c). */
static void choose_writer_timing(llorch_capture *cap, const struct llama_context_params *cparams) {
    int threads = cparams->n_threads > cparams->n_threads_batch ? cparams->n_threads : cparams->n_threads_batch;
    cap->report.writer_during_decode = llorch_usable_cores() > threads;
    llorch_queue_set_eager(cap->queue, cap->report.writer_during_decode);
}

void llorch_capture_attach(llorch_capture *cap, struct llama_context_params *cparams) {
    cap->kv_unified = cparams->kv_unified; /* how the cache holds sequences (capture_rows.c) */
    cap->n_seq_max = (int32_t) cparams->n_seq_max;
    if (!llorch_capture_active(cap)) {
        return; /* no callback: the scheduler keeps its fast path */
    }
    if (cap->queue != NULL) {
        choose_writer_timing(cap, cparams);
    }
    cparams->cb_eval = llorch_capture_eval_callback;
    cparams->cb_eval_user_data = cap;
    cap->prev_abort = cparams->abort_callback;
    cap->prev_abort_data = cparams->abort_callback_data;
    cparams->abort_callback = llorch_capture_abort_callback;
    cparams->abort_callback_data = cap;
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
        /* extras of some architectures only: absent is no news; a numbered
         * one (the recurrent state) is listed where a layer should have it */
        bool quiet = info->optional && !llorch_ckpt_selection_named(cap->p.selection, (enum llorch_ckpt_kind) k);
        if (quiet && info->number == 0) {
            continue;
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
            if (why == NULL && quiet) {
                continue;
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
    void *const owned[] = {cap->held,        cap->state_rows, cap->plans,    cap->step_t,   cap->ever,
                           cap->graph_names, cap->missing,    cap->sets,     cap->set_ints, cap->batch_seq,
                           cap->batch_pos,   cap->next_pos,   cap->cell_seq, cap->cell_pos, cap};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
}

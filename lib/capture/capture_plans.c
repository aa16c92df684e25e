/* capture_plans.c - preparing a capture: one decode whose callback records
 * every node and answers false, stopped by the abort callback once the
 * graph is recorded; the recorded graph becomes the plan for that number
 * of tokens (plan.h). The context's memory is cleared afterwards. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- plans ----------------------------------------------------------------- */

const struct llorch_plan *llorch_capture_plan_for(const llorch_capture *cap, int32_t n_tokens) {
    for (int i = 0; i < cap->n_plans; i++) {
        if (cap->plans[i].n_tokens == n_tokens) {
            return &cap->plans[i];
        }
    }
    return NULL;
}

/* Makes (or replaces) the plan for the graph in cap->rec. */
int llorch_capture_learn_plan(llorch_capture *cap, int32_t n_tokens) {
    if (llorch_graph_finish(&cap->rec) != 0) {
        return -1;
    }
    struct llorch_identify_input in = {.graph = &cap->rec,
                                       .n_tokens = n_tokens,
                                       .n_layer = cap->n_layer,
                                       .n_embd = cap->n_embd,
                                       .n_vocab = cap->n_vocab,
                                       .arch = cap->arch};
    struct llorch_plan           plan;
    if (llorch_plan_build(&plan, &cap->rec, &in, cap->p.selection, !cap->p.split_each, 0,
                          llorch_capture_feed_mask(cap)) != 0) {
        return -1;
    }
    if (llorch_capture_feed_check_plan(cap, &plan) != 0) {
        llorch_plan_free(&plan);
        return -1; /* its error says why (the first error stays) */
    }
    if (llorch_capture_plan_marks(cap, &plan) != 0) {
        llorch_plan_free(&plan);
        return -1;
    }
    struct llorch_plan *old = (struct llorch_plan *) llorch_capture_plan_for(cap, n_tokens);
    if (old != NULL) {
        llorch_plan_free(old);
        *old = plan;
        return 0;
    }
    struct llorch_plan *grown = realloc(cap->plans, (size_t) (cap->n_plans + 1) * sizeof *grown);
    if (grown == NULL) {
        llorch_plan_free(&plan);
        return -1;
    }
    cap->plans = grown;
    cap->plans[cap->n_plans++] = plan;
    return 0;
}

/* While preparing, llama.cpp reports the decode that the capture stops on
 * purpose as failed; those lines are dropped, the rest goes to the log as
 * before. */
struct log_target {
    ggml_log_callback callback;
    void             *data;
};

static void quiet_abort_log(enum ggml_log_level level, const char *text, void *data) {
    const struct log_target *to = data;
    bool expected = strstr(text, "failed with error 1") != NULL || strstr(text, "compute status: 1") != NULL ||
                    strstr(text, "ret = 2") != NULL || strstr(text, "removing memory module entries") != NULL;
    if (!expected && to->callback != NULL) {
        to->callback(level, text, to->data);
    }
}

/* A batch of n tokens at positions 0 .. n-1, every one an output. */
static struct llama_batch prepare_batch(int32_t n_tokens) {
    struct llama_batch b = llama_batch_init(n_tokens, 0, 1);
    for (int i = 0; i < n_tokens; i++) {
        b.token[i] = 0;
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n_tokens;
    return b;
}

/* One llama_decode that the capture stops as early as it can, with the
 * logs of the stop dropped; the context's memory is cleared after it. */
static int stopped_decode(struct llama_context *ctx, struct llama_batch b) {
    struct log_target log;
    llama_log_get(&log.callback, &log.data);
    llama_log_set(quiet_abort_log, &log);
    int rc = llama_decode(ctx, b);
    llama_log_set(log.callback, log.data);
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem != NULL) { /* models without memory (diffusion, encoders) have nothing to clear */
        llama_memory_clear(mem, true);
    }
    return rc;
}

int llorch_capture_prepare(llorch_capture *cap, struct llama_context *ctx, int32_t n_tokens) {
    if (!llorch_capture_active(cap) || llorch_capture_plan_for(cap, n_tokens) != NULL) {
        return 0;
    }
    llama_memory_t mem = llama_get_memory(ctx);
    cap->n_ubatch = (int32_t) llama_n_ubatch(ctx);
    if (n_tokens > cap->n_ubatch) {
        llorch_capture_set_error(
            cap,
            "a step of %d tokens holds more tokens than n_ubatch (%d): decode at most n_ubatch tokens at a "
            "time",
            n_tokens, cap->n_ubatch);
        return -1;
    }
    if (n_tokens <= 0 || (mem != NULL && llama_memory_seq_pos_max(mem, 0) >= 0)) {
        llorch_capture_set_error(
            cap,
            "llorch_capture_prepare needs an empty context and a positive number of tokens (got %d): "
            "prepare every batch size before the first llama_decode",
            n_tokens);
        return -1;
    }
    struct llama_batch b = prepare_batch(n_tokens);
    llorch_graph_reset(&cap->rec);
    cap->learning = true;
    cap->saw_output = false;
    cap->pass_nodes = 0;
    int rc = stopped_decode(ctx, b); /* aborted once recorded: 2; 0 when no CPU node came after the output */
    cap->learning = false;
    llama_batch_free(b);
    if (rc != 0 && rc != 2) {
        llorch_capture_set_error(cap, "llama_decode of %d tokens failed while preparing the capture (status %d)",
                                 n_tokens, rc);
        return -1;
    }
    if (cap->rec.n_nodes == 0 || llorch_capture_learn_plan(cap, n_tokens) != 0) {
        llorch_capture_set_error(cap, "out of memory recording the graph of %d tokens", n_tokens);
        return -1; /* the first error stays: a plan the feed refused has set it */
    }
    return 0;
}

void llorch_capture_print_plans(const llorch_capture *cap, FILE *out) {
    for (int p = 0; p < cap->n_plans; p++) {
        const struct llorch_plan     *plan = &cap->plans[p];
        const struct llorch_schedule *sp = &plan->splits, *so = &plan->outputs;
        fprintf(out, "# graph of a step of %d tokens: %d nodes; %d tensors captured at %d points (graph splits)\n",
                plan->n_tokens, plan->graph.n_nodes, sp->n_items, sp->n_points);
        fprintf(out,
                "# where llama.cpp asks before allocating (the patch): %d nodes marked graph outputs (%zu bytes), "
                "%d points\n",
                plan->n_marks, plan->marked_bytes, so->n_points);
        fprintf(out, "# node\top\ttype\tname\tne\tview_src\tinputs\tcheckpoints (* [...]: a capture point and what it "
                     "gathers)\n");
        for (int i = 0, point = 0; i < plan->graph.n_nodes; i++) {
            llorch_graph_print_node(&plan->graph, i, out);
            fputc('\t', out);
            if (point < sp->n_points && sp->points[point] == i) {
                fputs("* [", out);
                for (int k = 0, first = 1; k < sp->n_items; k++) {
                    if (sp->items[k].at == i) {
                        fprintf(out, "%s%s:%d", first ? "" : " ", llorch_ckpt_kind_info(sp->items[k].kind)->name,
                                sp->items[k].layer);
                        first = 0;
                    }
                }
                fputs("] ", out);
                point++;
            }
            for (int r = 0, first = 1; r < plan->identity.n_roles; r++) {
                const struct llorch_role *role = &plan->identity.roles[r];
                if (role->node == i) {
                    fprintf(out, "%s%s:%d", first ? "" : " ", llorch_ckpt_kind_info(role->kind)->name, role->layer);
                    first = 0;
                }
            }
            fputc('\n', out);
        }
        for (int a = 0; a < plan->identity.n_absent; a++) {
            const struct llorch_absence *ab = &plan->identity.absent[a];
            fprintf(out, "# absent\t%s\t%d\t%s\n", llorch_ckpt_kind_info(ab->kind)->name, ab->layer, ab->reason);
        }
    }
}

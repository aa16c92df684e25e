/* capture.c - the ggml scheduler eval callback.
 *
 * The scheduler asks the callback about every node once, in execution
 * order, before computing it (ask == true); a true answer computes the
 * nodes so far and calls back with the data (ask == false). Every true
 * answer costs a graph split, so the callback answers true only at the
 * capture points of a plan (plan.h).
 *
 * A plan comes from a prepared graph (llorch_capture_prepare): one decode
 * whose callback records every node and answers false, and which the abort
 * callback stops after the first node once the graph is recorded; the
 * context is then cleared. The steps that follow record their nodes again
 * and check them against the plan's graph; where the structure differs, the
 * rest of that step is not captured, and a plan for the new structure is
 * made for the steps after it.
 *
 * The data phase gathers and converts into fresh buffers (the only work on
 * the compute thread) and hands them, in graph order, to the writer thread.
 * The callback never writes to a tensor. */
#define _POSIX_C_SOURCE 200809L
#include "llorch_capture.h"

#include "convert.h"
#include "graph.h"
#include "plan.h"
#include "queue.h"
#include "util.h"

#include <ggml-backend.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct missing_note {
    enum llorch_ckpt_kind kind;
    int                   layer;
    char                  reason[256];
};

struct graph_name_count {      /* --graph-regex: repeats of a name in a step */
    char name[GGML_MAX_NAME];
    int  count;
};

struct llorch_capture {
    struct llorch_capture_params p;
    char     arch[64];
    int      n_layer, n_embd, n_vocab;
    llorch_queue *queue;

    struct llorch_plan *plans;  /* one per prepared number of tokens */
    int      n_plans;

    /* the step being computed */
    int      step;
    int32_t  pos_start, n_tokens;
    int32_t  n_ubatch;          /* of the context, once prepared */
    bool     learning;          /* inside llorch_capture_prepare */
    bool     saw_output;        /* the recording holds a graph output */
    struct llorch_graph rec;    /* this step's nodes so far, once they differ from the plan's pointers */
    const struct ggml_tensor **step_t;   /* the tensor of every node of this step so far */
    int      n_step, cap_step;
    bool     same_pointers;     /* every node so far is the plan's tensor, with the plan's inputs */
    const struct llorch_plan *plan;
    int      next_point;        /* index into plan->points */
    int      next_item;         /* index into plan->items */
    int      diverged_at;       /* first node that differs from the plan, or -1 */
    struct llorch_queue_item **held;   /* gathered, waiting for earlier nodes */
    int      n_held, cap_held;
    bool    *ever;              /* [kind][layer + 1] captured in any step */
    struct graph_name_count *graph_names;
    int      n_graph_names;

    struct missing_note *missing;
    int      n_missing;

    ggml_abort_callback prev_abort;
    void    *prev_abort_data;
    atomic_int stop;           /* set by a signal handler (lock-free)  */
    atomic_int failed;         /* read by ggml's abort check           */

    struct llorch_capture_report report;
    char     error[1024];
    char     write_error[1024];  /* set on the writer thread only; read after the queue reports failure */
    _Atomic double write_seconds;  /* added to by the writer thread, read for reports */
};

/* The first error wins; it also stops the computation. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void fail(llorch_capture *cap, const char *fmt, ...) {
    if (cap->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cap->error, sizeof cap->error, fmt, ap);
    va_end(ap);
    cap->failed = 1;
}

static size_t ever_index(const llorch_capture *cap, int kind, int layer) {
    return (size_t) kind * (size_t) (cap->n_layer + 1) + (size_t) (layer + 1);
}

/* --- the writer thread ----------------------------------------------------- */

static int consume(void *ctx, const struct llorch_queue_item *item) {
    llorch_capture *cap = ctx;
    if (cap->p.sink != LLORCH_CAPTURE_SINK_WRITE) {
        return 0;                       /* memory sink: copied, then dropped */
    }
    double start = llorch_now_seconds();
    int rc = llorch_ckpt_writer_write(cap->p.writer, &item->tensor);
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
    cap->ever = calloc(ever_index(cap, LLORCH_CKPT_KIND_COUNT, -1), sizeof(bool));
    if (cap->ever == NULL) {
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

static bool eval_callback(struct ggml_tensor *t, bool ask, void *user_data);

static bool abort_callback(void *data) {
    llorch_capture *cap = data;
    if (cap->stop || cap->failed || (cap->learning && cap->saw_output)) {
        return true;
    }
    return cap->prev_abort != NULL && cap->prev_abort(cap->prev_abort_data);
}

void llorch_capture_attach(llorch_capture *cap, struct llama_context_params *cparams) {
    if (llorch_ckpt_selection_empty(cap->p.selection)) {
        return;     /* no callback: the scheduler keeps its fast path */
    }
    cparams->cb_eval = eval_callback;
    cparams->cb_eval_user_data = cap;
    cap->prev_abort = cparams->abort_callback;
    cap->prev_abort_data = cparams->abort_callback_data;
    cparams->abort_callback = abort_callback;
    cparams->abort_callback_data = cap;
}

/* --- plans ----------------------------------------------------------------- */

static const struct llorch_plan *plan_for(const llorch_capture *cap, int32_t n_tokens) {
    for (int i = 0; i < cap->n_plans; i++) {
        if (cap->plans[i].n_tokens == n_tokens) {
            return &cap->plans[i];
        }
    }
    return NULL;
}

/* Makes (or replaces) the plan for the graph in cap->rec. */
static int learn_plan(llorch_capture *cap, int32_t n_tokens) {
    if (llorch_graph_finish(&cap->rec) != 0) {
        return -1;
    }
    struct llorch_identify_input in = {.graph = &cap->rec, .n_tokens = n_tokens, .n_layer = cap->n_layer,
                                       .n_embd = cap->n_embd, .n_vocab = cap->n_vocab, .arch = cap->arch};
    struct llorch_plan plan;
    if (llorch_plan_build(&plan, &cap->rec, &in, cap->p.selection, !cap->p.split_each) != 0) {
        return -1;
    }
    struct llorch_plan *old = (struct llorch_plan *) plan_for(cap, n_tokens);
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

int llorch_capture_prepare(llorch_capture *cap, struct llama_context *ctx, int32_t n_tokens) {
    if (llorch_ckpt_selection_empty(cap->p.selection) || plan_for(cap, n_tokens) != NULL) {
        return 0;
    }
    llama_memory_t mem = llama_get_memory(ctx);
    cap->n_ubatch = (int32_t) llama_n_ubatch(ctx);
    if (n_tokens > cap->n_ubatch) {
        fail(cap, "a step of %d tokens holds more tokens than n_ubatch (%d): decode at most n_ubatch tokens at a "
                  "time", n_tokens, cap->n_ubatch);
        return -1;
    }
    if (n_tokens <= 0 || (mem != NULL && llama_memory_seq_pos_max(mem, 0) >= 0)) {
        fail(cap, "llorch_capture_prepare needs an empty context and a positive number of tokens (got %d): "
                  "prepare every batch size before the first llama_decode", n_tokens);
        return -1;
    }
    struct llama_batch b = llama_batch_init(n_tokens, 0, 1);
    for (int i = 0; i < n_tokens; i++) {
        b.token[i] = 0;
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n_tokens;
    llorch_graph_reset(&cap->rec);
    cap->learning = true;
    cap->saw_output = false;
    struct log_target log;
    llama_log_get(&log.callback, &log.data);
    llama_log_set(quiet_abort_log, &log);
    int rc = llama_decode(ctx, b);     /* aborted once recorded: 2; 0 when no CPU node came after the output */
    llama_log_set(log.callback, log.data);
    cap->learning = false;
    llama_batch_free(b);
    if (mem != NULL) {      /* models without memory (diffusion, encoders) have nothing to clear */
        llama_memory_clear(mem, true);
    }
    if (rc != 0 && rc != 2) {
        fail(cap, "llama_decode of %d tokens failed while preparing the capture (status %d)", n_tokens, rc);
        return -1;
    }
    if (cap->rec.n_nodes == 0 || learn_plan(cap, n_tokens) != 0) {
        fail(cap, "out of memory recording the graph of %d tokens", n_tokens);
        return -1;
    }
    return 0;
}

void llorch_capture_print_plans(const llorch_capture *cap, FILE *out) {
    for (int p = 0; p < cap->n_plans; p++) {
        const struct llorch_plan *plan = &cap->plans[p];
        fprintf(out, "# graph of a step of %d tokens: %d nodes; %d tensors captured at %d points (graph splits)\n",
                plan->n_tokens, plan->graph.n_nodes, plan->n_items, plan->n_points);
        fprintf(out, "# node\top\ttype\tname\tne\tview_src\tinputs\tcheckpoints (* [...]: a capture point and what it "
                     "gathers)\n");
        for (int i = 0, point = 0; i < plan->graph.n_nodes; i++) {
            llorch_graph_print_node(&plan->graph, i, out);
            fputc('\t', out);
            if (point < plan->n_points && plan->points[point] == i) {
                fputs("* [", out);
                for (int k = 0, first = 1; k < plan->n_items; k++) {
                    if (plan->items[k].at == i) {
                        fprintf(out, "%s%s:%d", first ? "" : " ", llorch_ckpt_kind_info(plan->items[k].kind)->name,
                                plan->items[k].layer);
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

/* --- steps ----------------------------------------------------------------- */

void llorch_capture_begin_step(llorch_capture *cap, int32_t pos_start, int32_t n_tokens) {
    cap->pos_start = pos_start;
    cap->n_tokens = n_tokens;
    cap->n_graph_names = 0;
    cap->plan = plan_for(cap, n_tokens);
    cap->next_point = 0;
    cap->next_item = 0;
    cap->diverged_at = -1;
    cap->n_step = 0;
    cap->same_pointers = true;
    llorch_graph_reset(&cap->rec);
    if (cap->n_ubatch > 0 && n_tokens > cap->n_ubatch) {
        fail(cap, "a step of %d tokens holds more tokens than n_ubatch (%d): call llorch_capture_begin_step for each "
                  "micro-batch (decode at most n_ubatch tokens at a time)", n_tokens, cap->n_ubatch);
    } else if (cap->plan == NULL && !llorch_ckpt_selection_empty(cap->p.selection)) {
        fail(cap, "no capture plan for a step of %d tokens: call llorch_capture_prepare(cap, ctx, %d) before the "
                  "first llama_decode", n_tokens, n_tokens);
    }
}

static void note_missing(llorch_capture *cap, enum llorch_ckpt_kind kind, int layer, const char *reason) {
    for (int i = 0; i < cap->n_missing; i++) {
        if (cap->missing[i].kind == kind && cap->missing[i].layer == layer) {
            return;
        }
    }
    struct missing_note *grown = realloc(cap->missing, (size_t) (cap->n_missing + 1) * sizeof *grown);
    if (grown == NULL) {
        fail(cap, "out of memory");
        return;
    }
    cap->missing = grown;
    struct missing_note *m = &cap->missing[cap->n_missing++];
    m->kind = kind;
    m->layer = layer;
    snprintf(m->reason, sizeof m->reason, "%s", reason);
}

static void release_held(llorch_capture *cap, int before);

int llorch_capture_end_step(llorch_capture *cap) {
    release_held(cap, INT32_MAX);
    if (cap->queue != NULL) {
        llorch_queue_flush(cap->queue);     /* the step's files get written while the next one computes */
    }
    if (cap->plan != NULL && cap->diverged_at >= 0 && !cap->failed) {
        char reason[256];
        const char *name = cap->diverged_at < cap->n_step ? cap->step_t[cap->diverged_at]->name : "";
        for (int i = cap->next_item; i < cap->plan->n_items; i++) {
            const struct llorch_plan_item *it = &cap->plan->items[i];
            snprintf(reason, sizeof reason, "not captured in step %d: its graph differs from the prepared one at "
                     "node %d (%s)", cap->step, cap->diverged_at, name);
            note_missing(cap, it->kind, it->layer, reason);
        }
        /* the steps after this one likely have the new structure */
        if (learn_plan(cap, cap->n_tokens) != 0) {
            fail(cap, "out of memory recording the graph of step %d", cap->step);
        }
    }
    cap->plan = NULL;
    cap->step++;
    return cap->failed ? -1 : 0;
}

void llorch_capture_request_stop(llorch_capture *cap) {
    cap->stop = 1;
}

/* --- the data phase -------------------------------------------------------- */

/* Stats mode: one line per tensor, on the compute thread (a debug mode). */
static void print_stats(llorch_capture *cap, const struct llorch_queue_item *item) {
    const float *v = item->data;
    size_t n = item->bytes / sizeof(float), nan = 0, inf = 0, finite = 0;
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) {
            nan++;
        } else if (isinf(v[i])) {
            inf++;
        } else {
            mn = v[i] < mn ? v[i] : mn;
            mx = v[i] > mx ? v[i] : mx;
            sum += v[i];
            finite++;
        }
    }
    const struct llorch_ckpt_tensor *t = &item->tensor;
    char shape[64];
    int len = 0;
    for (int i = 0; i < t->n_dims; i++) {
        len += snprintf(shape + len, sizeof shape - (size_t) len, i ? ",%lld" : "%lld", (long long) t->shape[i]);
    }
    fprintf(cap->p.stats_out, "%-14s %5d %4d %-24s (%s) min %-12.6g max %-12.6g mean %-12.6g nan %zu inf %zu\n",
            llorch_ckpt_kind_info(t->kind)->name, t->layer, t->step, item->graph_name, shape,
            finite ? mn : 0.0, finite ? mx : 0.0, finite ? sum / (double) finite : 0.0, nan, inf);
    cap->report.nonfinite += nan + inf;
    if ((nan || inf) && cap->p.stop_at_nan) {
        fail(cap, "%s (%s layer %d step %d) holds %zu NaN and %zu Inf values", item->graph_name,
             llorch_ckpt_kind_info(t->kind)->name, t->layer, t->step, nan, inf);
    }
}

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

static struct llorch_queue_item *new_item(llorch_capture *cap, const struct ggml_tensor *t,
                                          const struct llorch_plan_item *pi, const struct llorch_layout *l,
                                          enum llorch_ckpt_dtype dtype) {
    struct llorch_queue_item *item = calloc(1, sizeof *item);
    size_t bytes = llorch_convert_size(&l->g, dtype);
    if (item != NULL) {
        item->data = cap->queue != NULL ? llorch_queue_buffer(cap->queue, bytes, &item->chunk)
                                        : malloc(bytes > 0 ? bytes : 1);
    }
    if (item == NULL || item->data == NULL) {
        free(item);
        fail(cap, "out of memory copying %s (%zu bytes); lower the model size or the selection", t->name, bytes);
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
    d->pos_start = cap->pos_start;
    d->n_pos = cap->n_tokens;
    d->n_key = l->n_key;
    d->n_dims = l->n_dims;
    for (int i = 0; i < l->n_dims; i++) {
        d->shape[i] = l->g.ne[l->n_dims - 1 - i];     /* numpy order: ne reversed */
    }
    d->dtype = dtype;
    d->data = item->data;
    d->graph_name = item->graph_name;
    d->graph_op = item->graph_op;
    d->axes = l->axes;
    d->raw = l->raw;
    return item;
}

/* The tensor's bytes in host memory: the tensor itself, or a copy. */
static const void *host_bytes(llorch_capture *cap, const struct ggml_tensor *t, void **copy) {
    *copy = NULL;
    if (t->buffer == NULL || ggml_backend_buffer_is_host(t->buffer)) {
        return t->data;
    }
    *copy = malloc(ggml_nbytes(t));
    if (*copy == NULL) {
        fail(cap, "out of memory copying %s from its device", t->name);
        return NULL;
    }
    ggml_backend_tensor_get(t, *copy, 0, ggml_nbytes(t));
    return *copy;
}

/* Drops an item that is not handed to the writer. */
static void drop_item(llorch_capture *cap, struct llorch_queue_item *item) {
    if (cap->queue != NULL) {
        llorch_queue_recycle(cap->queue, item);     /* no thread hand-off: its buffer is reused */
    } else {
        free(item->data);
        free(item);
    }
}

static void hold(llorch_capture *cap, struct llorch_queue_item *item) {
    if (cap->n_held == cap->cap_held) {
        int n = cap->cap_held != 0 ? cap->cap_held * 2 : 32;
        struct llorch_queue_item **grown = realloc(cap->held, (size_t) n * sizeof *grown);
        if (grown == NULL) {
            drop_item(cap, item);
            fail(cap, "out of memory");
            return;
        }
        cap->held = grown;
        cap->cap_held = n;
    }
    int i = cap->n_held++;
    while (i > 0 && cap->held[i - 1]->node > item->node) {   /* keep graph order */
        cap->held[i] = cap->held[i - 1];
        i--;
    }
    cap->held[i] = item;
}

/* Hands on every held item of a node before `before`, in graph order: the
 * dump lists tensors in graph order although the cache windows are
 * gathered later, when attention has read them. */
static void release_held(llorch_capture *cap, int before) {
    int n = 0;
    while (n < cap->n_held && cap->held[n]->node < before) {
        struct llorch_queue_item *item = cap->held[n++];
        if (cap->failed) {
            drop_item(cap, item);
        } else if (cap->p.sink == LLORCH_CAPTURE_SINK_STATS) {
            print_stats(cap, item);
            drop_item(cap, item);
        } else if (cap->p.sink == LLORCH_CAPTURE_SINK_MEMORY) {
            drop_item(cap, item);                        /* copied, then dropped */
        } else if (llorch_queue_push(cap->queue, item) != 0) {
            fail(cap, "%s", cap->write_error);
        }
    }
    if (n > 0) {
        memmove(cap->held, cap->held + n, (size_t) (cap->n_held - n) * sizeof *cap->held);
        cap->n_held -= n;
    }
}

static void capture_item(llorch_capture *cap, const struct llorch_plan_item *pi) {
    const struct ggml_tensor *t = cap->step_t[pi->node];
    struct llorch_layout l;
    char why[256];
    if (llorch_convert_layout(t, pi->kind, cap->pos_start, cap->n_tokens, cap->p.raw, &l, why, sizeof why) != 0) {
        fail(cap, "%s; decode at most n_ubatch tokens per step (llorch_capture_begin_step) and mark every token "
                  "of the batch as an output", why);
        return;
    }
    if (!llorch_convert_supported(t, &l.g)) {
        fail(cap, "%s has type %s, which this ggml build cannot convert to f32", t->name, ggml_type_name(t->type));
        return;
    }
    bool native = cap->p.native_dtype && cap->p.sink != LLORCH_CAPTURE_SINK_STATS;
    struct llorch_queue_item *item = new_item(cap, t, pi, &l, llorch_convert_dtype(t->type, native));
    void *copy;
    const void *host = item != NULL ? host_bytes(cap, t, &copy) : NULL;
    if (host == NULL) {
        if (item != NULL) {
            drop_item(cap, item);
        }
        return;
    }
    llorch_convert_gather(t, host, &l.g, item->tensor.dtype, item->data);
    free(copy);
    cap->report.tensors++;
    cap->report.bytes += item->bytes;
    cap->report.kind_tensors[pi->kind]++;
    cap->report.kind_bytes[pi->kind] += item->bytes;
    if (pi->kind != LLORCH_CKPT_GRAPH) {
        cap->ever[ever_index(cap, pi->kind, pi->layer)] = true;
    }
    hold(cap, item);
}

/* The data phase of capture point `node`. */
static void capture_point(llorch_capture *cap, int node) {
    const struct llorch_plan *plan = cap->plan;
    while (cap->next_item < plan->n_items && plan->items[cap->next_item].at == node && !cap->failed) {
        capture_item(cap, &plan->items[cap->next_item++]);
    }
    cap->next_point++;
    /* what is still to come has nodes at or after the next item's */
    int before = INT32_MAX;
    for (int i = cap->next_item; i < plan->n_items; i++) {
        before = plan->items[i].node < before ? plan->items[i].node : before;
    }
    release_held(cap, before);
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
        fail(cap, "%s: the step computed more nodes than its plan, likely a second graph: the batch holds more "
                  "tokens than n_ubatch; call llorch_capture_begin_step for each micro-batch (decode at most "
                  "n_ubatch tokens at a time)", t->name);
        return -1;
    }
    if (i == cap->cap_step) {
        int n = cap->cap_step != 0 ? cap->cap_step * 2 : 1024;
        const struct ggml_tensor **grown = realloc(cap->step_t, (size_t) n * sizeof *grown);
        if (grown == NULL) {
            fail(cap, "out of memory recording the graph");
            return -1;
        }
        cap->step_t = grown;
        cap->cap_step = n;
    }
    cap->step_t[cap->n_step++] = t;
    if (cap->same_pointers && i < cap->plan->graph.n_nodes && is_plan_node(cap->plan, i, t)) {
        return i;
    }
    if (cap->same_pointers) {       /* from here on: record, and compare by structure */
        cap->same_pointers = false;
        for (int k = 0; k < i; k++) {
            llorch_graph_add(&cap->rec, cap->step_t[k]);
        }
    }
    if (llorch_graph_add(&cap->rec, t) < 0) {
        fail(cap, "out of memory recording the graph");
        return -1;
    }
    if (cap->diverged_at < 0 && !llorch_plan_matches(cap->plan, &cap->rec, i)) {
        cap->diverged_at = i;
    }
    return i;
}

static bool ask(llorch_capture *cap, const struct ggml_tensor *t) {
    if (t->op == GGML_OP_FLASH_ATTN_EXT) {
        cap->report.flash_attn = true;
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
    int i = add_step_node(cap, t);
    if (i < 0) {
        return false;
    }
    bool point = cap->next_point < cap->plan->n_points && cap->plan->points[cap->next_point] == i;
    return point && cap->diverged_at < 0;
}

static bool eval_callback(struct ggml_tensor *t, bool asking, void *user_data) {
    llorch_capture *cap = user_data;
    if (asking) {
        return ask(cap, t);
    }
    int node = cap->n_step - 1;
    if (cap->plan == NULL || node < 0 || cap->step_t[node] != t) {
        return true;
    }
    double start = llorch_now_seconds();
    capture_point(cap, node);
    cap->report.copy_seconds += llorch_now_seconds() - start;
    return true;   /* never false: a false return only ends the current split; stopping is abort_callback's job */
}

/* --- finish ---------------------------------------------------------------- */

int llorch_capture_sync(llorch_capture *cap) {
    if (cap->queue != NULL && llorch_queue_drain(cap->queue) != 0) {
        fail(cap, "%s", cap->write_error);
    }
    return cap->failed ? -1 : 0;
}

/* What was asked for and never captured, with the reason a plan gave. */
static void record_missing(llorch_capture *cap) {
    char reason[256];
    for (int k = 0; k < LLORCH_CKPT_GRAPH; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        if (info->optional && !llorch_ckpt_selection_named(cap->p.selection, (enum llorch_ckpt_kind) k)) {
            continue;   /* extras of some architectures only: absent is no news */
        }
        int first = info->per_layer ? 0 : -1, last = info->per_layer ? cap->n_layer - 1 : -1;
        for (int il = first; il <= last; il++) {
            if (!llorch_ckpt_selection_has(cap->p.selection, (enum llorch_ckpt_kind) k, il) ||
                cap->ever[ever_index(cap, k, il)]) {
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
            note_missing(cap, (enum llorch_ckpt_kind) k, il, why);
        }
    }
}

int llorch_capture_finish(llorch_capture *cap) {
    if (cap->queue != NULL) {
        if (llorch_queue_finish(cap->queue) != 0) {
            fail(cap, "%s", cap->write_error);
        }
        cap->report.wait_seconds = llorch_queue_wait_seconds(cap->queue);
        cap->report.queue_peak_bytes = llorch_queue_peak_bytes(cap->queue);
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
        drop_item(cap, cap->held[i]);
    }
    llorch_queue_free(cap->queue);
    for (int i = 0; i < cap->n_plans; i++) {
        llorch_plan_free(&cap->plans[i]);
    }
    free(cap->held);
    free(cap->plans);
    llorch_graph_free(&cap->rec);
    free(cap->step_t);
    free(cap->ever);
    free(cap->graph_names);
    free(cap->missing);
    free(cap);
}

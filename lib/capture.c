/* capture.c - the ggml scheduler eval callback.
 *
 * Ask phase (ask == true): called for every node in graph order; answers
 * true only for a tensor that identify.c names as a selected checkpoint not
 * yet captured in this step. Each true costs a graph split, so nothing else
 * is ever asked for.
 * Data phase (ask == false): the node is computed; gather + convert it into
 * a fresh buffer (the only work on the compute thread) and hand it to the
 * writer thread. The callback never writes to a tensor. */
#define _POSIX_C_SOURCE 200809L
#include "llorch_capture.h"

#include "convert.h"
#include "identify.h"
#include "queue.h"

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
    char                  reason[160];
};

struct graph_name_count {      /* --graph-regex: repeats of a name in a step */
    char name[GGML_MAX_NAME];
    int  count;
};

struct llorch_capture {
    struct llorch_capture_params p;
    struct llorch_model_facts    facts;
    llorch_queue                *queue;

    /* the step being computed */
    int      step;
    int32_t  pos_start, n_tokens;
    bool    *seen;              /* [kind][layer + 1] captured in this step */
    bool    *ever;              /* [kind][layer + 1] captured in any step  */
    struct graph_name_count *graph_names;
    int      n_graph_names;

    /* the node answered true in the ask phase, delivered next */
    const struct ggml_tensor *pending;
    int      pending_kind, pending_layer;

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

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* The first error wins; it also stops the computation. */
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

static size_t seen_index(const llorch_capture *cap, int kind, int layer) {
    return (size_t) kind * (size_t) (cap->facts.n_layer + 1) + (size_t) (layer + 1);
}

/* --- the writer thread ----------------------------------------------------- */

static int consume(void *ctx, const struct llorch_queue_item *item) {
    llorch_capture *cap = ctx;
    if (cap->p.sink != LLORCH_CAPTURE_WRITE) {
        return 0;                       /* memory sink: copied, then dropped */
    }
    double start = now_seconds();
    int rc = llorch_ckpt_writer_write(cap->p.writer, &item->tensor);
    atomic_store(&cap->write_seconds, atomic_load(&cap->write_seconds) + (now_seconds() - start));
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
    p.sink = LLORCH_CAPTURE_WRITE;
    p.identify = LLORCH_IDENTIFY_AUTO;
    p.queue_bytes = (size_t) 256 << 20;
    return p;
}

llorch_capture *llorch_capture_create(const struct llorch_capture_params *params, char *err, size_t err_size) {
    if (params->selection == NULL || params->model == NULL || params->model_path == NULL ||
        (params->sink == LLORCH_CAPTURE_WRITE && params->writer == NULL)) {
        snprintf(err, err_size, "capture needs a selection, a model, its path and (to write) a writer");
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
    if (llorch_model_facts_load(&cap->facts, params->model, params->model_path, err, err_size) != 0) {
        free(cap);
        return NULL;
    }
    size_t n = seen_index(cap, LLORCH_CKPT_KIND_COUNT, -1);
    cap->seen = calloc(n, sizeof(bool));
    cap->ever = calloc(n, sizeof(bool));
    if (cap->seen == NULL || cap->ever == NULL) {
        llorch_capture_free(cap);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (cap->p.sink != LLORCH_CAPTURE_STATS && !llorch_ckpt_selection_empty(cap->p.selection)) {
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
    if (cap->stop || cap->failed) {
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

/* --- steps ----------------------------------------------------------------- */

void llorch_capture_begin_step(llorch_capture *cap, int32_t pos_start, int32_t n_tokens) {
    cap->pos_start = pos_start;
    cap->n_tokens = n_tokens;
    memset(cap->seen, 0, seen_index(cap, LLORCH_CKPT_KIND_COUNT, -1) * sizeof(bool));
    cap->n_graph_names = 0;
    cap->pending = NULL;
}

static void note_missing(llorch_capture *cap, enum llorch_ckpt_kind kind, int layer, const char *reason) {
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

/* After the first step: what was asked for and is not in this graph. */
static void record_missing(llorch_capture *cap) {
    char reason[160];
    for (int k = 0; k < LLORCH_CKPT_GRAPH; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        int first = info->per_layer ? 0 : -1;
        int last = info->per_layer ? cap->facts.n_layer - 1 : -1;
        for (int il = first; il <= last; il++) {
            if (!llorch_ckpt_selection_has(cap->p.selection, (enum llorch_ckpt_kind) k, il) ||
                cap->ever[seen_index(cap, k, il)]) {
                continue;
            }
            const char *why = llorch_identify_absent_reason(&cap->facts, (enum llorch_ckpt_kind) k,
                                                            cap->report.flash_attn);
            if (why == NULL) {
                snprintf(reason, sizeof reason, "not found in the %s graph of this llama.cpp", cap->facts.arch);
                why = reason;
            }
            note_missing(cap, (enum llorch_ckpt_kind) k, il, why);
        }
    }
}

int llorch_capture_end_step(llorch_capture *cap) {
    if (cap->step == 0) {
        record_missing(cap);
    }
    cap->step++;
    return cap->failed ? -1 : 0;
}

void llorch_capture_request_stop(llorch_capture *cap) {
    cap->stop = 1;
}

/* --- the plan: which part of a tensor, in which layout --------------------- */

struct plan {
    struct llorch_gather g;
    int         n_dims;
    int32_t     n_key;
    const char *axes;          /* NULL: the kind's default */
    bool        raw;
};

static const char *raw_axes(int n_dims) {
    static const char *axes[] = {"ne0", "ne1,ne0", "ne2,ne1,ne0", "ne3,ne2,ne1,ne0"};
    return axes[n_dims - 1];
}

static void plan_raw(const struct ggml_tensor *t, struct plan *pl) {
    pl->g = llorch_gather_identity(t);
    pl->n_dims = ggml_n_dims(t);
    pl->axes = raw_axes(pl->n_dims);
    pl->raw = true;
}

/* Trims the key axis to the valid cells 0..K-1 (the window is padded). */
static int plan_keys(llorch_capture *cap, const struct ggml_tensor *t, int kind, struct plan *pl) {
    int32_t K = cap->pos_start + cap->n_tokens;
    pl->g = llorch_gather_identity(t);
    pl->n_dims = 3;
    pl->n_key = K;
    int key_axis = kind == LLORCH_CKPT_KQ_SOFT_MAX ? 0 : 2;
    /* With flash attention off, V is stored transposed: [n_kv, heads, dim]
     * with a head stride larger than the cell stride. Read it back as
     * [dim, heads, n_kv], the layout of K. */
    if (kind == LLORCH_CKPT_CACHE_V && t->nb[1] > t->nb[2]) {
        pl->g.src_axis[0] = 2;
        pl->g.src_axis[2] = 0;
        pl->g.ne[0] = t->ne[2];
        key_axis = 0;
        pl->g.ne[2] = K;
    } else {
        pl->g.ne[key_axis] = K;
    }
    if (t->ne[key_axis] < K) {
        fail(cap, "%s holds %lld key cells, fewer than the %d positions so far", t->name,
             (long long) t->ne[key_axis], K);
        return -1;
    }
    return 0;
}

static int plan_tensor(llorch_capture *cap, const struct ggml_tensor *t, int kind, struct plan *pl) {
    memset(pl, 0, sizeof *pl);
    bool keyed = kind == LLORCH_CKPT_CACHE_K || kind == LLORCH_CKPT_CACHE_V || kind == LLORCH_CKPT_KQ_SOFT_MAX;
    /* --raw only changes the tensors that are otherwise trimmed or
     * un-transposed; activations are written as llama.cpp holds them anyway */
    if ((cap->p.raw && keyed) || kind == LLORCH_CKPT_GRAPH) {
        plan_raw(t, pl);
        return 0;
    }
    if (keyed) {
        return plan_keys(cap, t, kind, pl);
    }
    bool heads = kind >= LLORCH_CKPT_QCUR && kind <= LLORCH_CKPT_KCUR_PRE_ROPE;
    pl->g = llorch_gather_identity(t);
    pl->n_dims = heads ? 3 : 2;
    if (t->ne[pl->n_dims - 1] != cap->n_tokens || (!heads && t->ne[2] * t->ne[3] != 1)) {
        fail(cap, "%s has %lld rows for a step of %d tokens; decode at most n_ubatch tokens per step "
                  "(llorch_capture_begin_step) and mark every token of the batch as an output",
             t->name, (long long) t->ne[pl->n_dims - 1], cap->n_tokens);
        return -1;
    }
    return 0;
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

static struct llorch_queue_item *new_item(llorch_capture *cap, const struct ggml_tensor *t, int kind, int layer,
                                          const struct plan *pl, enum llorch_ckpt_dtype dtype) {
    struct llorch_queue_item *item = calloc(1, sizeof *item);
    size_t bytes = llorch_convert_size(&pl->g, dtype);
    if (item != NULL) {
        item->data = cap->queue != NULL ? llorch_queue_buffer(cap->queue, bytes, &item->capacity)
                                        : malloc(bytes > 0 ? bytes : 1);
    }
    if (item == NULL || item->data == NULL) {
        free(item);
        fail(cap, "out of memory copying %s (%zu bytes); lower the model size or the selection", t->name, bytes);
        return NULL;
    }
    item->bytes = bytes;
    if (kind == LLORCH_CKPT_GRAPH) {
        unique_graph_name(cap, t->name, item->graph_name, sizeof item->graph_name);
    } else {
        snprintf(item->graph_name, sizeof item->graph_name, "%s", t->name);
    }
    snprintf(item->graph_op, sizeof item->graph_op, "%s", ggml_op_desc(t));
    struct llorch_ckpt_tensor *d = &item->tensor;
    d->kind = (enum llorch_ckpt_kind) kind;
    d->layer = kind == LLORCH_CKPT_GRAPH ? -1 : layer;
    d->step = cap->step;
    d->pos_start = cap->pos_start;
    d->n_pos = cap->n_tokens;
    d->n_key = pl->n_key;
    d->n_dims = pl->n_dims;
    for (int i = 0; i < pl->n_dims; i++) {
        d->shape[i] = pl->g.ne[pl->n_dims - 1 - i];     /* numpy order: ne reversed */
    }
    d->dtype = dtype;
    d->data = item->data;
    d->graph_name = item->graph_name;
    d->graph_op = item->graph_op;
    d->axes = pl->axes;
    d->raw = pl->raw;
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

static void capture_tensor(llorch_capture *cap, const struct ggml_tensor *t, int kind, int layer) {
    struct plan pl;
    if (plan_tensor(cap, t, kind, &pl) != 0) {
        return;
    }
    if (!llorch_convert_supported(t, &pl.g)) {
        fail(cap, "%s has type %s, which this ggml build cannot convert to f32", t->name, ggml_type_name(t->type));
        return;
    }
    bool native = cap->p.native_dtype && cap->p.sink != LLORCH_CAPTURE_STATS;
    struct llorch_queue_item *item = new_item(cap, t, kind, layer, &pl, llorch_convert_dtype(t->type, native));
    void *copy;
    const void *host = item != NULL ? host_bytes(cap, t, &copy) : NULL;
    if (host == NULL) {
        if (item != NULL) {
            free(item->data);
            free(item);
        }
        return;
    }
    llorch_convert_gather(t, host, &pl.g, item->tensor.dtype, item->data);
    free(copy);
    cap->report.tensors++;
    cap->report.bytes += item->bytes;
    cap->report.kind_tensors[kind]++;
    cap->report.kind_bytes[kind] += item->bytes;
    if (cap->p.sink == LLORCH_CAPTURE_STATS) {
        print_stats(cap, item);
        free(item->data);
        free(item);
    } else if (llorch_queue_push(cap->queue, item) != 0) {
        fail(cap, "%s", cap->write_error);
    }
}

/* --- the callback ---------------------------------------------------------- */

static bool ask(llorch_capture *cap, const struct ggml_tensor *t) {
    if (t->op == GGML_OP_FLASH_ATTN_EXT) {
        cap->report.flash_attn = true;
    }
    if (!cap->report.patched_names && llorch_identify_is_patch_name(t->name)) {
        cap->report.patched_names = true;
    }
    if (cap->failed || cap->stop) {
        return false;
    }
    int layer = -1;
    int kind = llorch_identify(&cap->facts, cap->p.identify, t, &layer);
    bool wanted = kind >= 0 && llorch_ckpt_selection_has(cap->p.selection, (enum llorch_ckpt_kind) kind, layer);
    if (wanted && cap->seen[seen_index(cap, kind, layer)]) {
        /* a second graph in one step: llama_decode split the batch into
         * micro-batches, and this one's positions are unknown */
        fail(cap, "%s was computed twice in one step: the batch holds more tokens than n_ubatch; call "
                  "llorch_capture_begin_step for each micro-batch (decode at most n_ubatch tokens at a time)",
             t->name);
        return false;
    }
    if (wanted) {
        cap->pending_kind = kind;
    } else if (llorch_ckpt_selection_match_graph(cap->p.selection, t->name)) {
        cap->pending_kind = LLORCH_CKPT_GRAPH;
        layer = -1;
    } else {
        return false;
    }
    cap->pending = t;
    cap->pending_layer = layer;
    return true;
}

static bool eval_callback(struct ggml_tensor *t, bool asking, void *user_data) {
    llorch_capture *cap = user_data;
    if (asking) {
        return ask(cap, t);
    }
    if (t != cap->pending) {
        return true;
    }
    double start = now_seconds();
    int kind = cap->pending_kind, layer = cap->pending_layer;
    cap->pending = NULL;
    if (kind != LLORCH_CKPT_GRAPH) {
        cap->seen[seen_index(cap, kind, layer)] = true;
        cap->ever[seen_index(cap, kind, layer)] = true;
    }
    capture_tensor(cap, t, kind, layer);
    cap->report.copy_seconds += now_seconds() - start;
    return true;   /* never false: a false return only ends the current split; stopping is abort_callback's job */
}

/* --- finish ---------------------------------------------------------------- */

int llorch_capture_sync(llorch_capture *cap) {
    if (cap->queue != NULL && llorch_queue_drain(cap->queue) != 0) {
        fail(cap, "%s", cap->write_error);
    }
    return cap->failed ? -1 : 0;
}

int llorch_capture_finish(llorch_capture *cap) {
    if (cap->queue != NULL) {
        if (llorch_queue_finish(cap->queue) != 0) {
            fail(cap, "%s", cap->write_error);
        }
        cap->report.wait_seconds = llorch_queue_wait_seconds(cap->queue);
        cap->report.queue_peak_bytes = llorch_queue_peak_bytes(cap->queue);
    }
    for (int i = 0; i < cap->n_missing && cap->p.writer != NULL; i++) {
        llorch_ckpt_writer_note_missing(cap->p.writer, cap->missing[i].kind, cap->missing[i].layer,
                                        cap->missing[i].reason);
    }
    for (int i = 0; i < cap->n_missing && cap->p.sink == LLORCH_CAPTURE_STATS; i++) {
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
    llorch_queue_free(cap->queue);
    llorch_model_facts_free(&cap->facts);
    free(cap->seen);
    free(cap->ever);
    free(cap->graph_names);
    free(cap->missing);
    free(cap);
}

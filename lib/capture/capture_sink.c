/* capture_sink.c - where a captured tensor goes: held in graph order until
 * the tensors of earlier nodes are in, then handed to the writer thread
 * (whose consumer is here too), printed (--stats) or dropped (the memory
 * sink). */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stats mode: one line per tensor, on the compute thread (a debug mode). */
static void print_stats(llorch_capture *cap, const struct llorch_queue_item *item) {
    const float *v = item->data;
    size_t       n = item->bytes / sizeof(float), nan = 0, inf = 0, finite = 0;
    double       mn = INFINITY, mx = -INFINITY, sum = 0;
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
    char                             shape[64];
    int                              len = 0;
    for (int i = 0; i < t->n_dims; i++) {
        len += snprintf(shape + len, sizeof shape - (size_t) len, i ? ",%lld" : "%lld", (long long) t->shape[i]);
    }
    fprintf(cap->p.stats_out, "%-14s %5d %4d %-24s (%s) min %-12.6g max %-12.6g mean %-12.6g nan %zu inf %zu\n",
            llorch_ckpt_kind_info(t->kind)->name, t->layer, t->step, item->graph_name, shape, finite ? mn : 0.0,
            finite ? mx : 0.0, finite ? sum / (double) finite : 0.0, nan, inf);
    cap->report.nonfinite += nan + inf;
    if ((nan || inf) && cap->p.stop_at_nan) {
        llorch_capture_set_error(cap, "%s (%s layer %d step %d) holds %zu NaN and %zu Inf values", item->graph_name,
                                 llorch_ckpt_kind_info(t->kind)->name, t->layer, t->step, nan, inf);
    }
}

/* Drops an item that is not handed to the writer. */
void llorch_capture_drop_item(llorch_capture *cap, struct llorch_queue_item *item) {
    if (cap->queue != NULL) {
        llorch_queue_recycle(cap->queue, item); /* no thread hand-off: its buffer is reused */
    } else {
        free(item->data);
        free(item);
    }
}

void llorch_capture_hold(llorch_capture *cap, struct llorch_queue_item *item) {
    if (cap->n_held == cap->cap_held) {
        int                        n = cap->cap_held != 0 ? cap->cap_held * 2 : 32;
        struct llorch_queue_item **grown = realloc(cap->held, (size_t) n * sizeof *grown);
        if (grown == NULL) {
            llorch_capture_drop_item(cap, item);
            llorch_capture_set_error(cap, "out of memory");
            return;
        }
        cap->held = grown;
        cap->cap_held = n;
    }
    int i = cap->n_held++;
    while (i > 0 && cap->held[i - 1]->node > item->node) { /* keep graph order */
        cap->held[i] = cap->held[i - 1];
        i--;
    }
    cap->held[i] = item;
}

/* Hands on every held item of a node before `before`, in graph order: the
 * dump lists tensors in graph order although the cache windows are
 * gathered later, when attention has read them. */
void llorch_capture_release_held(llorch_capture *cap, int before) {
    int n = 0;
    while (n < cap->n_held && cap->held[n]->node < before) {
        struct llorch_queue_item *item = cap->held[n++];
        if (cap->failed) {
            llorch_capture_drop_item(cap, item);
        } else if (cap->p.sink == LLORCH_CAPTURE_SINK_STATS) {
            print_stats(cap, item);
            llorch_capture_drop_item(cap, item);
        } else if (cap->p.sink == LLORCH_CAPTURE_SINK_MEMORY) {
            llorch_capture_drop_item(cap, item); /* copied, then dropped */
        } else if (llorch_queue_push(cap->queue, item) != 0) {
            llorch_capture_set_error(cap, "%s", cap->write_error);
        }
    }
    if (n > 0) {
        memmove(cap->held, cap->held + n, (size_t) (cap->n_held - n) * sizeof *cap->held);
        cap->n_held -= n;
    }
}

/* The writer thread's consumer. */
int llorch_capture_consume(void *ctx, const struct llorch_queue_item *item) {
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

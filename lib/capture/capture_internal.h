/* capture_internal.h - what the files of the capture share: the capture
 * object and the functions that one file calls in another.
 *   capture.c           create, attach, steps, finish: the lifecycle
 *   capture_plans.c     preparing: a recorded graph becomes a plan
 *   capture_callback.c  the eval callback: checks each node against the plan
 *   capture_copy.c      the data phase: gather, convert, hand to the writer */
#ifndef LLORCH_CAPTURE_INTERNAL_H
#define LLORCH_CAPTURE_INTERNAL_H

#include "llorch_capture.h"

#include "graph.h"
#include "plan.h"
#include "queue.h"

#include <ggml.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct missing_note {
    enum llorch_ckpt_kind kind;
    int                   layer;
    char                  reason[256];
};

struct graph_name_count { /* --graph-regex: repeats of a name in a step */
    char name[GGML_MAX_NAME];
    int  count;
};

struct llorch_capture {
    struct llorch_capture_params p;
    char                         arch[64];
    int                          n_layer, n_embd, n_vocab;
    llorch_queue                *queue;

    struct llorch_plan *plans; /* one per prepared number of tokens */
    int                 n_plans;

    /* the step being computed */
    int                        step;
    int32_t                    pos_start, n_tokens;
    int32_t                   *rows; /* the kept token rows of the step (--positions) */
    int32_t                    n_rows;
    bool                       capturing;  /* the step keeps rows: its capture points are taken */
    int32_t                    batch_end;  /* one past the last position of the llama_decode under way */
    int32_t                    n_ubatch;   /* of the context, once prepared */
    bool                       learning;   /* inside llorch_capture_prepare */
    bool                       saw_output; /* the recording holds a graph output */
    struct llorch_graph        rec;        /* this step's nodes so far, once they differ from the plan's pointers */
    const struct ggml_tensor **step_t;     /* the tensor of every node of this step so far */
    int                        n_step, cap_step;
    bool                       same_pointers; /* every node so far is the plan's tensor, with the plan's inputs */
    const struct llorch_plan  *plan;
    int                        next_point;  /* index into plan->points */
    int                        next_item;   /* index into plan->items */
    int                        diverged_at; /* first node that differs from the plan, or -1 */
    struct llorch_queue_item **held;        /* gathered, waiting for earlier nodes */
    int                        n_held, cap_held;
    bool                      *ever; /* [kind][layer + 1] captured in any step */
    struct graph_name_count   *graph_names;
    int                        n_graph_names;

    struct missing_note *missing;
    int                  n_missing;

    ggml_abort_callback prev_abort;
    void               *prev_abort_data;
    atomic_int          stop;   /* set by a signal handler (lock-free)  */
    atomic_int          failed; /* read by ggml's abort check           */

    struct llorch_capture_report report;
    char                         error[1024];
    char           write_error[1024]; /* set on the writer thread only; read after the queue reports failure */
    _Atomic double write_seconds;     /* added to by the writer thread, read for reports */
};

/* Sets the capture's error (the first one wins) and stops the computation. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void llorch_capture_set_error(llorch_capture *cap, const char *fmt, ...);
/* Index of (kind, layer) in cap->ever; layer -1 for model-level kinds. */
size_t llorch_capture_ever_index(const llorch_capture *cap, int kind, int layer);

/* capture.c: the decode under way moves on to its next micro-batch (the
 * scheduler started that micro-batch's graph). */
void llorch_capture_next_micro_batch(llorch_capture *cap);

/* capture_plans.c */
const struct llorch_plan *llorch_capture_plan_for(const llorch_capture *cap, int32_t n_tokens);
/* Makes (or replaces) the plan for the graph in cap->rec. */
int llorch_capture_learn_plan(llorch_capture *cap, int32_t n_tokens);

/* capture_callback.c */
bool llorch_capture_eval_callback(struct ggml_tensor *t, bool ask, void *user_data);
bool llorch_capture_abort_callback(void *data);

/* capture_copy.c */
/* The data phase of capture point `node`. */
void llorch_capture_point(llorch_capture *cap, int node);
/* Hands on every held item of a node before `before`, in graph order. */
void llorch_capture_release_held(llorch_capture *cap, int before);
/* Drops an item that is not handed to the writer. */
void llorch_capture_drop_item(llorch_capture *cap, struct llorch_queue_item *item);

#endif

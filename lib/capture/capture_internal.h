/* capture_internal.h - what the files of the capture share: the capture
 * object and the functions that one file calls in another.
 *   capture.c           create, attach, steps, finish: the lifecycle
 *   capture_plans.c     preparing: a recorded graph becomes a plan
 *   capture_callback.c  the eval callback: checks each node against the plan
 *   capture_rows.c      which rows a step keeps, and with several sequences,
 *                       each sequence's rows and cache cells
 *   capture_outputs.c   marking checkpoints as graph outputs before llama.cpp
 *                       allocates a graph (the patched llama.cpp asks first)
 *   capture_copy.c      the data phase: gather, convert, hand to the writer
 *   feed.c              a fed run: replacing the residual stream (--feed) */
#ifndef LLORCH_CAPTURE_INTERNAL_H
#define LLORCH_CAPTURE_INTERNAL_H

#include "llorch_capture.h"

#include "fetch.h"
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

/* The rows that one file of a step holds: the step's kept rows (one
 * sequence), or one sequence's kept rows and cache cells (a step of
 * several sequences, in_seq). */
struct llorch_row_set {
    bool           in_seq;
    int32_t        seq;
    const int32_t *rows;      /* indices into the micro-batch, ascending    */
    int32_t        n_rows;    /* 0: the step keeps none of this sequence's rows */
    int32_t        pos_start; /* the position the rows count from           */
    const int32_t *positions; /* each row's position, or NULL: pos_start .. */
    const int32_t *cells;     /* in_seq: the sequence's cache cells in position order */
    int32_t        n_key;     /* the key cells a cache or score file covers  */
};

/* The two rounds in which the patched llama.cpp asks about a new graph's
 * nodes before allocating it (capture_outputs.c). */
struct llorch_pass {
    bool                      marking;   /* the second round: the graph is recorded */
    struct llorch_graph       rec;       /* the graph, from the first round */
    const struct llorch_plan *marks;     /* the marks of graphs of its structure, or NULL */
    int                       n_marked;  /* nodes of the second round so far */
    int                       next_mark; /* into marks->marks */
};

struct graph_name_count { /* --graph-regex: repeats of a name in a step */
    char name[GGML_MAX_NAME];
    int  count;
};

/* The fields are grouped by the file that writes them. */
struct llorch_capture {
    /* capture.c: the parameters and the model */
    struct llorch_capture_params p;
    char                         arch[64];
    int                          n_layer, n_embd, n_vocab;
    llorch_queue                *queue;

    struct llorch_plan *plans; /* one per prepared number of tokens */
    int                 n_plans;

    /* the llama_decode under way (capture_rows.c, capture_step.c) */
    int32_t  batch_n;               /* its tokens                                          */
    int32_t  batch_done;            /* its tokens in the micro-batches before this one     */
    int32_t  batch_pos0;            /* one sequence: the position of its first token       */
    bool     in_seq;                /* llorch_capture_begin_batch: files per sequence      */
    int32_t *batch_seq, *batch_pos; /* in_seq: each token's sequence and position */
    int32_t  cap_batch;
    bool     kv_unified; /* of the context (llorch_capture_attach)              */
    int32_t  n_seq_max;
    int32_t *next_pos;            /* in_seq: each sequence's next position      */
    int32_t *cell_seq, *cell_pos; /* in_seq: every cache cell filled so far     */
    int32_t  n_cells, cap_cells;

    /* the step being computed (capture_step.c; the row sets: capture_rows.c;
     * the recording and the schedule: capture_callback.c) */
    int                           step;
    int32_t                       pos_start, n_tokens;
    size_t                        step_bytes_start; /* report.bytes when the step began */
    size_t                        last_step_bytes;  /* captured by the step before, 0 before the first */
    struct llorch_row_set        *sets;             /* one per file of each planned tensor */
    int                           n_sets, cap_sets;
    int32_t                      *set_ints; /* the sets' rows, positions and cells */
    size_t                        cap_set_ints;
    bool                          capturing;  /* the step keeps rows: its capture points are taken */
    int32_t                       n_ubatch;   /* of the context, once prepared */
    bool                          learning;   /* inside llorch_capture_prepare */
    bool                          saw_output; /* the recording holds a graph output */
    struct llorch_graph           rec;        /* this step's nodes so far, once they differ from the plan's pointers */
    const struct ggml_tensor    **step_t;     /* the tensor of every node of this step so far */
    int                           n_step, cap_step;
    bool                          same_pointers; /* every node so far is the plan's tensor, with the plan's inputs */
    const struct llorch_plan     *plan;
    const struct llorch_schedule *sched;       /* the step's: plan->splits or plan->outputs */
    int                           next_point;  /* index into sched->points */
    int                           next_item;   /* index into sched->items */
    int                           diverged_at; /* first node that differs from the plan, or -1 */
    struct llorch_queue_item    **held;        /* capture_sink.c: gathered, waiting for earlier nodes */
    struct ggml_tensor           *state_rows;  /* capture_copy.c: the recurrent state's rows, per item */
    size_t                        n_state_rows;
    int                           n_held, cap_held;
    bool                         *ever; /* [kind][layer + 1] captured in any step */
    struct graph_name_count      *graph_names;
    int                           n_graph_names;

    /* capture_state.c */
    struct missing_note *missing;
    int                  n_missing;

    /* capture_outputs.c */
    struct llorch_pass  pass;
    struct llorch_plan *mark_sets; /* per graph structure: its marks (plans built with output_bytes) */
    int                 n_mark_sets;
    int                 pass_nodes;  /* nodes of the graph llama.cpp last asked about, 0: none */
    bool                outputs_off; /* a marked tensor was not kept: graph splits from then on */
    llorch_fetch       *fetch;       /* device tensors of a capture point, read together */

    /* a fed run (feed.c): the step's next fed tensor, and scratch rows */
    int      next_feed;
    float   *feed_rows;  /* n_tokens x n_embd, as the feed supplies them */
    void    *feed_bytes; /* the same in the tensor's type */
    int32_t *feed_pos;
    size_t   feed_cap; /* rows the scratch holds */

    /* capture.c (attach), capture_callback.c, capture_state.c */
    ggml_abort_callback prev_abort;
    void               *prev_abort_data;
    atomic_int          stop;   /* set by a signal handler (lock-free)  */
    atomic_int          failed; /* read by ggml's abort check           */

    struct llorch_capture_report report;
    char                         error[1024];
    char           write_error[1024]; /* set on the writer thread only; read after the queue reports failure */
    _Atomic double write_seconds;     /* added to by the writer thread, read for reports */
};

/* The files of lib/capture, bottom to top; a file calls only the files
 * before it (graph.c, identify*.c, plan.c, convert.c, fetch.c, queue.c and
 * buffers.c are below them all).
 *
 *   capture_state.c    error, what was ever captured, notes on what was not
 *   capture_sink.c     held tensors, the writer thread's consumer, --stats
 *   capture_rows.c     which rows of a step go into which file
 *   feed.c             a fed run's overwrites
 *   capture_copy.c     the data phase of a capture point
 *   capture_outputs.c  llama.cpp's asking rounds: graph outputs to mark
 *   capture_plans.c    the plans: one per graph structure
 *   capture_step.c     steps and micro-batches
 *   capture_callback.c the eval and abort callbacks
 *   capture.c          create, attach, sync, finish, free */

/* --- capture_state.c --- */
/* Sets the capture's error (the first one wins) and stops the computation. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void llorch_capture_set_error(llorch_capture *cap, const char *fmt, ...);
/* Index of (kind, layer) in cap->ever; layer -1 for model-level kinds. */
size_t llorch_capture_ever_index(const llorch_capture *cap, int kind, int layer);
/* Records that (kind, layer) was not captured, and why (the first reason
 * given for it stays). */
void llorch_capture_note_missing(llorch_capture *cap, enum llorch_ckpt_kind kind, int layer, const char *reason);
/* True when the capture has work: a selection, or a feed. */
bool llorch_capture_active(const llorch_capture *cap);

/* --- capture_sink.c --- */
/* Keeps a gathered item until the items of earlier nodes are in. */
void llorch_capture_hold(llorch_capture *cap, struct llorch_queue_item *item);
/* Hands on every held item of a node before `before`, in graph order. */
void llorch_capture_release_held(llorch_capture *cap, int before);
/* Drops an item that is not handed to the writer. */
void llorch_capture_drop_item(llorch_capture *cap, struct llorch_queue_item *item);
/* The writer thread's consumer (llorch_queue_create). */
int llorch_capture_consume(void *ctx, const struct llorch_queue_item *item);

/* --- capture_rows.c --- */
/* The checks and the bookkeeping of a batch of several sequences
 * (llorch_capture_begin_batch). -1 after an error. */
int llorch_capture_take_batch(llorch_capture *cap, const struct llama_batch *batch);
/* The row sets of the micro-batch that starts now (cap->n_tokens tokens
 * after cap->batch_done); with several sequences, its tokens fill the next
 * cache cells. -1 after an error. */
int llorch_capture_make_row_sets(llorch_capture *cap);
/* A step of several sequences: true when every score that the rows of set
 * s give to a cell of another sequence is 0, as the cell table requires
 * (a check that the mask kept the sequences apart where the capture
 * expects them). *cell receives a cell that breaks it. */
bool llorch_capture_scores_in_seq(const llorch_capture *cap, const struct ggml_tensor *t, const void *host,
                                  const struct llorch_row_set *s, int32_t *cell);

/* --- feed.c --- */
/* The tensors a fed run replaces (plan.h), 0 without a feed. */
llorch_feed_mask llorch_capture_feed_mask(const llorch_capture *cap);
/* A new plan of a fed run: every fed tensor found, or an error naming the
 * one that is not. -1 after an error. */
int llorch_capture_feed_check_plan(llorch_capture *cap, const struct llorch_plan *plan);
/* Whether node i of the step is a fed tensor's capture point. */
bool llorch_capture_feed_at(const llorch_capture *cap, int i);
/* After the capture point `node` has read it: overwrites each fed tensor
 * of that node with the feed's rows. */
void llorch_capture_feed_point(llorch_capture *cap, int node);
/* The step's end: every fed tensor was replaced, or an error. */
void llorch_capture_feed_end_step(llorch_capture *cap);
void llorch_capture_feed_free(llorch_capture *cap);

/* --- capture_copy.c --- */
/* The data phase of capture point `node`. */
void llorch_capture_point(llorch_capture *cap, int node);

/* --- capture_outputs.c --- */
/* A node of a graph that llama.cpp is about to allocate (t->buffer NULL). */
void llorch_capture_pass_node(llorch_capture *cap, struct ggml_tensor *t);
/* Gives a new plan the marks of llama.cpp's graphs of its structure (none
 * when llama.cpp never asked). -1 when out of memory. */
int llorch_capture_plan_marks(llorch_capture *cap, struct llorch_plan *plan);
/* The schedule of the step that starts computing now. */
const struct llorch_schedule *llorch_capture_schedule(const llorch_capture *cap);
/* True when t's memory is still what the graph computed, after the graph:
 * marked a graph output, or state that outlives the graph. */
bool llorch_capture_output_intact(const struct ggml_tensor *t);
void llorch_capture_free_marks(llorch_capture *cap);

/* --- capture_plans.c --- */
const struct llorch_plan *llorch_capture_plan_for(const llorch_capture *cap, int32_t n_tokens);
/* Makes (or replaces) the plan for the graph in cap->rec. */
int llorch_capture_learn_plan(llorch_capture *cap, int32_t n_tokens);

/* --- capture_step.c --- */
/* The decode under way moves on to its next micro-batch (the scheduler
 * started that micro-batch's graph). */
void llorch_capture_next_micro_batch(llorch_capture *cap);
/* One micro-batch of n_tokens tokens, after cap->batch_done: one graph,
 * one step of the dump. */
void llorch_capture_begin_micro_batch(llorch_capture *cap, int32_t n_tokens);
/* The size of the micro-batch after the tokens done so far (0: none). */
int32_t llorch_capture_next_micro_batch_size(const llorch_capture *cap, int32_t done);

/* --- capture_callback.c --- */
bool llorch_capture_eval_callback(struct ggml_tensor *t, bool ask, void *user_data);
bool llorch_capture_abort_callback(void *data);

#endif

/* plan.h - where to capture, for one graph shape.
 *
 * A plan is made from a prepared graph (a decode of the same number of
 * tokens that recorded every node and computed nothing, llorch_capture_
 * prepare): its identity (identify.h), the selected checkpoints, and the
 * capture points, the nodes at which the eval callback answers true. A
 * later step whose graph has the same structure node for node is captured
 * by the plan; the callback checks that structure as the nodes arrive. */
#ifndef LLORCH_PLAN_H
#define LLORCH_PLAN_H

#include "graph.h"
#include "identify.h"
#include "llorch_checkpoint.h"

struct llorch_plan_item {
    enum llorch_ckpt_kind kind;
    int                   layer;
    int                   node;   /* the tensor to gather */
    int                   at;     /* the capture point: gather after this node is computed */
    bool                  output; /* read after the graph: its memory is marked a graph output */
};

/* Where a step's items are gathered: the items sorted by capture point,
 * then node, and the distinct points, ascending. */
struct llorch_schedule {
    struct llorch_plan_item *items;
    int                      n_items;
    int                     *points;
    int                      n_points;
};

/* A residual-stream tensor that a fed run replaces (feed.c): the capture
 * point at `node` reads it, then overwrites it. */
struct llorch_plan_feed {
    enum llorch_ckpt_kind kind; /* EMBD, L_OUT or FFN_INP */
    int                   layer;
    int                   node;
};

struct llorch_plan {
    int                    n_tokens;
    bool                   merge;
    struct llorch_graph    graph; /* the prepared graph's structure */
    struct llorch_identity identity;
    struct llorch_schedule ready; /* every item at the node that makes it final */
    /* A graph as llama.cpp allocates it unasked: every item at a graph
     * split, as few splits as liveness allows. */
    struct llorch_schedule splits;
    /* A graph whose nodes `marks` were marked as graph outputs before it
     * was allocated (the patched llama.cpp asks the eval callback first):
     * their memory outlives the graph, so their items are all read after
     * the last node, in one split that the graph has anyway; the rest keep
     * points of their own. */
    struct llorch_schedule outputs;
    int                   *marks; /* storage nodes to mark, ascending */
    int                    n_marks;
    size_t                 marked_bytes; /* their size: what the compute buffer grows by */
    bool                   uses_marks;   /* marks given by llorch_plan_use_marks: llama.cpp marks them */
    /* A fed run: the tensors replaced, ascending by node. Each is a
     * capture point of the splits schedule, whether selected or not, and
     * every item in its memory is read there at the latest (before the
     * write). The outputs schedule does not know them: a fed run reads at
     * splits only. */
    struct llorch_plan_feed *feeds;
    int                      n_feeds;
};

/* Which tensors a fed run replaces: no feed (0), or a mask of
 * (1u << LLORCH_CKPT_EMBD), (1u << LLORCH_CKPT_L_OUT) and
 * (1u << LLORCH_CKPT_FFN_INP). l_out of the last layer is never fed: no
 * layer reads it. */
typedef unsigned llorch_feed_mask;

/* Builds a plan from a finished graph: identifies it, keeps the selected
 * checkpoints (and --graph-regex matches) and the fed tensors of `feed`
 * that the graph has, and places their capture points:
 * with merge, as few as liveness allows; without, each right after its
 * tensor is computed. Checkpoints whose memory is marked a graph output,
 * up to output_budget bytes in graph order (0: none), are read after the
 * graph in the outputs schedule. -1 when out of memory. */
int  llorch_plan_build(struct llorch_plan *plan, const struct llorch_graph *graph,
                       const struct llorch_identify_input *in, const llorch_ckpt_selection *sel, bool merge,
                       size_t output_budget, llorch_feed_mask feed);
void llorch_plan_free(struct llorch_plan *plan);

/* Rebuilds the outputs schedule for the given marks (storage nodes,
 * ascending): the marks that llama.cpp's graphs of this structure get.
 * -1 when out of memory. */
int llorch_plan_use_marks(struct llorch_plan *plan, const int *marks, int n_marks);

/* True when two graphs have the same structure node for node (ops, names,
 * inputs; a scheduler copy's name counts as its source's). */
bool llorch_plan_same_graph(const struct llorch_graph *a, const struct llorch_graph *b);

/* True when node i of a step's recording has the structure of node i of the
 * plan's graph: same op, name, and inputs (the same weights and caches). */
bool llorch_plan_matches(const struct llorch_plan *plan, const struct llorch_graph *step, int i);

#endif

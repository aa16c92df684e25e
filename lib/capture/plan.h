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
};

/* Builds a plan from a finished graph: identifies it, keeps the selected
 * checkpoints (and --graph-regex matches) and places their capture points:
 * with merge, as few as liveness allows; without, each right after its
 * tensor is computed. Checkpoints whose memory is marked a graph output,
 * up to output_budget bytes in graph order (0: none), are read after the
 * graph in the outputs schedule. -1 when out of memory. */
int  llorch_plan_build(struct llorch_plan *plan, const struct llorch_graph *graph,
                       const struct llorch_identify_input *in, const llorch_ckpt_selection *sel, bool merge,
                       size_t output_budget);
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

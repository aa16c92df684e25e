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
    int                   node; /* the tensor to gather */
    int                   at;   /* the capture point: gather after this node is computed */
};

struct llorch_plan {
    int                      n_tokens;
    struct llorch_graph      graph; /* the prepared graph's structure */
    struct llorch_identity   identity;
    struct llorch_plan_item *items; /* sorted by capture point, then node */
    int                      n_items;
    int                     *points; /* distinct capture points, ascending */
    int                      n_points;
};

/* Builds a plan from a finished graph: identifies it, keeps the selected
 * checkpoints (and --graph-regex matches) and places their capture points:
 * with merge, as few as liveness allows; without, each right after its
 * tensor is computed. -1 when out of memory. */
int  llorch_plan_build(struct llorch_plan *plan, const struct llorch_graph *graph,
                       const struct llorch_identify_input *in, const llorch_ckpt_selection *sel, bool merge);
void llorch_plan_free(struct llorch_plan *plan);

/* True when node i of a step's recording has the structure of node i of the
 * plan's graph: same op, name, and inputs (the same weights and caches). */
bool llorch_plan_matches(const struct llorch_plan *plan, const struct llorch_graph *step, int i);

#endif

/* plan.c - the selected checkpoints of a prepared graph and the nodes at
 * which to capture them.
 *
 * A checkpoint is gathered after the node that makes its data final: its
 * own node, or, for the cache windows, the attention node that reads them
 * (by then this step's keys and values are written into the cache). */
#define _POSIX_C_SOURCE 200809L
#include "plan.h"

#include <stdlib.h>
#include <string.h>

static int add_item(struct llorch_plan *p, int *cap, struct llorch_plan_item item) {
    if (p->n_items == *cap) {
        int grown_cap = *cap != 0 ? *cap * 2 : 64;
        struct llorch_plan_item *grown = realloc(p->items, (size_t) grown_cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        p->items = grown;
        *cap = grown_cap;
    }
    p->items[p->n_items++] = item;
    return 0;
}

static int by_point(const void *a, const void *b) {
    const struct llorch_plan_item *x = a, *y = b;
    if (x->at != y->at) {
        return x->at < y->at ? -1 : 1;
    }
    if (x->node != y->node) {
        return x->node < y->node ? -1 : 1;
    }
    return x->kind < y->kind ? -1 : x->kind > y->kind;
}

static int collect_points(struct llorch_plan *p) {
    p->points = malloc((size_t) (p->n_items > 0 ? p->n_items : 1) * sizeof *p->points);
    if (p->points == NULL) {
        return -1;
    }
    for (int i = 0; i < p->n_items; i++) {
        if (p->n_points == 0 || p->points[p->n_points - 1] != p->items[i].at) {
            p->points[p->n_points++] = p->items[i].at;
        }
    }
    return 0;
}

int llorch_plan_build(struct llorch_plan *p, const struct llorch_graph *graph,
                      const struct llorch_identify_input *in, const llorch_ckpt_selection *sel) {
    memset(p, 0, sizeof *p);
    p->n_tokens = in->n_tokens;
    if (llorch_graph_copy(&p->graph, graph) != 0 || llorch_identify_graph(in, &p->identity) != 0) {
        llorch_plan_free(p);
        return -1;
    }
    int cap = 0;
    for (int i = 0; i < p->identity.n_roles; i++) {
        const struct llorch_role *r = &p->identity.roles[i];
        if (llorch_ckpt_selection_has(sel, r->kind, r->layer) &&
            add_item(p, &cap, (struct llorch_plan_item) {r->kind, r->layer, r->node, r->ready}) != 0) {
            llorch_plan_free(p);
            return -1;
        }
    }
    for (int i = 0; i < graph->n_nodes; i++) {
        if (llorch_ckpt_selection_match_graph(sel, graph->nodes[i].name) &&
            add_item(p, &cap, (struct llorch_plan_item) {LLORCH_CKPT_GRAPH, -1, i, i}) != 0) {
            llorch_plan_free(p);
            return -1;
        }
    }
    qsort(p->items, (size_t) p->n_items, sizeof *p->items, by_point);
    if (collect_points(p) != 0) {
        llorch_plan_free(p);
        return -1;
    }
    return 0;
}

void llorch_plan_free(struct llorch_plan *p) {
    llorch_graph_free(&p->graph);
    llorch_identity_free(&p->identity);
    free(p->items);
    free(p->points);
    memset(p, 0, sizeof *p);
}

static bool same_input(const struct llorch_graph *a, llorch_gref ra, const struct llorch_graph *b, llorch_gref rb) {
    if (LLORCH_GREF_IS_NODE(ra) || LLORCH_GREF_IS_NODE(rb) || ra == LLORCH_GREF_NONE || rb == LLORCH_GREF_NONE) {
        return ra == rb;
    }
    const struct llorch_gleaf *la = llorch_graph_leaf(a, ra), *lb = llorch_graph_leaf(b, rb);
    if (la->kind != lb->kind) {
        return false;
    }
    /* weights and caches are the same tensors in every step; inputs are
     * rebuilt with the graph and keep their names */
    return la->kind == LLORCH_LEAF_INPUT ? strcmp(la->name, lb->name) == 0 : la->t == lb->t;
}

bool llorch_plan_matches(const struct llorch_plan *plan, const struct llorch_graph *step, int i) {
    if (i >= plan->graph.n_nodes || i >= step->n_nodes) {
        return false;
    }
    const struct llorch_gnode *a = &plan->graph.nodes[i], *b = &step->nodes[i];
    if (a->op != b->op || a->n_src != b->n_src || strcmp(a->name, b->name) != 0) {
        return false;
    }
    for (int s = 0; s < a->n_src; s++) {
        if (!same_input(&plan->graph, a->src[s], step, b->src[s])) {
            return false;
        }
    }
    return same_input(&plan->graph, a->view_src, step, b->view_src);
}

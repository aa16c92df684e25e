/* plan.c - the selected checkpoints of a prepared graph and the nodes at
 * which to capture them.
 *
 * Each checkpoint can be gathered in an interval of nodes: from the node
 * that makes its data final (its own node, or for the cache windows the
 * attention node that reads them, when this step's keys and values are in
 * the cache) to the last node before its memory can be written again.
 * ggml-alloc hands a tensor's memory to another node only after the last
 * node that reads it (or a view of it), and lets that last reader compute
 * in place only for the ops ggml_op_can_inplace names; a node that is a
 * view of it but not a pure view op (SET_ROWS, CPY, an *_inplace op) writes
 * into it. Those facts hold for any allocation of the same graph, so the
 * intervals hold for every later step with the same structure. The fewest
 * capture points that hit every interval are found greedily (by interval
 * end): each point is one graph split, however many checkpoints it
 * gathers.
 *
 * With several backends the scheduler copies tensors between splits
 * outside the graph's nodes; there every checkpoint keeps its own point. */
#define _POSIX_C_SOURCE 200809L
#include "plan.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

static int add_item(struct llorch_plan *p, int *cap, struct llorch_plan_item item) {
    if (p->n_items == *cap) {
        int                      grown_cap = *cap != 0 ? *cap * 2 : 64;
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

/* ggml-alloc's list: ops whose node may take its last input's memory. */
static bool can_be_inplace(enum ggml_op op) {
    switch (op) {
        case GGML_OP_FILL:
        case GGML_OP_SCALE:
        case GGML_OP_DIAG_MASK_ZERO:
        case GGML_OP_DIAG_MASK_INF:
        case GGML_OP_ADD:
        case GGML_OP_ADD_ID:
        case GGML_OP_ADD1:
        case GGML_OP_SUB:
        case GGML_OP_MUL:
        case GGML_OP_DIV:
        case GGML_OP_SQR:
        case GGML_OP_SQRT:
        case GGML_OP_LOG:
        case GGML_OP_UNARY:
        case GGML_OP_ROPE:
        case GGML_OP_ROPE_BACK:
        case GGML_OP_SILU_BACK:
        case GGML_OP_RMS_NORM:
        case GGML_OP_RMS_NORM_BACK:
        case GGML_OP_CLAMP:
        case GGML_OP_SOFT_MAX:
        case GGML_OP_SOFT_MAX_BACK:
            return true;
        default:
            return false;
    }
}

/* The memory a node's data lives in: the node itself, or what it views. */
static llorch_gref storage_of(const struct llorch_graph *g, int node) {
    return g->nodes[node].view_src != LLORCH_GREF_NONE ? g->nodes[node].view_src : node;
}

static bool reads(const struct llorch_gnode *n, const bool *mem, int n_nodes) {
    for (int s = 0; s < n->n_src; s++) {
        if (LLORCH_GREF_IS_NODE(n->src[s]) && n->src[s] < n_nodes && mem[n->src[s]]) {
            return true;
        }
    }
    return false;
}

/* The last node at whose completion the data of `node` is still intact. */
static int last_intact(const struct llorch_graph *g, int node, int ready, bool *in_mem) {
    llorch_gref root = storage_of(g, node);
    /* in_mem: the nodes whose data lives in root's memory */
    for (int i = 0; i < g->n_nodes; i++) {
        in_mem[i] = i == root || g->nodes[i].view_src == root;
    }
    int last_read = -1;
    for (int i = ready + 1; i < g->n_nodes; i++) {
        const struct llorch_gnode *n = &g->nodes[i];
        bool                       writes = n->view_src == root && !llorch_graph_is_view_op(n->op);
        if (writes) {
            return i - 1; /* SET_ROWS into a cache, an in-place op */
        }
        if (reads(n, in_mem, g->n_nodes)) {
            last_read = i;
        }
    }
    if (LLORCH_GREF_IS_LEAF(root) || last_read < 0) {
        return g->n_nodes - 1; /* state outlives the graph; an unread node is never freed */
    }
    return can_be_inplace(g->nodes[last_read].op) ? last_read - 1 : last_read;
}

/* One capture point per checkpoint, or where several backends copy
 * tensors outside the graph (leaves named "BACKEND#name#N"). */
static bool single_backend(const struct llorch_graph *g) {
    for (int i = 0; i < g->n_leaves; i++) {
        if (g->leaves[i].kind == LLORCH_LEAF_INPUT && strchr(g->leaves[i].name, '#') != NULL) {
            return false;
        }
    }
    return true;
}

/* Moves each item's capture point to the end of its interval, then lets
 * every point gather all the items whose interval it falls in. */
static int merge_points(struct llorch_plan *p) {
    const struct llorch_graph *g = &p->graph;
    int                        n = p->n_items;
    int                       *until = malloc((size_t) (n > 0 ? n : 1) * sizeof *until);
    bool                      *in_mem = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *in_mem);
    int                       *order = malloc((size_t) (n > 0 ? n : 1) * sizeof *order);
    bool                      *done = calloc((size_t) (n > 0 ? n : 1), sizeof *done);
    if (until == NULL || in_mem == NULL || order == NULL || done == NULL) {
        free(until);
        free(in_mem);
        free(order);
        free(done);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        until[i] = last_intact(g, p->items[i].node, p->items[i].at, in_mem);
        until[i] = until[i] < p->items[i].at ? p->items[i].at : until[i];
        order[i] = i;
    }
    /* by interval end (insertion sort: plans hold hundreds of items) */
    for (int i = 1; i < n; i++) {
        int x = order[i], j = i;
        while (j > 0 && until[order[j - 1]] > until[x]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    for (int k = 0; k < n; k++) {
        int i = order[k];
        if (done[i]) {
            continue;
        }
        int point = until[i];
        for (int j = 0; j < n; j++) {
            if (!done[j] && p->items[j].at <= point && point <= until[j]) {
                p->items[j].at = point;
                done[j] = true;
            }
        }
    }
    free(until);
    free(in_mem);
    free(order);
    free(done);
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

int llorch_plan_build(struct llorch_plan *p, const struct llorch_graph *graph, const struct llorch_identify_input *in,
                      const llorch_ckpt_selection *sel, bool merge) {
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
            add_item(p, &cap, (struct llorch_plan_item){r->kind, r->layer, r->node, r->ready}) != 0) {
            llorch_plan_free(p);
            return -1;
        }
    }
    for (int i = 0; i < graph->n_nodes; i++) {
        if (llorch_ckpt_selection_match_graph(sel, graph->nodes[i].name) &&
            add_item(p, &cap, (struct llorch_plan_item){LLORCH_CKPT_GRAPH, -1, i, i}) != 0) {
            llorch_plan_free(p);
            return -1;
        }
    }
    if (merge && single_backend(graph) && merge_points(p) != 0) {
        llorch_plan_free(p);
        return -1;
    }
    llorch_sort(p->items, (size_t) p->n_items, sizeof *p->items, by_point);
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

/* The length of an input's name without the scheduler's copy number: an
 * input copied to another backend is "BACKEND#name#N", and N cycles over
 * the scheduler's pipeline copies from one step to the next. */
static size_t name_without_copy(const char *name) {
    const char *hash = strrchr(name, '#');
    size_t      n = strlen(name);
    if (hash == NULL || hash == name || hash[1] == '\0' || strspn(hash + 1, "0123456789") != strlen(hash + 1)) {
        return n;
    }
    return (size_t) (hash - name);
}

static bool same_input_name(const char *a, const char *b) {
    size_t n = name_without_copy(a);
    return n == name_without_copy(b) && strncmp(a, b, n) == 0;
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
    return la->kind == LLORCH_LEAF_INPUT ? same_input_name(la->name, lb->name) : la->t == lb->t;
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

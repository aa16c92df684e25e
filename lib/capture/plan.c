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

static int add_item(struct llorch_schedule *s, int *cap, struct llorch_plan_item item) {
    if (s->n_items == *cap) {
        int                      grown_cap = *cap != 0 ? *cap * 2 : 64;
        struct llorch_plan_item *grown = realloc(s->items, (size_t) grown_cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        s->items = grown;
        *cap = grown_cap;
    }
    s->items[s->n_items++] = item;
    return 0;
}

static int int_compare(const void *a, const void *b) {
    int x = *(const int *) a, y = *(const int *) b;
    return x < y ? -1 : x > y;
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

/* The first node after `ready` that writes into root's memory (SET_ROWS
 * into a cache, an in-place op), or -1. Marking root a graph output does
 * not stop such a write. */
static int first_writer_after(const struct llorch_graph *g, llorch_gref root, int ready) {
    for (int i = ready + 1; i < g->n_nodes; i++) {
        if (g->nodes[i].view_src == root && !llorch_graph_is_view_op(g->nodes[i].op)) {
            return i;
        }
    }
    return -1;
}

/* The last node at whose completion the data of `node` is still intact. */
static int last_intact(const struct llorch_graph *g, int node, int ready, bool *in_mem) {
    llorch_gref root = storage_of(g, node);
    int         writer = first_writer_after(g, root, ready);
    if (writer >= 0) {
        return writer - 1;
    }
    /* in_mem: the nodes whose data lives in root's memory */
    for (int i = 0; i < g->n_nodes; i++) {
        in_mem[i] = i == root || g->nodes[i].view_src == root;
    }
    int last_read = -1;
    for (int i = ready + 1; i < g->n_nodes; i++) {
        if (reads(&g->nodes[i], in_mem, g->n_nodes)) {
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

/* A fed run overwrites each fed tensor at its capture point: an item in
 * that memory, ready by then, must be read there at the latest. (Another
 * node's memory cannot be the fed tensor's while that node's data is still
 * to be read: ggml-alloc gives a node's memory to a later node only after
 * its last reader, which last_intact already ends its interval at.) */
static int feed_limit(const struct llorch_graph *g, const struct llorch_plan_item *it, int until,
                      const struct llorch_plan_feed *feeds, int n_feeds) {
    llorch_gref root = storage_of(g, it->node);
    for (int f = 0; f < n_feeds; f++) {
        if (storage_of(g, feeds[f].node) == root && it->at <= feeds[f].node && feeds[f].node < until) {
            until = feeds[f].node;
        }
    }
    return until;
}

/* Moves each item's capture point to the end of its interval, then lets
 * every point gather all the items whose interval it falls in. */
static int merge_points(const struct llorch_graph *g, struct llorch_schedule *s, const struct llorch_plan_feed *feeds,
                        int n_feeds) {
    int   n = s->n_items;
    int  *until = malloc((size_t) (n > 0 ? n : 1) * sizeof *until);
    bool *in_mem = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *in_mem);
    int  *order = malloc((size_t) (n > 0 ? n : 1) * sizeof *order);
    bool *done = calloc((size_t) (n > 0 ? n : 1), sizeof *done);
    if (until == NULL || in_mem == NULL || order == NULL || done == NULL) {
        void *const owned[] = {until, in_mem, order, done};
        llorch_free_all(owned, 4);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        until[i] = last_intact(g, s->items[i].node, s->items[i].at, in_mem);
        until[i] = until[i] < s->items[i].at ? s->items[i].at : until[i];
        until[i] = feed_limit(g, &s->items[i], until[i], feeds, n_feeds);
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
            if (!done[j] && s->items[j].at <= point && point <= until[j]) {
                s->items[j].at = point;
                done[j] = true;
            }
        }
    }
    void *const owned[] = {until, in_mem, order, done};
    llorch_free_all(owned, 4);
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

/* Sorts the items and lists their distinct points, and the fed tensors'
 * nodes (a point each, whether an item is read there or not). */
static int collect_points(struct llorch_schedule *s, const struct llorch_plan_feed *feeds, int n_feeds) {
    llorch_sort(s->items, (size_t) s->n_items, sizeof *s->items, by_point);
    int n = s->n_items + n_feeds;
    s->points = malloc((size_t) (n > 0 ? n : 1) * sizeof *s->points);
    if (s->points == NULL) {
        return -1;
    }
    for (int i = 0; i < s->n_items; i++) {
        s->points[i] = s->items[i].at;
    }
    for (int f = 0; f < n_feeds; f++) {
        s->points[s->n_items + f] = feeds[f].node;
    }
    llorch_sort(s->points, (size_t) n, sizeof *s->points, int_compare);
    for (int i = 0; i < n; i++) {
        if (s->n_points == 0 || s->points[s->n_points - 1] != s->points[i]) {
            s->points[s->n_points++] = s->points[i];
        }
    }
    return 0;
}

static int copy_items(struct llorch_schedule *dst, const struct llorch_schedule *src) {
    dst->items = malloc((size_t) (src->n_items > 0 ? src->n_items : 1) * sizeof *dst->items);
    if (dst->items == NULL) {
        return -1;
    }
    if (src->n_items > 0) { /* an empty plan's list may be NULL, which memcpy does not take */
        memcpy(dst->items, src->items, (size_t) src->n_items * sizeof *dst->items);
    }
    dst->n_items = src->n_items;
    return 0;
}

static int add_mark(struct llorch_plan *p, int node) {
    int *grown = realloc(p->marks, (size_t) (p->n_marks + 1) * sizeof *grown);
    if (grown == NULL) {
        return -1;
    }
    p->marks = grown;
    p->marks[p->n_marks++] = node;
    p->marked_bytes += llorch_graph_node_bytes(&p->graph, node);
    return 0;
}

static bool is_marked(const struct llorch_plan *p, int node) {
    for (int i = 0; i < p->n_marks; i++) {
        if (p->marks[i] == node) {
            return true;
        }
    }
    return false;
}

/* Whether item i can be read after the graph: nothing writes into its
 * memory later, and that memory is state that outlives the graph, or a
 * marked node. With a budget, an unmarked node is marked while the marks
 * stay within it; without, the marks are given. */
static int choose_output(struct llorch_plan *p, struct llorch_plan_item *it, size_t budget) {
    const struct llorch_graph *g = &p->graph;
    llorch_gref                root = storage_of(g, it->node);
    if (first_writer_after(g, root, it->at) >= 0) {
        return 0;
    }
    if (LLORCH_GREF_IS_LEAF(root)) {
        it->output = llorch_graph_leaf(g, root)->kind == LLORCH_LEAF_STATE;
        return 0;
    }
    if (is_marked(p, root)) {
        it->output = true;
        return 0;
    }
    if (budget == 0 || p->marked_bytes + llorch_graph_node_bytes(g, root) > budget) {
        return 0;
    }
    it->output = true;
    return add_mark(p, root);
}

/* The outputs schedule: what can be read after the graph is, at its last
 * node; the rest as in the splits schedule. */
static int schedule_outputs(struct llorch_plan *p, size_t budget) {
    struct llorch_schedule *s = &p->outputs;
    free(s->items);
    free(s->points);
    memset(s, 0, sizeof *s);
    if (copy_items(s, &p->ready) != 0) {
        return -1;
    }
    for (int i = 0; i < s->n_items; i++) {
        if (choose_output(p, &s->items[i], budget) != 0) {
            return -1;
        }
        if (s->items[i].output) {
            s->items[i].at = p->graph.n_nodes - 1;
        }
    }
    llorch_sort(p->marks, (size_t) p->n_marks, sizeof *p->marks, int_compare);
    if (p->merge && single_backend(&p->graph) && merge_points(&p->graph, s, NULL, 0) != 0) {
        return -1;
    }
    return collect_points(s, NULL, 0);
}

int llorch_plan_use_marks(struct llorch_plan *p, const int *marks, int n_marks) {
    int *copy = malloc((size_t) (n_marks > 0 ? n_marks : 1) * sizeof *copy);
    if (copy == NULL) {
        return -1;
    }
    if (n_marks > 0) {
        memcpy(copy, marks, (size_t) n_marks * sizeof *copy);
    }
    free(p->marks);
    p->marks = copy;
    p->n_marks = n_marks;
    p->marked_bytes = 0;
    for (int i = 0; i < n_marks; i++) {
        p->marked_bytes += llorch_graph_node_bytes(&p->graph, marks[i]);
    }
    p->uses_marks = true;
    return schedule_outputs(p, 0);
}

/* The items of the selected checkpoints, each at the node that makes it
 * final. */
static int collect_items(struct llorch_plan *p, const struct llorch_graph *graph, const llorch_ckpt_selection *sel,
                         struct llorch_schedule *s) {
    int cap = 0;
    for (int i = 0; i < p->identity.n_roles; i++) {
        const struct llorch_role *r = &p->identity.roles[i];
        if (llorch_ckpt_selection_has(sel, r->kind, r->layer) &&
            add_item(s, &cap, (struct llorch_plan_item){r->kind, r->layer, r->node, r->ready, false}) != 0) {
            return -1;
        }
    }
    for (int i = 0; i < graph->n_nodes; i++) {
        if (llorch_ckpt_selection_match_graph(sel, graph->nodes[i].name) &&
            add_item(s, &cap, (struct llorch_plan_item){LLORCH_CKPT_GRAPH, -1, i, i, false}) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The fed tensors that the graph has, ascending by node (feed.c checks
 * that none is missing). */
static int collect_feeds(struct llorch_plan *p, const struct llorch_identify_input *in, llorch_feed_mask feed) {
    p->feeds = malloc((size_t) (p->identity.n_roles > 0 ? p->identity.n_roles : 1) * sizeof *p->feeds);
    if (p->feeds == NULL) {
        return -1;
    }
    for (int i = 0; i < p->identity.n_roles; i++) { /* roles are sorted by node */
        const struct llorch_role *r = &p->identity.roles[i];
        bool                      last_l_out = r->kind == LLORCH_CKPT_L_OUT && r->layer >= in->n_layer - 1;
        if ((feed & (1u << r->kind)) != 0 && !last_l_out &&
            (r->kind == LLORCH_CKPT_EMBD || r->kind == LLORCH_CKPT_L_OUT || r->kind == LLORCH_CKPT_FFN_INP)) {
            p->feeds[p->n_feeds++] = (struct llorch_plan_feed){r->kind, r->layer, r->node};
        }
    }
    return 0;
}

int llorch_plan_build(struct llorch_plan *p, const struct llorch_graph *graph, const struct llorch_identify_input *in,
                      const llorch_ckpt_selection *sel, bool merge, size_t output_budget, llorch_feed_mask feed) {
    memset(p, 0, sizeof *p);
    p->n_tokens = in->n_tokens;
    p->merge = merge;
    int rc = -1;
    if (llorch_graph_copy(&p->graph, graph) == 0 && llorch_identify_graph(in, &p->identity) == 0 &&
        collect_feeds(p, in, feed) == 0 && collect_items(p, graph, sel, &p->ready) == 0 &&
        schedule_outputs(p, output_budget) == 0 && copy_items(&p->splits, &p->ready) == 0 &&
        (!merge || !single_backend(&p->graph) || merge_points(&p->graph, &p->splits, p->feeds, p->n_feeds) == 0)) {
        rc = collect_points(&p->splits, p->feeds, p->n_feeds);
    }
    if (rc != 0) {
        llorch_plan_free(p);
    }
    return rc;
}

void llorch_plan_free(struct llorch_plan *p) {
    llorch_graph_free(&p->graph);
    llorch_identity_free(&p->identity);
    void *const owned[] = {p->ready.items,    p->splits.items, p->splits.points, p->outputs.items,
                           p->outputs.points, p->marks,        p->feeds};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
    memset(p, 0, sizeof *p);
}

/* An input's name without what the scheduler adds to a copy on another
 * backend: "BACKEND#name#N" is "name" (N cycles over the scheduler's
 * pipeline copies from one step to the next, and a graph that llama.cpp
 * has not split yet has no copies). *len receives its length. */
static const char *name_without_copy(const char *name, size_t *len) {
    const char *first = strchr(name, '#'), *last = strrchr(name, '#');
    *len = strlen(name);
    if (first == NULL || first == last || last[1] == '\0' || strspn(last + 1, "0123456789") != strlen(last + 1)) {
        return name;
    }
    *len = (size_t) (last - first - 1);
    return first + 1;
}

static bool same_input_name(const char *a, const char *b) {
    size_t      na, nb;
    const char *sa = name_without_copy(a, &na), *sb = name_without_copy(b, &nb);
    return na == nb && strncmp(sa, sb, na) == 0;
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

static bool same_node(const struct llorch_graph *ga, const struct llorch_graph *gb, int i) {
    if (i >= ga->n_nodes || i >= gb->n_nodes) {
        return false;
    }
    const struct llorch_gnode *a = &ga->nodes[i], *b = &gb->nodes[i];
    if (a->op != b->op || a->n_src != b->n_src || strcmp(a->name, b->name) != 0) {
        return false;
    }
    for (int s = 0; s < a->n_src; s++) {
        if (!same_input(ga, a->src[s], gb, b->src[s])) {
            return false;
        }
    }
    return same_input(ga, a->view_src, gb, b->view_src);
}

bool llorch_plan_matches(const struct llorch_plan *plan, const struct llorch_graph *step, int i) {
    return same_node(&plan->graph, step, i);
}

bool llorch_plan_same_graph(const struct llorch_graph *a, const struct llorch_graph *b) {
    if (a->n_nodes != b->n_nodes) {
        return false;
    }
    for (int i = 0; i < a->n_nodes; i++) {
        if (!same_node(a, b, i)) {
            return false;
        }
    }
    return true;
}

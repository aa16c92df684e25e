/* graph.c - records the nodes of one step and links them both ways. */
#define _POSIX_C_SOURCE 200809L
#include "graph.h"

#include <ggml-backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llorch_graph_init(struct llorch_graph *g) {
    memset(g, 0, sizeof *g);
}

void llorch_graph_reset(struct llorch_graph *g) {
    g->n_nodes = 0;
    g->n_leaves = 0;
    g->map_used = 0;
    if (g->map != NULL) {
        memset(g->map, 0, g->map_cap * sizeof *g->map);
    }
    free(g->consumers);
    g->consumers = NULL;
    g->finished = false;
    g->oom = false;
}

void llorch_graph_free(struct llorch_graph *g) {
    llorch_graph_reset(g); /* frees the consumer lists */
    free(g->nodes);
    free(g->leaves);
    free(g->map);
    memset(g, 0, sizeof *g);
}

/* --- the pointer map (open addressing) ------------------------------------ */

static size_t slot_of(const struct llorch_graph *g, const struct ggml_tensor *t) {
    uintptr_t h = (uintptr_t) t;
    h ^= h >> 17;
    h *= (uintptr_t) 0x9E3779B97F4A7C15ull;
    size_t i = (size_t) (h ^ (h >> 29)) & (g->map_cap - 1);
    while (g->map[i].t != NULL && g->map[i].t != t) {
        i = (i + 1) & (g->map_cap - 1);
    }
    return i;
}

static int map_grow(struct llorch_graph *g) {
    size_t                    cap = g->map_cap != 0 ? g->map_cap * 2 : 1024;
    struct llorch_graph_slot *old = g->map;
    size_t                    old_cap = g->map_cap;
    g->map = calloc(cap, sizeof *g->map);
    if (g->map == NULL) {
        g->map = old;
        return -1;
    }
    g->map_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].t != NULL) {
            g->map[slot_of(g, old[i].t)] = old[i];
        }
    }
    free(old);
    return 0;
}

static int map_put(struct llorch_graph *g, const struct ggml_tensor *t, llorch_gref ref) {
    if ((g->map_used + 1) * 2 > g->map_cap && map_grow(g) != 0) {
        return -1;
    }
    size_t i = slot_of(g, t);
    if (g->map[i].t == NULL) {
        g->map_used++;
    }
    g->map[i].t = t;
    g->map[i].ref = ref;
    return 0;
}

static llorch_gref map_get(const struct llorch_graph *g, const struct ggml_tensor *t) {
    if (g->map_cap == 0) {
        return LLORCH_GREF_NONE;
    }
    size_t i = slot_of(g, t);
    return g->map[i].t == t ? g->map[i].ref : LLORCH_GREF_NONE;
}

/* --- leaves ---------------------------------------------------------------- */

/* "blk.12.attn_q.weight" -> 12; "cache_k_l7" -> 7; else -1. */
static int name_layer(const char *name, enum llorch_leaf_kind kind) {
    int layer = -1;
    int used = 0;
    if (kind == LLORCH_LEAF_WEIGHT) {
        return sscanf(name, "blk.%d.%n", &layer, &used) == 1 && used > 0 ? layer : -1;
    }
    const char *l = strrchr(name, '_');
    if (kind != LLORCH_LEAF_STATE || l == NULL || l[1] != 'l' || l[2] < '0' || l[2] > '9') {
        return -1;
    }
    return sscanf(l + 2, "%d%n", &layer, &used) == 1 && l[2 + used] == '\0' ? layer : -1;
}

static enum llorch_leaf_kind leaf_kind(const struct ggml_tensor *t) {
    const struct ggml_tensor *base = t->view_src != NULL ? t->view_src : t;
    if (base->buffer == NULL) {
        return LLORCH_LEAF_INPUT;
    }
    switch (ggml_backend_buffer_get_usage(base->buffer)) {
        case GGML_BACKEND_BUFFER_USAGE_WEIGHTS:
            return LLORCH_LEAF_WEIGHT;
        case GGML_BACKEND_BUFFER_USAGE_COMPUTE:
            return LLORCH_LEAF_INPUT;
        default:
            /* the KV cache and recurrent states live in plain buffers that
             * outlive the graph; per-step inputs live in compute buffers */
            return LLORCH_LEAF_STATE;
    }
}

static llorch_gref add_leaf(struct llorch_graph *g, const struct ggml_tensor *t) {
    if (g->n_leaves == g->cap_leaves) {
        int                  cap = g->cap_leaves != 0 ? g->cap_leaves * 2 : 256;
        struct llorch_gleaf *grown = realloc(g->leaves, (size_t) cap * sizeof *grown);
        if (grown == NULL) {
            return LLORCH_GREF_NONE;
        }
        g->leaves = grown;
        g->cap_leaves = cap;
    }
    struct llorch_gleaf *l = &g->leaves[g->n_leaves];
    l->t = t;
    l->kind = leaf_kind(t);
    snprintf(l->name, sizeof l->name, "%s", t->name);
    l->layer = name_layer(l->name, l->kind);
    llorch_gref ref = LLORCH_GREF_LEAF(g->n_leaves);
    if (map_put(g, t, ref) != 0) {
        return LLORCH_GREF_NONE;
    }
    g->n_leaves++;
    return ref;
}

/* With several backends the scheduler feeds a split copies of tensors
 * computed in another, named "BACKEND#name#N". The node a copy was made
 * from (the latest node of that name and shape) stands for it, so that the
 * dataflow reads the same across splits. */
static llorch_gref copy_source(const struct llorch_graph *g, const struct ggml_tensor *t) {
    const char *first = strchr(t->name, '#');
    const char *last = strrchr(t->name, '#');
    if (first == NULL || last == first || t->op != GGML_OP_NONE) {
        return LLORCH_GREF_NONE;
    }
    size_t len = (size_t) (last - first - 1);
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct llorch_gnode *n = &g->nodes[i];
        if (strlen(n->name) == len && strncmp(n->name, first + 1, len) == 0 &&
            memcmp(n->ne, t->ne, sizeof n->ne) == 0) {
            return i;
        }
    }
    return LLORCH_GREF_NONE;
}

static llorch_gref ref_of(struct llorch_graph *g, const struct ggml_tensor *t) {
    if (t == NULL) {
        return LLORCH_GREF_NONE;
    }
    llorch_gref r = map_get(g, t);
    if (r == LLORCH_GREF_NONE) {
        r = copy_source(g, t);
    }
    return r != LLORCH_GREF_NONE ? r : add_leaf(g, t);
}

/* --- nodes ----------------------------------------------------------------- */

int llorch_graph_add(struct llorch_graph *g, const struct ggml_tensor *t) {
    if (g->oom) {
        return -1;
    }
    if (g->n_nodes == g->cap_nodes) {
        int                  cap = g->cap_nodes != 0 ? g->cap_nodes * 2 : 1024;
        struct llorch_gnode *grown = realloc(g->nodes, (size_t) cap * sizeof *grown);
        if (grown == NULL) {
            g->oom = true;
            return -1;
        }
        g->nodes = grown;
        g->cap_nodes = cap;
    }
    struct llorch_gnode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->t = t;
    n->op = t->op;
    n->type = t->type;
    memcpy(n->ne, t->ne, sizeof n->ne);
    n->output = (t->flags & GGML_TENSOR_FLAG_OUTPUT) != 0;
    snprintf(n->name, sizeof n->name, "%s", t->name);
    for (int i = 0; i < GGML_MAX_SRC; i++) {
        n->src[i] = LLORCH_GREF_NONE;
    }
    for (int i = 0; i < GGML_MAX_SRC && t->src[i] != NULL; i++) {
        n->src_t[i] = t->src[i];
        n->src[i] = ref_of(g, t->src[i]);
        n->n_src = i + 1;
        g->oom |= n->src[i] == LLORCH_GREF_NONE;
    }
    n->view_src = ref_of(g, t->view_src);
    g->oom |= t->view_src != NULL && n->view_src == LLORCH_GREF_NONE;
    if (g->oom || map_put(g, t, g->n_nodes) != 0) {
        g->oom = true;
        return -1;
    }
    return g->n_nodes++;
}

int llorch_graph_finish(struct llorch_graph *g) {
    if (g->oom) {
        return -1;
    }
    size_t edges = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].n_consumers = 0;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        for (int s = 0; s < g->nodes[i].n_src; s++) {
            if (LLORCH_GREF_IS_NODE(g->nodes[i].src[s])) {
                g->nodes[g->nodes[i].src[s]].n_consumers++;
                edges++;
            }
        }
    }
    free(g->consumers);
    g->consumers = malloc((edges > 0 ? edges : 1) * sizeof *g->consumers);
    if (g->consumers == NULL) {
        g->oom = true;
        return -1;
    }
    int offset = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].first_consumer = offset;
        offset += g->nodes[i].n_consumers;
        g->nodes[i].n_consumers = 0;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        for (int s = 0; s < g->nodes[i].n_src; s++) {
            llorch_gref r = g->nodes[i].src[s];
            if (LLORCH_GREF_IS_NODE(r)) {
                struct llorch_gnode *p = &g->nodes[r];
                /* a node reading the same input twice is one consumer */
                if (p->n_consumers == 0 || g->consumers[p->first_consumer + p->n_consumers - 1] != i) {
                    g->consumers[p->first_consumer + p->n_consumers++] = i;
                }
            }
        }
    }
    g->finished = true;
    return 0;
}

int llorch_graph_copy(struct llorch_graph *dst, const struct llorch_graph *src) {
    llorch_graph_init(dst);
    size_t edges = 0;
    for (int i = 0; i < src->n_nodes; i++) {
        edges += (size_t) src->nodes[i].n_consumers;
    }
    dst->nodes = malloc((size_t) (src->n_nodes > 0 ? src->n_nodes : 1) * sizeof *dst->nodes);
    dst->leaves = malloc((size_t) (src->n_leaves > 0 ? src->n_leaves : 1) * sizeof *dst->leaves);
    dst->consumers = malloc((edges > 0 ? edges : 1) * sizeof *dst->consumers);
    if (dst->nodes == NULL || dst->leaves == NULL || dst->consumers == NULL) {
        llorch_graph_free(dst);
        return -1;
    }
    memcpy(dst->nodes, src->nodes, (size_t) src->n_nodes * sizeof *dst->nodes);
    memcpy(dst->leaves, src->leaves, (size_t) src->n_leaves * sizeof *dst->leaves);
    if (src->consumers != NULL) {
        memcpy(dst->consumers, src->consumers, edges * sizeof *dst->consumers);
    }
    dst->n_nodes = dst->cap_nodes = src->n_nodes;
    dst->n_leaves = dst->cap_leaves = src->n_leaves;
    dst->finished = src->finished;
    return 0;
}

/* --- queries --------------------------------------------------------------- */

size_t llorch_graph_node_bytes(const struct llorch_graph *g, int i) {
    const struct llorch_gnode *n = &g->nodes[i];
    return ggml_row_size(n->type, n->ne[0]) * (size_t) (n->ne[1] * n->ne[2] * n->ne[3]);
}

size_t llorch_graph_bytes(const struct llorch_graph *g) {
    size_t sum = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        sum += llorch_graph_node_bytes(g, i);
    }
    return sum;
}

bool llorch_graph_is_view_op(enum ggml_op op) {
    return op == GGML_OP_VIEW || op == GGML_OP_RESHAPE || op == GGML_OP_PERMUTE || op == GGML_OP_TRANSPOSE;
}

const struct llorch_gleaf *llorch_graph_matmul_weight(const struct llorch_graph *g, int node) {
    const struct llorch_gnode *n = &g->nodes[node];
    if (n->op != GGML_OP_MUL_MAT && n->op != GGML_OP_MUL_MAT_ID) {
        return NULL;
    }
    const struct llorch_gleaf *w = llorch_graph_leaf(g, n->src[0]);
    return w != NULL && w->kind == LLORCH_LEAF_WEIGHT ? w : NULL;
}

int llorch_graph_node_inputs(const struct llorch_graph *g, int node, int *inputs, int max) {
    int n = 0;
    for (int s = 0; s < g->nodes[node].n_src; s++) {
        llorch_gref r = g->nodes[node].src[s];
        if (LLORCH_GREF_IS_NODE(r) && n < max) {
            inputs[n++] = r;
        }
    }
    return n;
}

void llorch_graph_ancestors(const struct llorch_graph *g, int node, uint8_t *mark) {
    memset(mark, 0, (size_t) g->n_nodes);
    llorch_graph_mark_ancestors(g, node, mark);
}

void llorch_graph_mark_ancestors(const struct llorch_graph *g, int node, uint8_t *mark) {
    mark[node] = 1;
    /* sources always precede their consumers: one backward sweep suffices */
    for (int i = node; i >= 0; i--) {
        if (!mark[i]) {
            continue;
        }
        for (int s = 0; s < g->nodes[i].n_src; s++) {
            if (LLORCH_GREF_IS_NODE(g->nodes[i].src[s])) {
                mark[g->nodes[i].src[s]] = 1;
            }
        }
    }
}

/* --- printing -------------------------------------------------------------- */

static void print_ref(const struct llorch_graph *g, llorch_gref r, FILE *out) {
    if (LLORCH_GREF_IS_NODE(r)) {
        fprintf(out, "%d", r);
    } else if (LLORCH_GREF_IS_LEAF(r)) {
        const struct llorch_gleaf *l = llorch_graph_leaf(g, r);
        static const char         *kinds[] = {"weight", "state", "input"};
        fprintf(out, "%s:%s", kinds[l->kind], l->name);
    } else {
        fputc('-', out);
    }
}

void llorch_graph_print_node(const struct llorch_graph *g, int i, FILE *out) {
    const struct llorch_gnode *n = &g->nodes[i];
    fprintf(out, "%d\t%s\t%s\t%s\t%lld,%lld,%lld,%lld\t", i, ggml_op_name(n->op), ggml_type_name(n->type), n->name,
            (long long) n->ne[0], (long long) n->ne[1], (long long) n->ne[2], (long long) n->ne[3]);
    print_ref(g, n->view_src, out);
    fputc('\t', out);
    for (int s = 0; s < n->n_src; s++) {
        fputs(s > 0 ? " | " : "", out);
        print_ref(g, n->src[s], out);
    }
}

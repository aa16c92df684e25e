/* graph.h - the ggml graph of one step, as the scheduler computes it.
 *
 * The eval callback is asked about every node once, in execution order,
 * before that node is computed. graph.c records each node with references
 * to its inputs (earlier nodes, or leaves: weights, KV-cache and recurrent
 * state, per-step inputs), and then adds the consumers of every node. With
 * both directions, identify.c can say what a tensor is in the dataflow
 * (what enters the KQ matmul, what is added to the residual) instead of
 * trusting its name, and plan.c can say how long a tensor stays intact. */
#ifndef LLORCH_GRAPH_H
#define LLORCH_GRAPH_H

#include <ggml.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An input of a node: a node index (>= 0), a leaf, or none. */
typedef int32_t llorch_gref;
#define LLORCH_GREF_NONE          INT32_MIN
#define LLORCH_GREF_LEAF(i)       (-1 - (int32_t) (i))
#define LLORCH_GREF_IS_NODE(r)    ((r) >= 0)
#define LLORCH_GREF_IS_LEAF(r)    ((r) < 0 && (r) != LLORCH_GREF_NONE)
#define LLORCH_GREF_LEAF_INDEX(r) (-1 - (r))

enum llorch_leaf_kind {
    LLORCH_LEAF_WEIGHT, /* a model parameter (its buffer is marked WEIGHTS)      */
    LLORCH_LEAF_STATE,  /* KV cache or recurrent state: persists across steps    */
    LLORCH_LEAF_INPUT,  /* tokens, positions, masks, scheduler copies: per step  */
};

struct llorch_gleaf {
    const struct ggml_tensor *t;
    enum llorch_leaf_kind     kind;
    int                       layer; /* "blk.N." weights and "..._lN" states; else -1 */
    char                      name[GGML_MAX_NAME];
};

struct llorch_gnode {
    const struct ggml_tensor *t; /* valid only during the step it was recorded in */
    const struct ggml_tensor *src_t[GGML_MAX_SRC];
    enum ggml_op              op;
    enum ggml_type            type;
    int64_t                   ne[4];
    llorch_gref               src[GGML_MAX_SRC];
    int                       n_src;
    llorch_gref               view_src;
    bool                      output;                      /* llama.cpp marked it a graph output (logits, embeddings) */
    int                       first_consumer, n_consumers; /* into llorch_graph.consumers */
    char                      name[GGML_MAX_NAME];
};

struct llorch_graph_slot { /* tensor pointer -> reference */
    const struct ggml_tensor *t;
    llorch_gref               ref;
};

struct llorch_graph {
    struct llorch_gnode      *nodes;
    int                       n_nodes, cap_nodes;
    struct llorch_gleaf      *leaves;
    int                       n_leaves, cap_leaves;
    struct llorch_graph_slot *map;
    size_t                    map_cap, map_used;
    int                      *consumers; /* after llorch_graph_finish */
    bool                      finished;
    bool                      oom;
};

void llorch_graph_init(struct llorch_graph *g);
void llorch_graph_reset(struct llorch_graph *g); /* empty, keeping its memory */
void llorch_graph_free(struct llorch_graph *g);

/* Records t as the next node. Returns its index, or -1 when out of memory. */
int llorch_graph_add(struct llorch_graph *g, const struct ggml_tensor *t);
/* Adds the consumer lists. -1 when out of memory. */
int llorch_graph_finish(struct llorch_graph *g);

/* A deep copy that no longer refers to the step's tensors for lookups. */
int llorch_graph_copy(struct llorch_graph *dst, const struct llorch_graph *src);

/* --- queries -------------------------------------------------------------- */

static inline const struct llorch_gleaf *llorch_graph_leaf(const struct llorch_graph *g, llorch_gref r) {
    return LLORCH_GREF_IS_LEAF(r) ? &g->leaves[LLORCH_GREF_LEAF_INDEX(r)] : NULL;
}

static inline int64_t llorch_gnode_elements(const struct llorch_gnode *n) {
    return n->ne[0] * n->ne[1] * n->ne[2] * n->ne[3];
}

/* The bytes of node i's data, and of every node's together. */
size_t llorch_graph_node_bytes(const struct llorch_graph *g, int i);
size_t llorch_graph_bytes(const struct llorch_graph *g);

/* True for ops that only reinterpret their input's memory. */
bool llorch_graph_is_view_op(enum ggml_op op);

/* The weight leaf a MUL_MAT / MUL_MAT_ID multiplies by, or NULL. */
const struct llorch_gleaf *llorch_graph_matmul_weight(const struct llorch_graph *g, int node);

/* The number of node inputs (srcs that are nodes). */
int llorch_graph_node_inputs(const struct llorch_graph *g, int node, int *inputs, int max);

/* Marks in `mark` (n_nodes bytes) every node that `node` is computed from,
 * including itself. */
void llorch_graph_ancestors(const struct llorch_graph *g, int node, uint8_t *mark);
/* The same without clearing `mark` first: marks add up. */
void llorch_graph_mark_ancestors(const struct llorch_graph *g, int node, uint8_t *mark);

/* One tab-separated line about node i, without the newline: index, op,
 * type, name, ne (comma-separated), view source, inputs (separated by " | ").
 * A reference is a node index, or kind:name for a leaf (weight, state,
 * input). */
void llorch_graph_print_node(const struct llorch_graph *g, int i, FILE *out);

#endif

/* identify_state.c - the recurrent state a layer leaves behind: cache_r and
 * cache_s, the analogue of the KV cache for layers whose mixer is not
 * attention.
 *
 * llama.cpp keeps two state tensors per recurrent layer, one row per cell
 * (a sequence's slot). A layer reads its rows at the start of the step and
 * writes them back with a copy (CPY) of values it computed. The state of
 * the step is found by that dataflow, not by the tensors' names:
 *
 *   writer   a CPY into a view of a state leaf whose source the tokens'
 *            activations flow into, in the layer of its nearest weight:
 *            the copies of rows that are only moved between cells read
 *            the state and the per-step cell indices alone
 *   s        the leaf that a recurrence op (SSM scan, WKV, gated linear
 *            attention, delta net) reads as its state, directly or through
 *            row selection and layout ops; in a layer without attention or
 *            a recurrence op (linear attention from plain products), the
 *            one state it writes, computed from its old value
 *   r        the layer's other state leaf that its mixer is computed from:
 *            the convolution window (Mamba, delta nets, short
 *            convolutions) or the token shift (RWKV)
 *
 * The checkpoint is the row of the state that the writers wrote, read once
 * the last of them is done (capture_copy.c reads the whole row): the
 * layer's state as the next step will read it, also where the layer writes
 * it in parts (kimi-linear: one copy per convolution window). */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The state leaf a node's memory belongs to, or -1. */
static int state_leaf_of(const struct ictx *c, int node) {
    llorch_gref root = c->g->nodes[node].view_src;
    if (!LLORCH_GREF_IS_LEAF(root) || llorch_graph_leaf(c->g, root)->kind != LLORCH_LEAF_STATE) {
        return -1;
    }
    return LLORCH_GREF_LEAF_INDEX(root);
}

static bool moves_rows(enum ggml_op op) {
    return llorch_graph_is_view_op(op) || op == GGML_OP_GET_ROWS || op == GGML_OP_CONT;
}

/* True when node (a view of the leaf, or a value moved from it) reaches a
 * recurrence op through row selection and layout ops only. */
static bool reaches_recurrence(const struct ictx *c, int node, int depth) {
    const struct llorch_gnode *n = &c->g->nodes[node];
    for (int k = 0; k < n->n_consumers && depth > 0; k++) {
        int m = c->g->consumers[n->first_consumer + k];
        if (llorch_id_is_recurrence(c->g->nodes[m].op) ||
            (moves_rows(c->g->nodes[m].op) && reaches_recurrence(c, m, depth - 1))) {
            return true;
        }
    }
    return false;
}

/* Whether a recurrence op reads leaf `leaf` as its state. */
static bool is_s_leaf(const struct ictx *c, int leaf) {
    for (int i = 0; i < c->g->n_nodes; i++) {
        if (state_leaf_of(c, i) == leaf && llorch_graph_is_view_op(c->g->nodes[i].op) && reaches_recurrence(c, i, 8)) {
            return true;
        }
    }
    return false;
}

/* Whether the layer's mixer is computed from what the layer reads of leaf
 * `leaf`. */
static bool feeds_mixer(struct ictx *c, int leaf, int mixer) {
    if (mixer < 0) {
        return false;
    }
    llorch_graph_ancestors(c->g, mixer, c->anc);
    for (int i = 0; i < mixer; i++) {
        if (c->anc[i] && state_leaf_of(c, i) == leaf) {
            return true;
        }
    }
    return false;
}

struct state_writers {
    int leaf;
    int last; /* the last copy into it of a value computed from the tokens */
};

#define MAX_STATE_LEAVES 4

/* The layer's writers of each state leaf. Returns how many leaves were
 * found. */
static int find_writers(struct ictx *c, int il, struct state_writers *w) {
    const struct llorch_graph *g = c->g;
    int                        n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int leaf = g->nodes[i].op == GGML_OP_CPY ? state_leaf_of(c, i) : -1;
        if (leaf < 0 || llorch_gnode_elements(&g->nodes[i]) == 0 || !LLORCH_GREF_IS_NODE(g->nodes[i].src[0])) {
            continue;
        }
        if (c->is_const[g->nodes[i].src[0]] || llorch_id_ancestor_layer(c, i) != il) {
            continue; /* rows moved between cells, or another layer's */
        }
        int k = 0;
        while (k < n && w[k].leaf != leaf) {
            k++;
        }
        if (k == n) {
            if (n == MAX_STATE_LEAVES) {
                continue;
            }
            w[n++] = (struct state_writers){leaf, -1};
        }
        w[k].last = i;
    }
    return n;
}

/* Whether the value a writer copies is computed from what the layer read
 * of the same state: a state updated from itself. */
static bool updates_itself(struct ictx *c, const struct state_writers *w) {
    llorch_graph_ancestors(c->g, c->g->nodes[w->last].src[0], c->anc);
    for (int i = 0; i < w->last; i++) {
        if (c->anc[i] && state_leaf_of(c, i) == w->leaf) {
            return true;
        }
    }
    return false;
}

/* A layer without attention and without a recurrence op that keeps a
 * state (minimax-01's lightning attention, built from plain products): its
 * one state updated from itself is s; it has no r. */
static void linear_attention_state(struct ictx *c, int il, const struct state_writers *w, int n) {
    if (n == 1 && updates_itself(c, &w[0])) {
        llorch_id_add_role(c, LLORCH_CKPT_CACHE_S, il, w[0].last, w[0].last);
    } else {
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_S, il,
                              "layer %d of %s keeps %d states without a recurrence op reading them: which one "
                              "is its state matrix is not clear",
                              il, llorch_id_arch(c), n);
    }
    llorch_id_add_absence(c, LLORCH_CKPT_CACHE_R, il,
                          "layer %d of %s (linear attention without a recurrence op) writes no convolution "
                          "window or token shift",
                          il, llorch_id_arch(c));
}

void llorch_id_states(struct ictx *c, int il) {
    const struct layer_facts *lf = &c->layers[il];
    if (lf->mixer_op == NULL && lf->core >= 0) {
        return; /* attention keeps its state in the KV cache: cache_k, cache_v */
    }
    struct state_writers w[MAX_STATE_LEAVES];
    int                  n = find_writers(c, il, w);
    if (lf->mixer_op == NULL) {
        if (n > 0) {
            linear_attention_state(c, il, w, n);
        }
        return;
    }
    bool have_s = false;
    int  r = -1, n_r = 0;
    char names[160] = "";
    for (int k = 0; k < n; k++) {
        if (is_s_leaf(c, w[k].leaf)) {
            if (!have_s) {
                llorch_id_add_role(c, LLORCH_CKPT_CACHE_S, il, w[k].last, w[k].last);
            }
            have_s = true;
        } else if (feeds_mixer(c, w[k].leaf, lf->mixer)) { /* else not the mixer's (qwen4exp's embedding conv) */
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", n_r > 0 ? ", " : "", c->g->leaves[w[k].leaf].name);
            r = n_r++ == 0 ? k : r;
        }
    }
    if (n_r == 1) {
        llorch_id_add_role(c, LLORCH_CKPT_CACHE_R, il, w[r].last, w[r].last);
    } else if (n_r > 1) {
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_R, il,
                              "layer %d of %s writes %d states besides s that its mixer is computed from (%s): "
                              "which one is its convolution window or token shift is not clear",
                              il, llorch_id_arch(c), n_r, names);
    }
    const char *why = "layer %d of %s (%s) writes no %s state computed from its input into llama.cpp's recurrent "
                      "memory in this step";
    if (!have_s) {
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_S, il, why, il, llorch_id_arch(c), lf->mixer_op, "recurrence (s)");
    }
    if (n_r == 0) {
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_R, il, why, il, llorch_id_arch(c), lf->mixer_op,
                              "convolution or token-shift (r)");
    }
}

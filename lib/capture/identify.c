/* identify.c - the order of the analysis (the top of the identification):
 *
 *   1. attention cores: every KQ -> softmax -> KQV and every flash
 *      attention node (identify_attn.c); recurrent and linear-attention
 *      mixers (identify_branch.c)
 *   2. per core: Q, K, V, the caches, the scores, the attention input
 *   3. per layer: the attention and FFN branches and where they end
 *   4. per recurrent layer: the state it writes back (identify_state.c)
 *   5. the residual stream and the output
 *
 * The result and the helpers the passes share are in identify_base.c,
 * below every pass. */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nodes that no token's activations flow into: computed from weights only
 * (constants, scales) or from state and per-step inputs only (the cached
 * recurrent state, masks, positions). A branch may read them freely. The
 * embedding (a weight indexed by the tokens) is neither. */
static void mark_constants(struct ictx *c) {
    enum {
        W = 1,
        S = 2
    };
    const struct llorch_graph *g = c->g;
    uint8_t                   *from = c->anc; /* scratch: which leaf kinds flow in */
    for (int i = 0; i < g->n_nodes; i++) {
        uint8_t m = 0;
        for (int s = 0; s < g->nodes[i].n_src; s++) {
            llorch_gref                r = g->nodes[i].src[s];
            const struct llorch_gleaf *l = llorch_graph_leaf(g, r);
            m |= l != NULL ? (l->kind == LLORCH_LEAF_WEIGHT ? W : S) : (LLORCH_GREF_IS_NODE(r) ? from[r] : 0);
        }
        from[i] = m;
        c->is_const[i] = m == W || m == S;
    }
}

/* --- the analysis ---------------------------------------------------------- */

static int setup(struct ictx *c, const struct llorch_identify_input *in, struct llorch_identity *out) {
    memset(c, 0, sizeof *c);
    memset(out, 0, sizeof *out);
    c->in = in;
    c->g = in->graph;
    c->out = out;
    size_t n = (size_t) (c->g->n_nodes > 0 ? c->g->n_nodes : 1);
    c->is_const = calloc(n, 1);
    c->is_mixer = calloc(n, 1);
    c->region = calloc(n, 1);
    c->anc = calloc(n, 1);
    c->anc2 = calloc(n, 1);
    c->carried = calloc(n, 1);
    c->layers = calloc((size_t) (in->n_layer > 0 ? in->n_layer : 1), sizeof *c->layers);
    if (c->is_const == NULL || c->is_mixer == NULL || c->region == NULL || c->anc == NULL || c->anc2 == NULL ||
        c->carried == NULL || c->layers == NULL) {
        return -1;
    }
    for (int il = 0; il < in->n_layer; il++) {
        c->layers[il] = (struct layer_facts){
            .core = -1, .mixer = -1, .attn_end = -1, .ffn_end = -1, .ffn_base = -1, .mixer_base = -1};
    }
    return 0;
}

static void teardown(struct ictx *c) {
    void *const owned[] = {c->is_const, c->is_mixer, c->region, c->anc, c->anc2, c->carried, c->cores, c->layers};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
}

/* A model without RoPE in any layer says so once, not per layer. */
static void say_no_rope_once(struct ictx *c) {
    int cores = 0, no_rope = 0;
    for (int il = 0; il < c->in->n_layer; il++) {
        cores += c->layers[il].core >= 0;
        no_rope += c->layers[il].core >= 0 && c->layers[il].no_rope;
    }
    for (int i = 0; i < c->out->n_absent && cores > 0 && no_rope == cores; i++) {
        enum llorch_ckpt_kind k = c->out->absent[i].kind;
        if (k == LLORCH_CKPT_QCUR_PRE_ROPE || k == LLORCH_CKPT_KCUR_PRE_ROPE) {
            snprintf(c->out->absent[i].reason, sizeof c->out->absent[i].reason,
                     "this architecture applies no RoPE: Qcur/Kcur are the values entering attention");
        }
    }
}

static int by_node(const void *a, const void *b) {
    const struct llorch_role *x = a, *y = b;
    if (x->node != y->node) {
        return x->node < y->node ? -1 : 1;
    }
    return x->kind < y->kind ? -1 : x->kind > y->kind;
}

int llorch_identify_graph(const struct llorch_identify_input *in, struct llorch_identity *out) {
    struct ictx c;
    memset(&c, 0, sizeof c);
    if (!in->graph->finished || setup(&c, in, out) != 0) {
        teardown(&c);
        llorch_identity_free(out);
        return -1;
    }
    mark_constants(&c);
    llorch_id_find_cores(&c);
    llorch_id_mixers(&c);
    for (int i = 0; i < c.n_cores; i++) {
        llorch_id_attention(&c, i);
    }
    for (int il = 0; il < in->n_layer; il++) {
        llorch_id_branches(&c, il);
        llorch_id_states(&c, il);
    }
    llorch_id_residual(&c);
    llorch_id_output(&c);
    say_no_rope_once(&c);
    bool oom = c.oom;
    teardown(&c);
    if (oom) {
        llorch_identity_free(out);
        return -1;
    }
    if (out->n_roles > 0) { /* roles is NULL when the graph holds none */
        llorch_sort(out->roles, (size_t) out->n_roles, sizeof *out->roles, by_node);
    }
    return 0;
}

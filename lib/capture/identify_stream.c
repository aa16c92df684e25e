/* identify_stream.c - the residual stream (embd, ffn_inp, l_out) and the
 * output (result_norm, logits).
 *
 * Each branch end found by identify_branch.c is added to the residual
 * stream by an ADD whose other operand is the stream itself: that ADD is
 * ffn_inp after the mixer, l_out after the FFN. When the mixer's end is
 * added to the FFN's end first, the layer runs them in parallel and has no
 * ffn_inp. embd is the token embedding as layer 0 receives it: the lookup,
 * plus position embeddings and scaling where the model has them. */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include <string.h>

/* The node that merges `end` into something else, its op, and the other
 * operand of that merge. */
static int merge_of(const struct ictx *c, int end, int *other) {
    const struct llorch_gnode *n = &c->g->nodes[end];
    *other = -1;
    if (n->n_consumers != 1) {
        return -1;
    }
    int                        m = c->g->consumers[n->first_consumer];
    const struct llorch_gnode *mn = &c->g->nodes[m];
    if (mn->op == GGML_OP_ADD && mn->n_src == 2) {
        llorch_gref o = mn->src[0] == end ? mn->src[1] : mn->src[0];
        *other = LLORCH_GREF_IS_NODE(o) ? o : -1;
    }
    return m;
}

static void absent_stream(struct ictx *c, int il, enum llorch_ckpt_kind kind, const struct layer_facts *lf) {
    if (lf->merge_op != NULL) {
        llorch_id_add_absence(c, kind, il,
                              "layer %d of %s merges its branches into the residual with %s, not an "
                              "addition (several residual streams): there is no single residual tensor",
                              il, llorch_id_arch(c), lf->merge_op);
    } else {
        llorch_id_add_absence(c, kind, il,
                              "the residual stream of layer %d of %s was not found: no branch end is "
                              "added to it",
                              il, llorch_id_arch(c));
    }
}

/* True when x carries a product with a weight of layer il that its branch
 * input does not: another branch of the layer (falcon-h1 adds attention
 * and SSM before the residual), not the residual stream. */
static bool is_sibling_branch(struct ictx *c, int x, int base, int il) {
    llorch_graph_ancestors(c->g, x, c->anc);
    if (base >= 0) {
        llorch_graph_ancestors(c->g, base, c->anc2);
    } else {
        memset(c->anc2, 0, (size_t) c->g->n_nodes);
    }
    for (int i = 0; i <= x; i++) {
        if (c->anc[i] && !c->anc2[i] && llorch_id_weight_layer(c, i) == il) {
            return true;
        }
    }
    return false;
}

/* The addition that puts a branch end into the residual stream, past the
 * additions of sibling branches; -1 when the branch leaves by another op. */
static int residual_merge(struct ictx *c, int end, int base, int il) {
    int other, m = merge_of(c, end, &other);
    while (m >= 0 && c->g->nodes[m].op == GGML_OP_ADD && other >= 0 && is_sibling_branch(c, other, base, il)) {
        m = merge_of(c, m, &other);
    }
    return m;
}

/* True when `later` is computed from `node`. */
static bool descends(struct ictx *c, int later, int node) {
    if (later < 0 || node < 0 || later < node) {
        return false;
    }
    llorch_graph_ancestors(c->g, later, c->anc);
    return c->anc[node] != 0;
}

/* A layer whose FFN does not read what its mixer produced runs the two in
 * parallel on the same input (gpt-j, phi2, command-r): both are added to
 * the stream, in either order, and l_out is the later of the two adds. */
static void parallel_stream(struct ictx *c, int il, int m, int f) {
    int other_m, other_f;
    int add_m = merge_of(c, m, &other_m), add_f = merge_of(c, f, &other_f);
    int l_out = -1;
    if (add_m >= 0 && add_m == add_f) {
        l_out = merge_of(c, add_m, &other_m); /* (attention + FFN) + stream */
    } else if (add_m >= 0 && add_f >= 0) {
        l_out = descends(c, add_m, add_f) ? add_m : descends(c, add_f, add_m) ? add_f : -1;
    }
    if (l_out >= 0 && c->g->nodes[l_out].op == GGML_OP_ADD) {
        llorch_id_add_role(c, LLORCH_CKPT_L_OUT, il, l_out, l_out);
    }
    llorch_id_add_absence(c, LLORCH_CKPT_FFN_INP, il,
                          "layer %d of %s runs attention and FFN in parallel on the "
                          "same input: the FFN reads the layer's input (l_out of the layer before, or embd)",
                          il, llorch_id_arch(c));
}

/* l_out and ffn_inp of one layer. */
static void layer_stream(struct ictx *c, int il) {
    struct layer_facts *lf = &c->layers[il];
    int                 m = lf->attn_end, f = lf->ffn_end;
    if (m >= 0 && f >= 0 && lf->ffn_base >= 0 && !descends(c, lf->ffn_base, m)) {
        lf->parallel = true;
        parallel_stream(c, il, m, f);
        return;
    }
    int add_m = m >= 0 ? residual_merge(c, m, lf->mixer_base, il) : -1;
    if (add_m >= 0 && c->g->nodes[add_m].op != GGML_OP_ADD) {
        lf->merge_op = ggml_op_name(c->g->nodes[add_m].op);
        add_m = -1;
    }
    bool ffn = lf->ffn_starts > 0;
    if (add_m >= 0) {
        llorch_id_add_role(c, ffn ? LLORCH_CKPT_FFN_INP : LLORCH_CKPT_L_OUT, il, add_m, add_m);
    }
    /* the FFN's last addition; an FFN in several parts (arctic) adds each */
    int add_f = -1;
    for (int e = 0; e < lf->n_ffn_ends; e++) {
        int add = residual_merge(c, lf->ffn_ends_at[e], lf->ffn_base, il);
        if (add >= 0 && c->g->nodes[add].op != GGML_OP_ADD) {
            lf->merge_op = ggml_op_name(c->g->nodes[add].op);
        } else if (add >= 0 && (add_f < 0 || descends(c, add, add_f))) {
            add_f = add;
        }
    }
    if (add_f >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_L_OUT, il, add_f, add_f);
    }
    if (!lf->has_mixer || !ffn) {
        llorch_id_add_absence(c, LLORCH_CKPT_FFN_INP, il,
                              "layer %d of %s has %s: no residual stream between a "
                              "mixer and an FFN",
                              il, llorch_id_arch(c), !lf->has_mixer ? "no mixer before its FFN" : "no FFN");
    }
    absent_stream(c, il, LLORCH_CKPT_FFN_INP, lf);
    absent_stream(c, il, LLORCH_CKPT_L_OUT, lf);
}

/* The token embedding lookup: a weight with one row per vocabulary entry,
 * indexed by a per-step input. */
static bool is_lookup(const struct ictx *c, int node, bool token) {
    const struct llorch_gnode *n = &c->g->nodes[node];
    const struct llorch_gleaf *w = llorch_graph_leaf(c->g, n->src[0]);
    const struct llorch_gleaf *ids = llorch_graph_leaf(c->g, n->src[1]);
    return n->op == GGML_OP_GET_ROWS && w != NULL && w->kind == LLORCH_LEAF_WEIGHT && ids != NULL &&
           ids->kind == LLORCH_LEAF_INPUT && (!token || w->t->ne[1] == c->in->n_vocab);
}

static int embedding(const struct ictx *c) {
    const struct llorch_graph *g = c->g;
    int                        e = -1;
    for (int i = 0; i < g->n_nodes && e < 0; i++) {
        e = is_lookup(c, i, true) ? i : -1;
    }
    while (e >= 0 && g->nodes[e].n_consumers == 1) {
        int                        next = g->consumers[g->nodes[e].first_consumer];
        const struct llorch_gnode *n = &g->nodes[next];
        llorch_gref                o = n->src[0] == e ? n->src[1] : n->src[0];
        bool                       positions = n->op == GGML_OP_ADD && LLORCH_GREF_IS_NODE(o) && is_lookup(c, o, false);
        if (n->op != GGML_OP_SCALE && !positions) {
            break;
        }
        e = next;
    }
    return e;
}

void llorch_id_residual(struct ictx *c) {
    for (int il = 0; il < c->in->n_layer; il++) {
        layer_stream(c, il);
    }
    int embd = embedding(c);
    if (embd >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_EMBD, -1, embd, embd);
    } else {
        llorch_id_add_absence(c, LLORCH_CKPT_EMBD, -1, "%s has no token embedding lookup in this graph",
                              llorch_id_arch(c));
    }
}

void llorch_id_output(struct ictx *c) {
    const struct llorch_graph *g = c->g;
    int                        logits = -1, head = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].output && g->nodes[i].ne[0] == c->in->n_vocab && g->nodes[i].ne[2] == 1) {
            logits = i;
        }
    }
    if (logits >= 0) {
        llorch_graph_ancestors(g, logits, c->anc); /* the output head: the last weight product */
        for (int i = logits; i >= 0 && head < 0; i--) {
            head = c->anc[i] && llorch_graph_matmul_weight(g, i) != NULL ? i : -1;
        }
    }
    if (head < 0) {
        llorch_id_add_absence(c, LLORCH_CKPT_LOGITS, -1, "%s computes no logits in this graph", llorch_id_arch(c));
        llorch_id_add_absence(c, LLORCH_CKPT_RESULT_NORM, -1, "%s computes no logits in this graph", llorch_id_arch(c));
        return;
    }
    llorch_id_add_role(c, LLORCH_CKPT_LOGITS, -1, logits, logits);
    if (LLORCH_GREF_IS_NODE(g->nodes[head].src[1])) {
        int norm = llorch_id_strip_views(c, g->nodes[head].src[1]);
        llorch_id_add_role(c, LLORCH_CKPT_RESULT_NORM, -1, norm, norm);
    }
}

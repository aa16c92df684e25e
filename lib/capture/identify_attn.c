/* identify_attn.c - attention: find every core (KQ -> softmax -> KQV, or
 * one flash-attention node), then read the checkpoints off its inputs.
 *
 * A core is found by the shape of the computation, not by names: a
 * SOFT_MAX whose input is (after scaling and soft-capping) a matrix product
 * of two activations, and whose output is multiplied with a third. The
 * MoE router's softmax fails the test, because its input is a product with
 * a weight. */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include <stdlib.h>
#include <string.h>

static bool is_score_op(enum ggml_op op) {
    return op == GGML_OP_SCALE || op == GGML_OP_UNARY || op == GGML_OP_CPY || op == GGML_OP_CONT || op == GGML_OP_ADD ||
           op == GGML_OP_MUL || llorch_graph_is_view_op(op);
}

/* The activation x activation MUL_MAT that a softmax normalizes, or -1. */
static int kq_of(const struct ictx *c, int softmax) {
    const struct llorch_graph *g = c->g;
    llorch_gref                x = g->nodes[softmax].src[0];
    while (LLORCH_GREF_IS_NODE(x) && is_score_op(g->nodes[x].op)) {
        x = g->nodes[x].src[0];
    }
    if (!LLORCH_GREF_IS_NODE(x) || g->nodes[x].op != GGML_OP_MUL_MAT || llorch_graph_matmul_weight(g, x) != NULL) {
        return -1;
    }
    return x;
}

/* The MUL_MAT that multiplies the softmax output (through layout ops) with
 * something that is not a weight, or -1. */
static int kqv_of(const struct ictx *c, int softmax) {
    const struct llorch_graph *g = c->g;
    int                        y = softmax;
    for (int hops = 0; hops < 8; hops++) {
        const struct llorch_gnode *n = &g->nodes[y];
        int                        next = -1;
        for (int k = 0; k < n->n_consumers; k++) {
            int                        cons = g->consumers[n->first_consumer + k];
            const struct llorch_gnode *cn = &g->nodes[cons];
            if (cn->op == GGML_OP_MUL_MAT && cn->src[1] == y && llorch_graph_matmul_weight(g, cons) == NULL) {
                return cons;
            }
            if ((llorch_graph_is_view_op(cn->op) || cn->op == GGML_OP_CPY || cn->op == GGML_OP_CONT) &&
                cn->src[0] == y) {
                next = cons;
            }
        }
        if (next < 0) {
            return -1;
        }
        y = next;
    }
    return -1;
}

/* The state leaf (KV cache) that a chain of views and copies reads, or -1.
 * Keys concatenated from several cache views (compressed attention) count
 * as read from the cache of the first part: the per-token keys. */
static int cache_leaf_of(const struct ictx *c, int node) {
    const struct llorch_graph *g = c->g;
    llorch_gref                x = node;
    while (LLORCH_GREF_IS_NODE(x)) {
        const struct llorch_gnode *n = &g->nodes[x];
        const struct llorch_gleaf *vs = llorch_graph_leaf(g, n->view_src);
        if (vs != NULL && vs->kind == LLORCH_LEAF_STATE) {
            return LLORCH_GREF_LEAF_INDEX(n->view_src);
        }
        bool layout =
            llorch_graph_is_view_op(n->op) || n->op == GGML_OP_CONT || n->op == GGML_OP_CPY || n->op == GGML_OP_CONCAT;
        if (!layout) {
            return -1;
        }
        x = n->src[0];
    }
    const struct llorch_gleaf *l = llorch_graph_leaf(g, x);
    return l != NULL && l->kind == LLORCH_LEAF_STATE ? LLORCH_GREF_LEAF_INDEX(x) : -1;
}

/* The VIEW of the cache leaf in the chain that attention reads (through
 * the copy that casts it for flash attention). */
static int cache_view_of(const struct ictx *c, int node, int leaf) {
    const struct llorch_graph *g = c->g;
    int                        view = -1;
    for (llorch_gref x = node; LLORCH_GREF_IS_NODE(x); x = g->nodes[x].src[0]) {
        const struct llorch_gnode *n = &g->nodes[x];
        if (n->op == GGML_OP_VIEW && n->view_src == LLORCH_GREF_LEAF(leaf)) {
            view = x;
        }
        if (!llorch_graph_is_view_op(n->op) && n->op != GGML_OP_CPY && n->op != GGML_OP_CONT) {
            break;
        }
    }
    return view;
}

static void add_core(struct ictx *c, struct attn_core core) {
    struct attn_core *grown = realloc(c->cores, (size_t) (c->n_cores + 1) * sizeof *grown);
    if (grown == NULL) {
        c->oom = true;
        return;
    }
    c->cores = grown;
    core.k_cache = cache_leaf_of(c, core.k_in);
    core.v_cache = cache_leaf_of(c, core.v_in);
    const struct llorch_gleaf *kl = core.k_cache >= 0 ? &c->g->leaves[core.k_cache] : NULL;
    core.layer = kl != NULL && kl->layer >= 0 ? kl->layer : llorch_id_ancestor_layer(c, core.q_in);
    c->cores[c->n_cores++] = core;
    c->is_mixer[core.fa >= 0 ? core.fa : core.kq] = 1;
    if (core.softmax >= 0) {
        c->is_mixer[core.softmax] = 1;
    }
}

void llorch_id_find_cores(struct ictx *c) {
    const struct llorch_graph *g = c->g;
    for (int i = 0; i < g->n_nodes && !c->oom; i++) {
        const struct llorch_gnode *n = &g->nodes[i];
        if (n->op == GGML_OP_FLASH_ATTN_EXT && n->n_src >= 3 && LLORCH_GREF_IS_NODE(n->src[0]) &&
            LLORCH_GREF_IS_NODE(n->src[1]) && LLORCH_GREF_IS_NODE(n->src[2])) {
            add_core(c, (struct attn_core){.kq = -1,
                                           .softmax = -1,
                                           .kqv = -1,
                                           .fa = i,
                                           .q_in = n->src[0],
                                           .k_in = n->src[1],
                                           .v_in = n->src[2]});
        } else if (n->op == GGML_OP_SOFT_MAX) {
            int kq = kq_of(c, i);
            int kqv = kq >= 0 ? kqv_of(c, i) : -1;
            if (kqv >= 0 && LLORCH_GREF_IS_NODE(g->nodes[kq].src[0]) && LLORCH_GREF_IS_NODE(g->nodes[kq].src[1]) &&
                LLORCH_GREF_IS_NODE(g->nodes[kqv].src[0])) {
                add_core(c, (struct attn_core){.kq = kq,
                                               .softmax = i,
                                               .kqv = kqv,
                                               .fa = -1,
                                               .q_in = g->nodes[kq].src[1],
                                               .k_in = g->nodes[kq].src[0],
                                               .v_in = g->nodes[kqv].src[0]});
            }
        }
    }
    for (int i = 0; i < c->n_cores; i++) {
        int il = c->cores[i].layer;
        if (il >= 0 && il < c->in->n_layer && c->layers[il].core < 0) {
            c->layers[il].core = i;
        }
    }
}

/* --- the checkpoints of one core ------------------------------------------ */

/* The SET_ROWS (or CPY) that writes this step's rows into a cache leaf. */
static int cache_write_of(const struct ictx *c, int leaf, int before) {
    const struct llorch_graph *g = c->g;
    for (int i = before - 1; i >= 0; i--) {
        const struct llorch_gnode *n = &g->nodes[i];
        if ((n->op == GGML_OP_SET_ROWS || n->op == GGML_OP_CPY) && n->view_src == LLORCH_GREF_LEAF(leaf) &&
            LLORCH_GREF_IS_NODE(n->src[0])) {
            return i;
        }
    }
    return -1;
}

/* The input of a query projection that the key/value path also reads (the
 * latest such tensor), or -1. */
static int attention_input(struct ictx *c, int q, int k, int v, int layer) {
    llorch_graph_ancestors(c->g, q, c->anc);
    memset(c->anc2, 0, (size_t) c->g->n_nodes);
    if (k >= 0) {
        llorch_graph_mark_ancestors(c->g, k, c->anc2);
    }
    if (v >= 0) {
        llorch_graph_mark_ancestors(c->g, v, c->anc2);
    }
    int shared = -1;
    for (int i = 0; i <= q; i++) {
        if (!c->anc[i] || llorch_id_weight_layer(c, i) != layer || !LLORCH_GREF_IS_NODE(c->g->nodes[i].src[1])) {
            continue;
        }
        int in = llorch_id_strip_views(c, c->g->nodes[i].src[1]);
        if (c->anc2[in] && in > shared) {
            shared = in;
        }
    }
    return shared;
}

/* The RoPE on the path to x, whose output is as big as x, or -1; *partial
 * is set when RoPE covers only part of x (MLA). */
static int rope_of(struct ictx *c, int x, int after, bool *partial) {
    llorch_graph_ancestors(c->g, x, c->anc);
    *partial = false;
    for (int i = x; i > after; i--) {
        if (c->anc[i] && c->g->nodes[i].op == GGML_OP_ROPE) {
            if (llorch_gnode_elements(&c->g->nodes[i]) == llorch_gnode_elements(&c->g->nodes[x])) {
                return i;
            }
            *partial = true;
        }
    }
    return -1;
}

/* The per-head normalization on the path to x (q_norm / k_norm), with its
 * weight when it has one, or -1. */
static int head_norm_of(struct ictx *c, int x, int after) {
    const struct llorch_graph *g = c->g;
    llorch_graph_ancestors(g, x, c->anc);
    for (int i = x; i > after; i--) {
        enum ggml_op op = g->nodes[i].op;
        bool         norm = op == GGML_OP_RMS_NORM || op == GGML_OP_NORM || op == GGML_OP_L2_NORM;
        if (!c->anc[i] || !norm || g->nodes[i].ne[2] != c->in->n_tokens || g->nodes[i].ne[1] < 1) {
            continue;
        }
        const struct llorch_gnode *n = &g->nodes[i];
        for (int k = 0; k < n->n_consumers; k++) {
            int                        m = g->consumers[n->first_consumer + k];
            const struct llorch_gleaf *w = llorch_graph_leaf(g, g->nodes[m].src[1]);
            if (g->nodes[m].op == GGML_OP_MUL && g->nodes[m].src[0] == i && w != NULL && c->anc[m]) {
                return m;
            }
        }
        return i;
    }
    return -1;
}

/* The head size of what attention reads: Q and K as [dim, tokens, heads];
 * V as [cells, dim, heads] for KQV, [dim, cells, heads] for flash attention. */
static int64_t head_dim_of(const struct ictx *c, const struct attn_core *core, int which) {
    const struct llorch_gnode *n = &c->g->nodes[which == 0 ? core->q_in : which == 1 ? core->k_in : core->v_in];
    return which == 2 && core->fa < 0 ? n->ne[1] : n->ne[0];
}

static void attention_kv(struct ictx *c, const struct attn_core *core, int ready_k, int ready_v, int *kcur, int *vcur) {
    int                 il = core->layer;
    struct layer_facts *lf = &c->layers[il];
    *kcur = *vcur = -1;
    if (core->k_cache < 0) {
        lf->no_cache = true;
        *kcur = llorch_id_head_source(c, core->k_in, head_dim_of(c, core, 1));
        *vcur = llorch_id_head_source(c, core->v_in, head_dim_of(c, core, 2));
        llorch_id_add_role(c, LLORCH_CKPT_KCUR, il, *kcur, *kcur); /* final once computed; */
        llorch_id_add_role(c, LLORCH_CKPT_VCUR, il, *vcur, *vcur); /* its memory is reused later */
        const char *why = "layer %d of %s attends without a KV cache: K and V are the current tokens' Kcur/Vcur";
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_K, il, why, il, llorch_id_arch(c));
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_V, il, why, il, llorch_id_arch(c));
        return;
    }
    int kw = cache_write_of(c, core->k_cache, core->fa >= 0 ? core->fa : core->kq);
    if (kw >= 0) {
        *kcur = llorch_id_head_source(c, c->g->nodes[kw].src[0], head_dim_of(c, core, 1));
        llorch_id_add_role(c, LLORCH_CKPT_KCUR, il, *kcur, *kcur);
    }
    int kview = cache_view_of(c, core->k_in, core->k_cache);
    llorch_id_role_or_absence(c, LLORCH_CKPT_CACHE_K, il, kview, ready_k,
                              "layer %d of %s reads its keys as a concatenation of several cache views (compressed "
                              "attention), not one cache window",
                              il, llorch_id_arch(c));
    if (core->v_cache == core->k_cache) {
        lf->mla = true;
        const char *why = "layer %d of %s reads V from the K cache (MLA: the first channels of the latent cache_k); "
                          "there is no V cache and no separate Vcur";
        llorch_id_add_absence(c, LLORCH_CKPT_CACHE_V, il, why, il, llorch_id_arch(c));
        llorch_id_add_absence(c, LLORCH_CKPT_VCUR, il, why, il, llorch_id_arch(c));
        return;
    }
    int vw = core->v_cache >= 0 ? cache_write_of(c, core->v_cache, core->fa >= 0 ? core->fa : core->kqv) : -1;
    if (vw >= 0) {
        *vcur = llorch_id_head_source(c, c->g->nodes[vw].src[0], head_dim_of(c, core, 2));
        llorch_id_add_role(c, LLORCH_CKPT_VCUR, il, *vcur, *vcur);
    }
    int vview = core->v_cache >= 0 ? cache_view_of(c, core->v_in, core->v_cache) : -1;
    if (vview >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_CACHE_V, il, vview, ready_v);
    }
}

static void attention_rope(struct ictx *c, int il, int x, int after, enum llorch_ckpt_kind kind) {
    bool                partial = false;
    int                 rope = x >= 0 ? rope_of(c, x, after, &partial) : -1;
    struct layer_facts *lf = &c->layers[il];
    if (rope >= 0 && LLORCH_GREF_IS_NODE(c->g->nodes[rope].src[0])) {
        llorch_id_add_role(c, kind, il, c->g->nodes[rope].src[0], c->g->nodes[rope].src[0]);
    } else if (partial) {
        lf->partial_rope = true;
        llorch_id_add_absence(c, kind, il,
                              "layer %d of %s applies RoPE to part of the channels only (MLA): there is "
                              "no single pre-RoPE tensor",
                              il, llorch_id_arch(c));
    } else {
        lf->no_rope = true;
        llorch_id_add_absence(c, kind, il,
                              "layer %d of %s applies no RoPE: Qcur/Kcur are the values entering "
                              "attention",
                              il, llorch_id_arch(c));
    }
}

void llorch_id_attention(struct ictx *c, int index) {
    const struct attn_core *core = &c->cores[index];
    int                     il = core->layer;
    if (il < 0 || il >= c->in->n_layer || c->layers[il].core != index) {
        return; /* a second core in one layer (an indexer, a compressor) names nothing */
    }
    const struct llorch_graph *g = c->g;
    int                        reader_k = core->fa >= 0 ? core->fa : core->kq;
    int                        reader_v = core->fa >= 0 ? core->fa : core->kqv;
    int                        q = llorch_id_head_source(c, core->q_in, head_dim_of(c, core, 0));
    llorch_id_add_role(c, LLORCH_CKPT_QCUR, il, q, q);
    int kcur, vcur;
    attention_kv(c, core, reader_k, reader_v, &kcur, &vcur);
    if (core->softmax >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_KQ_SOFT_MAX, il, core->softmax, core->softmax);
    } else {
        llorch_id_add_absence(c, LLORCH_CKPT_KQ_SOFT_MAX, il,
                              "flash attention computes the scores inside one fused node (use -fa off)");
    }
    int input = attention_input(c, q, kcur >= 0 ? kcur : core->k_in, vcur >= 0 ? vcur : core->v_in, il);
    llorch_id_role_or_absence(c, LLORCH_CKPT_ATTN_NORM, il, input, input,
                              "in layer %d of %s the query and key projections share no input (the keys are not "
                              "computed in this layer)",
                              il, llorch_id_arch(c));
    attention_rope(c, il, q, input, LLORCH_CKPT_QCUR_PRE_ROPE);
    attention_rope(c, il, kcur >= 0 ? kcur : core->k_in, input, LLORCH_CKPT_KCUR_PRE_ROPE);
    int qn = head_norm_of(c, q, input), kn = kcur >= 0 ? head_norm_of(c, kcur, input) : -1;
    if (qn >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_Q_NORM, il, qn, qn);
    }
    if (kn >= 0) {
        llorch_id_add_role(c, LLORCH_CKPT_K_NORM, il, kn, kn);
    }
    /* gemma and phi scale the query before KQ: Qcur is what KQ reads, and
     * the query before that scaling is an extra */
    int unscaled = q;
    while (g->nodes[unscaled].op == GGML_OP_SCALE && LLORCH_GREF_IS_NODE(g->nodes[unscaled].src[0])) {
        unscaled = g->nodes[unscaled].src[0];
    }
    if (unscaled != q) {
        llorch_id_add_role(c, LLORCH_CKPT_QCUR_UNSCALED, il, unscaled, unscaled);
    }
}

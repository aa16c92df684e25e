/* identify_branch.c - where the branches of a layer end, and the residual
 * stream they are added to.
 *
 * A branch is grown forward from its core (the KQV matmul or flash
 * attention; the SSM or linear-attention op; the FFN's weight products): a
 * node joins when it reads the branch and otherwise only weights, the
 * branch's own input, or side values computed from that input without
 * another mixer (a gate). An addition of anything else ends the branch:
 * that is the residual add, or a parallel branch joining. The nodes the
 * branch hands on are its ends; peeling off row selection, post-norms and
 * scalar multipliers gives attn_out_proj and ffn_out. */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include <stdlib.h>
#include <string.h>

/* A recurrence op, or a short convolution (a mixer of its own in lfm2). */
static bool is_recurrent_mixer(enum ggml_op op) {
    return llorch_id_is_recurrence(op) || op == GGML_OP_SSM_CONV;
}

void llorch_id_mixers(struct ictx *c) {
    const struct llorch_graph *g = c->g;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_recurrent_mixer(g->nodes[i].op)) {
            continue;
        }
        c->is_mixer[i] = 1;
        int il = llorch_id_ancestor_layer(c, i);
        /* a short convolution in front of a recurrent op is not the mixer */
        bool better = il >= 0 && il < c->in->n_layer &&
                      (c->layers[il].mixer < 0 || g->nodes[c->layers[il].mixer].op == GGML_OP_SSM_CONV);
        if (better) {
            c->layers[il].mixer = i;
            c->layers[il].mixer_op = ggml_op_name(g->nodes[i].op);
        }
    }
}

/* --- growing a branch ------------------------------------------------------ */

/* True when x is computed from one of the bases with no mixer in between. */
static bool is_side_value(struct ictx *c, int x, const int *bases, int n_bases) {
    llorch_graph_ancestors(c->g, x, c->anc);
    for (int b = 0; b < n_bases; b++) {
        if (bases[b] < 0 || !c->anc[bases[b]]) {
            continue;
        }
        llorch_graph_ancestors(c->g, bases[b], c->anc2);
        bool mixer = false;
        for (int i = bases[b] + 1; i <= x && !mixer; i++) {
            mixer = c->anc[i] && !c->anc2[i] && c->is_mixer[i];
        }
        if (!mixer) {
            return true;
        }
    }
    return false;
}

static bool is_base(const struct ictx *c, int x, const int *bases, int n_bases) {
    int stripped = llorch_id_strip_views(c, x);
    for (int b = 0; b < n_bases; b++) {
        if (bases[b] == x || bases[b] == stripped) {
            return true;
        }
    }
    return false;
}

static bool joins(struct ictx *c, int node, const int *bases, int n_bases) {
    const struct llorch_gnode *n = &c->g->nodes[node];
    bool                       reads_branch = false;
    for (int s = 0; s < n->n_src; s++) {
        reads_branch |= LLORCH_GREF_IS_NODE(n->src[s]) && c->region[n->src[s]];
    }
    if (!reads_branch) {
        return false;
    }
    bool adds = n->op == GGML_OP_ADD || n->op == GGML_OP_ADD_ID || n->op == GGML_OP_SUB || n->op == GGML_OP_CONCAT;
    for (int s = 0; s < n->n_src; s++) {
        llorch_gref                x = n->src[s];
        const struct llorch_gleaf *leaf = llorch_graph_leaf(c->g, x);
        if (leaf != NULL && adds && leaf->kind == LLORCH_LEAF_INPUT) {
            return false; /* adding a per-step input: the residual fed from another backend */
        }
        if (!LLORCH_GREF_IS_NODE(x) || c->region[x] || c->is_const[x]) {
            continue;
        }
        if (c->allow_carried && c->carried[x]) {
            continue; /* a value from inside an earlier layer's mixer (RWKV-7's first-layer value) */
        }
        if (adds || !(is_base(c, x, bases, n_bases) || is_side_value(c, x, bases, n_bases))) {
            return false;
        }
    }
    return true;
}

/* Fills c->region from the starts; returns the number of ends found (and
 * the last one in *end; up to 4 in ends[] when given): nodes that hand the
 * branch on. */
static int grow_ends(struct ictx *c, const int *starts, int n_starts, const int *bases, int n_bases, int *end,
                     int *ends) {
    const struct llorch_graph *g = c->g;
    memset(c->region, 0, (size_t) g->n_nodes);
    int first = g->n_nodes;
    for (int i = 0; i < n_starts; i++) {
        c->region[starts[i]] = 1;
        first = starts[i] < first ? starts[i] : first;
    }
    for (int i = first + 1; i < g->n_nodes; i++) {
        if (!c->region[i] && joins(c, i, bases, n_bases)) {
            c->region[i] = 1;
        }
    }
    int n_ends = 0, n_any = 0, any = -1;
    *end = -1;
    for (int i = first; i < g->n_nodes; i++) {
        const struct llorch_gnode *n = &g->nodes[i];
        bool                       leaves = n->n_consumers == 0;
        for (int k = 0; k < n->n_consumers && !leaves; k++) {
            leaves = !c->region[g->consumers[n->first_consumer + k]];
        }
        if (!c->region[i] || !leaves) {
            continue;
        }
        /* the branch output has the residual stream's shape */
        bool residual = n->ne[0] == c->in->n_embd && n->ne[1] == c->in->n_tokens && n->ne[2] == 1 && n->ne[3] == 1;
        if (residual) {
            *end = i;
            if (ends != NULL && n_ends < 4) {
                ends[n_ends] = i;
            }
            n_ends++;
        }
        any = i;
        n_any++;
    }
    if (n_ends == 0 && n_any == 1) {
        *end = any;
        if (ends != NULL) {
            ends[0] = any;
        }
        n_ends = 1;
    }
    return n_ends;
}

static int grow(struct ictx *c, const int *starts, int n_starts, const int *bases, int n_bases, int *end) {
    return grow_ends(c, starts, n_starts, bases, n_bases, end, NULL);
}

/* Peels row selection, broadcasts, post-norms and scalar multipliers off a
 * branch end, walking back from it. A multiplier is peeled only where it
 * scales what the branch hands on (a residual multiplier, after any
 * post-norm): one that a post-norm reads is part of the branch (grok
 * scales the sum of its two FFNs by sqrt(1/2), then norms it). *numeric is
 * set when a post-norm or multiplier was peeled. */
static int peel(const struct ictx *c, int node, bool *numeric) {
    const struct llorch_graph *g = c->g;
    bool                       normed = false; /* a post-norm was peeled */
    *numeric = false;
    for (;;) {
        const struct llorch_gnode *n = &g->nodes[node];
        llorch_gref                a = n->src[0];
        const struct llorch_gleaf *b = llorch_graph_leaf(g, n->src[1]);
        if (!LLORCH_GREF_IS_NODE(a)) {
            return node;
        }
        enum ggml_op op_a = g->nodes[a].op;
        bool         norm_a = op_a == GGML_OP_NORM || op_a == GGML_OP_RMS_NORM;
        if (n->op == GGML_OP_GET_ROWS && b != NULL && b->kind == LLORCH_LEAF_INPUT) {
            node = a; /* the last layer keeps the output rows */
        } else if (n->op == GGML_OP_REPEAT) {
            node = llorch_id_strip_views(c, a); /* hyper-connections broadcast the output */
        } else if (n->op == GGML_OP_SCALE && !normed) {
            node = a; /* residual multiplier */
            *numeric = true;
        } else if (n->op == GGML_OP_MUL && norm_a && b != NULL && b->kind == LLORCH_LEAF_WEIGHT &&
                   LLORCH_GREF_IS_NODE(g->nodes[a].src[0])) {
            node = g->nodes[a].src[0]; /* post-norm with its weight */
            *numeric = normed = true;
        } else if (n->op == GGML_OP_ADD && op_a == GGML_OP_MUL && b != NULL && b->kind == LLORCH_LEAF_WEIGHT &&
                   LLORCH_GREF_IS_NODE(g->nodes[a].src[0]) &&
                   (g->nodes[g->nodes[a].src[0]].op == GGML_OP_NORM ||
                    g->nodes[g->nodes[a].src[0]].op == GGML_OP_RMS_NORM)) {
            node = g->nodes[a].src[0]; /* post-norm with weight and bias */
            *numeric = normed = true;
        } else if (n->op == GGML_OP_NORM || n->op == GGML_OP_RMS_NORM) {
            node = a;
            *numeric = normed = true;
        } else {
            return node;
        }
    }
}

/* A branch ends at `end`: its checkpoint is the output before any final
 * scaling (peeled off), and the scaled one, where there is one, the final. */
static void add_branch_end(struct ictx *c, int il, int end, enum llorch_ckpt_kind output, enum llorch_ckpt_kind final) {
    bool numeric;
    int  out = peel(c, end, &numeric);
    llorch_id_add_role(c, output, il, out, out);
    if (numeric) {
        llorch_id_add_role(c, final, il, end, end);
    }
}

enum family {
    FAMILY_DENSE = 1,
    FAMILY_EXPERTS = 2,
    FAMILY_SHARED = 4
};

/* "blk.N.ffn_..." weights belong to the FFN; which part of it. */
static int ffn_family(const struct llorch_gleaf *w, int il) {
    char prefix[32];
    int  n = snprintf(prefix, sizeof prefix, "blk.%d.ffn_", il);
    if (w == NULL || w->layer != il || strncmp(w->name, prefix, (size_t) n) != 0) {
        return 0;
    }
    const char *rest = w->name + n;
    if (strstr(rest, "shexp") != NULL) {
        return FAMILY_SHARED;
    }
    if (strstr(rest, "exps") != NULL || strncmp(rest, "gate_inp.", 9) == 0) {
        return FAMILY_EXPERTS;
    }
    return FAMILY_DENSE;
}

/* --- the attention (or other mixer) branch ---------------------------------- */

static void absent_attention(struct ictx *c, int il) {
    static const enum llorch_ckpt_kind kinds[] = {
        LLORCH_CKPT_ATTN_NORM,     LLORCH_CKPT_QCUR,          LLORCH_CKPT_KCUR,    LLORCH_CKPT_VCUR,
        LLORCH_CKPT_QCUR_PRE_ROPE, LLORCH_CKPT_KCUR_PRE_ROPE, LLORCH_CKPT_CACHE_K, LLORCH_CKPT_CACHE_V,
        LLORCH_CKPT_KQ_SOFT_MAX,   LLORCH_CKPT_ATTN_OUT_PROJ};
    const struct layer_facts *lf = &c->layers[il];
    const char               *what = lf->mixer_op != NULL ? lf->mixer_op : "not attention";
    if (lf->has_mixer) { /* the mixer's input and output are attn_norm and attn_out_proj where found */
        llorch_id_add_absence(c, LLORCH_CKPT_ATTN_NORM, il,
                              "the in-projections of the mixer of layer %d of %s (%s) share no input of the "
                              "residual stream's shape",
                              il, llorch_id_arch(c), what);
        llorch_id_add_absence(c, LLORCH_CKPT_ATTN_OUT_PROJ, il,
                              "the mixer of layer %d of %s (%s) has no single output of the residual stream's "
                              "shape",
                              il, llorch_id_arch(c), what);
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (lf->mixer_op != NULL) {
            llorch_id_add_absence(c, kinds[k], il,
                                  "layer %d of %s has no attention: its mixer is %s (a recurrent "
                                  "or linear-attention layer)",
                                  il, llorch_id_arch(c), lf->mixer_op);
        } else {
            llorch_id_add_absence(c, kinds[k], il,
                                  "layer %d of %s has no attention (no softmax or flash "
                                  "attention in this layer)",
                                  il, llorch_id_arch(c));
        }
    }
}

/* The in-projections of a layer's mixer without attention: the layer's
 * weight products outside its FFN that no other weight product of the
 * layer feeds. Returns how many were written to out. */
static int mixer_products(struct ictx *c, int il, int *out) {
    const struct llorch_graph *g = c->g;
    int                        n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct llorch_gleaf *w = llorch_graph_matmul_weight(g, i);
        if (w == NULL || w->layer != il || ffn_family(w, il) != 0 || !LLORCH_GREF_IS_NODE(g->nodes[i].src[1])) {
            continue;
        }
        llorch_graph_ancestors(g, g->nodes[i].src[1], c->anc);
        bool first = true;
        for (int k = 0; k < i && first; k++) {
            first = !(c->anc[k] && llorch_id_weight_layer(c, k) == il);
        }
        if (first) {
            out[n++] = i;
        }
    }
    return n;
}

/* The mixer's input (attn_norm): the latest tensor of the residual
 * stream's shape that every in-projection is computed from and that the
 * layer's own recurrent state does not flow into (RWKV's token shift mixes
 * the previous token's normed input in: that is inside the mixer). -1 when
 * there is none. */
static int mixer_input(struct ictx *c, int il, const int *starts, int n_starts) {
    const struct llorch_graph *g = c->g;
    int                       *count = calloc((size_t) g->n_nodes, sizeof *count);
    uint8_t                   *state = calloc((size_t) g->n_nodes, 1);
    if (count == NULL || state == NULL) {
        free(count);
        free(state);
        c->oom = true;
        return -1;
    }
    int last = 0;
    for (int s = 0; s < n_starts; s++) {
        llorch_graph_ancestors(g, g->nodes[starts[s]].src[1], c->anc);
        for (int i = 0; i < starts[s]; i++) {
            count[i] += c->anc[i];
        }
        last = starts[s] > last ? starts[s] : last;
    }
    for (int i = 0; i < last; i++) {
        for (int k = 0; k < g->nodes[i].n_src && !state[i]; k++) {
            llorch_gref                r = g->nodes[i].src[k];
            const struct llorch_gleaf *l = llorch_graph_leaf(g, r);
            state[i] = l != NULL ? l->kind == LLORCH_LEAF_STATE && l->layer == il : LLORCH_GREF_IS_NODE(r) && state[r];
        }
    }
    int input = -1;
    for (int i = last - 1; i >= 0 && input < 0; i--) {
        const struct llorch_gnode *n = &g->nodes[i];
        bool residual = n->ne[0] == c->in->n_embd && n->ne[1] == c->in->n_tokens && n->ne[2] == 1 && n->ne[3] == 1;
        if (count[i] == n_starts && residual && !state[i] && !c->is_const[i] && !llorch_graph_is_view_op(n->op)) {
            input = i;
        }
    }
    free(count);
    free(state);
    return input;
}

/* Drops the ends that hand a value on to a later layer's mixer rather than
 * to the residual stream: an end whose every reader outside the branch is
 * computed from what another end hands on (RWKV-7's first-layer value, read
 * by every later layer). Returns the number of ends left. */
static int drop_carried_ends(struct ictx *c, int *ends, int n, int *end) {
    const struct llorch_graph *g = c->g;
    if (n < 2 || n > 4) {
        return n;
    }
    bool carried[4] = {false, false, false, false};
    for (int a = 0; a < n; a++) {
        const struct llorch_gnode *e = &g->nodes[ends[a]];
        bool                       all = e->n_consumers > 0;
        for (int k = 0; k < e->n_consumers && all; k++) {
            int reader = g->consumers[e->first_consumer + k];
            if (c->region[reader]) {
                continue;
            }
            llorch_graph_ancestors(g, reader, c->anc);
            bool later = false;
            for (int b = 0; b < n && !later; b++) {
                const struct llorch_gnode *o = &g->nodes[ends[b]];
                for (int j = 0; j < o->n_consumers && b != a && !later; j++) {
                    int d = g->consumers[o->first_consumer + j];
                    later = !c->region[d] && d != reader && c->anc[d];
                }
            }
            all = later;
        }
        carried[a] = all;
    }
    int kept = 0;
    for (int a = 0; a < n; a++) {
        if (!carried[a]) {
            ends[kept++] = ends[a];
        }
    }
    if (kept > 0) {
        *end = ends[kept - 1];
    }
    return kept;
}

/* A mixer without attention (SSM, linear attention, short convolution):
 * its branch starts at its in-projections, so that it covers the whole
 * block up to its output projection. Its input is attn_norm, its output
 * (the tensor added to the residual stream) attn_out_proj. */
static void mixer_branch(struct ictx *c, int il) {
    const struct llorch_graph *g = c->g;
    struct layer_facts        *lf = &c->layers[il];
    int                       *starts = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *starts);
    int                       *bases = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *bases);
    if (starts == NULL || bases == NULL) {
        free(starts);
        free(bases);
        c->oom = true;
        return;
    }
    int n_starts = mixer_products(c, il, starts);
    if (n_starts == 0) {
        free(starts);
        free(bases);
        return; /* an FFN-only layer */
    }
    int base = mixer_input(c, il, starts, n_starts), n_bases = 0;
    if (base >= 0) {
        bases[n_bases++] = base;
        llorch_id_add_role(c, LLORCH_CKPT_ATTN_NORM, il, base, base);
    }
    for (int s = 0; s < n_starts; s++) {
        int  in = llorch_id_strip_views(c, g->nodes[starts[s]].src[1]);
        bool known = false;
        for (int b = 0; b < n_bases; b++) {
            known |= bases[b] == in;
        }
        if (!known) {
            bases[n_bases++] = in;
        }
    }
    lf->has_mixer = true;
    lf->mixer_base = n_bases > 0 ? bases[0] : -1;
    int ends[4], end;
    c->allow_carried = true;
    int n = grow_ends(c, starts, n_starts, bases, n_bases, &end, ends);
    c->allow_carried = false;
    n = drop_carried_ends(c, ends, n, &end);
    if (n == 1) {
        lf->attn_end = end;
        lf->recurrent = true;
        bool numeric;
        int  out = peel(c, end, &numeric);
        while (g->nodes[out].op == GGML_OP_RESHAPE && LLORCH_GREF_IS_NODE(g->nodes[out].src[0]) &&
               g->nodes[out].view_src == g->nodes[out].src[0]) {
            out = g->nodes[out].src[0]; /* the product, not an unnamed reshape of it (rwkv) */
        }
        llorch_id_add_role(c, LLORCH_CKPT_ATTN_OUT_PROJ, il, out, out);
        if (numeric) {
            llorch_id_add_role(c, LLORCH_CKPT_ATTN_OUT_FINAL, il, end, end);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) { /* what a later layer's mixer may read */
        c->carried[i] |= c->region[i] && i != lf->attn_end;
    }
    free(starts);
    free(bases);
}

static void attention_branch(struct ictx *c, int il) {
    struct layer_facts *lf = &c->layers[il];
    if (lf->core < 0) {
        mixer_branch(c, il);
        absent_attention(c, il);
        return;
    }
    lf->has_mixer = true;
    lf->mixer_base = -1;
    const struct attn_core *core = &c->cores[lf->core];
    int                     start = core->fa >= 0 ? core->fa : core->kqv;
    int                     base = -1;
    for (int i = 0; i < c->out->n_roles; i++) {
        if (c->out->roles[i].kind == LLORCH_CKPT_ATTN_NORM && c->out->roles[i].layer == il) {
            base = c->out->roles[i].node;
        }
    }
    int end;
    lf->mixer_base = base;
    int n = grow(c, &start, 1, &base, base >= 0 ? 1 : 0, &end);
    if (n != 1) {
        llorch_id_add_absence(c, LLORCH_CKPT_ATTN_OUT_PROJ, il,
                              "the attention of layer %d of %s has %d outputs; "
                              "none of them is the single branch output",
                              il, llorch_id_arch(c), n);
        return;
    }
    lf->attn_end = end;
    add_branch_end(c, il, end, LLORCH_CKPT_ATTN_OUT_PROJ, LLORCH_CKPT_ATTN_OUT_FINAL);
}

/* --- the FFN branch -------------------------------------------------------- */

/* The last node of the branch computed from one family alone. */
static int family_output(struct ictx *c, const uint8_t *family, int want) {
    const struct llorch_graph *g = c->g;
    int                        out = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct llorch_gnode *n = &g->nodes[i];
        if (c->region[i] && family[i] == want && n->ne[0] == c->in->n_embd && n->ne[1] == c->in->n_tokens &&
            n->ne[2] == 1 && n->ne[3] == 1 && !llorch_graph_is_view_op(n->op)) {
            out = i;
        }
    }
    return out;
}

static void ffn_families(struct ictx *c, int il, const int *starts, int n_starts) {
    const struct llorch_graph *g = c->g;
    uint8_t                   *family = calloc((size_t) g->n_nodes, 1);
    if (family == NULL) {
        c->oom = true;
        return;
    }
    int present = 0;
    for (int i = 0; i < n_starts; i++) {
        int f = ffn_family(llorch_graph_matmul_weight(g, starts[i]), il);
        family[starts[i]] = (uint8_t) (f != 0 ? f : FAMILY_DENSE); /* found by the dataflow: dense */
        present |= family[starts[i]];
    }
    for (int i = 0; i < g->n_nodes; i++) {
        for (int s = 0; s < g->nodes[i].n_src && c->region[i]; s++) {
            llorch_gref x = g->nodes[i].src[s];
            family[i] |= LLORCH_GREF_IS_NODE(x) && c->region[x] ? family[x] : 0;
        }
    }
    if (present != FAMILY_DENSE && present != FAMILY_EXPERTS && present != FAMILY_SHARED) {
        int e = family_output(c, family, FAMILY_EXPERTS), s = family_output(c, family, FAMILY_SHARED);
        int d = family_output(c, family, FAMILY_DENSE);
        if (e >= 0) {
            llorch_id_add_role(c, LLORCH_CKPT_FFN_MOE_OUT, il, e, e);
        }
        if (s >= 0) {
            llorch_id_add_role(c, LLORCH_CKPT_FFN_SHEXP_OUT, il, s, s);
        }
        if (d >= 0) {
            llorch_id_add_role(c, LLORCH_CKPT_FFN_DENSE_OUT, il, d, d);
        }
    }
    free(family);
}

/* In a layer whose mixer is not attention, the FFN is found by the
 * dataflow, whatever its weights are called (RWKV's channel mix): the
 * layer's weight products computed from the mixer's output. */
static bool after_mixer(struct ictx *c, int il, int node) {
    const struct layer_facts  *lf = &c->layers[il];
    const struct llorch_gleaf *w = llorch_graph_matmul_weight(c->g, node);
    if (!lf->recurrent || lf->attn_end < 0 || node <= lf->attn_end || w == NULL || w->layer != il) {
        return false;
    }
    llorch_graph_ancestors(c->g, node, c->anc);
    return c->anc[lf->attn_end] != 0;
}

static void ffn_branch(struct ictx *c, int il) {
    const struct llorch_graph *g = c->g;
    struct layer_facts        *lf = &c->layers[il];
    int                       *starts = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *starts);
    int                       *bases = malloc((size_t) (g->n_nodes > 0 ? g->n_nodes : 1) * sizeof *bases);
    if (starts == NULL || bases == NULL) {
        free(starts);
        free(bases);
        c->oom = true;
        return;
    }
    int n_starts = 0, n_bases = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (LLORCH_GREF_IS_NODE(g->nodes[i].src[1]) &&
            (ffn_family(llorch_graph_matmul_weight(g, i), il) != 0 || after_mixer(c, il, i))) {
            starts[n_starts++] = i;
            int  base = llorch_id_strip_views(c, g->nodes[i].src[1]);
            bool known = false;
            for (int b = 0; b < n_bases; b++) {
                known |= bases[b] == base;
            }
            if (!known) {
                bases[n_bases++] = base;
            }
        }
    }
    lf->ffn_starts = n_starts;
    lf->ffn_base = n_bases > 0 ? bases[0] : -1;
    if (n_starts == 0 && lf->recurrent) {
        llorch_id_add_absence(c, LLORCH_CKPT_FFN_OUT, il,
                              "layer %d of %s has no feed-forward block (no weight of layer %d is "
                              "applied to its mixer's output)",
                              il, llorch_id_arch(c), il);
    } else if (n_starts == 0) {
        llorch_id_add_absence(c, LLORCH_CKPT_FFN_OUT, il,
                              "layer %d of %s has no feed-forward block (no blk.%d.ffn_* "
                              "weight is used)",
                              il, llorch_id_arch(c), il);
    } else {
        int end;
        lf->ffn_ends = grow_ends(c, starts, n_starts, bases, n_bases, &end, lf->ffn_ends_at);
        lf->n_ffn_ends = lf->ffn_ends < 4 ? lf->ffn_ends : 4;
        if (lf->ffn_ends == 1) {
            lf->ffn_end = end;
            add_branch_end(c, il, end, LLORCH_CKPT_FFN_OUT, LLORCH_CKPT_FFN_OUT_FINAL);
        } else {
            llorch_id_add_absence(c, LLORCH_CKPT_FFN_OUT, il,
                                  "layer %d of %s adds %d feed-forward branches to the "
                                  "residual separately (see ffn_dense_out, ffn_moe_out): no tensor holds their sum",
                                  il, llorch_id_arch(c), lf->ffn_ends);
        }
        ffn_families(c, il, starts, n_starts);
    }
    free(starts);
    free(bases);
}

void llorch_id_branches(struct ictx *c, int layer) {
    attention_branch(c, layer);
    ffn_branch(c, layer);
}

/* identify_base.c - the bottom of the identification: its result (roles,
 * which node is which checkpoint, and absences, why a checkpoint has no
 * node) and the helpers every pass shares. The passes (identify_attn.c,
 * identify_branch.c, identify_state.c, identify_stream.c) call down into
 * this file; identify.c runs them in order. Nothing here calls up. */
#define _POSIX_C_SOURCE 200809L
#include "identify_internal.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool llorch_id_is_recurrence(enum ggml_op op) {
    return op == GGML_OP_SSM_SCAN || op == GGML_OP_GATED_DELTA_NET || op == GGML_OP_RWKV_WKV6 ||
           op == GGML_OP_RWKV_WKV7 || op == GGML_OP_GATED_LINEAR_ATTN;
}

const char *llorch_id_arch(const struct ictx *c) {
    return c->in->arch != NULL ? c->in->arch : "this model";
}

/* --- results --------------------------------------------------------------- */

/* The layout the capture expects: one row per token of the step. */
static bool has_token_rows(const struct ictx *c, enum llorch_ckpt_kind kind, const struct llorch_gnode *n) {
    int64_t T = c->in->n_tokens;
    switch (kind) {
        case LLORCH_CKPT_QCUR:
        case LLORCH_CKPT_KCUR:
        case LLORCH_CKPT_VCUR:
        case LLORCH_CKPT_QCUR_PRE_ROPE:
        case LLORCH_CKPT_KCUR_PRE_ROPE:
        case LLORCH_CKPT_Q_NORM:
        case LLORCH_CKPT_K_NORM:
        case LLORCH_CKPT_QCUR_UNSCALED:
            return n->ne[2] == T && n->ne[3] == 1;
        case LLORCH_CKPT_CACHE_K:
        case LLORCH_CKPT_CACHE_V:
        case LLORCH_CKPT_CACHE_R:
        case LLORCH_CKPT_CACHE_S:
        case LLORCH_CKPT_GRAPH:
            return true;
        case LLORCH_CKPT_KQ_SOFT_MAX:
            return n->ne[1] == T && n->ne[3] == 1;
        default:
            return n->ne[1] == T && n->ne[2] == 1 && n->ne[3] == 1;
    }
}

void llorch_id_add_role(struct ictx *c, enum llorch_ckpt_kind kind, int layer, int node, int ready) {
    struct llorch_identity    *id = c->out;
    const struct llorch_gnode *n = &c->g->nodes[node];
    if (!has_token_rows(c, kind, n)) {
        llorch_id_add_absence(c, kind, layer,
                              "%s of layer %d (%s, %s) is %lld x %lld x %lld x %lld: not one row per "
                              "token of the step",
                              llorch_ckpt_kind_info(kind)->name, layer, n->name, ggml_op_name(n->op),
                              (long long) n->ne[0], (long long) n->ne[1], (long long) n->ne[2], (long long) n->ne[3]);
        return;
    }
    for (int i = 0; i < id->n_roles; i++) {
        if (id->roles[i].kind == kind && id->roles[i].layer == layer) {
            return; /* the first finding stands */
        }
    }
    if (llorch_grow(&id->roles, &c->cap_roles, (size_t) id->n_roles + 1, sizeof *id->roles, 64) != 0) {
        c->oom = true;
        return;
    }
    id->roles[id->n_roles++] =
        (struct llorch_role){.kind = kind, .layer = layer, .node = node, .ready = ready > node ? ready : node};
}

static void add_absence_va(struct ictx *c, enum llorch_ckpt_kind kind, int layer, const char *fmt, va_list ap) {
    struct llorch_identity *id = c->out;
    if (llorch_identity_absent_reason(id, kind, layer) != NULL) {
        return;
    }
    for (int i = 0; i < id->n_roles; i++) {
        if (id->roles[i].kind == kind && id->roles[i].layer == layer) {
            return; /* found after all */
        }
    }
    if (llorch_grow(&id->absent, &c->cap_absent, (size_t) id->n_absent + 1, sizeof *id->absent, 32) != 0) {
        c->oom = true;
        return;
    }
    struct llorch_absence *a = &id->absent[id->n_absent++];
    a->kind = kind;
    a->layer = layer;
    vsnprintf(a->reason, sizeof a->reason, fmt, ap);
}

void llorch_id_add_absence(struct ictx *c, enum llorch_ckpt_kind kind, int layer, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_absence_va(c, kind, layer, fmt, ap);
    va_end(ap);
}

void llorch_id_role_or_absence(struct ictx *c, enum llorch_ckpt_kind kind, int layer, int node, int ready,
                               const char *fmt, ...) {
    if (node >= 0) {
        llorch_id_add_role(c, kind, layer, node, ready);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    add_absence_va(c, kind, layer, fmt, ap);
    va_end(ap);
}

const char *llorch_identity_absent_reason(const struct llorch_identity *id, enum llorch_ckpt_kind kind, int layer) {
    for (int i = 0; i < id->n_absent; i++) {
        if (id->absent[i].kind == kind && id->absent[i].layer == layer) {
            return id->absent[i].reason;
        }
    }
    return NULL;
}

void llorch_identity_free(struct llorch_identity *id) {
    free(id->roles);
    free(id->absent);
    memset(id, 0, sizeof *id);
}

bool llorch_identify_is_patch_name(const char *name) {
    return strncmp(name, "cache_k-", 8) == 0 || strncmp(name, "cache_v-", 8) == 0 ||
           strncmp(name, "attn_out_proj-", 14) == 0;
}

/* --- shared helpers -------------------------------------------------------- */

int llorch_id_weight_layer(const struct ictx *c, int node) {
    const struct llorch_gleaf *w = llorch_graph_matmul_weight(c->g, node);
    return w != NULL ? w->layer : -1;
}

/* The node a chain of views reads from. */
int llorch_id_strip_views(const struct ictx *c, int node) {
    while (llorch_graph_is_view_op(c->g->nodes[node].op) && LLORCH_GREF_IS_NODE(c->g->nodes[node].src[0])) {
        node = c->g->nodes[node].src[0];
    }
    return node;
}

/* Ops whose output holds the same values as their input, in another layout. */
static bool keeps_values(const struct llorch_graph *g, int node) {
    const struct llorch_gnode *n = &g->nodes[node];
    if (!LLORCH_GREF_IS_NODE(n->src[0])) {
        return false;
    }
    const struct llorch_gnode *in = &g->nodes[n->src[0]];
    bool                       layout =
        llorch_graph_is_view_op(n->op) || n->op == GGML_OP_CONT || (n->op == GGML_OP_CPY && n->type == in->type);
    return layout && llorch_gnode_elements(n) == llorch_gnode_elements(in);
}

/* Walks back from what an op reads, through layout-only ops that keep
 * every value, to the tensor the checkpoint names: the deepest one laid out
 * as [head_dim, heads, tokens], else the deepest of the chain. gpt2's
 * query stays the "Qcur" view of the fused QKV output; llama's is the RoPE
 * output behind the permutation that attention reads. head_dim tells the
 * layout apart from a plain [channels, tokens] one when there is one token. */
int llorch_id_head_source(const struct ictx *c, int node, int64_t head_dim) {
    int best = -1;
    for (;;) {
        const struct llorch_gnode *n = &c->g->nodes[node];
        if (n->ne[0] == head_dim && n->ne[2] == c->in->n_tokens && n->ne[3] == 1) {
            best = node;
        }
        if (!keeps_values(c->g, node)) {
            break;
        }
        node = n->src[0];
    }
    return best >= 0 ? best : node;
}

/* The layer of the nearest weight among node's ancestors, or -1. */
int llorch_id_ancestor_layer(struct ictx *c, int node) {
    llorch_graph_ancestors(c->g, node, c->anc);
    for (int i = node; i >= 0; i--) {
        int layer = c->anc[i] ? llorch_id_weight_layer(c, i) : -1;
        if (layer >= 0) {
            return layer;
        }
    }
    return -1;
}

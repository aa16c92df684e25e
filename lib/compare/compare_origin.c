/*
 * compare_origin.c - where a failure comes from, judged by its inputs in
 * the model's dataflow (the table in docs/COMPARE.md): introduced when all
 * its inputs passed, inherited when one failed, unknown when one is absent
 * or no rule is known. The rules name checkpoints by kind, so that a
 * misspelled one does not compile.
 */
#include "compare_internal.h"

/* Inputs of a checkpoint that stand in for one another (l_out, or the two
 * summands that make it). */
#define MAX_ALTS 3

struct input_set {
    int n;
    struct {
        enum llorch_ckpt_kind kind;
        int                   layer;
    } in[LLORCH_CKPT_MAX_INPUTS];
};

/* The inputs of a checkpoint, as alternatives in order of preference. */
struct rule {
    bool             known;
    int              n_alts;
    struct input_set alts[MAX_ALTS];
};

static void add_one(struct rule *r, enum llorch_ckpt_kind a, int la) {
    struct input_set *s = &r->alts[r->n_alts++];
    s->n = 1;
    s->in[0].kind = a;
    s->in[0].layer = la;
}

static void add_two(struct rule *r, enum llorch_ckpt_kind a, int la, enum llorch_ckpt_kind b, int lb) {
    add_one(r, a, la);
    struct input_set *s = &r->alts[r->n_alts - 1];
    s->n = 2;
    s->in[1].kind = b;
    s->in[1].layer = lb;
}

/* The residual stream after layer L: l_out, or its two summands; before
 * the first layer, the embeddings. */
static void add_residual(struct rule *r, int layer) {
    if (layer < 0) {
        add_one(r, LLORCH_CKPT_EMBD, -1);
        return;
    }
    add_one(r, LLORCH_CKPT_L_OUT, layer);
    add_two(r, LLORCH_CKPT_FFN_OUT, layer, LLORCH_CKPT_ATTN_OUT_PROJ, layer);
}

static struct rule attention_rule(enum llorch_ckpt_kind kind, int l) {
    struct rule r = {true, 0, {{0}}};
    switch (kind) {
        case LLORCH_CKPT_QCUR_PRE_ROPE:
        case LLORCH_CKPT_KCUR_PRE_ROPE:
        case LLORCH_CKPT_VCUR:
            add_one(&r, LLORCH_CKPT_ATTN_NORM, l);
            break;
        case LLORCH_CKPT_QCUR:
        case LLORCH_CKPT_KCUR:
            add_one(&r, kind == LLORCH_CKPT_QCUR ? LLORCH_CKPT_QCUR_PRE_ROPE : LLORCH_CKPT_KCUR_PRE_ROPE, l);
            add_one(&r, LLORCH_CKPT_ATTN_NORM, l);
            break;
        case LLORCH_CKPT_CACHE_K:
        case LLORCH_CKPT_CACHE_V:
            add_one(&r, kind == LLORCH_CKPT_CACHE_K ? LLORCH_CKPT_KCUR : LLORCH_CKPT_VCUR, l);
            break;
        case LLORCH_CKPT_KQ_SOFT_MAX:
            add_two(&r, LLORCH_CKPT_QCUR, l, LLORCH_CKPT_CACHE_K, l);
            add_two(&r, LLORCH_CKPT_QCUR, l, LLORCH_CKPT_KCUR, l);
            break;
        case LLORCH_CKPT_ATTN_OUT_PROJ:
            add_two(&r, LLORCH_CKPT_KQ_SOFT_MAX, l, LLORCH_CKPT_CACHE_V, l);
            add_two(&r, LLORCH_CKPT_KQ_SOFT_MAX, l, LLORCH_CKPT_VCUR, l);
            break;
        default:
            r.known = false; /* the extras: no rule yet */
            break;
    }
    return r;
}

static struct rule dataflow_rule(enum llorch_ckpt_kind kind, int l, int last_layer) {
    struct rule r = {true, 0, {{0}}};
    switch (kind) {
        case LLORCH_CKPT_EMBD:
            break; /* the first tensor: no inputs */
        case LLORCH_CKPT_ATTN_NORM:
            add_residual(&r, l - 1);
            break;
        case LLORCH_CKPT_FFN_INP:
            add_one(&r, LLORCH_CKPT_ATTN_OUT_PROJ, l);
            break;
        case LLORCH_CKPT_FFN_OUT:
            add_one(&r, LLORCH_CKPT_FFN_INP, l);
            add_one(&r, LLORCH_CKPT_ATTN_OUT_PROJ, l);
            break;
        case LLORCH_CKPT_L_OUT:
            add_one(&r, LLORCH_CKPT_FFN_OUT, l);
            break;
        case LLORCH_CKPT_RESULT_NORM:
            add_residual(&r, last_layer);
            break;
        case LLORCH_CKPT_LOGITS:
            add_one(&r, LLORCH_CKPT_RESULT_NORM, -1);
            break;
        default:
            r = attention_rule(kind, l);
            break;
    }
    return r;
}

/* Rules never name "graph" or a name that is no kind: those rows are not
 * found, whatever their graph_name. */
static const struct llorch_ckpt_row *find_row(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind kind,
                                              int layer) {
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->kinds[i] == (int) kind && c->rows[i].layer == layer) {
            return &c->rows[i];
        }
    }
    return NULL;
}

/* True when both rows are there and a's comes first: rows are in the
 * order of the reference's dump, which is llama.cpp's graph order, so a
 * later row cannot be an input of an earlier one. */
static bool before(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind a, enum llorch_ckpt_kind b, int l) {
    const struct llorch_ckpt_row *x = find_row(c, a, l), *y = find_row(c, b, l);
    return x != NULL && y != NULL && x < y;
}

bool llorch_cmp_has_attention_rows(const struct llorch_ckpt_comparison *c, int l) {
    static const enum llorch_ckpt_kind kinds[] = {LLORCH_CKPT_QCUR,    LLORCH_CKPT_KCUR,    LLORCH_CKPT_VCUR,
                                                  LLORCH_CKPT_CACHE_K, LLORCH_CKPT_CACHE_V, LLORCH_CKPT_KQ_SOFT_MAX};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (find_row(c, kinds[k], l) != NULL) {
            return true;
        }
    }
    return false;
}

/* A recurrent layer (docs/COMPARE.md): the state r is computed from the
 * mixer's input, and, where it comes after ffn_inp (RWKV's token shift
 * holds the channel mix's input too), from ffn_inp; the state s from r
 * where r comes first (a convolution feeds the scan), else from the
 * mixer's input; the mixer's output from the last state before it.
 * False for the kinds and layers this does not apply to. */
static bool recurrent_rule(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind kind, int l, struct rule *r) {
    switch (kind) {
        case LLORCH_CKPT_CACHE_R:
            if (before(c, LLORCH_CKPT_FFN_INP, LLORCH_CKPT_CACHE_R, l)) {
                add_two(r, LLORCH_CKPT_ATTN_NORM, l, LLORCH_CKPT_FFN_INP, l);
            }
            add_one(r, LLORCH_CKPT_ATTN_NORM, l);
            return true;
        case LLORCH_CKPT_CACHE_S:
            if (before(c, LLORCH_CKPT_CACHE_R, LLORCH_CKPT_CACHE_S, l)) {
                add_one(r, LLORCH_CKPT_CACHE_R, l);
            }
            add_one(r, LLORCH_CKPT_ATTN_NORM, l);
            return true;
        case LLORCH_CKPT_ATTN_OUT_PROJ:
            if (llorch_cmp_has_attention_rows(c, l)) {
                return false;
            }
            if (before(c, LLORCH_CKPT_CACHE_S, LLORCH_CKPT_ATTN_OUT_PROJ, l)) {
                add_one(r, LLORCH_CKPT_CACHE_S, l);
            } else if (before(c, LLORCH_CKPT_CACHE_R, LLORCH_CKPT_ATTN_OUT_PROJ, l)) {
                add_one(r, LLORCH_CKPT_CACHE_R, l);
            }
            add_one(r, LLORCH_CKPT_ATTN_NORM, l);
            return true;
        default:
            return false;
    }
}

/* The rule of a checkpoint row of this comparison. */
static struct rule rule_of(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind kind, int l, int last_layer) {
    struct rule r = {true, 0, {{0}}};
    return recurrent_rule(c, kind, l, &r) ? r : dataflow_rule(kind, l, last_layer);
}

static int count_present(const struct llorch_ckpt_comparison *c, const struct input_set *s) {
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        n += find_row(c, s->in[i].kind, s->in[i].layer) != NULL;
    }
    return n;
}

/* The first alternative whose inputs are all present, else the one with
 * the most present. */
static const struct input_set *choose_inputs(const struct llorch_ckpt_comparison *c, const struct rule *r) {
    const struct input_set *best = NULL;
    int                     best_present = -1;
    for (int a = 0; a < r->n_alts; a++) {
        int present = count_present(c, &r->alts[a]);
        if (present == r->alts[a].n) {
            return &r->alts[a];
        }
        if (present > best_present) {
            best = &r->alts[a];
            best_present = present;
        }
    }
    return best;
}

void llorch_cmp_judge_origin(struct llorch_ckpt_comparison *c, size_t i, int last_layer) {
    struct llorch_ckpt_row *row = &c->rows[i];
    int                     kind = c->kinds[i];
    row->origin = LLORCH_CKPT_ORIGIN_NONE;
    if (row->status == LLORCH_CKPT_STATUS_PASS) {
        return;
    }
    struct rule             r = row->graph_name || kind == LLORCH_CMP_NO_KIND
                                    ? (struct rule){false, 0, {{0}}}
                                    : rule_of(c, (enum llorch_ckpt_kind) kind, row->layer, last_layer);
    const struct input_set *s = r.known ? choose_inputs(c, &r) : NULL;
    bool                    failed = false, absent = false;
    for (int j = 0; s && j < s->n; j++) {
        const struct llorch_ckpt_row *in = find_row(c, s->in[j].kind, s->in[j].layer);
        struct llorch_ckpt_input     *out = &row->inputs[row->n_inputs++];
        out->checkpoint = llorch_ckpt_kind_info(s->in[j].kind)->name;
        out->layer = s->in[j].layer;
        out->state = llorch_cmp_input_fed(c, s->in[j].kind, s->in[j].layer) ? LLORCH_CKPT_INPUT_PASSED /* exact */
                     : !in                                                  ? LLORCH_CKPT_INPUT_ABSENT
                     : in->status == LLORCH_CKPT_STATUS_PASS                ? LLORCH_CKPT_INPUT_PASSED
                                                                            : LLORCH_CKPT_INPUT_FAILED;
        failed |= out->state == LLORCH_CKPT_INPUT_FAILED;
        absent |= out->state == LLORCH_CKPT_INPUT_ABSENT;
    }
    row->origin = !r.known ? LLORCH_CKPT_ORIGIN_UNKNOWN
                  : failed ? LLORCH_CKPT_ORIGIN_INHERITED
                  : absent ? LLORCH_CKPT_ORIGIN_UNKNOWN
                           : LLORCH_CKPT_ORIGIN_INTRODUCED;
}

static long row_index(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind kind, int layer) {
    const struct llorch_ckpt_row *r = find_row(c, kind, layer);
    return r ? (long) (r - c->rows) : -1;
}

/* Appends the rows of one input, or of its own inputs when it is absent
 * (depth bounds the walk up the dataflow); *lost is set when an input
 * leads to no row at all. */
static int add_input_rows(const struct llorch_ckpt_comparison *c, enum llorch_ckpt_kind kind, int layer, int last_layer,
                          size_t *rows, int n, int max, int depth, bool *lost) {
    long at = row_index(c, kind, layer);
    if (at >= 0) {
        for (int j = 0; j < n; j++) {
            if (rows[j] == (size_t) at) {
                return n;
            }
        }
        if (n < max) {
            rows[n++] = (size_t) at;
        }
        return n;
    }
    struct rule             r = rule_of(c, kind, layer, last_layer);
    const struct input_set *s = depth > 0 && r.known ? choose_inputs(c, &r) : NULL;
    if (!s || s->n == 0) {
        *lost = true;
        return n;
    }
    for (int j = 0; j < s->n; j++) {
        n = add_input_rows(c, s->in[j].kind, s->in[j].layer, last_layer, rows, n, max, depth - 1, lost);
    }
    return n;
}

int llorch_cmp_input_rows(const struct llorch_ckpt_comparison *c, size_t i, int last_layer, size_t *rows, int max,
                          bool *known) {
    const struct llorch_ckpt_row *row = &c->rows[i];
    int                           kind = c->kinds[i];
    struct rule                   r = row->graph_name || kind == LLORCH_CMP_NO_KIND
                                          ? (struct rule){false, 0, {{0}}}
                                          : rule_of(c, (enum llorch_ckpt_kind) kind, row->layer, last_layer);
    const struct input_set       *s = r.known ? choose_inputs(c, &r) : NULL;
    int                           n = 0;
    bool                          lost = false;
    for (int j = 0; s && j < s->n; j++) {
        n = add_input_rows(c, s->in[j].kind, s->in[j].layer, last_layer, rows, n, max, 3, &lost);
    }
    *known = r.known && !lost;
    return n;
}

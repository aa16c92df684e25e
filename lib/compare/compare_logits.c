/*
 * compare_logits.c - the decision the user sees: for the logits row, per
 * compared token position, whether the two dumps pick the same next token
 * (argmax), how many of their five likeliest tokens they share, and the
 * KL divergence of the candidate's next-token distribution from the
 * reference's (docs/COMPARE.md, "The decision: logits").
 *
 * The positions are those of the row's alignment (compare_align.c): every
 * aligned token row of the logits also comes here (llorch_cmp_logits_add),
 * so decoding steps, --positions and sequences line up exactly as the
 * row's metrics do. Everything is in double precision; the KL divergence
 * is computed so that a tiny one keeps its relative precision (below).
 */
#include "compare_internal.h"
#include "error.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* top-5, as llama.cpp's samplers and the perplexity tool look at it */
#define TOP_K 5

struct llorch_cmp_logits {
    int                                 token_axis, vocab_axis;
    bool                                by_logits;
    double                              kl_threshold;
    double                             *ref, *cand; /* one row of each, n_vocab */
    int64_t                             n_vocab;
    struct llorch_ckpt_logits_position *positions;
    size_t                              n, cap;
    bool                                out_of_memory;
};

/* ---- one position ------------------------------------------------------------------ */

/* The index of the first largest value (NaN is never largest), -1 when
 * every value is NaN: numpy's argmax on values without NaN. */
static int64_t argmax(const double *x, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) {
            best = i;
        }
    }
    return best;
}

/* The k largest values' indices, largest first, equal values by index
 * (numpy: argsort(-x, kind="stable")[:k]); NaN is left out. Returns how
 * many (k, or fewer when the vocabulary is smaller). */
static int top_k(const double *x, int64_t n, int64_t *top) {
    int have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i]) || (have == TOP_K && x[i] <= x[top[have - 1]])) {
            continue;
        }
        int at = have < TOP_K ? have++ : TOP_K - 1;
        while (at > 0 && x[i] > x[top[at - 1]]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = i;
    }
    return have;
}

static int overlap(const int64_t *a, int na, const int64_t *b, int nb) {
    int common = 0;
    for (int i = 0; i < na; i++) {
        for (int j = 0; j < nb; j++) {
            common += a[i] == b[j];
        }
    }
    return common;
}

/* expm1(-x) + x, which is x^2/2 - x^3/6 + ...: by its series where the
 * direct form would cancel. */
static double expm1_neg_plus(double x) {
    if (fabs(x) >= 0.1) {
        return expm1(-x) + x;
    }
    double term = x * x / 2, sum = 0;
    for (int k = 3; k < 24 && term != 0; k++) {
        sum += term;
        term *= -x / k;
    }
    return sum;
}

/* log1p(u) - u, which is -u^2/2 + u^3/3 - ...: likewise. */
static double log1p_minus(double u) {
    if (fabs(u) >= 0.1) {
        return log1p(u) - u;
    }
    double power = u * u, sum = 0;
    for (int k = 2; k < 24 && power != 0; k++) {
        sum += (k % 2 ? 1 : -1) * power / k;
        power *= u;
    }
    return sum;
}

/* Neumaier's compensated sum. */
struct sum {
    double s, c;
};

static void sum_add(struct sum *k, double x) {
    double t = k->s + x;
    k->c += fabs(k->s) >= fabs(x) ? (k->s - t) + x : (x - t) + k->s;
    k->s = t;
}

static double sum_get(const struct sum *k) {
    return k->s + k->c;
}

/* KL(P || Q) for P = softmax(a), Q = softmax(b), in nats.
 *
 * With d = a - b, KL = E_P[d] + log E_P[exp(-d)], which does not change
 * when d is shifted by a constant. The naive sum of p (log p - log q)
 * loses the relative precision of a small KL to the rounding of the two
 * normalizers (about 1e-16 absolute); instead d is centered (e = d -
 * E_P[d]) and KL = E_P[expm1(-e) + e] + (log1p(u) - u) with u =
 * E_P[expm1(-e)], each term by its series where it would cancel, and P's
 * weights are normalized by their own sum. A tiny KL (an f16 cache) is
 * then as precise as a large one.
 *
 * Logits of -inf are tokens that cannot come: P's are left out, and Q's
 * where P's is not make KL infinite. A NaN or +inf gives NaN. */
static double kl_divergence(const double *a, const double *b, int64_t n) {
    double max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]) || a[i] == INFINITY || b[i] == INFINITY) {
            return NAN;
        }
        if (a[i] != -INFINITY && b[i] == -INFINITY) {
            return INFINITY;
        }
        max = a[i] > max ? a[i] : max;
    }
    if (max == -INFINITY) {
        return NAN; /* no token can come: no distribution */
    }
    struct sum w = {0, 0}, wd = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != -INFINITY) {
            double wi = exp(a[i] - max);
            sum_add(&w, wi);
            sum_add(&wd, wi * (a[i] - b[i]));
        }
    }
    double     total = sum_get(&w), mean = sum_get(&wd) / total;
    struct sum wf = {0, 0}, we = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != -INFINITY) {
            double wi = exp(a[i] - max), e = (a[i] - b[i]) - mean;
            sum_add(&wf, wi * expm1_neg_plus(e));
            sum_add(&we, wi * e);
        }
    }
    double s1 = sum_get(&wf) / total, u = s1 - sum_get(&we) / total;
    double kl = s1 + log1p_minus(u);
    return kl > 0 ? kl : 0; /* rounding of an exact 0 */
}

/* ---- the collector ------------------------------------------------------------------- */

static int find_axis(const struct llorch_ckpt_entry *e, const char *name) {
    for (int i = 0; i < e->n_dims; i++) {
        if (strcmp(e->axes[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

static bool run_is_raw(const struct llorch_cmp_run *r) {
    for (size_t f = 0; f < r->n; f++) {
        if (r->k[f].e->raw) {
            return true;
        }
    }
    return false;
}

struct llorch_cmp_logits *llorch_cmp_logits_begin(struct llorch_ckpt_comparison *c, const struct llorch_cmp_group *g,
                                                  const llorch_ckpt_compare_options *opt) {
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    if (g->ref.k[0].kind != LLORCH_CKPT_LOGITS || e->n_dims != 2 || run_is_raw(&g->ref) || run_is_raw(&g->cand)) {
        return NULL;
    }
    int token = find_axis(e, "token"), vocab = find_axis(e, "vocab");
    if (token < 0 || vocab < 0) {
        return NULL; /* not (token, vocab): the row alone judges it */
    }
    struct llorch_cmp_logits *l = calloc(1, sizeof *l);
    if (!l) {
        c->out_of_memory = true;
        return NULL;
    }
    l->token_axis = token;
    l->vocab_axis = vocab;
    l->by_logits = llorch_cmp_decision_asked(opt);
    l->kl_threshold = llorch_ckpt_compare_options_get_kl_max(opt);
    return l;
}

/* Room for one more position and rows of n values. */
static int make_room(struct llorch_cmp_logits *l, int64_t n) {
    if (n > l->n_vocab) {
        double *ref = realloc(l->ref, (size_t) n * sizeof *ref);
        if (ref) {
            l->ref = ref;
        }
        double *cand = ref ? realloc(l->cand, (size_t) n * sizeof *cand) : NULL;
        if (!cand) {
            return -1;
        }
        l->cand = cand;
        l->n_vocab = n;
    }
    return llorch_grow(&l->positions, &l->cap, l->n + 1, sizeof *l->positions, 64);
}

int llorch_cmp_logits_add(struct llorch_cmp_logits *l, const struct llorch_cmp_block *b, int seq,
                          const llorch_ckpt_array *ra, const llorch_ckpt_array *ca) {
    int     v = l->vocab_axis;
    int64_t n = b->extent[v];
    if (l->out_of_memory || n <= 0 || b->extent[l->token_axis] != 1) {
        return 0;
    }
    if (make_room(l, n) != 0) {
        l->out_of_memory = true;
        return 0;
    }
    if (llorch_ckpt_array_gather(ra, b->ref_base, b->ref_stride[v], n, l->ref) != 0 ||
        llorch_ckpt_array_gather(ca, b->cand_base, b->cand_stride[v], n, l->cand) != 0) {
        return -1;
    }
    int64_t                             top_ref[TOP_K], top_cand[TOP_K];
    int                                 n_ref = top_k(l->ref, n, top_ref), n_cand = top_k(l->cand, n, top_cand);
    struct llorch_ckpt_logits_position *p = &l->positions[l->n++];
    p->seq = seq;
    p->position = b->coord0[l->token_axis];
    p->ref_argmax = argmax(l->ref, n);
    p->cand_argmax = argmax(l->cand, n);
    p->top5_overlap = overlap(top_ref, n_ref, top_cand, n_cand);
    p->kl = kl_divergence(l->ref, l->cand, n);
    return 0;
}

/* NaN (a NaN in the logits) is worse than any number. */
static bool worse(double kl, double than) {
    return isnan(kl) ? !isnan(than) : kl > than;
}

/* The summary over the positions (in (sequence, position) order, as
 * aligned). */
static void summarize(struct llorch_ckpt_decision *d) {
    struct sum kl = {0, 0};
    size_t     overlaps = 0, n_nan = 0, n_inf = 0;
    d->first_diff = -1;
    d->kl_max_index = -1;
    for (size_t i = 0; i < d->n_positions; i++) {
        const struct llorch_ckpt_logits_position *p = &d->positions[i];
        bool                                      agree = p->ref_argmax == p->cand_argmax && p->ref_argmax >= 0;
        d->top1_agree += agree;
        if (!agree && d->first_diff < 0) {
            d->first_diff = (long) i;
        }
        overlaps += (size_t) p->top5_overlap;
        n_nan += isnan(p->kl);
        n_inf += isinf(p->kl);
        if (isfinite(p->kl)) {
            sum_add(&kl, p->kl);
        }
        if (d->kl_max_index < 0 || worse(p->kl, d->kl_max)) {
            d->kl_max = p->kl;
            d->kl_max_index = (long) i;
        }
        d->per_sequence = d->per_sequence || p->seq != 0;
    }
    double n = d->n_positions ? (double) d->n_positions : 1;
    d->top1_rate = (double) d->top1_agree / n;
    d->top5_overlap_mean = (double) overlaps / n;
    d->kl_mean = n_nan ? NAN : n_inf ? INFINITY : sum_get(&kl) / n;
    d->pass = d->n_positions > 0 && d->first_diff < 0 && d->kl_mean <= d->kl_threshold;
}

void llorch_cmp_logits_end(struct llorch_ckpt_comparison *c, struct llorch_cmp_logits *l, bool compared) {
    if (!l) {
        return;
    }
    if (l->out_of_memory) {
        c->out_of_memory = true;
    } else if (compared && l->n > 0) {
        struct llorch_ckpt_decision *d = calloc(1, sizeof *d);
        if (!d) {
            c->out_of_memory = true;
        } else {
            llorch_ckpt_decision_free(c->decision); /* one logits row per comparison */
            d->by_logits = l->by_logits;
            d->kl_threshold = l->kl_threshold;
            d->top_k = TOP_K;
            d->n_vocab = l->n_vocab;
            d->n_positions = l->n;
            d->positions = l->positions;
            l->positions = NULL;
            summarize(d);
            c->decision = d;
        }
    }
    free(l->positions);
    free(l->ref);
    free(l->cand);
    free(l);
}

/* ---- the API ------------------------------------------------------------------------- */

const struct llorch_ckpt_decision *llorch_cmp_decision(const struct llorch_ckpt_comparison *c) {
    return c->decision;
}

/* Why c holds no decision: what each dump holds of the logits. */
static void explain_missing(const llorch_ckpt_comparison *c, char *err, size_t err_size) {
    bool only[2] = {false, false};
    for (size_t i = 0; i < c->n_rows; i++) {
        const struct llorch_ckpt_row *r = &c->rows[i];
        if (c->kinds[i] != LLORCH_CKPT_LOGITS) {
            continue;
        }
        if (r->status == LLORCH_CKPT_STATUS_ERROR) {
            llorch_set_error(err, err_size, "the logits could not be compared: %s", r->message ? r->message : "?");
        } else {
            llorch_set_error(err, err_size, "the logits are not laid out (token, vocab) in both dumps");
        }
        return;
    }
    for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < c->n_only[side]; i++) {
            only[side] = only[side] || strcmp(c->only[side][i].checkpoint, "logits") == 0;
        }
    }
    llorch_set_error(err, err_size, "%s",
                     only[1]   ? "only the reference holds logits"
                     : only[0] ? "only the candidate holds logits"
                               : "neither dump holds logits");
}

llorch_ckpt_decision *llorch_ckpt_comparison_decision(const llorch_ckpt_comparison *c, char *err, size_t err_size) {
    const struct llorch_ckpt_decision *d = c->decision;
    if (!d) {
        explain_missing(c, err, err_size);
        return NULL;
    }
    llorch_ckpt_decision               *copy = malloc(sizeof *copy);
    struct llorch_ckpt_logits_position *positions = malloc((d->n_positions ? d->n_positions : 1) * sizeof *positions);
    if (!copy || !positions) {
        free(copy);
        free(positions);
        llorch_set_error(err, err_size, "out of memory");
        return NULL;
    }
    *copy = *d;
    memcpy(positions, d->positions, d->n_positions * sizeof *positions);
    copy->positions = positions;
    return copy;
}

int llorch_ckpt_decision_exit_code(const llorch_ckpt_decision *d) {
    return !d ? 2 : d->pass ? 0 : 1;
}

void llorch_ckpt_decision_free(llorch_ckpt_decision *d) {
    if (d) {
        free(d->positions);
        free(d);
    }
}

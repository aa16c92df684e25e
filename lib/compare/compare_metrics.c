/*
 * compare_metrics.c - the element-wise metrics of a row (docs/COMPARE.md):
 * pairs of values, in double precision, walked block by block in C order
 * and accumulated into errors, NMSE, cosine and the fraction within
 * tolerance, with where the largest error is; and the buckets a profile
 * (compare_profile.c, above) splits a row's pairs into, each pair also
 * added to the bucket of its coordinate or step.
 */
#include "compare_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Values gathered from a file at a time: one run of the last axis. */
#define GATHER_CHUNK 1024

static void ksum_add(struct llorch_cmp_ksum *k, double x) {
    double t = k->s + x;
    k->c += fabs(k->s) >= fabs(x) ? (k->s - t) + x : (x - t) + k->s;
    k->s = t;
}

static double ksum_get(const struct llorch_cmp_ksum *k) {
    return k->s + k->c;
}

static bool same_nonfinite(double r, double c) {
    return (isnan(r) && isnan(c)) || (isinf(r) && r == c);
}

/* Adds one pair; returns true when it is the new largest error (the caller
 * then records where it is). */
static bool accumulate(struct llorch_cmp_accum *a, double r, double c) {
    a->n++;
    if (!isfinite(r) || !isfinite(c)) {
        if (same_nonfinite(r, c)) {
            a->n_within++;
            return false;
        }
        a->n_nonfinite++;
        bool first = a->max_abs != INFINITY;
        a->max_abs = INFINITY;
        return first;
    }
    double d = c - r, ad = fabs(d);
    a->n_finite++;
    a->n_within += ad <= a->tol.atol + a->tol.rtol * fabs(r);
    if (r != 0 && ad / fabs(r) > a->max_rel) {
        a->max_rel = ad / fabs(r);
    }
    ksum_add(&a->abs, ad);
    ksum_add(&a->sq, d * d);
    ksum_add(&a->dot, r * c);
    ksum_add(&a->rr, r * r);
    ksum_add(&a->cc, c * c);
    double delta = r - a->mean;
    a->mean += delta / (double) a->n_finite;
    a->m2 += delta * (r - a->mean);
    if (ad > a->max_abs) {
        a->max_abs = ad;
        return true;
    }
    return false;
}

/* NMSE is MSE over the reference's variance; a constant reference (softmax
 * over one key) has none, so its mean square stands in. */
static double nmse_of(double mse, double variance, double power) {
    double scale = variance > 0 ? variance : power;
    if (scale > 0) {
        return mse / scale;
    }
    return mse > 0 ? INFINITY : 0;
}

void llorch_cmp_finish_metrics(const struct llorch_cmp_accum *a, struct llorch_ckpt_metrics *m) {
    double nf = a->n_finite ? (double) a->n_finite : 1;
    double rr = ksum_get(&a->rr), cc = ksum_get(&a->cc);
    double mse = ksum_get(&a->sq) / nf;
    memset(m, 0, sizeof *m);
    m->n = a->n;
    m->n_within = a->n_within;
    m->n_nonfinite = a->n_nonfinite;
    m->max_abs = a->max_abs < 0 ? 0 : a->max_abs;
    memcpy(m->max_abs_at, a->max_abs_at, sizeof m->max_abs_at);
    m->max_rel = a->max_rel;
    m->mean_abs = ksum_get(&a->abs) / nf;
    m->rmse = sqrt(mse);
    m->nmse = nmse_of(mse, a->m2 / nf, rr / nf);
    if (rr > 0 && cc > 0) {
        m->cosine = ksum_get(&a->dot) / (sqrt(rr) * sqrt(cc));
    } else {
        m->cosine = rr == cc ? 1 : 0; /* both zero: identical */
    }
    m->within = a->n ? (double) a->n_within / (double) a->n : 0;
}

bool llorch_cmp_metrics_pass(const struct llorch_ckpt_metrics *m, const struct llorch_ckpt_tolerance *t) {
    return m->n > 0 && m->n_nonfinite == 0 && m->within >= t->within && m->nmse <= t->nmse;
}

void llorch_cmp_strides(const llorch_ckpt_array *a, int64_t *stride) {
    int     n = llorch_ckpt_array_n_dims(a);
    int64_t s = 1;
    for (int i = n - 1; i >= 0; i--) {
        stride[i] = s;
        s *= llorch_ckpt_array_dim(a, i);
    }
    if (n == 0) {
        stride[0] = 1; /* a scalar: one element */
    }
}

/* ---- a profile's buckets (struct llorch_cmp_split) --------------------------------- */

/* The index of the first bucket whose key is not below key. */
static size_t lower_bound(const struct llorch_cmp_split *s, int64_t key) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->buckets[mid].key < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct llorch_cmp_accum *insert_bucket(struct llorch_cmp_split *s, size_t at, int64_t key) {
    if (s->n == s->cap) {
        size_t                    cap = s->cap ? 2 * s->cap : 64;
        struct llorch_cmp_bucket *grown = realloc(s->buckets, cap * sizeof *grown);
        if (!grown) {
            s->out_of_memory = true;
            return NULL;
        }
        s->buckets = grown;
        s->cap = cap;
    }
    memmove(&s->buckets[at + 1], &s->buckets[at], (s->n - at) * sizeof *s->buckets);
    memset(&s->buckets[at], 0, sizeof *s->buckets);
    s->buckets[at].key = key;
    s->buckets[at].acc.tol = s->tol;
    s->buckets[at].acc.max_abs = -1;
    s->n++;
    s->last = at;
    return &s->buckets[at].acc;
}

/* Consecutive pairs mostly share a bucket: the last one is tried first. */
struct llorch_cmp_accum *llorch_cmp_split_bucket(struct llorch_cmp_split *s, int64_t key) {
    if (s->out_of_memory) {
        return NULL;
    }
    if (s->last < s->n && s->buckets[s->last].key == key) {
        return &s->buckets[s->last].acc;
    }
    size_t at = lower_bound(s, key);
    if (at < s->n && s->buckets[at].key == key) {
        s->last = at;
        return &s->buckets[at].acc;
    }
    return insert_bucket(s, at, key);
}

/* ---- walking a block ------------------------------------------------------------- */

/* A profile (compare_profile.c) also gets the pair, in the bucket of its
 * step or of its coordinate on the split axis (j: the last axis' index). */
static void add_to_split(struct llorch_cmp_split *s, const struct llorch_cmp_block *b, const int64_t *idx, int64_t j,
                         double r, double c) {
    int64_t key;
    if (s->axis < 0) {
        key = s->cand_steps ? b->cand_step : b->ref_step;
    } else {
        key = b->coord0[s->axis] + (s->axis == b->n_axes - 1 ? j : idx[s->axis]);
    }
    struct llorch_cmp_accum *bucket = llorch_cmp_split_bucket(s, key);
    if (bucket) {
        (void) accumulate(bucket, r, c);
    }
}

/* The last axis of the block at index idx (offsets ro, co in the files),
 * gathered a chunk at a time. */
static int compare_line(const struct llorch_cmp_block *b, const int64_t *idx, int64_t ro, int64_t co,
                        const llorch_ckpt_array *ra, const llorch_ckpt_array *ca, struct llorch_cmp_accum *acc) {
    double rv[GATHER_CHUNK], cv[GATHER_CHUNK];
    int    last = b->n_axes - 1;
    for (int64_t j0 = 0; j0 < b->extent[last]; j0 += GATHER_CHUNK) {
        int64_t n = b->extent[last] - j0 < GATHER_CHUNK ? b->extent[last] - j0 : GATHER_CHUNK;
        if (llorch_ckpt_array_gather(ra, ro + j0 * b->ref_stride[last], b->ref_stride[last], n, rv) != 0 ||
            llorch_ckpt_array_gather(ca, co + j0 * b->cand_stride[last], b->cand_stride[last], n, cv) != 0) {
            return -1;
        }
        for (int64_t k = 0; k < n; k++) {
            if (accumulate(acc, rv[k], cv[k])) {
                for (int i = 0; i < last; i++) {
                    acc->max_abs_at[i] = b->coord0[i] + idx[i];
                }
                acc->max_abs_at[last] = b->coord0[last] + j0 + k;
            }
            if (acc->split) {
                add_to_split(acc->split, b, idx, j0 + k, rv[k], cv[k]);
            }
        }
    }
    return 0;
}

/* Odometer over every axis but the last; false when done. */
static bool next_index(int64_t *idx, const int64_t *extent, int last) {
    for (int i = last - 1; i >= 0; i--) {
        if (++idx[i] < extent[i]) {
            return true;
        }
        idx[i] = 0;
    }
    return false;
}

int llorch_cmp_compare_block(const struct llorch_cmp_block *b, const llorch_ckpt_array *ra, const llorch_ckpt_array *ca,
                             struct llorch_cmp_accum *acc) {
    int64_t idx[LLORCH_CKPT_MAX_DIMS] = {0};
    int     last = b->n_axes - 1;
    for (int i = 0; i < b->n_axes; i++) {
        if (b->extent[i] <= 0) {
            return 0;
        }
    }
    do {
        int64_t ro = b->ref_base, co = b->cand_base;
        for (int i = 0; i < last; i++) {
            ro += idx[i] * b->ref_stride[i];
            co += idx[i] * b->cand_stride[i];
        }
        if (compare_line(b, idx, ro, co, ra, ca, acc) != 0) {
            return -1;
        }
    } while (next_index(idx, b->extent, last));
    return 0;
}

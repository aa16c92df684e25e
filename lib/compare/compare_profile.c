/*
 * compare_profile.c - one row's error split up by position, head or step
 * (llorch_ckpt_profile_row). The row's group is found and aligned again
 * exactly as the comparison did (compare_align.c), and every pair that
 * lines up also goes to the bucket of its coordinate on one axis, or of
 * its step; each bucket's metrics are the row's metrics over its elements.
 * A whole tensor's numbers cannot tell one wrong position (RoPE, a mask)
 * or head from a wrong weight; these can.
 */
#include "compare_internal.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define BY_MAX_BYTES 64

/* The profile and what its pointers point to, in one allocation. */
struct profile_block {
    llorch_ckpt_profile profile;
    char                by[BY_MAX_BYTES];
};

/* ---- the row's group --------------------------------------------------------------- */

static bool group_is_row(const struct llorch_cmp_group *g, const struct llorch_ckpt_row *row) {
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    if (strcmp(e->checkpoint, row->checkpoint) != 0 || e->layer != row->layer) {
        return false;
    }
    return !row->graph_name || (e->graph_name && strcmp(e->graph_name, row->graph_name) == 0);
}

static bool run_has_steps(const struct llorch_cmp_run *r) {
    for (size_t i = 1; i < r->n; i++) {
        if (r->k[i].e->step != r->k[0].e->step) {
            return true;
        }
    }
    return false;
}

/* The split for `by`; -1 with a message when the row has no such axis. */
static int choose_split(struct llorch_cmp_split *s, const struct llorch_cmp_group *g, const struct llorch_ckpt_row *row,
                        const char *by, char *err, size_t err_size) {
    memset(s, 0, sizeof *s);
    s->tol = row->tolerance;
    s->axis = -1;
    if (strcmp(by, "step") == 0) {
        s->cand_steps = !run_has_steps(&g->ref) && run_has_steps(&g->cand);
        return 0;
    }
    for (int i = 0; i < row->n_axes; i++) {
        if (strcmp(row->axes[i], by) == 0) {
            s->axis = i;
            return 0;
        }
    }
    llorch_set_error(err, err_size, "%s layer %d has no axis '%s' to profile by", row->checkpoint, row->layer, by);
    return -1;
}

/* ---- the profile ----------------------------------------------------------------- */

static llorch_ckpt_profile *make_profile(const struct llorch_cmp_split *s, const char *by) {
    struct profile_block *b = calloc(1, sizeof *b);
    if (!b) {
        return NULL;
    }
    llorch_ckpt_profile *p = &b->profile;
    p->points = calloc(s->n ? s->n : 1, sizeof *p->points);
    if (!p->points) {
        free(b);
        return NULL;
    }
    snprintf(b->by, sizeof b->by, "%s", by);
    p->by = b->by;
    for (size_t i = 0; i < s->n; i++) {
        struct llorch_ckpt_profile_point *pt = &p->points[p->n_points++];
        pt->coord = s->buckets[i].key;
        llorch_cmp_finish_metrics(&s->buckets[i].acc, &pt->metrics);
        memset(pt->metrics.max_abs_at, 0, sizeof pt->metrics.max_abs_at);
        pt->status = llorch_cmp_metrics_pass(&pt->metrics, &s->tol) ? LLORCH_CKPT_STATUS_PASS : LLORCH_CKPT_STATUS_FAIL;
    }
    return p;
}

/* Aligns the group with the split attached; the profile, or NULL. */
static llorch_ckpt_profile *profile_group(const struct llorch_cmp_group *g, const llorch_ckpt_dump *ref,
                                          const llorch_ckpt_dump *cand, const struct llorch_ckpt_row *row,
                                          const char *by, char *err, size_t err_size) {
    struct llorch_cmp_split    split;
    struct llorch_cmp_accum    acc = {.max_abs = -1};
    struct llorch_cmp_coverage cov = {0, 0};
    char                       msg[4096];
    llorch_ckpt_profile       *p = NULL;
    if (choose_split(&split, g, row, by, err, err_size) != 0) {
        return NULL;
    }
    acc.tol = row->tolerance;
    acc.split = &split;
    if (llorch_cmp_align_group(g, ref, cand, &acc, &cov, msg, sizeof msg) != 0) {
        llorch_set_error(err, err_size, "%s", msg);
    } else if (split.out_of_memory || !(p = make_profile(&split, by))) {
        llorch_set_error(err, err_size, "out of memory");
    }
    free(split.buckets);
    return p;
}

llorch_ckpt_profile *llorch_ckpt_profile_row(const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                                             const llorch_ckpt_dump *cand, size_t i, const char *by, char *err,
                                             size_t err_size) {
    struct llorch_cmp_grouping    g;
    llorch_ckpt_profile          *p = NULL;
    const struct llorch_ckpt_row *row = llorch_ckpt_comparison_row(c, i);
    if (!row) {
        llorch_set_error(err, err_size, "no row %zu: the comparison has %zu", i, c->n_rows);
        return NULL;
    }
    if (row->status == LLORCH_CKPT_STATUS_ERROR) {
        llorch_set_error(err, err_size, "%s layer %d could not be compared", row->checkpoint, row->layer);
        return NULL;
    }
    if (strlen(by) >= BY_MAX_BYTES) {
        llorch_set_error(err, err_size, "no axis is named '%.*s...'", BY_MAX_BYTES, by);
        return NULL;
    }
    if (llorch_cmp_build_groups(&g, ref, cand, c->seqs, NULL) != 0) {
        llorch_set_error(err, err_size, "out of memory");
        return NULL;
    }
    llorch_set_error(err, err_size, "%s layer %d is not in both dumps", row->checkpoint, row->layer);
    for (size_t k = 0; k < g.n_groups; k++) {
        if (group_is_row(&g.groups[k], row)) {
            p = profile_group(&g.groups[k], ref, cand, row, by, err, err_size);
            break;
        }
    }
    llorch_cmp_free_grouping(&g);
    return p;
}

/* The profile is the first member of its block. */
void llorch_ckpt_profile_free(llorch_ckpt_profile *p) {
    if (p) {
        free(p->points);
        free((struct profile_block *) (void *) p);
    }
}

/*
 * compare_group.c - the manifest entries of both dumps grouped by
 * (checkpoint, layer), never by file, step or sequence: a dump made in one
 * step compares with one made token by token, and the files of every
 * sequence of a batched dump make one row (compare_align.c lines their
 * rows up by sequence and position). Each group is a row when both
 * dumps hold it, else a key listed as only in one of them. Within a group
 * each dump's files are in step order, then manifest order, which is the
 * one meaning of "latest" that alignment uses. Checkpoint names are turned
 * into kinds here, once.
 */
#include "compare_internal.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Graph tensors are told apart by their llama.cpp name; the others by
 * checkpoint and layer only (graph_name differs between implementations). */
static const char *group_name(const struct llorch_cmp_keyed *k) {
    return k->kind == LLORCH_CKPT_GRAPH && k->e->graph_name ? k->e->graph_name : "";
}

/* By name, not kind: a dump may hold names that are no kind. */
static int key_compare(const struct llorch_cmp_keyed *a, const struct llorch_cmp_keyed *b) {
    int c = strcmp(a->e->checkpoint, b->e->checkpoint);
    if (c == 0) {
        c = strcmp(group_name(a), group_name(b));
    }
    if (c == 0) {
        c = (a->e->layer > b->e->layer) - (a->e->layer < b->e->layer);
    }
    return c;
}

static int keyed_compare(const void *pa, const void *pb) {
    const struct llorch_cmp_keyed *a = pa, *b = pb;
    int                            c = key_compare(a, b);
    if (c == 0) {
        c = (a->e->step > b->e->step) - (a->e->step < b->e->step);
    }
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

/* The files of the compared sequences (seq >= 0: that one, aligned as
 * sequence 0; -1: all, each under its own id), sorted; *n their count. */
/* --only: a file of a kind the engine does not produce is left out. */
static bool wanted(const llorch_ckpt_selection *only, const struct llorch_ckpt_entry *e, int kind) {
    return !only || (kind >= 0 && llorch_ckpt_selection_has(only, (enum llorch_ckpt_kind) kind, e->layer));
}

static struct llorch_cmp_keyed *sorted_entries(const llorch_ckpt_dump *d, int seq, const llorch_ckpt_selection *only,
                                               size_t *n) {
    size_t                   total = llorch_ckpt_dump_n_entries(d);
    struct llorch_cmp_keyed *k = malloc((total ? total : 1) * sizeof *k);
    if (!k) {
        return NULL;
    }
    *n = 0;
    for (size_t i = 0; i < total; i++) {
        const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
        if ((seq >= 0 && e->seq != seq) || !wanted(only, e, llorch_ckpt_kind_from_name(e->checkpoint))) {
            continue;
        }
        k[*n] = (struct llorch_cmp_keyed){.e = e,
                                          .idx = i,
                                          .kind = llorch_ckpt_kind_from_name(e->checkpoint),
                                          .seq = seq < 0 && e->seq > 0 ? e->seq : 0};
        (*n)++;
    }
    llorch_sort(k, *n, sizeof *k, keyed_compare);
    return k;
}

/* The run of equal keys that starts at k[i]. */
static struct llorch_cmp_run run_at(const struct llorch_cmp_keyed *k, size_t i, size_t n) {
    struct llorch_cmp_run r = {&k[i], 1, k[i].idx};
    while (i + r.n < n && key_compare(&k[i], &k[i + r.n]) == 0) {
        r.first = k[i + r.n].idx < r.first ? k[i + r.n].idx : r.first;
        r.n++;
    }
    return r;
}

static int run_first_compare(const void *pa, const void *pb) {
    const struct llorch_cmp_run *a = pa, *b = pb;
    return (a->first > b->first) - (a->first < b->first);
}

static int group_first_compare(const void *pa, const void *pb) {
    return run_first_compare(&((const struct llorch_cmp_group *) pa)->ref,
                             &((const struct llorch_cmp_group *) pb)->ref);
}

/* Merges the two sorted lists into groups in both, and runs in one. */
static void merge_runs(struct llorch_cmp_grouping *g, size_t nr, size_t nc) {
    size_t i = 0, j = 0;
    while (i < nr || j < nc) {
        int c = i == nr ? 1 : j == nc ? -1 : key_compare(&g->ref[i], &g->cand[j]);
        if (c == 0) {
            struct llorch_cmp_group *group = &g->groups[g->n_groups++];
            group->ref = run_at(g->ref, i, nr);
            group->cand = run_at(g->cand, j, nc);
            i += group->ref.n;
            j += group->cand.n;
        } else if (c < 0) {
            g->only[1][g->n_only[1]] = run_at(g->ref, i, nr);
            i += g->only[1][g->n_only[1]++].n;
        } else {
            g->only[0][g->n_only[0]] = run_at(g->cand, j, nc);
            j += g->only[0][g->n_only[0]++].n;
        }
    }
}

void llorch_cmp_free_grouping(struct llorch_cmp_grouping *g) {
    free(g->ref);
    free(g->cand);
    free(g->groups);
    free(g->only[0]);
    free(g->only[1]);
}

int llorch_cmp_build_groups(struct llorch_cmp_grouping *g, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                            const int seqs[2], const llorch_ckpt_selection *only) {
    size_t nr = 0, nc = 0;
    memset(g, 0, sizeof *g);
    g->ref = sorted_entries(ref, seqs[0], only, &nr);
    g->cand = sorted_entries(cand, seqs[1], only, &nc);
    g->groups = malloc((nr + 1) * sizeof *g->groups);
    g->only[1] = malloc((nr + 1) * sizeof *g->only[1]);
    g->only[0] = malloc((nc + 1) * sizeof *g->only[0]);
    if (!g->ref || !g->cand || !g->groups || !g->only[0] || !g->only[1]) {
        llorch_cmp_free_grouping(g);
        return -1;
    }
    merge_runs(g, nr, nc);
    /* Rows and keys in the order of their first appearance in the manifest. */
    llorch_sort(g->groups, g->n_groups, sizeof *g->groups, group_first_compare);
    llorch_sort(g->only[0], g->n_only[0], sizeof *g->only[0], run_first_compare);
    llorch_sort(g->only[1], g->n_only[1], sizeof *g->only[1], run_first_compare);
    return 0;
}

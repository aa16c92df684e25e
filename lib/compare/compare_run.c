/*
 * compare_run.c - the comparison from end to end: the whole-dump checks,
 * the grouping into rows, each row aligned and measured, then the noise
 * floor, the judgement and each failing row's origin. The top of the
 * compare_*.c stack: it calls every stage below it and writes into the
 * result object of compare_result.c.
 */
#include "compare_internal.h"
#include "error.h"

#include <stdlib.h>

/* ---- the comparison --------------------------------------------------------------- */

static void record_only(struct llorch_ckpt_comparison *c, const struct llorch_cmp_grouping *g) {
    for (int side = 0; side < 2; side++) {
        c->only[side] = calloc(g->n_only[side] + 1, sizeof *c->only[side]);
        if (!c->only[side]) {
            c->out_of_memory = true;
            return;
        }
        for (size_t i = 0; i < g->n_only[side]; i++) {
            const struct llorch_cmp_keyed *first = &g->only[side][i].k[0];
            struct llorch_ckpt_key        *k = &c->only[side][c->n_only[side]++];
            k->checkpoint = llorch_cmp_keep(c, first->e->checkpoint);
            k->graph_name = first->kind == LLORCH_CKPT_GRAPH ? llorch_cmp_keep(c, first->e->graph_name) : NULL;
            k->layer = first->e->layer;
        }
    }
}

/* What one comparison needs besides its two dumps: the options, and the
 * noise floor (the reference against the noise dump) or NULL. */
struct run_inputs {
    const llorch_ckpt_compare_options   *opt;
    const struct llorch_ckpt_comparison *floor;
    const char                          *floor_name;
};

/* Every row first, then the noise floor: a row's origin depends on the
 * final status of the others. */
static int compare_groups(struct llorch_ckpt_comparison *c, const struct llorch_cmp_grouping *g,
                          const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand, const struct run_inputs *in) {
    const llorch_ckpt_compare_options *opt = in->opt;
    if (llorch_cmp_alloc_rows(c, g->n_groups) != 0) {
        return -1;
    }
    for (size_t i = 0; i < g->n_groups; i++) {
        c->kinds[c->n_rows] = g->groups[i].ref.k[0].kind;
        llorch_cmp_compare_group(c, &g->groups[i], opt, ref, cand, &c->rows[c->n_rows++]);
    }
    int    last_layer = llorch_ckpt_dump_model(ref)->n_layer - 1;
    double k = llorch_ckpt_compare_options_get_noise_factor(opt);
    if (llorch_cmp_auto_judgement(opt)) {
        if (in->floor) {
            llorch_cmp_measure_noise(c, in->floor, k, in->floor_name);
        }
        llorch_cmp_judge_auto(c, last_layer);
    } else if (in->floor) {
        llorch_cmp_apply_noise(c, in->floor, k, in->floor_name);
    }
    for (size_t i = 0; i < c->n_rows; i++) {
        enum llorch_ckpt_origin judged = c->rows[i].origin;
        llorch_cmp_judge_origin(c, i, last_layer); /* the inputs shown; their states */
        if (c->auto_judgement) {
            c->rows[i].origin = judged; /* the growth decided it */
        }
    }
    llorch_cmp_explain_by_settings(c);
    return 0;
}

/* What the reference holds and the comparison did not see. */
static void count_missing(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                          const llorch_ckpt_compare_options *opt) {
    struct llorch_ckpt_missing *m = &c->missing;
    m->n_rows = c->n_only[1];
    for (size_t i = 0; i < c->n_rows; i++) {
        m->n_positions += c->rows[i].n_ref_only;
    }
    m->ref_incomplete = !llorch_ckpt_dump_complete(ref);
    m->cand_incomplete = !llorch_ckpt_dump_complete(cand);
    m->allowed = llorch_cmp_allow_missing(opt);
    m->only = llorch_cmp_only(opt) != NULL;
}

static int run_comparison(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                          const struct run_inputs *in, char *err, size_t err_size) {
    const llorch_ckpt_compare_options *opt = in->opt;
    struct llorch_cmp_grouping         g;
    if (llorch_cmp_check_models(c, ref, cand, opt, err, err_size) != 0 ||
        llorch_cmp_check_sequences(ref, cand, opt, c->seqs, err, err_size) != 0 ||
        llorch_cmp_check_tokens(c, ref, cand, c->seqs, llorch_cmp_allow_token_mismatch(opt), err, err_size) != 0) {
        return -1;
    }
    llorch_cmp_note_incomplete(c, ref, "reference");
    llorch_cmp_note_incomplete(c, cand, "candidate");
    if (llorch_cmp_read_fed(c, ref, cand, err, err_size) != 0) {
        return -1;
    }
    if (llorch_cmp_read_settings(c, ref, cand) != 0 ||
        llorch_cmp_build_groups(&g, ref, cand, c->seqs, llorch_cmp_only(opt)) != 0) {
        llorch_set_error(err, err_size, "out of memory");
        return -1;
    }
    int rc = 0;
    if (g.n_groups == 0) {
        llorch_set_error(err, err_size, "the dumps have no checkpoint in common (%s has %zu files, %s has %zu)",
                         llorch_ckpt_dump_name(ref), llorch_ckpt_dump_n_entries(ref), llorch_ckpt_dump_name(cand),
                         llorch_ckpt_dump_n_entries(cand));
        rc = -1;
    } else if (compare_groups(c, &g, ref, cand, in) != 0) {
        c->out_of_memory = true;
    }
    record_only(c, &g);
    llorch_cmp_free_grouping(&g);
    llorch_cmp_note_dtypes(c);
    count_missing(c, ref, cand, opt);
    if (rc == 0 && c->out_of_memory) {
        llorch_set_error(err, err_size, "out of memory");
        rc = -1;
    }
    return rc;
}

static llorch_ckpt_comparison *compare(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                       const struct run_inputs *in, char *err, size_t err_size) {
    llorch_ckpt_comparison *c = llorch_cmp_comparison_new();
    if (!c) {
        llorch_set_error(err, err_size, "out of memory");
        return NULL;
    }
    if (run_comparison(c, ref, cand, in, err, err_size) != 0) {
        llorch_ckpt_comparison_free(c);
        return NULL;
    }
    return c;
}

llorch_ckpt_comparison *llorch_ckpt_compare(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                            const llorch_ckpt_compare_options *opt, char *err, size_t err_size) {
    struct run_inputs in = {opt, NULL, NULL};
    return compare(ref, cand, &in, err, err_size);
}

/* The reference against the noise dump first: the floor of every row. */
llorch_ckpt_comparison *llorch_ckpt_compare_noise(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                                  const llorch_ckpt_dump *noise, const llorch_ckpt_compare_options *opt,
                                                  char *err, size_t err_size) {
    struct run_inputs in = {opt, NULL, noise ? llorch_ckpt_dump_name(noise) : NULL};
    char              why[4096];
    if (!noise) {
        return compare(ref, cand, &in, err, err_size);
    }
    llorch_ckpt_comparison *floor = compare(ref, noise, &in, why, sizeof why);
    if (!floor) {
        llorch_set_error(err, err_size, "noise floor %s: %s", in.floor_name, why);
        return NULL;
    }
    in.floor = floor;
    llorch_ckpt_comparison *c = compare(ref, cand, &in, err, err_size);
    llorch_ckpt_comparison_free(floor);
    if (c) {
        c->noise_name = llorch_cmp_keep(c, in.floor_name);
        c->noise_producer = llorch_cmp_keep(c, llorch_ckpt_dump_producer(noise));
    }
    return c;
}

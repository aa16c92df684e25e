/*
 * report.c - the comparison as a table for people, closed by the one
 * sentence of report_text.c (report_json.c writes the same as JSON). Both
 * reports hold the warnings (tokens that differ, an incomplete dump,
 * dtypes that differ, ...): they qualify the verdict, so a report without
 * them could mislead. The top of the text report: it calls report_text.c,
 * report_logits.c and report_isolation.c below it.
 */
#include "report_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_MARK "=>"

/* ---- the table ---------------------------------------------------------------------- */

static void print_header_line(FILE *f, const char *role, const char *name, const llorch_ckpt_dump *d) {
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    const char                     *producer = llorch_ckpt_dump_producer(d);
    const char                     *architecture = m->architecture ? m->architecture : "unknown architecture";
    fprintf(f, "%-10s %s (%s; %s, %d layers, n_embd %d; %zu tokens%s)\n", role, name,
            producer ? producer : "unknown producer", architecture, m->n_layer, m->n_embd, llorch_ckpt_dump_n_tokens(d),
            llorch_ckpt_dump_complete(d) ? "" : "; INCOMPLETE");
}

/* The numerics settings that differ come first: they qualify every row. */
static void print_settings(FILE *f, const llorch_ckpt_comparison *c) {
    for (size_t i = 0; i < llorch_ckpt_comparison_n_settings(c); i++) {
        const struct llorch_ckpt_setting_diff *d = llorch_ckpt_comparison_setting(c, i);
        fprintf(f, "%-10s %s: %s in the reference, %s in the candidate; changes %s\n", "settings", d->key,
                d->ref_value ? d->ref_value : "not stated", d->cand_value ? d->cand_value : "not stated", d->affects);
    }
}

static void print_noise_header(FILE *f, const llorch_ckpt_comparison *c) {
    const char *producer, *name = llorch_ckpt_comparison_noise_dump(c, &producer);
    if (!name) {
        return;
    }
    fprintf(f, "%-10s %s (%s)\n", "noise", name, producer ? producer : "unknown producer");
    fprintf(f,
            "%-10s a row outside the tolerance passes when its max_abs_err and rmse are within %gx those of the "
            "reference against the noise dump\n",
            "", llorch_ckpt_comparison_noise_factor(c));
}

static void print_tolerance(FILE *f, const char *what, const struct llorch_ckpt_tolerance *t) {
    fprintf(f, "%-10s %s: atol %.3g, rtol %.3g, nmse %.3g, within %.6g%%\n", "tolerance", what, t->atol, t->rtol,
            t->nmse, t->within * 100);
}

static bool same_tolerance(const struct llorch_ckpt_tolerance *a, const struct llorch_ckpt_tolerance *b) {
    return a->atol == b->atol && a->rtol == b->rtol && a->nmse == b->nmse && a->within == b->within;
}

/* The global tolerance, then each checkpoint whose tolerance differs. */
static void print_tolerances(FILE *f, const llorch_ckpt_comparison *c, const llorch_ckpt_compare_options *o) {
    struct llorch_ckpt_tolerance global = llorch_ckpt_compare_options_get(o, NULL);
    char                         what[128];
    if (llorch_ckpt_comparison_auto(c)) {
        fprintf(f,
                "%-10s default: a row fails where its NMSE grows over %s its inputs' (10000x for kq_soft_max) "
                "and the floor of its precision, or where it passes NMSE %.0e (--preset f32: fixed limits)\n",
                "judgement", "1000x", LLORCH_CKPT_CEILING_NMSE);
        return;
    }
    snprintf(what, sizeof what, "preset %s", llorch_ckpt_compare_options_preset_name(o));
    print_tolerance(f, what, &global);
    size_t n = llorch_ckpt_comparison_n_rows(c);
    for (size_t i = 0; i < n; i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (same_tolerance(&r->tolerance, &global)) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(llorch_ckpt_comparison_row(c, j)->checkpoint, r->checkpoint) == 0;
        }
        if (!seen) {
            print_tolerance(f, r->checkpoint, &r->tolerance);
        }
    }
}

/* With a noise floor: "noise 1.3x", "noise 880x", "no noise floor". */
static void print_bound(FILE *f, const struct llorch_ckpt_row *r) {
    if (r->bound == LLORCH_CKPT_BOUND_NO_FLOOR) {
        fprintf(f, "  no noise floor");
    } else if (r->bound != LLORCH_CKPT_BOUND_TOLERANCE) {
        fprintf(f, r->noise.ratio < 1e3 ? "  noise %.2fx" : "  noise %.3gx", r->noise.ratio);
    }
}

static void print_row(FILE *f, const struct llorch_ckpt_row *r, bool first) {
    char                              layer[16], at[128];
    const struct llorch_ckpt_metrics *m = &r->metrics;
    const char                       *name = r->graph_name ? r->graph_name : r->checkpoint;
    snprintf(layer, sizeof layer, r->layer >= 0 ? "%d" : "-", r->layer);
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        fprintf(f, "%-2s %-16s %5s %10s %12s  %-28s %12s %12s %10s  %s\n", first ? FIRST_MARK : "", name, layer, "-",
                "-", "-", "-", "-", "-", "ERROR");
        fprintf(f, "   %s\n", r->message ? r->message : "");
        return;
    }
    fprintf(f, "%-2s %-16s %5s %10lld %12.3e  %-28s %12.3e %12.9f %10.3e  %s", first ? FIRST_MARK : "", name, layer,
            (long long) m->n, m->max_abs, m->max_abs > 0 ? llorch_report_location(at, sizeof at, r) : "-", m->max_rel,
            m->cosine, m->nmse, llorch_ckpt_status_name(r->status));
    if (r->status == LLORCH_CKPT_STATUS_FAIL) {
        fprintf(f, "  %s", llorch_ckpt_origin_name(r->origin));
        if (m->n_nonfinite) {
            fprintf(f, " (%lld NaN/inf differ)", (long long) m->n_nonfinite);
        } else if (r->allowed > 0) {
            fprintf(f, " (grew %.3gx over %.3g)", r->growth, r->expected);
        } else if (m->within < r->tolerance.within) {
            fprintf(f, " (%.4g%% within)", m->within * 100);
        } else if (m->nmse > r->tolerance.nmse) {
            fprintf(f, " (nmse above %.3g)", r->tolerance.nmse);
        }
    }
    print_bound(f, r);
    fputc('\n', f);
}

/* "Qcur_pre_rope layers 0-3, 5" for every checkpoint of a list of keys. */
static void print_only(FILE *f, const llorch_ckpt_comparison *c, bool in_reference) {
    size_t n = llorch_ckpt_comparison_n_only(c, in_reference);
    for (size_t i = 0; i < n; i++) {
        const struct llorch_ckpt_key *k = llorch_ckpt_comparison_only(c, in_reference, i);
        const char                   *name = k->graph_name ? k->graph_name : k->checkpoint;
        bool                          seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            const struct llorch_ckpt_key *p = llorch_ckpt_comparison_only(c, in_reference, j);
            seen = strcmp(p->graph_name ? p->graph_name : p->checkpoint, name) == 0;
        }
        if (seen) {
            continue;
        }
        fprintf(f, "only in the %s: %s", in_reference ? "reference" : "candidate", name);
        const char *sep = " layers ";
        for (size_t j = i; j < n; j++) {
            const struct llorch_ckpt_key *p = llorch_ckpt_comparison_only(c, in_reference, j);
            if (p->layer >= 0 && strcmp(p->graph_name ? p->graph_name : p->checkpoint, name) == 0) {
                fprintf(f, "%s%d", sep, p->layer);
                sep = ",";
            }
        }
        fputc('\n', f);
    }
}

static void print_coverage(FILE *f, const llorch_ckpt_comparison *c) {
    size_t                        n = llorch_ckpt_comparison_n_rows(c), count = 0;
    const struct llorch_ckpt_row *first = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (r->n_ref_only || r->n_cand_only) {
            first = first ? first : r;
            count++;
        }
    }
    if (first) {
        char title[256];
        fprintf(f,
                "note: %zu checkpoint(s) hold positions that only one dump has, first %s: "
                "%lld only in the reference, %lld only in the candidate (not compared)\n",
                count, llorch_report_row_title(title, sizeof title, first), (long long) first->n_ref_only,
                (long long) first->n_cand_only);
    }
}

static void print_warnings(FILE *f, const llorch_ckpt_comparison *c) {
    for (size_t i = 0; i < llorch_ckpt_comparison_n_warnings(c); i++) {
        fprintf(f, "warning: %s\n", llorch_ckpt_comparison_warning(c, i));
    }
}

static void print_summary(FILE *f, const llorch_ckpt_comparison *c) {
    size_t n = llorch_ckpt_comparison_n_rows(c), counts[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        counts[llorch_ckpt_comparison_row(c, i)->status]++;
    }
    size_t by_noise = 0;
    for (size_t i = 0; i < n; i++) {
        by_noise += llorch_ckpt_comparison_row(c, i)->bound == LLORCH_CKPT_BOUND_NOISE;
    }
    fprintf(f, "%zu checkpoint row%s: %zu passed", n, n == 1 ? "" : "s", counts[LLORCH_CKPT_STATUS_PASS]);
    if (llorch_ckpt_comparison_noise_factor(c) > 0) {
        fprintf(f, " (%zu by the noise floor)", by_noise);
    }
    fprintf(f, ", %zu failed, %zu could not be compared\n", counts[LLORCH_CKPT_STATUS_FAIL],
            counts[LLORCH_CKPT_STATUS_ERROR]);
    char missing[512];
    if (llorch_report_missing_text(missing, sizeof missing, c)[0]) {
        fprintf(f, "not compared: %s%s\n", missing,
                llorch_ckpt_comparison_missing_counts(c) ? " (this fails the comparison: exit status 3)"
                                                         : " (allowed by --allow-missing)");
    }
}

int llorch_ckpt_report_table(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    long   first = llorch_ckpt_comparison_first_failure(c);
    size_t n = llorch_ckpt_comparison_n_rows(c);
    print_header_line(f, "reference", info->ref_name, info->ref);
    print_header_line(f, "candidate", info->cand_name, info->cand);
    print_settings(f, c);
    print_noise_header(f, c);
    print_tolerances(f, c, info->options);
    fprintf(f, "\n%-2s %-16s %5s %10s %12s  %-28s %12s %12s %10s  %s\n", "", "checkpoint", "layer", "n", "max_abs_err",
            "at", "max_rel_err", "cosine", "nmse", "result");
    for (size_t i = 0; i < n; i++) {
        print_row(f, llorch_ckpt_comparison_row(c, i), (long) i == first);
    }
    fputc('\n', f);
    print_only(f, c, true);
    print_only(f, c, false);
    print_coverage(f, c);
    print_warnings(f, c);
    print_summary(f, c);
    llorch_report_decision_line(f, c);
    if (llorch_ckpt_report_verdict(f, c) != 0) {
        return -1;
    }
    if (info->isolated && llorch_ckpt_report_isolation(f, c, info->isolated, info->isolated_name) != 0) {
        return -1;
    }
    return ferror(f) ? -1 : 0;
}

/*
 * report_text.c - the names and sentences every report shares: a row's
 * title, its origin, where its largest error is, what was not compared,
 * and the closing verdict (llorch_ckpt_report_verdict prints it). Below
 * the text table (report.c), the JSON (report_json.c), the heat map and
 * the HTML page; above report_parts.c and report_logits.c, whose words
 * the verdict uses.
 */
#include "report_internal.h"

#include <string.h>

/* ---- names and sentences -------------------------------------------------------- */

/* "attn_norm, layer 2", "result_norm", "graph attn_norm-0" */
const char *llorch_report_row_title(char *buf, size_t size, const struct llorch_ckpt_row *r) {
    if (r->graph_name) {
        snprintf(buf, size, "graph %s", r->graph_name);
    } else if (r->layer >= 0) {
        snprintf(buf, size, "%s, layer %d", r->checkpoint, r->layer);
    } else {
        snprintf(buf, size, "%s", r->checkpoint);
    }
    return buf;
}

/* Appends the inputs in `state` as "A", "A and B", "A, B and C"; returns
 * how many there were. */
static int append_inputs(char *buf, size_t size, const struct llorch_ckpt_row *r, enum llorch_ckpt_input_state state) {
    int total = 0, done = 0;
    for (int i = 0; i < r->n_inputs; i++) {
        total += r->inputs[i].state == state;
    }
    for (int i = 0; i < r->n_inputs; i++) {
        const struct llorch_ckpt_input *in = &r->inputs[i];
        if (in->state != state) {
            continue;
        }
        size_t      used = strlen(buf);
        const char *sep = done == 0 ? "" : done == total - 1 ? " and " : ", ";
        if (in->layer >= 0) {
            snprintf(buf + used, size - used, "%s%s layer %d", sep, in->checkpoint, in->layer);
        } else {
            snprintf(buf + used, size - used, "%s%s", sep, in->checkpoint);
        }
        done++;
    }
    return total;
}

/* "its input l_out layer 1 passed" and the like, after a prefix. */
static void append_clause(char *buf, size_t size, const struct llorch_ckpt_row *r, enum llorch_ckpt_input_state state,
                          const char *verb, bool *first) {
    char list[512] = "";
    int  n = append_inputs(list, sizeof list, r, state);
    if (n == 0) {
        return;
    }
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "%sits input%s %s %s", *first ? "" : "; ", n > 1 ? "s" : "", list, verb);
    *first = false;
}

const char *llorch_report_origin_text(char *buf, size_t size, const struct llorch_ckpt_row *r) {
    static const char *lead[] = {
        "", "introduced here: ", "inherited: ", "origin unknown: ", "within what the settings that differ make: "};
    bool first = true;
    snprintf(buf, size, "%s", lead[r->origin]);
    if (r->n_inputs == 0) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s",
                 r->origin == LLORCH_CKPT_ORIGIN_INTRODUCED ? "the model's first tensor"
                                                            : "no dataflow rule for this tensor");
        return buf;
    }
    append_clause(buf, size, r, LLORCH_CKPT_INPUT_FAILED, "failed", &first);
    append_clause(buf, size, r, LLORCH_CKPT_INPUT_PASSED, "passed", &first);
    append_clause(buf, size, r, LLORCH_CKPT_INPUT_ABSENT, r->n_inputs > 1 ? "absent" : "is absent", &first);
    return buf;
}

/* "what is missing", or "" when nothing counts. */
const char *llorch_report_missing_text(char *buf, size_t size, const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_missing *m = llorch_ckpt_comparison_missing(c);
    size_t                            used = 0;
    buf[0] = '\0';
    if (m->cand_incomplete || m->ref_incomplete) {
        used += (size_t) snprintf(buf, size, "the %s says it is incomplete",
                                  m->cand_incomplete ? "candidate" : "reference");
    }
    if (m->n_rows > 0 && used < size) {
        used +=
            (size_t) snprintf(buf + used, size - used, "%sthe candidate lacks %zu checkpoint row%s the reference holds",
                              used ? "; " : "", m->n_rows, m->n_rows == 1 ? "" : "s");
    }
    if (m->n_positions > 0 && used < size) {
        snprintf(buf + used, size - used, "%s%lld position%s of compared rows only in the reference", used ? "; " : "",
                 (long long) m->n_positions, m->n_positions == 1 ? "" : "s");
    }
    return buf;
}

static const char *pass_text(char *buf, size_t size, const llorch_ckpt_comparison *c) {
    size_t n = llorch_ckpt_comparison_n_rows(c);
    char   missing[512];
    llorch_report_missing_text(missing, sizeof missing, c);
    const char *judged = llorch_ckpt_comparison_fed(c, NULL)
                             ? (llorch_ckpt_comparison_auto(c) ? "by the default judgement, each layer on its own input"
                                                               : "within tolerance, each layer on its own input")
                         : llorch_ckpt_comparison_auto(c) ? "by the default judgement"
                                                          : "within tolerance";
    const char *noise = llorch_ckpt_comparison_noise_factor(c) > 0 ? " or the noise floor" : "";
    if (missing[0] && llorch_ckpt_comparison_missing_counts(c)) {
        snprintf(buf, size,
                 "incomplete: %s (the %zu compared checkpoint row%s match%s %s%s); --only NAMES or "
                 "--allow-missing if the engine does not produce them",
                 missing, n, n == 1 ? "" : "s", n == 1 ? "es" : "", judged, noise);
    } else {
        snprintf(buf, size, "%s %zu checkpoint row%s match%s %s%s%s%s", n == 1 ? "the" : "all", n, n == 1 ? "" : "s",
                 n == 1 ? "es" : "", judged, noise, missing[0] ? " (allowed: " : "", missing[0] ? missing : "");
        if (missing[0]) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, ")");
        }
    }
    return buf;
}

/* Every failure is within what the differing settings make: name them,
 * then each distinct fix once. */
static const char *settings_text(char *buf, size_t size, const llorch_ckpt_comparison *c) {
    size_t used = (size_t) snprintf(buf, size, "no checkpoint to blame: the settings differ (");
    size_t n = llorch_ckpt_comparison_n_settings(c);
    for (size_t i = 0, k = 0; i < n && used < size; i++) {
        const struct llorch_ckpt_setting_diff *d = llorch_ckpt_comparison_setting(c, i);
        if (d->changes_numbers) {
            used += (size_t) snprintf(buf + used, size - used, "%s%s %s in the reference, %s in the candidate",
                                      k++ ? "; " : "", d->key, d->ref_value ? d->ref_value : "not stated",
                                      d->cand_value ? d->cand_value : "not stated");
        }
    }
    used += used < size ? (size_t) snprintf(buf + used, size - used, ") and explain every failure") : 0;
    for (size_t i = 0; i < n && used < size; i++) {
        const struct llorch_ckpt_setting_diff *d = llorch_ckpt_comparison_setting(c, i);
        bool                                   repeated = !d->changes_numbers;
        for (size_t j = 0; j < i && !repeated; j++) {
            const struct llorch_ckpt_setting_diff *e = llorch_ckpt_comparison_setting(c, j);
            repeated = e->changes_numbers && strcmp(e->fix, d->fix) == 0;
        }
        if (!repeated) {
            used += (size_t) snprintf(buf + used, size - used, "; %s", d->fix);
        }
    }
    return buf;
}

const char *llorch_report_verdict_text(char *buf, size_t size, const llorch_ckpt_comparison *c) {
    long first = llorch_ckpt_comparison_first_failure(c);
    char title[256], why[1024];
    if (llorch_report_decision_verdict(buf, size, c)) {
        return buf; /* --decision: the logits decide */
    }
    if (first < 0) {
        return pass_text(buf, size, c);
    }
    if (llorch_ckpt_comparison_settings_explain(c)) {
        return settings_text(buf, size, c);
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) first);
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        snprintf(why, sizeof why, "not comparable: %s", r->message ? r->message : "?");
    } else {
        llorch_report_origin_text(why, sizeof why, r);
    }
    snprintf(buf, size, "first divergence: %s (%s)", llorch_report_row_title(title, sizeof title, r), why);
    if (llorch_ckpt_comparison_fed(c, NULL)) { /* each layer on its own input: every failing part is a bug */
        char   wrong[1024];
        size_t used = strlen(buf);
        llorch_report_isolated_failures(wrong, sizeof wrong, c);
        snprintf(buf + used, size - used, "; proved by isolation, wrong on its own input: %s", wrong);
    }
    return buf;
}

int llorch_ckpt_report_verdict(FILE *f, const llorch_ckpt_comparison *c) {
    char line[2048];
    return fprintf(f, "%s\n", llorch_report_verdict_text(line, sizeof line, c)) < 0 ? -1 : 0;
}

/* ---- where the largest error is ------------------------------------------------- */

const char *llorch_report_location(char *buf, size_t size, const struct llorch_ckpt_row *r) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n_axes && used < size; i++) {
        used += (size_t) snprintf(buf + used, size - used, "%s%s=%lld", i ? " " : "", r->axes[i],
                                  (long long) r->metrics.max_abs_at[i]);
    }
    return buf;
}

/*
 * report_logits.c - the decision (compare_logits.c) in the reports: one
 * line under the table, the closing sentence when it decides (--decision),
 * and the "decision" object of --json.
 */
#include "compare_internal.h"
#include "report_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <string.h>

/* "position 7", or "position 7 of sequence 1" when sequences are compared
 * one by one. */
static const char *where(char *buf, size_t size, const struct llorch_ckpt_decision *d,
                         const struct llorch_ckpt_logits_position *p) {
    if (d->per_sequence) {
        snprintf(buf, size, "position %lld of sequence %d", (long long) p->position, p->seq);
    } else {
        snprintf(buf, size, "position %lld", (long long) p->position);
    }
    return buf;
}

void llorch_report_decision_line(FILE *f, const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_decision *d = llorch_cmp_decision(c);
    char                               at[96];
    if (!d || d->n_positions == 0) {
        return;
    }
    fprintf(f, "logits: top-1 agreement %.1f%% (%zu/%zu positions), top-5 overlap %.2f/%d, KL mean %.2g max %.2g (%s)",
            d->top1_rate * 100, d->top1_agree, d->n_positions, d->top5_overlap_mean, d->top_k, d->kl_mean, d->kl_max,
            where(at, sizeof at, d, &d->positions[d->kl_max_index]));
    if (d->first_diff < 0) {
        fprintf(f, "; the argmax never differs\n");
        return;
    }
    const struct llorch_ckpt_logits_position *p = &d->positions[d->first_diff];
    fprintf(f, "; first argmax difference at %s (reference token %lld, candidate %lld)\n", where(at, sizeof at, d, p),
            (long long) p->ref_argmax, (long long) p->cand_argmax);
}

bool llorch_report_decision_verdict(char *buf, size_t size, const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_decision *d = llorch_cmp_decision(c);
    char                               at[96], argmax[256], kl[160];
    if (!d || !d->by_logits) {
        return false;
    }
    size_t differ = d->n_positions - d->top1_agree;
    if (differ == 0) {
        snprintf(argmax, sizeof argmax, "the argmax agrees at all %zu positions", d->n_positions);
    } else {
        snprintf(argmax, sizeof argmax, "the argmax differs at %zu of %zu positions, first at %s", differ,
                 d->n_positions, where(at, sizeof at, d, &d->positions[d->first_diff]));
    }
    bool kl_ok = d->kl_mean <= d->kl_threshold;
    snprintf(kl, sizeof kl, "the mean KL divergence %.2g is %s %g", d->kl_mean, kl_ok ? "within" : "above",
             d->kl_threshold);
    snprintf(buf, size, "decision by logits: %s (%s%s%s)", d->pass ? "pass" : "fail", argmax,
             differ != 0 ? "; "
             : kl_ok     ? " and "
                         : ", but ",
             kl);
    return true;
}

int llorch_report_exit_code(const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_decision *d = llorch_cmp_decision(c);
    return d && d->by_logits ? (d->pass ? 0 : 1) : llorch_ckpt_comparison_exit_code(c);
}

/* JSON has no NaN or infinity: null stands for them. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) {
        cJSON_AddNumberToObject(o, key, v);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

static cJSON *position_json(const struct llorch_ckpt_decision *d, const struct llorch_ckpt_logits_position *p) {
    cJSON *o = cJSON_CreateObject();
    if (d->per_sequence) {
        cJSON_AddNumberToObject(o, "seq", p->seq);
    }
    cJSON_AddNumberToObject(o, "position", (double) p->position);
    cJSON_AddNumberToObject(o, "ref_argmax", (double) p->ref_argmax);
    cJSON_AddNumberToObject(o, "cand_argmax", (double) p->cand_argmax);
    cJSON_AddNumberToObject(o, "top5_overlap", p->top5_overlap);
    add_number(o, "kl", p->kl);
    return o;
}

static cJSON *first_diff_json(const struct llorch_ckpt_decision *d) {
    if (d->first_diff < 0) {
        return cJSON_CreateNull();
    }
    const struct llorch_ckpt_logits_position *p = &d->positions[d->first_diff];
    cJSON                                    *o = cJSON_CreateObject();
    if (d->per_sequence) {
        cJSON_AddNumberToObject(o, "seq", p->seq);
    }
    cJSON_AddNumberToObject(o, "position", (double) p->position);
    cJSON_AddNumberToObject(o, "ref_token", (double) p->ref_argmax);
    cJSON_AddNumberToObject(o, "cand_token", (double) p->cand_argmax);
    return o;
}

void llorch_report_decision_json(struct cJSON *root, const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_decision *d = llorch_cmp_decision(c);
    if (!d || d->n_positions == 0) {
        cJSON_AddNullToObject(root, "decision");
        return;
    }
    const struct llorch_ckpt_logits_position *worst = &d->positions[d->kl_max_index];
    cJSON                                    *o = cJSON_CreateObject(), *positions = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "n_positions", (double) d->n_positions);
    cJSON_AddNumberToObject(o, "top1_agree", (double) d->top1_agree);
    add_number(o, "top1_rate", d->top1_rate);
    add_number(o, "top5_overlap_mean", d->top5_overlap_mean);
    add_number(o, "kl_mean", d->kl_mean);
    add_number(o, "kl_max", d->kl_max);
    cJSON_AddNumberToObject(o, "kl_max_position", (double) worst->position);
    if (d->per_sequence) {
        cJSON_AddNumberToObject(o, "kl_max_seq", worst->seq);
    }
    cJSON_AddItemToObject(o, "first_argmax_diff", first_diff_json(d));
    for (size_t i = 0; i < d->n_positions; i++) {
        cJSON_AddItemToArray(positions, position_json(d, &d->positions[i]));
    }
    cJSON_AddItemToObject(o, "positions", positions);
    cJSON_AddNumberToObject(o, "kl_threshold", d->kl_threshold);
    cJSON_AddBoolToObject(o, "decides", d->by_logits);
    cJSON_AddStringToObject(o, "verdict", d->pass ? "pass" : "fail");
    cJSON_AddItemToObject(root, "decision", o);
}

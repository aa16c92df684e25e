/*
 * report_json.c - the comparison as one JSON object for machines (schema in
 * docs/COMPARE.md, "Output"): the same verdict, rows, warnings and
 * settings as the table of report.c, every number exactly.
 */
#include "json_fields.h"
#include "report_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ------------------------------------------------------------------------- */

/* JSON has no NaN or infinity: null stands for them. */
static void add_number(cJSON *obj, const char *key, double v) {
    if (isfinite(v)) {
        cJSON_AddNumberToObject(obj, key, v);
    } else {
        cJSON_AddNullToObject(obj, key);
    }
}

static cJSON *tolerance_json(const struct llorch_ckpt_tolerance *t) {
    cJSON *o = cJSON_CreateObject();
    add_number(o, "atol", t->atol);
    add_number(o, "rtol", t->rtol);
    add_number(o, "nmse", t->nmse);
    add_number(o, "within", t->within);
    return o;
}

static cJSON *dump_json(const char *name, const llorch_ckpt_dump *d) {
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    const char                     *producer = llorch_ckpt_dump_producer(d), *status = llorch_ckpt_dump_status(d);
    cJSON                          *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", name);
    if (producer) {
        cJSON_AddStringToObject(o, "producer", producer);
    }
    cJSON_AddBoolToObject(o, "complete", llorch_ckpt_dump_complete(d));
    if (status) {
        cJSON_AddStringToObject(o, "status", status);
    }
    if (m->architecture) {
        cJSON_AddStringToObject(o, "architecture", m->architecture);
    } else {
        cJSON_AddNullToObject(o, "architecture"); /* optional in a manifest */
    }
    cJSON_AddNumberToObject(o, "n_layer", m->n_layer);
    cJSON_AddNumberToObject(o, "n_embd", m->n_embd);
    cJSON_AddNumberToObject(o, "n_tokens", (double) llorch_ckpt_dump_n_tokens(d));
    return o;
}

static void add_layer(cJSON *o, int layer) {
    if (layer >= 0) {
        cJSON_AddNumberToObject(o, "layer", layer);
    } else {
        cJSON_AddNullToObject(o, "layer");
    }
}

static cJSON *inputs_json(const struct llorch_ckpt_row *r) {
    static const char *states[] = {"passed", "failed", "absent"};
    cJSON             *a = cJSON_CreateArray();
    for (int i = 0; i < r->n_inputs; i++) {
        cJSON *in = cJSON_CreateObject();
        cJSON_AddStringToObject(in, "checkpoint", r->inputs[i].checkpoint);
        add_layer(in, r->inputs[i].layer);
        cJSON_AddStringToObject(in, "state", states[r->inputs[i].state]);
        cJSON_AddItemToArray(a, in);
    }
    return a;
}

static void add_metrics(cJSON *o, const struct llorch_ckpt_row *r) {
    const struct llorch_ckpt_metrics *m = &r->metrics;
    cJSON *at = m->max_abs > 0 ? cJSON_CreateObject() : cJSON_CreateNull(); /* no error: nowhere */
    for (int i = 0; m->max_abs > 0 && i < r->n_axes; i++) {
        cJSON_AddNumberToObject(at, r->axes[i], (double) m->max_abs_at[i]);
    }
    static const char *const counts[] = {"n", "n_within", "n_nonfinite"};
    llorch_json_add_numbers(o, counts, (const double[]){(double) m->n, (double) m->n_within, (double) m->n_nonfinite},
                            3);
    add_number(o, "max_abs_err", m->max_abs);
    cJSON_AddItemToObject(o, "max_abs_at", at);
    static const char *const errors[] = {"max_rel_err", "mean_abs_err", "rmse", "nmse", "cosine", "within"};
    const double             values[] = {m->max_rel, m->mean_abs, m->rmse, m->nmse, m->cosine, m->within};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        add_number(o, errors[i], values[i]);
    }
}

/* With a noise floor: which bound judged the row, and the spread. */
static void add_noise(cJSON *o, const struct llorch_ckpt_row *r) {
    cJSON_AddStringToObject(o, "bound", llorch_ckpt_bound_name(r->bound));
    if (!r->noise.present) {
        cJSON_AddNullToObject(o, "noise");
        return;
    }
    cJSON                   *n = cJSON_CreateObject();
    static const char *const keys[] = {"max_abs_err", "rmse", "nmse", "ratio"};
    const double             values[] = {r->noise.max_abs, r->noise.rmse, r->noise.nmse, r->noise.ratio};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        add_number(n, keys[i], values[i]);
    }
    cJSON_AddItemToObject(o, "noise", n);
}

static cJSON *row_json(const struct llorch_ckpt_row *r, bool with_noise) {
    cJSON *o = cJSON_CreateObject(), *axes = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "checkpoint", r->checkpoint);
    add_layer(o, r->layer);
    if (r->graph_name) {
        cJSON_AddStringToObject(o, "graph_name", r->graph_name);
    }
    for (int i = 0; i < r->n_axes; i++) {
        cJSON_AddItemToArray(axes, cJSON_CreateString(r->axes[i]));
    }
    cJSON_AddItemToObject(o, "axes", axes);
    cJSON_AddStringToObject(o, "ref_dtype", llorch_ckpt_dtype_name(r->ref_dtype));
    cJSON_AddStringToObject(o, "cand_dtype", llorch_ckpt_dtype_name(r->cand_dtype));
    cJSON_AddStringToObject(o, "status", llorch_ckpt_status_name(r->status));
    if (r->message) {
        cJSON_AddStringToObject(o, "message", r->message);
    }
    if (r->status != LLORCH_CKPT_STATUS_ERROR) {
        add_metrics(o, r);
    }
    if (with_noise && r->status != LLORCH_CKPT_STATUS_ERROR) {
        add_noise(o, r);
    }
    cJSON_AddItemToObject(o, "tolerance", tolerance_json(&r->tolerance));
    if (r->allowed > 0) { /* the default judgement */
        static const char *const keys[] = {"floor", "expected", "growth", "allowed_growth"};
        const double             values[] = {r->floor, r->expected, r->growth, r->allowed};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            add_number(o, keys[i], values[i]);
        }
    }
    cJSON_AddNumberToObject(o, "ref_only", (double) r->n_ref_only);
    cJSON_AddNumberToObject(o, "cand_only", (double) r->n_cand_only);
    if (r->status != LLORCH_CKPT_STATUS_PASS) {
        char why[1024];
        cJSON_AddStringToObject(o, "origin", llorch_ckpt_origin_name(r->origin));
        cJSON_AddStringToObject(o, "origin_text", llorch_report_origin_text(why, sizeof why, r));
        cJSON_AddItemToObject(o, "inputs", inputs_json(r));
    }
    return o;
}

static cJSON *only_json(const llorch_ckpt_comparison *c, bool in_reference) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < llorch_ckpt_comparison_n_only(c, in_reference); i++) {
        const struct llorch_ckpt_key *k = llorch_ckpt_comparison_only(c, in_reference, i);
        cJSON                        *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint", k->checkpoint);
        add_layer(o, k->layer);
        if (k->graph_name) {
            cJSON_AddStringToObject(o, "graph_name", k->graph_name);
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *first_json(const llorch_ckpt_comparison *c) {
    long first = llorch_ckpt_comparison_first_failure(c);
    if (first < 0) {
        return cJSON_CreateNull();
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) first);
    cJSON                        *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "row", (double) first);
    cJSON_AddStringToObject(o, "checkpoint", r->checkpoint);
    add_layer(o, r->layer);
    if (r->graph_name) {
        cJSON_AddStringToObject(o, "graph_name", r->graph_name);
    }
    cJSON_AddStringToObject(o, "status", llorch_ckpt_status_name(r->status));
    cJSON_AddStringToObject(o, "origin", llorch_ckpt_origin_name(r->origin));
    return o;
}

/* "noise": {"path", "producer"?, "factor"}, or null without a noise floor. */
static void add_noise_dump(cJSON *root, const llorch_ckpt_comparison *c) {
    const char *producer, *name = llorch_ckpt_comparison_noise_dump(c, &producer);
    if (!name) {
        cJSON_AddNullToObject(root, "noise");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", name);
    if (producer) {
        cJSON_AddStringToObject(o, "producer", producer);
    }
    cJSON_AddNumberToObject(o, "factor", llorch_ckpt_comparison_noise_factor(c));
    cJSON_AddItemToObject(root, "noise", o);
}

static const char *verdict_word(int exit_code) {
    return exit_code == 0 ? "pass" : exit_code == 1 ? "fail" : exit_code == 3 ? "incomplete" : "error";
}

static cJSON *settings_json(const llorch_ckpt_comparison *c) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < llorch_ckpt_comparison_n_settings(c); i++) {
        const struct llorch_ckpt_setting_diff *d = llorch_ckpt_comparison_setting(c, i);
        cJSON                                 *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", d->key);
        d->ref_value ? cJSON_AddStringToObject(o, "reference", d->ref_value) : cJSON_AddNullToObject(o, "reference");
        d->cand_value ? cJSON_AddStringToObject(o, "candidate", d->cand_value) : cJSON_AddNullToObject(o, "candidate");
        cJSON_AddBoolToObject(o, "changes_numbers", d->changes_numbers);
        cJSON_AddStringToObject(o, "affects", d->affects);
        cJSON_AddStringToObject(o, "fix", d->fix);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *missing_json(const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_missing *m = llorch_ckpt_comparison_missing(c);
    cJSON                            *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", (double) m->n_rows);
    cJSON_AddNumberToObject(o, "positions", (double) m->n_positions);
    cJSON_AddBoolToObject(o, "reference_incomplete", m->ref_incomplete);
    cJSON_AddBoolToObject(o, "candidate_incomplete", m->cand_incomplete);
    cJSON_AddBoolToObject(o, "allowed", m->allowed);
    cJSON_AddBoolToObject(o, "only", m->only);
    cJSON_AddBoolToObject(o, "counts", llorch_ckpt_comparison_missing_counts(c));
    return o;
}

static int print_json(FILE *f, cJSON *root) {
    char *text = root ? cJSON_Print(root) : NULL;
    int   rc = text && fprintf(f, "%s\n", text) >= 0 ? 0 : -1;
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}

int llorch_ckpt_report_json(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    struct llorch_ckpt_tolerance global = llorch_ckpt_compare_options_get(info->options, NULL);
    /* the decision's with --decision; with --isolated, the isolated comparison decides */
    const llorch_ckpt_comparison *decides = info->isolated ? info->isolated : c;
    int    code = info->isolated ? llorch_ckpt_comparison_exit_code(decides) : llorch_report_exit_code(c);
    char   sentence[2048];
    cJSON *root = cJSON_CreateObject(), *rows = cJSON_CreateArray(), *warnings = cJSON_CreateArray();
    cJSON *tol = tolerance_json(&global);
    cJSON_AddStringToObject(tol, "preset", llorch_ckpt_compare_options_preset_name(info->options));
    cJSON_AddStringToObject(root, "verdict", verdict_word(code));
    cJSON_AddNumberToObject(root, "exit_code", code);
    cJSON_AddStringToObject(root, "message", llorch_report_verdict_text(sentence, sizeof sentence, decides));
    if (info->isolated) {
        cJSON_AddStringToObject(root, "chained_message", llorch_report_verdict_text(sentence, sizeof sentence, c));
    }
    cJSON_AddItemToObject(root, "reference", dump_json(info->ref_name, info->ref));
    cJSON_AddItemToObject(root, "candidate", dump_json(info->cand_name, info->cand));
    cJSON_AddItemToObject(root, "tolerance", tol);
    cJSON_AddStringToObject(root, "judgement", llorch_ckpt_comparison_auto(c) ? "default" : "tolerance");
    cJSON_AddItemToObject(root, "settings_differ", settings_json(c));
    cJSON_AddBoolToObject(root, "settings_explain", llorch_ckpt_comparison_settings_explain(c));
    cJSON_AddItemToObject(root, "missing", missing_json(c));
    add_noise_dump(root, c);
    cJSON_AddItemToObject(root, "first_divergence", first_json(c));
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        cJSON_AddItemToArray(
            rows, row_json(llorch_ckpt_comparison_row(c, i), llorch_ckpt_comparison_noise_dump(c, NULL) != NULL));
    }
    cJSON_AddItemToObject(root, "rows", rows);
    cJSON_AddItemToObject(root, "only_in_reference", only_json(c, true));
    cJSON_AddItemToObject(root, "only_in_candidate", only_json(c, false));
    for (size_t i = 0; i < llorch_ckpt_comparison_n_warnings(c); i++) {
        cJSON_AddItemToArray(warnings, cJSON_CreateString(llorch_ckpt_comparison_warning(c, i)));
    }
    cJSON_AddItemToObject(root, "warnings", warnings);
    if (info->isolated) {
        cJSON_AddItemToObject(root, "isolation", llorch_report_isolation_json(c, info->isolated, info->isolated_name));
    }
    llorch_report_decision_json(root, c);
    return print_json(f, root);
}

int llorch_ckpt_report_json_error(FILE *f, const char *message) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "verdict", "error");
    cJSON_AddNumberToObject(root, "exit_code", 2);
    cJSON_AddStringToObject(root, "message", message);
    return print_json(f, root);
}

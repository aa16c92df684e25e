/*
 * report_html.c - the HTML report (--html): one self-contained page, plain
 * HTML and inline SVG with its style sheet inside, no script, no font or
 * file from elsewhere, so that it opens from disk anywhere and can be
 * mailed or attached to a bug. This file holds the page's frame, the
 * summary and the full table (every number --json has, in data-
 * attributes); the heat map, the charts and the settings have their own
 * files, and so has the escaping every string from a dump goes through
 * (report_html_escape.c). The top of the HTML report: it calls them all,
 * below it (report_internal.h).
 */
#include "report_internal.h"

#include <string.h>

/* At most this many tensors only one dump has are named in the summary:
 * the heat map shows them all. */
#define ONLY_NAMED 40

static const char style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:1.5em;color:#1f2328;"
    "background:#fff;max-width:1400px}\n"
    "h1{font-size:1.35em;margin:0 0 .4em}h2{font-size:1.12em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de;"
    "padding-bottom:.2em}\n"
    "code,.mono{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:.92em}\n"
    ".verdict{font-weight:600;padding:.5em .8em;border-radius:6px;display:inline-block}\n"
    ".verdict.pass{background:#dafbe1}.verdict.fail{background:#ffebe9}.verdict.error{background:#eaeef2}\n"
    "nav a{margin-right:1em}ul.warnings li{color:#9a6700}\n"
    "table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #d0d7de;padding:2px 6px;"
    "text-align:right;vertical-align:top}th{background:#f6f8fa}\n"
    "td.name,th.name{text-align:left}tr.fail td{background:#fff5f3}tr.error td{background:#eaeef2}\n"
    "tr.first td{background:#ffd8e8}tr.differs td{background:#fff8c5}td.absent{color:#8c959f}\n"
    "td.value{text-align:left;max-width:38em;word-break:break-all}\n"
    "svg text{font-family:system-ui,Helvetica,Arial,sans-serif;font-size:11px;fill:#1f2328}\n"
    ".legend{display:flex;flex-wrap:wrap;gap:.4em 1.4em;font-size:12px;margin:.6em 0}\n"
    ".legend span{display:inline-flex;align-items:center;gap:.35em}figure{margin:1em 0}\n"
    "figcaption{font-size:13px;margin-bottom:.3em}\n";

/* ---- the summary ------------------------------------------------------------------ */

static void dump_line(FILE *f, const char *role, const char *name, const llorch_ckpt_dump *d) {
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    fprintf(f, "<p class=\"dump\" id=\"%s\">%s <code>", role, role);
    llorch_html_text(f, name);
    fputs("</code> (", f);
    llorch_html_text(f, llorch_ckpt_dump_producer(d) ? llorch_ckpt_dump_producer(d) : "unknown producer");
    fputs("; ", f);
    llorch_html_text(f, m->architecture ? m->architecture : "unknown architecture");
    fprintf(f, ", %d layers, n_embd %d; %zu tokens%s)</p>\n", m->n_layer, m->n_embd, llorch_ckpt_dump_n_tokens(d),
            llorch_ckpt_dump_complete(d) ? "" : "; <strong>incomplete</strong>");
}

static void counts_line(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    size_t                       n = llorch_ckpt_comparison_n_rows(c), counts[3] = {0, 0, 0};
    struct llorch_ckpt_tolerance t = llorch_ckpt_compare_options_get(info->options, NULL);
    for (size_t i = 0; i < n; i++) {
        counts[llorch_ckpt_comparison_row(c, i)->status]++;
    }
    fprintf(f, "<p id=\"counts\">%zu checkpoint rows: %zu passed, %zu failed, %zu could not be compared. ", n,
            counts[0], counts[1], counts[2]);
    if (llorch_ckpt_comparison_auto(c)) {
        fputs("Judgement: the default (each row's NMSE against its inputs' and its precision's floor; each row's "
              "growth is in the table).</p>\n",
              f);
        return;
    }
    fprintf(
        f,
        "Tolerance: preset %s, atol %.3g, rtol %.3g, nmse %.3g, within %.6g%% (each row's own is in the table).</p>\n",
        llorch_ckpt_compare_options_preset_name(info->options), t.atol, t.rtol, t.nmse, t.within * 100);
}

static void only_line(FILE *f, const llorch_ckpt_comparison *c, bool in_reference) {
    size_t n = llorch_ckpt_comparison_n_only(c, in_reference);
    if (n == 0) {
        return;
    }
    fprintf(f, "<p class=\"only\">only in the %s (%zu, not compared): ", in_reference ? "reference" : "candidate", n);
    for (size_t i = 0; i < n && i < ONLY_NAMED; i++) {
        const struct llorch_ckpt_key *k = llorch_ckpt_comparison_only(c, in_reference, i);
        fputs(i ? ", " : "", f);
        llorch_html_text(f, k->graph_name ? k->graph_name : k->checkpoint);
        if (k->layer >= 0) {
            fprintf(f, " layer %d", k->layer);
        }
    }
    fputs(n > ONLY_NAMED ? ", ...</p>\n" : "</p>\n", f);
}

/* The numerics settings that differ, above everything they qualify. */
static void settings_lines(FILE *f, const llorch_ckpt_comparison *c) {
    size_t n = llorch_ckpt_comparison_n_settings(c);
    if (n == 0) {
        return;
    }
    fputs("<ul class=\"settings-differ\" id=\"settings-differ\">\n", f);
    for (size_t i = 0; i < n; i++) {
        const struct llorch_ckpt_setting_diff *d = llorch_ckpt_comparison_setting(c, i);
        fputs("<li data-key=\"", f);
        llorch_html_text(f, d->key);
        fputs("\">settings differ: <code>", f);
        llorch_html_text(f, d->key);
        fputs("</code> is ", f);
        llorch_html_text(f, d->ref_value ? d->ref_value : "not stated");
        fputs(" in the reference, ", f);
        llorch_html_text(f, d->cand_value ? d->cand_value : "not stated");
        fputs(" in the candidate; it changes ", f);
        llorch_html_text(f, d->affects);
        fputs(". Fix: ", f);
        llorch_html_text(f, d->fix);
        fputs("</li>\n", f);
    }
    fputs("</ul>\n", f);
}

static void write_summary(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    static const char *const words[] = {"pass", "fail", "error", "incomplete"}; /* by exit status */
    char                     sentence[2048];
    int                      code = llorch_ckpt_comparison_exit_code(c);
    fputs("<header>\n<h1>Checkpoint comparison</h1>\n", f);
    dump_line(f, "reference", info->ref_name, info->ref);
    dump_line(f, "candidate", info->cand_name, info->cand);
    fprintf(f, "<p class=\"verdict %s\" id=\"verdict\" data-exit-code=\"%d\">", words[code], code);
    llorch_html_text(f, llorch_report_verdict_text(sentence, sizeof sentence, c));
    fputs("</p>\n", f);
    settings_lines(f, c);
    counts_line(f, c, info);
    only_line(f, c, true);
    only_line(f, c, false);
    if (llorch_ckpt_comparison_n_warnings(c) > 0) {
        fputs("<ul class=\"warnings\">\n", f);
        for (size_t i = 0; i < llorch_ckpt_comparison_n_warnings(c); i++) {
            fputs("<li>warning: ", f);
            llorch_html_text(f, llorch_ckpt_comparison_warning(c, i));
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    fputs("<nav><a href=\"#heatmap-section\">heat map</a><a href=\"#first-section\">first divergence</a>"
          "<a href=\"#settings-section\">settings</a><a href=\"#table-section\">all rows</a></nav>\n</header>\n",
          f);
}

/* ---- the full table ------------------------------------------------------------------ */

/* The metrics of --json, in its order and with its names (- for _). */
static const char *const metric_attrs[] = {
    "data-n",    "data-n-within", "data-n-nonfinite", "data-max-abs-err", "data-max-rel-err", "data-mean-abs-err",
    "data-rmse", "data-nmse",     "data-cosine",      "data-within"};
#define N_METRICS (sizeof metric_attrs / sizeof metric_attrs[0])
#define COSINE    8 /* shown as 0.999707707, like the table */

static void metric_values(const struct llorch_ckpt_metrics *m, double *v) {
    const double all[N_METRICS] = {(double) m->n,
                                   (double) m->n_within,
                                   (double) m->n_nonfinite,
                                   m->max_abs,
                                   m->max_rel,
                                   m->mean_abs,
                                   m->rmse,
                                   m->nmse,
                                   m->cosine,
                                   m->within};
    memcpy(v, all, sizeof all);
}

static const char *const table_head[] = {"#",      "checkpoint",  "layer",        "n",    "max_abs_err",
                                         "at",     "max_rel_err", "mean_abs_err", "rmse", "nmse",
                                         "cosine", "within",      "result"};

static void table_header(FILE *f) {
    fputs("<table id=\"rows\">\n<thead><tr>", f);
    for (size_t i = 0; i < sizeof table_head / sizeof table_head[0]; i++) {
        fprintf(f, "<th%s>%s</th>", i == 1 || i == 5 || i == 12 ? " class=\"name\"" : "", table_head[i]);
    }
    fputs("</tr></thead>\n<tbody>\n", f);
}

/* The metrics' cells: n, max_abs_err, at, then the rest as in --json. */
static void metric_cells(FILE *f, const struct llorch_ckpt_row *r) {
    char   at[256];
    double v[N_METRICS];
    metric_values(&r->metrics, v);
    fprintf(f, "<td>%lld</td><td>", (long long) r->metrics.n);
    llorch_html_short(f, r->metrics.max_abs);
    fputs("</td><td class=\"name mono\">", f);
    llorch_html_text(f, r->metrics.max_abs > 0 ? llorch_report_location(at, sizeof at, r) : "-");
    fputs("</td>", f);
    for (size_t k = 4; k < N_METRICS - 1; k++) {
        fputs("<td>", f);
        if (k == COSINE) {
            fprintf(f, "%.9f", v[k]);
        } else {
            llorch_html_short(f, v[k]);
        }
        fputs("</td>", f);
    }
    fprintf(f, "<td>%.4g%%</td>", r->metrics.within * 100);
}

static void result_cell(FILE *f, const struct llorch_ckpt_row *r) {
    char why[1024];
    fprintf(f, "<td class=\"name\">%s", llorch_ckpt_status_name(r->status));
    if (r->status != LLORCH_CKPT_STATUS_PASS) {
        fprintf(f, " <span title=\"");
        llorch_html_text(f, llorch_report_origin_text(why, sizeof why, r));
        fprintf(f, "\">%s</span>", llorch_ckpt_origin_name(r->origin));
    }
    if (r->message) {
        fputs(": ", f);
        llorch_html_text(f, r->message);
    }
    fputs("</td>", f);
}

static void table_row(FILE *f, const struct llorch_ckpt_row *r, size_t i, bool first) {
    static const char *const classes[] = {"pass", "fail", "error"};
    char                     layer[16];
    double                   v[N_METRICS];
    fprintf(f, "<tr class=\"row %s%s\" id=\"row-%zu\"", classes[r->status], first ? " first" : "", i);
    llorch_html_row_attrs(f, r, i);
    if (r->status != LLORCH_CKPT_STATUS_ERROR) {
        metric_values(&r->metrics, v);
        for (size_t k = 0; k < N_METRICS; k++) {
            llorch_html_number(f, metric_attrs[k], v[k]);
        }
    }
    llorch_html_number(f, "data-ref-only", (double) r->n_ref_only);
    llorch_html_number(f, "data-cand-only", (double) r->n_cand_only);
    snprintf(layer, sizeof layer, r->layer >= 0 ? "%d" : "-", r->layer);
    fprintf(f, "><td>%zu</td><td class=\"name\">", i);
    llorch_html_text(f, r->graph_name ? r->graph_name : r->checkpoint);
    fprintf(f, "</td><td>%s</td>", layer);
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        fputs("<td colspan=\"9\"></td>", f);
    } else {
        metric_cells(f, r);
    }
    result_cell(f, r);
    fputs("</tr>\n", f);
}

static void write_table(FILE *f, const llorch_ckpt_comparison *c) {
    long first = llorch_ckpt_comparison_first_failure(c);
    fputs("<section id=\"table-section\">\n<h2>All rows</h2>\n"
          "<p>In graph order; the numbers of <code>--json</code> (exact values in the rows' data- attributes).</p>\n",
          f);
    table_header(f);
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        table_row(f, llorch_ckpt_comparison_row(c, i), i, (long) i == first);
    }
    fputs("</tbody>\n</table>\n</section>\n", f);
}

/* ---- the page ---------------------------------------------------------------------- */

int llorch_ckpt_report_html(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    struct llorch_report_grid g;
    if (llorch_report_grid_build(&g, c, info->ref, info->cand) != 0) {
        return -1;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    llorch_html_text(f, info->cand_name);
    fputs(" against ", f);
    llorch_html_text(f, info->ref_name);
    fprintf(f,
            ": checkpoint comparison</title>\n<meta name=\"generator\" content=\"llorch-checkpoint-compare %s\">\n"
            "<style>\n%s</style>\n</head>\n<body>\n",
            LLORCH_CKPT_VERSION, style);
    write_summary(f, c, info);
    llorch_html_heatmap(f, c, &g, info);
    llorch_html_charts(f, c, info);
    int rc = llorch_html_settings(f, info);
    write_table(f, c);
    fputs("</body>\n</html>\n", f);
    llorch_report_grid_free(&g);
    return rc != 0 || ferror(f) ? -1 : 0;
}

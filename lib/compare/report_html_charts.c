/*
 * report_html_charts.c - the first divergence up close: its error per token
 * (or key) position, per head where it has heads, and per step where a
 * dump made it in several, each an SVG bar chart of the NMSE on a log
 * scale (profiles from compare_profile.c). One position or one head far
 * above the others points to RoPE, a mask or the head layout; all of them
 * alike, to a weight, a norm or a constant; a step that jumps, to the
 * cache or the positions of decoding.
 */
#include "report_internal.h"

#include <math.h>
#include <string.h>

#define CHART_W      760
#define CHART_H      210
#define PLOT_L       64
#define PLOT_R       16
#define PLOT_T       14
#define PLOT_B       36
#define MAX_X_LABELS 24
#define MAX_Y_TICKS  8

/* log10 of the NMSE at the bottom and the top of the plot. */
struct scale {
    double lo, hi;
};

static void widen(struct scale *s, double v) {
    if (v > 0 && isfinite(v)) {
        s->lo = fmin(s->lo, log10(v));
        s->hi = fmax(s->hi, log10(v));
    }
}

/* Whole decades around every point and the tolerance. */
static struct scale scale_of(const llorch_ckpt_profile *p, double tolerance) {
    struct scale s = {INFINITY, -INFINITY};
    widen(&s, tolerance);
    for (size_t i = 0; i < p->n_points; i++) {
        widen(&s, p->points[i].metrics.nmse);
    }
    if (!isfinite(s.lo)) {
        return (struct scale){LLORCH_SCALE_LOW, LLORCH_SCALE_HIGH};
    }
    s.lo = floor(s.lo) - 1;
    s.hi = fmax(ceil(s.hi), s.lo + 2);
    return s;
}

static double y_of(const struct scale *s, double log_v) {
    double h = CHART_H - PLOT_T - PLOT_B;
    double t = (log_v - s->lo) / (s->hi - s->lo);
    return PLOT_T + h * (1 - (t < 0 ? 0 : t > 1 ? 1 : t));
}

static void y_axis(FILE *f, const struct scale *s) {
    int step = (int) ceil((s->hi - s->lo) / MAX_Y_TICKS);
    for (int d = (int) s->hi; d >= (int) s->lo; d -= step) {
        double y = y_of(s, d);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/>", PLOT_L, CHART_W - PLOT_R,
                y, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", PLOT_L - 6, y + 4, d);
    }
}

/* Over the bars, so that it shows where they cross it. */
static void tolerance_line(FILE *f, const struct scale *s, double tolerance) {
    if (tolerance > 0) {
        double y = y_of(s, log10(tolerance));
        fprintf(f,
                "<line class=\"tolerance\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d6006f\" "
                "stroke-dasharray=\"5 3\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" style=\"fill:#d6006f\">"
                "tolerance</text>\n",
                PLOT_L, CHART_W - PLOT_R, y, y, CHART_W - PLOT_R, y - 3);
    }
}

static const char *bar_class(const struct llorch_ckpt_profile_point *pt) {
    if (pt->metrics.n_nonfinite > 0 || !isfinite(pt->metrics.nmse)) {
        return "nonfinite";
    }
    if (pt->metrics.nmse <= 0) {
        return "zero";
    }
    return pt->status == LLORCH_CKPT_STATUS_PASS ? "pass" : "fail";
}

static void bar(FILE *f, const struct llorch_ckpt_profile_point *pt, const struct scale *s, double x, double w,
                const char *by) {
    const char   *cls = bar_class(pt);
    double        top = strcmp(cls, "nonfinite") == 0 ? PLOT_T
                        : strcmp(cls, "zero") == 0    ? CHART_H - PLOT_B
                                                      : y_of(s, log10(pt->metrics.nmse));
    unsigned char rgb[3];
    llorch_report_nmse_rgb(pt->metrics.nmse, rgb);
    if (strcmp(cls, "nonfinite") == 0) {
        memset(rgb, 0x1f, sizeof rgb);
    }
    fprintf(f, "<rect class=\"bar %s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%02x%02x%02x\"",
            cls, x, top, w, CHART_H - PLOT_B - top, rgb[0], rgb[1], rgb[2]);
    fprintf(f, " data-coord=\"%lld\"", (long long) pt->coord);
    llorch_html_attr(f, "data-status", llorch_ckpt_status_name(pt->status));
    llorch_html_number(f, "data-nmse", pt->metrics.nmse);
    llorch_html_number(f, "data-max-abs-err", pt->metrics.max_abs);
    llorch_html_number(f, "data-max-rel-err", pt->metrics.max_rel);
    llorch_html_number(f, "data-n", (double) pt->metrics.n);
    fprintf(f, "><title>%s %lld: NMSE ", by, (long long) pt->coord);
    llorch_html_short(f, pt->metrics.nmse);
    fputs(", max abs err ", f);
    llorch_html_short(f, pt->metrics.max_abs);
    fputs(", max rel err ", f);
    llorch_html_short(f, pt->metrics.max_rel);
    fprintf(f, " (%lld values, %s)</title></rect>\n", (long long) pt->metrics.n, llorch_ckpt_status_name(pt->status));
}

static void chart(FILE *f, const llorch_ckpt_profile *p, const struct llorch_ckpt_row *r, const char *by_text) {
    size_t       n = p->n_points;
    struct scale s = scale_of(p, r->tolerance.nmse);
    double       w = (double) (CHART_W - PLOT_L - PLOT_R) / (double) (n ? n : 1);
    size_t       every = n / MAX_X_LABELS + 1;
    fprintf(
        f, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\"",
        CHART_W, CHART_H, CHART_W, CHART_H);
    llorch_html_attr(f, "data-by", p->by);
    fprintf(f, " data-points=\"%zu\">\n", n);
    y_axis(f, &s);
    for (size_t i = 0; i < n; i++) {
        const struct llorch_ckpt_profile_point *pt = &p->points[i];
        double                                  x = PLOT_L + w * (double) i;
        bar(f, pt, &s, x + (w > 4 ? 1 : 0), w > 4 ? w - 2 : w, by_text);
        if (i % every == 0) {
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%lld</text>\n", x + w / 2,
                    CHART_H - PLOT_B + 14, (long long) pt->coord);
        }
    }
    tolerance_line(f, &s, r->tolerance.nmse);
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#57606a\"/>", PLOT_L, CHART_W - PLOT_R,
            CHART_H - PLOT_B, CHART_H - PLOT_B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (PLOT_L + CHART_W - PLOT_R) / 2, CHART_H - 4);
    llorch_html_text(f, by_text);
    fputs("</text></svg>\n", f);
}

/* One figure: the profile of the row by `by`, or why there is none.
 * Profiles of one point say nothing a whole row does not. */
static void figure(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info, size_t i,
                   const char *by, const char *by_text) {
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
    char                          err[1024], title[256];
    llorch_ckpt_profile          *p = llorch_ckpt_profile_row(c, info->ref, info->cand, i, by, err, sizeof err);
    if (!p) {
        fputs("<p class=\"note\">No chart by ", f);
        llorch_html_text(f, by_text);
        fputs(": ", f);
        llorch_html_text(f, err);
        fputs("</p>\n", f);
        return;
    }
    if (strcmp(by, "step") != 0 || p->n_points > 1) {
        fputs("<figure", f);
        llorch_html_attr(f, "id",
                         strcmp(by, "step") == 0   ? "chart-step"
                         : strcmp(by, "head") == 0 ? "chart-head"
                                                   : "chart-position");
        fputs("><figcaption>NMSE of ", f);
        llorch_html_text(f, llorch_report_row_title(title, sizeof title, r));
        fputs(" per ", f);
        llorch_html_text(f, by_text);
        fputs(" (bars: log scale; the dashed line is its tolerance)</figcaption>\n", f);
        chart(f, p, r, by_text);
        fputs("</figure>\n", f);
    }
    llorch_ckpt_profile_free(p);
}

static bool has_axis(const struct llorch_ckpt_row *r, const char *axis) {
    for (int i = 0; i < r->n_axes; i++) {
        if (strcmp(r->axes[i], axis) == 0) {
            return true;
        }
    }
    return false;
}

static void first_summary(FILE *f, const struct llorch_ckpt_row *r, size_t i) {
    char title[256], why[1024];
    fputs("<p id=\"first-summary\"", f);
    llorch_html_row_attrs(f, r, i);
    fputs("><strong>", f);
    llorch_html_text(f, llorch_report_row_title(title, sizeof title, r));
    fputs("</strong>: ", f);
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        fputs("not comparable: ", f);
        llorch_html_text(f, r->message);
    } else {
        llorch_html_text(f, llorch_report_origin_text(why, sizeof why, r));
        fputs(". NMSE ", f);
        llorch_html_short(f, r->metrics.nmse);
        fputs(", max abs err ", f);
        llorch_html_short(f, r->metrics.max_abs);
        fputs(" at ", f);
        llorch_html_text(f, r->metrics.max_abs > 0 ? llorch_report_location(title, sizeof title, r) : "-");
    }
    fputs(".</p>\n", f);
}

void llorch_html_charts(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info) {
    long first = llorch_ckpt_comparison_first_failure(c);
    fputs("<section id=\"first-section\">\n<h2>First divergence</h2>\n", f);
    if (first < 0) {
        fputs("<p>Every checkpoint matches within tolerance.</p>\n</section>\n", f);
        return;
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) first);
    first_summary(f, r, (size_t) first);
    if (r->status != LLORCH_CKPT_STATUS_ERROR) {
        if (has_axis(r, "token")) {
            figure(f, c, info, (size_t) first, "token", "token position");
        } else if (has_axis(r, "key")) {
            figure(f, c, info, (size_t) first, "key", "key position");
        }
        if (has_axis(r, "head")) {
            figure(f, c, info, (size_t) first, "head", "head");
        }
        figure(f, c, info, (size_t) first, "step", "step");
    }
    fputs("</section>\n", f);
}

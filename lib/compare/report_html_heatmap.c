/*
 * report_html_heatmap.c - the grid (report_grid.c) as an inline SVG heat
 * map: a rectangle per cell, filled by its NMSE on a log scale, with the
 * numbers in data- attributes and a <title> that a browser shows on hover
 * (no script). How a failure came about is drawn over the color, so that
 * the two never compete: a solid outline where it was introduced, a hatch
 * where it was inherited, a dashed outline where the origin is unknown.
 * The first divergence gets a magenta frame and a label beside its line.
 */
#include "report_internal.h"

#include <math.h>
#include <string.h>

#define CELL_W      30
#define CELL_H      18
#define LEFT        48  /* the line labels */
#define RIGHT       320 /* the first divergence's label */
#define LABEL_CHARS 24  /* column labels are cut there (the title holds all) */
#define CHAR_W      6.2 /* about, at 11px */
#define SCALE_STEPS 32

static const char defs[] =
    "<defs>\n"
    "<pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"5\" height=\"5\" "
    "patternTransform=\"rotate(45)\"><rect width=\"1.6\" height=\"5\" fill=\"#1f2328\"/></pattern>\n"
    "<pattern id=\"missing\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\">"
    "<rect width=\"6\" height=\"6\" fill=\"#ffffff\"/><path d=\"M0 0L6 6M6 0L0 6\" stroke=\"#8c959f\" "
    "stroke-width=\"0.8\"/></pattern>\n"
    "</defs>\n";

/* The fill and stroke of each look (enum llorch_grid_look). */
static const char *const look_class[] = {"none", "pass", "fail", "error", "missing", "nonfinite"};

static void fill_of(char *buf, size_t size, const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell) {
    unsigned char rgb[3];
    switch (llorch_report_grid_look(c, cell)) {
        case LLORCH_LOOK_PASS:
        case LLORCH_LOOK_FAIL:
            llorch_report_nmse_rgb(llorch_ckpt_comparison_row(c, (size_t) cell->row)->metrics.nmse, rgb);
            snprintf(buf, size, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
            return;
        case LLORCH_LOOK_ERROR:
            snprintf(buf, size, "#afb8c1");
            return;
        case LLORCH_LOOK_MISSING:
            snprintf(buf, size, "url(#missing)");
            return;
        case LLORCH_LOOK_NONFINITE:
            snprintf(buf, size, "#1f2328");
            return;
        default:
            snprintf(buf, size, "#ffffff"); /* nothing: neither dump has it */
    }
}

/* An outline for the origin of a failure; a hatch (inherited) is drawn
 * over the cell afterwards. */
static const char *stroke_of(const struct llorch_ckpt_row *r) {
    if (!r) {
        return "stroke=\"#eaeef2\" stroke-width=\"1\"";
    }
    if (r->status == LLORCH_CKPT_STATUS_PASS) {
        return "stroke=\"#ffffff\" stroke-width=\"1\"";
    }
    switch (r->origin) {
        case LLORCH_CKPT_ORIGIN_INTRODUCED:
            return "stroke=\"#1f2328\" stroke-width=\"2.5\"";
        case LLORCH_CKPT_ORIGIN_UNKNOWN:
            return "stroke=\"#1f2328\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\"";
        default:
            return "stroke=\"#ffffff\" stroke-width=\"1\"";
    }
}

struct geometry {
    int top, width, height;
};

static struct geometry geometry_of(const struct llorch_report_grid *g) {
    size_t longest = 0;
    for (size_t i = 0; i < g->n_cols; i++) {
        size_t n = strlen(g->cols[i].name);
        longest = n > longest ? n : longest;
    }
    longest = longest > LABEL_CHARS ? LABEL_CHARS : longest;
    struct geometry geo;
    geo.top = 12 + (int) (CHAR_W * (double) longest * 0.8); /* labels at -55 degrees */
    geo.width = LEFT + (int) g->n_cols * CELL_W + RIGHT;
    geo.height = geo.top + (int) g->n_lines * CELL_H + 8;
    return geo;
}

/* At most LABEL_CHARS of a name (a <title> beside it holds it all). */
static void title_cut(FILE *f, const char *name) {
    char cut[LABEL_CHARS + 1];
    snprintf(cut, sizeof cut, "%.*s", LABEL_CHARS, name);
    llorch_html_text(f, cut);
    fputs(strlen(name) > LABEL_CHARS ? "..." : "", f);
}

static void column_labels(FILE *f, const struct llorch_report_grid *g, const struct geometry *geo) {
    for (size_t i = 0; i < g->n_cols; i++) {
        const char *name = g->cols[i].name;
        int         x = LEFT + (int) i * CELL_W + CELL_W / 2 + 3, y = geo->top - 4;
        fprintf(f, "<text class=\"col-label\" transform=\"translate(%d %d) rotate(-55)\"><title>", x, y);
        llorch_html_text(f, name);
        fputs("</title>", f);
        title_cut(f, name);
        fputs("</text>\n", f);
    }
}

/* "attn_norm, layer 2: NMSE 4.431e-03, max rel err 9.196e-02 - FAIL, introduced here: ..." */
static void cell_title(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell,
                       const struct llorch_grid_col *col, const struct llorch_grid_line *line) {
    char title[256], why[1024];
    fputs("<title>", f);
    if (cell->state != LLORCH_GRID_ROW) {
        llorch_html_text(f, col->name);
        if (line->layer >= 0) {
            fprintf(f, ", layer %d", line->layer);
        }
        fprintf(f, ": only in the %s</title>", cell->state == LLORCH_GRID_ONLY_REF ? "reference" : "candidate");
        return;
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) cell->row);
    llorch_html_text(f, llorch_report_row_title(title, sizeof title, r));
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        fputs(": not comparable: ", f);
        llorch_html_text(f, r->message);
    } else {
        fputs(": NMSE ", f);
        llorch_html_short(f, r->metrics.nmse);
        fputs(", max rel err ", f);
        llorch_html_short(f, r->metrics.max_rel);
        fputs(", max abs err ", f);
        llorch_html_short(f, r->metrics.max_abs);
        fprintf(f, " - %s", llorch_ckpt_status_name(r->status));
    }
    if (r->status != LLORCH_CKPT_STATUS_PASS) {
        fputs(", ", f);
        llorch_html_text(f, llorch_report_origin_text(why, sizeof why, r));
    }
    fputs("</title>", f);
}

static void cell_attrs(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell,
                       const struct llorch_grid_col *col, const struct llorch_grid_line *line) {
    char layer[16];
    if (cell->state == LLORCH_GRID_ROW) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) cell->row);
        llorch_html_row_attrs(f, r, (size_t) cell->row);
        if (r->status != LLORCH_CKPT_STATUS_ERROR) {
            llorch_html_number(f, "data-nmse", r->metrics.nmse);
            llorch_html_number(f, "data-max-rel-err", r->metrics.max_rel);
        }
        return;
    }
    snprintf(layer, sizeof layer, line->layer >= 0 ? "%d" : "null", line->layer);
    llorch_html_attr(f, col->graph ? "data-graph-name" : "data-checkpoint", col->name);
    llorch_html_attr(f, "data-layer", layer);
    llorch_html_attr(f, "data-status", "MISSING");
    llorch_html_attr(f, "data-only", cell->state == LLORCH_GRID_ONLY_REF ? "reference" : "candidate");
}

static void draw_cell(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g, size_t line,
                      size_t col, int top) {
    const struct llorch_grid_cell *cell = llorch_report_grid_cell(g, line, col);
    const struct llorch_ckpt_row  *r =
        cell->state == LLORCH_GRID_ROW ? llorch_ckpt_comparison_row(c, (size_t) cell->row) : NULL;
    int  x = LEFT + (int) col * CELL_W, y = top + (int) line * CELL_H;
    char fill[32];
    fill_of(fill, sizeof fill, c, cell);
    const char *origin = r && r->status != LLORCH_CKPT_STATUS_PASS ? llorch_ckpt_origin_name(r->origin) : "";
    fprintf(f, "<rect class=\"cell %s%s%s%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" %s",
            look_class[llorch_report_grid_look(c, cell)], origin[0] ? " " : "", origin,
            r && cell->row == g->first ? " first" : "", x, y, CELL_W, CELL_H, fill, stroke_of(r));
    if (cell->state == LLORCH_GRID_NONE) {
        fputs("/>\n", f);
        return;
    }
    cell_attrs(f, c, cell, &g->cols[col], &g->lines[line]);
    fputc('>', f);
    cell_title(f, c, cell, &g->cols[col], &g->lines[line]);
    fputs("</rect>\n", f);
    if (r && r->status != LLORCH_CKPT_STATUS_PASS && r->origin == LLORCH_CKPT_ORIGIN_INHERITED) {
        fprintf(f,
                "<rect class=\"hatch\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"url(#hatch)\" "
                "fill-opacity=\"0.55\" pointer-events=\"none\"/>\n",
                x + 1, y + 1, CELL_W - 2, CELL_H - 2);
    }
}

/* A magenta frame around the first divergence and its name beside the grid. */
static void first_marker(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g, int top) {
    char title[256];
    for (size_t line = 0; line < g->n_lines; line++) {
        for (size_t col = 0; col < g->n_cols; col++) {
            const struct llorch_grid_cell *cell = llorch_report_grid_cell(g, line, col);
            if (cell->state != LLORCH_GRID_ROW || cell->row != g->first) {
                continue;
            }
            const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) cell->row);
            int                           x = LEFT + (int) col * CELL_W, y = top + (int) line * CELL_H;
            fprintf(f, "<g id=\"first-divergence\"");
            llorch_html_row_attrs(f, r, (size_t) cell->row);
            fprintf(f,
                    "><rect class=\"first-marker\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                    "stroke=\"#d6006f\" stroke-width=\"3\"/>",
                    x - 2, y - 2, CELL_W + 4, CELL_H + 4);
            fprintf(f, "<text class=\"first-label\" x=\"%d\" y=\"%d\" font-weight=\"bold\" style=\"fill:#d6006f\">",
                    LEFT + (int) g->n_cols * CELL_W + 8, y + CELL_H - 5);
            llorch_report_row_title(title, sizeof title, r);
            fputs("<title>", f);
            llorch_html_text(f, title);
            fputs("</title>&#9664; first divergence: ", f);
            title_cut(f, title);
            fputs("</text></g>\n", f);
        }
    }
}

static void line_labels(FILE *f, const struct llorch_report_grid *g, int top) {
    char label[32];
    for (size_t line = 0; line < g->n_lines; line++) {
        llorch_report_grid_label(label, sizeof label, &g->lines[line]);
        fprintf(f, "<text class=\"line-label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%s%s</text>\n", LEFT - 6,
                top + (int) line * CELL_H + CELL_H - 5, g->lines[line].layer >= 0 ? "layer " : "", label);
    }
}

/* The color scale, the marks, and what each means. */
static void legend(FILE *f, const struct llorch_ckpt_report_info *info) {
    struct llorch_ckpt_tolerance t = llorch_ckpt_compare_options_get(info->options, NULL);
    fputs("<div class=\"legend\" id=\"heatmap-legend\">\n<span><svg width=\"260\" height=\"30\" role=\"img\">", f);
    for (int i = 0; i < SCALE_STEPS; i++) {
        unsigned char rgb[3];
        double        x = LLORCH_SCALE_LOW + (LLORCH_SCALE_HIGH - LLORCH_SCALE_LOW) * (i + 0.5) / SCALE_STEPS;
        llorch_report_nmse_rgb(pow(10.0, x), rgb);
        fprintf(f, "<rect x=\"%d\" y=\"0\" width=\"8\" height=\"14\" fill=\"#%02x%02x%02x\"/>", i * 8, rgb[0], rgb[1],
                rgb[2]);
    }
    fputs("<text x=\"0\" y=\"27\">1e-16</text><text x=\"112\" y=\"27\">1e-8</text>"
          "<text x=\"228\" y=\"27\">1</text></svg> NMSE (log scale)</span>\n",
          f);
    fprintf(f, "<span>tolerance: NMSE %.3g</span>\n", t.nmse);
    fputs("<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"#f46d43\" "
          "stroke=\"#1f2328\" stroke-width=\"2.5\"/></svg>failed here (introduced)</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"#f46d43\"/>"
          "<rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"url(#hatch)\" fill-opacity=\"0.55\"/></svg>"
          "failed with an input (inherited)</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"#f46d43\" "
          "stroke=\"#1f2328\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\"/></svg>failed, origin unknown</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"none\" "
          "stroke=\"#d6006f\" stroke-width=\"3\"/></svg>first divergence</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" "
          "fill=\"url(#missing)\"/></svg>in one dump only</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"#1f2328\"/>"
          "</svg>NaN or infinity differs</span>\n"
          "<span><svg width=\"30\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"26\" height=\"14\" fill=\"#afb8c1\"/>"
          "</svg>not comparable</span>\n</div>\n",
          f);
}

void llorch_html_heatmap(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g,
                         const struct llorch_ckpt_report_info *info) {
    struct geometry geo = geometry_of(g);
    fputs("<section id=\"heatmap-section\">\n<h2>Heat map</h2>\n<p>Layers down, checkpoints across in graph order; "
          "each cell's color is its NMSE (log scale), hover for the numbers.</p>\n",
          f);
    fprintf(f,
            "<svg id=\"heatmap\" class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" data-first-row=\"%ld\" data-lines=\"%zu\" data-columns=\"%zu\">\n",
            geo.width, geo.height, geo.width, geo.height, g->first, g->n_lines, g->n_cols);
    fputs(defs, f);
    column_labels(f, g, &geo);
    line_labels(f, g, geo.top);
    for (size_t line = 0; line < g->n_lines; line++) {
        for (size_t col = 0; col < g->n_cols; col++) {
            draw_cell(f, c, g, line, col, geo.top);
        }
    }
    first_marker(f, c, g, geo.top);
    fputs("</svg>\n", f);
    legend(f, info);
    fputs("</section>\n", f);
}

/*
 * report_internal.h - what the reports share (private to lib/compare).
 * They stand on the compare_*.c stack (compare_internal.h) and form a
 * one-way stack of their own: each file calls only files below it. From
 * the bottom to the top:
 *   report_logits.c        the decision by the logits (compare_logits.c)
 *   report_grid.c          the heat map's grid (layers by checkpoints) and
 *                          the scale an NMSE is drawn on
 *   report_parts.c         each layer's attention and FFN in a comparison;
 *                          the parts that fail in an isolated (fed) one
 *   report_text.c          names and sentences: a row's title, its origin,
 *                          where its largest error is, what was not
 *                          compared, the closing verdict
 *   report_isolation.c     a chained and an isolated (fed) comparison, layer
 *                          by layer
 *   report_heatmap.c       the grid for a terminal
 *   report_html_escape.c   HTML escaping, numbers and row attributes, for
 *                          every report_html*.c file
 *   report_html_settings.c both dumps' settings side by side
 *   report_html_heatmap.c  the grid as SVG
 *   report_html_charts.c   the first divergence's error per position, head
 *                          and step, as SVG bar charts
 *   report_html.c          the HTML page (--html): its frame, summary and
 *                          full table
 *   report_json.c          the report as JSON (--json)
 *   report.c               the table for people, and its verdict
 * report.c, report_json.c and report_html.c hold the reports' entry points.
 */
#ifndef LLORCH_REPORT_INTERNAL_H
#define LLORCH_REPORT_INTERNAL_H

#include "llorch_compare.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- names and sentences (report_text.c) -------------------------------------- */

/* "attn_norm, layer 2", "result_norm", "graph attn_norm-0" */
const char *llorch_report_row_title(char *buf, size_t size, const struct llorch_ckpt_row *r);
/* "introduced here: its input l_out layer 1 passed" and the like. */
const char *llorch_report_origin_text(char *buf, size_t size, const struct llorch_ckpt_row *r);
/* The closing sentence. */
const char *llorch_report_verdict_text(char *buf, size_t size, const llorch_ckpt_comparison *c);
/* "token=3 channel=15": where the largest error is. */
const char *llorch_report_location(char *buf, size_t size, const struct llorch_ckpt_row *r);
/* "what is missing" (an incomplete dump, rows and positions only the
 * reference holds), or "" when nothing counts. */
const char *llorch_report_missing_text(char *buf, size_t size, const llorch_ckpt_comparison *c);

/* ---- the decision: logits (report_logits.c) --------------------------------------- */

struct cJSON;

/* "logits: top-1 agreement ...": one line, when logits were compared. */
void llorch_report_decision_line(FILE *f, const llorch_ckpt_comparison *c);
/* The closing sentence when the decision decides (--decision): true when
 * written into buf. */
bool llorch_report_decision_verdict(char *buf, size_t size, const llorch_ckpt_comparison *c);
/* The exit code the reports state: the decision's when it decides. */
int llorch_report_exit_code(const llorch_ckpt_comparison *c);
/* "decision": null, or the decision's object (docs/COMPARE.md). */
void llorch_report_decision_json(struct cJSON *root, const llorch_ckpt_comparison *c);

/* ---- the grid (report_grid.c) ----------------------------------------------------- */

enum llorch_grid_state {
    LLORCH_GRID_NONE = 0,  /* neither dump has it (embd in a layer) */
    LLORCH_GRID_ROW,       /* both have it: a row of the comparison */
    LLORCH_GRID_ONLY_REF,  /* only the reference has it            */
    LLORCH_GRID_ONLY_CAND, /* only the candidate has it            */
};

/* How a cell is drawn, by its state and its row. */
enum llorch_grid_look {
    LLORCH_LOOK_NONE = 0,
    LLORCH_LOOK_PASS,
    LLORCH_LOOK_FAIL,
    LLORCH_LOOK_ERROR,     /* could not be compared              */
    LLORCH_LOOK_MISSING,   /* only one dump has it               */
    LLORCH_LOOK_NONFINITE, /* a NaN or infinity differs, or NMSE is not finite */
};

struct llorch_grid_cell {
    enum llorch_grid_state state;
    long                   row; /* LLORCH_GRID_ROW: the comparison's row; else -1 */
};

/* A line of the grid: a layer, or the model-level tensors before the
 * layers ("in": embd) or after them ("out": result_norm, logits). */
struct llorch_grid_line {
    int  layer; /* -1: model level */
    bool input; /* model level: before the layers */
};

struct llorch_grid_col {
    const char *name;     /* the checkpoint, or the graph tensor's name  */
    bool        graph;    /* a graph tensor (name is its graph_name)     */
    bool        layered;  /* held per layer                              */
    bool        model;    /* held at model level (layer -1)              */
    bool        input;    /* before every per-layer column: the "in" line */
    size_t      order[3]; /* graph order (report_grid.c)                */
};

/* A column by its name, for lookups. */
struct llorch_grid_key {
    const char *name;
    bool        graph;
    size_t      col;
};

struct llorch_report_grid {
    struct llorch_grid_col  *cols; /* in graph order */
    size_t                   n_cols;
    struct llorch_grid_key  *by_name; /* sorted by (graph, name) */
    struct llorch_grid_line *lines;   /* in, layers in order, out */
    size_t                   n_lines;
    struct llorch_grid_cell *cells; /* n_lines x n_cols, line by line */
    long                     first; /* the first divergence's row, or -1 */
};

/* Columns in graph order (the reference's manifest; what only the
 * candidate has goes after what precedes it there), lines for the layers
 * either dump holds. -1 when out of memory. */
int llorch_report_grid_build(struct llorch_report_grid *g, const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                             const llorch_ckpt_dump *cand);
void                           llorch_report_grid_free(struct llorch_report_grid *g);
const struct llorch_grid_cell *llorch_report_grid_cell(const struct llorch_report_grid *g, size_t line, size_t col);
enum llorch_grid_look llorch_report_grid_look(const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell);
/* "in", "out" or the layer. */
const char *llorch_report_grid_label(char *buf, size_t size, const struct llorch_grid_line *line);

/* The color scale: log10 NMSE from -16 (and 0: identical) to 0 and above,
 * pale green through green, yellow and orange to dark red (report_grid.c),
 * the same in the page and the terminal. */
#define LLORCH_SCALE_LOW  (-16.0)
#define LLORCH_SCALE_HIGH 0.0
void llorch_report_nmse_rgb(double nmse, unsigned char rgb[3]);
/* floor(-log10 nmse) within 0..9: the heat map's digit. */
int llorch_report_nmse_decade(double nmse);

/* ---- HTML: escaping and numbers (report_html_escape.c) -------------------------- */

/* Writes s with & < > " ' and control characters escaped: safe in text and
 * in a double-quoted attribute. */
void llorch_html_text(FILE *f, const char *s);
/* ` NAME="VALUE"`, the value escaped. */
void llorch_html_attr(FILE *f, const char *name, const char *value);
/* ` NAME="NUMBER"` for a data- attribute: the number as --json prints it,
 * or "inf", "-inf", "nan" where --json has null. */
void llorch_html_number(FILE *f, const char *name, double v);
/* The row's identity as data- attributes: row, checkpoint, layer ("null"
 * at model level, as in JSON), graph-name, status, origin. */
void llorch_html_row_attrs(FILE *f, const struct llorch_ckpt_row *r, size_t i);
/* A number as the page shows it: %.3e, or inf/nan. */
void llorch_html_short(FILE *f, double v);

/* ---- HTML: the page's parts (report_html_*.c) ------------------------------------- */

void llorch_html_heatmap(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g,
                         const struct llorch_ckpt_report_info *info);
void llorch_html_charts(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info);
/* -1 when out of memory. */
int llorch_html_settings(FILE *f, const struct llorch_ckpt_report_info *info);

/* ---- a layer's parts (report_parts.c) -------------------------------------------- */

/* One part of one layer (its attention, or its FFN) in one comparison. */
struct llorch_report_part {
    bool                          present;
    double                        nmse;   /* the largest of its rows; infinite for an ERROR */
    const struct llorch_ckpt_row *failed; /* its first row that does not pass, or NULL */
};

/* The part of a layer a row belongs to: the FFN (its output and what the
 * residual adds after it) or the attention (everything before). */
bool llorch_report_is_ffn(const llorch_ckpt_comparison *c, const struct llorch_ckpt_row *r);
/* The attention (ffn false) or FFN (ffn true) of layer in c. */
struct llorch_report_part llorch_report_part_of(const llorch_ckpt_comparison *c, int layer, bool ffn);
/* The largest layer of c's rows (-1: none is in a layer). */
int llorch_report_max_layer(const llorch_ckpt_comparison *c);
/* The parts of layers that fail in a fed comparison: "layer 2's attention
 * (attn_norm), layer 5's FFN (ffn_out)"; "" when none. */
void llorch_report_isolated_failures(char *buf, size_t size, const llorch_ckpt_comparison *isolated);

/* ---- isolation (report_isolation.c) ---------------------------------------------- */

struct cJSON;
/* The "isolation" object of --json. */
struct cJSON *llorch_report_isolation_json(const llorch_ckpt_comparison *chained,
                                           const llorch_ckpt_comparison *isolated, const char *fed_name);

#endif

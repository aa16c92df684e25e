/*
 * report_grid.c - the heat map's grid, shared by the terminal and the HTML
 * report: one column per checkpoint in graph order, one line per layer
 * (with "in" and "out" lines for the model-level tensors before and after
 * the layers), each cell a row of the comparison, a tensor only one dump
 * has, or nothing. And the color scale of an NMSE.
 *
 * Graph order is the reference manifest's order of first appearance; a
 * checkpoint only the candidate has goes right after the last one before
 * it in the candidate's manifest that the reference also has, so that a
 * missing Qcur_pre_rope still sits next to Qcur.
 */
#include "report_internal.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A tensor of either dump, by what the grid needs to place it. */
struct item {
    const char *name;
    bool        graph;
    int         side; /* 0: reference, 1: candidate */
    size_t      index;
    int         layer;
};

static int key_compare(const char *an, bool ag, const char *bn, bool bg) {
    if (ag != bg) {
        return ag ? 1 : -1;
    }
    return strcmp(an, bn);
}

static int item_compare(const void *pa, const void *pb) {
    const struct item *a = pa, *b = pb;
    int                c = key_compare(a->name, a->graph, b->name, b->graph);
    if (c == 0) {
        c = a->side - b->side;
    }
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

/* Graph tensors by their llama.cpp name, as the comparison groups them. */
static struct item item_of(const struct llorch_ckpt_entry *e, int side, size_t index) {
    bool graph = strcmp(e->checkpoint, "graph") == 0 && e->graph_name;
    return (struct item){graph ? e->graph_name : e->checkpoint, graph, side, index, e->layer};
}

/* ---- columns -------------------------------------------------------------------------- */

static int order_compare(const void *pa, const void *pb) {
    const struct llorch_grid_col *a = pa, *b = pb;
    for (int i = 0; i < 3; i++) {
        if (a->order[i] != b->order[i]) {
            return a->order[i] < b->order[i] ? -1 : 1;
        }
    }
    return 0;
}

static int by_name_compare(const void *pa, const void *pb) {
    const struct llorch_grid_key *a = pa, *b = pb;
    return key_compare(a->name, a->graph, b->name, b->graph);
}

/* The column of a name, or -1. */
static long find_col(const struct llorch_report_grid *g, const char *name, bool graph) {
    struct llorch_grid_key        key = {name, graph, 0};
    const struct llorch_grid_key *k = bsearch(&key, g->by_name, g->n_cols, sizeof key, by_name_compare);
    return k ? (long) k->col : -1;
}

/* Again after the columns move. */
static int index_by_name(struct llorch_report_grid *g) {
    free(g->by_name);
    g->by_name = malloc((g->n_cols ? g->n_cols : 1) * sizeof *g->by_name);
    if (!g->by_name) {
        return -1;
    }
    for (size_t i = 0; i < g->n_cols; i++) {
        g->by_name[i] = (struct llorch_grid_key){g->cols[i].name, g->cols[i].graph, i};
    }
    llorch_sort(g->by_name, g->n_cols, sizeof *g->by_name, by_name_compare);
    return 0;
}

/* One column per distinct name; items sorted by name, side, index: the
 * first of a name is its first appearance in the reference if it has one. */
static int make_cols(struct llorch_report_grid *g, const struct item *items, size_t n) {
    g->cols = calloc(n ? n : 1, sizeof *g->cols);
    if (!g->cols) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct item *it = &items[i];
        if (i == 0 || key_compare(it->name, it->graph, items[i - 1].name, items[i - 1].graph) != 0) {
            struct llorch_grid_col *c = &g->cols[g->n_cols++];
            c->name = it->name;
            c->graph = it->graph;
            /* a reference column: (its index + 1, 0, 0); a candidate-only one is placed later */
            c->order[0] = it->side == 0 ? it->index + 1 : 0;
            c->order[1] = it->side;
            c->order[2] = it->side == 0 ? 0 : it->index;
        }
        struct llorch_grid_col *c = &g->cols[g->n_cols - 1];
        c->layered |= it->layer >= 0;
        c->model |= it->layer < 0;
    }
    return index_by_name(g);
}

/* A candidate-only column goes after the last reference column that
 * precedes its first appearance in the candidate's manifest. */
static void place_candidate_only(struct llorch_report_grid *g, const llorch_ckpt_dump *cand) {
    size_t anchor = 0;
    for (size_t i = 0; i < llorch_ckpt_dump_n_entries(cand); i++) {
        struct item             it = item_of(llorch_ckpt_dump_entry(cand, i), 1, i);
        struct llorch_grid_col *c = &g->cols[find_col(g, it.name, it.graph)];
        if (c->order[1] == 0) {
            anchor = c->order[0];
        } else if (c->order[2] == i) {
            c->order[0] = anchor;
        }
    }
}

/* Model-level columns before the first per-layer one are the "in" line's. */
static void sort_cols(struct llorch_report_grid *g) {
    llorch_sort(g->cols, g->n_cols, sizeof *g->cols, order_compare);
    bool layered_seen = false;
    for (size_t i = 0; i < g->n_cols; i++) {
        layered_seen |= g->cols[i].layered;
        g->cols[i].input = !layered_seen;
    }
}

static int collect_items(struct item **out, size_t *n, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand) {
    const llorch_ckpt_dump *dumps[2] = {ref, cand};
    size_t                  total = llorch_ckpt_dump_n_entries(ref) + llorch_ckpt_dump_n_entries(cand);
    struct item            *items = malloc((total ? total : 1) * sizeof *items);
    if (!items) {
        return -1;
    }
    *n = 0;
    for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < llorch_ckpt_dump_n_entries(dumps[side]); i++) {
            items[(*n)++] = item_of(llorch_ckpt_dump_entry(dumps[side], i), side, i);
        }
    }
    llorch_sort(items, *n, sizeof *items, item_compare);
    *out = items;
    return 0;
}

/* ---- lines and cells ---------------------------------------------------------------- */

static int int_compare(const void *pa, const void *pb) {
    int a = *(const int *) pa, b = *(const int *) pb;
    return (a > b) - (a < b);
}

/* "in", every layer either dump holds (in order), "out". */
static int make_lines(struct llorch_report_grid *g, const struct item *items, size_t n) {
    int *layers = malloc((n ? n : 1) * sizeof *layers);
    g->lines = malloc((n + 2) * sizeof *g->lines);
    if (!layers || !g->lines) {
        free(layers);
        return -1;
    }
    size_t n_layers = 0;
    bool   in = false, out = false;
    for (size_t i = 0; i < n; i++) {
        layers[n_layers] = items[i].layer;
        n_layers += items[i].layer >= 0;
    }
    for (size_t i = 0; i < g->n_cols; i++) {
        in |= g->cols[i].model && g->cols[i].input;
        out |= g->cols[i].model && !g->cols[i].input;
    }
    llorch_sort(layers, n_layers, sizeof *layers, int_compare);
    if (in) {
        g->lines[g->n_lines++] = (struct llorch_grid_line){-1, true};
    }
    for (size_t i = 0; i < n_layers; i++) {
        if (i == 0 || layers[i] != layers[i - 1]) {
            g->lines[g->n_lines++] = (struct llorch_grid_line){layers[i], false};
        }
    }
    if (out) {
        g->lines[g->n_lines++] = (struct llorch_grid_line){-1, false};
    }
    free(layers);
    return 0;
}

static long find_line(const struct llorch_report_grid *g, int layer, bool input) {
    for (size_t i = 0; i < g->n_lines; i++) {
        const struct llorch_grid_line *l = &g->lines[i];
        if (l->layer == layer && (layer >= 0 || l->input == input)) {
            return (long) i;
        }
    }
    return -1;
}

static void set_cell(struct llorch_report_grid *g, const char *checkpoint, const char *graph_name, int layer,
                     struct llorch_grid_cell cell) {
    long col = find_col(g, graph_name ? graph_name : checkpoint, graph_name != NULL);
    long line = col < 0 ? -1 : find_line(g, layer, g->cols[col].input);
    if (line >= 0) {
        g->cells[(size_t) line * g->n_cols + (size_t) col] = cell;
    }
}

static int fill_cells(struct llorch_report_grid *g, const llorch_ckpt_comparison *c) {
    g->cells = calloc(g->n_lines * g->n_cols + 1, sizeof *g->cells);
    if (!g->cells) {
        return -1;
    }
    for (size_t i = 0; i < g->n_lines * g->n_cols; i++) {
        g->cells[i].row = -1;
    }
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        set_cell(g, r->checkpoint, r->graph_name, r->layer, (struct llorch_grid_cell){LLORCH_GRID_ROW, (long) i});
    }
    for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < llorch_ckpt_comparison_n_only(c, side == 0); i++) {
            const struct llorch_ckpt_key *k = llorch_ckpt_comparison_only(c, side == 0, i);
            set_cell(g, k->checkpoint, k->graph_name, k->layer,
                     (struct llorch_grid_cell){side == 0 ? LLORCH_GRID_ONLY_REF : LLORCH_GRID_ONLY_CAND, -1});
        }
    }
    return 0;
}

int llorch_report_grid_build(struct llorch_report_grid *g, const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                             const llorch_ckpt_dump *cand) {
    struct item *items = NULL;
    size_t       n = 0;
    memset(g, 0, sizeof *g);
    g->first = llorch_ckpt_comparison_first_failure(c);
    if (collect_items(&items, &n, ref, cand) != 0 || make_cols(g, items, n) != 0) {
        free(items);
        llorch_report_grid_free(g);
        return -1;
    }
    place_candidate_only(g, cand);
    sort_cols(g);
    int rc = index_by_name(g) == 0 && make_lines(g, items, n) == 0 && fill_cells(g, c) == 0 ? 0 : -1;
    free(items);
    if (rc != 0) {
        llorch_report_grid_free(g);
    }
    return rc;
}

void llorch_report_grid_free(struct llorch_report_grid *g) {
    void *owned[] = {g->cols, g->by_name, g->lines, g->cells};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
    memset(g, 0, sizeof *g);
}

const struct llorch_grid_cell *llorch_report_grid_cell(const struct llorch_report_grid *g, size_t line, size_t col) {
    return &g->cells[line * g->n_cols + col];
}

enum llorch_grid_look llorch_report_grid_look(const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell) {
    if (cell->state == LLORCH_GRID_NONE) {
        return LLORCH_LOOK_NONE;
    }
    if (cell->state != LLORCH_GRID_ROW) {
        return LLORCH_LOOK_MISSING;
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) cell->row);
    if (r->status == LLORCH_CKPT_STATUS_ERROR) {
        return LLORCH_LOOK_ERROR;
    }
    if (r->metrics.n_nonfinite > 0 || !isfinite(r->metrics.nmse)) {
        return LLORCH_LOOK_NONFINITE;
    }
    return r->status == LLORCH_CKPT_STATUS_PASS ? LLORCH_LOOK_PASS : LLORCH_LOOK_FAIL;
}

const char *llorch_report_grid_label(char *buf, size_t size, const struct llorch_grid_line *line) {
    if (line->layer >= 0) {
        snprintf(buf, size, "%d", line->layer);
    } else {
        snprintf(buf, size, "%s", line->input ? "in" : "out");
    }
    return buf;
}

/* ---- the color scale ------------------------------------------------------------------ */

/* log10 NMSE to color: pale green at 1e-16 (where two correct f32
 * implementations land), darker green to 1e-8, pale yellow at 1e-6, orange
 * at 1e-3, dark red at 1 and above. */
static const struct stop {
    double        at;
    unsigned char rgb[3];
} stops[] = {
    {-16, {0xe5, 0xf5, 0xe0}}, {-12, {0xc7, 0xe9, 0xc0}}, {-8, {0x74, 0xc4, 0x76}},
    {-6, {0xfe, 0xe0, 0x8b}},  {-3, {0xf4, 0x6d, 0x43}},  {0, {0xa5, 0x00, 0x26}},
};

void llorch_report_nmse_rgb(double nmse, unsigned char rgb[3]) {
    size_t n = sizeof stops / sizeof stops[0];
    double x = nmse > 0 ? log10(nmse) : LLORCH_SCALE_LOW;
    x = x < LLORCH_SCALE_LOW ? LLORCH_SCALE_LOW : x > LLORCH_SCALE_HIGH ? LLORCH_SCALE_HIGH : x;
    size_t i = 0;
    while (i + 2 < n && x > stops[i + 1].at) {
        i++;
    }
    double t = (x - stops[i].at) / (stops[i + 1].at - stops[i].at);
    for (int k = 0; k < 3; k++) {
        rgb[k] = (unsigned char) lround(stops[i].rgb[k] + t * (stops[i + 1].rgb[k] - stops[i].rgb[k]));
    }
}

int llorch_report_nmse_decade(double nmse) {
    if (!(nmse > 0)) {
        return 9;
    }
    double d = floor(-log10(nmse));
    return d < 0 ? 0 : d > 9 ? 9 : (int) d;
}

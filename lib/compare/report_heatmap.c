/*
 * report_heatmap.c - the heat map for a terminal (--heatmap): the grid of
 * report_grid.c, a line per layer and three characters per checkpoint, so
 * that a 5-layer model with every checkpoint fits in 60 columns and a bug
 * shows as a change of digits down and across. Each cell is
 *   lead   '>' for the first divergence, else ' '
 *   value  floor(-log10 NMSE) as a digit (9: 1e-9 or less), '=' when
 *          identical, 'N' when a NaN or infinity differs, 'E' when not
 *          comparable, '-' when only one dump has it, ' ' when neither
 *   mark   ' ' passed, '!' failed here (introduced), '^' failed with an
 *          input (inherited), '?' failed, origin unknown
 * With color (a terminal), the cell's background is the HTML report's
 * color for its NMSE.
 */
#include "report_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_WIDTH 5
#define KEY_WIDTH   78

static const char col_keys[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* Columns past the 62nd share '+': the HTML report names them all. */
static char col_key(size_t i) {
    return i < sizeof col_keys - 1 ? col_keys[i] : '+';
}

static char origin_mark(const struct llorch_ckpt_row *r) {
    static const char marks[] = {' ', '!', '^', '?'};
    return r->status == LLORCH_CKPT_STATUS_PASS ? ' ' : marks[r->origin];
}

static char value_char(const struct llorch_ckpt_row *r, enum llorch_grid_look look) {
    if (look == LLORCH_LOOK_NONFINITE) {
        return 'N';
    }
    if (r->metrics.max_abs == 0) {
        return '=';
    }
    return (char) ('0' + llorch_report_nmse_decade(r->metrics.nmse));
}

/* The cell's value and mark characters. */
static void cell_chars(char out[2], const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell) {
    enum llorch_grid_look look = llorch_report_grid_look(c, cell);
    out[0] = look == LLORCH_LOOK_NONE ? ' ' : look == LLORCH_LOOK_MISSING ? '-' : 'E';
    out[1] = ' ';
    if (look == LLORCH_LOOK_NONE || look == LLORCH_LOOK_MISSING || look == LLORCH_LOOK_ERROR) {
        return;
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, (size_t) cell->row);
    out[0] = value_char(r, look);
    out[1] = origin_mark(r);
}

/* xterm's 6x6x6 color cube. */
static int xterm_color(const unsigned char rgb[3]) {
    int v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = (rgb[i] * 5 + 127) / 255;
    }
    return 16 + 36 * v[0] + 6 * v[1] + v[2];
}

/* SGR codes for a cell: black on its NMSE's color; grey for what has none. */
static void color_codes(char *buf, size_t size, const llorch_ckpt_comparison *c, const struct llorch_grid_cell *cell,
                        bool first) {
    enum llorch_grid_look look = llorch_report_grid_look(c, cell);
    unsigned char         rgb[3];
    const char           *bold = first ? "1;" : "";
    buf[0] = '\0';
    if (look == LLORCH_LOOK_PASS || look == LLORCH_LOOK_FAIL) {
        llorch_report_nmse_rgb(llorch_ckpt_comparison_row(c, (size_t) cell->row)->metrics.nmse, rgb);
        snprintf(buf, size, "\033[%s30;48;5;%dm", bold, xterm_color(rgb));
    } else if (look == LLORCH_LOOK_NONFINITE) {
        snprintf(buf, size, "\033[%s97;40m", bold);
    } else if (look != LLORCH_LOOK_NONE) {
        snprintf(buf, size, "\033[%s30;48;5;250m", bold);
    }
}

/* One line, built whole so that plain text loses its trailing blanks. */
struct line_buf {
    char  *text;
    size_t used, size;
};

static void append_cell(struct line_buf *b, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g,
                        const struct llorch_grid_cell *cell, bool color) {
    char chars[2], codes[32] = "";
    bool first = cell->state == LLORCH_GRID_ROW && cell->row == g->first;
    cell_chars(chars, c, cell);
    if (color) {
        color_codes(codes, sizeof codes, c, cell, first);
    }
    int n = snprintf(b->text + b->used, b->size - b->used, "%c%s%c%c%s", first ? '>' : ' ', codes, chars[0], chars[1],
                     codes[0] ? "\033[0m" : "");
    b->used += n > 0 && (size_t) n < b->size - b->used ? (size_t) n : 0;
}

static bool line_has_first(const struct llorch_report_grid *g, size_t line) {
    for (size_t col = 0; col < g->n_cols && g->first >= 0; col++) {
        const struct llorch_grid_cell *cell = llorch_report_grid_cell(g, line, col);
        if (cell->state == LLORCH_GRID_ROW && cell->row == g->first) {
            return true;
        }
    }
    return false;
}

static void print_line(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g, size_t line,
                       bool color, struct line_buf *b) {
    char label[32];
    llorch_report_grid_label(label, sizeof label, &g->lines[line]);
    b->used =
        (size_t) snprintf(b->text, b->size, "%-2s%*s", line_has_first(g, line) ? "=>" : "", LABEL_WIDTH - 2, label);
    for (size_t col = 0; col < g->n_cols; col++) {
        append_cell(b, c, g, llorch_report_grid_cell(g, line, col), color);
    }
    while (b->used > 0 && b->text[b->used - 1] == ' ') {
        b->used--;
    }
    fprintf(f, "%.*s\n", (int) b->used, b->text);
}

static int print_grid(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_report_grid *g, bool color) {
    struct line_buf b = {NULL, 0, g->n_cols * 48 + 64};
    b.text = malloc(b.size);
    if (!b.text) {
        return -1;
    }
    fprintf(f, "%*s", LABEL_WIDTH, "layer");
    for (size_t col = 0; col < g->n_cols; col++) {
        fprintf(f, " %c%s", col_key(col), col + 1 < g->n_cols ? " " : ""); /* over the value character */
    }
    fputc('\n', f);
    for (size_t line = 0; line < g->n_lines; line++) {
        print_line(f, c, g, line, color, &b);
    }
    free(b.text);
    return 0;
}

/* "columns: a embd, b attn_norm, ..." wrapped at KEY_WIDTH. */
static void print_key(FILE *f, const struct llorch_report_grid *g) {
    size_t used = (size_t) fprintf(f, "columns:");
    for (size_t col = 0; col < g->n_cols; col++) {
        const char *name = g->cols[col].name;
        size_t      need = strlen(name) + 4;
        if (used + need > KEY_WIDTH && used > 9) {
            used = (size_t) fprintf(f, "\n        ");
        }
        used += (size_t) fprintf(f, " %c %s%s", col_key(col), name, col + 1 < g->n_cols ? "," : "");
    }
    fputc('\n', f);
}

/* The ten digits on their colors. */
static void print_scale(FILE *f) {
    fputs("scale:  ", f);
    for (int d = 9; d >= 0; d--) {
        unsigned char rgb[3];
        llorch_report_nmse_rgb(pow(10.0, -(d + 0.5)), rgb); /* the middle of the digit's decade */
        fprintf(f, "\033[30;48;5;%dm %d \033[0m", xterm_color(rgb), d);
    }
    fputs("  (NMSE 1e-16 ... 1)\n", f);
}

int llorch_ckpt_report_heatmap(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info,
                               bool color) {
    struct llorch_report_grid g;
    if (llorch_report_grid_build(&g, c, info->ref, info->cand) != 0) {
        return -1;
    }
    fprintf(f, "heat map of %s against %s: floor(-log10 NMSE) per layer and checkpoint\n", info->cand_name,
            info->ref_name);
    if (print_grid(f, c, &g, color) != 0) {
        llorch_report_grid_free(&g);
        return -1;
    }
    print_key(f, &g);
    fputs("legend: digit d: NMSE about 1e-d (9: 1e-9 or less, 0: 0.1 or more), = identical, N NaN/inf differ,\n"
          "        ! failed here (introduced), ^ failed (inherited), ? failed (origin unknown),\n"
          "        E not comparable, - in one dump only, > first divergence\n",
          f);
    if (color) {
        print_scale(f);
    }
    llorch_report_grid_free(&g);
    return llorch_ckpt_report_verdict(f, c) != 0 || ferror(f) ? -1 : 0;
}

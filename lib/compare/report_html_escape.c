/*
 * report_html_escape.c - what every part of the HTML report (report_html*.c)
 * writes through: the escaping of every string from a dump, in text and
 * in attributes; the numbers of data- attributes exactly as --json prints
 * them; a number as the page shows it; a row's identity as data-
 * attributes. Below every other report_html*.c file.
 */
#include "report_internal.h"

#include <cjson/cJSON.h>

#include <math.h>

/* ---- escaping and numbers -------------------------------------------------------- */

/* What stands for each character that could end a text or an attribute. */
static const char *const entities[128] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;",
};

void llorch_html_text(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
        if (*p < 128 && entities[*p]) {
            fputs(entities[*p], f);
        } else if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f) {
            fputs("&#xFFFD;", f); /* a control character would be a parse error */
        } else {
            fputc(*p, f);
        }
    }
}

void llorch_html_attr(FILE *f, const char *name, const char *value) {
    fprintf(f, " %s=\"", name);
    llorch_html_text(f, value);
    fputc('"', f);
}

static const char *nonfinite_text(double v) {
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* cJSON prints the number, so that the page holds exactly what --json
 * does (cJSON's %.15g where that reads back within an ulp, else %.17g). */
void llorch_html_number(FILE *f, const char *name, double v) {
    cJSON *number = isfinite(v) ? cJSON_CreateNumber(v) : NULL;
    char  *text = number ? cJSON_PrintUnformatted(number) : NULL;
    if (text) {
        fprintf(f, " %s=\"%s\"", name, text);
    } else if (isfinite(v)) {
        fprintf(f, " %s=\"%.17g\"", name, v); /* out of memory: exact all the same */
    } else {
        fprintf(f, " %s=\"%s\"", name, nonfinite_text(v));
    }
    cJSON_free(text);
    cJSON_Delete(number);
}

void llorch_html_short(FILE *f, double v) {
    if (isfinite(v)) {
        fprintf(f, "%.3e", v);
    } else {
        fputs(nonfinite_text(v), f);
    }
}

void llorch_html_row_attrs(FILE *f, const struct llorch_ckpt_row *r, size_t i) {
    char layer[16];
    snprintf(layer, sizeof layer, r->layer >= 0 ? "%d" : "null", r->layer);
    fprintf(f, " data-row=\"%zu\"", i);
    llorch_html_attr(f, "data-checkpoint", r->checkpoint);
    llorch_html_attr(f, "data-layer", layer);
    if (r->graph_name) {
        llorch_html_attr(f, "data-graph-name", r->graph_name);
    }
    llorch_html_attr(f, "data-status", llorch_ckpt_status_name(r->status));
    llorch_html_attr(f, "data-origin", llorch_ckpt_origin_name(r->origin));
}

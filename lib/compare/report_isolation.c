/*
 * report_isolation.c - the chained comparison and the isolated one (one
 * side fed the other's residual stream: docs/COMPARE.md, "Prove each
 * layer on its own") side by side, layer by layer: each layer's attention
 * and FFN, their largest NMSE and status in both, the layers wrong on
 * their own, and whether isolation clears what the chained comparison
 * blamed.
 */
#include "report_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <string.h>

/* The part of a layer a row belongs to: the FFN (its output and what the
 * residual adds after it) or the attention (everything before). */
static bool is_ffn(const struct llorch_ckpt_row *r) {
    static const char *const ffn[] = {"ffn_out",     "l_out",         "ffn_out_final",
                                      "ffn_moe_out", "ffn_shexp_out", "ffn_dense_out"};
    for (size_t i = 0; i < sizeof ffn / sizeof ffn[0]; i++) {
        if (strcmp(r->checkpoint, ffn[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* One part of one layer in one comparison. */
struct part {
    bool                          present;
    double                        nmse;   /* the largest of its rows; infinite for an ERROR */
    const struct llorch_ckpt_row *failed; /* its first row that does not pass, or NULL */
};

static struct part part_of(const llorch_ckpt_comparison *c, int layer, bool ffn) {
    struct part p = {false, 0, NULL};
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (r->layer != layer || r->graph_name || is_ffn(r) != ffn) {
            continue;
        }
        double e = r->status == LLORCH_CKPT_STATUS_ERROR || r->metrics.n_nonfinite ? INFINITY : r->metrics.nmse;
        p.present = true;
        p.nmse = e > p.nmse ? e : p.nmse;
        if (!p.failed && r->status != LLORCH_CKPT_STATUS_PASS) {
            p.failed = r;
        }
    }
    return p;
}

static int max_layer(const llorch_ckpt_comparison *c) {
    int last = -1;
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        int l = llorch_ckpt_comparison_row(c, i)->layer;
        last = l > last ? l : last;
    }
    return last;
}

static void print_part(FILE *f, struct part chained, struct part isolated) {
    if (!chained.present && !isolated.present) {
        fprintf(f, "  %10s %10s %-5s", "-", "-", "");
        return;
    }
    fprintf(f, "  %10.2e %10.2e %-5s", chained.nmse, isolated.nmse, isolated.failed ? "FAIL" : "ok");
}

/* "layer 2's attention (attn_norm)", for the closing lines. */
void llorch_report_isolated_failures(char *buf, size_t size, const llorch_ckpt_comparison *isolated) {
    int    last = max_layer(isolated);
    size_t used = 0;
    int    n = 0;
    buf[0] = '\0';
    for (int l = 0; l <= last && used < size; l++) {
        for (int ffn = 0; ffn < 2 && used < size; ffn++) {
            struct part p = part_of(isolated, l, ffn);
            if (p.failed) {
                used += (size_t) snprintf(buf + used, size - used, "%slayer %d's %s (%s)", n++ ? ", " : "", l,
                                          ffn ? "FFN" : "attention", p.failed->checkpoint);
            }
        }
    }
}

/* The chained comparison's first divergence, when isolation passes its layer. */
static const struct llorch_ckpt_row *cleared_blame(const llorch_ckpt_comparison *chained,
                                                   const llorch_ckpt_comparison *isolated) {
    long first = llorch_ckpt_comparison_first_failure(chained);
    if (first < 0) {
        return NULL;
    }
    const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(chained, (size_t) first);
    if (r->layer < 0) {
        return NULL;
    }
    struct part p = part_of(isolated, r->layer, is_ffn(r));
    return p.present && !p.failed ? r : NULL;
}

int llorch_ckpt_report_isolation(FILE *f, const llorch_ckpt_comparison *chained, const llorch_ckpt_comparison *isolated,
                                 const char *fed_name) {
    int  last = max_layer(isolated) > max_layer(chained) ? max_layer(isolated) : max_layer(chained);
    char wrong[2048], title[256];
    fprintf(f, "\nisolation  %s: each layer computed from the other side's own input to it; largest NMSE of its rows\n",
            fed_name);
    fprintf(f, "%7s  %33s  %33s\n", "", "attention: chained  isolated", "FFN: chained  isolated");
    for (int l = 0; l <= last; l++) {
        fprintf(f, "%7d     ", l);
        print_part(f, part_of(chained, l, false), part_of(isolated, l, false));
        fputs("          ", f);
        print_part(f, part_of(chained, l, true), part_of(isolated, l, true));
        fputc('\n', f);
    }
    llorch_report_isolated_failures(wrong, sizeof wrong, isolated);
    if (wrong[0]) {
        fprintf(f, "proved by isolation: wrong on its own input: %s\n", wrong);
    } else {
        fprintf(f, "proved by isolation: every layer computes what the reference computes from the same input\n");
    }
    const struct llorch_ckpt_row *cleared = cleared_blame(chained, isolated);
    if (cleared) {
        fprintf(f,
                "the chained comparison's first divergence, %s, is cleared by isolation: that layer is right on "
                "its own input; the error came in from earlier layers\n",
                llorch_report_row_title(title, sizeof title, cleared));
    }
    return ferror(f) ? -1 : 0;
}

cJSON *llorch_report_isolation_json(const llorch_ckpt_comparison *chained, const llorch_ckpt_comparison *isolated,
                                    const char *fed_name) {
    cJSON *o = cJSON_CreateObject(), *layers = cJSON_CreateArray();
    char   wrong[2048], sentence[2048];
    int    last = max_layer(isolated) > max_layer(chained) ? max_layer(isolated) : max_layer(chained);
    cJSON_AddStringToObject(o, "path", fed_name);
    cJSON_AddNumberToObject(o, "exit_code", llorch_ckpt_comparison_exit_code(isolated));
    cJSON_AddStringToObject(o, "message", llorch_report_verdict_text(sentence, sizeof sentence, isolated));
    for (int l = 0; l <= last; l++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "layer", l);
        for (int ffn = 0; ffn < 2; ffn++) {
            struct part a = part_of(chained, l, ffn), b = part_of(isolated, l, ffn);
            cJSON      *p = cJSON_CreateObject();
            isfinite(a.nmse) ? cJSON_AddNumberToObject(p, "chained_nmse", a.nmse)
                                  : cJSON_AddNullToObject(p, "chained_nmse");
            isfinite(b.nmse) ? cJSON_AddNumberToObject(p, "isolated_nmse", b.nmse)
                             : cJSON_AddNullToObject(p, "isolated_nmse");
            cJSON_AddStringToObject(p, "chained", a.failed ? "FAIL" : "PASS");
            cJSON_AddStringToObject(p, "isolated", b.failed ? "FAIL" : "PASS");
            b.failed ? cJSON_AddStringToObject(p, "failed_at", b.failed->checkpoint)
                     : cJSON_AddNullToObject(p, "failed_at");
            cJSON_AddItemToObject(row, ffn ? "ffn" : "attention", p);
        }
        cJSON_AddItemToArray(layers, row);
    }
    cJSON_AddItemToObject(o, "layers", layers);
    llorch_report_isolated_failures(wrong, sizeof wrong, isolated);
    cJSON_AddStringToObject(o, "wrong_on_their_own", wrong);
    const struct llorch_ckpt_row *cleared = cleared_blame(chained, isolated);
    if (cleared) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "checkpoint", cleared->checkpoint);
        cJSON_AddNumberToObject(k, "layer", cleared->layer);
        cJSON_AddItemToObject(o, "cleared", k);
    } else {
        cJSON_AddNullToObject(o, "cleared");
    }
    return o;
}

/*
 * report_isolation.c - the chained comparison and the isolated one (one
 * side fed the other's residual stream: docs/COMPARE.md, "Prove each
 * layer on its own") side by side, layer by layer: each layer's attention
 * and FFN, their largest NMSE and status in both, the layers wrong on
 * their own, and whether isolation clears what the chained comparison
 * blamed. Each layer's parts come from report_parts.c, the sentences
 * from report_text.c, both below.
 */
#include "report_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <string.h>

static void print_part(FILE *f, struct llorch_report_part chained, struct llorch_report_part isolated) {
    if (!chained.present && !isolated.present) {
        fprintf(f, "  %10s %10s %-5s", "-", "-", "");
        return;
    }
    fprintf(f, "  %10.2e %10.2e %-5s", chained.nmse, isolated.nmse, isolated.failed ? "FAIL" : "ok");
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
    struct llorch_report_part p = llorch_report_part_of(isolated, r->layer, llorch_report_is_ffn(chained, r));
    return p.present && !p.failed ? r : NULL;
}

int llorch_ckpt_report_isolation(FILE *f, const llorch_ckpt_comparison *chained, const llorch_ckpt_comparison *isolated,
                                 const char *fed_name) {
    int  last = llorch_report_max_layer(isolated) > llorch_report_max_layer(chained) ? llorch_report_max_layer(isolated)
                                                                                     : llorch_report_max_layer(chained);
    char wrong[2048], title[256];
    fprintf(f, "\nisolation  %s: each layer computed from the other side's own input to it; largest NMSE of its rows\n",
            fed_name);
    fprintf(f, "%7s  %33s  %33s\n", "", "attention: chained  isolated", "FFN: chained  isolated");
    for (int l = 0; l <= last; l++) {
        fprintf(f, "%7d     ", l);
        print_part(f, llorch_report_part_of(chained, l, false), llorch_report_part_of(isolated, l, false));
        fputs("          ", f);
        print_part(f, llorch_report_part_of(chained, l, true), llorch_report_part_of(isolated, l, true));
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
    int last = llorch_report_max_layer(isolated) > llorch_report_max_layer(chained) ? llorch_report_max_layer(isolated)
                                                                                    : llorch_report_max_layer(chained);
    cJSON_AddStringToObject(o, "path", fed_name);
    cJSON_AddNumberToObject(o, "exit_code", llorch_ckpt_comparison_exit_code(isolated));
    cJSON_AddStringToObject(o, "message", llorch_report_verdict_text(sentence, sizeof sentence, isolated));
    for (int l = 0; l <= last; l++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "layer", l);
        for (int ffn = 0; ffn < 2; ffn++) {
            struct llorch_report_part a = llorch_report_part_of(chained, l, ffn),
                                      b = llorch_report_part_of(isolated, l, ffn);
            cJSON *p = cJSON_CreateObject();
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

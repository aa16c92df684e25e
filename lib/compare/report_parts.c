/*
 * report_parts.c - a comparison layer by layer: the part of a layer each
 * row belongs to (its attention, or its FFN), each part's largest NMSE and
 * first failing row, and the parts that fail in an isolated (fed)
 * comparison. Below report_text.c (whose verdict names those parts) and
 * report_isolation.c (which sets them side by side).
 */
#include "report_internal.h"

#include <math.h>
#include <string.h>

/* The part of a layer a row belongs to: the FFN (its output and what the
 * residual adds after it, and a recurrent state r that comes after ffn_inp:
 * RWKV's token shift holds the channel mix's input) or the attention, or a
 * recurrent layer's mixer (everything before). */
bool llorch_report_is_ffn(const llorch_ckpt_comparison *c, const struct llorch_ckpt_row *r) {
    static const char *const ffn[] = {"ffn_out",     "l_out",         "ffn_out_final",
                                      "ffn_moe_out", "ffn_shexp_out", "ffn_dense_out"};
    for (size_t i = 0; i < sizeof ffn / sizeof ffn[0]; i++) {
        if (strcmp(r->checkpoint, ffn[i]) == 0) {
            return true;
        }
    }
    if (strcmp(r->checkpoint, "cache_r") != 0) {
        return false;
    }
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) { /* rows are in graph order */
        const struct llorch_ckpt_row *x = llorch_ckpt_comparison_row(c, i);
        if (x == r) {
            return false;
        }
        if (x->layer == r->layer && !x->graph_name && strcmp(x->checkpoint, "ffn_inp") == 0) {
            return true;
        }
    }
    return false;
}

/* One part of one layer in one comparison. */
struct llorch_report_part llorch_report_part_of(const llorch_ckpt_comparison *c, int layer, bool ffn) {
    struct llorch_report_part p = {false, 0, NULL};
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (r->layer != layer || r->graph_name || llorch_report_is_ffn(c, r) != ffn) {
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

/* The largest layer of c's rows (-1: none is in a layer). */
int llorch_report_max_layer(const llorch_ckpt_comparison *c) {
    int last = -1;
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        int l = llorch_ckpt_comparison_row(c, i)->layer;
        last = l > last ? l : last;
    }
    return last;
}

/* "layer 2's attention (attn_norm)", for the closing lines. */
void llorch_report_isolated_failures(char *buf, size_t size, const llorch_ckpt_comparison *isolated) {
    int    last = llorch_report_max_layer(isolated);
    size_t used = 0;
    int    n = 0;
    buf[0] = '\0';
    for (int l = 0; l <= last && used < size; l++) {
        for (int ffn = 0; ffn < 2 && used < size; ffn++) {
            struct llorch_report_part p = llorch_report_part_of(isolated, l, ffn);
            if (p.failed) {
                used += (size_t) snprintf(buf + used, size - used, "%slayer %d's %s (%s)", n++ ? ", " : "", l,
                                          ffn ? "FFN" : "attention", p.failed->checkpoint);
            }
        }
    }
}

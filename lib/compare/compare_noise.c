/*
 * compare_noise.c - the noise floor (docs/COMPARE.md, "The noise floor"):
 * a second reference of the same model and tokens, from another backend or
 * setting, says how far llama.cpp itself varies at each (checkpoint,
 * layer); a row that leaves its tolerance passes when its errors stay
 * within k times that spread. Rows are matched by checkpoint, graph name
 * and layer, as the two comparisons grouped them.
 */
#include "compare_internal.h"

#include <math.h>
#include <string.h>

static bool same_name(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static const struct llorch_ckpt_row *floor_row(const struct llorch_ckpt_comparison *floor,
                                               const struct llorch_ckpt_row        *r) {
    for (size_t i = 0; i < floor->n_rows; i++) {
        const struct llorch_ckpt_row *f = &floor->rows[i];
        if (f->layer == r->layer && same_name(f->checkpoint, r->checkpoint) &&
            same_name(f->graph_name, r->graph_name)) {
            return f->status == LLORCH_CKPT_STATUS_ERROR ? NULL : f;
        }
    }
    return NULL;
}

/* error / spread: 0 when both are 0, infinite when only the spread is. */
static double ratio_of(double error, double spread) {
    if (error == 0) {
        return 0;
    }
    return spread > 0 ? error / spread : INFINITY;
}

static void measure_row(struct llorch_ckpt_row *r, const struct llorch_ckpt_row *f) {
    const struct llorch_ckpt_metrics *m = &r->metrics, *s = &f->metrics;
    double                            by_abs = ratio_of(m->max_abs, s->max_abs), by_rms = ratio_of(m->rmse, s->rmse);
    r->noise = (struct llorch_ckpt_noise){true, s->max_abs, s->rmse, s->nmse, by_abs > by_rms ? by_abs : by_rms};
    if (m->n_nonfinite || s->n_nonfinite) {
        r->noise.ratio = INFINITY; /* a NaN or infinity is never noise */
    }
}

static void judge_row(struct llorch_ckpt_row *r, double k) {
    if (r->status == LLORCH_CKPT_STATUS_PASS) {
        r->bound = LLORCH_CKPT_BOUND_TOLERANCE;
    } else if (r->noise.ratio <= k) {
        r->status = LLORCH_CKPT_STATUS_PASS;
        r->bound = LLORCH_CKPT_BOUND_NOISE;
    } else {
        r->bound = LLORCH_CKPT_BOUND_EXCEEDED;
    }
}

void llorch_cmp_measure_noise(struct llorch_ckpt_comparison *c, const struct llorch_ckpt_comparison *floor, double k,
                              const char *floor_name) {
    size_t                        n_lacking = 0;
    const struct llorch_ckpt_row *first_lacking = NULL;
    c->noise_factor = k;
    for (size_t i = 0; i < c->n_rows; i++) {
        struct llorch_ckpt_row       *r = &c->rows[i];
        const struct llorch_ckpt_row *f = r->status == LLORCH_CKPT_STATUS_ERROR ? r : floor_row(floor, r);
        if (!f) {
            r->bound = LLORCH_CKPT_BOUND_NO_FLOOR;
            first_lacking = first_lacking ? first_lacking : r;
            n_lacking++;
        } else if (f != r) {
            measure_row(r, f);
        }
    }
    if (first_lacking) {
        llorch_cmp_warn(c,
                        "the noise floor %s lacks %zu row(s) (first %s%s%s, layer %d) or could not compare them: "
                        "judged by the tolerance alone",
                        floor_name, n_lacking, first_lacking->checkpoint, first_lacking->graph_name ? " " : "",
                        first_lacking->graph_name ? first_lacking->graph_name : "", first_lacking->layer);
    }
}

void llorch_cmp_apply_noise(struct llorch_ckpt_comparison *c, const struct llorch_ckpt_comparison *floor, double k,
                            const char *floor_name) {
    llorch_cmp_measure_noise(c, floor, k, floor_name);
    for (size_t i = 0; i < c->n_rows; i++) {
        struct llorch_ckpt_row *r = &c->rows[i];
        if (r->status != LLORCH_CKPT_STATUS_ERROR && r->noise.present) {
            judge_row(r, k);
        }
    }
}

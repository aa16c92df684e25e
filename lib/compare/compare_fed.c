/*
 * compare_fed.c - a fed run (docs/FORMAT.md, "Fed runs"): one dump computed
 * each layer from the other's residual stream. Its inputs to each layer
 * are then the other side's by construction, so a row that reads a fed
 * residual (attn_norm reads the layer's input, the FFN reads ffn_inp)
 * carries no error in from it: each layer is judged on its own.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "compare_internal.h"
#include "error.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fed_fields {
    bool fed;
    char at[256], producer[256], from[PATH_MAX];
};

static void take_fed(void *ctx, const char *key, const char *value) {
    struct fed_fields *f = ctx;
    if (strncmp(key, "fed.", 4) == 0 || strcmp(key, "fed") == 0) {
        f->fed = f->fed || strcmp(value, "null") != 0;
    }
    if (strcmp(key, "fed.at") == 0) {
        snprintf(f->at, sizeof f->at, "%s", value);
    } else if (strcmp(key, "fed.producer") == 0) {
        snprintf(f->producer, sizeof f->producer, "%s", value);
    } else if (strcmp(key, "fed.from") == 0) {
        snprintf(f->from, sizeof f->from, "%s", value);
    }
}

/* "at" as JSON text: ["embd","l_out","ffn_inp"]. */
static unsigned at_mask(const char *at) {
    unsigned mask = 0;
    mask |= strstr(at, "\"embd\"") ? LLORCH_CMP_FED_EMBD : 0;
    mask |= strstr(at, "\"l_out\"") ? LLORCH_CMP_FED_L_OUT : 0;
    mask |= strstr(at, "\"ffn_inp\"") ? LLORCH_CMP_FED_FFN_INP : 0;
    return mask;
}

/* A fed dump judged against another dump than the one it was fed from
 * would blame every layer for inputs it never had. Where both paths
 * resolve here (the usual case: one machine), they must be the same. */
static int check_source(const struct fed_fields *f, const llorch_ckpt_dump *fed, const llorch_ckpt_dump *other,
                        char *err, size_t err_size) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!f->from[0] || !realpath(f->from, a) || !realpath(llorch_ckpt_dump_name(other), b) || strcmp(a, b) == 0) {
        return 0;
    }
    llorch_set_error(err, err_size,
                     "%s was fed from %s, not from %s: each of its layers ran on inputs %s does not hold; compare "
                     "it with %s, or make it again with --feed %s",
                     llorch_ckpt_dump_name(fed), f->from, llorch_ckpt_dump_name(other), llorch_ckpt_dump_name(other),
                     f->from, llorch_ckpt_dump_name(other));
    return -1;
}

int llorch_cmp_read_fed(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                        char *err, size_t err_size) {
    const llorch_ckpt_dump *dumps[2] = {ref, cand};
    for (int side = 0; side < 2; side++) {
        struct fed_fields f = {false, "", "", ""};
        llorch_ckpt_dump_fields(dumps[side], take_fed, &f);
        if (!f.fed) {
            continue;
        }
        const llorch_ckpt_dump *other = dumps[1 - side];
        const char             *producer = llorch_ckpt_dump_producer(other);
        if (check_source(&f, dumps[side], other, err, err_size) != 0) {
            return -1;
        }
        c->fed_side = side + 1;
        c->fed_at = at_mask(f.at);
        if (f.producer[0] && producer && strcmp(f.producer, producer) != 0) {
            llorch_cmp_warn(c,
                            "%s was fed from a dump of %s, not from %s (%s): its layers are judged on inputs the "
                            "other dump may not hold",
                            llorch_ckpt_dump_name(dumps[side]), f.producer, llorch_ckpt_dump_name(other), producer);
        }
        if (c->fed_at == 0) {
            llorch_cmp_warn(c, "%s says it was fed but names no residual (fed.at): judged as chained",
                            llorch_ckpt_dump_name(dumps[side]));
        }
        return 0; /* one side fed from the other; both fed makes no sense, the first wins */
    }
    return 0;
}

bool llorch_cmp_input_fed(const struct llorch_ckpt_comparison *c, int kind, int layer) {
    if (c->fed_side == 0) {
        return false;
    }
    switch (kind) {
        case LLORCH_CKPT_EMBD:
            return (c->fed_at & LLORCH_CMP_FED_EMBD) != 0;
        case LLORCH_CKPT_L_OUT:
            return (c->fed_at & LLORCH_CMP_FED_L_OUT) != 0 && layer >= 0;
        case LLORCH_CKPT_FFN_INP:
            return (c->fed_at & LLORCH_CMP_FED_FFN_INP) != 0;
        default:
            return false;
    }
}

/* A row whose dataflow input is a fed residual: attn_norm (the layer's
 * input), ffn_out (ffn_inp), result_norm (the last layer's output, fed
 * only where the run fed it: it is not, so result_norm keeps its input). */
bool llorch_cmp_reads_fed(const struct llorch_ckpt_comparison *c, int kind, int layer) {
    if (kind == LLORCH_CKPT_ATTN_NORM) {
        return llorch_cmp_input_fed(c, layer == 0 ? LLORCH_CKPT_EMBD : LLORCH_CKPT_L_OUT, layer - 1);
    }
    if (kind == LLORCH_CKPT_FFN_OUT) {
        return llorch_cmp_input_fed(c, LLORCH_CKPT_FFN_INP, layer);
    }
    return false;
}

int llorch_ckpt_comparison_fed(const llorch_ckpt_comparison *c, unsigned *at) {
    if (at) {
        *at = c->fed_at;
    }
    return c->fed_side;
}

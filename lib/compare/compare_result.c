/*
 * compare_result.c - the result object of a comparison (struct
 * llorch_ckpt_comparison): its creation, the rows' allocation, the copies
 * of every string its rows, keys and warnings point to, the warnings, the
 * accessors, the status, origin and bound names, and its release. The
 * bottom of the compare_*.c stack but for compare_tolerance.c and
 * compare_logits.c (its decision): every other stage writes into it.
 */
#include "compare_internal.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- creation ------------------------------------------------------------------------ */

struct llorch_ckpt_comparison *llorch_cmp_comparison_new(void) {
    return calloc(1, sizeof(struct llorch_ckpt_comparison));
}

int llorch_cmp_alloc_rows(struct llorch_ckpt_comparison *c, size_t n) {
    c->rows = calloc(n + 1, sizeof *c->rows);
    c->kinds = calloc(n + 1, sizeof *c->kinds);
    return c->rows && c->kinds ? 0 : -1;
}

/* ---- owned copies and warnings ---------------------------------------------------- */

/* Appends copy (malloc'd, may be NULL) to a list owned by c; NULL and a
 * flag when out of memory. */
static char *own(struct llorch_ckpt_comparison *c, char ***list, size_t *n, char *copy) {
    char **grown = copy ? realloc(*list, (*n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        c->out_of_memory = true;
        return NULL;
    }
    *list = grown;
    (*list)[(*n)++] = copy;
    return copy;
}

const char *llorch_cmp_keep(struct llorch_ckpt_comparison *c, const char *s) {
    if (!s) {
        return NULL;
    }
    const char *copy = own(c, &c->strings, &c->n_strings, llorch_strdup(s));
    return copy ? copy : "";
}

void llorch_cmp_warn(struct llorch_ckpt_comparison *c, const char *fmt, ...) {
    char    msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    own(c, &c->warnings, &c->n_warnings, llorch_strdup(msg));
}

/* ---- the noise floor ------------------------------------------------------------------ */

double llorch_ckpt_comparison_noise_factor(const llorch_ckpt_comparison *c) {
    return c->noise_factor;
}

const char *llorch_ckpt_comparison_noise_dump(const llorch_ckpt_comparison *c, const char **producer) {
    if (producer) {
        *producer = c->noise_producer;
    }
    return c->noise_name;
}

/* ---- accessors ---------------------------------------------------------------------- */

size_t llorch_ckpt_comparison_n_rows(const llorch_ckpt_comparison *c) {
    return c->n_rows;
}

const struct llorch_ckpt_row *llorch_ckpt_comparison_row(const llorch_ckpt_comparison *c, size_t i) {
    return i < c->n_rows ? &c->rows[i] : NULL;
}

long llorch_ckpt_comparison_first_failure(const llorch_ckpt_comparison *c) {
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status != LLORCH_CKPT_STATUS_PASS) {
            return (long) i;
        }
    }
    return -1;
}

size_t llorch_ckpt_comparison_n_only(const llorch_ckpt_comparison *c, bool in_reference) {
    return c->n_only[in_reference];
}

const struct llorch_ckpt_key *llorch_ckpt_comparison_only(const llorch_ckpt_comparison *c, bool in_reference,
                                                          size_t i) {
    return i < c->n_only[in_reference] ? &c->only[in_reference][i] : NULL;
}

size_t llorch_ckpt_comparison_n_warnings(const llorch_ckpt_comparison *c) {
    return c->n_warnings;
}

const char *llorch_ckpt_comparison_warning(const llorch_ckpt_comparison *c, size_t i) {
    return i < c->n_warnings ? c->warnings[i] : NULL;
}

bool llorch_ckpt_comparison_missing_counts(const llorch_ckpt_comparison *c) {
    const struct llorch_ckpt_missing *m = &c->missing;
    return !m->allowed && (m->n_rows > 0 || m->n_positions > 0 || m->ref_incomplete || m->cand_incomplete);
}

/* An ERROR outweighs a FAIL, which outweighs what is missing: each says
 * more about what to do next. */
int llorch_ckpt_comparison_exit_code(const llorch_ckpt_comparison *c) {
    int code = 0;
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status == LLORCH_CKPT_STATUS_ERROR) {
            return 2;
        }
        if (c->rows[i].status == LLORCH_CKPT_STATUS_FAIL) {
            code = 1;
        }
    }
    return code == 0 && llorch_ckpt_comparison_missing_counts(c) ? 3 : code;
}

size_t llorch_ckpt_comparison_n_settings(const llorch_ckpt_comparison *c) {
    return c->n_settings;
}

const struct llorch_ckpt_setting_diff *llorch_ckpt_comparison_setting(const llorch_ckpt_comparison *c, size_t i) {
    return i < c->n_settings ? &c->settings[i] : NULL;
}

bool llorch_ckpt_comparison_settings_explain(const llorch_ckpt_comparison *c) {
    return c->settings_explain;
}

const struct llorch_ckpt_missing *llorch_ckpt_comparison_missing(const llorch_ckpt_comparison *c) {
    return &c->missing;
}

bool llorch_ckpt_comparison_auto(const llorch_ckpt_comparison *c) {
    return c->auto_judgement;
}

void llorch_ckpt_comparison_free(llorch_ckpt_comparison *c) {
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_strings; i++) {
        free(c->strings[i]);
    }
    for (size_t i = 0; i < c->n_warnings; i++) {
        free(c->warnings[i]);
    }
    free(c->strings);
    free(c->warnings);
    free(c->settings);
    free(c->rows);
    free(c->kinds);
    free(c->only[0]);
    free(c->only[1]);
    llorch_ckpt_decision_free(c->decision);
    free(c);
}

/* Indexed by enum llorch_ckpt_status and enum llorch_ckpt_origin. */
static const char *const status_names[] = {"PASS", "FAIL", "ERROR"};
static const char *const origin_names[] = {"none", "introduced", "inherited", "unknown", "settings"};

const char *llorch_ckpt_status_name(enum llorch_ckpt_status s) {
    return llorch_enum_name(status_names, 3, (int) s, "?");
}

const char *llorch_ckpt_origin_name(enum llorch_ckpt_origin o) {
    return llorch_enum_name(origin_names, 5, (int) o, "?");
}

const char *llorch_ckpt_bound_name(enum llorch_ckpt_bound b) {
    static const char *const bound_names[] = {"tolerance", "noise", "exceeded", "no-floor"};
    return llorch_enum_name(bound_names, 4, (int) b, "?");
}

/*
 * compare_checks.c - what is checked of the two dumps as wholes: dumps of
 * different models or token ids cannot be compared at all (an error); an
 * incomplete dump, a smaller model difference or differing dtypes only
 * qualify the result (a warning).
 */
#include "compare_internal.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

/* A manifest may name no architecture (the writer leaves it out when the
 * run names none): it then differs from none. */
static bool same_architecture(const struct llorch_ckpt_model *a, const struct llorch_ckpt_model *b) {
    return !a->architecture || !b->architecture || strcmp(a->architecture, b->architecture) == 0;
}

static const char *architecture_of(const struct llorch_ckpt_model *m) {
    return m->architecture ? m->architecture : "unknown architecture";
}

/* The scheme of a fingerprint: what comes before its ':' (the reader
 * checked the form). */
static size_t scheme_length(const char *fingerprint) {
    return strcspn(fingerprint, ":");
}

/* Fingerprints (model.fingerprint) identify the model: different ones are
 * different models, whatever their shapes. Without one, or with two of
 * different schemes, the model cannot be checked. */
static int check_fingerprints(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                              const llorch_ckpt_dump *cand, bool allow, char *err, size_t err_size) {
    const char *a = llorch_ckpt_dump_model(ref)->fingerprint, *b = llorch_ckpt_dump_model(cand)->fingerprint;
    if (a == NULL && b == NULL) {
        llorch_cmp_warn(c, "neither dump has a model fingerprint (model.fingerprint): the model cannot be checked");
        return 0;
    }
    if (a == NULL || b == NULL) {
        llorch_cmp_warn(c, "%s has no model fingerprint (model.fingerprint): the model cannot be checked",
                        llorch_ckpt_dump_name(a == NULL ? ref : cand));
        return 0;
    }
    if (scheme_length(a) != scheme_length(b) || strncmp(a, b, scheme_length(a)) != 0) {
        llorch_cmp_warn(c,
                        "the model fingerprints are of different schemes (%.*s in %s, %.*s in %s): the model "
                        "cannot be checked",
                        (int) scheme_length(a), a, llorch_ckpt_dump_name(ref), (int) scheme_length(b), b,
                        llorch_ckpt_dump_name(cand));
        return 0;
    }
    if (strcmp(a, b) == 0) {
        return 0;
    }
    if (!allow) {
        llorch_set_error(err, err_size,
                         "the dumps are of different models: model.fingerprint is %s in %s and %s in %s; compare "
                         "dumps of the same GGUF file, or give --allow-model-mismatch to compare them anyway",
                         a, llorch_ckpt_dump_name(ref), b, llorch_ckpt_dump_name(cand));
        return -1;
    }
    llorch_cmp_warn(c,
                    "the dumps are of different models (--allow-model-mismatch): model.fingerprint is %s in %s and "
                    "%s in %s",
                    a, llorch_ckpt_dump_name(ref), b, llorch_ckpt_dump_name(cand));
    return 0;
}

int llorch_cmp_check_models(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                            const llorch_ckpt_compare_options *opt, char *err, size_t err_size) {
    const struct llorch_ckpt_model *a = llorch_ckpt_dump_model(ref), *b = llorch_ckpt_dump_model(cand);
    if (!same_architecture(a, b) || a->n_layer != b->n_layer || a->n_embd != b->n_embd) {
        llorch_set_error(err, err_size,
                         "the dumps are of different models: %s, %d layers, n_embd %d in %s; "
                         "%s, %d layers, n_embd %d in %s",
                         architecture_of(a), a->n_layer, a->n_embd, llorch_ckpt_dump_name(ref), architecture_of(b),
                         b->n_layer, b->n_embd, llorch_ckpt_dump_name(cand));
        return -1;
    }
    /* The shapes will tell whether these matter. */
    const struct {
        const char *name;
        int         a, b;
    } more[] = {
        {"n_head", a->n_head, b->n_head},
        {"n_head_kv", a->n_head_kv, b->n_head_kv},
        {"n_vocab", a->n_vocab, b->n_vocab},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        if (more[i].a >= 0 && more[i].b >= 0 && more[i].a != more[i].b) {
            llorch_cmp_warn(c, "the models differ in %s: %d in the reference, %d in the candidate", more[i].name,
                            more[i].a, more[i].b);
        }
    }
    return check_fingerprints(c, ref, cand, llorch_cmp_allow_model_mismatch(opt), err, err_size);
}

/* The sequence with id seq of a dump of several, or NULL. */
static const struct llorch_ckpt_dump_sequence *find_sequence(const llorch_ckpt_dump *d, int seq) {
    for (size_t i = 0; i < llorch_ckpt_dump_n_sequences(d); i++) {
        if (llorch_ckpt_dump_sequence(d, i)->seq == seq) {
            return llorch_ckpt_dump_sequence(d, i);
        }
    }
    return NULL;
}

int llorch_cmp_check_sequences(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                               const llorch_ckpt_compare_options *opt, int seqs[2], char *err, size_t err_size) {
    const llorch_ckpt_dump *d[2] = {ref, cand};
    size_t                  n[2] = {llorch_ckpt_dump_n_sequences(ref), llorch_ckpt_dump_n_sequences(cand)};
    for (int i = 0; i < 2; i++) {
        seqs[i] = n[i] > 0 ? llorch_cmp_sequence(opt, i == 0) : -1; /* a dump of one is its sequence */
        if (seqs[i] >= 0 && find_sequence(d[i], seqs[i]) == NULL) {
            llorch_set_error(err, err_size,
                             "%s holds no sequence %d (it holds %zu, ids %d to %d); choose one with --seq",
                             llorch_ckpt_dump_name(d[i]), seqs[i], n[i], llorch_ckpt_dump_sequence(d[i], 0)->seq,
                             llorch_ckpt_dump_sequence(d[i], n[i] - 1)->seq);
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (n[i] > 0 && seqs[i] < 0 && n[1 - i] == 0) {
            llorch_set_error(err, err_size,
                             "%s holds %zu sequences and %s one: choose the sequence to compare with --seq N",
                             llorch_ckpt_dump_name(d[i]), n[i], llorch_ckpt_dump_name(d[1 - i]));
            return -1;
        }
    }
    if ((seqs[0] < 0) != (seqs[1] < 0) && n[0] > 0 && n[1] > 0) {
        llorch_set_error(err, err_size, "one sequence of %s against every sequence of %s: give --seq for both",
                         llorch_ckpt_dump_name(d[seqs[0] < 0]), llorch_ckpt_dump_name(d[seqs[0] >= 0]));
        return -1;
    }
    return 0;
}

/* The token ids compared: the chosen sequence's, else all of the dump's. */
static const int32_t *compared_tokens(const llorch_ckpt_dump *d, int seq, size_t *n) {
    const struct llorch_ckpt_dump_sequence *s = seq >= 0 ? find_sequence(d, seq) : NULL;
    *n = s != NULL ? s->n_tokens : llorch_ckpt_dump_n_tokens(d);
    return s != NULL ? s->tokens : llorch_ckpt_dump_tokens(d);
}

/* Compares two token lists. Returns 0 if equal; 1 if they differ, with
 * the first difference in buf; 2 if one is a prefix of the other (a shorter
 * run of the same input), with a note in buf. */
static int token_difference(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand, const int seqs[2], char *buf,
                            size_t size) {
    size_t         n, m;
    const int32_t *a = compared_tokens(ref, seqs[0], &n), *b = compared_tokens(cand, seqs[1], &m);
    const char    *rn = llorch_ckpt_dump_name(ref), *cn = llorch_ckpt_dump_name(cand);
    for (size_t i = 0; i < n && i < m; i++) {
        if (a[i] != b[i]) {
            snprintf(buf, size, "token ids differ at position %zu: %d in the reference, %d in the candidate", i,
                     (int) a[i], (int) b[i]);
            return 1;
        }
    }
    if (n < m) {
        snprintf(buf, size,
                 "the reference %s ran on %zu tokens, the candidate %s on %zu whose first %zu are the "
                 "reference's: the candidate's positions %zu to %zu are not compared",
                 rn, n, cn, m, n, n, m - 1);
        return 2;
    }
    if (n > m) {
        snprintf(buf, size,
                 "the candidate %s ran on %zu tokens, the reference %s on %zu whose first %zu are the "
                 "candidate's: the reference's positions %zu to %zu are missing from the candidate",
                 cn, m, rn, n, m, m, n - 1);
        return 2;
    }
    return 0;
}

int llorch_cmp_check_tokens(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                            const int seqs[2], bool allow, char *err, size_t err_size) {
    char msg[1024];
    if (!llorch_ckpt_dump_has_tokens(ref) || !llorch_ckpt_dump_has_tokens(cand)) {
        llorch_cmp_warn(c, "token ids not checked: %s has none",
                        llorch_ckpt_dump_name(llorch_ckpt_dump_has_tokens(ref) ? cand : ref));
        return 0;
    }
    int diff = token_difference(ref, cand, seqs, msg, sizeof msg);
    if (diff == 0) {
        return 0;
    }
    if (diff == 2 || allow) {
        /* a prefix: the rows line up by position, and the positions only
         * one dump holds are counted (a candidate that lacks some is
         * incomplete, exit status 3, unless --allow-missing) */
        llorch_cmp_warn(c, "%s", msg);
        return 0;
    }
    llorch_set_error(err, err_size,
                     "%s (reference %s, candidate %s): they ran on different inputs; compare dumps of the same "
                     "tokens, or give --allow-token-mismatch to compare them anyway",
                     msg, llorch_ckpt_dump_name(ref), llorch_ckpt_dump_name(cand));
    return -1;
}

void llorch_cmp_note_incomplete(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *d, const char *role) {
    if (!llorch_ckpt_dump_complete(d)) {
        const char *status = llorch_ckpt_dump_status(d);
        llorch_cmp_warn(c, "the %s %s is incomplete (\"complete\": false, status: %s): comparing what it holds", role,
                        llorch_ckpt_dump_name(d), status ? status : "none");
    }
}

/* One warning for all rows: which and how many, and the first of them. */
void llorch_cmp_note_dtypes(struct llorch_ckpt_comparison *c) {
    size_t                        n = 0;
    const struct llorch_ckpt_row *first = NULL;
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].ref_dtype != c->rows[i].cand_dtype) {
            first = first ? first : &c->rows[i];
            n++;
        }
    }
    if (first) {
        llorch_cmp_warn(c,
                        "%zu checkpoint(s) differ in dtype, first %s (%s in the reference, %s in the "
                        "candidate); values are compared as doubles (see --preset f16)",
                        n, first->checkpoint, llorch_ckpt_dtype_name(first->ref_dtype),
                        llorch_ckpt_dtype_name(first->cand_dtype));
    }
}

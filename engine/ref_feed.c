/*
 * ref_feed.c - --feed REF_DUMP: the reference's residual stream, read and
 * checked before the run, and the manifest's "fed" object (ref_feed.h).
 */
#include "ref_feed.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference's model must be this one: same shape, same architecture
 * and, where both are known, the same fingerprint. */
static int check_model(const struct ref_feed *f, const char *path, const struct ref_model *m, const char *fingerprint,
                       char *err, size_t err_size) {
    const struct llorch_ckpt_model *rm = llorch_ckpt_dump_model(f->dump);
    if (rm->n_layer != m->hp.n_layer || rm->n_embd != m->hp.n_embd) {
        snprintf(err, err_size,
                 "error: --feed %s: the reference's model has %d layers of %d channels, this one %d of %d; feed a "
                 "dump of the same model",
                 path, rm->n_layer, rm->n_embd, m->hp.n_layer, m->hp.n_embd);
        return -1;
    }
    if (rm->architecture != NULL && strcmp(rm->architecture, m->hp.arch_name) != 0) {
        snprintf(err, err_size,
                 "error: --feed %s: the reference's architecture is %.40s, this model's %s; feed a dump of the same "
                 "model",
                 path, rm->architecture, m->hp.arch_name);
        return -1;
    }
    if (rm->fingerprint != NULL && fingerprint != NULL && strcmp(rm->fingerprint, fingerprint) != 0) {
        snprintf(err, err_size,
                 "error: --feed %s: the reference was made with another model (fingerprint %.40s..., this model's "
                 "%.40s...); feed a dump of %s",
                 path, rm->fingerprint, fingerprint, m->path);
        return -1;
    }
    return 0;
}

/* Sequence i of the reference: its tokens in position order. */
static int reference_tokens(struct ref_feed *f, const char *path, int i, char *err, size_t err_size) {
    if (llorch_ckpt_dump_n_sequences(f->dump) > 0) {
        const struct llorch_ckpt_dump_sequence *s = llorch_ckpt_dump_sequence(f->dump, (size_t) i);
        if (s == NULL || s->seq != i) {
            snprintf(err, err_size,
                     "error: --feed %s: the reference has no sequence %d in place %d; feed a dump of "
                     "the same --tokens lists",
                     path, i, i);
            return -1;
        }
        f->ref_tokens[i] = s->tokens;
        f->n_ref_tokens[i] = (int) s->n_tokens;
        return 0;
    }
    if (!llorch_ckpt_dump_has_tokens(f->dump)) {
        snprintf(err, err_size, "error: --feed %s: the reference holds no token ids; feed a dump with its tokens",
                 path);
        return -1;
    }
    f->ref_tokens[i] = llorch_ckpt_dump_tokens(f->dump);
    f->n_ref_tokens[i] = (int) llorch_ckpt_dump_n_tokens(f->dump);
    return 0;
}

/* The sequence's prompt is the start of the reference's tokens, and the
 * reference holds as many tokens as the run decodes. */
static int check_tokens(const struct ref_feed *f, const char *path, const struct ref_sequence *q, int i, int n_predict,
                        bool several, char *err, size_t err_size) {
    char which[32] = "";
    if (several) {
        snprintf(which, sizeof which, "sequence %d: ", i);
    }
    for (int p = 0; p < q->n_prompt; p++) {
        if (p >= f->n_ref_tokens[i] || f->ref_tokens[i][p] != q->tokens[p]) {
            snprintf(err, err_size,
                     "error: --feed %s: %stoken %d at position %d is not the reference's (%s); feed a dump of the "
                     "same tokens",
                     path, which, q->tokens[p], p, p < f->n_ref_tokens[i] ? "it has another" : "it ends before");
            return -1;
        }
    }
    if (q->n_prompt + n_predict > f->n_ref_tokens[i]) {
        snprintf(err, err_size,
                 "error: --feed %s: %s%d prompt + %d generated tokens, but the reference has %d; give -n %d or "
                 "feed a longer run",
                 path, which, q->n_prompt, n_predict, f->n_ref_tokens[i], f->n_ref_tokens[i] - q->n_prompt);
        return -1;
    }
    return 0;
}

static bool has_ffn_inp(const llorch_ckpt_dump *d) {
    for (size_t i = 0; i < llorch_ckpt_dump_n_entries(d); i++) {
        if (strcmp(llorch_ckpt_dump_entry(d, i)->checkpoint, "ffn_inp") == 0) {
            return true;
        }
    }
    return false;
}

/* Reads every row: each sequence, layer and residual, positions
 * 0..n_pos-1. */
static int read_rows(struct ref_feed *f, const char *path, char *err, size_t err_size) {
    char why[1024];
    int  seq_arg = llorch_ckpt_dump_n_sequences(f->dump) > 0 ? 0 : -1;
    for (int s = 0; s < f->n_seqs; s++) {
        for (int l = 0; l < f->n_layer; l++) {
            for (int w = 0; w < (f->ffn ? 2 : 1); w++) {
                float **rows = &f->rows[((size_t) s * f->n_layer + l) * 2 + w];
                *rows = malloc(((size_t) f->n_pos[s] * f->n_embd + 1) * sizeof(float));
                if (*rows == NULL) {
                    snprintf(err, err_size, "error: --feed %s: out of memory for the reference's rows", path);
                    return -1;
                }
                if (llorch_ckpt_dump_residual(f->dump, l, (enum llorch_ckpt_residual) w, seq_arg < 0 ? -1 : s, 0,
                                              f->n_pos[s], *rows, why, sizeof why) != 0) {
                    snprintf(err, err_size, "error: --feed: %s", why);
                    return -1;
                }
            }
        }
    }
    return 0;
}

static int make_fed_json(struct ref_feed *f, const char *path) {
    const char *producer = llorch_ckpt_dump_producer(f->dump);
    const char *fp = llorch_ckpt_dump_model(f->dump)->fingerprint;
    cJSON      *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "from", path);
    cJSON_AddStringToObject(o, "producer", producer != NULL ? producer : "unknown");
    if (fp != NULL) {
        cJSON_AddStringToObject(o, "fingerprint", fp);
    } else {
        cJSON_AddNullToObject(o, "fingerprint");
    }
    cJSON *at = cJSON_AddArrayToObject(o, "at");
    cJSON_AddItemToArray(at, cJSON_CreateString("embd"));
    if (f->n_layer > 1) {
        cJSON_AddItemToArray(at, cJSON_CreateString("l_out"));
    }
    if (f->ffn) {
        cJSON_AddItemToArray(at, cJSON_CreateString("ffn_inp"));
    }
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < f->n_layer; l++) {
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(l));
    }
    f->fed_json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return f->fed_json != NULL ? 0 : -1;
}

int ref_feed_open(struct ref_feed *f, const char *path, const struct ref_model *m, const char *fingerprint,
                  const struct ref_sequences *seqs, int n_predict, char *err, size_t err_size) {
    char why[1024];
    memset(f, 0, sizeof *f);
    f->dump = llorch_ckpt_dump_open(path, why, sizeof why);
    if (f->dump == NULL) {
        snprintf(err, err_size, "error: --feed: %s; give a dump directory (with manifest.json)", why);
        return -1;
    }
    f->n_layer = m->hp.n_layer;
    f->n_embd = m->hp.n_embd;
    f->n_seqs = seqs->n_seqs;
    size_t n_ref_seqs = llorch_ckpt_dump_n_sequences(f->dump);
    if (check_model(f, path, m, fingerprint, err, err_size) != 0) {
        return -1;
    }
    if ((n_ref_seqs > 0 || seqs->n_seqs > 1) && n_ref_seqs != (size_t) seqs->n_seqs) {
        snprintf(err, err_size,
                 "error: --feed %s: the reference decodes %zu sequence%s, this run %d; give as many --tokens lists "
                 "as the reference has sequences",
                 path, n_ref_seqs > 0 ? n_ref_seqs : 1, n_ref_seqs > 1 ? "s" : "", seqs->n_seqs);
        return -1;
    }
    f->rows = calloc((size_t) f->n_seqs * f->n_layer * 2, sizeof *f->rows);
    f->n_pos = calloc((size_t) f->n_seqs, sizeof *f->n_pos);
    f->ref_tokens = calloc((size_t) f->n_seqs, sizeof *f->ref_tokens);
    f->n_ref_tokens = calloc((size_t) f->n_seqs, sizeof *f->n_ref_tokens);
    if (f->rows == NULL || f->n_pos == NULL || f->ref_tokens == NULL || f->n_ref_tokens == NULL) {
        snprintf(err, err_size, "error: --feed %s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < f->n_seqs; i++) {
        const struct ref_sequence *q = &seqs->seqs[i];
        if (reference_tokens(f, path, i, err, err_size) != 0 ||
            check_tokens(f, path, q, i, n_predict, f->n_seqs > 1, err, err_size) != 0) {
            return -1;
        }
        f->n_pos[i] = q->n_prompt + n_predict;
    }
    f->ffn = has_ffn_inp(f->dump);
    if (read_rows(f, path, err, err_size) != 0 || make_fed_json(f, path) != 0) {
        if (f->fed_json == NULL && err[0] == '\0') {
            snprintf(err, err_size, "error: --feed %s: out of memory", path);
        }
        return -1;
    }
    return 0;
}

void ref_feed_free(struct ref_feed *f) {
    for (size_t i = 0; f->rows != NULL && i < (size_t) f->n_seqs * f->n_layer * 2; i++) {
        free(f->rows[i]);
    }
    free(f->rows);
    free(f->n_pos);
    free(f->ref_tokens);
    free(f->n_ref_tokens);
    cJSON_free(f->fed_json);
    llorch_ckpt_dump_free(f->dump);
    memset(f, 0, sizeof *f);
}

const float *ref_feed_row(const struct ref_feed *f, enum llorch_ckpt_residual where, int layer, int seq, int pos) {
    const float *rows = f->rows[((size_t) seq * f->n_layer + layer) * 2 + (size_t) where];
    return &rows[(size_t) pos * f->n_embd];
}

int ref_feed_take_tokens(const struct ref_feed *f, struct ref_sequences *s, const struct ref_batch *b) {
    int differ = 0;
    for (int t = 0; t < b->n_tokens; t++) {
        struct ref_sequence *q = &s->seqs[b->seq[t]];
        int                  next = q->n_tokens;
        if (s->n_generate > 0 && b->pos[t] == next - 1 && next < f->n_ref_tokens[b->seq[t]]) {
            int32_t want = f->ref_tokens[b->seq[t]][next];
            differ += q->next != want;
            q->next = want;
        }
    }
    return differ;
}

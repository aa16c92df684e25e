/*
 * test_engine_dump.c - compares two llorch-ref-engine dumps.
 *
 *   test_engine_dump same-by-position ONE_STEP_DUMP STEPWISE_DUMP
 *       Every value of the stepwise dump (-ub, -n) equals, bit for bit, the
 *       value at the same absolute position in the one-step dump of the same
 *       tokens, and together the steps cover every position. The engine has
 *       a KV cache, so how the tokens are split into steps must not matter.
 *
 *   test_engine_dump fault BASE_DUMP FAULTY_DUMP KIND LAYER
 *       A --fault KIND:LAYER run changes exactly the checkpoints downstream
 *       of the fault: everything upstream is bit-identical, everything
 *       downstream differs (see expect() for each fault).
 *
 * Both read manifest.json (docs/FORMAT.md) with cJSON and the .npy files
 * with the tests' own reader.
 */
#include "test_engine_npy.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- manifests --------------------------------------------------------- */

struct entry {
    char file[128];
    char checkpoint[32];
    char axis0[16]; /* "token", "key" or "head" */
    int  layer, step, pos_start, n_pos, n_key;
};

struct dump {
    const char   *dir;
    struct entry *entries;
    int           n;
};

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t) size + 1);
    if (text != NULL && fread(text, 1, (size_t) size, f) == (size_t) size) {
        text[size] = '\0';
    } else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

static int int_field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static void string_field(char *dst, size_t size, const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static void read_entry(struct entry *e, const cJSON *f) {
    string_field(e->file, sizeof e->file, f, "file");
    string_field(e->checkpoint, sizeof e->checkpoint, f, "checkpoint");
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(f, "axes");
    const cJSON *first = cJSON_GetArrayItem(axes, 0);
    snprintf(e->axis0, sizeof e->axis0, "%s", cJSON_IsString(first) ? first->valuestring : "");
    e->layer = int_field(f, "layer");
    e->step = int_field(f, "step");
    e->pos_start = int_field(f, "pos_start");
    e->n_pos = int_field(f, "n_pos");
    e->n_key = int_field(f, "n_key");
}

static int load_dump(struct dump *d, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char        *text = read_text(path);
    cJSON       *root = text != NULL ? cJSON_Parse(text) : NULL;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    free(text);
    if (!cJSON_IsArray(files)) {
        fprintf(stderr, "%s: no readable manifest with a files list\n", path);
        cJSON_Delete(root);
        return -1;
    }
    d->dir = dir;
    d->n = cJSON_GetArraySize(files);
    d->entries = calloc((size_t) d->n + 1, sizeof *d->entries);
    for (int i = 0; i < d->n; i++) {
        read_entry(&d->entries[i], cJSON_GetArrayItem(files, i));
    }
    cJSON_Delete(root);
    return 0;
}

static int load_array(const struct dump *d, const struct entry *e, struct npy *a) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", d->dir, e->file);
    return npy_read(path, a);
}

static const struct entry *find_same(const struct dump *d, const struct entry *e) {
    for (int i = 0; i < d->n; i++) {
        if (strcmp(d->entries[i].checkpoint, e->checkpoint) == 0 && d->entries[i].layer == e->layer &&
            d->entries[i].step == e->step) {
            return &d->entries[i];
        }
    }
    return NULL;
}

/* ---- same-by-position -------------------------------------------------- */

/* The one-step dump's file for this checkpoint and layer (step 0). */
static const struct entry *find_one_step(const struct dump *d, const struct entry *e) {
    struct entry key = *e;
    key.step = 0;
    return find_same(d, &key);
}

static bool all_zero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (x[i] != 0.0f) {
            return false;
        }
    }
    return true;
}

/* (T, ...) rows of token positions. Returns mismatching rows. */
static int compare_token_rows(const struct entry *ea, const struct npy *a, const struct entry *eb,
                              const struct npy *b) {
    size_t row = b->count / (size_t) b->shape[0];
    int    bad = 0;
    for (int t = 0; t < eb->n_pos; t++) {
        int ta = eb->pos_start + t - ea->pos_start;
        bad += ta < 0 || ta >= ea->n_pos ||
               memcmp((float *) a->data + (size_t) ta * row, (float *) b->data + (size_t) t * row, row * 4) != 0;
    }
    return bad;
}

/* (K, ...) rows of key positions 0..K-1. */
static int compare_key_rows(const struct entry *ea, const struct npy *a, const struct entry *eb, const struct npy *b) {
    size_t row = b->count / (size_t) b->shape[0];
    if (eb->n_key > ea->n_key) {
        return 1;
    }
    return memcmp(a->data, b->data, (size_t) eb->n_key * row * 4) != 0;
}

/* (n_head, T, K): the stepwise row has fewer key columns; the one-step
 * row's extra columns are masked later keys and must be exactly 0. */
static int compare_score_rows(const struct entry *ea, const struct npy *a, const struct entry *eb,
                              const struct npy *b) {
    int bad = 0;
    for (int h = 0; h < (int) b->shape[0]; h++) {
        for (int t = 0; t < eb->n_pos; t++) {
            int          ta = eb->pos_start + t - ea->pos_start;
            const float *ra = (float *) a->data + ((size_t) h * ea->n_pos + ta) * ea->n_key;
            const float *rb = (float *) b->data + ((size_t) h * eb->n_pos + t) * eb->n_key;
            bad += memcmp(ra, rb, (size_t) eb->n_key * 4) != 0 ||
                   !all_zero(ra + eb->n_key, (size_t) (ea->n_key - eb->n_key));
        }
    }
    return bad;
}

static int compare_by_position(const struct dump *one, const struct dump *steps, const struct entry *eb) {
    const struct entry *ea = find_one_step(one, eb);
    struct npy          a, b;
    if (ea == NULL || load_array(one, ea, &a) != 0) {
        fprintf(stderr, "%s: no one-step counterpart\n", eb->file);
        return 1;
    }
    if (load_array(steps, eb, &b) != 0) {
        npy_free(&a);
        return 1;
    }
    int bad = strcmp(eb->axis0, "key") == 0    ? compare_key_rows(ea, &a, eb, &b)
              : strcmp(eb->axis0, "head") == 0 ? compare_score_rows(ea, &a, eb, &b)
                                               : compare_token_rows(ea, &a, eb, &b);
    if (bad) {
        fprintf(stderr, "%s differs from %s at %d rows\n", eb->file, ea->file, bad);
    }
    npy_free(&a);
    npy_free(&b);
    return bad != 0;
}

/* Every position of every one-step tensor is covered by the steps. */
static int check_coverage(const struct dump *one, const struct dump *steps) {
    int bad = 0;
    for (int i = 0; i < one->n; i++) {
        const struct entry *ea = &one->entries[i];
        int                 covered = 0, max_key = 0;
        for (int j = 0; j < steps->n; j++) {
            const struct entry *eb = &steps->entries[j];
            if (strcmp(eb->checkpoint, ea->checkpoint) == 0 && eb->layer == ea->layer) {
                covered += eb->n_pos;
                max_key = eb->n_key > max_key ? eb->n_key : max_key;
            }
        }
        if (covered != ea->n_pos || max_key != ea->n_key) {
            fprintf(stderr, "%s: the steps cover %d of %d positions, %d of %d keys\n", ea->file, covered, ea->n_pos,
                    max_key, ea->n_key);
            bad++;
        }
    }
    return bad;
}

static int same_by_position(const struct dump *one, const struct dump *steps) {
    int bad = check_coverage(one, steps), n_steps = 0;
    for (int i = 0; i < steps->n; i++) {
        bad += compare_by_position(one, steps, &steps->entries[i]);
        n_steps = steps->entries[i].step + 1 > n_steps ? steps->entries[i].step + 1 : n_steps;
    }
    printf("%d stepwise files in %d steps against %d one-step files: %d differ\n", steps->n, n_steps, one->n, bad);
    return bad == 0 ? 0 : 1;
}

/* ---- fault ------------------------------------------------------------- */

enum expectation {
    SAME,
    DIFFER,
    CLOSE
};

static bool is_one_of(const char *name, const char *const *list) {
    for (; *list != NULL; list++) {
        if (strcmp(name, *list) == 0) {
            return true;
        }
    }
    return false;
}

/* What a fault in layer `fault_layer` does to checkpoint `name` of `layer`.
 * Upstream: SAME. Downstream: DIFFER. RoPE with every position shifted by
 * one rotates q and k alike, so q.k, and everything after it, is unchanged
 * but for float rounding: CLOSE. */
static enum expectation expect(const char *fault, int fault_layer, const char *name, int layer) {
    static const char *const swap_heads_same[] = {"attn_norm", "Kcur",    "Vcur", "Kcur_pre_rope",
                                                  "cache_k",   "cache_v", NULL};
    static const char *const rope_same[] = {"attn_norm", "Qcur_pre_rope", "Kcur_pre_rope", "Vcur", "cache_v", NULL};
    static const char *const rope_differ[] = {"Qcur", "Kcur", "cache_k", NULL};
    static const char *const bias_same[] = {"attn_norm", "Qcur",    "Kcur",        "Vcur",
                                            "cache_k",   "cache_v", "kq_soft_max", NULL};
    bool                     rope = strcmp(fault, "rope-offset") == 0;
    if (strcmp(name, "embd") == 0 || (layer >= 0 && layer < fault_layer)) {
        return SAME;
    }
    if (layer != fault_layer) { /* later layers, result_norm, logits */
        return rope ? CLOSE : DIFFER;
    }
    if (strcmp(fault, "swap-heads") == 0) {
        return is_one_of(name, swap_heads_same) ? SAME : DIFFER;
    }
    if (rope) {
        return is_one_of(name, rope_same) ? SAME : is_one_of(name, rope_differ) ? DIFFER : CLOSE;
    }
    if (strcmp(fault, "no-attn-bias") == 0) {
        return is_one_of(name, bias_same) ? SAME : DIFFER;
    }
    return DIFFER; /* eps: the layer's first checkpoint, attn_norm, changes */
}

/* Largest |a - b| relative to the largest |a|. */
static double relative_difference(const struct npy *a, const struct npy *b) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < a->count; i++) {
        float x = ((float *) a->data)[i], y = ((float *) b->data)[i];
        diff = fmax(diff, fabs((double) x - y));
        scale = fmax(scale, fabs((double) x));
    }
    return diff / (scale > 0.0 ? scale : 1.0);
}

static int check_fault_entry(const struct dump *base, const struct dump *faulty, const struct entry *e,
                             const char *fault, int fault_layer) {
    static const char *const names[] = {"same", "different", "equal up to rounding"};
    const struct entry      *ef = find_same(faulty, e);
    struct npy               a, b;
    if (ef == NULL || load_array(base, e, &a) != 0) {
        fprintf(stderr, "%s: missing in the faulty dump\n", e->file);
        return 1;
    }
    if (load_array(faulty, ef, &b) != 0) {
        npy_free(&a);
        return 1;
    }
    enum expectation want = expect(fault, fault_layer, e->checkpoint, e->layer);
    bool             same = a.count == b.count && memcmp(a.data, b.data, a.count * 4) == 0;
    double           rel = a.count == b.count ? relative_difference(&a, &b) : INFINITY;
    bool             ok = want == SAME ? same : want == DIFFER ? !same && rel > 1e-4 : rel <= 1e-4;
    if (!ok) {
        fprintf(stderr, "%s: expected %s, relative difference %.3g\n", e->file, names[want], rel);
    }
    npy_free(&a);
    npy_free(&b);
    return ok ? 0 : 1;
}

static int check_fault(const struct dump *base, const struct dump *faulty, const char *fault, int layer) {
    int bad = base->n != faulty->n;
    if (bad) {
        fprintf(stderr, "the dumps hold %d and %d files\n", base->n, faulty->n);
    }
    for (int i = 0; i < base->n; i++) {
        bad += check_fault_entry(base, faulty, &base->entries[i], fault, layer);
    }
    printf("fault %s:%d: %d files checked, %d not as expected\n", fault, layer, base->n, bad);
    return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    struct dump a = {0}, b = {0};
    bool        same_mode = argc == 4 && strcmp(argv[1], "same-by-position") == 0;
    bool        fault_mode = argc == 6 && strcmp(argv[1], "fault") == 0;
    if (!same_mode && !fault_mode) {
        fprintf(stderr, "usage: test_engine_dump same-by-position ONE_STEP STEPWISE\n"
                        "       test_engine_dump fault BASE FAULTY KIND LAYER\n");
        return 2;
    }
    if (load_dump(&a, argv[2]) != 0 || load_dump(&b, argv[3]) != 0) {
        return 1;
    }
    int rc = same_mode ? same_by_position(&a, &b) : check_fault(&a, &b, argv[4], atoi(argv[5]));
    free(a.entries);
    free(b.entries);
    return rc;
}

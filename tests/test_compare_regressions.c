/*
 * test_compare_regressions.c - regression tests of lib/compare, on dumps
 * built in memory (llorch_ckpt_dump_parse + llorch_ckpt_dump_add_file):
 *   the table report prints the comparison's warnings, once;
 *   a tolerance naming an unknown checkpoint is an error that lists the
 *   known ones;
 *   the latest file of a (checkpoint, layer) is the one of the highest step
 *   (then the last in the manifest) for every alignment, whatever order the
 *   manifest lists the steps in;
 *   a row's profile by position, step and channel (issue 11), and the
 *   manifest's fields flattened for the HTML report's settings.
 */
#define _POSIX_C_SOURCE 200809L

#include "llorch_compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond) check_((cond), #cond, __FILE__, __LINE__)

static int check_(int ok, const char *what, const char *file, int line) {
    if (!ok) {
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
        failures++;
    }
    return ok;
}

/* ---- in-memory dumps ------------------------------------------------------------ */

/* One float32 file of a dump; axes are a JSON list without brackets. */
struct file_spec {
    const char  *file, *checkpoint, *graph_name;
    int          layer, step, pos_start, n_pos;
    int          n_dims;
    int          shape[3];
    const char  *axes;
    const float *data;
};

struct dump_spec {
    const char             *tokens; /* JSON list, without brackets */
    bool                    complete;
    const struct file_spec *files;
    size_t                  n_files;
};

/* A .npy file (version 1.0, <f4, C order) of the spec's shape and data. */
static size_t make_npy(unsigned char *out, size_t cap, const struct file_spec *f) {
    char   dict[128], shape[64] = "";
    size_t count = 1, used = 0;
    for (int i = 0; i < f->n_dims; i++) {
        used += (size_t) snprintf(shape + used, sizeof shape - used, "%d, ", f->shape[i]);
        count *= (size_t) f->shape[i];
    }
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
    size_t len = strlen(dict), header = len + 1;
    header += (64 - (10 + header) % 64) % 64;
    size_t bytes = count * sizeof(float);
    if (10 + header + bytes > cap) {
        return 0;
    }
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char) header;
    out[9] = (unsigned char) (header >> 8);
    memset(out + 10, ' ', header);
    memcpy(out + 10, dict, len);
    out[10 + header - 1] = '\n';
    memcpy(out + 10 + header, f->data, bytes);
    return 10 + header + bytes;
}

static void append_entry(char *buf, size_t size, const struct file_spec *f, bool last) {
    char   shape[64] = "", graph[128] = "";
    size_t used = 0;
    for (int i = 0; i < f->n_dims; i++) {
        used += (size_t) snprintf(shape + used, sizeof shape - used, "%s%d", i ? ", " : "", f->shape[i]);
    }
    if (f->graph_name) {
        snprintf(graph, sizeof graph, " \"graph_name\": \"%s\",", f->graph_name);
    }
    used = strlen(buf);
    snprintf(buf + used, size - used,
             " {\"file\": \"%s\", \"checkpoint\": \"%s\",%s \"layer\": %d, \"step\": %d, \"pos_start\": %d,"
             " \"n_pos\": %d, \"shape\": [%s], \"dtype\": \"float32\", \"axes\": [%s]}%s",
             f->file, f->checkpoint, graph, f->layer, f->step, f->pos_start, f->n_pos, shape, f->axes, last ? "" : ",");
}

static llorch_ckpt_dump *make_dump(const struct dump_spec *s, const char *name, char *err, size_t err_size) {
    char          manifest[8192];
    unsigned char npy[1024];
    snprintf(manifest, sizeof manifest,
             "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1, \"complete\": %s,"
             " \"status\": \"%s\", \"model\": {\"architecture\": \"gpt2\", \"n_layer\": 1, \"n_embd\": 1},"
             " \"tokens\": [%s], \"files\": [",
             s->complete ? "true" : "false", s->complete ? "ok" : "interrupted", s->tokens);
    for (size_t i = 0; i < s->n_files; i++) {
        append_entry(manifest, sizeof manifest, &s->files[i], i + 1 == s->n_files);
    }
    strncat(manifest, "]}", sizeof manifest - strlen(manifest) - 1);
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(manifest, strlen(manifest), name, err, err_size);
    for (size_t i = 0; d && i < s->n_files; i++) {
        size_t n = make_npy(npy, sizeof npy, &s->files[i]);
        if (n == 0 || llorch_ckpt_dump_add_file(d, s->files[i].file, npy, n, err, err_size) != 0) {
            llorch_ckpt_dump_free(d);
            d = NULL;
        }
    }
    return d;
}

/* The table report of ref against cand, as a malloc'd string (NULL when the
 * dumps cannot be compared). */
static char *table_of(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand, const llorch_ckpt_compare_options *o) {
    char                    err[1024], *text = NULL;
    size_t                  size = 0;
    llorch_ckpt_comparison *c = llorch_ckpt_compare(ref, cand, o, err, sizeof err);
    if (!CHECK(c != NULL)) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    FILE                          *f = open_memstream(&text, &size);
    struct llorch_ckpt_report_info info = {"ref", "cand", ref, cand, o, NULL, NULL};
    CHECK(f && llorch_ckpt_report_table(f, c, &info) == 0);
    if (f) {
        fclose(f);
    }
    llorch_ckpt_comparison_free(c);
    return text;
}

static size_t count_of(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

/* ---- bug 6: the table report prints the warnings ------------------------------- */

static const float            ONE_ROW[2] = {1, 2};
static const struct file_spec NORM_FILE[] = {
    {"a.npy", "attn_norm", NULL, 0, 0, 0, 2, 2, {2, 1}, "\"token\", \"channel\"", ONE_ROW},
};

static void test_table_warnings(void) {
    char                         err[1024];
    struct dump_spec             rs = {"1, 2", true, NORM_FILE, 1}, cs = {"1, 3", false, NORM_FILE, 1};
    llorch_ckpt_dump            *ref = make_dump(&rs, "ref", err, sizeof err);
    llorch_ckpt_dump            *cand = make_dump(&cs, "cand", err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    llorch_ckpt_compare_options_allow_token_mismatch(o, true);
    char *table = ref && cand && o ? table_of(ref, cand, o) : NULL;
    CHECK(table != NULL);
    if (table) {
        const char *tokens = "warning: token ids differ at position 1: 2 in the reference, 3 in the candidate\n";
        const char *incomplete = "warning: the candidate cand is incomplete (\"complete\": false, "
                                 "status: interrupted): comparing what it holds\n";
        if (!CHECK(count_of(table, tokens) == 1) || !CHECK(count_of(table, incomplete) == 1)) {
            fprintf(stderr, "  the table:\n%s", table);
        }
        /* Before the summary, which with the verdict closes the report. */
        const char *summary = strstr(table, "1 checkpoint row: 1 passed");
        CHECK(summary && strstr(table, tokens) < summary);
    }
    free(table);
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(ref);
    llorch_ckpt_dump_free(cand);
}

/* ---- bug 7: a tolerance for an unknown checkpoint ------------------------------- */

static void test_unknown_checkpoint(void) {
    char                         err[1024] = "";
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    CHECK(llorch_ckpt_compare_options_tolerance(o, "Qcurr:atol=1e-3", err, sizeof err) == -1);
    CHECK(strstr(err, "unknown checkpoint 'Qcurr'") != NULL);
    /* Every known name is listed, "graph" included, on one line. */
    char known[1024] = "(";
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        strcat(known, llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->name);
        strcat(known, k + 1 < LLORCH_CKPT_KIND_COUNT ? ", " : ")");
    }
    CHECK(strstr(known, " graph)") != NULL);
    if (!CHECK(strstr(err, known) != NULL)) {
        fprintf(stderr, "  the message: %s\n  lacks: %s\n", err, known);
    }
    CHECK(strchr(err, '\n') == NULL);
    /* Refused: it set nothing. Known names, "graph" too, are taken. */
    CHECK(llorch_ckpt_compare_options_get(o, "Qcur").atol == 1e-4);
    CHECK(llorch_ckpt_compare_options_get(o, NULL).atol == 1e-4);
    CHECK(llorch_ckpt_compare_options_tolerance(o, "Qcur:atol=1e-3", err, sizeof err) == 0);
    CHECK(llorch_ckpt_compare_options_tolerance(o, "graph:rtol=0.5", err, sizeof err) == 0);
    CHECK(llorch_ckpt_compare_options_get(o, "Qcur").atol == 1e-3);
    CHECK(llorch_ckpt_compare_options_get(o, "graph").rtol == 0.5);
    CHECK(llorch_ckpt_compare_options_get(o, "Kcur").atol == 1e-4 &&
          llorch_ckpt_compare_options_get(o, "Kcur").rtol == 1e-3);
    /* A small buffer gets the start of the message, still terminated. */
    char small[24];
    CHECK(llorch_ckpt_compare_options_tolerance(o, "qcur:rtol=1", small, sizeof small) == -1);
    CHECK(strlen(small) == sizeof small - 1 && strncmp(small, "unknown checkpoint", 18) == 0);
    llorch_ckpt_compare_options_free(o);
}

/* ---- bug 3: the latest file, by step ------------------------------------------- */

/* The reference: one step. The candidate: two, the later listed first, and
 * the earlier one stale (what a step 1 recomputed); by step, the stale
 * values are superseded for the token, key and element alignments alike. */
static const float            REF_KEYS[2] = {10, 20}, REF_GRAPH[2] = {5, 6};
static const float            STALE[2] = {99, 99};
static const struct file_spec REF_FILES[] = {
    {"a.npy", "attn_norm", NULL, 0, 0, 0, 2, 2, {2, 1}, "\"token\", \"channel\"", ONE_ROW},
    {"k.npy", "cache_k", NULL, 0, 0, 0, 2, 2, {2, 1}, "\"key\", \"channel\"", REF_KEYS},
    {"g.npy", "graph", "g-0", -1, 0, 0, 2, 1, {2}, "\"channel\"", REF_GRAPH},
};
static const struct file_spec CAND_FILES[] = {
    {"a1.npy", "attn_norm", NULL, 0, 1, 0, 2, 2, {2, 1}, "\"token\", \"channel\"", ONE_ROW},
    {"k1.npy", "cache_k", NULL, 0, 1, 0, 2, 2, {2, 1}, "\"key\", \"channel\"", REF_KEYS},
    {"g1.npy", "graph", "g-0", -1, 1, 0, 2, 1, {2}, "\"channel\"", REF_GRAPH},
    {"a0.npy", "attn_norm", NULL, 0, 0, 0, 1, 2, {1, 1}, "\"token\", \"channel\"", STALE},
    {"k0.npy", "cache_k", NULL, 0, 0, 0, 1, 2, {1, 1}, "\"key\", \"channel\"", STALE},
    {"g0.npy", "graph", "g-0", -1, 0, 0, 1, 1, {2}, "\"channel\"", STALE},
};

static void check_latest_rows(const llorch_ckpt_comparison *c) {
    static const char *names[] = {"attn_norm", "cache_k", "graph"};
    CHECK(llorch_ckpt_comparison_n_rows(c) == 3);
    for (size_t i = 0; i < 3 && i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        CHECK(strcmp(r->checkpoint, names[i]) == 0);
        if (!CHECK(r->status == LLORCH_CKPT_STATUS_PASS && r->metrics.max_abs == 0 && r->metrics.n == 2)) {
            fprintf(stderr, "  %s: %s, max_abs %g over %lld (the stale step was used)\n", r->checkpoint,
                    llorch_ckpt_status_name(r->status), r->metrics.max_abs, (long long) r->metrics.n);
        }
    }
}

static void test_latest_by_step(void) {
    char              err[1024];
    struct dump_spec  rs = {"1, 2", true, REF_FILES, 3}, cs = {"1, 2", true, CAND_FILES, 6};
    llorch_ckpt_dump *ref = make_dump(&rs, "ref", err, sizeof err);
    CHECK(ref != NULL);
    llorch_ckpt_dump *cand = make_dump(&cs, "cand", err, sizeof err);
    if (!cand) {
        /* docs/FORMAT.md promises steps in order: a reader that refuses
         * this manifest leaves compare nothing to get wrong. */
        fprintf(stderr, "note: the reader refuses steps out of order: %s\n", err);
    }
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    for (int swap = 0; ref && cand && swap < 2; swap++) {
        llorch_ckpt_comparison *c = swap ? llorch_ckpt_compare(cand, ref, o, err, sizeof err)
                                         : llorch_ckpt_compare(ref, cand, o, err, sizeof err);
        if (CHECK(c != NULL)) {
            check_latest_rows(c);
        }
        llorch_ckpt_comparison_free(c);
    }
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(ref);
    llorch_ckpt_dump_free(cand);
}

/* ---- issue 11: profiles and fields --------------------------------------------- */

/* Token 2 is off in the candidate, which made it in two steps. */
static const float            PROFILE_REF[6] = {1, 2, 3, 4, 5, 6};
static const float            PROFILE_STEP0[4] = {1, 2, 3, 4}, PROFILE_STEP1[2] = {5, 9};
static const struct file_spec PROFILE_REF_FILES[] = {
    {"a.npy", "attn_norm", NULL, 0, 0, 0, 3, 2, {3, 2}, "\"token\", \"channel\"", PROFILE_REF},
};
static const struct file_spec PROFILE_CAND_FILES[] = {
    {"a0.npy", "attn_norm", NULL, 0, 0, 0, 2, 2, {2, 2}, "\"token\", \"channel\"", PROFILE_STEP0},
    {"a1.npy", "attn_norm", NULL, 0, 1, 2, 1, 2, {1, 2}, "\"token\", \"channel\"", PROFILE_STEP1},
};

/* The points' coordinates and statuses ('P', 'F') as a string, e.g. "0P 1F". */
static void profile_text(char *buf, size_t size, const llorch_ckpt_profile *p) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n_points && used < size; i++) {
        const struct llorch_ckpt_profile_point *pt = &p->points[i];
        used += (size_t) snprintf(buf + used, size - used, "%s%lld%c", i ? " " : "", (long long) pt->coord,
                                  pt->status == LLORCH_CKPT_STATUS_PASS ? 'P' : 'F');
    }
}

static void check_profile(const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                          const char *by, const char *want) {
    char                 err[1024], got[256];
    llorch_ckpt_profile *p = llorch_ckpt_profile_row(c, ref, cand, 0, by, err, sizeof err);
    if (!CHECK(p != NULL)) {
        fprintf(stderr, "  by %s: %s\n", by, err);
        return;
    }
    profile_text(got, sizeof got, p);
    if (!CHECK(strcmp(got, want) == 0 && strcmp(p->by, by) == 0)) {
        fprintf(stderr, "  by %s: %s, expected %s\n", by, got, want);
    }
    llorch_ckpt_profile_free(p);
}

static void test_profile(void) {
    char              err[1024] = "";
    struct dump_spec  rs = {"1, 2, 3", true, PROFILE_REF_FILES, 1}, cs = {"1, 2, 3", true, PROFILE_CAND_FILES, 2};
    llorch_ckpt_dump *ref = make_dump(&rs, "ref", err, sizeof err);
    llorch_ckpt_dump *cand = make_dump(&cs, "cand", err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    llorch_ckpt_comparison      *c = ref && cand ? llorch_ckpt_compare(ref, cand, o, err, sizeof err) : NULL;
    if (!CHECK(c != NULL && llorch_ckpt_comparison_n_rows(c) == 1)) {
        fprintf(stderr, "  %s\n", err);
    } else {
        check_profile(c, ref, cand, "token", "0P 1P 2F");
        check_profile(c, ref, cand, "step", "0P 1F"); /* the candidate's steps: the reference has one */
        check_profile(c, ref, cand, "channel", "0P 1F");
        llorch_ckpt_profile *p = llorch_ckpt_profile_row(c, ref, cand, 0, "token", err, sizeof err);
        /* token 2: d = (0, 3), MSE 4.5 over the variance 0.25 of (5, 6) */
        CHECK(p && p->n_points == 3 && p->points[2].metrics.nmse == 18 && p->points[2].metrics.max_abs == 3);
        llorch_ckpt_profile_free(p);
        CHECK(llorch_ckpt_profile_row(c, ref, cand, 0, "head", err, sizeof err) == NULL);
        CHECK(strstr(err, "no axis 'head'") != NULL && strchr(err, '\n') == NULL);
        CHECK(llorch_ckpt_profile_row(c, ref, cand, 1, "token", err, sizeof err) == NULL);
        CHECK(strstr(err, "no row 1") != NULL);
    }
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(ref);
    llorch_ckpt_dump_free(cand);
}

static void add_field(void *ctx, const char *key, const char *value) {
    char  *buf = ctx;
    size_t used = strlen(buf);
    snprintf(buf + used, 1024 - used, "%s=%s\n", key, value);
}

static void test_fields(void) {
    static const char manifest[] =
        "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1, \"complete\": true,"
        " \"model\": {\"architecture\": \"gpt2\", \"n_layer\": 1, \"n_embd\": 1}, \"prompt\": \"<a & b>\","
        " \"tokens\": [1], \"settings\": {\"type_k\": \"f16\", \"engine\": {\"gelu\": \"tanh\"}, \"list\": [1, 2]},"
        " \"llama_cpp\": {\"commit\": \"80fb\", \"patched\": null}, \"files\": [], \"missing\": []}";
    char              err[1024], got[1024] = "";
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(manifest, strlen(manifest), "fields", err, sizeof err);
    if (!CHECK(d != NULL)) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    const char *want =
        "format=llorch-checkpoint-dump\nformat_version=1\ncomplete=true\nmodel.architecture=gpt2\n"
        "model.n_layer=1\nmodel.n_embd=1\nprompt=<a & b>\nsettings.type_k=f16\n"
        "settings.engine.gelu=tanh\nsettings.list=[1,2]\nllama_cpp.commit=80fb\nllama_cpp.patched=null\n";
    CHECK(llorch_ckpt_dump_fields(d, add_field, got) == 12);
    if (!CHECK(strcmp(got, want) == 0)) {
        fprintf(stderr, "  fields:\n%s  expected:\n%s", got, want);
    }
    llorch_ckpt_dump_free(d);
}

int main(void) {
    test_table_warnings();
    test_unknown_checkpoint();
    test_latest_by_step();
    test_profile();
    test_fields();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}

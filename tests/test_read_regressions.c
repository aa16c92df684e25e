/*
 * test_read_regressions.c - regression tests of the readers (lib/read),
 * on dumps written by the library's own writer:
 *
 *   test_read_regressions architecture DIR
 *       a dump written without a model architecture (the writer allows it)
 *       opens, reports the architecture as absent, and compares with itself;
 *   test_read_regressions oom DIR
 *       the n-th allocation fails, for n = 1, 2, ... until none is left,
 *       while a dump is opened and every entry loaded: each call either
 *       succeeds with the right values or fails with a one-line message
 *       naming the file (never a bare -1 / NULL, never a crash or a leak);
 *       so does asking for an entry past the last.
 *
 * DIR must not exist or be empty. The executable is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/read.cmake), so the
 * allocations of the library's code come through fail_alloc() below.
 * cJSON and libdeflate are shared libraries: their allocations do not.
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "llorch_checkpoint.h"
#include "llorch_compare.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- allocation failures ------------------------------------------------- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static long fail_countdown; /* > 0: the countdown-th allocation fails */
static bool fail_injected;  /* that allocation has happened */

static void fail_arm(long n) {
    fail_countdown = n;
    fail_injected = false;
}

static void fail_disarm(void) {
    fail_countdown = 0;
}

static bool fail_alloc(void) {
    if (fail_countdown > 0 && --fail_countdown == 0) {
        fail_injected = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t size) {
    return fail_alloc() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size) {
    return fail_alloc() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size) {
    return fail_alloc() ? NULL : __real_realloc(p, size);
}

/* ---- the dumps ----------------------------------------------------------- */

#define N_LAYER  2
#define N_EMBD   4
#define N_TOKENS 3

static const int32_t tokens[N_TOKENS] = {1, 15043, 2};

/* A known value per tensor and element. */
static float value(int tensor, int i) {
    return (float) (tensor * 100 + i) * 0.25f - 3.0f;
}

/* Writes a dump of one attn_norm per layer and the logits, in the npy form. */
static void write_dump(const char *dir, const char *architecture) {
    char                              err[1024];
    struct llorch_ckpt_writer_options opt = {.form = LLORCH_CKPT_FORM_NPY};
    llorch_ckpt_writer               *w = llorch_ckpt_writer_open(dir, &opt, err, sizeof err);
    CHECK(w != NULL, "%s", err);
    float data[N_LAYER + 1][N_TOKENS * N_EMBD];
    for (int t = 0; t <= N_LAYER; t++) {
        for (int i = 0; i < N_TOKENS * N_EMBD; i++) {
            data[t][i] = value(t, i);
        }
        struct llorch_ckpt_tensor x = {
            .kind = t < N_LAYER ? LLORCH_CKPT_ATTN_NORM : LLORCH_CKPT_LOGITS,
            .layer = t < N_LAYER ? t : -1,
            .n_pos = N_TOKENS,
            .n_dims = 2,
            .shape = {N_TOKENS, N_EMBD},
            .dtype = LLORCH_CKPT_DTYPE_F32,
            .data = data[t],
        };
        CHECK(llorch_ckpt_writer_write(w, &x) == 0, "%s", llorch_ckpt_writer_error(w));
    }
    struct llorch_ckpt_run run = {
        .producer = "test_read_regressions",
        .model_size = -1,
        .architecture = architecture,
        .n_layer = N_LAYER,
        .n_embd = N_EMBD,
        .n_head = 1,
        .n_head_kv = 1,
        .n_vocab = 32000,
        .tokens = tokens,
        .n_tokens = N_TOKENS,
    };
    CHECK(llorch_ckpt_writer_set_run(w, &run) == 0, "%s", llorch_ckpt_writer_error(w));
    CHECK(llorch_ckpt_writer_finish(w, true, "ok") == 0, "%s", llorch_ckpt_writer_error(w));
    CHECK(llorch_ckpt_writer_files(w) == N_LAYER + 1, "%zu files", llorch_ckpt_writer_files(w));
    llorch_ckpt_writer_free(w);
}

/* Drops "tokens" from dir's manifest: the token file then provides them. */
static void drop_manifest_tokens(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "%s: cannot open", path);
    static char text[1 << 16];
    size_t      n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    CHECK(n > 0 && n < sizeof text - 1, "%s: %zu bytes", path, n);
    text[n] = '\0';
    cJSON *root = cJSON_Parse(text);
    CHECK(root && cJSON_GetObjectItemCaseSensitive(root, "tokens"), "%s: no \"tokens\"", path);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "tokens");
    char *out = cJSON_Print(root);
    f = fopen(path, "wb");
    CHECK(out && f && fputs(out, f) >= 0 && fclose(f) == 0, "%s: cannot rewrite", path);
    cJSON_free(out);
    cJSON_Delete(root);
}

/* The dump holds what write_dump wrote. */
static void check_dump_header(const llorch_ckpt_dump *d) {
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    CHECK(m->n_layer == N_LAYER && m->n_embd == N_EMBD && m->n_vocab == 32000, "model %d %d %d", m->n_layer, m->n_embd,
          m->n_vocab);
    CHECK(llorch_ckpt_dump_complete(d), "complete");
    CHECK(llorch_ckpt_dump_n_entries(d) == N_LAYER + 1, "%zu entries", llorch_ckpt_dump_n_entries(d));
    CHECK(llorch_ckpt_dump_has_tokens(d) && llorch_ckpt_dump_n_tokens(d) == N_TOKENS, "tokens");
    for (int i = 0; i < N_TOKENS; i++) {
        CHECK(llorch_ckpt_dump_tokens(d)[i] == tokens[i], "token %d: %d", i, (int) llorch_ckpt_dump_tokens(d)[i]);
    }
}

/* Entry i's array holds what write_dump wrote for its tensor. */
static void check_array(const llorch_ckpt_dump *d, size_t i, const llorch_ckpt_array *a) {
    const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
    int                             t = e->layer >= 0 ? e->layer : N_LAYER;
    CHECK(llorch_ckpt_array_count(a) == N_TOKENS * N_EMBD, "%s: count", e->file);
    for (int k = 0; k < N_TOKENS * N_EMBD; k++) {
        CHECK(llorch_ckpt_array_value(a, k) == (double) value(t, k), "%s[%d]: %g", e->file, k,
              llorch_ckpt_array_value(a, k));
    }
}

/* ---- bug 1: no architecture ---------------------------------------------- */

static void check_report(const llorch_ckpt_comparison *c, const char *dir, const llorch_ckpt_dump *d,
                         const llorch_ckpt_compare_options *opt) {
    struct llorch_ckpt_report_info info = {dir, dir, d, d, opt, NULL, NULL};
    FILE                          *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    CHECK(llorch_ckpt_report_table(f, c, &info) == 0, "table report");
    CHECK(llorch_ckpt_report_json(f, c, &info) == 0, "JSON report");
    CHECK(llorch_ckpt_report_verdict(f, c) == 0, "verdict");
    CHECK(ftell(f) > 0, "the reports wrote nothing");
    fclose(f);
}

static void test_architecture(const char *dir) {
    char err[1024] = "";
    write_dump(dir, NULL);
    llorch_ckpt_dump *d = llorch_ckpt_dump_open(dir, err, sizeof err);
    CHECK(d != NULL, "a dump without an architecture must open: %s", err);
    CHECK(llorch_ckpt_dump_model(d)->architecture == NULL, "architecture '%s', not absent",
          llorch_ckpt_dump_model(d)->architecture);
    check_dump_header(d);

    llorch_ckpt_compare_options *opt = llorch_ckpt_compare_options_create();
    CHECK(opt != NULL, "options");
    llorch_ckpt_comparison *c = llorch_ckpt_compare(d, d, opt, err, sizeof err);
    CHECK(c != NULL, "the dump must compare with itself: %s", err);
    CHECK(llorch_ckpt_comparison_n_rows(c) == N_LAYER + 1, "%zu rows", llorch_ckpt_comparison_n_rows(c));
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        CHECK(r->status == LLORCH_CKPT_STATUS_PASS && r->metrics.n == N_TOKENS * N_EMBD && r->metrics.max_abs == 0,
              "row %zu (%s): %s", i, r->checkpoint, r->message ? r->message : llorch_ckpt_status_name(r->status));
    }
    CHECK(llorch_ckpt_comparison_first_failure(c) == -1 && llorch_ckpt_comparison_exit_code(c) == 0, "verdict");
    check_report(c, dir, d, opt);
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_compare_options_free(opt);
    llorch_ckpt_dump_free(d);
    printf("ok: a dump without an architecture opens and compares with itself\n");
}

/* ---- bug 10: out of memory ----------------------------------------------- */

/* One open-and-load with the n-th allocation failing; true when the
 * failure was injected (false: n is past the last allocation). */
static bool open_and_load_failing(const char *dir, long n) {
    char err[1024] = "";
    fail_arm(n);
    llorch_ckpt_dump *d = llorch_ckpt_dump_open(dir, err, sizeof err);
    bool              failed = d == NULL;
    for (size_t i = 0; d && i < llorch_ckpt_dump_n_entries(d) && !failed; i++) {
        llorch_ckpt_array *a = llorch_ckpt_dump_load(d, i, err, sizeof err);
        failed = a == NULL;
        if (a) {
            check_array(d, i, a); /* allocates nothing */
            llorch_ckpt_array_free(a);
        }
    }
    fail_disarm();
    CHECK(!failed || fail_injected, "%s: failed without an injected failure: %s", dir, err);
    if (failed) {
        CHECK(err[0] != '\0', "%s: allocation %ld failed and left no error message", dir, n);
        CHECK(strchr(err, '\n') == NULL && strstr(err, dir) != NULL,
              "%s: allocation %ld: message '%s' is not "
              "one line naming the file",
              dir, n, err);
    } else {
        check_dump_header(d);
    }
    llorch_ckpt_dump_free(d);
    return fail_injected;
}

/* Not only allocations: asking for an entry that is not there fails with
 * a message too. */
static void check_entry_range(const char *dir) {
    char              err[1024] = "";
    llorch_ckpt_dump *d = llorch_ckpt_dump_open(dir, err, sizeof err);
    CHECK(d != NULL, "%s", err);
    size_t n = llorch_ckpt_dump_n_entries(d);
    for (size_t i = 0; i < n; i++) {
        CHECK(llorch_ckpt_dump_check_size(d, i, err, sizeof err) == 0, "%s", err);
    }
    err[0] = '\0';
    CHECK(llorch_ckpt_dump_check_size(d, n, err, sizeof err) == -1 && strstr(err, dir) && strstr(err, "no file entry"),
          "%s: check_size of entry %zu: message '%s'", dir, n, err);
    err[0] = '\0';
    CHECK(llorch_ckpt_dump_load(d, n, err, sizeof err) == NULL && strstr(err, dir) && strstr(err, "no file entry"),
          "%s: load of entry %zu: message '%s'", dir, n, err);
    llorch_ckpt_dump_free(d);
}

static void test_oom_on(const char *dir) {
    check_entry_range(dir);
    long n = 1;
    while (open_and_load_failing(dir, n)) {
        n++;
    }
    /* manifest, names, tokens, entries, token file, N_LAYER + 1 arrays */
    CHECK(n > 10, "%s: only %ld allocations: the wrapping does not work", dir, n - 1);
    printf("ok: %s: each of %ld allocation failures leaves a message\n", dir, n - 1);
}

static void test_oom(const char *dir) {
    char inline_tokens[2048], token_file[2048];
    snprintf(inline_tokens, sizeof inline_tokens, "%s/inline-tokens", dir);
    snprintf(token_file, sizeof token_file, "%s/token-file", dir);
    CHECK(mkdir(dir, 0755) == 0, "%s: cannot create", dir);
    write_dump(inline_tokens, "test");
    write_dump(token_file, "test");
    drop_manifest_tokens(token_file);
    test_oom_on(inline_tokens);
    test_oom_on(token_file);
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: test_read_regressions architecture|oom DIR");
    if (strcmp(argv[1], "architecture") == 0) {
        test_architecture(argv[2]);
    } else if (strcmp(argv[1], "oom") == 0) {
        test_oom(argv[2]);
    } else {
        CHECK(false, "unknown test '%s'", argv[1]);
    }
    return 0;
}

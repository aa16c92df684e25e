/*
 * test_compare_read.c - the readers and the comparison from memory buffers:
 * .npy parsing (versions, dtypes, f16 conversion), every malformed-header
 * path, manifest parsing, file-name safety, tolerance specs, and a compare
 * of in-memory dumps.
 */
#include "llorch_compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond) check_((cond), #cond, __FILE__, __LINE__)

static void check_(int ok, const char *what, const char *file, int line) {
    if (!ok) {
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
        failures++;
    }
}

/* A .npy file: magic, version, padded header, data. */
static size_t make_npy(unsigned char *out, size_t cap, int major, const char *dict, const void *data,
                       size_t data_bytes) {
    size_t prefix = major == 1 ? 10 : 12, len = strlen(dict);
    size_t header = len + 1;
    header += (64 - (prefix + header) % 64) % 64;
    if (prefix + header + data_bytes > cap) {
        return 0;
    }
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char) major;
    out[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++) {
        out[8 + i] = (unsigned char) (header >> (8 * i));
    }
    memset(out + prefix, ' ', header);
    memcpy(out + prefix, dict, len);
    out[prefix + header - 1] = '\n';
    memcpy(out + prefix + header, data, data_bytes);
    return prefix + header + data_bytes;
}

static llorch_ckpt_array *parse(const unsigned char *buf, size_t size, char *err, size_t err_size) {
    return llorch_ckpt_array_parse(buf, size, "test.npy", err, err_size);
}

static void test_valid_npy(void) {
    unsigned char buf[512];
    char          err[512];
    float         f[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-8f, -7.0f};
    for (int major = 1; major <= 2; major++) {
        size_t n = make_npy(buf, sizeof buf, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
                            sizeof f);
        llorch_ckpt_array *a = parse(buf, n, err, sizeof err);
        CHECK(a != NULL);
        if (!a) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        CHECK(llorch_ckpt_array_n_dims(a) == 2 && llorch_ckpt_array_dim(a, 0) == 2 && llorch_ckpt_array_dim(a, 1) == 3);
        CHECK(llorch_ckpt_array_count(a) == 6 && llorch_ckpt_array_dtype(a) == LLORCH_CKPT_DTYPE_F32);
        for (int i = 0; i < 6; i++) {
            CHECK(llorch_ckpt_array_value(a, i) == (double) f[i]);
        }
        CHECK(isnan(llorch_ckpt_array_value(a, 6)) && isnan(llorch_ckpt_array_value(a, -1)));
        double out[3];
        CHECK(llorch_ckpt_array_gather(a, 1, 2, 3, out) == 0 && out[2] == (double) f[5]);
        CHECK(llorch_ckpt_array_gather(a, 1, 2, 4, out) != 0);
        CHECK(llorch_ckpt_array_gather(a, 6, 1, 1, out) != 0);
        CHECK(llorch_ckpt_array_gather(a, 0, -1, 2, out) != 0);
        llorch_ckpt_array_free(a);
    }
    /* Scalars, 1-D with a trailing comma, double quotes, no trailing comma. */
    int32_t iv[3] = {-5, 0, 2147483647};
    size_t  n =
        make_npy(buf, sizeof buf, 1, "{\"descr\":\"<i4\",\"fortran_order\":False,\"shape\":(3,)}", iv, sizeof iv);
    llorch_ckpt_array *a = parse(buf, n, err, sizeof err);
    CHECK(a && llorch_ckpt_array_value(a, 0) == -5 && llorch_ckpt_array_value(a, 2) == 2147483647.0);
    llorch_ckpt_array_free(a);
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f, 4);
    a = parse(buf, n, err, sizeof err);
    CHECK(a && llorch_ckpt_array_n_dims(a) == 0 && llorch_ckpt_array_count(a) == 1);
    llorch_ckpt_array_free(a);
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", f, 0);
    a = parse(buf, n, err, sizeof err);
    CHECK(a && llorch_ckpt_array_count(a) == 0);
    llorch_ckpt_array_free(a);
}

static void test_f16(void) {
    static const struct {
        uint16_t bits;
        double   value;
    } cases[] = {
        {0x0000, 0.0},
        {0x3c00, 1.0},
        {0xc000, -2.0},
        {0x7bff, 65504.0},
        {0x0001, 5.9604644775390625e-08},
        {0x03ff, 6.097555160522461e-05},
        {0x0400, 6.103515625e-05},
        {0x3555, 0.333251953125},
        {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    enum {
        N = sizeof cases / sizeof cases[0]
    };
    uint16_t      h[N + 1];
    unsigned char buf[512];
    char          err[512], dict[128];
    for (size_t i = 0; i < N; i++) {
        h[i] = cases[i].bits;
    }
    h[N] = 0x7e00; /* NaN */
    snprintf(dict, sizeof dict, "{'descr': '<f2', 'fortran_order': False, 'shape': (%d,), }", N + 1);
    size_t             n = make_npy(buf, sizeof buf, 1, dict, h, sizeof h);
    llorch_ckpt_array *a = parse(buf, n, err, sizeof err);
    CHECK(a != NULL);
    for (size_t i = 0; a && i < N; i++) {
        CHECK(llorch_ckpt_array_value(a, (int64_t) i) == cases[i].value);
    }
    CHECK(a && isnan(llorch_ckpt_array_value(a, N)));
    llorch_ckpt_array_free(a);
}

/* Each malformed file is refused with a message naming it. */
static void expect_refused(const unsigned char *buf, size_t size, const char *needle) {
    char               err[512] = "";
    llorch_ckpt_array *a = parse(buf, size, err, sizeof err);
    CHECK(a == NULL);
    CHECK(strncmp(err, "test.npy: ", 10) == 0);
    if (needle && !strstr(err, needle)) {
        fprintf(stderr, "  message '%s' lacks '%s'\n", err, needle);
        failures++;
    }
    llorch_ckpt_array_free(a);
}

static void expect_header_refused(int major, const char *dict, size_t data_bytes, const char *needle) {
    static unsigned char data[4096];
    unsigned char        buf[8192];
    size_t               n = make_npy(buf, sizeof buf, major, dict, data, data_bytes);
    expect_refused(buf, n, needle);
}

static void test_malformed_npy(void) {
    float         f[6] = {0};
    unsigned char buf[512];
    size_t n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    for (size_t cut = 0; cut < n; cut++) {
        expect_refused(buf, cut, NULL); /* every truncation */
    }
    unsigned char bad[512];
    memcpy(bad, buf, n);
    bad[1] = 'X';
    expect_refused(bad, n, "wrong magic");
    memcpy(bad, buf, n);
    bad[6] = 3;
    expect_refused(bad, n, "version 3.0");
    memcpy(bad, buf, n);
    bad[7] = 1;
    expect_refused(bad, n, "version 1.1");
    memcpy(bad, buf, n);
    bad[8] = 0xff;
    bad[9] = 0xff;
    expect_refused(bad, n, "truncated header");
    unsigned char v2[16] = "\x93NUMPY\x02\x00\xf0\xff\xff\xff";
    expect_refused(v2, sizeof v2, "exceeds the limit");
    const char *S = "'shape': (2, 3)";
    char        dict[256];
    snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, %s, }", S);
    expect_header_refused(1, dict, 48, "unsupported dtype '<f8'");
    snprintf(dict, sizeof dict, "{'descr': '>f4', 'fortran_order': False, %s, }", S);
    expect_header_refused(1, dict, 24, "unsupported dtype '>f4'");
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': True, %s, }", S);
    expect_header_refused(1, dict, 24, "fortran_order True");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", 24, "truncated data");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 24, "does not match");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1073741824), }", 24,
                          "too large");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2), }", 24,
                          "too large");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 24,
                          "overflows");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", 4, "more than 4");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4, "malformed");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, }", 4, "missing");
    expect_header_refused(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4,
                          "repeated");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", 4, "unknown");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", 4, "fortran_order");
    expect_header_refused(1, "{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,), }", 4, "malformed");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } junk", 4, "trailing");
    expect_header_refused(1, "['descr', '<f4']", 4, "not a dict");
    expect_header_refused(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, "malformed");
    expect_header_refused(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (1,), }", 4, "expected");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2), }", 4, "expected");
    expect_header_refused(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,", 4, "malformed");
}

static void test_names(void) {
    CHECK(llorch_ckpt_safe_name("checkpoint_01_attn_norm_l00_s000.npy"));
    CHECK(llorch_ckpt_safe_name("graph_attn_norm-0_s000.npy"));
    CHECK(!llorch_ckpt_safe_name(NULL));
    CHECK(!llorch_ckpt_safe_name(""));
    CHECK(!llorch_ckpt_safe_name("."));
    CHECK(!llorch_ckpt_safe_name(".."));
    CHECK(!llorch_ckpt_safe_name("../x.npy"));
    CHECK(!llorch_ckpt_safe_name("a..b"));
    CHECK(!llorch_ckpt_safe_name("/etc/passwd"));
    CHECK(!llorch_ckpt_safe_name("sub/x.npy"));
    CHECK(!llorch_ckpt_safe_name("..\\x.npy"));
    CHECK(!llorch_ckpt_safe_name("a\nb"));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(!llorch_ckpt_safe_name(longname));
}

static void test_tolerances(void) {
    char                         err[256];
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    struct llorch_ckpt_tolerance t = llorch_ckpt_compare_options_get(o, "attn_norm");
    /* the default judgement: only the NMSE ceiling is a fixed limit */
    CHECK(strcmp(llorch_ckpt_compare_options_preset_name(o), "auto") == 0);
    CHECK(t.nmse == LLORCH_CKPT_CEILING_NMSE && t.within == 0);
    CHECK(llorch_ckpt_compare_options_preset(o, "f32", err, sizeof err) == 0);
    t = llorch_ckpt_compare_options_get(o, "attn_norm");
    CHECK(t.atol == 1e-4 && t.rtol == 1e-3 && t.nmse == 1e-6 && t.within == 1);
    CHECK(llorch_ckpt_compare_options_tolerance(o, "kq_soft_max:atol=1e-5,rtol=1e-4", err, sizeof err) == 0);
    CHECK(llorch_ckpt_compare_options_tolerance(o, "nmse=1e-3", err, sizeof err) == 0);
    t = llorch_ckpt_compare_options_get(o, "kq_soft_max");
    CHECK(t.atol == 1e-5 && t.rtol == 1e-4 && t.nmse == 1e-3);
    t = llorch_ckpt_compare_options_get(o, "attn_norm");
    CHECK(t.atol == 1e-4 && t.nmse == 1e-3);
    CHECK(llorch_ckpt_compare_options_tolerance(o, "atol=2", err, sizeof err) == 0);
    CHECK(llorch_ckpt_compare_options_get(o, "kq_soft_max").atol == 2); /* later wins */
    const char *bad[] = {"",           "atol",  "atol=",      "atol=x", "atol=-1", "atol=inf",
                         "within=1.5", "foo=1", "kq:atol=1,", "kq:",    ":",       "atol=1e-3junk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK(llorch_ckpt_compare_options_tolerance(o, bad[i], err, sizeof err) != 0 && err[0]);
    }
    CHECK(llorch_ckpt_compare_options_preset(o, "f16", err, sizeof err) == 0);
    t = llorch_ckpt_compare_options_get(o, "kq_soft_max");
    CHECK(t.atol == 1e-2 && t.rtol == 1e-2 && t.nmse == 1e-4);
    CHECK(llorch_ckpt_compare_options_preset(o, "f64", err, sizeof err) != 0);
    llorch_ckpt_compare_options_free(o);
}

/* ---- in-memory dumps ---------------------------------------------------------- */

static const char *MANIFEST =
    "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1, \"complete\": true,"
    " \"model\": {\"architecture\": \"gpt2\", \"n_layer\": 1, \"n_embd\": 3},"
    " \"tokens\": [1, 2],"
    " \"files\": ["
    "  {\"file\": \"a.npy\", \"checkpoint\": \"attn_norm\", \"layer\": 0, \"step\": 0, \"pos_start\": 0,"
    "   \"n_pos\": 2, \"shape\": [2, 3], \"dtype\": \"float32\", \"axes\": [\"token\", \"channel\"]},"
    "  {\"file\": \"s.npy\", \"checkpoint\": \"kq_soft_max\", \"layer\": 0, \"step\": 0, \"pos_start\": 0,"
    "   \"n_pos\": 2, \"n_key\": 2, \"shape\": [1, 2, 2], \"dtype\": \"float32\", \"axes\": [\"head\", \"token\", "
    "\"key\"]}"
    "]}";

static llorch_ckpt_dump *memory_dump(const float *a, const float *s, char *err, size_t err_size) {
    unsigned char     buf[512];
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(MANIFEST, strlen(MANIFEST), "mem", err, err_size);
    if (!d) {
        return NULL;
    }
    size_t n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", a, 24);
    llorch_ckpt_dump_add_file(d, "a.npy", buf, n, err, err_size);
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", s, 16);
    llorch_ckpt_dump_add_file(d, "s.npy", buf, n, err, err_size);
    return d;
}

static void test_memory_compare(void) {
    char              err[512];
    float             a[6] = {1, 2, 3, 4, 5, 6}, s[4] = {1, 0, 0.25f, 0.75f};
    float             a2[6] = {1, 2, 3, 4, 5.5f, 6}, s2[4] = {1, 0.5f, 0.25f, 0.75f}; /* masked key differs */
    llorch_ckpt_dump *ref = memory_dump(a, s, err, sizeof err);
    llorch_ckpt_dump *cand = memory_dump(a2, s2, err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    CHECK(ref && cand && o);
    llorch_ckpt_comparison *c = ref && cand ? llorch_ckpt_compare(ref, cand, o, err, sizeof err) : NULL;
    CHECK(c != NULL);
    if (c) {
        const struct llorch_ckpt_row *an = llorch_ckpt_comparison_row(c, 0);
        const struct llorch_ckpt_row *kq = llorch_ckpt_comparison_row(c, 1);
        CHECK(llorch_ckpt_comparison_n_rows(c) == 2);
        CHECK(an->status == LLORCH_CKPT_STATUS_FAIL && an->metrics.max_abs == 0.5);
        CHECK(an->metrics.max_abs_at[0] == 1 && an->metrics.max_abs_at[1] == 1);
        CHECK(an->origin == LLORCH_CKPT_ORIGIN_UNKNOWN); /* embd absent */
        CHECK(kq->status == LLORCH_CKPT_STATUS_PASS && kq->metrics.n == 3);
        CHECK(llorch_ckpt_comparison_first_failure(c) == 0);
        CHECK(llorch_ckpt_comparison_exit_code(c) == 1);
        FILE                          *devnull = fopen("/dev/null", "w");
        struct llorch_ckpt_report_info info = {"ref", "cand", ref, cand, o, NULL, NULL};
        CHECK(devnull && llorch_ckpt_report_table(devnull, c, &info) == 0);
        CHECK(devnull && llorch_ckpt_report_json(devnull, c, &info) == 0);
        if (devnull) {
            fclose(devnull);
        }
    }
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(ref);
    llorch_ckpt_dump_free(cand);
}

/* A file without elements may declare any number of rows: none of them may
 * cost memory (no bytes on disk vouch for them). */
static void test_empty_tensor(void) {
    static const char *manifest =
        "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1, \"complete\": true,"
        " \"model\": {\"architecture\": \"x\", \"n_layer\": 1, \"n_embd\": 0},"
        " \"files\": [{\"file\": \"e.npy\", \"checkpoint\": \"cache_k\", \"layer\": 0, \"step\": 0,"
        " \"pos_start\": 0, \"n_pos\": 0, \"shape\": [2000000000, 0], \"dtype\": \"float32\","
        " \"axes\": [\"key\", \"channel\"]}]}";
    unsigned char buf[256];
    char          err[512];
    size_t        n =
        make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000, 0), }", "", 0);
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(manifest, strlen(manifest), "mem", err, sizeof err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    llorch_ckpt_dump_add_file(d, "e.npy", buf, n, err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    llorch_ckpt_comparison      *c = llorch_ckpt_compare(d, d, o, err, sizeof err);
    CHECK(c != NULL && llorch_ckpt_comparison_n_rows(c) == 1);
    CHECK(c && llorch_ckpt_comparison_row(c, 0)->status == LLORCH_CKPT_STATUS_ERROR);
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(d);
}

static void test_manifest_errors(void) {
    char        err[512];
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"format\": \"x\"}",
        "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 2}",
        "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1.5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        llorch_ckpt_dump *d = llorch_ckpt_dump_parse(bad[i], strlen(bad[i]), "m.json", err, sizeof err);
        CHECK(d == NULL && strncmp(err, "m.json: ", 8) == 0);
        llorch_ckpt_dump_free(d);
    }
    /* Not NUL-terminated: the parser must stay inside the buffer. */
    char *copy = malloc(strlen(MANIFEST));
    memcpy(copy, MANIFEST, strlen(MANIFEST));
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(copy, strlen(MANIFEST), "m.json", err, sizeof err);
    CHECK(d != NULL && llorch_ckpt_dump_n_entries(d) == 2);
    if (d) {
        CHECK(llorch_ckpt_dump_check_size(d, 0, err, sizeof err) != 0 && strstr(err, "a.npy"));
        CHECK(llorch_ckpt_dump_load(d, 0, err, sizeof err) == NULL && strstr(err, "a.npy"));
    }
    llorch_ckpt_dump_free(d);
    free(copy);
}

int main(void) {
    test_valid_npy();
    test_f16();
    test_malformed_npy();
    test_names();
    test_tolerances();
    test_memory_compare();
    test_manifest_errors();
    test_empty_tensor();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}

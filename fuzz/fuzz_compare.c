/*
 * fuzz_compare.c - libFuzzer target: a whole comparison of two in-memory
 * dumps, reports included. The input is parts separated by "\n@@@\n":
 *   the reference's manifest, the candidate's manifest, then files as
 *   "NAME\nBYTES" that both dumps can read.
 * Both manifests may list the same files differently (steps, positions,
 * order), which is what exercises the alignment.
 */
#include "llorch_compare.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEPARATOR     "\n@@@\n"
#define SEPARATOR_LEN 5
#define MAX_PARTS     64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct part {
    const char *p;
    size_t      n;
};

static const char *find(const char *p, size_t n, const char *needle, size_t len) {
    for (size_t i = 0; i + len <= n; i++) {
        if (memcmp(p + i, needle, len) == 0) {
            return p + i;
        }
    }
    return NULL;
}

static int split(const uint8_t *data, size_t size, struct part *parts) {
    const char *p = (const char *) data, *end = p + size;
    int         n = 0;
    while (n < MAX_PARTS) {
        const char *sep = find(p, (size_t) (end - p), SEPARATOR, SEPARATOR_LEN);
        parts[n].p = p;
        parts[n++].n = sep ? (size_t) (sep - p) : (size_t) (end - p);
        if (!sep) {
            break;
        }
        p = sep + SEPARATOR_LEN;
    }
    return n;
}

static void add_files(llorch_ckpt_dump *d, const struct part *parts, int n) {
    char name[256], err[256];
    for (int i = 2; i < n; i++) {
        const char *nl = memchr(parts[i].p, '\n', parts[i].n);
        size_t      len = nl ? (size_t) (nl - parts[i].p) : 0;
        if (!nl || len == 0 || len >= sizeof name) {
            continue;
        }
        memcpy(name, parts[i].p, len);
        name[len] = '\0';
        llorch_ckpt_dump_add_file(d, name, nl + 1, parts[i].n - len - 1, err, sizeof err);
    }
}

static void report(FILE *out, const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                   const llorch_ckpt_dump *cand, const llorch_ckpt_compare_options *o) {
    struct llorch_ckpt_report_info info = {"ref", "cand", ref, cand, o, NULL, NULL};
    llorch_ckpt_report_table(out, c, &info);
    llorch_ckpt_report_json(out, c, &info);
    long first = llorch_ckpt_comparison_first_failure(c);
    int  code = llorch_ckpt_comparison_exit_code(c);
    /* a failed or uncomparable row is 1 or 2; else 0, or 3 when what is missing counts */
    bool missing = llorch_ckpt_comparison_missing_counts(c);
    if ((first >= 0) != (code == 1 || code == 2) || code < 0 || code > 3 || (code == 3 && !missing) ||
        (code == 0 && missing)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *out;
    struct part  parts[MAX_PARTS];
    char         err[1024];
    out = out != NULL ? out : fopen("/dev/null", "w");
    if (!out) {
        return 0;
    }
    int n = split(data, size, parts);
    if (n < 2) {
        return 0;
    }
    llorch_ckpt_dump            *ref = llorch_ckpt_dump_parse(parts[0].p, parts[0].n, "ref", err, sizeof err);
    llorch_ckpt_dump            *cand = llorch_ckpt_dump_parse(parts[1].p, parts[1].n, "cand", err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    if (ref && cand && o) {
        add_files(ref, parts, n);
        add_files(cand, parts, n);
        llorch_ckpt_compare_options_allow_token_mismatch(o, size % 2 == 0);
        llorch_ckpt_comparison *c = llorch_ckpt_compare(ref, cand, o, err, sizeof err);
        if (c) {
            report(out, c, ref, cand, o);
        }
        llorch_ckpt_comparison_free(c);
    }
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(cand);
    llorch_ckpt_dump_free(ref);
    return 0;
}

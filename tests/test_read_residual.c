/*
 * test_read_residual.c - llorch_ckpt_dump_residual (lib/read/read_residual.c)
 * on real dumps, checked by tests/read_residual_check.py against numpy:
 *
 *   test_read_residual rows DUMP OUT_DIR [SEQ [POS_START N_POS]]
 *       for every layer and both residuals: positions POS_START.. (default
 *       all of the sequence's tokens, 0..n-1) into
 *       OUT_DIR/L<layer>_<where>.f32, and the same range less its first and
 *       last position (a range that cuts steps) into
 *       OUT_DIR/L<layer>_<where>_mid.f32; where is layer_input or ffn_input
 *   test_read_residual expect-error DUMP LAYER WHERE SEQ POS_START N_POS TEXT
 *       the call fails, with one line that contains TEXT (printed)
 *   test_read_residual api
 *       argument checks on a dump parsed from memory
 *
 * Exit status 0 ok, 1 failed.
 */
#define _POSIX_C_SOURCE 200809L
#include "llorch_compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const where_names[] = {"layer_input", "ffn_input"};

static int write_rows(const char *dir, int layer, int w, const char *suffix, const float *rows, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/L%d_%s%s.f32", dir, layer, where_names[w], suffix);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(rows, sizeof *rows, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "FAIL: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int rows_mode(const char *dir, const char *out_dir, int seq, int64_t start, int64_t n) {
    char              err[1024];
    llorch_ckpt_dump *d = llorch_ckpt_dump_open(dir, err, sizeof err);
    if (!d) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    if (n < 0) {
        n = (int64_t) llorch_ckpt_dump_n_tokens(d);
        if (seq >= 0 && llorch_ckpt_dump_n_sequences(d) > 0) {
            n = (int64_t) llorch_ckpt_dump_sequence(d, (size_t) seq)->n_tokens;
        }
    }
    float *rows = malloc((size_t) n * (size_t) m->n_embd * sizeof *rows);
    int    rc = rows ? 0 : 1, calls = 0;
    for (int layer = 0; layer < m->n_layer && rc == 0; layer++) {
        for (int w = 0; w < 2 && rc == 0; w++) {
            if (llorch_ckpt_dump_residual(d, layer, (enum llorch_ckpt_residual) w, seq, start, n, rows, err,
                                          sizeof err) != 0 ||
                write_rows(out_dir, layer, w, "", rows, (size_t) (n * m->n_embd)) != 0) {
                fprintf(stderr, "FAIL: layer %d %s: %s\n", layer, where_names[w], err);
                rc = 1;
                break;
            }
            calls++;
            if (n > 2 && (llorch_ckpt_dump_residual(d, layer, (enum llorch_ckpt_residual) w, seq, start + 1, n - 2,
                                                    rows, err, sizeof err) != 0 ||
                          write_rows(out_dir, layer, w, "_mid", rows, (size_t) ((n - 2) * m->n_embd)) != 0)) {
                fprintf(stderr, "FAIL: layer %d %s, the middle positions: %s\n", layer, where_names[w], err);
                rc = 1;
            }
        }
    }
    if (rc == 0) {
        printf("ok: %d residuals of %lld positions read from %s\n", calls, (long long) n, dir);
    }
    free(rows);
    llorch_ckpt_dump_free(d);
    return rc;
}

static int expect_error(char **argv) {
    char              err[1024] = "";
    llorch_ckpt_dump *d = llorch_ckpt_dump_open(argv[2], err, sizeof err);
    if (!d) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    int     layer = atoi(argv[3]), seq = atoi(argv[5]);
    int     w = strcmp(argv[4], "ffn_input") == 0 ? 1 : 0;
    int64_t pos_start = atoll(argv[6]), n_pos = atoll(argv[7]);
    float  *rows = malloc((size_t) (n_pos > 0 ? n_pos : 1) * (size_t) llorch_ckpt_dump_model(d)->n_embd * sizeof *rows);
    int     rc = llorch_ckpt_dump_residual(d, layer, (enum llorch_ckpt_residual) w, seq, pos_start, n_pos, rows, err,
                                           sizeof err);
    free(rows);
    llorch_ckpt_dump_free(d);
    if (rc == 0 || strstr(err, argv[8]) == NULL || strchr(err, '\n') != NULL) {
        fprintf(stderr, "FAIL: expected an error with '%s', got rc %d: %s\n", argv[8], rc, err);
        return 1;
    }
    printf("ok: %s\n", err);
    return 0;
}

static int failures;

static void expect(bool ok, const char *what, const char *err) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s (%s)\n", what, err);
        failures++;
    }
}

/* Argument checks and a hostile manifest, from memory. */
static int api_mode(void) {
    static const char manifest[] =
        "{\"format\": \"llorch-checkpoint-dump\", \"format_version\": 1, \"complete\": true,"
        " \"producer\": \"t\", \"model\": {\"n_layer\": 2, \"n_embd\": 2, \"n_head\": 1, \"n_vocab\": 8},"
        " \"tokens\": [1, 2, 3], \"files\": ["
        " {\"file\": \"e.npy\", \"checkpoint\": \"embd\", \"layer\": -1, \"step\": 0, \"pos_start\": 0,"
        "  \"n_pos\": 2, \"shape\": [2, 2], \"dtype\": \"float32\", \"axes\": [\"token\", \"channel\"]},"
        " {\"file\": \"l.npy\", \"checkpoint\": \"l_out\", \"layer\": 0, \"step\": 0, \"pos_start\": 0,"
        "  \"n_pos\": 3, \"shape\": [3, 3], \"dtype\": \"float32\", \"axes\": [\"token\", \"channel\"]}]}";
    char              err[512];
    float             out[16];
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse(manifest, strlen(manifest), "mem", err, sizeof err);
    if (!d) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    const char *name;
    int         layer;
    expect(llorch_ckpt_residual_source(LLORCH_CKPT_RESIDUAL_LAYER_INPUT, 0, &name, &layer) == 0 &&
               strcmp(name, "embd") == 0 && layer == -1,
           "layer 0's input is embd", "");
    expect(llorch_ckpt_residual_source(LLORCH_CKPT_RESIDUAL_LAYER_INPUT, 3, &name, &layer) == 0 &&
               strcmp(name, "l_out") == 0 && layer == 2,
           "layer 3's input is l_out of 2", "");
    expect(llorch_ckpt_residual_source(LLORCH_CKPT_RESIDUAL_FFN_INPUT, 3, &name, &layer) == 0 &&
               strcmp(name, "ffn_inp") == 0 && layer == 3,
           "ffn input is ffn_inp", "");
    expect(llorch_ckpt_dump_residual(d, 5, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, 0, 1, out, err, sizeof err) != 0 &&
               strstr(err, "out of range"),
           "layer out of range", err);
    expect(llorch_ckpt_dump_residual(d, 0, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, -1, 1, out, err, sizeof err) != 0,
           "negative position", err);
    expect(llorch_ckpt_dump_residual(d, 0, (enum llorch_ckpt_residual) 7, -1, 0, 1, out, err, sizeof err) != 0,
           "unknown residual", err);
    expect(llorch_ckpt_dump_residual(d, 0, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, 0, 3, out, err, sizeof err) != 0 &&
               strstr(err, "mem: no embd (the input of layer 0) at position 2 (1 of the 3 positions 0-2 asked"),
           "a missing row is named", err);
    expect(llorch_ckpt_dump_residual(d, 1, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, 0, 1, out, err, sizeof err) != 0 &&
               strstr(err, "3 channels, but the model's n_embd is 2"),
           "a file of another width is refused before it is read", err);
    expect(llorch_ckpt_dump_residual(d, 1, LLORCH_CKPT_RESIDUAL_FFN_INPUT, -1, 0, 1, out, err, sizeof err) != 0 &&
               strstr(err, "holds no ffn_inp of layer 1"),
           "an absent checkpoint is named", err);
    /* the file was not supplied: an error, not a crash */
    expect(llorch_ckpt_dump_residual(d, 0, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, 0, 2, out, err, sizeof err) != 0,
           "an absent file", err);
    expect(llorch_ckpt_dump_residual(d, 0, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, -1, 0, 0, NULL, err, sizeof err) == 0,
           "no rows asked: nothing to do", err);
    llorch_ckpt_dump_free(d);
    /* the writer checks run.fed_json (lib/write/manifest.c) */
    char tmpl[] = "/tmp/llorch-fed-XXXXXX";
    if (mkdtemp(tmpl) != NULL) {
        struct llorch_ckpt_writer_options opt = {.no_sync = true, .allow_nonempty = true};
        llorch_ckpt_writer               *w = llorch_ckpt_writer_open(tmpl, &opt, err, sizeof err);
        int32_t                           tokens[] = {1, 2};
        struct llorch_ckpt_run            run = {.producer = "t", .tokens = tokens, .n_tokens = 2, .model_size = -1};
        run.fed_json = "{\"from\": \"r\", \"producer\": \"p\", \"fingerprint\": null, \"at\": [\"attn_norm\"], "
                       "\"layers\": [0]}";
        expect(w && llorch_ckpt_writer_set_run(w, &run) != 0 && strstr(llorch_ckpt_writer_error(w), "fed_json"),
               "a fed object with a wrong \"at\" is refused", w ? llorch_ckpt_writer_error(w) : err);
        run.fed_json = "{\"from\": \"r\", \"producer\": \"p\", \"fingerprint\": null, \"at\": [\"embd\", \"l_out\"], "
                       "\"layers\": [0, 1]}";
        expect(w && llorch_ckpt_writer_set_run(w, &run) == 0, "a fed object is taken",
               w ? llorch_ckpt_writer_error(w) : err);
        llorch_ckpt_writer_free(w);
        char path[64];
        snprintf(path, sizeof path, "%s/tokens.npy", tmpl);
        unlink(path);
        rmdir(tmpl);
    }
    if (failures == 0) {
        printf("ok: api checks\n");
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "rows") == 0) {
        return rows_mode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : -1, argc > 6 ? atoll(argv[5]) : 0,
                         argc > 6 ? atoll(argv[6]) : -1);
    }
    if (argc == 9 && strcmp(argv[1], "expect-error") == 0) {
        return expect_error(argv);
    }
    if (argc == 2 && strcmp(argv[1], "api") == 0) {
        return api_mode();
    }
    fprintf(stderr, "usage: test_read_residual rows DUMP OUT_DIR [SEQ] | expect-error DUMP LAYER WHERE SEQ POS_START "
                    "N_POS TEXT | api\n");
    return 1;
}

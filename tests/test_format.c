/* test_format.c - the writer API and file naming, checked by numpy
 * (tests/format_checks.py) rather than by our own reader.
 *
 *   test_format OUT_DIR      writes a dump of known tensors into OUT_DIR
 *                            and checks file names and bad input in C */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "llorch_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void check_names(void) {
    char buf[256];
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_ATTN_NORM, 0, -1, 0, NULL, "npy") > 0 &&
              strcmp(buf, "checkpoint_01_attn_norm_l00_s000.npy") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_FFN_OUT, 31, -1, 12, NULL, "txt") > 0 &&
              strcmp(buf, "checkpoint_06_ffn_out_l31_s012.txt") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_LOGITS, -1, -1, 3, NULL, "npy") > 0 &&
              strcmp(buf, "checkpoint_00_logits_s003.npy") == 0,
          "%s", buf);
    /* names from the model file never become paths */
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_GRAPH, -1, -1, 0, "../../etc/passwd", "npy") > 0, "graph");
    CHECK(strchr(buf, '/') == NULL && strstr(buf, "..") == NULL && buf[0] != '.', "unsafe name %s", buf);
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_GRAPH, -1, -1, 0, "cache_k_l0 (view)", "npy") > 0 &&
              strcmp(buf, "graph_cache_k_l0__view__s000.npy") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_file_name(buf, 10, LLORCH_CKPT_ATTN_NORM, 0, -1, 0, NULL, "npy") == -1, "short buffer");
    /* one sequence of a multi-sequence dump */
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_CACHE_K, 2, 3, 1, NULL, "npy") > 0 &&
              strcmp(buf, "checkpoint_03_cache_k_l02_seq03_s001.npy") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_LOGITS, -1, 0, 0, NULL, "npy") > 0 &&
              strcmp(buf, "checkpoint_00_logits_seq00_s000.npy") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_file_name(buf, sizeof buf, LLORCH_CKPT_GRAPH, -1, 1, 0, "x-0", "npy") > 0 &&
              strcmp(buf, "graph_x-0_seq01_s000.npy") == 0,
          "%s", buf);
    CHECK(llorch_ckpt_kind_from_name("kq_soft_max") == LLORCH_CKPT_KQ_SOFT_MAX, "kind lookup");
    CHECK(llorch_ckpt_kind_from_name("nope") == -1, "unknown kind");
    printf("ok: file names, including hostile graph names\n");
}

static void check_selection(void) {
    char                   err[512];
    llorch_ckpt_selection *s = llorch_ckpt_selection_create("1,4,ffn_out", "0-1,5", err, sizeof err);
    CHECK(s != NULL, "%s", err);
    CHECK(llorch_ckpt_selection_has(s, LLORCH_CKPT_ATTN_NORM, 5), "attn_norm layer 5");
    CHECK(!llorch_ckpt_selection_has(s, LLORCH_CKPT_ATTN_NORM, 2), "layer 2 is not selected");
    CHECK(llorch_ckpt_selection_has(s, LLORCH_CKPT_KQ_SOFT_MAX, 1), "4 is kq_soft_max");
    CHECK(!llorch_ckpt_selection_has(s, LLORCH_CKPT_QCUR, 0), "2 was not asked for");
    CHECK(llorch_ckpt_selection_check(s, 6, err, sizeof err) == 0, "6 layers hold layer 5");
    CHECK(llorch_ckpt_selection_check(s, 5, err, sizeof err) == -1 && strstr(err, "layer 5") != NULL, "%s", err);
    llorch_ckpt_selection_free(s);
    s = llorch_ckpt_selection_create("2", NULL, err, sizeof err);
    CHECK(s != NULL && llorch_ckpt_selection_has(s, LLORCH_CKPT_VCUR, 40) &&
              !llorch_ckpt_selection_has(s, LLORCH_CKPT_QCUR_PRE_ROPE, 0),
          "2 = Qcur,Kcur,Vcur");
    llorch_ckpt_selection_free(s);
    const char *bad[][2] = {{"0", NULL}, {"7", NULL},   {"1-9", NULL}, {"attn", NULL}, {"", NULL},
                            {NULL, "a"}, {NULL, "3-1"}, {NULL, "-1"},  {NULL, "1,,2x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = llorch_ckpt_selection_create(bad[i][0], bad[i][1], err, sizeof err);
        CHECK(s == NULL && err[0] != '\0', "'%s' '%s' must be refused", bad[i][0] ? bad[i][0] : "",
              bad[i][1] ? bad[i][1] : "");
    }
    printf("ok: selections and their errors\n");
}

/* The dump that format_checks.py verifies with numpy. */
static void write_dump(const char *dir) {
    char                              err[1024];
    struct llorch_ckpt_writer_options opt = {.text = true};
    llorch_ckpt_writer               *w = llorch_ckpt_writer_open(dir, &opt, err, sizeof err);
    CHECK(w != NULL, "%s", err);

    float ramp[3 * 4];
    for (int i = 0; i < 12; i++) {
        ramp[i] = (float) i * 0.5f - 1.0f;
    }
    ramp[5] = 1.0f / 3.0f; /* needs all 9 digits */
    struct llorch_ckpt_tensor t = {
        .kind = LLORCH_CKPT_ATTN_NORM,
        .layer = 0,
        .step = 0,
        .pos_start = 0,
        .n_pos = 3,
        .n_dims = 2,
        .shape = {3, 4},
        .dtype = LLORCH_CKPT_DTYPE_F32,
        .data = ramp,
    };
    CHECK(llorch_ckpt_writer_write(w, &t) == 0, "%s", llorch_ckpt_writer_error(w));

    /* every f16 bit pattern, to check the text writer's half -> float */
    static uint16_t halves[65536];
    for (int i = 0; i < 65536; i++) {
        halves[i] = (uint16_t) i;
    }
    struct llorch_ckpt_tensor h = {
        .kind = LLORCH_CKPT_CACHE_K,
        .layer = 1,
        .step = 2,
        .pos_start = 7,
        .n_pos = 1,
        .n_key = 256,
        .n_dims = 3,
        .shape = {256, 16, 16},
        .dtype = LLORCH_CKPT_DTYPE_F16,
        .data = halves,
    };
    CHECK(llorch_ckpt_writer_write(w, &h) == 0, "%s", llorch_ckpt_writer_error(w));

    float                     one = 42.0f;
    struct llorch_ckpt_tensor v = {
        .kind = LLORCH_CKPT_LOGITS,
        .layer = -1,
        .step = 2,
        .n_pos = 1,
        .n_dims = 2,
        .shape = {1, 1},
        .dtype = LLORCH_CKPT_DTYPE_F32,
        .data = &one,
    };
    CHECK(llorch_ckpt_writer_write(w, &v) == 0, "%s", llorch_ckpt_writer_error(w));
    CHECK(llorch_ckpt_writer_note_missing(w, LLORCH_CKPT_QCUR_PRE_ROPE, 0, "no RoPE") == 0, "missing");

    int32_t                tokens[] = {1, 15043, 2};
    struct llorch_ckpt_run run = {
        .producer = "test_format",
        .model_path = "none.gguf",
        .model_size = 123,
        .architecture = "test",
        .n_layer = 2,
        .n_embd = 4,
        .n_head = 1,
        .n_head_kv = 1,
        .n_vocab = 32000,
        .tokens = tokens,
        .n_tokens = 3,
        .prompt = "quote \" backslash \\ newline \n end",
        .settings_json = "{\"threads\": 2}",
    };
    CHECK(llorch_ckpt_writer_set_run(w, &run) == 0, "%s", llorch_ckpt_writer_error(w));
    struct llorch_ckpt_run bad_run = run;
    bad_run.settings_json = "{not json";
    CHECK(llorch_ckpt_writer_set_run(w, &bad_run) == -1, "malformed settings must be refused");
    CHECK(llorch_ckpt_writer_set_run(w, &run) == 0, "%s", llorch_ckpt_writer_error(w));

    struct llorch_ckpt_tensor broken = t;
    broken.n_dims = 5;
    CHECK(llorch_ckpt_writer_write(w, &broken) == -1, "5 dims must be refused");
    CHECK(llorch_ckpt_writer_finish(w, true, "ok") == 0, "%s", llorch_ckpt_writer_error(w));
    CHECK(llorch_ckpt_writer_files(w) == 3, "3 files");
    llorch_ckpt_writer_free(w);

    /* the same directory again: not empty any more */
    CHECK(llorch_ckpt_writer_open(dir, NULL, err, sizeof err) == NULL && strstr(err, "not empty"), "%s", err);
    printf("ok: dump written to %s\n", dir);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: test_format OUT_DIR");
    check_names();
    check_selection();
    write_dump(argv[1]);
    return 0;
}

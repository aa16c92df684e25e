/* test_capture_logits.c - capture only reads: the logits with every
 * checkpoint captured (to memory and to disk) equal, bit for bit, the
 * logits of the same run without any callback. Also: an empty selection
 * installs no callback at all.
 *
 * A batch larger than n_ubatch, in one llama_decode, is captured one step
 * per micro-batch: the same logits, and (checked by the test's script) the
 * same dump as decoding the micro-batches one by one.
 *
 *   test_capture_logits MODEL.gguf OUT_DIR SPLIT_DIR */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "llorch_capture.h"
#include "llorch_checkpoint.h"

#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TOKENS 7

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

/* Decodes tokens in steps of `chunk` and returns all logits (n_tokens x n_vocab). */
static float *run(struct llama_model *model, const char *path, llorch_capture *cap, int chunk) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = cp.n_ubatch = (uint32_t) chunk;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (cap != NULL) {
        llorch_capture_attach(cap, &cp);
        CHECK(cp.cb_eval != NULL, "a non-empty selection must install cb_eval");
    }
    struct llama_context *ctx = llama_init_from_model(model, cp);
    CHECK(ctx != NULL, "context for %s", path);
    int    n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    float *logits = malloc(sizeof(float) * (size_t) n_vocab * N_TOKENS);
    if (cap != NULL) {
        CHECK(llorch_capture_prepare(cap, ctx, chunk) == 0 &&
                  (N_TOKENS % chunk == 0 || llorch_capture_prepare(cap, ctx, N_TOKENS % chunk) == 0),
              "prepare: %s", llorch_capture_error(cap));
    }
    for (int pos = 0; pos < N_TOKENS; pos += chunk) {
        int                n = N_TOKENS - pos < chunk ? N_TOKENS - pos : chunk;
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = (llama_token) ((pos + i) * 37 % n_vocab + 1);
            b.pos[i] = pos + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        b.n_tokens = n;
        if (cap != NULL) {
            llorch_capture_begin_step(cap, pos, n);
        }
        CHECK(llama_decode(ctx, b) == 0, "decode");
        if (cap != NULL) {
            CHECK(llorch_capture_end_step(cap) == 0, "capture: %s", llorch_capture_error(cap));
        }
        for (int i = 0; i < n; i++) {
            memcpy(logits + (size_t) (pos + i) * n_vocab, llama_get_logits_ith(ctx, i), sizeof(float) * n_vocab);
        }
        llama_batch_free(b);
    }
    llama_free(ctx);
    return logits;
}

/* All N_TOKENS in one llama_decode, with micro-batches of ubatch tokens. */
static float *run_one_decode(struct llama_model *model, llorch_capture *cap, int ubatch) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = N_TOKENS;
    cp.n_ubatch = (uint32_t) ubatch;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llorch_capture_attach(cap, &cp);
    struct llama_context *ctx = llama_init_from_model(model, cp);
    CHECK(ctx != NULL, "context");
    CHECK(llorch_capture_prepare(cap, ctx, ubatch) == 0 && llorch_capture_prepare(cap, ctx, N_TOKENS % ubatch) == 0,
          "prepare: %s", llorch_capture_error(cap));
    int                n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_init(N_TOKENS, 0, 1);
    for (int i = 0; i < N_TOKENS; i++) {
        b.token[i] = (llama_token) (i * 37 % n_vocab + 1);
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = N_TOKENS;
    llorch_capture_begin_step(cap, 0, N_TOKENS);
    CHECK(llama_decode(ctx, b) == 0, "decode");
    CHECK(llorch_capture_end_step(cap) == 0, "capture: %s", llorch_capture_error(cap));
    float *logits = malloc(sizeof(float) * (size_t) n_vocab * N_TOKENS);
    for (int i = 0; i < N_TOKENS; i++) {
        memcpy(logits + (size_t) i * n_vocab, llama_get_logits_ith(ctx, i), sizeof(float) * n_vocab);
    }
    llama_batch_free(b);
    llama_free(ctx);
    return logits;
}

static void compare_bitwise(const float *a, const float *b, size_t n, const char *what) {
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "logits with capture (%s) differ from logits without", what);
    printf("ok: %zu logits bit-identical with capture to %s\n", n, what);
}

int main(int argc, char **argv) {
    CHECK(argc == 4, "usage: test_capture_logits MODEL OUT_DIR SPLIT_DIR");
    const char *path = argv[1];
    char        err[512];
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    CHECK(model != NULL, "load %s", path);
    size_t n = (size_t) llama_vocab_n_tokens(llama_model_get_vocab(model)) * N_TOKENS;

    /* an empty selection leaves the context parameters untouched */
    llorch_ckpt_selection *none = llorch_ckpt_selection_create("none", NULL, err, sizeof err);
    CHECK(none != NULL && llorch_ckpt_selection_empty(none), "empty selection: %s", err);
    struct llorch_capture_params p = llorch_capture_default_params();
    p.selection = none;
    p.model = model;
    p.sink = LLORCH_CAPTURE_SINK_MEMORY;
    llorch_capture *idle = llorch_capture_create(&p, err, sizeof err);
    CHECK(idle != NULL, "%s", err);
    struct llama_context_params cp = llama_context_default_params();
    llorch_capture_attach(idle, &cp);
    CHECK(cp.cb_eval == NULL && cp.abort_callback == NULL, "an empty selection must install no callback");
    llorch_capture_free(idle);
    printf("ok: an empty selection installs no callback\n");

    float *plain = run(model, path, NULL, N_TOKENS);

    llorch_ckpt_selection *all = llorch_ckpt_selection_create("all", NULL, err, sizeof err);
    CHECK(all != NULL, "%s", err);
    CHECK(llorch_ckpt_selection_add_regex(all, "^kq-", err, sizeof err) == 0, "%s", err);
    p.selection = all;
    llorch_capture *mem = llorch_capture_create(&p, err, sizeof err);
    CHECK(mem != NULL, "%s", err);
    float *with_mem = run(model, path, mem, N_TOKENS);
    CHECK(llorch_capture_finish(mem) == 0, "%s", llorch_capture_error(mem));
    struct llorch_capture_report rep;
    llorch_capture_get_report(mem, &rep);
    CHECK(rep.tensors > 0 && rep.bytes > 0, "nothing was captured");
    compare_bitwise(plain, with_mem, n, "memory");
    llorch_capture_free(mem);

    llorch_ckpt_writer *w = llorch_ckpt_writer_open(argv[2], NULL, err, sizeof err);
    CHECK(w != NULL, "%s", err);
    p.sink = LLORCH_CAPTURE_SINK_WRITE;
    p.writer = w;
    llorch_capture *disk = llorch_capture_create(&p, err, sizeof err);
    CHECK(disk != NULL, "%s", err);
    float *with_disk = run(model, path, disk, 3); /* three steps */
    CHECK(llorch_capture_finish(disk) == 0, "%s", llorch_capture_error(disk));
    CHECK(llorch_ckpt_writer_files(w) > 0, "no file written");
    float *plain3 = run(model, path, NULL, 3);
    compare_bitwise(plain3, with_disk, n, "disk, 3 steps");
    llorch_capture_free(disk);

    /* a batch larger than n_ubatch: llama.cpp computes a graph per
     * micro-batch, the capture follows them as steps, and the logits stay
     * those of decoding the micro-batches one by one */
    llorch_ckpt_writer *w2 = llorch_ckpt_writer_open(argv[3], NULL, err, sizeof err);
    CHECK(w2 != NULL, "%s", err);
    p.writer = w2;
    llorch_capture *split = llorch_capture_create(&p, err, sizeof err);
    CHECK(split != NULL, "%s", err);
    float *one_decode = run_one_decode(model, split, 3);
    CHECK(llorch_capture_finish(split) == 0, "%s", llorch_capture_error(split));
    llorch_capture_get_report(split, &rep);
    compare_bitwise(plain3, one_decode, n, "one llama_decode split into micro-batches of 3");
    CHECK(llorch_ckpt_writer_files(w2) == llorch_ckpt_writer_files(w),
          "the split decode wrote %zu tensors, decoding step by step %zu", llorch_ckpt_writer_files(w2),
          llorch_ckpt_writer_files(w));
    printf("ok: one llama_decode of %d tokens with n_ubatch 3: %zu tensors in 3 steps\n", N_TOKENS,
           llorch_ckpt_writer_files(w2));
    llorch_capture_free(split);
    struct llorch_ckpt_run run_info = {.producer = "test_capture_logits", .architecture = "llama"};
    llorch_ckpt_writer    *both[2] = {w, w2};
    for (int k = 0; k < 2; k++) {
        CHECK(llorch_ckpt_writer_set_run(both[k], &run_info) == 0 &&
                  llorch_ckpt_writer_finish(both[k], true, "ok") == 0,
              "%s", llorch_ckpt_writer_error(both[k]));
        llorch_ckpt_writer_free(both[k]);
    }
    free(one_decode);

    free(plain);
    free(plain3);
    free(with_mem);
    free(with_disk);
    llorch_ckpt_selection_free(none);
    llorch_ckpt_selection_free(all);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

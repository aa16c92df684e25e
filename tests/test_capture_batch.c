/* test_capture_batch.c - llorch_capture_begin_batch: the rules a batch of
 * several sequences must keep are checked before llama_decode, each with
 * a message that names the rule; and a batch that keeps them is captured
 * per sequence, each file holding its sequence's rows and cells only.
 *
 *   test_capture_batch MODEL.gguf OUT_DIR
 *
 * Writes OUT_DIR/batch: sequences 0 (5 tokens) and 1 (3 tokens) in one
 * llama_decode with n_ubatch 4 (so a micro-batch holds both), then one
 * token of each. The test's script compares each sequence with the
 * extractor's run of its tokens alone. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "llorch_capture.h"
#include "llorch_checkpoint.h"
#include "llorch_compare.h"

#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    (void) level;
    (void) text;
}

struct fixture {
    struct llama_model    *model;
    llorch_ckpt_selection *sel;
    llorch_ckpt_writer    *writer;
    llorch_capture        *cap;
    struct llama_context  *ctx;
};

/* A capture and a context with n_seq_max sequences. */
static void open_fixture(struct fixture *f, const char *dir, int n_seq_max, bool unified) {
    char err[512];
    f->sel = llorch_ckpt_selection_create("all", NULL, err, sizeof err);
    f->writer = llorch_ckpt_writer_open(dir, NULL, err, sizeof err);
    fail_if(f->sel == NULL || f->writer == NULL, "selection and writer", err);
    struct llorch_capture_params p = llorch_capture_default_params();
    p.selection = f->sel;
    p.writer = f->writer;
    p.model = f->model;
    f->cap = llorch_capture_create(&p, err, sizeof err);
    fail_if(f->cap == NULL, "capture", err);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 64;
    cp.n_ubatch = 4;
    cp.n_seq_max = (uint32_t) n_seq_max;
    cp.kv_unified = unified;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    llorch_capture_attach(f->cap, &cp);
    f->ctx = llama_init_from_model(f->model, cp);
    fail_if(f->ctx == NULL, "context", NULL);
    fail_if(llorch_capture_prepare(f->cap, f->ctx, 4) != 0 || llorch_capture_prepare(f->cap, f->ctx, 2) != 0, "prepare",
            llorch_capture_error(f->cap));
}

static void close_fixture(struct fixture *f) {
    llorch_capture_free(f->cap);
    llorch_ckpt_writer_free(f->writer);
    llorch_ckpt_selection_free(f->sel);
    llama_free(f->ctx);
}

static void add(struct llama_batch *b, int token, int pos, int seq) {
    int i = b->n_tokens++;
    b->token[i] = token;
    b->pos[i] = pos;
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq;
    b->logits[i] = 1;
}

/* begin_batch refuses the batch, with a message holding `expect`. */
static void expect_refusal(struct llama_model *model, const char *dir, int n_seq_max, bool unified,
                           const struct llama_batch *b, const char *expect) {
    struct fixture f = {.model = model};
    open_fixture(&f, dir, n_seq_max, unified);
    int rc = llorch_capture_begin_batch(f.cap, b);
    fail_if(rc == 0, "refused", expect);
    fail_if(strstr(llorch_capture_error(f.cap), expect) == NULL, llorch_capture_error(f.cap), expect);
    printf("ok: refused: %s\n", llorch_capture_error(f.cap));
    close_fixture(&f);
}

static void check_refusals(struct llama_model *model, const char *out) {
    char               dir[1024];
    struct llama_batch b = llama_batch_init(8, 0, 1);
    add(&b, 5, 0, 0);
    add(&b, 6, 0, 2); /* sequence 2 of a context of 2 */
    snprintf(dir, sizeof dir, "%s/refused-seq", out);
    expect_refusal(model, dir, 2, true, &b, "past the context's n_seq_max 2");
    b.n_tokens = 0;
    add(&b, 5, 0, 0);
    add(&b, 6, 2, 0); /* position 1 skipped */
    snprintf(dir, sizeof dir, "%s/refused-gap", out);
    expect_refusal(model, dir, 2, true, &b, "has position 2 where 1 comes next");
    b.n_tokens = 0;
    add(&b, 5, 0, 0);
    add(&b, 6, 0, 1);
    b.logits[1] = 0;
    snprintf(dir, sizeof dir, "%s/refused-output", out);
    expect_refusal(model, dir, 2, true, &b, "is not an output");
    b.logits[1] = 1;
    snprintf(dir, sizeof dir, "%s/refused-unified", out);
    expect_refusal(model, dir, 2, false, &b, "kv_unified = true");
    llama_batch_free(b);
}

/* Two sequences: 5 and 3 tokens in one batch (micro-batches of 4 hold
 * both), then one token each. */
static void capture_batch(struct llama_model *model, const char *out) {
    char           dir[1024];
    struct fixture f = {.model = model};
    snprintf(dir, sizeof dir, "%s/batch", out);
    open_fixture(&f, dir, 2, true);
    static const int32_t s0[] = {1, 450, 4996, 17354, 1701, 29916}, s1[] = {1, 15043, 3186, 1576};
    struct llama_batch   b = llama_batch_init(8, 0, 1);
    for (int i = 0; i < 5; i++) {
        add(&b, s0[i], i, 0);
    }
    for (int i = 0; i < 3; i++) {
        add(&b, s1[i], i, 1);
    }
    fail_if(llorch_capture_begin_batch(f.cap, &b) != 0, "begin_batch", llorch_capture_error(f.cap));
    fail_if(llama_decode(f.ctx, b) != 0 || llorch_capture_end_step(f.cap) != 0, "decode", llorch_capture_error(f.cap));
    b.n_tokens = 0;
    add(&b, s0[5], 5, 0);
    add(&b, s1[3], 3, 1);
    fail_if(llorch_capture_begin_batch(f.cap, &b) != 0, "begin_batch", llorch_capture_error(f.cap));
    fail_if(llama_decode(f.ctx, b) != 0 || llorch_capture_end_step(f.cap) != 0, "decode", llorch_capture_error(f.cap));
    fail_if(llorch_capture_finish(f.cap) != 0, "finish", llorch_capture_error(f.cap));
    static const int32_t              all[] = {1, 450, 4996, 17354, 1701, 1, 15043, 3186, 29916, 1576};
    const struct llorch_ckpt_sequence seqs[] = {{0, s0, 6, NULL}, {1, s1, 4, NULL}};
    struct llorch_ckpt_run            run = {.producer = "test_capture_batch",
                                             .architecture = "llama",
                                             .tokens = all,
                                             .n_tokens = 10,
                                             .n_layer = llama_model_n_layer(model),
                                             .n_embd = llama_model_n_embd(model),
                                             .n_head = llama_model_n_head(model),
                                             .n_head_kv = llama_model_n_head_kv(model),
                                             .n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model)),
                                             .sequences = seqs,
                                             .n_sequences = 2};
    fail_if(llorch_ckpt_writer_set_run(f.writer, &run) != 0 || llorch_ckpt_writer_finish(f.writer, true, "ok") != 0,
            "manifest", llorch_ckpt_writer_error(f.writer));
    llama_batch_free(b);
    close_fixture(&f);
}

/* The cache of sequence 1 after the last step: cells 5, 6, 7 (its prompt,
 * after sequence 0's five) and 9 (its generated token, after sequence 0's). */
static void check_cells(const char *out) {
    char              dir[1024], err[512];
    const int64_t     want[] = {5, 6, 7, 9};
    bool              seen = false;
    llorch_ckpt_dump *d;
    snprintf(dir, sizeof dir, "%s/batch", out);
    d = llorch_ckpt_dump_open(dir, err, sizeof err);
    fail_if(d == NULL, "read the dump", err);
    for (size_t i = 0; i < llorch_ckpt_dump_n_entries(d); i++) {
        const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
        if (strcmp(e->checkpoint, "cache_k") == 0 && e->layer == 0 && e->step == 2 && e->seq == 1) {
            fail_if(e->n_key != 4 || e->cells == NULL || memcmp(e->cells, want, sizeof want) != 0,
                    "cells of sequence 1", e->file);
            seen = true;
        }
    }
    fail_if(!seen, "cache_k of layer 0, sequence 1, step 2", "not in the dump");
    printf("ok: sequence 1's cache is cells 5, 6, 7, 9 (%s)\n", dir);
    llorch_ckpt_dump_free(d);
}

int main(int argc, char **argv) {
    fail_if(argc != 3, "usage", "test_capture_batch MODEL OUT_DIR");
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    fail_if(model == NULL, "load", argv[1]);
    check_refusals(model, argv[2]);
    capture_batch(model, argv[2]);
    check_cells(argv[2]);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

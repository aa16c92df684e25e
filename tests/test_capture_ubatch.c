/* test_capture_ubatch.c - the library splits a large batch itself: N
 * tokens in one llama_decode, with n_ubatch U, are captured as one step
 * per micro-batch, each at its derived positions. The test's script
 * compares the dump with the extractor's one-batch run of the same tokens.
 *
 *   test_capture_ubatch MODEL.gguf OUT_DIR N U */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "llorch_capture.h"
#include "llorch_checkpoint.h"

#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static struct llama_context *make_context(struct llama_model *model, llorch_capture *cap, int n, int ubatch) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = (uint32_t) n;
    cp.n_ubatch = (uint32_t) ubatch;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    llorch_capture_attach(cap, &cp);
    return llama_init_from_model(model, cp);
}

int main(int argc, char **argv) {
    fail_if(argc != 5, "usage", "test_capture_ubatch MODEL OUT_DIR N U");
    int  n = atoi(argv[3]), ubatch = atoi(argv[4]);
    char err[512];
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    fail_if(model == NULL, "load", argv[1]);

    llorch_ckpt_selection *sel = llorch_ckpt_selection_create("1-6", NULL, err, sizeof err);
    llorch_ckpt_writer    *w = llorch_ckpt_writer_open(argv[2], NULL, err, sizeof err);
    fail_if(sel == NULL || w == NULL, "selection and writer", err);
    struct llorch_capture_params p = llorch_capture_default_params();
    p.selection = sel;
    p.writer = w;
    p.model = model;
    llorch_capture *cap = llorch_capture_create(&p, err, sizeof err);
    fail_if(cap == NULL, "capture", err);
    struct llama_context *ctx = make_context(model, cap, n, ubatch);
    fail_if(ctx == NULL, "context", NULL);
    fail_if(llorch_capture_prepare(cap, ctx, ubatch) != 0 ||
                (n % ubatch != 0 && llorch_capture_prepare(cap, ctx, n % ubatch) != 0),
            "prepare", llorch_capture_error(cap));

    int                n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    int32_t           *ids = malloc((size_t) n * sizeof *ids);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i] = (i * 37) % n_vocab + 1;
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    llorch_capture_begin_step(cap, 0, n); /* one step announced; the capture finds the micro-batches */
    fail_if(llama_decode(ctx, b) != 0, "decode", NULL);
    fail_if(llorch_capture_end_step(cap) != 0 || llorch_capture_finish(cap) != 0, "capture", llorch_capture_error(cap));

    struct llorch_ckpt_run run = {.producer = "test_capture_ubatch",
                                  .architecture = "llama",
                                  .tokens = ids,
                                  .n_tokens = n,
                                  .n_layer = llama_model_n_layer(model),
                                  .n_embd = llama_model_n_embd(model),
                                  .n_head = llama_model_n_head(model),
                                  .n_head_kv = llama_model_n_head_kv(model),
                                  .n_vocab = n_vocab};
    fail_if(llorch_ckpt_writer_set_run(w, &run) != 0 || llorch_ckpt_writer_finish(w, true, "ok") != 0, "manifest",
            llorch_ckpt_writer_error(w));
    printf("ok: %d tokens in one llama_decode with n_ubatch %d: %zu tensors written\n", n, ubatch,
           llorch_ckpt_writer_files(w));
    llorch_capture_free(cap);
    llorch_ckpt_writer_free(w);
    llorch_ckpt_selection_free(sel);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(ids);
    return 0;
}

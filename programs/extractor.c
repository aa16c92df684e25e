/* llorch-checkpoint-extractor - run a GGUF model in llama.cpp and write its
 * checkpoints as a dump (docs/FORMAT.md).
 *
 * main() reads top to bottom: options, model, tokens, selection, output,
 * capture, context; then the decode steps, of one sequence
 * (extractor_single.c) or of several with --parallel
 * (extractor_sequences.c); then the manifest and a summary. The files it
 * calls never call back (extractor.h). */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_version(void) {
    printf(PROG " %s\n", LLORCH_CKPT_VERSION);
    printf("llama.cpp %.12s from %s, %s\n", LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE,
           LLORCH_LLAMA_PATCHED < 0 ? "patch unknown (installed; each dump records whether its names were seen)"
           : LLORCH_LLAMA_PATCHED   ? "patched (names cache_k, cache_v, attn_out_proj)"
                                    : "unpatched (checkpoints found by graph structure)");
    printf("dump format %s %d\n", LLORCH_CKPT_FORMAT_NAME, LLORCH_CKPT_FORMAT_VERSION);
}

static void run_free(struct extractor_run *r) {
    llorch_capture_free(r->capture);
    llorch_ckpt_writer_free(r->writer); /* without a manifest, it removes what it wrote */
    llorch_ckpt_selection_free(r->selection);
    if (r->ctx != NULL) {
        llama_free(r->ctx);
    }
    if (r->threadpool != NULL) {
        ggml_threadpool_free(r->threadpool);
    }
    if (r->model != NULL) {
        llama_model_free(r->model);
    }
    free(r->tokens);
    free(r->prompt_text);
    extractor_free_sequences(r);
    extractor_free_feed(r);
}

/* The tokens: of one sequence, or of each of --parallel N. */
static int get_tokens(struct extractor_run *r) {
    return r->opt.parallel > 0 ? extractor_get_sequences(r) : extractor_get_tokens(r);
}

/* The decode steps, once the graphs are recorded: 0, 1 (failed) or 130
 * (interrupted). */
static int run_steps(struct extractor_run *r) {
    extractor_catch_signals(r->capture);
    return r->n_seqs > 0 ? extractor_run_sequences(r) : extractor_run_steps(r);
}

/* After the steps: the writer's last files, the manifest (also of an
 * interrupted run, marked incomplete), the summary. */
static int finish(struct extractor_run *r, int rc) {
    if (llorch_capture_finish(r->capture) != 0 && rc != 130) {
        return extractor_fail("%s", llorch_capture_error(r->capture)); /* no manifest: the dump is not complete */
    }
    if (rc == 1) {
        return extractor_fail(
            "llama_decode failed at step %d (llama.cpp: %s); if it ran out of memory, lower -ub or -c", r->steps - 1,
            extractor_llama_reason());
    }
    if (r->writer != NULL && extractor_write_manifest(r, rc == 0, rc == 130 ? "interrupted" : "ok") != 0) {
        return 1;
    }
    if (rc == 130) {
        fprintf(stderr, PROG ": interrupted; the manifest marks the dump incomplete\n");
    }
    extractor_print_summary(r);
    return rc;
}

int main(int argc, char **argv) {
    struct extractor_run r;
    memset(&r, 0, sizeof r);
    int rc = extractor_parse_options(argc, argv, &r.opt);
    if (rc == 3) {
        print_version();
        return 0;
    }
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    extractor_log_init(r.opt.verbose);
    llama_backend_init();

    /* each stage runs only if the ones before it succeeded */
    int (*const stages[])(struct extractor_run *) = {
        extractor_load_model,   extractor_open_feed,      get_tokens,
        extractor_load_feed,    extractor_make_selection, extractor_choose_flash_attn,
        extractor_open_output,  extractor_create_capture, extractor_create_context,
        extractor_prepare_steps};
    for (size_t k = 0; k < sizeof stages / sizeof stages[0] && rc == 0; k++) {
        rc = stages[k](&r);
    }
    if (rc == 0) {
        rc = finish(&r, run_steps(&r));
    }
    run_free(&r);
    llama_backend_free();
    return rc;
}

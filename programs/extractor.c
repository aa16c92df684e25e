/* llorch-checkpoint-extractor - run a GGUF model in llama.cpp and write its
 * checkpoints as a dump (docs/FORMAT.md).
 *
 * main() reads top to bottom: options, model, tokens, selection, output,
 * capture, context, the decode steps, then the manifest and a summary. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static llorch_capture *volatile interrupt_target;
volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void) sig;
    interrupted = 1;
    if (interrupt_target != NULL) {
        llorch_capture_request_stop(interrupt_target);
    }
}

int exit_bad_input(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

/* llama.cpp's log is shown with -v only; its first error is kept so that
 * our one-line error can say why. */
static bool verbose_log;
static char llama_first_error[256];
static void log_filter(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (verbose_log) {
        fputs(text, stderr);
    }
    if (level == GGML_LOG_LEVEL_ERROR && llama_first_error[0] == '\0') {
        snprintf(llama_first_error, sizeof llama_first_error, "%s", text);
        llama_first_error[strcspn(llama_first_error, "\n")] = '\0';
    }
}

const char *llama_reason(void) {
    return llama_first_error[0] != '\0' ? llama_first_error : "no reason given; run with -v";
}

static void print_version(void) {
    printf(PROG " %s\n", LLORCH_CKPT_VERSION);
    printf("llama.cpp %.12s from %s, %s\n", LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE,
           LLORCH_LLAMA_PATCHED < 0 ? "patch unknown (installed; each dump records whether its names were seen)"
           : LLORCH_LLAMA_PATCHED   ? "patched (names cache_k, cache_v, attn_out_proj)"
                                    : "unpatched (checkpoints found by graph structure)");
    printf("dump format %s %d\n", LLORCH_CKPT_FORMAT_NAME, LLORCH_CKPT_FORMAT_VERSION);
}

/* --- main ------------------------------------------------------------------ */

static void run_free(struct run *r) {
    llorch_capture_free(r->capture);
    llorch_ckpt_writer_free(r->writer);
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
    free_sequences(r);
    free_feed(r);
}

static int finish(struct run *r, int rc) {
    if (llorch_capture_finish(r->capture) != 0 && rc != 130) {
        fprintf(stderr, PROG ": error: %s\n", llorch_capture_error(r->capture));
        return 1; /* no manifest: the dump is not complete */
    }
    if (rc == 1) {
        fprintf(stderr, PROG ": error: llama_decode failed (llama.cpp: %s)\n", llama_reason());
        return 1;
    }
    if (r->writer != NULL && write_manifest(r, rc == 0, rc == 130 ? "interrupted" : "ok") != 0) {
        return 1;
    }
    if (rc == 130) {
        fprintf(stderr, PROG ": interrupted; the manifest marks the dump incomplete\n");
    }
    print_summary(r);
    return rc;
}

int main(int argc, char **argv) {
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = extractor_parse_options(argc, argv, &r.opt);
    if (rc == 3) {
        print_version();
        return 0;
    }
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    verbose_log = r.opt.verbose;
    llama_log_set(log_filter, NULL);
    llama_backend_init();

    /* each stage runs only if the ones before it succeeded */
    int (*const stages[])(struct run *) = {load_model,  open_feed,      get_tokens,
                                           load_feed,   make_selection, choose_flash_attn,
                                           open_output, create_capture, create_context};
    rc = 0;
    for (size_t k = 0; k < sizeof stages / sizeof stages[0] && rc == 0; k++) {
        rc = stages[k](&r);
    }
    if (rc == 0) {
        interrupt_target = r.capture;
        signal(SIGINT, on_sigint);
        signal(SIGXFSZ, SIG_IGN); /* a file-size limit becomes a write error, not a kill */
        rc = finish(&r, run_steps(&r));
    }
    run_free(&r);
    llama_backend_free();
    return rc;
}

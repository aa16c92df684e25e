/* bench_capture.c - what capture costs, measured side by side in one run.
 *
 *   bench_capture MODEL.gguf SCRATCH_DIR [--tokens N] [--reps N] [--threads 1,2]
 *
 * For each thread count, four llama.cpp contexts on the same model decode
 * the same N-token prompt (every token an output), in turn, rep after rep:
 *   plain    no callback at all (llama.cpp alone)
 *   idle     the capture library attached with nothing requested
 *   memory   all six checkpoints of every layer copied to memory, then dropped
 *   disk     the same, written to SCRATCH_DIR by the writer thread
 * All four share one ggml threadpool (no polling), as the extractor does.
 * A run's time is llama_decode plus, for disk, waiting until the writer has
 * written the run's files (llorch_capture_sync): the files exist when the
 * clock stops. Every rep writes new files (its own step number), as a real
 * run does; nothing is deleted in between (deleting files makes ext4's next
 * file creations slower). Each thread count starts after a sync(), and the
 * default 9 reps keep the dirty pages (~0.5 GB) under the kernel's
 * writeback threshold, which one real run of this size never reaches.
 * Ratios are medians of per-rep ratios against plain. */
#define _XOPEN_SOURCE 700   /* sync() */
#include "llorch_capture.h"
#include "llorch_checkpoint.h"

#include <ggml-cpu.h>
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PLAIN, IDLE, MEMORY, DISK, N_CONFIGS };
static const char *config_names[N_CONFIGS] = {"plain", "idle", "memory", "disk"};

struct config {
    llorch_ckpt_selection *selection;
    llorch_ckpt_writer    *writer;
    llorch_capture        *capture;
    struct llama_context  *ctx;
    double                *seconds;   /* per rep */
    size_t                 bytes_per_run;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_capture: %s: %s\n", what, why);
    exit(1);
}

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static void setup(struct config *c, int which, struct llama_model *model, const char *scratch,
                  struct ggml_threadpool *pool, int threads, int n_tokens, int reps) {
    char err[1024], dir[4096];
    memset(c, 0, sizeof *c);
    c->seconds = calloc((size_t) reps, sizeof(double));
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) ((n_tokens + 255) / 256 * 256);
    cp.n_batch = cp.n_ubatch = (uint32_t) n_tokens;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;   /* kq_soft_max is captured */
    if (which != PLAIN) {
        c->selection = llorch_ckpt_selection_create(which == IDLE ? "none" : "1-6", NULL, err, sizeof err);
        if (c->selection == NULL) die("selection", err);
        struct llorch_capture_params p = llorch_capture_default_params();
        p.selection = c->selection;
        p.model = model;
        p.sink = which == DISK ? LLORCH_CAPTURE_WRITE : LLORCH_CAPTURE_MEMORY;
        if (which == DISK) {
            snprintf(dir, sizeof dir, "%s/disk-t%d", scratch, threads);
            struct llorch_ckpt_writer_options wo = {.allow_nonempty = true};
            c->writer = llorch_ckpt_writer_open(dir, &wo, err, sizeof err);
            if (c->writer == NULL) die("writer", err);
            p.writer = c->writer;
        }
        c->capture = llorch_capture_create(&p, err, sizeof err);
        if (c->capture == NULL) die("capture", err);
        llorch_capture_attach(c->capture, &cp);
    }
    c->ctx = llama_init_from_model(model, cp);
    if (c->ctx == NULL) die("context", config_names[which]);
    llama_attach_threadpool(c->ctx, pool, pool);
    if (c->capture != NULL && llorch_capture_prepare(c->capture, c->ctx, n_tokens) != 0) {
        die("prepare", llorch_capture_error(c->capture));
    }
}

static double run_once(struct config *c, const llama_token *tokens, int n) {
    llama_memory_clear(llama_get_memory(c->ctx), true);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = tokens[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (c->capture != NULL) {
        llorch_capture_begin_step(c->capture, 0, n);
    }
    double start = now_seconds();
    if (llama_decode(c->ctx, b) != 0) die("decode", "failed");
    if (c->capture != NULL && llorch_capture_sync(c->capture) != 0) die("capture", llorch_capture_error(c->capture));
    double seconds = now_seconds() - start;
    if (c->capture != NULL) {
        /* each rep is a step of its own: new files, as in a real run, never
         * a rename over the last rep's (which would time file deletion) */
        llorch_capture_end_step(c->capture);
    }

    llama_batch_free(b);
    return seconds;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t) n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Bytes the six checkpoints of every layer hold for one n-token run. */
static size_t expected_bytes(const struct llama_model *m, int n) {
    size_t E = (size_t) llama_model_n_embd(m), H = (size_t) llama_model_n_head(m);
    size_t Hkv = (size_t) llama_model_n_head_kv(m), D = E / H, T = (size_t) n;
    size_t per_layer = T * E            /* attn_norm */
                     + T * E + 2 * T * Hkv * D   /* Qcur, Kcur, Vcur */
                     + 2 * T * Hkv * D           /* cache_k, cache_v: T valid cells */
                     + H * T * T                 /* kq_soft_max: T valid keys */
                     + T * E + T * E;            /* attn_out_proj, ffn_out */
    return 4 * per_layer * (size_t) llama_model_n_layer(m);
}

static void bench_threads(struct llama_model *model, const char *scratch, int threads,
                          const llama_token *tokens, int n, int reps) {
    sync();   /* start from clean page-cache state: earlier writes are on disk */
    /* one threadpool for all four contexts, as the extractor does: without
     * it (and without OpenMP) ggml starts threads for every graph split */
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
    tpp.poll = 0;
    struct ggml_threadpool *pool = ggml_threadpool_new(&tpp);
    struct config c[N_CONFIGS];
    for (int k = 0; k < N_CONFIGS; k++) {
        setup(&c[k], k, model, scratch, pool, threads, n, reps);
        run_once(&c[k], tokens, n);   /* warm-up: first-touch allocations, page cache */
    }
    struct llorch_capture_report before;
    llorch_capture_get_report(c[DISK].capture, &before);
    size_t written_before = llorch_ckpt_writer_bytes(c[DISK].writer);
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < N_CONFIGS; k++) {
            int which = (k + r) % N_CONFIGS;     /* rotate the order: no config always runs first */
            c[which].seconds[r] = run_once(&c[which], tokens, n);
        }
    }
    struct llorch_capture_report after;
    llorch_capture_get_report(c[DISK].capture, &after);
    size_t captured = (after.bytes - before.bytes) / (size_t) reps;
    size_t written = (llorch_ckpt_writer_bytes(c[DISK].writer) - written_before) / (size_t) reps;

    double ratio[N_CONFIGS][64], base = 0;
    double plain_copy[64];
    memcpy(plain_copy, c[PLAIN].seconds, sizeof(double) * (size_t) reps);
    base = median(plain_copy, reps);
    printf("\n%d thread%s, %d-token prompt, %d reps (median)\n", threads, threads == 1 ? "" : "s", n, reps);
    printf("  %-8s %10s %10s\n", "config", "seconds", "ratio");
    for (int k = 0; k < N_CONFIGS; k++) {
        for (int r = 0; r < reps; r++) {
            ratio[k][r] = c[k].seconds[r] / c[PLAIN].seconds[r];
        }
        double secs = median(c[k].seconds, reps);
        printf("  %-8s %10.4f %10.3f\n", config_names[k], secs, median(ratio[k], reps));
    }
    printf("  disk: writer thread busy %.4f s per run, capture copies %.4f s per run\n",
           (after.write_seconds - before.write_seconds) / reps, (after.copy_seconds - before.copy_seconds) / reps);
    printf("  bytes per run: checkpoints hold %zu, captured %zu, written %zu (%s)\n", expected_bytes(model, n),
           captured, written, written == expected_bytes(model, n) ? "each tensor once" : "MISMATCH");
    (void) base;
    for (int k = 0; k < N_CONFIGS; k++) {
        llama_free(c[k].ctx);
        llorch_capture_free(c[k].capture);
        llorch_ckpt_writer_free(c[k].writer);
        llorch_ckpt_selection_free(c[k].selection);
        free(c[k].seconds);
    }
    ggml_threadpool_free(pool);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_capture MODEL.gguf SCRATCH_DIR [--tokens N] [--reps N] [--threads 1,2]\n");
        return 2;
    }
    int n = 128, reps = 9;
    const char *thread_list = "1,2";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tokens") == 0) n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) thread_list = argv[i + 1];
    }
    if (n < 1 || reps < 1 || reps > 64) die("arguments", "--tokens >= 1, 1 <= --reps <= 64");
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (model == NULL) die(argv[1], "cannot load");
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_token *tokens = malloc(sizeof *tokens * (size_t) n);
    for (int i = 0; i < n; i++) {
        tokens[i] = (llama_token) ((i * 7919 + 13) % n_vocab);
    }
    printf("model %s: %d layers, n_embd %d, %d heads\n", argv[1], llama_model_n_layer(model),
           llama_model_n_embd(model), llama_model_n_head(model));
    char list[64];
    snprintf(list, sizeof list, "%s", thread_list);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        bench_threads(model, argv[2], atoi(t), tokens, n, reps);
    }
    free(tokens);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

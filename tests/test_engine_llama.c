/*
 * test_engine_llama.c - the independent check of llorch-ref-engine: runs the
 * tokens of an engine dump through llama.cpp itself and compares llama.cpp's
 * logits with the engine's `logits` checkpoint.
 *
 *   test_engine_llama MODEL.gguf DUMP_DIR TOLERANCE [KV_TYPE]
 *
 * DUMP_DIR is a one-step engine dump (no -ub, no -n) holding tokens.npy and
 * checkpoint_00_logits_s000.npy. llama.cpp runs with what makes its numbers
 * comparable: an f32 KV cache (or KV_TYPE f16, for a dump made with
 * --kv-type f16), flash attention off, no weight repacking, every
 * token an output, the whole prompt in one ubatch.
 *
 * The error measure is scale-free: for each token, the largest
 * |engine - llama.cpp| over the vocabulary divided by the largest |logit| of
 * llama.cpp's row. The test passes when it is <= TOLERANCE for every token.
 */
#include "test_engine_npy.h"

#include <llama.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void) user;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static enum ggml_type kv_type = GGML_TYPE_F32;

static struct llama_context *open_context(struct llama_model *model, int n_tokens) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) (n_tokens < 64 ? 64 : n_tokens);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = kv_type;
    cp.type_v = kv_type;
    return llama_init_from_model(model, cp);
}

/* llama.cpp's logits for every token, [n_tokens][n_vocab]; NULL on failure. */
static float *llama_logits(const char *path, const int32_t *tokens, int n_tokens, int *n_vocab) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = false; /* no repacking: AMX crashes on this host, and it changes F16 numbers */
    struct llama_model   *model = llama_model_load_from_file(path, mp);
    struct llama_context *ctx = model != NULL ? open_context(model, n_tokens) : NULL;
    float                *out = NULL;
    if (ctx != NULL) {
        *n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
        struct llama_batch batch = llama_batch_init(n_tokens, 0, 1);
        for (int i = 0; i < n_tokens; i++) {
            batch.token[i] = tokens[i];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1; /* every token an output */
        }
        batch.n_tokens = n_tokens;
        out = llama_decode(ctx, batch) == 0 ? malloc((size_t) n_tokens * *n_vocab * sizeof *out) : NULL;
        if (out != NULL) {
            for (int i = 0; i < n_tokens; i++) {
                memcpy(&out[(size_t) i * *n_vocab], llama_get_logits_ith(ctx, i), (size_t) *n_vocab * sizeof *out);
            }
        }
        llama_batch_free(batch);
    }
    if (ctx != NULL) {
        llama_free(ctx);
    }
    if (model != NULL) {
        llama_model_free(model);
    }
    return out;
}

/* Prints the per-token errors; returns the worst scale-free error. */
static double compare(const float *engine, const float *ref, int n_tokens, int n_vocab) {
    double worst = 0.0;
    for (int t = 0; t < n_tokens; t++) {
        double max_err = 0.0, scale = 0.0;
        for (int v = 0; v < n_vocab; v++) {
            size_t i = (size_t) t * n_vocab + v;
            max_err = fmax(max_err, fabs((double) engine[i] - ref[i]));
            scale = fmax(scale, fabs((double) ref[i]));
        }
        double rel = max_err / (scale > 0.0 ? scale : 1.0);
        printf("  token %3d: max |engine - llama.cpp| = %.3g, max |logit| = %.3g, ratio %.3g\n", t, max_err, scale,
               rel);
        worst = fmax(worst, rel);
    }
    return worst;
}

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && (strcmp(argv[4], "f32") == 0 || strcmp(argv[4], "f16") == 0))) {
        fprintf(stderr, "usage: test_engine_llama MODEL.gguf DUMP_DIR TOLERANCE [f32|f16]\n");
        return 2;
    }
    if (argc == 5 && strcmp(argv[4], "f16") == 0) {
        kv_type = GGML_TYPE_F16;
    }
    char       path[4096];
    struct npy tokens, logits;
    snprintf(path, sizeof path, "%s/tokens.npy", argv[2]);
    if (npy_read(path, &tokens) != 0) {
        return 1;
    }
    snprintf(path, sizeof path, "%s/checkpoint_00_logits_s000.npy", argv[2]);
    if (npy_read(path, &logits) != 0) {
        return 1;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    int    n_tokens = (int) tokens.count, n_vocab = 0;
    float *ref = llama_logits(argv[1], tokens.data, n_tokens, &n_vocab);
    int    rc = 1;
    if (ref == NULL) {
        fprintf(stderr, "llama.cpp could not run %s\n", argv[1]);
    } else if (logits.n_dims != 2 || logits.shape[0] != n_tokens || logits.shape[1] != n_vocab) {
        fprintf(stderr, "engine logits have shape (%lld, %lld), llama.cpp (%d, %d)\n", (long long) logits.shape[0],
                (long long) logits.shape[1], n_tokens, n_vocab);
    } else {
        double tolerance = atof(argv[3]);
        double worst = compare(logits.data, ref, n_tokens, n_vocab);
        printf("%s: worst error %.3g of the logit scale (tolerance %.3g)\n", argv[1], worst, tolerance);
        rc = worst <= tolerance ? 0 : 1;
    }
    free(ref);
    npy_free(&tokens);
    npy_free(&logits);
    llama_backend_free();
    return rc;
}

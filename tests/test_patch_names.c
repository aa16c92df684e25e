/*
 * test_patch_names.c - our llama.cpp patch (patches/llama-graph-checkpoint-
 * names.patch) names the tensors the extractor looks for.
 *
 *   test_patch_names DATA_DIR     uses tiny-gpt2-f32.gguf and tiny-llama-f32.gguf
 *
 * A cb_eval callback records every graph node the scheduler asks about
 * (flash attention off, as the extractor runs it) with its op and sources.
 * For every layer N:
 *   cache_k-N, cache_v-N  views of the layer's K and V cache (src: cache_k_lN, cache_v_lN)
 *   gpt2:  attn_out_proj-N  the ADD of blk.N.attn_output.bias
 *   llama: attn_out-N       the MUL_MAT with blk.N.attn_output.weight (the llama
 *                           builder renames the patch's attn_out_proj-N)
 * Exit 77 (skipped) when llama.cpp was built without the patch.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ggml.h"
#include "llama.h"

#ifndef LLAMA_PATCHED
#error "LLAMA_PATCHED must be defined (0 or 1)"
#endif

static int failures;

/* One node the scheduler asked about. */
struct seen {
    char         name[GGML_MAX_NAME];
    enum ggml_op op;
    char         src0[GGML_MAX_NAME], src1[GGML_MAX_NAME];
};

struct seen_list {
    struct seen *items;
    size_t       n, cap;
};

static void copy_name(char *dst, const struct ggml_tensor *t) {
    snprintf(dst, GGML_MAX_NAME, "%s", t ? ggml_get_name(t) : "");
}

/* Records in the ask phase and answers false: nothing is computed twice and
 * the data phase is never needed. */
static bool record(struct ggml_tensor *t, bool ask, void *user_data) {
    struct seen_list *l = user_data;
    if (!ask) {
        return true;
    }
    if (l->n == l->cap) {
        size_t       cap = l->cap ? 2 * l->cap : 256;
        struct seen *items = realloc(l->items, cap * sizeof(*items));
        if (!items) {
            return false;
        }
        l->items = items;
        l->cap = cap;
    }
    struct seen *s = &l->items[l->n++];
    copy_name(s->name, t);
    s->op = t->op;
    copy_name(s->src0, t->src[0]);
    copy_name(s->src1, t->src[1]);
    return false;
}

static const struct seen *find(const struct seen_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].name, name) == 0) {
            return &l->items[i];
        }
    }
    return NULL;
}

/* The tensor called name exists; if op is given, some tensor of that name
 * has this op and a source called src (src0 or src1). */
static void expect(const struct seen_list *l, const char *file, const char *name, enum ggml_op op, const char *src) {
    const struct seen *s = find(l, name);
    EXPECT(s != NULL, "%s: no tensor named %s", file, name);
    if (!s || !src) {
        return;
    }
    bool match = false;
    for (size_t i = 0; i < l->n; i++) {
        const struct seen *x = &l->items[i];
        match |= strcmp(x->name, name) == 0 && x->op == op && (strcmp(x->src0, src) == 0 || strcmp(x->src1, src) == 0);
    }
    EXPECT(match, "%s: %s is not a %s of %s (first one: %s of %s, %s)", file, name, ggml_op_name(op), src,
           ggml_op_name(s->op), s->src0, s->src1);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void) user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

/* Decodes a few tokens with the recording callback installed. */
static bool collect(const char *path, struct seen_list *seen, int *n_layer) {
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false; /* AMX repacking crashes on this host */
    struct llama_model *m = llama_model_load_from_file(path, mp);
    EXPECT(m != NULL, "cannot load %s", path);
    if (!m) {
        return false;
    }
    *n_layer = llama_model_n_layer(m);

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 32;
    cp.n_batch = cp.n_ubatch = 32;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; /* the extractor's setting */
    cp.cb_eval = record;
    cp.cb_eval_user_data = seen;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    EXPECT(ctx != NULL, "cannot create a context for %s", path);

    bool ok = false;
    if (ctx) {
        llama_token        tokens[4] = {1, 2, 3, 4};
        struct llama_batch batch = llama_batch_init(4, 0, 1);
        for (int i = 0; i < 4; i++) {
            batch.token[i] = tokens[i];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        batch.n_tokens = 4;
        ok = llama_decode(ctx, batch) == 0;
        EXPECT(ok, "llama_decode failed on %s", path);
        llama_batch_free(batch);
        llama_free(ctx);
    }
    llama_model_free(m);
    return ok;
}

static void check_model(const char *dir, const char *file, bool gpt2) {
    char path[4096], name[64], src[96];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct seen_list seen = {0};
    int              n_layer = 0;
    if (collect(path, &seen, &n_layer)) {
        EXPECT(n_layer == 2, "%s: %d layers", file, n_layer);
        /* The callback works at all: an unpatched name every build has. */
        expect(&seen, file, "attn_norm-0", GGML_OP_COUNT, NULL);
        for (int il = 0; il < n_layer; il++) {
            snprintf(name, sizeof(name), "cache_k-%d", il);
            snprintf(src, sizeof(src), "cache_k_l%d", il);
            expect(&seen, file, name, GGML_OP_VIEW, src);
            snprintf(name, sizeof(name), "cache_v-%d", il);
            snprintf(src, sizeof(src), "cache_v_l%d", il);
            expect(&seen, file, name, GGML_OP_VIEW, src);
            if (gpt2) {
                snprintf(name, sizeof(name), "attn_out_proj-%d", il);
                snprintf(src, sizeof(src), "blk.%d.attn_output.bias", il);
                expect(&seen, file, name, GGML_OP_ADD, src);
            } else {
                snprintf(name, sizeof(name), "attn_out-%d", il);
                snprintf(src, sizeof(src), "blk.%d.attn_output.weight", il);
                expect(&seen, file, name, GGML_OP_MUL_MAT, src);
            }
        }
        snprintf(name, sizeof(name), "cache_k-%d", n_layer);
        EXPECT(find(&seen, name) == NULL, "%s: %s exists past the last layer", file, name);
        printf("%s: %zu nodes asked about, patch names present in all %d layers\n", file, seen.n, n_layer);
    }
    free(seen.items);
}

int main(int argc, char **argv) {
    if (!LLAMA_PATCHED) {
        printf("llama.cpp is built without the checkpoint-names patch: skipped\n");
        return 77;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    check_model(argv[1], "tiny-gpt2-f32.gguf", true);
    check_model(argv[1], "tiny-llama-f32.gguf", false);
    llama_backend_free();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}

/* test_identify_layers.c - a layer number read from a tensor's name is a
 * hint, never an index: a graph whose KV cache is named for layer 7 in a
 * model of 2 layers (a cache of extra, e.g. next-token-prediction, layers;
 * or a name the model does not follow) must be identified without any
 * role or absence for a layer outside 0..n_layer-1, and without reading
 * past a per-layer table (run under AddressSanitizer in build-asan).
 *
 * The graph is one attention block as llama.cpp builds it without flash
 * attention: Q, K, V projections of the norm's output, K and V copied into
 * cache views, KQ over the cache, softmax, KQV, the output projection. */
#include "graph.h"
#include "identify.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <stdio.h>
#include <stdlib.h>

#define E   32 /* n_embd */
#define T   4  /* tokens */
#define CTX 16 /* cache cells */

static struct ggml_tensor *named(struct ggml_tensor *t, const char *name) {
    ggml_set_name(t, name);
    return t;
}

struct model {
    struct ggml_tensor *wq, *wk, *wv, *wo, *norm_w, *cache_k, *cache_v;
};

/* Weights in a buffer marked WEIGHTS, the cache in a plain (state) buffer. */
static void make_model(struct ggml_context *wctx, struct ggml_context *sctx, struct model *m, const char *k_name,
                       const char *v_name) {
    m->wq = named(ggml_new_tensor_2d(wctx, GGML_TYPE_F32, E, E), "blk.0.attn_q.weight");
    m->wk = named(ggml_new_tensor_2d(wctx, GGML_TYPE_F32, E, E), "blk.0.attn_k.weight");
    m->wv = named(ggml_new_tensor_2d(wctx, GGML_TYPE_F32, E, E), "blk.0.attn_v.weight");
    m->wo = named(ggml_new_tensor_2d(wctx, GGML_TYPE_F32, E, E), "blk.0.attn_output.weight");
    m->norm_w = named(ggml_new_tensor_1d(wctx, GGML_TYPE_F32, E), "blk.0.attn_norm.weight");
    m->cache_k = named(ggml_new_tensor_2d(sctx, GGML_TYPE_F32, E, CTX), k_name);
    m->cache_v = named(ggml_new_tensor_2d(sctx, GGML_TYPE_F32, CTX, E), v_name);
}

/* The attention block; returns the graph. */
static struct ggml_cgraph *attention(struct ggml_context *ctx, const struct model *m) {
    struct ggml_tensor *x = named(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, E, T), "inp_embd");
    struct ggml_tensor *norm = named(ggml_mul(ctx, ggml_rms_norm(ctx, x, 1e-5f), m->norm_w), "attn_norm-0");
    struct ggml_tensor *q = named(ggml_mul_mat(ctx, m->wq, norm), "Qcur-0");
    struct ggml_tensor *k = named(ggml_mul_mat(ctx, m->wk, norm), "Kcur-0");
    struct ggml_tensor *v = named(ggml_mul_mat(ctx, m->wv, norm), "Vcur-0");
    struct ggml_tensor *k_dst = ggml_view_2d(ctx, m->cache_k, E, T, m->cache_k->nb[1], 0);
    struct ggml_tensor *v_dst = ggml_view_2d(ctx, m->cache_v, T, E, m->cache_v->nb[1], 0);
    struct ggml_tensor *k_store = ggml_cpy(ctx, k, k_dst);
    struct ggml_tensor *v_store = ggml_cpy(ctx, ggml_transpose(ctx, v), v_dst);
    struct ggml_tensor *keys = ggml_view_2d(ctx, m->cache_k, E, T, m->cache_k->nb[1], 0);
    struct ggml_tensor *vals = ggml_view_2d(ctx, m->cache_v, T, E, m->cache_v->nb[1], 0);
    struct ggml_tensor *kq = named(ggml_mul_mat(ctx, keys, q), "kq-0");
    struct ggml_tensor *soft = named(ggml_soft_max(ctx, kq), "kq_soft_max-0");
    struct ggml_tensor *kqv = named(ggml_mul_mat(ctx, vals, soft), "kqv-0");
    struct ggml_tensor *out = named(ggml_mul_mat(ctx, m->wo, kqv), "attn_out-0");
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, k_store);
    ggml_build_forward_expand(gf, v_store);
    ggml_build_forward_expand(gf, ggml_add(ctx, out, x));
    ggml_set_output(ggml_graph_node(gf, -1));
    return gf;
}

static int run(const char *k_name, const char *v_name, int n_layer, int *bad_layers, int *roles) {
    struct ggml_init_params wp = {.mem_size = 1 << 20, .mem_buffer = NULL, .no_alloc = true};
    struct ggml_context    *wctx = ggml_init(wp), *sctx = ggml_init(wp), *ctx = ggml_init(wp);
    ggml_backend_t          cpu = ggml_backend_cpu_init();
    struct model            m;
    make_model(wctx, sctx, &m, k_name, v_name);
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors(wctx, cpu);
    ggml_backend_buffer_t sbuf = ggml_backend_alloc_ctx_tensors(sctx, cpu);
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    struct ggml_cgraph *gf = attention(ctx, &m);

    struct llorch_graph g;
    llorch_graph_init(&g);
    for (int i = 0; i < ggml_graph_n_nodes(gf); i++) {
        llorch_graph_add(&g, ggml_graph_node(gf, i));
    }
    llorch_graph_finish(&g);
    struct llorch_identify_input in = {
        .graph = &g, .n_tokens = T, .n_layer = n_layer, .n_embd = E, .n_vocab = 100, .arch = "llama"};
    struct llorch_identity id;
    int                    rc = llorch_identify_graph(&in, &id);
    *bad_layers = 0;
    for (int i = 0; rc == 0 && i < id.n_roles; i++) {
        *bad_layers += id.roles[i].layer >= n_layer;
    }
    for (int i = 0; rc == 0 && i < id.n_absent; i++) {
        *bad_layers += id.absent[i].layer >= n_layer;
    }
    *roles = rc == 0 ? id.n_roles : 0;
    if (rc == 0) {
        llorch_identity_free(&id);
    }
    llorch_graph_free(&g);
    ggml_backend_buffer_free(wbuf);
    ggml_backend_buffer_free(sbuf);
    ggml_backend_free(cpu);
    ggml_free(ctx);
    ggml_free(sctx);
    ggml_free(wctx);
    return rc;
}

int main(void) {
    int bad, roles, failures = 0;
    /* the graph itself: its cache named for layer 0 gives layer 0's attention checkpoints */
    if (run("cache_k_l0", "cache_v_l0", 2, &bad, &roles) != 0 || bad != 0 || roles < 4) {
        fprintf(stderr, "FAIL: the block with a layer-0 cache gave %d roles, %d outside the model\n", roles, bad);
        failures++;
    } else {
        printf("ok: a layer-0 cache: %d checkpoints identified in layer 0\n", roles);
    }
    if (run("cache_k_l7", "cache_v_l7", 2, &bad, &roles) != 0 || bad != 0) {
        fprintf(stderr, "FAIL: a cache named for layer 7 of 2 gave %d roles or absences outside layers 0-1\n", bad);
        failures++;
    } else {
        printf("ok: a cache named for layer 7 of a 2-layer model: no checkpoint outside layers 0-1 (%d roles)\n",
               roles);
    }
    return failures != 0;
}

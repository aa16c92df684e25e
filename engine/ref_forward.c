/*
 * ref_forward.c - the GPT-2 and llama forward pass, top to bottom.
 *
 * Data flow of one step (T tokens, each with its position and sequence):
 *
 *   embed                      x = token_embd[token] (+ pos_embd[pos], gpt2)
 *   for each layer:
 *     attention_block          xn = norm(x); q, k, v = projections of xn;
 *                              RoPE (llama); k, v into the step's cache cells;
 *                              softmax(q.k * scale) . v over the cells of the
 *                              token's sequence; output projection
 *     x += attention output    (ffn_inp)
 *     ffn_block                xn = norm(x); GELU MLP (gpt2) or SwiGLU (llama)
 *     x += ffn output          (l_out)
 *   output                     logits = output_weight . norm(x)
 *
 * Every buffer is laid out in the dump's numpy order, C order:
 * activations [T][n_embd], heads [T][n_head][head_dim], scores
 * [n_head][T][cells], so each checkpoint is written straight from its
 * buffer (or, for several sequences, from a slice of it).
 */
#include "ref_forward.h"

#include "ref_feed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- numeric primitives ------------------------------------------------ */

/* The one accumulation loop of the engine: a float32 sum in index order.
 * llama.cpp sums the same products in SIMD lanes, so the two differ only by
 * float32 rounding (relative error about n * 2^-24 in the worst case). */
static float dot(const float *a, const float *b, int n) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        sum += a[i] * b[i];
    }
    return sum;
}

/* out[t][o] = w[o] . x[t] (+ bias[o]) for T rows: the weight is stored as
 * n_out rows of n_in floats (ggml shape {n_in, n_out}). The bias is added
 * after the sum is rounded, as llama.cpp's separate ADD node does. */
static void matmul(float *out, const float *x, const float *w, const float *bias, int T, int n_in, int n_out) {
    for (int t = 0; t < T; t++) {
        for (int o = 0; o < n_out; o++) {
            float y = dot(&w[(size_t) o * n_in], &x[(size_t) t * n_in], n_in);
            out[(size_t) t * n_out + o] = bias != NULL ? y + bias[o] : y;
        }
    }
}

static void add_in_place(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        x[i] += y[i];
    }
}

/* LayerNorm of each row: (x - mean) / sqrt(var + eps) * w + b. */
static void layer_norm(float *out, const float *x, const float *w, const float *b, int T, int n, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = &x[(size_t) t * n];
        float       *yr = &out[(size_t) t * n];
        float        sum = 0.0f;
        for (int i = 0; i < n; i++) {
            sum += xr[i];
        }
        float mean = sum / (float) n;
        float var = 0.0f;
        for (int i = 0; i < n; i++) {
            var += (xr[i] - mean) * (xr[i] - mean);
        }
        var /= (float) n;
        float inv_std = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < n; i++) {
            yr[i] = (xr[i] - mean) * inv_std * w[i] + b[i];
        }
    }
}

/* RMSNorm of each row: x / sqrt(mean(x^2) + eps) * w. */
static void rms_norm(float *out, const float *x, const float *w, int T, int n, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = &x[(size_t) t * n];
        float       *yr = &out[(size_t) t * n];
        float        inv_rms = 1.0f / sqrtf(dot(xr, xr, n) / (float) n + eps);
        for (int i = 0; i < n; i++) {
            yr[i] = xr[i] * inv_rms * w[i];
        }
    }
}

float ref_round_to_f16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) {
        return x; /* inf, nan */
    }
    if (magnitude >= 0x477ff000u) {
        return copysignf(INFINITY, x); /* >= 65520 rounds past f16's max, 65504 */
    }
    if (magnitude < 0x38800000u) {
        /* below 2^-14: f16 subnormals, a fixed step of 2^-24 */
        return copysignf(nearbyintf(fabsf(x) * 0x1p24f) * 0x1p-24f, x);
    }
    /* normal: keep 10 of float's 23 mantissa bits, round to nearest even */
    uint32_t lowest_kept = (magnitude >> 13) & 1u;
    magnitude = (magnitude + 0x0fffu + lowest_kept) & ~0x1fffu;
    bits = (bits & 0x80000000u) | magnitude;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static void round_to_f16_in_place(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        x[i] = ref_round_to_f16(x[i]);
    }
}

/* GELU, tanh approximation, as llama.cpp defines it. */
static float gelu(float x) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + 0.044715f * x * x)));
}

/* GELU as llama.cpp's CPU backend computes it (ggml-cpu/vec.h): x is
 * rounded to f16 and looked up in a table of gelu() rounded to f16, so the
 * result carries f16 rounding twice; beyond +-10 it is 0 or x. */
static float gelu_f16_table(float x) {
    if (x <= -10.0f) {
        return 0.0f;
    }
    if (x >= 10.0f) {
        return x;
    }
    return ref_round_to_f16(gelu(ref_round_to_f16(x)));
}

static float silu(float x) {
    return x / (1.0f + expf(-x));
}

/* RoPE rotates pairs of a head's dimensions by theta_i = pos * freq_scale *
 * base^(-2i/head_dim): in "normal" mode (llama) the neighbours (x[2i],
 * x[2i+1]), in NEOX mode (qwen2) the halves (x[i], x[i + head_dim/2]). The
 * angle is built as llama.cpp builds it, by repeated multiplication in
 * float, so the angles agree with it to the last bit. */
static void rope_one(float *x, int head_dim, int pos, float base, float freq_scale, bool neox) {
    const float theta_scale = powf(base, -2.0f / (float) head_dim);
    float       theta = (float) pos;
    for (int i = 0; i < head_dim; i += 2) {
        float angle = freq_scale * theta;
        float c = cosf(angle), s = sinf(angle);
        int   a = neox ? i / 2 : i;
        int   b = neox ? i / 2 + head_dim / 2 : i + 1;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
        theta *= theta_scale;
    }
}

/* x is [T][n_heads][head_dim]; row t is at position pos[t] + offset. */
static void rope(float *x, int T, int n_heads, int head_dim, const int32_t *pos, int offset,
                 const struct ref_hparams *hp) {
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < n_heads; h++) {
            float *head = &x[((size_t) t * n_heads + h) * head_dim];
            rope_one(head, head_dim, pos[t] + offset, hp->rope_freq_base, hp->rope_freq_scale, hp->rope_neox);
        }
    }
}

/* p[0..n-1] = softmax(p[0..n-1]). Multiplying by 1/sum (not dividing) is
 * what llama.cpp does; it rounds differently from a division. */
static void softmax(float *p, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        max = p[i] > max ? p[i] : max;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        p[i] = expf(p[i] - max);
        sum += p[i];
    }
    float inv_sum = 1.0f / sum;
    for (int i = 0; i < n; i++) {
        p[i] *= inv_sum;
    }
}

/* ---- the KV cache ------------------------------------------------------ */

int ref_kv_cache_init(struct ref_kv_cache *cache, const struct ref_hparams *hp, int n_ctx, bool f16) {
    size_t n = (size_t) hp->n_layer * n_ctx * hp->n_head_kv * hp->head_dim;
    cache->n_ctx = n_ctx;
    cache->n_used = 0;
    cache->row = hp->n_head_kv * hp->head_dim;
    cache->f16 = f16;
    cache->k = calloc(n, sizeof *cache->k);
    cache->v = calloc(n, sizeof *cache->v);
    cache->cell_pos = calloc((size_t) n_ctx, sizeof *cache->cell_pos);
    cache->cell_seq = calloc((size_t) n_ctx, sizeof *cache->cell_seq);
    return cache->k != NULL && cache->v != NULL && cache->cell_pos != NULL && cache->cell_seq != NULL ? 0 : -1;
}

void ref_kv_cache_free(struct ref_kv_cache *cache) {
    free(cache->k);
    free(cache->v);
    free(cache->cell_pos);
    free(cache->cell_seq);
    memset(cache, 0, sizeof *cache);
}

/* Takes the next free cells for the batch's tokens, in batch order: cell c
 * holds the c-th token decoded in the run. Every layer then stores its
 * keys and values there. */
static int reserve_cells(struct ref_kv_cache *cache, const struct ref_batch *batch) {
    if (batch->n_tokens > cache->n_ctx - cache->n_used) {
        return -1;
    }
    for (int t = 0; t < batch->n_tokens; t++) {
        cache->cell_pos[cache->n_used + t] = batch->pos[t];
        cache->cell_seq[cache->n_used + t] = batch->seq[t];
    }
    cache->n_used += batch->n_tokens;
    return 0;
}

static float *cache_layer(const struct ref_kv_cache *cache, float *base, int il) {
    return &base[(size_t) il * cache->n_ctx * cache->row];
}

/* ---- one step ---------------------------------------------------------- */

/* Scratch buffers of one step, sized for its T tokens and the cache's
 * filled cells (K). */
struct activations {
    float   *x;       /* [T][n_embd]            the residual stream         */
    float   *xn;      /* [T][n_embd]            a block's normed input      */
    float   *qkv;     /* [T][n_q + 2 n_kv]      fused projection            */
    float   *q;       /* [T][n_head][head_dim]                              */
    float   *k, *v;   /* [T][n_head_kv][head_dim]                           */
    float   *scores;  /* [n_head][T][K]         attention probabilities, 0 where masked */
    float   *attn;    /* [T][n_head][head_dim]  attention result            */
    float   *out;     /* [T][n_embd]            attention or FFN output     */
    float   *up;      /* [T][n_ff]                                          */
    float   *gate;    /* [T][n_ff]                                          */
    float   *q_row;   /* [head_dim]             one query, maybe f16-rounded */
    float   *p_row;   /* [K]                    one row of probabilities, maybe f16-rounded  */
    int32_t *visible; /* [K]                 the cells one token attends to */
};

/* Everything one step works on, so that each block takes one argument. */
struct pass {
    const struct ref_model   *m;
    const struct ref_hparams *hp;
    struct ref_kv_cache      *cache;
    const struct ref_options *opt;
    struct ref_checkpoints   *ck;
    int                       T;          /* tokens in this step              */
    const int32_t            *pos;        /* [T] each token's position         */
    const int32_t            *seq;        /* [T] each token's sequence         */
    int                       first_cell; /* the cache cell of the first token */
    int                       K;          /* cache cells filled, this step's included */
    struct activations        a;
};

static bool fault_in(const struct pass *p, enum ref_fault_kind kind, int il) {
    return p->opt != NULL && p->opt->fault.kind == kind && p->opt->fault.layer == il;
}

static int alloc_activations(struct pass *p) {
    const struct ref_hparams *hp = p->hp;
    size_t                    T = (size_t) p->T;
    size_t                    n_q = (size_t) hp->n_head * hp->head_dim, n_kv = (size_t) hp->n_head_kv * hp->head_dim;
    struct activations       *a = &p->a;
    a->x = malloc(T * hp->n_embd * sizeof(float));
    a->xn = malloc(T * hp->n_embd * sizeof(float));
    a->qkv = malloc(T * (n_q + 2 * n_kv) * sizeof(float));
    a->q = malloc(T * n_q * sizeof(float));
    a->k = malloc(T * n_kv * sizeof(float));
    a->v = malloc(T * n_kv * sizeof(float));
    a->scores = malloc((size_t) hp->n_head * T * p->K * sizeof(float));
    a->attn = malloc(T * n_q * sizeof(float));
    a->out = malloc(T * hp->n_embd * sizeof(float));
    a->up = malloc(T * hp->n_ff * sizeof(float));
    a->gate = malloc(T * hp->n_ff * sizeof(float));
    a->q_row = malloc((size_t) hp->head_dim * sizeof(float));
    a->p_row = malloc((size_t) p->K * sizeof(float));
    a->visible = malloc((size_t) p->K * sizeof(int32_t));
    void *all[] = {a->x,    a->xn,  a->qkv, a->q,    a->k,     a->v,     a->scores,
                   a->attn, a->out, a->up,  a->gate, a->q_row, a->p_row, a->visible};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

static void free_activations(struct activations *a) {
    void *all[] = {a->x,    a->xn,  a->qkv, a->q,    a->k,     a->v,     a->scores,
                   a->attn, a->out, a->up,  a->gate, a->q_row, a->p_row, a->visible};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(all[i]);
    }
}

static void embed(struct pass *p, const int32_t *tokens) {
    const struct ref_hparams *hp = p->hp;
    for (int t = 0; t < p->T; t++) {
        float *row = &p->a.x[(size_t) t * hp->n_embd];
        memcpy(row, &p->m->token_embd[(size_t) tokens[t] * hp->n_embd], hp->n_embd * sizeof(float));
        if (p->m->pos_embd != NULL) {
            add_in_place(row, &p->m->pos_embd[(size_t) p->pos[t] * hp->n_embd], hp->n_embd);
        }
    }
    ref_ckpt_rows(p->ck, LLORCH_CKPT_EMBD, -1, p->a.x, hp->n_embd);
}

/* LayerNorm (gpt2) or RMSNorm (llama) of the residual stream into xn. */
static void block_norm(struct pass *p, const float *w, const float *b, float eps) {
    if (p->hp->arch == REF_ARCH_GPT2) {
        layer_norm(p->a.xn, p->a.x, w, b, p->T, p->hp->n_embd, eps);
    } else {
        rms_norm(p->a.xn, p->a.x, w, p->T, p->hp->n_embd, eps);
    }
}

/* Copies columns [offset, offset + width) of each row of qkv into dst. */
static void split_columns(float *dst, const float *qkv, int T, int row, int offset, int width) {
    for (int t = 0; t < T; t++) {
        memcpy(&dst[(size_t) t * width], &qkv[(size_t) t * row + offset], width * sizeof(float));
    }
}

/* q, k, v from xn: one fused matmul split into three (gpt2), or three. */
static void project_qkv(struct pass *p, const struct ref_layer *l) {
    const struct ref_hparams *hp = p->hp;
    int                       n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
    if (l->wqkv != NULL) {
        int row = n_q + 2 * n_kv;
        matmul(p->a.qkv, p->a.xn, l->wqkv, l->bqkv, p->T, hp->n_embd, row);
        split_columns(p->a.q, p->a.qkv, p->T, row, 0, n_q);
        split_columns(p->a.k, p->a.qkv, p->T, row, n_q, n_kv);
        split_columns(p->a.v, p->a.qkv, p->T, row, n_q + n_kv, n_kv);
        return;
    }
    matmul(p->a.q, p->a.xn, l->wq, l->bq, p->T, hp->n_embd, n_q);
    matmul(p->a.k, p->a.xn, l->wk, l->bk, p->T, hp->n_embd, n_kv);
    matmul(p->a.v, p->a.xn, l->wv, l->bv, p->T, hp->n_embd, n_kv);
}

/* Fault swap-heads: query heads 0 and 1 trade places in every token. */
static void swap_query_heads(struct pass *p) {
    int hd = p->hp->head_dim;
    for (int t = 0; t < p->T; t++) {
        float *h0 = &p->a.q[(size_t) t * p->hp->n_head * hd];
        for (int i = 0; i < hd; i++) {
            float tmp = h0[i];
            h0[i] = h0[hd + i];
            h0[hd + i] = tmp;
        }
    }
}

static void apply_rope(struct pass *p, int il) {
    const struct ref_hparams *hp = p->hp;
    int                       offset = fault_in(p, REF_FAULT_ROPE_OFFSET, il) ? 1 : 0;
    ref_ckpt_heads(p->ck, LLORCH_CKPT_QCUR_PRE_ROPE, il, p->a.q, hp->n_head, hp->head_dim);
    ref_ckpt_heads(p->ck, LLORCH_CKPT_KCUR_PRE_ROPE, il, p->a.k, hp->n_head_kv, hp->head_dim);
    rope(p->a.q, p->T, hp->n_head, hp->head_dim, p->pos, offset, hp);
    rope(p->a.k, p->T, hp->n_head_kv, hp->head_dim, p->pos, offset, hp);
}

/* Stores this step's keys and values in its cells (rounded to f16 when
 * the cache is f16, as storing into an f16 tensor does). */
static void store_kv(struct pass *p, int il) {
    struct ref_kv_cache *c = p->cache;
    size_t               offset = (size_t) p->first_cell * c->row, n = (size_t) p->T * c->row;
    float               *k = cache_layer(c, c->k, il) + offset;
    float               *v = cache_layer(c, c->v, il) + offset;
    memcpy(k, p->a.k, n * sizeof(float));
    memcpy(v, p->a.v, n * sizeof(float));
    if (c->f16) {
        round_to_f16_in_place(k, n);
        round_to_f16_in_place(v, n);
    }
}

/* The cells token t attends to, in cell order: those of its own sequence
 * at positions up to its own. A run of one sequence has cell c at
 * position c, so that is cells 0..pos. Fault mask: the sequence check is
 * missing, and every filled cell up to the position counts, whatever
 * sequence holds it (the classic bug of a batched engine's mask). */
static int visible_cells(const struct pass *p, int il, int t, int32_t *cells) {
    const struct ref_kv_cache *c = p->cache;
    bool                       any_seq = fault_in(p, REF_FAULT_MASK, il);
    int                        n = 0;
    for (int cell = 0; cell < p->K; cell++) {
        if (c->cell_pos[cell] <= p->pos[t] && (any_seq || c->cell_seq[cell] == p->seq[t])) {
            cells[n++] = cell;
        }
    }
    return n;
}

/* One query row over the n_visible cells in p->a.visible: probabilities
 * (every other cell is masked: exactly 0), then the probability-weighted
 * sum of the values. The cells are taken in cell order, which for a
 * sequence is position order: every row is computed as in a run of its
 * sequence alone, bit for bit.
 * With an f16 cache llama.cpp also rounds q and the probabilities to f16
 * before multiplying them with the f16 keys and values (ggml's matmul
 * converts its second operand to the type of the first); the kq_soft_max
 * checkpoint holds the probabilities before that rounding. */
static void attend_one(struct pass *p, int il, int h, int t, int n_visible, float *probs, float *out) {
    const struct ref_hparams  *hp = p->hp;
    const struct ref_kv_cache *c = p->cache;
    int            hd = hp->head_dim, kv_head = h / (hp->n_head / hp->n_head_kv); /* GQA: groups of query heads */
    const float   *keys = cache_layer(c, c->k, il) + (size_t) kv_head * hd;
    const float   *values = cache_layer(c, c->v, il) + (size_t) kv_head * hd;
    const int32_t *cells = p->a.visible;
    float         *q = p->a.q_row, *weights = p->a.p_row;

    memcpy(q, &p->a.q[((size_t) t * hp->n_head + h) * hd], (size_t) hd * sizeof(float));
    if (c->f16) {
        round_to_f16_in_place(q, (size_t) hd);
    }
    for (int j = 0; j < n_visible; j++) {
        weights[j] = dot(q, &keys[(size_t) cells[j] * c->row], hd) * hp->kq_scale;
    }
    softmax(weights, n_visible);
    memset(probs, 0, (size_t) p->K * sizeof(float));
    for (int j = 0; j < n_visible; j++) {
        probs[cells[j]] = weights[j];
    }

    if (c->f16) {
        round_to_f16_in_place(weights, (size_t) n_visible);
    }
    for (int i = 0; i < hd; i++) {
        float sum = 0.0f;
        for (int j = 0; j < n_visible; j++) {
            sum += weights[j] * values[(size_t) cells[j] * c->row + i];
        }
        out[i] = sum;
    }
}

static void attend(struct pass *p, int il) {
    const struct ref_hparams *hp = p->hp;
    for (int t = 0; t < p->T; t++) {
        int n_visible = visible_cells(p, il, t, p->a.visible);
        for (int h = 0; h < hp->n_head; h++) {
            float *probs = &p->a.scores[((size_t) h * p->T + t) * p->K];
            float *out = &p->a.attn[((size_t) t * hp->n_head + h) * hp->head_dim];
            attend_one(p, il, h, t, n_visible, probs, out);
        }
    }
}

static void attention_block(struct pass *p, int il) {
    const struct ref_hparams *hp = p->hp;
    const struct ref_layer   *l = &p->m->layers[il];
    float                     eps = fault_in(p, REF_FAULT_EPS, il) ? p->opt->fault.value : hp->norm_eps;
    block_norm(p, l->attn_norm_w, l->attn_norm_b, eps);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_ATTN_NORM, il, p->a.xn, hp->n_embd);

    project_qkv(p, l);
    if (fault_in(p, REF_FAULT_SWAP_HEADS, il)) {
        swap_query_heads(p);
    }
    if (hp->arch == REF_ARCH_LLAMA) {
        apply_rope(p, il);
    }
    ref_ckpt_heads(p->ck, LLORCH_CKPT_QCUR, il, p->a.q, hp->n_head, hp->head_dim);
    ref_ckpt_heads(p->ck, LLORCH_CKPT_KCUR, il, p->a.k, hp->n_head_kv, hp->head_dim);
    ref_ckpt_heads(p->ck, LLORCH_CKPT_VCUR, il, p->a.v, hp->n_head_kv, hp->head_dim);

    store_kv(p, il);
    ref_ckpt_cache(p->ck, LLORCH_CKPT_CACHE_K, il, cache_layer(p->cache, p->cache->k, il), hp->n_head_kv, hp->head_dim);
    ref_ckpt_cache(p->ck, LLORCH_CKPT_CACHE_V, il, cache_layer(p->cache, p->cache->v, il), hp->n_head_kv, hp->head_dim);

    attend(p, il);
    ref_ckpt_scores(p->ck, LLORCH_CKPT_KQ_SOFT_MAX, il, p->a.scores, hp->n_head);

    const float *bias = fault_in(p, REF_FAULT_NO_ATTN_BIAS, il) ? NULL : l->bo;
    matmul(p->a.out, p->a.attn, l->wo, bias, p->T, hp->n_head * hp->head_dim, hp->n_embd);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_ATTN_OUT_PROJ, il, p->a.out, hp->n_embd);
}

/* gpt2: down(gelu(up(xn))); llama: down(silu(gate(xn)) * up(xn)). */
static void ffn_block(struct pass *p, int il) {
    const struct ref_hparams *hp = p->hp;
    const struct ref_layer   *l = &p->m->layers[il];
    size_t                    n_hidden = (size_t) p->T * hp->n_ff;
    block_norm(p, l->ffn_norm_w, l->ffn_norm_b,
               fault_in(p, REF_FAULT_FFN_EPS, il) ? p->opt->fault.value : hp->norm_eps);
    matmul(p->a.up, p->a.xn, l->ffn_up, l->ffn_up_b, p->T, hp->n_embd, hp->n_ff);
    if (hp->arch == REF_ARCH_GPT2) {
        bool table = p->opt != NULL && p->opt->gelu_f16_table;
        for (size_t i = 0; i < n_hidden; i++) {
            p->a.up[i] = table ? gelu_f16_table(p->a.up[i]) : gelu(p->a.up[i]);
        }
    } else {
        matmul(p->a.gate, p->a.xn, l->ffn_gate, l->ffn_gate_b, p->T, hp->n_embd, hp->n_ff);
        for (size_t i = 0; i < n_hidden; i++) {
            p->a.up[i] = silu(p->a.gate[i]) * p->a.up[i];
        }
    }
    matmul(p->a.out, p->a.up, l->ffn_down, l->ffn_down_b, p->T, hp->n_ff, hp->n_embd);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_FFN_OUT, il, p->a.out, hp->n_embd);
}

/* --feed: the residual rows become the reference's at the same (sequence,
 * position), after the engine's own were written as their checkpoint
 * (docs/FORMAT.md, "Fed runs"). */
static void feed_rows(struct pass *p, enum llorch_ckpt_residual where, int il) {
    const struct ref_feed *feed = p->opt != NULL ? p->opt->feed : NULL;
    if (feed == NULL || (where == LLORCH_CKPT_RESIDUAL_FFN_INPUT && !feed->ffn)) {
        return;
    }
    int n_embd = p->hp->n_embd;
    for (int t = 0; t < p->T; t++) {
        memcpy(&p->a.x[(size_t) t * n_embd], ref_feed_row(feed, where, il, p->seq[t], p->pos[t]),
               (size_t) n_embd * sizeof(float));
    }
}

static void layer(struct pass *p, int il) {
    size_t n = (size_t) p->T * p->hp->n_embd;
    feed_rows(p, LLORCH_CKPT_RESIDUAL_LAYER_INPUT, il); /* embd or l_out of il-1 was written */
    attention_block(p, il);
    add_in_place(p->a.x, p->a.out, n);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_FFN_INP, il, p->a.x, p->hp->n_embd);
    feed_rows(p, LLORCH_CKPT_RESIDUAL_FFN_INPUT, il);
    ffn_block(p, il);
    add_in_place(p->a.x, p->a.out, n);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_L_OUT, il, p->a.x, p->hp->n_embd);
}

static void output(struct pass *p, float *logits) {
    const struct ref_hparams *hp = p->hp;
    block_norm(p, p->m->output_norm_w, p->m->output_norm_b, hp->norm_eps);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_RESULT_NORM, -1, p->a.xn, hp->n_embd);
    matmul(logits, p->a.xn, p->m->output, NULL, p->T, hp->n_embd, hp->n_vocab);
    ref_ckpt_rows(p->ck, LLORCH_CKPT_LOGITS, -1, logits, hp->n_vocab);
}

/* The largest tensor with a key axis the checkpoints gather: the scores,
 * or one layer of the cache. */
static size_t gather_floats(const struct pass *p) {
    size_t scores = (size_t) p->hp->n_head * p->T * p->K, cache = (size_t) p->K * p->cache->row;
    return scores > cache ? scores : cache;
}

int ref_forward(const struct ref_model *m, struct ref_kv_cache *cache, const struct ref_options *opt,
                const struct ref_batch *batch, struct ref_checkpoints *ck, float *logits) {
    if (reserve_cells(cache, batch) != 0) {
        return -1;
    }
    struct pass p = {
        .m = m,
        .hp = &m->hp,
        .cache = cache,
        .opt = opt,
        .ck = ck,
        .T = batch->n_tokens,
        .pos = batch->pos,
        .seq = batch->seq,
        .first_cell = cache->n_used - batch->n_tokens,
        .K = cache->n_used,
    };
    int rc = alloc_activations(&p);
    if (rc == 0) {
        rc = ref_ckpt_begin_step(ck, batch->seq, batch->pos, p.T, cache->cell_seq, p.K, gather_floats(&p));
    }
    if (rc == 0) {
        embed(&p, batch->tokens);
        for (int il = 0; il < m->hp.n_layer; il++) {
            layer(&p, il);
        }
        output(&p, logits);
    }
    ref_ckpt_end_step(ck);
    free_activations(&p.a);
    return rc;
}

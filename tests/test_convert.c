/* test_convert.c - the gather of convert.c against a plain reference:
 *  - every one of the 65,536 half values converts to the float ggml's own
 *    ggml_fp16_to_fp32 gives, bit for bit (NaNs included);
 *  - gathers of f32, f16 and bf16 tensors through permuted views (the
 *    transposed V cache among them), with trimmed axes, to f32 and to f16,
 *    equal an element-by-element reference that walks ggml's strides. */
#include "convert.h"

#include <ggml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float    a = llorch_convert_half((uint16_t) h), b = ggml_fp16_to_fp32((ggml_fp16_t) h);
        uint32_t x, y;
        memcpy(&x, &a, 4);
        memcpy(&y, &b, 4);
        bad += x != y;
    }
    check(bad == 0, "half to float differs from ggml_fp16_to_fp32");
    printf("ok: all 65536 half values convert as ggml_fp16_to_fp32 does (%d differ)\n", bad);
}

/* The reference: output element (i0,i1,i2,i3) reads source indices through
 * the axis map, converted with ggml's scalar functions. */
static float reference(const struct ggml_tensor *t, const struct llorch_gather *g, const int64_t i[4]) {
    const char *p = t->data;
    for (int k = 0; k < 4; k++) {
        p += i[k] * (int64_t) t->nb[g->src_axis[k]];
    }
    switch (t->type) {
        case GGML_TYPE_F32: {
            float v;
            memcpy(&v, p, 4);
            return v;
        }
        case GGML_TYPE_F16: {
            ggml_fp16_t h;
            memcpy(&h, p, 2);
            return ggml_fp16_to_fp32(h);
        }
        default: {
            ggml_bf16_t b;
            memcpy(&b, p, 2);
            return ggml_bf16_to_fp32(b);
        }
    }
}

static void fill(struct ggml_tensor *t, unsigned seed) {
    size_t         n = ggml_nbytes(t);
    unsigned char *p = t->data;
    for (size_t k = 0; k < n; k++) {
        seed = seed * 1103515245u + 12345u;
        p[k] = (unsigned char) (seed >> 16);
    }
}

static int gather_case(struct ggml_context *ctx, enum ggml_type type, const int perm[4], const int64_t trim[4],
                       enum llorch_ckpt_dtype dtype) {
    struct ggml_tensor *base = ggml_new_tensor_4d(ctx, type, 37, 5, 41, 2);
    fill(base, (unsigned) type * 7u + (unsigned) perm[0]);
    struct ggml_tensor  *t = ggml_permute(ctx, base, perm[0], perm[1], perm[2], perm[3]);
    struct llorch_gather g = llorch_gather_identity(t);
    for (int k = 0; k < 4; k++) {
        g.ne[k] = trim[k] < g.ne[k] ? trim[k] : g.ne[k];
    }
    size_t n = (size_t) (g.ne[0] * g.ne[1] * g.ne[2] * g.ne[3]);
    char  *out = malloc(n * 4);
    llorch_convert_gather(t, t->data, &g, dtype, out);
    int     bad = 0;
    size_t  k = 0;
    int64_t i[4];
    for (i[3] = 0; i[3] < g.ne[3]; i[3]++) {
        for (i[2] = 0; i[2] < g.ne[2]; i[2]++) {
            for (i[1] = 0; i[1] < g.ne[1]; i[1]++) {
                for (i[0] = 0; i[0] < g.ne[0]; i[0]++, k++) {
                    float want = reference(t, &g, i);
                    if (dtype == LLORCH_CKPT_DTYPE_F32) {
                        bad += memcmp(out + 4 * k, &want, 4) != 0 && !(want != want);
                    } else {
                        ggml_fp16_t have;
                        memcpy(&have, out + 2 * k, 2);
                        float h = ggml_fp16_to_fp32(have);
                        bad += memcmp(&h, &want, 4) != 0 && !(want != want);
                    }
                }
            }
        }
    }
    free(out);
    return bad;
}

static void test_gathers(void) {
    struct ggml_init_params ip = {.mem_size = 64u << 20, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context    *ctx = ggml_init(ip);
    static const int        perms[][4] = {{0, 1, 2, 3}, {2, 1, 0, 3}, {1, 0, 2, 3}, {0, 2, 1, 3}, {1, 2, 0, 3}};
    static const int64_t    trims[][4] = {{99, 99, 99, 99}, {30, 4, 33, 1}, {1, 5, 7, 2}};
    enum ggml_type          types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    int                     cases = 0, bad = 0;
    for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++) {
        for (size_t r = 0; r < sizeof trims / sizeof trims[0]; r++) {
            for (size_t ty = 0; ty < 3; ty++) {
                bad += gather_case(ctx, types[ty], perms[p], trims[r], LLORCH_CKPT_DTYPE_F32);
                cases++;
                if (types[ty] == GGML_TYPE_F16) {
                    bad += gather_case(ctx, types[ty], perms[p], trims[r], LLORCH_CKPT_DTYPE_F16);
                    cases++;
                }
            }
        }
    }
    ggml_free(ctx);
    check(bad == 0, "a gather differs from the element-by-element reference");
    printf("ok: %d gathers through permuted, trimmed views equal the reference (%d elements differ)\n", cases, bad);
}

int main(void) {
    test_half();
    test_gathers();
    return failures != 0;
}

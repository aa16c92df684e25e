/*
 * test_rust_writer.c - writes a small known dump through the C writer API,
 * the reference that tests/rust.cmake compares the Rust crate's writer
 * against (rust/examples/write_known.rs writes the same tensors).
 *
 *   test_rust_writer DIR npy|npz
 *
 * Every value comes from an xorshift32 stream seeded by the tensor's kind,
 * layer and step; floats are 1.x - 1.5 with 23 random mantissa bits, f16
 * values random finite bit patterns: both languages compute them exactly.
 */
#include "llorch_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_LAYER    2
#define N_EMBD     8
#define N_HEAD     2
#define N_HEAD_KV  1
#define HEAD_DIM   4
#define N_VOCAB    16
#define MAX_VALUES 256

static uint32_t seed_of(enum llorch_ckpt_kind kind, int layer, int step) {
    uint32_t x =
        0x9e3779b9u ^ ((uint32_t) kind * 0x10001u + (uint32_t) (layer + 1) * 131u + (uint32_t) step * 7919u + 1u);
    return x != 0 ? x : 1;
}

static uint32_t next(uint32_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static int write_one(llorch_ckpt_writer *w, enum llorch_ckpt_kind kind, int layer, int step, int pos_start, int n_pos,
                     int n_key, int n_dims, const int64_t *shape, bool f16) {
    static float    f[MAX_VALUES];
    static uint16_t h[MAX_VALUES];
    size_t          n = 1;
    for (int i = 0; i < n_dims; i++) {
        n *= (size_t) shape[i];
    }
    if (n > MAX_VALUES) {
        fprintf(stderr, "tensor too large\n");
        return -1;
    }
    uint32_t x = seed_of(kind, layer, step);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = next(&x);
        if (f16) {
            h[i] = (uint16_t) ((r >> 16) & 0xbbffu);
        } else {
            uint32_t bits = 0x3f800000u | (r >> 9);
            memcpy(&f[i], &bits, sizeof f[i]);
            f[i] -= 1.5f;
        }
    }
    struct llorch_ckpt_tensor t = {
        .kind = kind,
        .layer = layer,
        .step = step,
        .pos_start = pos_start,
        .n_pos = n_pos,
        .n_key = n_key,
        .n_dims = n_dims,
        .dtype = f16 ? LLORCH_CKPT_DTYPE_F16 : LLORCH_CKPT_DTYPE_F32,
        .data = f16 ? (const void *) h : (const void *) f,
    };
    memcpy(t.shape, shape, (size_t) n_dims * sizeof *shape);
    if (llorch_ckpt_writer_write(w, &t) != 0) {
        fprintf(stderr, "write: %s\n", llorch_ckpt_writer_error(w));
        return -1;
    }
    return 0;
}

static int write_step(llorch_ckpt_writer *w, int step) {
    int64_t T = step == 0 ? 3 : 1, pos = step == 0 ? 0 : 3, K = pos + T;
    int     rc = write_one(w, LLORCH_CKPT_EMBD, -1, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_EMBD}, false);
    for (int il = 0; il < N_LAYER && rc == 0; il++) {
        rc |= write_one(w, LLORCH_CKPT_ATTN_NORM, il, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_EMBD}, false);
        rc |=
            write_one(w, LLORCH_CKPT_QCUR, il, step, (int) pos, (int) T, 0, 3, (int64_t[]){T, N_HEAD, HEAD_DIM}, false);
        rc |= write_one(w, LLORCH_CKPT_KCUR, il, step, (int) pos, (int) T, 0, 3, (int64_t[]){T, N_HEAD_KV, HEAD_DIM},
                        false);
        rc |= write_one(w, LLORCH_CKPT_VCUR, il, step, (int) pos, (int) T, 0, 3, (int64_t[]){T, N_HEAD_KV, HEAD_DIM},
                        false);
        rc |= write_one(w, LLORCH_CKPT_CACHE_K, il, step, (int) pos, (int) T, (int) K, 3,
                        (int64_t[]){K, N_HEAD_KV, HEAD_DIM}, true);
        rc |= write_one(w, LLORCH_CKPT_CACHE_V, il, step, (int) pos, (int) T, (int) K, 3,
                        (int64_t[]){K, N_HEAD_KV, HEAD_DIM}, false);
        rc |= write_one(w, LLORCH_CKPT_KQ_SOFT_MAX, il, step, (int) pos, (int) T, (int) K, 3, (int64_t[]){N_HEAD, T, K},
                        false);
        rc |=
            write_one(w, LLORCH_CKPT_ATTN_OUT_PROJ, il, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_EMBD}, false);
        rc |= write_one(w, LLORCH_CKPT_FFN_OUT, il, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_EMBD}, false);
    }
    rc |= write_one(w, LLORCH_CKPT_RESULT_NORM, -1, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_EMBD}, false);
    rc |= write_one(w, LLORCH_CKPT_LOGITS, -1, step, (int) pos, (int) T, 0, 2, (int64_t[]){T, N_VOCAB}, false);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "npy") != 0 && strcmp(argv[2], "npz") != 0)) {
        fprintf(stderr, "usage: test_rust_writer DIR npy|npz\n");
        return 2;
    }
    struct llorch_ckpt_writer_options opt = {.form = strcmp(argv[2], "npz") == 0 ? LLORCH_CKPT_FORM_NPZ
                                                                                 : LLORCH_CKPT_FORM_NPY};
    char                              err[512];
    llorch_ckpt_writer               *w = llorch_ckpt_writer_open(argv[1], &opt, err, sizeof err);
    if (w == NULL) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    const int32_t          tokens[] = {1, 450, 1200, 3000};
    struct llorch_ckpt_run run = {
        .producer = "test_rust_writer 0.1",
        .model_path = "known.gguf",
        .model_size = 1234,
        .architecture = "llama",
        .n_layer = N_LAYER,
        .n_embd = N_EMBD,
        .n_head = N_HEAD,
        .n_head_kv = N_HEAD_KV,
        .n_vocab = N_VOCAB,
        .tokens = tokens,
        .n_tokens = 4,
        .settings_json = "{\"threads\": 1, \"n_ubatch\": 3}",
    };
    int rc = llorch_ckpt_writer_set_run(w, &run);
    for (int il = 0; il < N_LAYER && rc == 0; il++) {
        rc |= llorch_ckpt_writer_note_missing(w, LLORCH_CKPT_QCUR_PRE_ROPE, il, "the known dump has no RoPE");
    }
    for (int step = 0; step < 2 && rc == 0; step++) {
        rc = write_step(w, step);
    }
    if (rc == 0) {
        rc = llorch_ckpt_writer_finish(w, true, NULL);
    }
    if (rc != 0) {
        fprintf(stderr, "test_rust_writer: %s\n", llorch_ckpt_writer_error(w));
    }
    llorch_ckpt_writer_free(w);
    return rc == 0 ? 0 : 1;
}

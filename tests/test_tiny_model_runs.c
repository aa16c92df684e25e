/*
 * test_tiny_model_runs.c - the models llorch-make-tiny-model wrote for the
 * tiny_models fixture are what they claim to be, and llama.cpp runs them.
 *
 *   test_tiny_model_runs DATA_DIR            all checks on the fixture files
 *   test_tiny_model_runs --same A B          exit 0 if every tensor of A is in B, bytes equal
 *   test_tiny_model_runs --all-differ A B    exit 0 if every tensor of A is in B, bytes different
 *
 * Checks on DATA_DIR:
 *   layout   tensor names, count, types (2-D: --type, 1-D: F32), metadata, file size
 *   values   f32 files: every tensor's mean and spread match its distribution
 *   golden   f32 files: a digest of all tensor data, fixed here, so a change of
 *            generator, compiler or machine that changes the bytes is seen
 *   f16      every f16 tensor is exactly the f32 file's value rounded to f16
 *   quant    q8_0 and q4_K tensors dequantize to the same underlying values
 *   run      llama.cpp loads each file, reports its shape, tokenizes text,
 *            decodes with every position an output: logits finite and
 *            different per position; f16 logits close to f32 logits, q4_K
 *            logits correlated with q8_0 logits.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

static int failures;

struct model_case {
    const char    *file;
    const char    *arch;
    int            n_layer, n_embd, n_head, n_head_kv, n_ff;
    enum ggml_type wtype;
};

/* The fixture's files and the flags tests/tiny-model.cmake makes them with. */
static const struct model_case CASES[] = {
    {"tiny-gpt2-f32.gguf", "gpt2", 2, 64, 4, 4, 256, GGML_TYPE_F32},
    {"tiny-gpt2-f16.gguf", "gpt2", 2, 64, 4, 4, 256, GGML_TYPE_F16},
    {"tiny-llama-f32.gguf", "llama", 2, 64, 4, 2, 128, GGML_TYPE_F32},
    {"tiny-llama-f16.gguf", "llama", 2, 64, 4, 2, 128, GGML_TYPE_F16},
    {"tiny-llama-q8_0.gguf", "llama", 2, 256, 4, 2, 512, GGML_TYPE_Q8_0},
    {"tiny-llama-q4_K.gguf", "llama", 2, 256, 4, 2, 512, GGML_TYPE_Q4_K},
};
enum {
    N_CASES = sizeof(CASES) / sizeof(CASES[0])
};
enum {
    GPT2_F32,
    GPT2_F16,
    LLAMA_F32,
    LLAMA_F16,
    LLAMA_Q8_0,
    LLAMA_Q4_K
};

/* FNV-1a 64 of all tensor data, in file order, of the f32 files. Recorded
 * from the generator as written (splitmix64 + Box-Muller); update only when
 * the generator is meant to change. */
static const uint64_t GOLDEN_GPT2_F32 = 0xdf3058ae86dd3ffeull;
static const uint64_t GOLDEN_LLAMA_F32 = 0x38fba6d22f79703bull;

/* ---- reading a GGUF ---------------------------------------------------- */

struct gguf_file {
    char                 path[4096];
    struct gguf_context *g;
    FILE                *f;
};

static bool gguf_file_open(struct gguf_file *gf, const char *path) {
    snprintf(gf->path, sizeof(gf->path), "%s", path);
    struct gguf_init_params p = {true, NULL};
    gf->g = gguf_init_from_file(path, p);
    gf->f = fopen(path, "rb");
    if (!gf->g || !gf->f) {
        fprintf(stderr, "FAIL: cannot open %s as GGUF\n", path);
        failures++;
        return false;
    }
    return true;
}

static void gguf_file_close(struct gguf_file *gf) {
    if (gf->g) {
        gguf_free(gf->g);
    }
    if (gf->f) {
        fclose(gf->f);
    }
    memset(gf, 0, sizeof(*gf));
}

/* The raw bytes of tensor id; the caller frees. */
static void *read_raw(const struct gguf_file *gf, int64_t id) {
    size_t size = gguf_get_tensor_size(gf->g, id);
    void  *buf = malloc(size ? size : 1);
    long   off = (long) (gguf_get_data_offset(gf->g) + gguf_get_tensor_offset(gf->g, id));
    if (!buf || fseek(gf->f, off, SEEK_SET) != 0 || fread(buf, 1, size, gf->f) != size) {
        fprintf(stderr, "FAIL: cannot read tensor %s of %s\n", gguf_get_tensor_name(gf->g, id), gf->path);
        failures++;
        free(buf);
        return NULL;
    }
    return buf;
}

static int64_t n_elements(const struct gguf_file *gf, int64_t id) {
    const int64_t *ne = gguf_get_tensor_ne(gf->g, id);
    return ne[0] * ne[1] * ne[2] * ne[3];
}

/* Tensor id as float32 (dequantized if needed); the caller frees. */
static float *read_f32(const struct gguf_file *gf, int64_t id) {
    void *raw = read_raw(gf, id);
    if (!raw) {
        return NULL;
    }
    enum ggml_type type = gguf_get_tensor_type(gf->g, id);
    if (type == GGML_TYPE_F32) {
        return raw;
    }
    int64_t n = n_elements(gf, id);
    float  *out = malloc((size_t) n * sizeof(float));
    if (out) {
        ggml_get_type_traits(type)->to_float(raw, out, n);
    }
    free(raw);
    return out;
}

static int64_t n_dims(const struct gguf_file *gf, int64_t id) {
    return gguf_get_tensor_ne(gf->g, id)[1] > 1 ? 2 : 1;
}

static uint32_t get_u32(const struct gguf_file *gf, const char *arch, const char *key) {
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    int64_t id = gguf_find_key(gf->g, full);
    if (id < 0 || gguf_get_kv_type(gf->g, id) != GGUF_TYPE_UINT32) {
        return 0;
    }
    return gguf_get_val_u32(gf->g, id);
}

static const char *path_in(const char *dir, const char *file) {
    static char buf[8][4096];
    static int  next;
    char       *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, file);
    return p;
}

/* ---- layout ------------------------------------------------------------ */

static void check_metadata(const struct gguf_file *gf, const struct model_case *c) {
    int64_t id = gguf_find_key(gf->g, "general.architecture");
    EXPECT(id >= 0 && strcmp(gguf_get_val_str(gf->g, id), c->arch) == 0, "%s: general.architecture", c->file);
    EXPECT(get_u32(gf, c->arch, "block_count") == (uint32_t) c->n_layer, "%s: block_count", c->file);
    EXPECT(get_u32(gf, c->arch, "embedding_length") == (uint32_t) c->n_embd, "%s: embedding_length", c->file);
    EXPECT(get_u32(gf, c->arch, "feed_forward_length") == (uint32_t) c->n_ff, "%s: feed_forward_length", c->file);
    EXPECT(get_u32(gf, c->arch, "attention.head_count") == (uint32_t) c->n_head, "%s: head_count", c->file);
    EXPECT(get_u32(gf, c->arch, "attention.head_count_kv") == (uint32_t) c->n_head_kv, "%s: head_count_kv", c->file);
    EXPECT(get_u32(gf, c->arch, "context_length") == 512, "%s: context_length", c->file);
    EXPECT(gguf_find_key(gf->g, "tokenizer.ggml.tokens") >= 0, "%s: tokenizer.ggml.tokens copied", c->file);
    if (strcmp(c->arch, "llama") == 0) {
        EXPECT(get_u32(gf, c->arch, "rope.dimension_count") == (uint32_t) (c->n_embd / c->n_head),
               "%s: rope.dimension_count = head size", c->file);
    }
}

static void check_layout(const struct gguf_file *gf, const struct model_case *c) {
    bool    gpt2 = strcmp(c->arch, "gpt2") == 0;
    int64_t n = gguf_get_n_tensors(gf->g);
    /* gpt2: token+pos embd, 12 per layer, output norm w+b; llama: token embd,
     * 9 per layer, output norm, output. */
    int64_t expect = gpt2 ? 4 + 12 * c->n_layer : 3 + 9 * c->n_layer;
    EXPECT(n == expect, "%s: %lld tensors, expected %lld", c->file, (long long) n, (long long) expect);
    for (int64_t i = 0; i < n; i++) {
        const char    *name = gguf_get_tensor_name(gf->g, i);
        enum ggml_type want = n_dims(gf, i) == 2 ? c->wtype : GGML_TYPE_F32;
        EXPECT(gguf_get_tensor_type(gf->g, i) == want, "%s: %s is %s, expected %s", c->file, name,
               ggml_type_name(gguf_get_tensor_type(gf->g, i)), ggml_type_name(want));
    }
    EXPECT((gguf_find_tensor(gf->g, "output.weight") >= 0) == !gpt2, "%s: output.weight only in llama", c->file);
    EXPECT((gguf_find_tensor(gf->g, "position_embd.weight") >= 0) == gpt2, "%s: position_embd only in gpt2", c->file);

    /* The file ends with the last tensor, padded to the alignment. */
    size_t align = gguf_get_alignment(gf->g);
    size_t end =
        gguf_get_data_offset(gf->g) + gguf_get_tensor_offset(gf->g, n - 1) + gguf_get_tensor_size(gf->g, n - 1);
    end = (end + align - 1) / align * align;
    fseek(gf->f, 0, SEEK_END);
    EXPECT((size_t) ftell(gf->f) == end, "%s: file size %ld, expected %zu", c->file, ftell(gf->f), end);
}

/* ---- values ------------------------------------------------------------ */

static void expected_distribution(const char *name, double *mean, double *std) {
    *mean = 0.0;
    *std = 0.02;
    if (strstr(name, "norm.weight")) {
        *mean = 1.0;
        *std = 0.1;
    } else if (strstr(name, "position_embd")) {
        *std = 0.01;
    }
}

/* Mean within 5 standard errors, standard deviation within 5 of its
 * standard errors plus 2%: loose enough never to fail by chance, tight
 * enough to catch a constant norm weight, a zero bias or a wrong scale. */
static void check_values(const struct gguf_file *gf, const char *file) {
    for (int64_t i = 0; i < gguf_get_n_tensors(gf->g); i++) {
        const char *name = gguf_get_tensor_name(gf->g, i);
        float      *v = read_f32(gf, i);
        if (!v) {
            continue;
        }
        int64_t n = n_elements(gf, i);
        double  sum = 0, sq = 0;
        for (int64_t k = 0; k < n; k++) {
            sum += v[k];
        }
        double mean = sum / (double) n;
        for (int64_t k = 0; k < n; k++) {
            sq += (v[k] - mean) * (v[k] - mean);
        }
        double std = sqrt(sq / (double) (n - 1));
        double want_mean, want_std;
        expected_distribution(name, &want_mean, &want_std);
        EXPECT(fabs(mean - want_mean) < 5 * want_std / sqrt((double) n), "%s: %s mean %g, expected %g", file, name,
               mean, want_mean);
        EXPECT(fabs(std / want_std - 1) < 5 / sqrt(2.0 * (double) n) + 0.02, "%s: %s std %g, expected %g", file, name,
               std, want_std);
        free(v);
    }
}

static uint64_t data_digest(const struct gguf_file *gf) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < gguf_get_n_tensors(gf->g); i++) {
        unsigned char *raw = read_raw(gf, i);
        size_t         size = gguf_get_tensor_size(gf->g, i);
        for (size_t k = 0; raw && k < size; k++) {
            h = (h ^ raw[k]) * 0x100000001b3ull;
        }
        free(raw);
    }
    return h;
}

/* f16 file == f32 file rounded to f16, tensor by tensor, bit for bit. */
static void check_f16_matches_f32(const struct gguf_file *f16, const struct gguf_file *f32) {
    for (int64_t i = 0; i < gguf_get_n_tensors(f32->g); i++) {
        const char *name = gguf_get_tensor_name(f32->g, i);
        int64_t     j = gguf_find_tensor(f16->g, name);
        EXPECT(j >= 0, "%s: %s missing", f16->path, name);
        if (j < 0) {
            continue;
        }
        int64_t n = n_elements(f32, i);
        float  *a = read_raw(f32, i);
        void   *b = read_raw(f16, j);
        int64_t bad = 0;
        for (int64_t k = 0; a && b && k < n; k++) {
            if (gguf_get_tensor_type(f16->g, j) == GGML_TYPE_F16) {
                bad += ((ggml_fp16_t *) b)[k] != ggml_fp32_to_fp16(a[k]);
            } else {
                bad += ((float *) b)[k] != a[k];
            }
        }
        EXPECT(a && b && bad == 0, "%s: %s: %lld values differ from the f32 file's", f16->path, name, (long long) bad);
        free(a);
        free(b);
    }
}

/* q8_0 and q4_K of one seed quantize the same values: relative RMS difference
 * small (q4_K's error is about 10%); another stream would give about 140%. */
static void check_quant_pair(const struct gguf_file *q8, const struct gguf_file *q4) {
    double worst = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(q8->g); i++) {
        const char *name = gguf_get_tensor_name(q8->g, i);
        int64_t     j = gguf_find_tensor(q4->g, name);
        EXPECT(j >= 0, "%s: %s missing", q4->path, name);
        if (j < 0) {
            continue;
        }
        float  *a = read_f32(q8, i), *b = read_f32(q4, j);
        int64_t n = n_elements(q8, i);
        double  diff = 0, norm = 0, mean = 0;
        for (int64_t k = 0; a && b && k < n; k++) {
            mean += a[k] / (double) n;
        }
        for (int64_t k = 0; a && b && k < n; k++) {
            diff += (a[k] - b[k]) * (a[k] - b[k]);
            norm += (a[k] - mean) * (a[k] - mean);
        }
        double rel = sqrt(diff / (norm > 0 ? norm : 1));
        double limit = n_dims(q8, i) == 2 ? 0.2 : 0.0; /* 1-D tensors are f32 in both */
        worst = fmax(worst, rel);
        EXPECT(a && b && rel <= limit, "%s: %s: q8_0 vs q4_K relative RMS difference %g > %g", q4->path, name, rel,
               limit);
        free(a);
        free(b);
    }
    printf("q8_0 vs q4_K weights: largest relative RMS difference %.3g\n", worst);
}

/* ---- running with llama.cpp -------------------------------------------- */

static void quiet_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void) user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

struct run_result {
    float *logits; /* [n_tokens][n_vocab] */
    int    n_tokens, n_vocab;
};

static bool check_model_shape(const struct llama_model *m, const struct model_case *c) {
    int before = failures;
    EXPECT(llama_model_n_layer(m) == c->n_layer, "%s: n_layer %d", c->file, llama_model_n_layer(m));
    EXPECT(llama_model_n_embd(m) == c->n_embd, "%s: n_embd %d", c->file, llama_model_n_embd(m));
    EXPECT(llama_model_n_head(m) == c->n_head, "%s: n_head %d", c->file, llama_model_n_head(m));
    EXPECT(llama_model_n_head_kv(m) == c->n_head_kv, "%s: n_head_kv %d", c->file, llama_model_n_head_kv(m));
    EXPECT(llama_model_n_ctx_train(m) == 512, "%s: n_ctx_train %d", c->file, llama_model_n_ctx_train(m));
    char buf[64] = "";
    llama_model_meta_val_str(m, "general.architecture", buf, sizeof(buf));
    EXPECT(strcmp(buf, c->arch) == 0, "%s: architecture '%s'", c->file, buf);
    return failures == before;
}

static int tokenize(const struct llama_model *m, llama_token *tokens, int max) {
    static const char text[] = "The quick brown fox jumps over the lazy dog";
    return llama_tokenize(llama_model_get_vocab(m), text, (int32_t) strlen(text), tokens, max, true, false);
}

/* Decodes the tokens in one batch with every position an output. */
static bool decode_all(struct llama_context *ctx, const llama_token *tokens, int n) {
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    int rc = llama_decode(ctx, batch);
    llama_batch_free(batch);
    return rc == 0;
}

static void check_logits(const struct run_result *r, const char *file) {
    int64_t n = (int64_t) r->n_tokens * r->n_vocab, bad = 0;
    for (int64_t k = 0; k < n; k++) {
        bad += !isfinite(r->logits[k]);
    }
    EXPECT(bad == 0, "%s: %lld logits are not finite", file, (long long) bad);
    /* Each position's logits differ from every other position's. */
    for (int i = 0; i < r->n_tokens; i++) {
        for (int j = i + 1; j < r->n_tokens; j++) {
            const float *a = r->logits + (size_t) i * r->n_vocab, *b = r->logits + (size_t) j * r->n_vocab;
            double       maxdiff = 0;
            for (int v = 0; v < r->n_vocab; v++) {
                maxdiff = fmax(maxdiff, fabs((double) a[v] - b[v]));
            }
            EXPECT(maxdiff > 1e-4, "%s: logits of positions %d and %d equal (max diff %g)", file, i, j, maxdiff);
        }
    }
}

static bool run_model(const char *path, const struct model_case *c, struct run_result *r) {
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false; /* AMX repacking crashes on this host (docs: llama-cpp.md) */
    mp.n_gpu_layers = 0;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    EXPECT(m != NULL, "%s: llama.cpp cannot load it", c->file);
    if (!m || !check_model_shape(m, c)) {
        llama_model_free(m);
        return false;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = cp.n_ubatch = 64;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    llama_token           tokens[64];
    r->n_tokens = ctx ? tokenize(m, tokens, 64) : 0;
    r->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    EXPECT(r->n_tokens >= 8, "%s: tokenized to %d tokens", c->file, r->n_tokens);
    bool ok = ctx && r->n_tokens >= 8 && decode_all(ctx, tokens, r->n_tokens);
    EXPECT(ok, "%s: llama_decode failed", c->file);
    if (ok) {
        r->logits = malloc((size_t) r->n_tokens * r->n_vocab * sizeof(float));
        for (int i = 0; i < r->n_tokens; i++) {
            memcpy(r->logits + (size_t) i * r->n_vocab, llama_get_logits_ith(ctx, i), r->n_vocab * sizeof(float));
        }
        check_logits(r, c->file);
    }
    llama_free(ctx);
    llama_model_free(m);
    return ok;
}

/* Relative RMS difference of two runs' logits, over all positions. */
static double logits_rel_diff(const struct run_result *a, const struct run_result *b) {
    int64_t n = (int64_t) a->n_tokens * a->n_vocab;
    double  diff = 0, norm = 0, mean = 0;
    for (int64_t k = 0; k < n; k++) {
        mean += a->logits[k] / (double) n;
    }
    for (int64_t k = 0; k < n; k++) {
        diff += ((double) a->logits[k] - b->logits[k]) * ((double) a->logits[k] - b->logits[k]);
        norm += (a->logits[k] - mean) * (a->logits[k] - mean);
    }
    return sqrt(diff / norm);
}

/* Same weights, another precision: the logits follow, within the precision
 * loss, and are not bit-identical (which would mean the type was ignored). */
static void check_close(const struct run_result *a, const struct run_result *b, const char *what, double limit) {
    if (!a->logits || !b->logits || a->n_tokens != b->n_tokens || a->n_vocab != b->n_vocab) {
        EXPECT(false, "%s: runs missing or of different sizes", what);
        return;
    }
    double rel = logits_rel_diff(a, b);
    printf("%s: logits relative RMS difference %.3g\n", what, rel);
    EXPECT(rel > 0 && rel < limit, "%s: relative RMS difference %g, expected in (0, %g)", what, rel, limit);
}

/* ---- main -------------------------------------------------------------- */

static void check_files(const char *dir) {
    struct gguf_file gf[N_CASES];
    memset(gf, 0, sizeof(gf));
    for (int i = 0; i < N_CASES; i++) {
        if (!gguf_file_open(&gf[i], path_in(dir, CASES[i].file))) {
            continue;
        }
        check_metadata(&gf[i], &CASES[i]);
        check_layout(&gf[i], &CASES[i]);
    }
    if (gf[GPT2_F32].g && gf[LLAMA_F32].g) {
        check_values(&gf[GPT2_F32], CASES[GPT2_F32].file);
        check_values(&gf[LLAMA_F32], CASES[LLAMA_F32].file);
        uint64_t dg = data_digest(&gf[GPT2_F32]), dl = data_digest(&gf[LLAMA_F32]);
        printf("digests: gpt2-f32 0x%016llx, llama-f32 0x%016llx\n", (unsigned long long) dg, (unsigned long long) dl);
        EXPECT(dg == GOLDEN_GPT2_F32, "%s: tensor data digest 0x%016llx changed", CASES[GPT2_F32].file,
               (unsigned long long) dg);
        EXPECT(dl == GOLDEN_LLAMA_F32, "%s: tensor data digest 0x%016llx changed", CASES[LLAMA_F32].file,
               (unsigned long long) dl);
    }
    if (gf[GPT2_F16].g && gf[GPT2_F32].g) {
        check_f16_matches_f32(&gf[GPT2_F16], &gf[GPT2_F32]);
    }
    if (gf[LLAMA_F16].g && gf[LLAMA_F32].g) {
        check_f16_matches_f32(&gf[LLAMA_F16], &gf[LLAMA_F32]);
    }
    if (gf[LLAMA_Q8_0].g && gf[LLAMA_Q4_K].g) {
        check_quant_pair(&gf[LLAMA_Q8_0], &gf[LLAMA_Q4_K]);
    }
    for (int i = 0; i < N_CASES; i++) {
        gguf_file_close(&gf[i]);
    }
}

static void check_runs(const char *dir) {
    struct run_result r[N_CASES];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N_CASES; i++) {
        run_model(path_in(dir, CASES[i].file), &CASES[i], &r[i]);
    }
    check_close(&r[GPT2_F32], &r[GPT2_F16], "gpt2 f16 vs f32", 0.02);
    check_close(&r[LLAMA_F32], &r[LLAMA_F16], "llama f16 vs f32", 0.02);
    check_close(&r[LLAMA_Q8_0], &r[LLAMA_Q4_K], "llama q4_K vs q8_0", 0.5);
    for (int i = 0; i < N_CASES; i++) {
        free(r[i].logits);
    }
}

/* --same / --all-differ: compares the tensors of a with those of b by name. */
static int compare_mode(bool want_same, const char *a_path, const char *b_path) {
    struct gguf_file a = {0}, b = {0};
    if (gguf_file_open(&a, a_path) && gguf_file_open(&b, b_path)) {
        for (int64_t i = 0; i < gguf_get_n_tensors(a.g); i++) {
            const char *name = gguf_get_tensor_name(a.g, i);
            int64_t     j = gguf_find_tensor(b.g, name);
            size_t      size = gguf_get_tensor_size(a.g, i);
            EXPECT(j >= 0 && gguf_get_tensor_size(b.g, j) == size, "%s: no tensor %s of the same size", b_path, name);
            if (j < 0 || gguf_get_tensor_size(b.g, j) != size) {
                continue;
            }
            void *x = read_raw(&a, i), *y = read_raw(&b, j);
            bool  same = x && y && memcmp(x, y, size) == 0;
            EXPECT(same == want_same, "%s: %s %s", b_path, name, want_same ? "differs" : "is identical");
            free(x);
            free(y);
        }
    }
    gguf_file_close(&a);
    gguf_file_close(&b);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && (strcmp(argv[1], "--same") == 0 || strcmp(argv[1], "--all-differ") == 0)) {
        return compare_mode(strcmp(argv[1], "--same") == 0, argv[2], argv[3]);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATA_DIR | --same A B | --all-differ A B\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    check_files(argv[1]);
    check_runs(argv[1]);
    llama_backend_free();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}

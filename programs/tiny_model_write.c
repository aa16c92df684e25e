/*
 * tiny_model_write.c - the streaming GGUF writer.
 *
 * gguf.h can only write a whole file from tensors held in memory, or the
 * metadata alone. A 7B-shape model does not fit that, so the metadata
 * (header, keys, tensor infos, padding) comes from gguf_get_meta_data and
 * the tensor data is generated and written here, in chunks of rows, with
 * each tensor padded to the file's alignment exactly as gguf computed the
 * offsets (gguf_get_tensor_offset is checked against the bytes written).
 */
#define _POSIX_C_SOURCE 200809L

#include "tiny_model.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"

/* Values generated per chunk: 4 MiB of floats, plus as much again for the
 * converted copy. This, the vocab and the metadata are all the memory used. */
#define TINY_CHUNK_VALUES (1 << 20)

static void fail(char *err, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* ---- tokenizer keys ---------------------------------------------------- */

static int copy_array(struct gguf_context *dst, const struct gguf_context *src, int64_t id) {
    const char    *key = gguf_get_key(src, id);
    enum gguf_type type = gguf_get_arr_type(src, id);
    size_t         n = gguf_get_arr_n(src, id);

    if (type == GGUF_TYPE_ARRAY) {
        return -1; /* nested arrays: no tokenizer uses them */
    }
    if (type != GGUF_TYPE_STRING) {
        gguf_set_arr_data(dst, key, type, gguf_get_arr_data(src, id), n);
        return 0;
    }
    /* gguf_set_arr_str copies the strings; the pointers only live here. */
    const char **strs = malloc((n ? n : 1) * sizeof(*strs));
    if (!strs) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        strs[i] = gguf_get_arr_str(src, id, i);
    }
    gguf_set_arr_str(dst, key, strs, n);
    free(strs);
    return 0;
}

static int copy_value(struct gguf_context *dst, const struct gguf_context *src, int64_t id) {
    const char *key = gguf_get_key(src, id);
    switch (gguf_get_kv_type(src, id)) {
        case GGUF_TYPE_UINT8:
            gguf_set_val_u8(dst, key, gguf_get_val_u8(src, id));
            return 0;
        case GGUF_TYPE_INT8:
            gguf_set_val_i8(dst, key, gguf_get_val_i8(src, id));
            return 0;
        case GGUF_TYPE_UINT16:
            gguf_set_val_u16(dst, key, gguf_get_val_u16(src, id));
            return 0;
        case GGUF_TYPE_INT16:
            gguf_set_val_i16(dst, key, gguf_get_val_i16(src, id));
            return 0;
        case GGUF_TYPE_UINT32:
            gguf_set_val_u32(dst, key, gguf_get_val_u32(src, id));
            return 0;
        case GGUF_TYPE_INT32:
            gguf_set_val_i32(dst, key, gguf_get_val_i32(src, id));
            return 0;
        case GGUF_TYPE_FLOAT32:
            gguf_set_val_f32(dst, key, gguf_get_val_f32(src, id));
            return 0;
        case GGUF_TYPE_UINT64:
            gguf_set_val_u64(dst, key, gguf_get_val_u64(src, id));
            return 0;
        case GGUF_TYPE_INT64:
            gguf_set_val_i64(dst, key, gguf_get_val_i64(src, id));
            return 0;
        case GGUF_TYPE_FLOAT64:
            gguf_set_val_f64(dst, key, gguf_get_val_f64(src, id));
            return 0;
        case GGUF_TYPE_BOOL:
            gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id));
            return 0;
        case GGUF_TYPE_STRING:
            gguf_set_val_str(dst, key, gguf_get_val_str(src, id));
            return 0;
        case GGUF_TYPE_ARRAY:
            return copy_array(dst, src, id);
        default:
            return -1;
    }
}

int tiny_copy_tokenizer(struct gguf_context *dst, const struct gguf_context *vocab, char *err, size_t err_size) {
    for (int64_t id = 0; id < gguf_get_n_kv(vocab); id++) {
        const char *key = gguf_get_key(vocab, id);
        if (strncmp(key, "tokenizer.", 10) != 0) {
            continue;
        }
        if (copy_value(dst, vocab, id) != 0) {
            fail(err, err_size, "cannot copy vocab key '%s' (type %s)", key,
                 gguf_type_name(gguf_get_kv_type(vocab, id)));
            return -1;
        }
    }
    return 0;
}

/* ---- the metadata ------------------------------------------------------ */

/* Adds the tensor infos. ctx only holds ggml_tensor headers (no_alloc):
 * gguf_add_tensor needs a ggml_tensor to take the name, type and shape from. */
static int add_tensor_infos(struct gguf_context *g, struct ggml_context *ctx, const struct tiny_tensor *tensors,
                            int n) {
    for (int i = 0; i < n; i++) {
        const struct tiny_tensor *t = &tensors[i];
        struct ggml_tensor       *gt = ggml_new_tensor(ctx, t->type, t->n_dims, t->ne);
        if (!gt) {
            return -1;
        }
        ggml_set_name(gt, t->name);
        gguf_add_tensor(g, gt);
    }
    return 0;
}

static int write_all(FILE *f, const void *data, size_t size) {
    return fwrite(data, 1, size, f) == size ? 0 : -1;
}

static int write_meta(FILE *f, const struct gguf_context *g, size_t *meta_size) {
    *meta_size = gguf_get_meta_size(g);
    void *meta = malloc(*meta_size);
    if (!meta) {
        return -1;
    }
    gguf_get_meta_data(g, meta);
    int rc = write_all(f, meta, *meta_size);
    free(meta);
    return rc;
}

/* ---- the tensor data --------------------------------------------------- */

struct chunk_buffers {
    float  *values;    /* generated float32 values */
    void   *converted; /* the same in the tensor's type */
    int64_t capacity;  /* values per chunk */
};

/* Converts n_rows rows of row_len values; returns the bytes produced. */
static size_t convert_rows(enum ggml_type type, const float *src, void *dst, int64_t n_rows, int64_t row_len) {
    switch (type) {
        case GGML_TYPE_F32:
            memcpy(dst, src, (size_t) (n_rows * row_len) * sizeof(float));
            return (size_t) (n_rows * row_len) * sizeof(float);
        case GGML_TYPE_F16:
            ggml_fp32_to_fp16_row(src, dst, n_rows * row_len);
            return (size_t) (n_rows * row_len) * sizeof(ggml_fp16_t);
        default:
            /* ggml's own quantizer: the file holds what llama-quantize would write. */
            return ggml_quantize_chunk(type, src, dst, 0, n_rows, row_len, NULL);
    }
}

static int write_padding(FILE *f, size_t n) {
    static const char zeros[64];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        if (write_all(f, zeros, k) != 0) {
            return -1;
        }
        n -= k;
    }
    return 0;
}

static int write_tensor(FILE *f, uint64_t seed, const struct tiny_tensor *t, const struct chunk_buffers *b,
                        size_t alignment, size_t *written) {
    const struct tiny_rng rng = tiny_rng_for(seed, t->name);
    const int64_t         row_len = t->ne[0], n_rows = t->ne[1];
    const int64_t         rows_per_chunk = b->capacity / row_len; /* >= 1: capacity >= every row length */
    size_t                bytes = 0;

    for (int64_t row = 0; row < n_rows; row += rows_per_chunk) {
        int64_t n = n_rows - row < rows_per_chunk ? n_rows - row : rows_per_chunk;
        tiny_rng_fill(&rng, t->init, row * row_len, n * row_len, b->values);
        size_t size = convert_rows(t->type, b->values, b->converted, n, row_len);
        if (write_all(f, b->converted, size) != 0) {
            return -1;
        }
        bytes += size;
    }
    size_t pad = (alignment - bytes % alignment) % alignment;
    if (write_padding(f, pad) != 0) {
        return -1;
    }
    *written = bytes + pad;
    return 0;
}

static int alloc_buffers(struct chunk_buffers *b, const struct tiny_tensor *tensors, int n) {
    b->capacity = TINY_CHUNK_VALUES;
    for (int i = 0; i < n; i++) {
        if (tensors[i].ne[0] > b->capacity) {
            b->capacity = tensors[i].ne[0];
        }
    }
    /* Every type written here is at most 4 bytes per value. */
    b->values = malloc((size_t) b->capacity * sizeof(float));
    b->converted = malloc((size_t) b->capacity * sizeof(float));
    return b->values && b->converted ? 0 : -1;
}

/* Shows progress on a terminal only: logs and tests stay one line. */
static void progress(int i, int n, const char *name) {
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[Kwriting tensor %d/%d %s", i + 1, n, name);
        if (i + 1 == n) {
            fputs("\r\033[K", stderr);
        }
    }
}

static int write_data(FILE *f, const struct tiny_config *cfg, const struct gguf_context *g,
                      const struct tiny_tensor *tensors, int n, size_t *data_size, char *err, size_t err_size) {
    struct chunk_buffers b = {0};
    int                  rc = -1;
    if (alloc_buffers(&b, tensors, n) != 0) {
        fail(err, err_size, "out of memory for %lld-value chunk buffers", (long long) b.capacity);
        goto out;
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        progress(i, n, tensors[i].name);
        if (gguf_get_tensor_offset(g, i) != offset) { /* our padding must match gguf's layout */
            fail(err, err_size, "internal error: tensor %s at data offset %zu, gguf expects %zu", tensors[i].name,
                 offset, gguf_get_tensor_offset(g, i));
            goto out;
        }
        size_t written = 0;
        if (write_tensor(f, cfg->seed, &tensors[i], &b, gguf_get_alignment(g), &written) != 0) {
            fail(err, err_size, "writing tensor %s failed: %s", tensors[i].name, strerror(errno));
            goto out;
        }
        offset += written;
    }
    *data_size = offset;
    rc = 0;
out:
    free(b.values);
    free(b.converted);
    return rc;
}

/* ---- the whole file ---------------------------------------------------- */

static struct gguf_context *build_gguf(const struct tiny_config *cfg, const struct gguf_context *vocab,
                                       struct ggml_context *ctx, const struct tiny_tensor *tensors, int n, char *err,
                                       size_t err_size) {
    struct gguf_context *g = gguf_init_empty();
    if (!g) {
        fail(err, err_size, "out of memory creating the GGUF metadata");
        return NULL;
    }
    tiny_model_set_metadata(cfg, g);
    if (tiny_copy_tokenizer(g, vocab, err, err_size) != 0) {
        gguf_free(g);
        return NULL;
    }
    if (add_tensor_infos(g, ctx, tensors, n) != 0) {
        fail(err, err_size, "out of memory for tensor headers");
        gguf_free(g);
        return NULL;
    }
    return g;
}

int tiny_model_write(const struct tiny_config *cfg, const struct gguf_context *vocab, FILE *f, int64_t *n_params,
                     int64_t *bytes, char *err, size_t err_size) {
    int                     max = tiny_model_max_tensors(cfg);
    struct tiny_tensor     *tensors = calloc((size_t) max, sizeof(*tensors));
    struct ggml_init_params ip = {ggml_tensor_overhead() * (size_t) max, NULL, true};
    struct ggml_context    *ctx = tensors ? ggml_init(ip) : NULL;
    struct gguf_context    *g = NULL;
    int                     rc = -1;

    if (!ctx) {
        fail(err, err_size, "out of memory for %d tensor descriptions", max);
        goto out;
    }
    int n = tiny_model_tensors(cfg, tensors, max);
    if (n < 0) {
        fail(err, err_size, "internal error: more than %d tensors", max);
        goto out;
    }
    g = build_gguf(cfg, vocab, ctx, tensors, n, err, err_size);
    if (!g) {
        goto out;
    }
    size_t meta_size = 0;
    if (write_meta(f, g, &meta_size) != 0) {
        fail(err, err_size, "writing the GGUF header failed: %s", strerror(errno));
        goto out;
    }
    size_t data_size = 0;
    if (write_data(f, cfg, g, tensors, n, &data_size, err, err_size) != 0) {
        goto out;
    }
    if (fflush(f) != 0) {
        fail(err, err_size, "writing failed: %s", strerror(errno));
        goto out;
    }
    *n_params = tiny_model_n_params(tensors, n);
    *bytes = (int64_t) (meta_size + data_size);
    rc = 0;
out:
    if (g) {
        gguf_free(g);
    }
    if (ctx) {
        ggml_free(ctx);
    }
    free(tensors);
    return rc;
}

/* ---- cleanup on signals ------------------------------------------------ */

static char                  part_path_for_signal[4096];
static volatile sig_atomic_t part_armed;

/* unlink and raise are async-signal-safe; the default action then ends the
 * program with the signal's usual status. */
static void on_signal(int sig) {
    if (part_armed) {
        unlink(part_path_for_signal);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void tiny_install_signal_cleanup(const char *part_path) {
    snprintf(part_path_for_signal, sizeof(part_path_for_signal), "%s", part_path);
    part_armed = 1;
    /* SIGABRT too: a GGML_ASSERT in ggml aborts. A signal ignored at start
     * (nohup, background jobs of a script) stays ignored, as is customary. */
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (signal(sigs[i], on_signal) == SIG_IGN) {
            signal(sigs[i], SIG_IGN);
        }
    }
}

void tiny_clear_signal_cleanup(void) {
    part_armed = 0;
}

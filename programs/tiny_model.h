/*
 * tiny_model.h - the parts of llorch-make-tiny-model: the weight generator
 * (tiny_model_rng.c), the tensor list and metadata of each architecture
 * (tiny_model_spec.c) and the streaming GGUF writer (tiny_model_write.c).
 */
#ifndef TINY_MODEL_H
#define TINY_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ggml.h"

struct gguf_context;

enum tiny_arch {
    TINY_ARCH_GPT2,
    TINY_ARCH_LLAMA,
    TINY_ARCH_QWEN2 /* llama's shape plus q/k/v biases; NEOX RoPE in llama.cpp */
};

/* Everything the command line decides, already validated. */
struct tiny_config {
    enum tiny_arch arch;
    int            n_layer, n_embd, n_head, n_head_kv, n_ff, n_ctx;
    enum ggml_type wtype; /* type of every 2-D tensor */
    uint64_t       seed;
    float          rope_base; /* llama, qwen2 */
    const char    *vocab_path;
    const char    *out_path;
    int            n_vocab; /* from the vocab file */
};

const char *tiny_arch_name(enum tiny_arch arch);

/* ---- weights (tiny_model_rng.c) ---------------------------------------- */

/* How a tensor's values are drawn: mean + std * N(0, 1). */
struct tiny_init {
    double mean, std;
};

/* The deterministic stream of one tensor. Element i of a tensor depends only
 * on (seed, tensor name, i): the stream is counter based, so tensors can be
 * generated in any order and any chunking. */
struct tiny_rng {
    uint64_t key;
};

struct tiny_rng tiny_rng_for(uint64_t seed, const char *tensor_name);
/* Writes elements first .. first+n-1 of the stream, as float32. */
void tiny_rng_fill(const struct tiny_rng *rng, struct tiny_init init, int64_t first, int64_t n, float *out);

/* ---- tensors and metadata (tiny_model_spec.c) -------------------------- */

struct tiny_tensor {
    char             name[GGML_MAX_NAME];
    int              n_dims; /* 1 or 2 */
    int64_t          ne[2];  /* ggml order: ne[0] is the row length */
    enum ggml_type   type;
    struct tiny_init init;
};

/* The tensors of the model, in file order. Returns the count (at most max),
 * or -1 if max is too small. */
int tiny_model_tensors(const struct tiny_config *cfg, struct tiny_tensor *out, int max);
/* Upper bound on tiny_model_tensors' count, for sizing the array. */
int tiny_model_max_tensors(const struct tiny_config *cfg);
/* Sets general.* and ARCH.* keys (not tokenizer.*). */
void tiny_model_set_metadata(const struct tiny_config *cfg, struct gguf_context *gguf);
/* Number of parameters, for the summary line. */
int64_t tiny_model_n_params(const struct tiny_tensor *tensors, int n);

/* ---- writing (tiny_model_write.c) -------------------------------------- */

/* Copies every tokenizer.* key of vocab into dst. Returns 0, or -1 with a
 * message in err (a key type we cannot copy). */
int tiny_copy_tokenizer(struct gguf_context *dst, const struct gguf_context *vocab, char *err, size_t err_size);

/* Writes the whole model into f (opened "wb", positioned at 0): the
 * metadata first, then one tensor at a time in chunks of rows, so memory
 * stays bounded whatever the model size. vocab is the opened vocab file
 * (metadata only). Returns 0, or -1 with a message in err. On success
 * *n_params and *bytes hold the parameter count and file size. */
int tiny_model_write(const struct tiny_config *cfg, const struct gguf_context *vocab, FILE *f, int64_t *n_params,
                     int64_t *bytes, char *err, size_t err_size);

/* Removes a half-written .part file when a signal ends the program. */
void tiny_install_signal_cleanup(const char *part_path);
void tiny_clear_signal_cleanup(void);

#endif /* TINY_MODEL_H */

/* extractor_settings.h - the manifest's "settings" and "llama_cpp" objects
 * of an extractor run, as JSON text. */
#ifndef LLORCH_EXTRACTOR_SETTINGS_H
#define LLORCH_EXTRACTOR_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

/* Every setting that changes numbers (docs/FORMAT.md, "settings"). */
struct extractor_settings {
    int         threads, n_ctx, n_batch, n_ubatch;
    const char *type_k, *type_v;
    const char *weight_type; /* the type of most of the model's weight bytes */
    bool        gelu_f16;    /* the FFN's GELU went through ggml's f16 table */
    bool        flash_attn;
    const char *flash_attn_reason;
    bool        repack;
    int         n_gpu_layers;
    unsigned    seed;
    int         n_predict;
    bool        raw, native_dtype, identify_structure;
    int         steps;
    int         n_parallel; /* --parallel: sequences decoded together; 0: one */
};

/* The ggml type name ("f32", "f16", "q8_0", ...) that holds most of the
 * bytes of the GGUF's tensors: llama.cpp multiplies in it (and rounds the
 * activations to its dot-product type), which decides how far an f32
 * engine may differ. "" when the file cannot be read. */
void extractor_weight_type(const char *model_path, char *buf, size_t size);

/* JSON object texts; free() them. NULL when out of memory. */
char *extractor_settings_json(const struct extractor_settings *s);
/* How the run read its checkpoints (llama_cpp.capture). */
struct extractor_capture_path {
    size_t steps_outputs; /* steps read after the graph, from marked graph outputs */
    size_t steps_splits;  /* steps read at graph splits only */
    size_t splits;        /* graph splits the capture added */
};

/* patched: 1, 0, or -1 for unknown (an installed llama.cpp). */
char *extractor_llama_cpp_json(const char *commit, const char *source, int patched, bool names_seen,
                               const struct extractor_capture_path *path);

#endif

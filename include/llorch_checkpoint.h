/*
 * llorch_checkpoint.h - capture llama.cpp's intermediate tensors
 * ("checkpoints") and write them as a dump that numpy, Rust and C read
 * directly; read two dumps back and compare them.
 *
 * The library, one folder per part (lib/), one file per stage:
 *   common/   kinds.c (the checkpoints), select.c (which ones the user asked
 *             for), npy.c (dtypes, .npy headers), atomic_file.c, checksum.c
 *   capture/  graph.c (the recorded graph), identify*.c (which tensor is
 *             which checkpoint, by dataflow), plan.c (where to copy),
 *             capture*.c (the eval callback), convert.c (gather + convert),
 *             queue.c + buffers.c (hand-off to the writer thread)
 *   write/    write.c (the writer), write_npy.c, write_npz.c,
 *             write_safetensors.c, manifest.c (written last, atomically)
 *   read/     read_file.c, read_npy.c, read_manifest.c, read_dump.c,
 *             read_container.c: the readers (llorch_compare.h)
 *   compare/  compare_*.c, report.c: the comparison (llorch_compare.h)
 *
 * The dump format is specified in docs/FORMAT.md.
 *
 * Ownership: every create or open function returns an object that the
 * caller frees with the matching free function. Strings passed in are
 * copied. Functions that can fail return 0 on success and -1 on failure;
 * the object's error function then holds a one-line message.
 */
#ifndef LLORCH_CHECKPOINT_H
#define LLORCH_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLORCH_CKPT_VERSION                  "0.1.0"
#define LLORCH_CKPT_FORMAT_NAME              "llorch-checkpoint-dump"
#define LLORCH_CKPT_FORMAT_VERSION           1 /* the npy form's manifests               */
#define LLORCH_CKPT_FORMAT_VERSION_CONTAINER 2 /* manifests of a container form */
#define LLORCH_CKPT_FORMAT_VERSION_SEQUENCES 3 /* manifests of a dump of several sequences */

/* ---- checkpoints ------------------------------------------------------- */

/* Every kind of tensor a dump can hold. The numbers 1-6 are the design's
 * checkpoint numbers; extras have number 0. */
enum llorch_ckpt_kind {
    LLORCH_CKPT_ATTN_NORM = 0,  /* 1  attention layer norm output           */
    LLORCH_CKPT_QCUR,           /* 2  query as it enters attention (RoPE'd) */
    LLORCH_CKPT_KCUR,           /* 2  key as it enters attention (RoPE'd)   */
    LLORCH_CKPT_VCUR,           /* 2  value as it enters attention          */
    LLORCH_CKPT_QCUR_PRE_ROPE,  /* 2  query before RoPE (RoPE models only)  */
    LLORCH_CKPT_KCUR_PRE_ROPE,  /* 2  key before RoPE (RoPE models only)    */
    LLORCH_CKPT_CACHE_K,        /* 3  K cache window, valid cells only      */
    LLORCH_CKPT_CACHE_V,        /* 3  V cache window, valid cells only      */
    LLORCH_CKPT_KQ_SOFT_MAX,    /* 4  attention probabilities               */
    LLORCH_CKPT_ATTN_OUT_PROJ,  /* 5  attention output projection (+bias)   */
    LLORCH_CKPT_FFN_OUT,        /* 6  feed-forward output (before residual) */
    LLORCH_CKPT_EMBD,           /*    input embeddings (model level)        */
    LLORCH_CKPT_FFN_INP,        /*    residual stream entering the FFN      */
    LLORCH_CKPT_L_OUT,          /*    residual stream leaving the layer     */
    LLORCH_CKPT_RESULT_NORM,    /*    final norm (model level)              */
    LLORCH_CKPT_LOGITS,         /*    logits (model level)                  */
    LLORCH_CKPT_Q_NORM,         /*    query after its per-head norm         */
    LLORCH_CKPT_K_NORM,         /*    key after its per-head norm           */
    LLORCH_CKPT_QCUR_UNSCALED,  /*    query before a scaling ahead of KQ    */
    LLORCH_CKPT_ATTN_OUT_FINAL, /*    attention output as added to residual */
    LLORCH_CKPT_FFN_OUT_FINAL,  /*    FFN output as added to residual       */
    LLORCH_CKPT_FFN_MOE_OUT,    /*    routed experts, combined              */
    LLORCH_CKPT_FFN_SHEXP_OUT,  /*    shared expert                         */
    LLORCH_CKPT_FFN_DENSE_OUT,  /*    dense FFN beside the experts          */
    LLORCH_CKPT_CACHE_R,        /* 3  recurrent state r after the step      */
    LLORCH_CKPT_CACHE_S,        /* 3  recurrent state s after the step      */
    LLORCH_CKPT_GRAPH,          /*    any graph tensor matched by a regex   */
    LLORCH_CKPT_KIND_COUNT
};

struct llorch_ckpt_kind_info {
    enum llorch_ckpt_kind kind;
    const char           *name;      /* "attn_norm", "Qcur", ..., used in file names  */
    int                   number;    /* 1-6, or 0 for extras                          */
    bool                  per_layer; /* false for embd, result_norm, logits, graph    */
    const char           *axes;      /* numpy axis names, comma separated             */
    bool                  optional;  /* exists only in some architectures: listed as
                                        missing only when asked for by name        */
};

/* Table lookups; NULL / -1 when unknown. */
const struct llorch_ckpt_kind_info *llorch_ckpt_kind_info(enum llorch_ckpt_kind kind);
int                                 llorch_ckpt_kind_from_name(const char *name);

/* The file name of a checkpoint (without directory), e.g.
 * "checkpoint_01_attn_norm_l00_s000.npy". layer < 0 for model-level tensors;
 * seq >= 0 names one sequence of a multi-sequence dump
 * ("checkpoint_01_attn_norm_l00_seq02_s000.npy"), -1 none; graph_name is
 * used for LLORCH_CKPT_GRAPH only (sanitized: never a path). ext is "npy"
 * or "txt". Returns the length, or -1 if buf is too small. */
int llorch_ckpt_file_name(char *buf, size_t size, enum llorch_ckpt_kind kind, int layer, int seq, int step,
                          const char *graph_name, const char *ext);

/* ---- selection (select.c) ---------------------------------------------- */

typedef struct llorch_ckpt_selection llorch_ckpt_selection;

/* checkpoints: comma list of names and numbers ("1-6", "attn_norm,Qcur,4",
 * "all", "extras"); NULL means the six checkpoints.
 * layers: "all" or ranges ("0-3,11"); NULL means all.
 * Layers are checked against the model later (llorch_ckpt_selection_check). */
llorch_ckpt_selection *llorch_ckpt_selection_create(const char *checkpoints, const char *layers, char *err,
                                                    size_t err_size);
/* Adds a POSIX extended regex on llama.cpp tensor names (LLORCH_CKPT_GRAPH). */
int llorch_ckpt_selection_add_regex(llorch_ckpt_selection *sel, const char *regex, char *err, size_t err_size);
/* Fails if a selected layer is >= n_layer. */
int  llorch_ckpt_selection_check(const llorch_ckpt_selection *sel, int n_layer, char *err, size_t err_size);
bool llorch_ckpt_selection_has(const llorch_ckpt_selection *sel, enum llorch_ckpt_kind kind, int layer);
bool llorch_ckpt_selection_empty(const llorch_ckpt_selection *sel);
/* True when kind was asked for by its name (not through "all" or "extras"). */
bool llorch_ckpt_selection_named(const llorch_ckpt_selection *sel, enum llorch_ckpt_kind kind);
/* Keeps only the token rows at some absolute positions of a run of
 * n_tokens tokens (--positions): "last", "last:16", "0-15,2040-2055".
 * Per-token checkpoints keep those rows and kq_soft_max those query rows;
 * key axes (the cache, the scores' keys) stay whole; a step that holds
 * none of them is not captured. -1 with a message on a bad list. */
int llorch_ckpt_selection_set_positions(llorch_ckpt_selection *sel, const char *spec, int32_t n_tokens, char *err,
                                        size_t err_size);
/* Whether pos is kept: true for every position without set_positions. */
bool llorch_ckpt_selection_position(const llorch_ckpt_selection *sel, int32_t pos);
/* True when set_positions restricted the rows. */
bool llorch_ckpt_selection_has_positions(const llorch_ckpt_selection *sel);
/* True when a --graph-regex matches this llama.cpp tensor name. */
bool llorch_ckpt_selection_match_graph(const llorch_ckpt_selection *sel, const char *name);
void llorch_ckpt_selection_free(llorch_ckpt_selection *sel);

/* ---- the model fingerprint (gguf_fingerprint.c, fingerprint.c) --------- */

/* "sha256-sampled-v1:<64 hex digits>": SHA-256 of a GGUF file's
 * tensor-info table and of fixed-size blocks of each tensor's data
 * (docs/FORMAT.md, "The model fingerprint"); a few MB read whatever the
 * model's size. */
#define LLORCH_CKPT_FINGERPRINT_SCHEME "sha256-sampled-v1"
#define LLORCH_CKPT_FINGERPRINT_SIZE   96 /* bytes for any fingerprint this library writes, NUL included */

/* Computes the fingerprint of the GGUF file at path into out (at least
 * LLORCH_CKPT_FINGERPRINT_SIZE bytes). 0, or -1 with a one-line message in
 * err (not a GGUF file, truncated, unreadable). */
int llorch_ckpt_gguf_fingerprint(const char *path, char *out, size_t out_size, char *err, size_t err_size);
/* True when s has a fingerprint's form, whatever its scheme: SCHEME:VALUE,
 * SCHEME of [a-z0-9.-], VALUE of lowercase hex digits, at most 255 bytes
 * in all (what the writers accept and the readers take). */
bool llorch_ckpt_fingerprint_valid(const char *s);

/* ---- writing a dump (write.c, manifest.c) ------------------------------ */

enum llorch_ckpt_dtype {
    LLORCH_CKPT_DTYPE_F32 = 0, /* "<f4" */
    LLORCH_CKPT_DTYPE_F16,     /* "<f2" */
    LLORCH_CKPT_DTYPE_I32,     /* "<i4" (token ids) */
};

/* "float32", "float16", "int32" (the manifest's names); NULL when unknown. */
const char *llorch_ckpt_dtype_name(enum llorch_ckpt_dtype dtype);

/* One sequence of a multi-sequence dump: its id, its tokens in position
 * order (prompt and generated) and, where it had one, its prompt. */
struct llorch_ckpt_sequence {
    int32_t        seq;
    const int32_t *tokens;
    int            n_tokens;
    const char    *prompt;
};

/* What produced the dump and on what input. Every pointer may be NULL except
 * producer. settings_json is a JSON object of the settings that change
 * numbers (threads, batch sizes, KV cache types, ...), copied verbatim. */
struct llorch_ckpt_run {
    const char    *producer; /* "llorch-checkpoint-extractor 0.1.0", "my-engine 2.1" */
    const char    *model_path;
    int64_t        model_size;   /* bytes, or -1 */
    const char    *architecture; /* "llama", "gpt2", ... */
    int            n_layer, n_embd, n_head, n_head_kv, n_vocab;
    const int32_t *tokens;
    int            n_tokens;
    const char    *prompt;
    const char    *settings_json;
    const char    *llama_cpp_json; /* {"commit":..,"source":..,"patched":..}, engines: NULL */
    /* A multi-sequence dump: each sequence's tokens (tokens/n_tokens then
     * hold every token in the order decoded). NULL/0 for one sequence. */
    const struct llorch_ckpt_sequence *sequences;
    int                                n_sequences;
    /* The model's fingerprint (llorch_ckpt_gguf_fingerprint), written as
     * model.fingerprint: compare refuses two dumps of different models.
     * NULL: none (compare then warns that the model cannot be checked). */
    const char *model_fingerprint;
    /* A fed run (docs/FORMAT.md, "Fed runs"): the "fed" object as JSON
     * text, {"from": ..., "producer": ..., "fingerprint": ... or null,
     * "at": [...], "layers": [...]}, checked and written as given. NULL:
     * the run computed every layer from its own input. */
    const char *fed_json;
};

/* One tensor to write, C order, shape in numpy order. Rows along the "token"
 * axis are the absolute token positions pos_start .. pos_start+n_pos-1, or
 * positions[0 .. n_pos-1] when only some rows of the step were kept; the
 * "key" axis (cache, scores) covers key positions 0 .. n_key-1. */
struct llorch_ckpt_tensor {
    enum llorch_ckpt_kind  kind;
    int                    layer; /* -1 for model-level tensors */
    int                    step;  /* graph evaluation index, from 0 */
    int32_t                pos_start;
    int32_t                n_pos;
    int32_t                n_key;  /* 0 when the tensor has no key axis */
    int                    n_dims; /* 1..4 */
    int64_t                shape[4];
    enum llorch_ckpt_dtype dtype;
    const void            *data;
    const char            *graph_name; /* llama.cpp tensor name, or NULL */
    const char            *graph_op;   /* llama.cpp op name, or NULL */
    const char            *axes;       /* NULL: the kind's default axes */
    bool                   raw;        /* written as llama.cpp holds it (--raw) */
    const int32_t         *positions;  /* n_pos ascending positions, or NULL: consecutive */
    const char            *device;     /* the device it was read from when not host memory
                                          (an RPC server, a GPU), else NULL */
    /* A dump of several sequences decoded in one batch (docs/FORMAT.md,
     * "Several sequences") writes each step's tensor once per sequence:
     * the rows of sequence seq only, and along a key axis its own cache
     * cells, in position order (key position j is cache cell cells[j]). */
    bool           in_seq; /* false: a single-sequence dump (no seq in names or manifest) */
    int32_t        seq;    /* with in_seq: the llama_seq_id                                */
    const int32_t *cells;  /* with in_seq and a key axis: n_key cache cells, else NULL      */
};

/* How the tensors of a dump are stored (docs/FORMAT.md). */
enum llorch_ckpt_form {
    LLORCH_CKPT_FORM_NPY = 0,     /* one .npy file per tensor                     */
    LLORCH_CKPT_FORM_NPZ,         /* checkpoints.npz: numpy's zip of .npy members */
    LLORCH_CKPT_FORM_SAFETENSORS, /* checkpoints.safetensors                      */
};

/* "npy", "npz", "safetensors"; NULL / -1 when unknown. */
const char *llorch_ckpt_form_name(enum llorch_ckpt_form form);
int         llorch_ckpt_form_from_name(const char *name);

struct llorch_ckpt_writer_options {
    bool text;                  /* also write each tensor as .txt, one %.9g value per line (npy form only) */
    bool allow_nonempty;        /* write into an existing non-empty directory */
    bool no_sync;               /* skip the fsyncs that put every file on disk before the
                                   manifest: faster, but after a power loss a manifest
                                   can then name data that never reached the disk */
    enum llorch_ckpt_form form; /* default: LLORCH_CKPT_FORM_NPY */
};

typedef struct llorch_ckpt_writer llorch_ckpt_writer;

/* Creates dir if needed. Fails (NULL, message in err) if dir exists and is
 * not empty (unless allowed), or is not writable. */
llorch_ckpt_writer *llorch_ckpt_writer_open(const char *dir, const struct llorch_ckpt_writer_options *opt, char *err,
                                            size_t err_size);
int                 llorch_ckpt_writer_set_run(llorch_ckpt_writer *w, const struct llorch_ckpt_run *run);
/* Writes one tensor: in the npy form a file (atomically: .part then
 * rename), in a container form a member of the container, which is
 * written as NAME.part and renamed by llorch_ckpt_writer_finish. Not
 * thread-safe. */
int llorch_ckpt_writer_write(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t);
/* Records that a requested checkpoint does not exist for this model. */
int llorch_ckpt_writer_note_missing(llorch_ckpt_writer *w, enum llorch_ckpt_kind kind, int layer, const char *reason);
/* Finishes the container (if any), syncs every file and the directory to
 * disk (unless no_sync), then writes manifest.json atomically (and syncs
 * it). complete=false marks an interrupted dump. */
int         llorch_ckpt_writer_finish(llorch_ckpt_writer *w, bool complete, const char *status);
const char *llorch_ckpt_writer_error(const llorch_ckpt_writer *w);
size_t      llorch_ckpt_writer_bytes(const llorch_ckpt_writer *w);
size_t      llorch_ckpt_writer_files(const llorch_ckpt_writer *w);
/* Frees the writer. A writer that wrote no manifest (finish was never
 * called, or failed: a full disk) first removes every file it wrote, and
 * the directory where it made it, so that nothing half-written is left to
 * look like a dump and a run into the same directory can start again. */
void llorch_ckpt_writer_free(llorch_ckpt_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* LLORCH_CHECKPOINT_H */

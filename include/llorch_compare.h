/*
 * llorch_compare.h - read checkpoint dumps safely and compare two of them.
 *
 *   lib/read/     .npy arrays, manifest.json and containers, from a dump
 *                 directory or from memory; every input is untrusted (see
 *                 "Safety" below)
 *   lib/compare/  alignment by layer and absolute position, metrics,
 *                 tolerances, pass/fail and the first divergence
 *                 (compare_*.c); one row's error by position, head or
 *                 step (compare_profile.c); the human table (report.c),
 *                 the JSON report (report_json.c), the one-line verdict
 *                 (report_text.c), the terminal heat map
 *                 (report_heatmap.c) and the HTML report (report_html*.c)
 *
 * The dump format is docs/FORMAT.md; the report and the tolerances are
 * described in docs/COMPARE.md.
 *
 * Ownership: every *_open, *_parse, *_create and *_read returns an object that the
 * caller frees with the matching *_free (NULL is accepted by all *_free).
 * Pointers returned by accessors point into the object they came from and
 * live as long as it. Strings passed in are copied. Functions that can fail
 * return 0 (or an object) on success and -1 (or NULL) on failure, with a
 * one-line message naming the file in err (err may be NULL, err_size 0).
 *
 * Safety: the readers never open a path outside the dump directory (file
 * names with '/', '\\' or ".." are refused, symlinks are not followed), never
 * allocate more than the size of the input justifies, and check every field
 * before use: a malformed file is an error, never a crash.
 */
#ifndef LLORCH_COMPARE_H
#define LLORCH_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llorch_checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLORCH_CKPT_MAX_DIMS 4

/* ---- .npy arrays (lib/read/read_npy.c) ---------------------------------- */

/* A .npy array: versions 1.0 and 2.0, dtypes <f4, <f2 and <i4, C order. */
typedef struct llorch_ckpt_array llorch_ckpt_array;

/* Parses a whole .npy file held in memory (the data is copied). name is
 * used in messages only. */
llorch_ckpt_array *llorch_ckpt_array_parse(const void *buf, size_t size, const char *name, char *err, size_t err_size);
/* Reads dir/file. file must be a plain file name (see llorch_ckpt_safe_name)
 * naming a regular file. */
llorch_ckpt_array     *llorch_ckpt_array_read(const char *dir, const char *file, char *err, size_t err_size);
enum llorch_ckpt_dtype llorch_ckpt_array_dtype(const llorch_ckpt_array *a);
int                    llorch_ckpt_array_n_dims(const llorch_ckpt_array *a);
int64_t                llorch_ckpt_array_dim(const llorch_ckpt_array *a, int axis);
int64_t                llorch_ckpt_array_count(const llorch_ckpt_array *a);
/* Element i (C order) as a double; f16 is converted exactly. NaN when i is
 * out of range. */
double llorch_ckpt_array_value(const llorch_ckpt_array *a, int64_t i);
/* Gathers n elements start, start+stride, ... as doubles into out. Returns -1
 * (and writes nothing) if any of them is out of range. */
int llorch_ckpt_array_gather(const llorch_ckpt_array *a, int64_t start, int64_t stride, int64_t n, double *out);
/* The data bytes after the header, and zlib's CRC-32 of them. */
const unsigned char *llorch_ckpt_array_data(const llorch_ckpt_array *a, size_t *bytes);
uint32_t             llorch_ckpt_array_crc32(const llorch_ckpt_array *a);
void                 llorch_ckpt_array_free(llorch_ckpt_array *a);

/* True if name can be opened inside a dump directory: not empty, no '/',
 * '\\' or "..", no control characters, at most 255 bytes. */
bool llorch_ckpt_safe_name(const char *name);

/* ---- dumps (lib/read/read_manifest.c, read_dump.c) -------------------- */

/* The model block of a manifest; -1 for an absent optional number, NULL
 * for an absent architecture (the writer API allows one). */
struct llorch_ckpt_model {
    const char *architecture;
    int         n_layer, n_embd, n_head, n_head_kv, n_vocab;
    const char *fingerprint; /* "sha256-sampled-v1:...", checked to have a fingerprint's
                                form (llorch_ckpt_fingerprint_valid); NULL when absent */
};

/* One entry of the manifest's "files", checked against the format: the
 * shape matches the axes, n_pos and n_key, names are plain file names. */
struct llorch_ckpt_entry {
    const char *file;                  /* plain file name inside the dump directory,
                                          or the member's name in its container  */
    const char            *checkpoint; /* "attn_norm", ..., "graph"                 */
    const char            *graph_name; /* llama.cpp tensor name, or NULL            */
    int                    number;     /* design checkpoint number, 0 for extras    */
    int                    layer;      /* -1 for model-level tensors                */
    int                    step;
    int64_t                pos_start, n_pos, n_key;
    const int64_t         *positions; /* the token rows' positions when not pos_start.. in a row (--positions) */
    int                    seq;       /* a dump of several sequences: whose rows these are; -1 otherwise */
    const int64_t         *cells;     /* with seq: the cache cell of each key position, or NULL */
    int                    n_dims;
    int64_t                shape[LLORCH_CKPT_MAX_DIMS];
    const char            *axes[LLORCH_CKPT_MAX_DIMS];
    enum llorch_ckpt_dtype dtype;
    bool                   raw; /* llama.cpp's own layout (--raw)            */
    bool                   has_crc32;
    uint32_t               crc32;
    int64_t                bytes; /* data bytes, -1 when absent                */
};

typedef struct llorch_ckpt_dump llorch_ckpt_dump;

/* One sequence of a dump of several (format version 3). */
struct llorch_ckpt_dump_sequence {
    int            seq;
    const int32_t *tokens; /* in position order: prompt and generated */
    size_t         n_tokens;
    const char    *prompt; /* NULL when absent */
};

/* Reads dir/manifest.json and the token file it names (not the tensors). */
llorch_ckpt_dump *llorch_ckpt_dump_open(const char *dir, char *err, size_t err_size);
/* Parses a manifest held in memory; its files can be supplied with
 * llorch_ckpt_dump_add_file (the fuzz targets and tests use this). */
llorch_ckpt_dump *llorch_ckpt_dump_parse(const char *json, size_t size, const char *name, char *err, size_t err_size);
/* Supplies the bytes of a file of a parsed dump (copied). */
int         llorch_ckpt_dump_add_file(llorch_ckpt_dump *d, const char *file, const void *buf, size_t size, char *err,
                                      size_t err_size);
const char *llorch_ckpt_dump_name(const llorch_ckpt_dump *d); /* the directory or the name */
bool        llorch_ckpt_dump_complete(const llorch_ckpt_dump *d);
const char *llorch_ckpt_dump_status(const llorch_ckpt_dump *d); /* NULL when absent */
const char *llorch_ckpt_dump_producer(const llorch_ckpt_dump *d);
const struct llorch_ckpt_model *llorch_ckpt_dump_model(const llorch_ckpt_dump *d);
/* Token ids; has_tokens is false when the manifest holds none. */
bool           llorch_ckpt_dump_has_tokens(const llorch_ckpt_dump *d);
size_t         llorch_ckpt_dump_n_tokens(const llorch_ckpt_dump *d);
const int32_t *llorch_ckpt_dump_tokens(const llorch_ckpt_dump *d);
/* Its sequences (0 for a dump of one sequence) and sequence i's record. */
size_t                                  llorch_ckpt_dump_n_sequences(const llorch_ckpt_dump *d);
const struct llorch_ckpt_dump_sequence *llorch_ckpt_dump_sequence(const llorch_ckpt_dump *d, size_t i);
size_t                                  llorch_ckpt_dump_n_entries(const llorch_ckpt_dump *d);
const struct llorch_ckpt_entry         *llorch_ckpt_dump_entry(const llorch_ckpt_dump *d, size_t i);
/* Checks, without reading it, that entry i's file exists and is large enough
 * for the shape the manifest declares (so that its size can be trusted). */
int llorch_ckpt_dump_check_size(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size);
/* Reads entry i's file and checks it against the manifest: dtype, shape,
 * bytes and crc32. */
llorch_ckpt_array *llorch_ckpt_dump_load(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size);
void               llorch_ckpt_dump_free(llorch_ckpt_dump *d);

/* The manifest's descriptive fields (lib/read/read_fields.c), for showing
 * two dumps' settings side by side: every top-level field but "files",
 * "tokens" and "missing", objects flattened into dotted keys ("producer",
 * "model.path", "settings.type_k", "llama_cpp.commit", ...), in manifest
 * order. value is a string as it is, anything else as compact JSON. Both
 * live only during the call. Returns the number of fields, or -1 when out
 * of memory (some fields may have been visited). */
typedef void (*llorch_ckpt_field_fn)(void *ctx, const char *key, const char *value);
int llorch_ckpt_dump_fields(const llorch_ckpt_dump *d, llorch_ckpt_field_fn fn, void *ctx);

/* The residual stream of a dump (lib/read/read_residual.c), to feed an
 * engine with another run's input to each layer (docs/FORMAT.md, "Fed
 * runs"). */
enum llorch_ckpt_residual {
    LLORCH_CKPT_RESIDUAL_LAYER_INPUT = 0, /* the input of layer L: embd for L = 0, else l_out of L-1
                                             (L = n_layer: the final norm's input) */
    LLORCH_CKPT_RESIDUAL_FFN_INPUT,       /* the FFN's input in layer L: ffn_inp of L */
};
/* The checkpoint name and layer that hold `where` of `layer` ("embd", -1;
 * "l_out", layer - 1; "ffn_inp", layer); -1 when where is unknown. */
int llorch_ckpt_residual_source(enum llorch_ckpt_residual where, int layer, const char **checkpoint, int *src_layer);
/* Fills out[n_pos * n_embd] (n_embd: the manifest's model.n_embd) with the
 * rows of `where` of `layer` at absolute positions pos_start ..
 * pos_start + n_pos - 1, gathered from whatever steps and files hold them
 * (a dump made in one step serves an engine that decodes token by token,
 * and the reverse; files with "positions" too). Where two steps hold a
 * position, the latest wins (highest step, then last in the manifest), as
 * compare aligns them. float16 files are converted exactly. seq: in a dump
 * of several sequences, whose rows (-1 is refused); a dump of one
 * sequence is that sequence whatever seq is. Every file used is checked
 * against the manifest (dtype, shape, crc32). -1 with one line naming the
 * dump, the checkpoint, the layer and the positions when rows are not
 * there; out is then undefined. */
int llorch_ckpt_dump_residual(const llorch_ckpt_dump *d, int layer, enum llorch_ckpt_residual where, int seq,
                              int64_t pos_start, int64_t n_pos, float *out, char *err, size_t err_size);

/* ---- comparing (compare_*.c) -------------------------------------------- */

/* An element passes when |cand - ref| <= atol + rtol*|ref| (numpy's isclose);
 * a (checkpoint, layer) passes when at least the fraction `within` of its
 * elements pass, no non-finite value differs, and NMSE <= nmse. */
struct llorch_ckpt_tolerance {
    double atol;
    double rtol;
    double nmse;
    double within;
};

typedef struct llorch_ckpt_compare_options llorch_ckpt_compare_options;

/* Starts with the default judgement ("auto", docs/COMPARE.md): each row's
 * error against the errors of its inputs and the precision both dumps
 * state; a preset or any explicit limit replaces it with that tolerance. */
llorch_ckpt_compare_options *llorch_ckpt_compare_options_create(void);
/* "auto", "f32", "f16", "backend" or "exact": sets the tolerances of every checkpoint, dropping
 * per-checkpoint settings made before. */
int llorch_ckpt_compare_options_preset(llorch_ckpt_compare_options *o, const char *preset, char *err, size_t err_size);
/* "[CHECKPOINT:]key=value[,key=value...]" with keys atol, rtol, nmse,
 * within; without CHECKPOINT it applies to every checkpoint. CHECKPOINT is
 * a kind's name (llorch_ckpt_kind_info; "graph": every graph tensor): any
 * other is an error whose message lists them. Later settings override
 * earlier ones. */
int llorch_ckpt_compare_options_tolerance(llorch_ckpt_compare_options *o, const char *spec, char *err, size_t err_size);
void llorch_ckpt_compare_options_allow_token_mismatch(llorch_ckpt_compare_options *o, bool allow);
/* The checkpoints the candidate's engine produces ("attn_norm,ffn_out",
 * names or numbers 1-6 as the extractor takes them): only these are
 * compared, and only their absence counts as missing. An unknown name is
 * an error listing the known ones. */
int llorch_ckpt_compare_options_only(llorch_ckpt_compare_options *o, const char *list, char *err, size_t err_size);
/* Missing checkpoints and positions, and an incomplete dump, are reported
 * but do not fail the comparison. */
void llorch_ckpt_compare_options_allow_missing(llorch_ckpt_compare_options *o, bool allow);
/* Dumps whose model fingerprints differ (model.fingerprint) are an error
 * unless allowed; then they only warn. */
void llorch_ckpt_compare_options_allow_model_mismatch(llorch_ckpt_compare_options *o, bool allow);
/* Dumps of several sequences (docs/FORMAT.md, "Several sequences"): which
 * sequence of each to compare, -1 for every one. A dump of one sequence
 * is that sequence whatever is asked. By default (-1, -1) two dumps of
 * several sequences compare sequence by sequence, rows aligned by
 * (sequence, position); a dump of several against one of one needs a
 * choice, which llorch_ckpt_compare reports as an error. */
void llorch_ckpt_compare_options_sequences(llorch_ckpt_compare_options *o, int ref_seq, int cand_seq);
/* The noise floor's factor k (default 4; see llorch_ckpt_compare_noise):
 * a finite number >= 1, else an error. */
int    llorch_ckpt_compare_options_noise_factor(llorch_ckpt_compare_options *o, double k, char *err, size_t err_size);
double llorch_ckpt_compare_options_get_noise_factor(const llorch_ckpt_compare_options *o);
const char *llorch_ckpt_compare_options_preset_name(const llorch_ckpt_compare_options *o);
/* The tolerance that applies to a checkpoint (NULL, or a name that is no
 * kind: the global one). */
struct llorch_ckpt_tolerance llorch_ckpt_compare_options_get(const llorch_ckpt_compare_options *o,
                                                             const char                        *checkpoint);
void                         llorch_ckpt_compare_options_free(llorch_ckpt_compare_options *o);

enum llorch_ckpt_status {
    LLORCH_CKPT_STATUS_PASS = 0,
    LLORCH_CKPT_STATUS_FAIL,  /* compared, outside tolerance              */
    LLORCH_CKPT_STATUS_ERROR, /* could not be compared (bad file, shapes) */
};

/* Where a failure comes from, judged by its inputs in the model's dataflow. */
enum llorch_ckpt_origin {
    LLORCH_CKPT_ORIGIN_NONE = 0,   /* the row passed                  */
    LLORCH_CKPT_ORIGIN_INTRODUCED, /* every input passed              */
    LLORCH_CKPT_ORIGIN_INHERITED,  /* an input failed                 */
    LLORCH_CKPT_ORIGIN_UNKNOWN,    /* an input is absent, or no rule  */
    LLORCH_CKPT_ORIGIN_SETTINGS,   /* every failure is within what a difference
                                      of numerics settings makes (no blame) */
};

enum llorch_ckpt_input_state {
    LLORCH_CKPT_INPUT_PASSED = 0,
    LLORCH_CKPT_INPUT_FAILED,
    LLORCH_CKPT_INPUT_ABSENT,
};

struct llorch_ckpt_input {
    const char                  *checkpoint;
    int                          layer;
    enum llorch_ckpt_input_state state;
};

struct llorch_ckpt_metrics {
    int64_t n;                                /* elements compared                            */
    int64_t n_within;                         /* elements within atol + rtol*|ref|            */
    int64_t n_nonfinite;                      /* elements where a NaN/inf differs             */
    double  max_abs;                          /* max |cand - ref|                             */
    int64_t max_abs_at[LLORCH_CKPT_MAX_DIMS]; /* its coordinates, per axis:
                                absolute token/key position, else index     */
    double max_rel;                           /* max |cand - ref| / |ref| over ref != 0       */
    double mean_abs;
    double rmse;
    double nmse; /* MSE / variance of ref (see COMPARE.md)       */
    double cosine;
    double within; /* n_within / n                                 */
};

#define LLORCH_CKPT_MAX_INPUTS 3

/* What judged a row of a comparison with a noise floor
 * (llorch_ckpt_compare_noise); TOLERANCE for every row without one. */
enum llorch_ckpt_bound {
    LLORCH_CKPT_BOUND_TOLERANCE = 0, /* within the tolerance (or no floor was asked) */
    LLORCH_CKPT_BOUND_NOISE,         /* outside the tolerance, within the noise floor: PASS */
    LLORCH_CKPT_BOUND_EXCEEDED,      /* outside both: FAIL                               */
    LLORCH_CKPT_BOUND_NO_FLOOR,      /* the noise dump lacks the row (or could not
                                        compare it): the tolerance alone           */
};

/* The spread of the reference against the noise dump at one row. */
struct llorch_ckpt_noise {
    bool   present;       /* false: BOUND_NO_FLOOR, or no floor asked                */
    double max_abs, rmse; /* the reference against the noise dump                    */
    double nmse;          /* likewise (informative)                                  */
    double ratio;         /* max(cand max_abs / max_abs, cand rmse / rmse); 0 when
                             both are 0, infinite when only the spread is 0          */
};

struct llorch_ckpt_row {
    const char                  *checkpoint;
    const char                  *graph_name; /* for "graph" rows, else NULL */
    int                          layer;
    int                          n_axes;
    const char                  *axes[LLORCH_CKPT_MAX_DIMS];
    enum llorch_ckpt_dtype       ref_dtype, cand_dtype;
    enum llorch_ckpt_status      status;
    const char                  *message; /* why ERROR, else NULL */
    struct llorch_ckpt_metrics   metrics;
    struct llorch_ckpt_tolerance tolerance;
    int64_t                      n_ref_only;  /* positions (or elements) only the reference has */
    int64_t                      n_cand_only; /* ... only the candidate has                    */
    enum llorch_ckpt_origin      origin;
    int                          n_inputs;
    struct llorch_ckpt_input     inputs[LLORCH_CKPT_MAX_INPUTS];
    enum llorch_ckpt_bound       bound;
    struct llorch_ckpt_noise     noise;
    /* The default judgement (docs/COMPARE.md, "The default judgement"); all
     * 0 when a preset or explicit limits judged the row. */
    double floor;    /* the NMSE a right engine may reach here: its precision class's */
    double expected; /* max(floor, the inputs' NMSE): what the row may carry in  */
    double growth;   /* nmse / expected                                          */
    double allowed;  /* the growth allowed (1000, 10000 for kq_soft_max)        */
};

/* The default judgement fails any row whose NMSE is above this (an RMS
 * error of 10% of the reference's spread), whatever its inputs. */
#define LLORCH_CKPT_CEILING_NMSE 1e-2

/* A numerics setting (docs/FORMAT.md, "Settings that change numbers") that
 * differs between the dumps. Values are NULL where a dump does not state
 * the setting (then taken as f32, off, cpu). */
struct llorch_ckpt_setting_diff {
    const char *key; /* "type_k", "flash_attn", "weight_type", ... */
    const char *ref_value, *cand_value;
    bool        changes_numbers; /* false: summation order only (n_ubatch) */
    const char *affects;         /* which checkpoints it changes            */
    const char *fix;             /* how to remove the difference             */
};

/* A (checkpoint, layer) that only one of the dumps has. */
struct llorch_ckpt_key {
    const char *checkpoint;
    const char *graph_name;
    int         layer;
};

typedef struct llorch_ckpt_comparison llorch_ckpt_comparison;

/* Compares every (checkpoint, layer) present in both dumps. Returns NULL
 * (message in err) when the dumps cannot be compared at all: different
 * models, different token ids (unless allowed), nothing in common. A file
 * that cannot be read or does not line up makes its row an ERROR instead. */
llorch_ckpt_comparison *llorch_ckpt_compare(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                            const llorch_ckpt_compare_options *opt, char *err, size_t err_size);
/* The same with a noise floor (docs/COMPARE.md, "The noise floor"): noise
 * is a second reference, the same model and tokens from another backend or
 * setting. The reference is first compared with it (the same options),
 * then with the candidate; a row outside its tolerance passes when the
 * candidate's max_abs_err and rmse are both within k times the
 * reference-vs-noise ones of the same (checkpoint, layer) and no NaN/inf
 * differs (k: llorch_ckpt_compare_options_noise_factor). The origins are
 * judged after that, by the same statuses. A row the noise dump lacks is
 * judged by the tolerance alone (BOUND_NO_FLOOR, and a warning). noise
 * NULL: llorch_ckpt_compare. NULL when either comparison cannot be made
 * (a noise dump that does not match the reference: "noise floor DIR: ..."). */
llorch_ckpt_comparison *llorch_ckpt_compare_noise(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                                  const llorch_ckpt_dump *noise, const llorch_ckpt_compare_options *opt,
                                                  char *err, size_t err_size);
/* k when a noise floor was used, else 0; the noise dump's name (its
 * directory; NULL without one) and its producer (NULL when absent, or
 * producer NULL). */
double                        llorch_ckpt_comparison_noise_factor(const llorch_ckpt_comparison *c);
const char                   *llorch_ckpt_comparison_noise_dump(const llorch_ckpt_comparison *c, const char **producer);
size_t                        llorch_ckpt_comparison_n_rows(const llorch_ckpt_comparison *c);
const struct llorch_ckpt_row *llorch_ckpt_comparison_row(const llorch_ckpt_comparison *c, size_t i);
/* Index of the first row that is not PASS, or -1. */
long                          llorch_ckpt_comparison_first_failure(const llorch_ckpt_comparison *c);
size_t                        llorch_ckpt_comparison_n_only(const llorch_ckpt_comparison *c, bool in_reference);
const struct llorch_ckpt_key *llorch_ckpt_comparison_only(const llorch_ckpt_comparison *c, bool in_reference, size_t i);
size_t                        llorch_ckpt_comparison_n_warnings(const llorch_ckpt_comparison *c);
const char                   *llorch_ckpt_comparison_warning(const llorch_ckpt_comparison *c, size_t i);
/* 0: every row passed and the candidate holds all the reference holds;
 * 1: a row failed; 2: a row could not be compared; 3: every compared row
 * passed but the comparison is incomplete (llorch_ckpt_comparison_missing). */
int llorch_ckpt_comparison_exit_code(const llorch_ckpt_comparison *c);
/* The numerics settings that differ, in docs/FORMAT.md's order. */
size_t                                 llorch_ckpt_comparison_n_settings(const llorch_ckpt_comparison *c);
const struct llorch_ckpt_setting_diff *llorch_ckpt_comparison_setting(const llorch_ckpt_comparison *c, size_t i);
/* True when rows failed and every failure is within what those
 * differences make: the verdict names the settings, not a checkpoint. */
bool llorch_ckpt_comparison_settings_explain(const llorch_ckpt_comparison *c);
/* What was not compared and counts against the verdict (exit status 3
 * unless allowed): (checkpoint, layer) rows the reference holds and the
 * candidate lacks, positions of compared rows that only the reference
 * holds, and whether either dump says it is incomplete. Rows left out by
 * --only, or allowed by --allow-missing, are not counted. */
struct llorch_ckpt_missing {
    size_t  n_rows;      /* rows only in the reference, counted        */
    int64_t n_positions; /* positions only in the reference            */
    bool    ref_incomplete, cand_incomplete;
    bool    allowed; /* --allow-missing: reported, not failed      */
    bool    only;    /* --only left some checkpoints out           */
};
const struct llorch_ckpt_missing *llorch_ckpt_comparison_missing(const llorch_ckpt_comparison *c);
/* True when what is missing fails the comparison (not allowed). */
bool llorch_ckpt_comparison_missing_counts(const llorch_ckpt_comparison *c);
/* A fed comparison (docs/FORMAT.md, "Fed runs"): 1 when the reference, 2
 * when the candidate computed each layer from the other's residual stream
 * (each layer is then judged on its own), 0 when neither. *at (may be
 * NULL): which residuals were replaced, bits 1 embd, 2 l_out, 4 ffn_inp. */
int llorch_ckpt_comparison_fed(const llorch_ckpt_comparison *c, unsigned *at);
/* True when the default judgement decided the rows. */
bool llorch_ckpt_comparison_auto(const llorch_ckpt_comparison *c);
void llorch_ckpt_comparison_free(llorch_ckpt_comparison *c);

const char *llorch_ckpt_status_name(enum llorch_ckpt_status s); /* "PASS", ... */
const char *llorch_ckpt_origin_name(enum llorch_ckpt_origin o); /* "introduced", ... */
const char *llorch_ckpt_bound_name(enum llorch_ckpt_bound b);   /* "tolerance", "noise", "exceeded", "no-floor" */

/* ---- profiles: one row's error split up (compare_profile.c) ------------- */

/* The elements of one row that share a coordinate. */
struct llorch_ckpt_profile_point {
    int64_t                    coord;   /* absolute token or key position, index on another axis, or step */
    struct llorch_ckpt_metrics metrics; /* over those elements (max_abs_at is not set)                  */
    enum llorch_ckpt_status    status;  /* PASS or FAIL by the row's tolerance                           */
};

/* One row's error split up: n_points points in ascending coord, only the
 * coordinates that hold elements. */
typedef struct llorch_ckpt_profile {
    const char                       *by; /* the axis, or "step" */
    size_t                            n_points;
    struct llorch_ckpt_profile_point *points;
} llorch_ckpt_profile;

/* Aligns row i of c (a comparison of ref and cand) again and splits its
 * error by `by`: one of its axes ("token", "key", "head", ...; positions
 * are absolute) or "step": the step of the reference's file that each
 * position comes from, or of the candidate's when the reference holds the
 * row in one step. NULL with a message when the row is an ERROR, has no
 * such axis, or memory runs out. Used for the first divergence: one
 * position or head off points to RoPE or a mask, all of them to a weight
 * or a norm. */
llorch_ckpt_profile *llorch_ckpt_profile_row(const llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                                             const llorch_ckpt_dump *cand, size_t i, const char *by, char *err,
                                             size_t err_size);
void                 llorch_ckpt_profile_free(llorch_ckpt_profile *p);

/* ---- the decision: logits (compare_logits.c) ------------------------------- */

/* What the user sees of a run: for the logits checkpoint (axes token,
 * vocab), per compared token position (lined up exactly as the logits row
 * is: absolute positions, any steps, --positions, sequences), whether the
 * next token picked (argmax) is the same, how many of the five likeliest
 * are, and KL(P_ref || P_cand) of P = softmax(logits), in double
 * precision (docs/COMPARE.md, "The decision: logits"). Every comparison
 * that holds the logits of both dumps computes it. */

/* The mean KL divergence (nats) that a decision allows by default (see
 * docs/COMPARE.md for why). */
#define LLORCH_CKPT_KL_MAX_DEFAULT 1e-4

/* The mean KL divergence allowed: a finite number >= 0, else an error. */
int    llorch_ckpt_compare_options_kl_max(llorch_ckpt_compare_options *o, double kl_max, char *err, size_t err_size);
double llorch_ckpt_compare_options_get_kl_max(const llorch_ckpt_compare_options *o);
/* by_logits: the decision alone is the comparison's verdict (--decision):
 * the reports' closing sentence and JSON verdict are the decision's (the
 * rows are still reported; llorch_ckpt_comparison_exit_code is unchanged,
 * llorch_ckpt_decision_exit_code gives the decision's). */
void llorch_ckpt_compare_options_decision(llorch_ckpt_compare_options *o, bool by_logits);

struct llorch_ckpt_logits_position {
    int     seq;                     /* its sequence when dumps of several are compared sequence by sequence, else 0 */
    int64_t position;                /* absolute token position                                           */
    int64_t ref_argmax, cand_argmax; /* the token picked: first largest logit (NaN never is); -1: all NaN */
    int     top5_overlap;            /* tokens that both top-5 sets hold (ties: the lower token id first)  */
    double  kl;                      /* KL(P_ref || P_cand) in nats; NaN where a logit is NaN or +inf     */
};

typedef struct llorch_ckpt_decision {
    bool    by_logits;    /* the comparison's verdict is this (llorch_ckpt_compare_options_decision) */
    bool    per_sequence; /* positions of several sequences: seq tells them apart                    */
    double  kl_threshold; /* the mean KL allowed (llorch_ckpt_compare_options_kl_max)                 */
    int     top_k;        /* 5                                                                        */
    int64_t n_vocab;
    size_t  n_positions;
    size_t  top1_agree;        /* positions whose argmax is the same                                */
    double  top1_rate;         /* top1_agree / n_positions                                          */
    double  top5_overlap_mean; /* 0..5                                                              */
    double  kl_mean, kl_max;   /* over the positions; NaN when one is NaN                           */
    long    kl_max_index;      /* index into positions of the largest KL (the first of equal ones)  */
    long    first_diff;        /* index into positions of the first argmax difference, or -1        */
    bool    pass;              /* the argmax agrees everywhere and kl_mean <= kl_threshold          */
    struct llorch_ckpt_logits_position *positions; /* in (sequence, position) order               */
} llorch_ckpt_decision;

/* A copy of c's decision, freed with llorch_ckpt_decision_free; NULL with
 * the reason in err when there is none (a dump holds no logits, they
 * could not be compared, or are not laid out (token, vocab)). */
llorch_ckpt_decision *llorch_ckpt_comparison_decision(const llorch_ckpt_comparison *c, char *err, size_t err_size);
/* 0: pass, 1: fail, 2: no decision (d NULL). */
int  llorch_ckpt_decision_exit_code(const llorch_ckpt_decision *d);
void llorch_ckpt_decision_free(llorch_ckpt_decision *d);

/* ---- reporting (report*.c) ----------------------------------------------- */

struct llorch_ckpt_report_info {
    const char                        *ref_name, *cand_name; /* as given on the command line */
    const llorch_ckpt_dump            *ref, *cand;
    const llorch_ckpt_compare_options *options;
    /* --isolated: the comparison with one side replaced by its fed run, and
     * that run's name; NULL when there is none. */
    const llorch_ckpt_comparison *isolated;
    const char                   *isolated_name;
};

/* The table, what only one dump holds, the warnings (one "warning: ..."
 * line each, before the summary) and the closing sentence. */
int llorch_ckpt_report_table(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info);
/* The same as one JSON object (schema in docs/COMPARE.md). */
int llorch_ckpt_report_json(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info);
/* {"verdict": "error", "exit_code": 2, "message": message}: the JSON
 * answer when the dumps could not be compared at all. */
int llorch_ckpt_report_json_error(FILE *f, const char *message);
/* The closing sentence alone, e.g. "first divergence: attn_norm, layer 2
 * (introduced here: its input l_out layer 1 passed)". */
int llorch_ckpt_report_verdict(FILE *f, const llorch_ckpt_comparison *c);
/* The chained comparison and the isolated one (one side fed the other's
 * residual stream) layer by layer: each layer's attention and FFN, the
 * largest NMSE of their rows in both, the layers wrong on their own, and
 * whether isolation clears the chained comparison's first divergence. */
int llorch_ckpt_report_isolation(FILE *f, const llorch_ckpt_comparison *chained, const llorch_ckpt_comparison *isolated,
                                 const char *fed_name);
/* The heat map for a terminal (report_heatmap.c): one line per layer, one
 * cell per checkpoint, a digit for the NMSE's decade, a mark for the
 * status and origin, the first divergence marked; a key of the columns, a
 * legend and the closing sentence. color: ANSI background colors (for a
 * terminal); else plain characters. */
int llorch_ckpt_report_heatmap(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info,
                               bool color);
/* One self-contained HTML page (report_html*.c, docs/COMPARE.md): the heat
 * map as inline SVG, the first divergence's error per position, head and
 * step, both dumps' settings side by side, and the full table, with every
 * number of --json in data- attributes. Nothing external, no script. */
int llorch_ckpt_report_html(FILE *f, const llorch_ckpt_comparison *c, const struct llorch_ckpt_report_info *info);

#ifdef __cplusplus
}
#endif

#endif /* LLORCH_COMPARE_H */

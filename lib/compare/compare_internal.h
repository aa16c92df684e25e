/*
 * compare_internal.h - what the stages of the comparison share (private to
 * lib/compare). The compare_*.c files form a one-way stack: each calls
 * only files below it. From the bottom to the top:
 *   compare_tolerance.c  the options: presets, --tol settings, --only
 *   compare_logits.c     the decision by the logits (argmax, top-5, KL),
 *                        from the logits row's aligned positions
 *   compare_result.c     the result object: its creation, rows, owned
 *                        strings, warnings, accessors and release; every
 *                        stage above writes into it
 *   compare_group.c      the entries of both dumps grouped into (checkpoint,
 *                        layer) rows, each a run of files ordered by step
 *   compare_metrics.c    the element-wise metrics over what lines up, and
 *                        the buckets a profile splits them into
 *   compare_checks.c     whole-dump checks: same model, same tokens, warnings
 *   compare_fed.c        which dump was fed from the other
 *   compare_origin.c     per failing row, where the failure comes from
 *   compare_settings.c   both dumps' numerics settings and their classes
 *   compare_judge.c      the default judgement: each row's growth
 *   compare_noise.c      with a noise floor, each failing row judged again
 *   compare_align.c      per row, both runs lined up by absolute position
 *   compare_profile.c    aligns one row again and splits its error by
 *                        position, head or step (llorch_ckpt_profile_row)
 *   compare_run.c        the entry points (llorch_ckpt_compare*): runs the
 *                        stages in order (checks, grouping, alignment and
 *                        metrics, noise, judgement, origins)
 * The reports (report_internal.h) stand on top of this stack.
 */
#ifndef LLORCH_COMPARE_INTERNAL_H
#define LLORCH_COMPARE_INTERNAL_H

#include "llorch_compare.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The kind of a checkpoint name that is none (a dump may hold any name), as
 * llorch_ckpt_kind_from_name returns it. */
#define LLORCH_CMP_NO_KIND (-1)

/* How coarse the numbers of a checkpoint may be on either side, from the
 * settings both dumps state (compare_settings.c); the default judgement's
 * floor (compare_judge.c). */
enum llorch_cmp_class {
    LLORCH_CMP_CLASS_F32 = 0, /* float32 throughout                             */
    LLORCH_CMP_CLASS_HALF,    /* rounded to f16/bf16 somewhere (cache, weights) */
    LLORCH_CMP_CLASS_Q8,      /* activations quantized to 8 bits (Q8_0 weights) */
    LLORCH_CMP_CLASS_QLOW,    /* fewer bits                                     */
};

/* The class of each part of the computation (enum llorch_cmp_class). */
struct llorch_cmp_classes {
    int all, matmul, cache_k, cache_v, ffn;
};

/* The NMSE above which the default judgement fails a row wherever it
 * stands: an RMS error of 10% of the reference's spread. */
#define LLORCH_CMP_CEILING_NMSE LLORCH_CKPT_CEILING_NMSE

/* ---- the result (compare_result.c) --------------------------------------------- */

struct llorch_ckpt_comparison {
    struct llorch_ckpt_row          *rows;
    int                             *kinds; /* per row: enum llorch_ckpt_kind or NO_KIND */
    size_t                           n_rows;
    struct llorch_ckpt_key          *only[2]; /* [1]: only in the reference */
    size_t                           n_only[2];
    char                           **warnings;
    size_t                           n_warnings;
    char                           **strings; /* copies that rows and keys point to */
    size_t                           n_strings;
    bool                             out_of_memory;
    int                              seqs[2];      /* the sequences compared (llorch_cmp_check_sequences) */
    double                           noise_factor; /* k of the noise floor, 0 without one */
    const char                      *noise_name, *noise_producer; /* copies; NULL without one */
    llorch_ckpt_decision            *decision;                    /* the logits' (compare_logits.c), or NULL */
    struct llorch_ckpt_setting_diff *settings;                    /* compare_settings.c */
    size_t                           n_settings;
    struct llorch_cmp_classes        classes;  /* the coarser of both dumps' */
    int                              fed_side; /* 0 chained; 1 the reference, 2 the candidate was fed */
    unsigned                         fed_at;   /* LLORCH_CMP_FED_* of the residuals replaced */
    bool                             settings_explain;
    bool                             auto_judgement;
    struct llorch_ckpt_missing       missing;
};

/* A copy owned by c (NULL for NULL; "" and a flag when out of memory). */
const char *llorch_cmp_keep(struct llorch_ckpt_comparison *c, const char *s);
/* Adds a warning to c (a flag when out of memory). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void llorch_cmp_warn(struct llorch_ckpt_comparison *c, const char *fmt, ...);
/* A new, empty comparison (calloc'd), or NULL when out of memory. */
struct llorch_ckpt_comparison *llorch_cmp_comparison_new(void);
/* Room for n rows and their kinds (zeroed); -1 when out of memory. */
int llorch_cmp_alloc_rows(struct llorch_ckpt_comparison *c, size_t n);

/* ---- options (compare_tolerance.c) ---------------------------------------------- */

/* The tolerance of a checkpoint kind (NO_KIND: only the settings that name
 * no checkpoint apply). */
struct llorch_ckpt_tolerance llorch_cmp_tolerance(const llorch_ckpt_compare_options *o, int kind);
bool                         llorch_cmp_allow_token_mismatch(const llorch_ckpt_compare_options *o);
bool                         llorch_cmp_auto_judgement(const llorch_ckpt_compare_options *o);
const llorch_ckpt_selection *llorch_cmp_only(const llorch_ckpt_compare_options *o); /* NULL: all */
bool                         llorch_cmp_allow_missing(const llorch_ckpt_compare_options *o);
bool                         llorch_cmp_allow_model_mismatch(const llorch_ckpt_compare_options *o);
/* The sequence asked for of the reference or the candidate, -1: every one. */
int llorch_cmp_sequence(const llorch_ckpt_compare_options *o, bool reference);

/* ---- whole-dump checks (compare_checks.c) -------------------------------------- */

/* Different architectures, layer counts or widths fail (message in err);
 * so do different model fingerprints, unless opt allows them (then they
 * warn); other model differences, and a dump without a fingerprint, only
 * warn. */
int llorch_cmp_check_models(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                            const llorch_ckpt_compare_options *opt, char *err, size_t err_size);
/* Different token ids fail unless allowed (then they warn). */
/* Which sequence of each dump is compared (seqs[0] reference, seqs[1]
 * candidate; -1: all of a dump of several, or a dump of one): what the
 * options ask, checked against what the dumps hold. */
int llorch_cmp_check_sequences(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                               const llorch_ckpt_compare_options *opt, int seqs[2], char *err, size_t err_size);
/* The token ids of the compared sequences (every token in decode order
 * when all sequences are compared) must be equal, unless allowed. */
int llorch_cmp_check_tokens(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                            const int seqs[2], bool allow, char *err, size_t err_size);
void llorch_cmp_note_incomplete(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *d, const char *role);
/* After the rows: a warning when dtypes differ. */
void llorch_cmp_note_dtypes(struct llorch_ckpt_comparison *c);

/* ---- grouping (compare_group.c) ------------------------------------------------- */

/* A manifest entry and what grouping derives from it once. */
struct llorch_cmp_keyed {
    const struct llorch_ckpt_entry *e;
    size_t                          idx;  /* in the manifest's files     */
    int                             kind; /* from e->checkpoint, or NO_KIND */
    int                             seq;  /* the sequence rows align under: 0 when
                                             one sequence of each dump is compared */
};

/* The files of one (checkpoint, layer) in one dump, in step order, then
 * manifest order: the last one is the latest, for every purpose. */
struct llorch_cmp_run {
    const struct llorch_cmp_keyed *k;
    size_t                         n;
    size_t                         first; /* smallest manifest index */
};

/* One row: the same (checkpoint, layer) in both dumps. */
struct llorch_cmp_group {
    struct llorch_cmp_run ref, cand;
};

struct llorch_cmp_grouping {
    struct llorch_cmp_keyed *ref, *cand; /* sorted by key, then step */
    struct llorch_cmp_group *groups;     /* by first appearance in the reference */
    size_t                   n_groups;
    struct llorch_cmp_run   *only[2]; /* [1]: only in the reference */
    size_t                   n_only[2];
};

/* seqs: the sequence of each dump that is compared, -1 for all (see
 * llorch_cmp_check_sequences); the files of the others are left out, and
 * so are the kinds `only` does not hold (NULL: none is left out). */
int  llorch_cmp_build_groups(struct llorch_cmp_grouping *g, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                             const int seqs[2], const llorch_ckpt_selection *only);
void llorch_cmp_free_grouping(struct llorch_cmp_grouping *g);

/* ---- alignment (compare_align.c) ------------------------------------------------ */

struct llorch_cmp_accum; /* compare_metrics.c, below */

/* Positions that only one side holds: counted, not compared. */
struct llorch_cmp_coverage {
    int64_t ref_only, cand_only;
};

/* Lines up one group and adds every pair that lines up to acc. -1 with
 * the reason in msg (a file that cannot be read or does not line up). */
int llorch_cmp_align_group(const struct llorch_cmp_group *g, const llorch_ckpt_dump *rd, const llorch_ckpt_dump *cd,
                           struct llorch_cmp_accum *acc, struct llorch_cmp_coverage *cov, char *msg, size_t msg_size);

/* Compares one group into row: metrics and status, or ERROR and why. */
void llorch_cmp_compare_group(struct llorch_ckpt_comparison *c, const struct llorch_cmp_group *g,
                              const llorch_ckpt_compare_options *opt, const llorch_ckpt_dump *rd,
                              const llorch_ckpt_dump *cd, struct llorch_ckpt_row *row);

/* ---- metrics (compare_metrics.c) ----------------------------------------------- */

/* Neumaier's compensated sum: sums of millions of squares stay exact to a
 * few ulps, so the metrics match numpy's (pairwise) sums. */
struct llorch_cmp_ksum {
    double s, c;
};

struct llorch_cmp_split;  /* below */
struct llorch_cmp_logits; /* compare_logits.c, below */

/* The running metrics of one row. */
struct llorch_cmp_accum {
    struct llorch_ckpt_tolerance tol;
    int64_t                      n, n_within, n_nonfinite, n_finite;
    double                       max_abs, max_rel; /* max_abs starts at -1: no pair yet */
    int64_t                      max_abs_at[LLORCH_CKPT_MAX_DIMS];
    struct llorch_cmp_ksum       abs, sq, dot, rr, cc;
    double                       mean, m2; /* Welford's running variance of ref */
    struct llorch_cmp_split     *split;    /* NULL, or a profile that each pair also goes to */
    struct llorch_cmp_logits    *logits;   /* NULL, or the decision that each aligned token row also goes to */
};

/* The elements of one position: a box in both files, walked in C order. */
struct llorch_cmp_block {
    int     n_axes;
    int64_t extent[LLORCH_CKPT_MAX_DIMS];
    int64_t coord0[LLORCH_CKPT_MAX_DIMS]; /* absolute coordinate of index 0 */
    int64_t ref_stride[LLORCH_CKPT_MAX_DIMS], cand_stride[LLORCH_CKPT_MAX_DIMS];
    int64_t ref_base, cand_base;
    int     ref_step, cand_step; /* the steps of the two files (a profile by step) */
};

/* C-order strides of an array, in elements. */
void llorch_cmp_strides(const llorch_ckpt_array *a, int64_t *stride);
/* Adds every pair of the block to acc; -1 if an index falls outside a file. */
int llorch_cmp_compare_block(const struct llorch_cmp_block *b, const llorch_ckpt_array *ra, const llorch_ckpt_array *ca,
                             struct llorch_cmp_accum *acc);
void llorch_cmp_finish_metrics(const struct llorch_cmp_accum *a, struct llorch_ckpt_metrics *m);
bool llorch_cmp_metrics_pass(const struct llorch_ckpt_metrics *m, const struct llorch_ckpt_tolerance *t);

/* ---- a profile's buckets (compare_metrics.c, for compare_profile.c) ----------- */

/* One bucket of a profile: the pairs whose coordinate (or step) is key. */
struct llorch_cmp_bucket {
    int64_t                 key;
    struct llorch_cmp_accum acc;
};

/* Where the pairs of a row go besides the row's own metrics. */
struct llorch_cmp_split {
    int                          axis;       /* the block axis whose coordinate picks the bucket; -1: by step */
    bool                         cand_steps; /* by step: the candidate's steps, not the reference's */
    struct llorch_ckpt_tolerance tol;
    struct llorch_cmp_bucket    *buckets; /* sorted by key */
    size_t                       n, cap, last;
    bool                         out_of_memory;
};

/* The accumulator of key's bucket, made on first use; NULL (and a flag)
 * when out of memory. */
struct llorch_cmp_accum *llorch_cmp_split_bucket(struct llorch_cmp_split *s, int64_t key);

/* ---- the decision: logits (compare_logits.c) ------------------------------------ */

/* Whether the decision decides (--decision), from the options. */
bool llorch_cmp_decision_asked(const llorch_ckpt_compare_options *o);

struct llorch_cmp_logits;

/* A collector of the decision when group g is the logits, laid out (token,
 * vocab) and not raw; else NULL. */
struct llorch_cmp_logits *llorch_cmp_logits_begin(struct llorch_ckpt_comparison *c, const struct llorch_cmp_group *g,
                                                  const llorch_ckpt_compare_options *opt);
/* One aligned token row (the block of one position in both files) of
 * sequence seq. -1 if an index falls outside a file. */
int llorch_cmp_logits_add(struct llorch_cmp_logits *l, const struct llorch_cmp_block *b, int seq,
                          const llorch_ckpt_array *ra, const llorch_ckpt_array *ca);
/* Frees l (NULL accepted); when the row was compared, its decision goes
 * to c->decision. */
void llorch_cmp_logits_end(struct llorch_ckpt_comparison *c, struct llorch_cmp_logits *l, bool compared);
/* c's decision, or NULL (borrowed). */
const struct llorch_ckpt_decision *llorch_cmp_decision(const struct llorch_ckpt_comparison *c);

/* ---- the noise floor (compare_noise.c) ------------------------------------------ */

/* Judges every FAIL row of c again by the spread of the same row in floor
 * (the reference against the noise dump): PASS within k times it. Before
 * the origins, which then use the new statuses. */
void llorch_cmp_apply_noise(struct llorch_ckpt_comparison *c, const struct llorch_ckpt_comparison *floor, double k,
                            const char *floor_name);

/* Fills each row's noise spread and ratio (r->noise, NO_FLOOR where the
 * noise dump lacks the row) without changing a status. */
void llorch_cmp_measure_noise(struct llorch_ckpt_comparison *c, const struct llorch_ckpt_comparison *floor, double k,
                              const char *floor_name);

/* ---- settings (compare_settings.c) ---------------------------------------------- */

/* Reads both dumps' numerics settings: the differences and the classes. */
int llorch_cmp_read_settings(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                             const llorch_ckpt_dump *cand);
/* The class of one row (kind: enum llorch_ckpt_kind or NO_KIND);
 * attention: its layer has attention rows (else the KV cache's type does
 * not reach its mixer output). */
int llorch_cmp_row_class(const struct llorch_cmp_classes *c, int kind, bool attention, enum llorch_ckpt_dtype ref_dtype,
                         enum llorch_ckpt_dtype cand_dtype);
/* After the origins: when every failure is within what the differing
 * settings make, marks them ORIGIN_SETTINGS and sets settings_explain. */
void llorch_cmp_explain_by_settings(struct llorch_ckpt_comparison *c);

/* ---- fed runs (compare_fed.c) ---------------------------------------------------- */

#define LLORCH_CMP_FED_EMBD    1u
#define LLORCH_CMP_FED_L_OUT   2u
#define LLORCH_CMP_FED_FFN_INP 4u

/* Which dump was fed from the other (docs/FORMAT.md, "Fed runs"); -1 (and
 * why) when it was fed from a third dump. */
int llorch_cmp_read_fed(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                        char *err, size_t err_size);
/* True when the input (kind, layer) was replaced by the other side's. */
bool llorch_cmp_input_fed(const struct llorch_ckpt_comparison *c, int kind, int layer);
/* True when row (kind, layer) reads a replaced residual: no error comes in. */
bool llorch_cmp_reads_fed(const struct llorch_ckpt_comparison *c, int kind, int layer);

/* ---- the default judgement (compare_judge.c) ------------------------------------ */

/* Every row's status and origin by its growth over its inputs (rows
 * measured; with a noise floor, its spreads measured). */
void llorch_cmp_judge_auto(struct llorch_ckpt_comparison *c, int last_layer);

/* ---- origin (compare_origin.c) -------------------------------------------------- */

/* Whether layer l has a row of attention (Q, K, V, caches, scores): false
 * for a recurrent layer, whose mixer has none. */
bool llorch_cmp_has_attention_rows(const struct llorch_ckpt_comparison *c, int l);

/* The rows whose errors row i's error is made from: its dataflow inputs,
 * an absent input replaced by its own inputs. Returns how many (at most
 * max) went to rows; *known is false when no dataflow rule applies. */
int llorch_cmp_input_rows(const struct llorch_ckpt_comparison *c, size_t i, int last_layer, size_t *rows, int max,
                          bool *known);

/* Row i's origin and inputs, from the other rows' status (all rows done). */
void llorch_cmp_judge_origin(struct llorch_ckpt_comparison *c, size_t i, int last_layer);

#endif

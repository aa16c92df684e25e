/* extractor.h - the types every file of llorch-checkpoint-extractor shares,
 * and each file's functions. The files are floors: a file calls only the
 * files on floors below its own, never one beside or above it.
 *
 *   3  extractor.c           main(): options, the stages in order, then the
 *                            one-sequence or the --parallel decode steps,
 *                            the manifest and the summary
 *   2  extractor_single.c    one sequence: its tokens and its decode steps
 *      extractor_sequences.c --parallel: several sequences' tokens, decoded together
 *      extractor_setup.c     selection, flash attention, output, capture, context
 *      extractor_manifest.c  the manifest and the summary
 *   1  extractor_model.c     the model (and --rpc servers); a text file, a text's tokens
 *      extractor_feed.c      --feed: another dump's residual stream as each layer's input
 *      extractor_step.c      what both decode paths share: the graphs, one
 *                            timed llama_decode, the greedy token, progress
 *   0  extractor_log.c       the log, every error line, SIGINT
 *      extractor_options.c   the command line: one table of options
 *      extractor_settings.c  the manifest's settings as JSON (extractor_settings.h)
 *   and below them all, lib/toolx (the command line of every program). */
#ifndef LLORCH_EXTRACTOR_H
#define LLORCH_EXTRACTOR_H

#include "llorch_capture.h"
#include "llorch_checkpoint.h"

#include <ggml-cpu.h>
#include <ggml.h>
#include <llama.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#define PROG "llorch-checkpoint-extractor"

#ifndef LLORCH_LLAMA_COMMIT
#define LLORCH_LLAMA_COMMIT "unknown"
#endif
#ifndef LLORCH_LLAMA_SOURCE
#define LLORCH_LLAMA_SOURCE "unknown"
#endif
#ifndef LLORCH_LLAMA_PATCHED
#define LLORCH_LLAMA_PATCHED 0
#endif

/* --- the options ------------------------------------------------------------ */

enum extractor_fa {
    EXTRACTOR_FA_AUTO,
    EXTRACTOR_FA_ON,
    EXTRACTOR_FA_OFF
};

#define EXTRACTOR_FORM_AUTO (-1) /* --format auto: npy for one step or --text, else npz (extractor_setup.c) */

struct extractor_options {
    /* input */
    const char *model;
    const char *prompt;
    const char *prompt_file;
    const char *tokens; /* "1,15043" */
    int         n_predict;
    int         parallel; /* --parallel N: N sequences in one batch; 0: one sequence */
    /* output */
    const char                  *output;
    const char                  *checkpoints; /* NULL: 1-6 */
    const char                  *layers;      /* NULL: all */
    const char                  *positions;   /* --positions, NULL: every token row */
    const char                  *feed;        /* --feed DUMP, NULL: each layer from llama.cpp's own input */
    const char                  *graph_regex[16];
    int                          n_graph_regex;
    bool                         raw;
    bool                         native_dtype;
    bool                         text;
    bool                         no_sync;
    int                          form; /* enum llorch_ckpt_form, or EXTRACTOR_FORM_AUTO */
    bool                         stats;
    bool                         stop_at_nan;
    bool                         split_each;
    enum llorch_capture_sink     sink;
    enum llorch_capture_identify identify;
    size_t                       queue_mb;
    size_t                       output_mb;   /* --output-mb: checkpoints kept as graph outputs */
    bool                         output_auto; /* --output-mb auto: output_mb where a device computes, else 0 */
    /* llama.cpp settings */
    int               threads;
    int               n_ctx; /* 0: fit the run */
    int               n_batch;
    int               n_ubatch;
    enum extractor_fa flash_attn;
    const char       *cache_type_k;
    const char       *cache_type_v;
    int               n_gpu_layers;
    const char       *rpc;        /* "host:port,host:port" */
    const char       *dump_graph; /* --dump-graph FILE */
    bool              repack;
    unsigned          seed;
    bool              verbose;
    bool              progress;
};

/* --- one run ----------------------------------------------------------------- */

/* --parallel: one of the sequences decoded together. */
struct extractor_sequence {
    llama_token *tokens; /* prompt + generated */
    int          n_prompt, n_tokens;
    char        *prompt; /* NULL with --tokens */
    llama_token  next;   /* the greedy choice after its last token */
};

struct extractor_feed; /* --feed (extractor_feed.c) */

/* Everything one run holds; freed by main(). */
struct extractor_run {
    struct extractor_options   opt;
    struct llama_model        *model;
    struct llama_context      *ctx;
    struct ggml_threadpool    *threadpool;
    const struct llama_vocab  *vocab;
    llama_token               *tokens; /* prompt + generated (--parallel: every sequence's, in decode order) */
    int                        n_prompt, n_tokens, n_alloc;
    struct extractor_sequence *seqs; /* --parallel */
    int                        n_seqs;
    char                      *prompt_text; /* -p or -f contents */
    llorch_ckpt_selection     *selection;
    llorch_ckpt_writer        *writer;
    llorch_capture            *capture;
    enum llorch_ckpt_form      form; /* the dump's form, once the output is open */
    enum llama_flash_attn_type fa;
    const char                *fa_reason;
    int                        n_ctx, n_chunk, steps;
    double                     decode_seconds;
    size_t                     output_bytes; /* the capture's: --output-mb, or 0 where auto chose splits */
    struct extractor_feed     *feed;         /* --feed, or NULL */
};

/* Every token of the run: the prompts and what -n generates. */
static inline int extractor_run_length(const struct extractor_run *r) {
    return r->n_prompt + r->opt.n_predict * (r->n_seqs > 0 ? r->n_seqs : 1);
}

/* The decode steps of the run (files s000, s001, ...): the prompt tokens
 * in chunks of -ub (at most -b), every sequence's one after another, then
 * one step per generated token of every sequence. */
static inline int extractor_total_steps(const struct extractor_run *r) {
    int n_chunk = r->opt.n_ubatch < r->opt.n_batch ? r->opt.n_ubatch : r->opt.n_batch;
    return (r->n_prompt + n_chunk - 1) / n_chunk + r->opt.n_predict;
}

/* --- floor 0 ----------------------------------------------------------------- */

/* extractor_log.c */
/* Shows llama.cpp's log and the run's details (extractor_detail) with -v;
 * keeps llama.cpp's first error for extractor_llama_reason. */
void extractor_log_init(bool verbose);
/* Prints "PROG: error: " and one line naming the input and the fix;
 * returns 2, the exit status for bad input. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int extractor_bad_input(const char *fmt, ...);
/* The same for a run that failed; returns 1. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int extractor_fail(const char *fmt, ...);
/* A line on stderr with -v only: the run's internals. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void extractor_detail(const char *fmt, ...);
bool extractor_verbose(void);
/* llama.cpp's first logged error, or a hint to run with -v. */
const char *extractor_llama_reason(void);
/* Set by SIGINT: the steps stop, the dump is finished as incomplete. */
extern volatile sig_atomic_t extractor_interrupted;
/* From here on SIGINT stops the capture c; SIGXFSZ is a write error. */
void extractor_catch_signals(llorch_capture *c);

/* extractor_options.c */
/* Parses argv. Returns 0 to run, 1 when --help was printed, 3 for
 * --version, 2 on a usage error (already reported on stderr). */
int extractor_parse_options(int argc, char **argv, struct extractor_options *opt);

/* --- floor 1 ----------------------------------------------------------------- */

/* extractor_model.c */
int extractor_load_model(struct extractor_run *r);
/* A file's text, NUL-terminated; NULL with errno set. */
char *extractor_read_text_file(const char *path);
/* Tokenizes text (BOS added) into a fresh array with room for `extra`
 * more; returns the count, or -1. */
/* The prompt's tokens, with room for `extra` more: their count, -1 when
 * the text cannot be tokenized, EXTRACTOR_NO_TOKENIZER when the model has
 * no tokenizer. */
#define EXTRACTOR_NO_TOKENIZER (-2)
#define EXTRACTOR_NO_TOKENIZER_FIX                                                                                     \
    "the model has no tokenizer (its vocabulary type is none); give the prompt as token ids with --tokens 1,2,3"
int extractor_tokenize(const struct llama_vocab *vocab, const char *text, int extra, llama_token **tokens);

/* extractor_feed.c */
int   extractor_open_feed(struct extractor_run *r);         /* checks --feed DUMP against the model (a stage) */
int   extractor_feed_tokens(struct extractor_run *r);       /* no prompt given: DUMP's tokens */
int   extractor_check_feed_tokens(struct extractor_run *r); /* the run's tokens are DUMP's */
int   extractor_load_feed(struct extractor_run *r);         /* reads every row to feed (a stage) */
void  extractor_feed_params(const struct extractor_run *r, struct llorch_capture_params *p);
bool  extractor_feed_has_ffn_inp(const struct extractor_run *r);
char *extractor_feed_json(const struct extractor_run *r); /* the manifest's "fed" object, NULL without --feed */
void  extractor_free_feed(struct extractor_run *r);

/* extractor_step.c */
/* Records each batch size's graph before the first decode (a stage). */
int extractor_prepare_steps(struct extractor_run *r);
/* One llama_decode of b with the capture around it; 0, 1 or 130. */
int extractor_decode(struct extractor_run *r, struct llama_batch *b);
/* The greedy next token after batch row i (-1: the last row). */
llama_token extractor_greedy_token(const struct extractor_run *r, int32_t i);
/* A progress line on stderr (with --progress, or on a terminal) after a
 * step; extractor_end_progress ends a terminal's line. */
void extractor_show_progress(const struct extractor_run *r, int done, int total);
void extractor_end_progress(const struct extractor_run *r);

/* --- floor 2 ----------------------------------------------------------------- */

/* extractor_setup.c: the stages from the selection to the context */
int extractor_make_selection(struct extractor_run *r);
int extractor_choose_flash_attn(struct extractor_run *r);
int extractor_open_output(struct extractor_run *r);
int extractor_create_capture(struct extractor_run *r);
int extractor_create_context(struct extractor_run *r);

/* extractor_single.c: one sequence */
int extractor_get_tokens(struct extractor_run *r);
int extractor_run_steps(struct extractor_run *r);

/* extractor_sequences.c: --parallel */
int  extractor_get_sequences(struct extractor_run *r);
int  extractor_run_sequences(struct extractor_run *r);
void extractor_free_sequences(struct extractor_run *r);

/* extractor_manifest.c */
int  extractor_write_manifest(struct extractor_run *r, bool complete, const char *status);
void extractor_print_summary(const struct extractor_run *r);

#endif

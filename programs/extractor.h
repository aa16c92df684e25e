/* extractor.h - what the files of llorch-checkpoint-extractor share.
 *   extractor.c           main(): options, then each stage in order; errors, log, signals
 *   extractor_model.c     the model (and --rpc servers), the tokens
 *   extractor_run.c       selection, flash attention, output, capture, context, the decode steps
 *   extractor_sequences.c --parallel: several sequences' tokens, decoded together
 *   extractor_feed.c      --feed: another dump's residual stream as each layer's input
 *   extractor_manifest.c  the manifest and the summary
 *   extractor_settings.c  the manifest's settings as JSON
 *   extractor_options.c   the command line */
#ifndef LLORCH_EXTRACTOR_H
#define LLORCH_EXTRACTOR_H

#include "extractor_options.h"
#include "llorch_capture.h"
#include "llorch_checkpoint.h"

#include <ggml-cpu.h>
#include <ggml.h>
#include <llama.h>
#include <signal.h>
#include <stdbool.h>

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

/* --parallel: one of the sequences decoded together. */
struct sequence {
    llama_token *tokens; /* prompt + generated */
    int          n_prompt, n_tokens;
    char        *prompt; /* NULL with --tokens */
    llama_token  next;   /* the greedy choice after its last token */
};

struct extractor_feed; /* --feed (extractor_feed.c) */

/* Everything one run holds; freed by run_free(). */
struct run {
    struct extractor_options   opt;
    struct llama_model        *model;
    struct llama_context      *ctx;
    struct ggml_threadpool    *threadpool;
    const struct llama_vocab  *vocab;
    llama_token               *tokens; /* prompt + generated (--parallel: every sequence's, in decode order) */
    int                        n_prompt, n_tokens, n_alloc;
    struct sequence           *seqs; /* --parallel */
    int                        n_seqs;
    char                      *prompt_text; /* -p or -f contents */
    llorch_ckpt_selection     *selection;
    llorch_ckpt_writer        *writer;
    llorch_capture            *capture;
    enum llama_flash_attn_type fa;
    const char                *fa_reason;
    int                        n_ctx, n_chunk, steps;
    double                     decode_seconds;
    size_t                     output_bytes; /* the capture's: --output-mb, or 0 where auto chose splits */
    struct extractor_feed     *feed;         /* --feed, or NULL */
};

/* extractor.c */
/* Prints one line naming the input and the fix; returns 2, the exit
 * status for bad input. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int exit_bad_input(const char *fmt, ...);
/* llama.cpp's first logged error, or a hint to run with -v. */
const char *llama_reason(void);
/* Set by SIGINT: the steps stop, the dump is finished as incomplete. */
extern volatile sig_atomic_t interrupted;

/* extractor_model.c */
int load_model(struct run *r);
int get_tokens(struct run *r);
/* A file's text, NUL-terminated; NULL with errno set. */
char *read_text_file(const char *path);
/* Tokenizes text (BOS added) into a fresh array with room for `extra`
 * more; returns the count, or -1. */
int tokenize_text(const struct llama_vocab *vocab, const char *text, int extra, llama_token **tokens);

/* extractor_sequences.c */
int get_sequences(struct run *r);
/* Every token of the run: the prompts and what -n generates. */
int run_length(const struct run *r);
/* The decode steps of --parallel, once the graphs are prepared. */
int  run_sequences(struct run *r);
void free_sequences(struct run *r);

/* extractor_feed.c */
int   open_feed(struct run *r);         /* checks --feed DUMP against the model (a stage) */
int   feed_tokens(struct run *r);       /* no prompt given: DUMP's tokens */
int   check_feed_tokens(struct run *r); /* the run's tokens are DUMP's */
int   load_feed(struct run *r);         /* reads every row to feed (a stage) */
void  feed_params(const struct run *r, struct llorch_capture_params *p);
bool  feed_has_ffn_inp(const struct run *r);
char *feed_json(const struct run *r); /* the manifest's "fed" object, NULL without --feed */
void  free_feed(struct run *r);

/* extractor_run.c */
int                   make_selection(struct run *r);
int                   choose_flash_attn(struct run *r);
enum llorch_ckpt_form chosen_form(const struct run *r);
int                   open_output(struct run *r);
int                   create_capture(struct run *r);
int                   create_context(struct run *r);
int                   run_steps(struct run *r);
/* The greedy next token after batch row i (-1: the last row). */
llama_token greedy_token(const struct run *r, int32_t i);
/* A progress line on stderr (with --progress, or on a terminal). */
void show_progress(const struct run *r, int done, int total);

/* extractor_manifest.c */
int  write_manifest(struct run *r, bool complete, const char *status);
void print_summary(const struct run *r);

#endif

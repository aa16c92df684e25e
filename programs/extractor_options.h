/* extractor_options.h - the command line of llorch-checkpoint-extractor. */
#ifndef LLORCH_EXTRACTOR_OPTIONS_H
#define LLORCH_EXTRACTOR_OPTIONS_H

#include "llorch_capture.h"

#include <stdbool.h>
#include <stddef.h>

enum fa_mode {
    FA_AUTO,
    FA_ON,
    FA_OFF
};

#define FORM_AUTO (-1) /* npy for a one-step run, npz for more steps */

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
    int                          form; /* enum llorch_ckpt_form, or FORM_AUTO */
    bool                         stats;
    bool                         stop_at_nan;
    bool                         split_each;
    enum llorch_capture_sink     sink;
    enum llorch_capture_identify identify;
    size_t                       queue_mb;
    size_t                       output_mb;   /* --output-mb: checkpoints kept as graph outputs */
    bool                         output_auto; /* --output-mb auto: output_mb where a device computes, else 0 */
    /* llama.cpp settings */
    int          threads;
    int          n_ctx; /* 0: fit the run */
    int          n_batch;
    int          n_ubatch;
    enum fa_mode flash_attn;
    const char  *cache_type_k;
    const char  *cache_type_v;
    int          n_gpu_layers;
    const char  *rpc;        /* "host:port,host:port" */
    const char  *dump_graph; /* --dump-graph FILE */
    bool         repack;
    unsigned     seed;
    bool         verbose;
    bool         progress;
};

/* Parses argv. Returns 0 to run, 1 when --help was printed, 3 for
 * --version, 2 on a usage error (already reported on stderr). */
int extractor_parse_options(int argc, char **argv, struct extractor_options *opt);

#endif

/* extractor_options.c - the command line: flags (llama.cpp's names where
 * they exist), the positional form MODEL PROMPT CHECKPOINT_DIR, --help and
 * --version.
 *
 * Every option is one row of `options` below: its names, its value, what
 * it sets and its help. Parsing (through lib/toolx/cli.h) and --help are
 * both made from that table, so the two cannot disagree. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "cli.h"
#include "util.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* --- what an option's value does ---------------------------------------------- */

enum arg {
    ARG_SWITCH, /* no value: sets a bool field */
    ARG_CLEAR,  /* no value: clears a bool field */
    ARG_TEXT,   /* stores the value (a const char * field) */
    ARG_INT,    /* an int field, from min to max */
    ARG_UINT,   /* an unsigned field, from min to max */
    ARG_SIZE,   /* a size_t field, from min to max */
    ARG_CHOICE, /* one of `words`: choose(opt, index of the word) */
    ARG_CUSTOM, /* apply(opt, flag, value) */
};

enum section {
    SECTION_INPUT,
    SECTION_OUTPUT,
    SECTION_LLAMA,
    SECTION_RECORDED,
    SECTION_COUNT
};

struct option_row {
    const char        *names; /* "-m|--model=": as lib/toolx/cli.h reads them; '=' takes a value */
    const char        *value; /* the value's name in --help */
    enum section       section;
    enum arg           arg;
    size_t             field; /* offsetof(struct extractor_options, ...) */
    long               min, max;
    const char *const *words;
    void (*choose)(struct extractor_options *opt, int word);
    int (*apply)(struct extractor_options *opt, const char *flag, const char *value);
    const char *help; /* lines of --help, '\n' between them */
};

#define FIELD(name) offsetof(struct extractor_options, name)

static const char *const fa_words[] = {"on", "off", "auto", NULL};
static const char *const dtype_words[] = {"f32", "native", NULL};
static const char *const identify_words[] = {"auto", "structure", NULL};
static const char *const sink_words[] = {"disk", "memory", NULL};
static const char *const form_words[] = {"auto", "npy", "npz", "safetensors", NULL};

static void choose_fa(struct extractor_options *o, int k) {
    o->flash_attn = k == 0 ? EXTRACTOR_FA_ON : k == 1 ? EXTRACTOR_FA_OFF : EXTRACTOR_FA_AUTO;
}
static void choose_dtype(struct extractor_options *o, int k) {
    o->native_dtype = k == 1;
}
static void choose_identify(struct extractor_options *o, int k) {
    o->identify = k == 0 ? LLORCH_CAPTURE_IDENTIFY_AUTO : LLORCH_CAPTURE_IDENTIFY_STRUCTURE;
}
static void choose_sink(struct extractor_options *o, int k) {
    o->sink = k == 0 ? LLORCH_CAPTURE_SINK_WRITE : LLORCH_CAPTURE_SINK_MEMORY;
}
static void choose_form(struct extractor_options *o, int k) {
    o->form = k == 0 ? EXTRACTOR_FORM_AUTO : llorch_ckpt_form_from_name(form_words[k]);
}

static int apply_graph_regex(struct extractor_options *o, const char *flag, const char *value) {
    if (o->n_graph_regex == (int) (sizeof o->graph_regex / sizeof o->graph_regex[0])) {
        return cli_usage_error(PROG, "too many %s flags (at most 16); join patterns with '|'", flag);
    }
    o->graph_regex[o->n_graph_regex++] = value;
    return 0;
}

static int apply_output_mb(struct extractor_options *o, const char *flag, const char *value) {
    long n;
    if (strcmp(value, "auto") == 0) {
        o->output_auto = true;
        return 0;
    }
    if (cli_int(PROG, flag, value, 0, 1 << 20, &n) != 0) {
        return CLI_EXIT_USAGE;
    }
    o->output_mb = (size_t) n;
    o->output_auto = false;
    return 0;
}

/* --- the options ------------------------------------------------------------------ */

static const struct option_row options[] = {
    /* input */
    {"-m|--model=", "FILE", SECTION_INPUT, ARG_TEXT, FIELD(model), .help = "GGUF model"},
    {"-p|--prompt=", "TEXT", SECTION_INPUT, ARG_TEXT, FIELD(prompt),
     .help = "prompt (tokenized by the model's vocab, BOS added)"},
    {"-f|--file=", "FILE", SECTION_INPUT, ARG_TEXT, FIELD(prompt_file), .help = "read the prompt from FILE"},
    {"--tokens=", "IDS", SECTION_INPUT, ARG_TEXT, FIELD(tokens), .help = "token ids instead of a prompt, e.g. 1,15043"},
    {"-n|--n-predict=", "N", SECTION_INPUT, ARG_INT, FIELD(n_predict), 0, INT_MAX,
     .help = "generate N more tokens greedily (default 0)"},
    {"-np|--parallel=", "N", SECTION_INPUT, ARG_INT, FIELD(parallel), 1, 256,
     .help = "decode N sequences together in one batch, as a server does:\n"
             "the prompts are the first N lines of -f FILE (or -p N times,\n"
             "or --tokens lists split by ';'); each step's files are\n"
             "written per sequence (compare one with --seq)"},
    {"--feed=", "DUMP", SECTION_INPUT, ARG_TEXT, FIELD(feed),
     .help = "compute each layer from DUMP's own input to it (its embd, l_out\n"
             "and ffn_inp): compare the result with DUMP to judge each layer\n"
             "on its own (DUMP's tokens, unless -p/-f/--tokens give the same)"},
    /* output */
    {"-o|--output=", "DIR", SECTION_OUTPUT, ARG_TEXT, FIELD(output),
     .help = "new or empty directory for the dump; a run that fails before its\n"
             "manifest is written removes what it wrote there"},
    {"--format=", "FORM", SECTION_OUTPUT, ARG_CHOICE, FIELD(form), .words = form_words, .choose = choose_form,
     .help = "auto (default): a run of one decode step (a prompt of at most\n"
             "-ub tokens, no -n) or with --text writes numbered .npy files\n"
             "(checkpoint_01_attn_norm_l00_s000.npy, ...); a run of more steps\n"
             "writes one checkpoints.npz. npy, npz (numpy) or safetensors\n"
             "(Rust) choose one; every form adds tokens.npy and manifest.json"},
    {"--checkpoints=", "LIST", SECTION_OUTPUT, ARG_TEXT, FIELD(checkpoints),
     .help = "names and numbers, e.g. 1-6, attn_norm,4, all (default 1-6)"},
    {"--layers=", "RANGES", SECTION_OUTPUT, ARG_TEXT, FIELD(layers), .help = "e.g. 0-3,11 (default all)"},
    {"--positions=", "LIST", SECTION_OUTPUT, ARG_TEXT, FIELD(positions),
     .help = "only these token rows: last, last:16, 0-15,2040-2055 (of the\n"
             "run's tokens, prompt and generated); the cache and the scores'\n"
             "keys stay whole; steps without them are not captured"},
    {"--graph-regex=", "RE", SECTION_OUTPUT, ARG_CUSTOM, .apply = apply_graph_regex,
     .help = "also any llama.cpp tensor whose name matches RE (repeatable)"},
    {"--dtype=", "f32|native", SECTION_OUTPUT, ARG_CHOICE, .words = dtype_words, .choose = choose_dtype,
     .help = "f32 (default) or keep f16 tensors as f16"},
    {"--text", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(text),
     .help = "also write each tensor as .txt (one %.9g value per line);\n"
             "npy form only, so --format auto then writes .npy files"},
    {"--raw", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(raw),
     .help = "write cache and scores exactly as llama.cpp holds them"},
    {"--no-sync", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(no_sync),
     .help = "do not fsync the files before the manifest (faster; after a\n"
             "power loss a manifest may then name data that is not on disk)"},
    {"--stats", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(stats),
     .help = "print shape, min, max, mean, NaN/Inf per tensor; write nothing\n"
             "(so not with -o DIR or a CHECKPOINT_DIR: that is refused)"},
    {"--stop-at-nan", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(stop_at_nan),
     .help = "with --stats: stop at the first NaN or Inf"},
    {"--dump-graph=", "FILE", SECTION_OUTPUT, ARG_TEXT, FIELD(dump_graph),
     .help = "write llama.cpp's graph of each step size to FILE, one line per\n"
             "node, with the checkpoint each node was identified as"},
    {"--queue-mb=", "N", SECTION_OUTPUT, ARG_SIZE, FIELD(queue_mb), 1, 1 << 20,
     .help = "memory for copies not yet written (default 256)"},
    {"--capture-to=", "WHERE", SECTION_OUTPUT, ARG_CHOICE, .words = sink_words, .choose = choose_sink,
     .help = "disk (default) or memory: copy but write nothing (measures capture)"},
    {"--output-mb=", "N|auto", SECTION_OUTPUT, ARG_CUSTOM, .apply = apply_output_mb,
     .help = "with the patched llama.cpp: keep up to N MiB of checkpoints per\n"
             "graph as graph outputs and read them after the graph, with no\n"
             "graph split of their own (the compute buffer grows by as much;\n"
             "the rest, and everything with 0, at graph splits). auto (the\n"
             "default): 512 where layers run on a GPU or RPC device, where a\n"
             "split costs a stream synchronization; 0 on the CPU, where splits\n"
             "are cheap and reused memory stays in cache"},
    {"--split-each", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(split_each),
     .help = "copy each tensor at a graph split of its own (slower): the\n"
             "reference for the default, which copies several at one split\n"
             "where no later node can have overwritten them"},
    {"--progress", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(progress),
     .help = "print a line per decode step on stderr, numbered as the files\n"
             "are (step 0 writes s000)"},
    {"-v|--verbose", NULL, SECTION_OUTPUT, ARG_SWITCH, FIELD(verbose),
     .help = "also show llama.cpp's log and, after the run, the tensors and\n"
             "bytes of each checkpoint, the decode and capture times, how the\n"
             "checkpoints were read (the capture: line) and the memory used"},
    /* llama.cpp settings */
    {"-t|--threads=", "N", SECTION_LLAMA, ARG_INT, FIELD(threads), 1, INT_MAX,
     .help = "compute threads (default: the cores this process may use); with\n"
             "fewer, the writer thread writes during the decode, else after it"},
    {"-c|--ctx-size=", "N", SECTION_LLAMA, ARG_INT, FIELD(n_ctx), 0, INT_MAX,
     .help = "context size (default: the run's length rounded up to 256)"},
    {"-b|--batch-size=", "N", SECTION_LLAMA, ARG_INT, FIELD(n_batch), 1, INT_MAX,
     .help = "logical batch (default 2048)"},
    {"-ub|--ubatch-size=", "N", SECTION_LLAMA, ARG_INT, FIELD(n_ubatch), 1, INT_MAX,
     .help = "micro-batch; one decode step per micro-batch (default 512)"},
    {"-fa|--flash-attn=", "MODE", SECTION_LLAMA, ARG_CHOICE, .words = fa_words, .choose = choose_fa,
     .help = "off (default), on, or auto (llama.cpp's choice); on and auto\n"
             "cannot capture kq_soft_max (flash attention fuses it away)"},
    {"-ctk|--cache-type-k=", "T", SECTION_LLAMA, ARG_TEXT, FIELD(cache_type_k),
     .help = "K cache type: f16 (default), f32, bf16, q8_0, ..."},
    {"-ctv|--cache-type-v=", "T", SECTION_LLAMA, ARG_TEXT, FIELD(cache_type_v), .help = "V cache type"},
    {"-ngl|--n-gpu-layers=", "N", SECTION_LLAMA, ARG_INT, FIELD(n_gpu_layers), -1, INT_MAX,
     .help = "layers to offload (GPU and RPC devices)"},
    {"--rpc=", "SERVERS", SECTION_LLAMA, ARG_TEXT, FIELD(rpc),
     .help = "offload to ggml RPC servers, e.g. 127.0.0.1:50052"},
    {"--no-repack", NULL, SECTION_LLAMA, ARG_CLEAR, FIELD(repack),
     .help = "portable CPU kernels, no weight repacking (default)"},
    {"--repack", NULL, SECTION_LLAMA, ARG_SWITCH, FIELD(repack),
     .help = "let ggml repack weights (faster, CPU-specific numerics)"},
    /* recorded only */
    {"--seed=", "N", SECTION_RECORDED, ARG_UINT, FIELD(seed), 0, UINT_MAX,
     .help = "settings.seed; llama.cpp's flag, accepted so that its command\n"
             "lines run here: generation (-n) always takes the most likely\n"
             "token, so no seed changes it"},
    {"--identify=", "MODE", SECTION_RECORDED, ARG_CHOICE, .words = identify_words, .choose = choose_identify,
     .help = "settings.identify: auto (default) or structure; both find every\n"
             "checkpoint by its place in the dataflow and write the same files"},
};

#define N_OPTIONS ((int) (sizeof options / sizeof options[0]))

static const char *row_names(const void *table, int id) {
    return id < N_OPTIONS ? ((const struct option_row *) table)[id].names : NULL;
}

/* --- parsing ------------------------------------------------------------------------ */

/* "on, off or auto" */
static void list_words(char *buf, size_t size, const char *const *words) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; words[i] != NULL && used < size; i++) {
        const char *sep = i == 0 ? "" : words[i + 1] == NULL ? " or " : ", ";
        used += (size_t) snprintf(buf + used, size - used, "%s%s", sep, words[i]);
    }
}

static int apply_row(struct extractor_options *opt, const struct option_row *row, const char *flag, const char *v) {
    char *field = (char *) opt + row->field;
    long  n;
    switch (row->arg) {
        case ARG_SWITCH:
        case ARG_CLEAR:
            *(bool *) field = row->arg == ARG_SWITCH;
            return 0;
        case ARG_TEXT:
            *(const char **) field = v;
            return 0;
        case ARG_INT:
        case ARG_UINT:
        case ARG_SIZE:
            if (cli_int(PROG, flag, v, row->min, row->max, &n) != 0) {
                return CLI_EXIT_USAGE;
            }
            if (row->arg == ARG_INT) {
                *(int *) field = (int) n;
            } else if (row->arg == ARG_UINT) {
                *(unsigned *) field = (unsigned) n;
            } else {
                *(size_t *) field = (size_t) n;
            }
            return 0;
        case ARG_CHOICE:
            for (int k = 0; row->words[k] != NULL; k++) {
                if (strcmp(v, row->words[k]) == 0) {
                    row->choose(opt, k);
                    return 0;
                }
            }
            char expected[128];
            list_words(expected, sizeof expected, row->words);
            return cli_usage_error(PROG, "%s expects %s, got '%s'", flag, expected, v);
        case ARG_CUSTOM:
        default:
            return row->apply(opt, flag, v);
    }
}

/* The arguments as they are parsed: the options, and the positional ones. */
struct parse {
    struct extractor_options *opt;
    char                     *pos[8];
    int                       n_pos;
};

static int apply_argument(void *ctx, int id, const char *flag, const char *value) {
    struct parse *p = ctx;
    if (id == CLI_POSITIONAL) {
        if (p->n_pos < (int) (sizeof p->pos / sizeof p->pos[0])) {
            p->pos[p->n_pos] = (char *) value;
        }
        p->n_pos++;
        return 0;
    }
    return apply_row(p->opt, &options[id], flag, value);
}

static void set_defaults(struct extractor_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->threads = llorch_usable_cores(); /* the rule the capture's writer timing uses too */
    opt->n_batch = 2048;
    opt->n_ubatch = 512;
    opt->flash_attn = EXTRACTOR_FA_OFF;
    opt->cache_type_k = "f16";
    opt->cache_type_v = "f16";
    opt->n_gpu_layers = -1;
    opt->queue_mb = 256;
    opt->output_mb = 512;
    opt->output_auto = true;
    opt->sink = LLORCH_CAPTURE_SINK_WRITE;
    opt->identify = LLORCH_CAPTURE_IDENTIFY_AUTO;
    opt->form = EXTRACTOR_FORM_AUTO;
}

/* --- --help ----------------------------------------------------------------------------- */

static const char *const usage_line = "usage: " PROG " [options] -m MODEL (-p PROMPT | -f FILE | --tokens IDS) -o DIR\n"
                                      "       " PROG " [options] MODEL PROMPT CHECKPOINT_DIR\n";

static const char *const section_titles[SECTION_COUNT] = {
    "Input:", "Output:", "llama.cpp settings (recorded in the manifest):",
    "Recorded in the manifest, and nothing else (accepted so that older command lines run):"};

/* "  -m, --model FILE        GGUF model", the help's later lines under its first. */
static void print_row(const struct option_row *row) {
    const char *bar = strchr(row->names, '|');
    const char *name = bar != NULL ? bar + 1 : row->names;
    char        left[64];
    int n = snprintf(left, sizeof left, "  %.*s%s%.*s%s%s", bar != NULL ? (int) (bar - row->names) : 0, row->names,
                     bar != NULL ? ", " : "    ", (int) strcspn(name, "="), name, row->value != NULL ? " " : "",
                     row->value != NULL ? row->value : "");
    printf("%-26s", left);
    if (n > 25) {
        printf("\n%-26s", "");
    }
    for (const char *line = row->help; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        printf("%.*s\n", (int) len, line);
        line += len;
        if (*line == '\n') {
            line++;
            printf("%-26s", "");
        }
    }
}

static void print_help(void) {
    printf("%s", usage_line);
    printf("\n"
           "Runs a GGUF model in llama.cpp and writes its intermediate tensors (checkpoints)\n"
           "to a dump: numbered .npy files for a run of one decode step, one .npz for a run\n"
           "of more (see --format), with tokens.npy and a manifest.json, so that another\n"
           "engine can be checked layer by layer (see llorch-checkpoint-compare).\n"
           "\n"
           "Checkpoints (per layer; numbers as in the file names), each found by its place\n"
           "in the dataflow, whatever the architecture names it (docs/FORMAT.md):\n"
           "  1 attn_norm      what the query projection reads (the attention norm's output)\n"
           "  2 Qcur           query entering attention (after bias, q-norm, RoPE)\n"
           "    Kcur Vcur      key/value of this step as written into the KV cache;\n"
           "                   Qcur_pre_rope, Kcur_pre_rope by name\n"
           "  3 cache_k cache_v the KV cache attention reads, valid cells only\n"
           "    cache_r cache_s a recurrent layer's state after the step (Mamba, RWKV, delta nets)\n"
           "  4 kq_soft_max    attention probabilities (not with -fa on: flash attention fuses them)\n"
           "  5 attn_out_proj  attention output: projection, bias, scale (a recurrent layer: its mixer's)\n"
           "  6 ffn_out        feed-forward output (dense, or experts + shared expert)\n"
           "  extras: embd ffn_inp l_out result_norm logits, and where a model has them\n"
           "    q_norm k_norm Qcur_unscaled attn_out_final ffn_out_final ffn_moe_out\n"
           "    ffn_shexp_out ffn_dense_out ('extras' selects them all)\n"
           "  Layers without attention (SSM, linear attention) list the attention\n"
           "  checkpoints as missing, with the reason, in the manifest.\n");
    for (int section = 0; section < SECTION_COUNT; section++) {
        printf("\n%s\n", section_titles[section]);
        for (int id = 0; id < N_OPTIONS; id++) {
            if (options[id].section == (enum section) section) {
                print_row(&options[id]);
            }
        }
        if (section == SECTION_LLAMA) {
            printf("  -h, --help, --version\n"
                   "  Flash attention is off unless -fa on: a checkpoint's numbers never depend on which\n"
                   "  checkpoints are selected.\n");
        }
    }
    printf("\n"
           "Examples:\n"
           "  " PROG " model.gguf \"Hello\" dump/\n"
           "  python3 -c \"import numpy as np; print(np.load('dump/checkpoint_01_attn_norm_l00_s000.npy').shape)\"\n"
           "  " PROG " -m model.gguf -p \"Once upon a time\" -n 4 -o gen/ --layers 0-1\n"
           "  python3 -c \"import numpy as np; print(np.load('gen/checkpoints.npz').files[:3])\"\n"
           "  " PROG " -m model.gguf --tokens 1,15043 --checkpoints 1,4 -ctk f32 -ctv f32 -o ids/\n"
           "  " PROG " -m model.gguf -p \"Hi\" --stats --stop-at-nan\n"
           "  " PROG " -m model.gguf -f prompts.txt --parallel 4 -n 8 -o batched/\n"
           "\n"
           "The format is documented in docs/FORMAT.md. Exit status: 0 ok, 1 run failed,\n"
           "2 bad input, 130 interrupted (the manifest then says \"complete\": false).\n");
}

/* --- what the options must say together ------------------------------------------- */

/* The positional form means exactly what -m, -p and -o mean. */
static int apply_positionals(char **pos, int n_pos, struct extractor_options *opt) {
    if (n_pos == 0) {
        return 0;
    }
    if (n_pos != 3 || opt->model != NULL || opt->prompt != NULL || opt->output != NULL) {
        fprintf(stderr, "%s", usage_line);
        return cli_usage_error(PROG, "expected MODEL PROMPT CHECKPOINT_DIR (got %d positional argument%s)%s", n_pos,
                               n_pos == 1 ? "" : "s",
                               n_pos == 3 ? " together with -m, -p or -o; give the flags or the three arguments"
                                          : "; quote a prompt of several words");
    }
    opt->model = pos[0];
    opt->prompt = pos[1];
    opt->output = pos[2];
    return 0;
}

/* The reason --parallel refuses an option, or NULL. */
static const char *parallel_conflict(const struct extractor_options *opt) {
    if (opt->parallel == 0) {
        return NULL;
    }
    return opt->positions != NULL   ? "--positions does not go with --parallel (its 'last' is a different row in "
                                      "each sequence)"
           : opt->raw               ? "--raw does not go with --parallel (a raw cache holds every sequence's cells)"
           : opt->n_graph_regex > 0 ? "--graph-regex does not go with --parallel (its tensors hold the whole "
                                      "batch, not one sequence)"
                                    : NULL;
}

static int check_required(const struct extractor_options *opt) {
    int inputs = (opt->prompt != NULL) + (opt->prompt_file != NULL) + (opt->tokens != NULL);
    if (opt->model == NULL) {
        fprintf(stderr, "%s", usage_line);
        return cli_usage_error(PROG, "no model given; pass -m MODEL.gguf (see --help)");
    }
    if (inputs != 1 && !(inputs == 0 && opt->feed != NULL)) { /* --feed alone runs on its dump's tokens */
        return cli_usage_error(PROG, "give exactly one of -p PROMPT, -f FILE or --tokens IDS (got %d)", inputs);
    }
    if (opt->output == NULL && !opt->stats && opt->sink == LLORCH_CAPTURE_SINK_WRITE) {
        return cli_usage_error(PROG, "no output directory given; pass -o DIR (or --stats to write nothing)");
    }
    if (opt->text && opt->form != EXTRACTOR_FORM_AUTO && opt->form != LLORCH_CKPT_FORM_NPY) {
        return cli_usage_error(PROG, "--text writes a file per tensor, which the %s form does not; use --format npy",
                               llorch_ckpt_form_name((enum llorch_ckpt_form) opt->form));
    }
    if (parallel_conflict(opt) != NULL) {
        return cli_usage_error(PROG, "%s; drop one of the two", parallel_conflict(opt));
    }
    if (opt->stats && opt->output != NULL) {
        return cli_usage_error(PROG,
                               "--stats writes nothing, so the output directory '%s' would stay empty; drop --stats "
                               "to write the dump there, or drop the directory to only print statistics",
                               opt->output);
    }
    if (opt->stop_at_nan && !opt->stats) {
        return cli_usage_error(PROG, "--stop-at-nan works with --stats; add --stats");
    }
    return 0;
}

int extractor_parse_options(int argc, char **argv, struct extractor_options *opt) {
    set_defaults(opt);
    struct parse p = {.opt = opt};
    int          rc = cli_parse_table(PROG, row_names, options, argc, argv, apply_argument, &p);
    if (rc == CLI_HELP) {
        print_help();
        return 1;
    }
    if (rc != 0) {
        return rc == CLI_VERSION ? 3 : 2; /* the caller prints the version */
    }
    rc = apply_positionals(p.pos, p.n_pos, opt);
    return rc != 0 ? rc : check_required(opt);
}

/* extractor_options.c - flags (llama.cpp's names where they exist), the
 * positional form MODEL PROMPT CHECKPOINT_DIR, --help and --version. */
#define _POSIX_C_SOURCE 200809L
#include "extractor_options.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "llorch-checkpoint-extractor"

static const char *usage_line = "usage: " PROG " [options] -m MODEL (-p PROMPT | -f FILE | --tokens IDS) -o DIR\n"
                                "       " PROG " [options] MODEL PROMPT CHECKPOINT_DIR\n";

static void print_help(void) {
    printf("%s", usage_line);
    printf("\n"
           "Runs a GGUF model in llama.cpp and writes its intermediate tensors (checkpoints)\n"
           "as .npy files with a manifest.json, so that another engine can be checked\n"
           "layer by layer (see llorch-checkpoint-compare).\n"
           "\n"
           "Checkpoints (per layer; numbers as in the file names), each found by its place\n"
           "in the dataflow, whatever the architecture names it (docs/FORMAT.md):\n"
           "  1 attn_norm      what the query projection reads (the attention norm's output)\n"
           "  2 Qcur           query entering attention (after bias, q-norm, RoPE)\n"
           "    Kcur Vcur      key/value of this step as written into the KV cache;\n"
           "                   Qcur_pre_rope, Kcur_pre_rope by name\n"
           "  3 cache_k cache_v the KV cache attention reads, valid cells only\n"
           "  4 kq_soft_max    attention probabilities (not with -fa on: flash attention fuses them)\n"
           "  5 attn_out_proj  attention output: projection, bias, scale\n"
           "  6 ffn_out        feed-forward output (dense, or experts + shared expert)\n"
           "  extras: embd ffn_inp l_out result_norm logits, and where a model has them\n"
           "    q_norm k_norm Qcur_unscaled attn_out_final ffn_out_final ffn_moe_out\n"
           "    ffn_shexp_out ffn_dense_out ('extras' selects them all)\n"
           "  Layers without attention (SSM, linear attention) list the attention\n"
           "  checkpoints as missing, with the reason, in the manifest.\n"
           "\n");
    printf("Input:\n"
           "  -m, --model FILE        GGUF model\n"
           "  -p, --prompt TEXT       prompt (tokenized by the model's vocab, BOS added)\n"
           "  -f, --file FILE         read the prompt from FILE\n"
           "      --tokens IDS        token ids instead of a prompt, e.g. 1,15043\n"
           "  -n, --n-predict N       generate N more tokens greedily (default 0)\n"
           "  -np, --parallel N       decode N sequences together in one batch, as a server does:\n"
           "                          the prompts are the first N lines of -f FILE (or -p N times,\n"
           "                          or --tokens lists split by ';'); each step's files are\n"
           "                          written per sequence (compare one with --seq)\n"
           "\n"
           "Output:\n"
           "  -o, --output DIR        new or empty directory for the dump\n"
           "      --checkpoints LIST  names and numbers, e.g. 1-6, attn_norm,4, all (default 1-6)\n"
           "      --layers RANGES     e.g. 0-3,11 (default all)\n"
           "      --positions LIST    only these token rows: last, last:16, 0-15,2040-2055 (of the\n"
           "                          run's tokens, prompt and generated); the cache and the scores'\n"
           "                          keys stay whole; steps without them are not captured\n"
           "      --graph-regex RE    also any llama.cpp tensor whose name matches RE (repeatable)\n"
           "      --dtype f32|native  f32 (default) or keep f16 tensors as f16\n"
           "      --format FORM       auto (default), npy, npz or safetensors: npy writes a file\n"
           "                          per tensor; npz (numpy) and safetensors (Rust) one file\n"
           "                          per run; auto is npy for a one-step run, npz for more\n"
           "      --text              also write each tensor as .txt (one %%.9g value per line;\n"
           "                          npy form)\n"
           "      --raw               write cache and scores exactly as llama.cpp holds them\n"
           "      --no-sync           do not fsync the files before the manifest (faster; after a\n"
           "                          power loss a manifest may then name data that is not on disk)\n"
           "      --stats             print shape, min, max, mean, NaN/Inf per tensor; write nothing\n"
           "                          (so not with -o DIR or a CHECKPOINT_DIR: that is refused)\n"
           "      --dump-graph FILE   write llama.cpp's graph of each step size to FILE, one line per\n"
           "                          node, with the checkpoint each node was identified as\n"
           "      --stop-at-nan       with --stats: stop at the first NaN or Inf\n"
           "      --identify MODE     auto (default) or structure: recorded only; checkpoints are\n"
           "                          always identified by dataflow\n"
           "      --queue-mb N        memory for copies not yet written (default 256)\n"
           "      --capture-to WHERE  disk (default) or memory: copy but write nothing (measures capture)\n"
           "      --output-mb N|auto  with the patched llama.cpp: keep up to N MiB of checkpoints per\n"
           "                          graph as graph outputs and read them after the graph, with no\n"
           "                          graph split of their own (the compute buffer grows by as much;\n"
           "                          the rest, and everything with 0, at graph splits). auto (the\n"
           "                          default): 512 where layers run on a GPU or RPC device, where a\n"
           "                          split costs a stream synchronization; 0 on the CPU, where splits\n"
           "                          are cheap and reused memory stays in cache\n"
           "      --split-each        copy each tensor at a graph split of its own (slower): the\n"
           "                          reference for the default, which copies several at one split\n"
           "                          where no later node can have overwritten them\n"
           "      --progress          print a progress line per step on stderr\n"
           "      --feed DUMP         compute each layer from DUMP's own input to it (its embd, l_out\n"
           "                          and ffn_inp): compare the result with DUMP to judge each layer\n"
           "                          on its own (DUMP's tokens, unless -p/-f/--tokens give the same)\n"
           "\n");
    printf("llama.cpp settings (recorded in the manifest):\n"
           "  -t, --threads N         compute threads (default: all cores)\n"
           "  -c, --ctx-size N        context size (default: the run's length rounded up to 256)\n"
           "  -b, --batch-size N      logical batch (default 2048)\n"
           "  -ub, --ubatch-size N    micro-batch; one step per micro-batch (default 512)\n"
           "  -fa, --flash-attn MODE  off (default), on, or auto (llama.cpp's choice); on and auto\n"
           "                          cannot capture kq_soft_max (flash attention fuses it away)\n"
           "  -ctk, --cache-type-k T  K cache type: f16 (default), f32, bf16, q8_0, ...\n"
           "  -ctv, --cache-type-v T  V cache type\n"
           "  -ngl, --n-gpu-layers N  layers to offload (GPU and RPC devices)\n"
           "      --rpc SERVERS       offload to ggml RPC servers, e.g. 127.0.0.1:50052\n"
           "      --no-repack         portable CPU kernels, no weight repacking (default)\n"
           "      --repack            let ggml repack weights (faster, CPU-specific numerics)\n"
           "      --seed N            recorded; generation is greedy and deterministic\n"
           "  -v, --verbose           show llama.cpp's log\n"
           "  -h, --help, --version\n"
           "  Flash attention is off unless -fa on: a checkpoint's numbers never depend on which\n"
           "  checkpoints are selected.\n"
           "\n");
    printf("Examples:\n"
           "  " PROG " model.gguf \"Hello\" dump/\n"
           "  " PROG " -m model.gguf -p \"Once upon a time\" -n 4 -o dump/ --layers 0-1\n"
           "  " PROG " -m model.gguf --tokens 1,15043 --checkpoints 1,4 -ctk f32 -ctv f32 -o dump/\n"
           "  " PROG " -m model.gguf -p \"Hi\" --stats --stop-at-nan\n"
           "  " PROG " -m model.gguf -f prompts.txt --parallel 4 -n 8 -o batched/\n"
           "  python3 -c \"import numpy as np; print(np.load('dump/checkpoint_01_attn_norm_l00_s000.npy').shape)\"\n"
           "\n"
           "The format is documented in docs/FORMAT.md. Exit status: 0 ok, 1 run failed,\n"
           "2 bad input, 130 interrupted (the manifest then says \"complete\": false).\n");
}

static void set_defaults(struct extractor_options *opt) {
    memset(opt, 0, sizeof *opt);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    opt->threads = cores > 0 ? (int) cores : 1;
    opt->n_batch = 2048;
    opt->n_ubatch = 512;
    opt->flash_attn = FA_OFF;
    opt->cache_type_k = "f16";
    opt->cache_type_v = "f16";
    opt->n_gpu_layers = -1;
    opt->queue_mb = 256;
    opt->output_mb = 512;
    opt->output_auto = true;
    opt->sink = LLORCH_CAPTURE_SINK_WRITE;
    opt->identify = LLORCH_CAPTURE_IDENTIFY_AUTO;
    opt->form = FORM_AUTO;
}

enum option_id {
    OPT_RAW,
    OPT_TEXT,
    OPT_NO_SYNC,
    OPT_STATS,
    OPT_STOP_AT_NAN,
    OPT_SPLIT_EACH,
    OPT_NO_REPACK,
    OPT_REPACK,
    OPT_VERBOSE,
    OPT_PROGRESS,
    OPT_MODEL,
    OPT_PROMPT,
    OPT_FILE,
    OPT_TOKENS,
    OPT_OUTPUT,
    OPT_CHECKPOINTS,
    OPT_LAYERS,
    OPT_CACHE_K,
    OPT_CACHE_V,
    OPT_RPC,
    OPT_DUMP_GRAPH,
    OPT_POSITIONS,
    OPT_FEED,
    OPT_GRAPH_REGEX,
    OPT_N_PREDICT,
    OPT_THREADS,
    OPT_CTX,
    OPT_BATCH,
    OPT_UBATCH,
    OPT_NGL,
    OPT_PARALLEL,
    OPT_SEED,
    OPT_QUEUE_MB,
    OPT_OUTPUT_MB,
    OPT_FLASH_ATTN,
    OPT_DTYPE,
    OPT_IDENTIFY,
    OPT_CAPTURE_TO,
    OPT_FORMAT,
};

static const char *const options[] = {"--raw",
                                      "--text",
                                      "--no-sync",
                                      "--stats",
                                      "--stop-at-nan",
                                      "--split-each",
                                      "--no-repack",
                                      "--repack",
                                      "-v|--verbose",
                                      "--progress",
                                      "-m|--model=",
                                      "-p|--prompt=",
                                      "-f|--file=",
                                      "--tokens=",
                                      "-o|--output=",
                                      "--checkpoints=",
                                      "--layers=",
                                      "-ctk|--cache-type-k=",
                                      "-ctv|--cache-type-v=",
                                      "--rpc=",
                                      "--dump-graph=",
                                      "--positions=",
                                      "--feed=",
                                      "--graph-regex=",
                                      "-n|--n-predict=",
                                      "-t|--threads=",
                                      "-c|--ctx-size=",
                                      "-b|--batch-size=",
                                      "-ub|--ubatch-size=",
                                      "-ngl|--n-gpu-layers=",
                                      "-np|--parallel=",
                                      "--seed=",
                                      "--queue-mb=",
                                      "--output-mb=",
                                      "-fa|--flash-attn=",
                                      "--dtype=",
                                      "--identify=",
                                      "--capture-to=",
                                      "--format=",
                                      NULL};

static void apply_switch(int id, struct extractor_options *opt) {
    /* in the order of the switches in options[]; --no-repack clears repack */
    bool *const flags[] = {&opt->raw,        &opt->text,   &opt->no_sync, &opt->stats,   &opt->stop_at_nan,
                           &opt->split_each, &opt->repack, &opt->repack,  &opt->verbose, &opt->progress};
    *flags[id] = id != OPT_NO_REPACK;
}

/* The index of v in names (NULL-terminated), or -1. */
static int choice(const char *v, const char *const *names) {
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(v, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Options whose value is one of a few words. Returns 0 or an exit status. */
static int apply_choice(int id, const char *flag, const char *v, struct extractor_options *opt) {
    static const char *const        fa[] = {"auto", "on", "off", NULL};
    static const char *const        dtype[] = {"f32", "native", NULL};
    static const char *const        identify[] = {"auto", "structure", NULL};
    static const char *const        sink[] = {"disk", "memory", NULL};
    static const char *const        form[] = {"auto", "npy", "npz", "safetensors", NULL};
    static const char *const *const lists[] = {fa, dtype, identify, sink, form};
    static const char *const expected[] = {"on, off or auto", "f32 or native", "auto or structure", "disk or memory",
                                           "auto, npy, npz or safetensors"};
    int                      which = id - OPT_FLASH_ATTN;
    int                      k = choice(v, lists[which]);
    if (k < 0) {
        return cli_usage_error(PROG, "%s expects %s, got '%s'", flag, expected[which], v);
    }
    switch (id) {
        case OPT_FLASH_ATTN:
            opt->flash_attn = k == 0 ? FA_AUTO : k == 1 ? FA_ON : FA_OFF;
            break;
        case OPT_DTYPE:
            opt->native_dtype = k == 1;
            break;
        case OPT_IDENTIFY:
            opt->identify = k == 0 ? LLORCH_CAPTURE_IDENTIFY_AUTO : LLORCH_CAPTURE_IDENTIFY_STRUCTURE;
            break;
        case OPT_CAPTURE_TO:
            opt->sink = k == 0 ? LLORCH_CAPTURE_SINK_WRITE : LLORCH_CAPTURE_SINK_MEMORY;
            break;
        default:
            opt->form = k == 0 ? FORM_AUTO : llorch_ckpt_form_from_name(v);
            break;
    }
    return 0;
}

/* Options with an integer value. Returns 0 or an exit status; nothing is
 * stored unless the value parses. */
static int apply_number(int id, const char *flag, const char *v, struct extractor_options *opt) {
    static const long min[] = {0, 1, 0, 1, 1, -1, 1, 0, 1, 0};
    static const long max[] = {INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, 256, UINT_MAX, 1 << 20, 1 << 20};
    long              n;
    int               rc = cli_int(PROG, flag, v, min[id - OPT_N_PREDICT], max[id - OPT_N_PREDICT], &n);
    if (rc != 0) {
        return rc;
    }
    int *const ints[] = {&opt->n_predict, &opt->threads,      &opt->n_ctx,   &opt->n_batch,
                         &opt->n_ubatch,  &opt->n_gpu_layers, &opt->parallel};
    if (id == OPT_SEED) {
        opt->seed = (unsigned) n;
    } else if (id == OPT_QUEUE_MB) {
        opt->queue_mb = (size_t) n;
    } else if (id == OPT_OUTPUT_MB) {
        opt->output_mb = (size_t) n;
        opt->output_auto = false;
    } else {
        *ints[id - OPT_N_PREDICT] = (int) n;
    }
    return 0;
}

/* Options with a value. Returns 0 or an exit status. */
static int apply_value(int id, const char *flag, const char *v, struct extractor_options *opt) {
    if (id >= OPT_FLASH_ATTN) {
        return apply_choice(id, flag, v, opt);
    }
    if (id == OPT_OUTPUT_MB && strcmp(v, "auto") == 0) {
        opt->output_auto = true;
        return 0;
    }
    if (id >= OPT_N_PREDICT) {
        return apply_number(id, flag, v, opt);
    }
    const char **strings[] = {&opt->model,       &opt->prompt,    &opt->prompt_file,  &opt->tokens,       &opt->output,
                              &opt->checkpoints, &opt->layers,    &opt->cache_type_k, &opt->cache_type_v, &opt->rpc,
                              &opt->dump_graph,  &opt->positions, &opt->feed};
    if (id != OPT_GRAPH_REGEX) {
        *strings[id - OPT_MODEL] = v;
        return 0;
    }
    if (opt->n_graph_regex == (int) (sizeof opt->graph_regex / sizeof opt->graph_regex[0])) {
        return cli_usage_error(PROG, "too many %s flags (at most 16)", flag);
    }
    opt->graph_regex[opt->n_graph_regex++] = v;
    return 0;
}

/* The positional form means exactly what -m, -p and -o mean. */
static int apply_positionals(char **pos, int n_pos, struct extractor_options *opt) {
    if (n_pos == 0) {
        return 0;
    }
    if (n_pos != 3 || opt->model != NULL || opt->prompt != NULL || opt->output != NULL) {
        fprintf(stderr, "%s", usage_line);
        fprintf(stderr, PROG ": expected MODEL PROMPT CHECKPOINT_DIR (got %d positional argument%s)%s\n", n_pos,
                n_pos == 1 ? "" : "s", n_pos == 3 ? " together with -m, -p or -o" : "");
        return 2;
    }
    opt->model = pos[0];
    opt->prompt = pos[1];
    opt->output = pos[2];
    return 0;
}

static int check_required(const struct extractor_options *opt) {
    int inputs = (opt->prompt != NULL) + (opt->prompt_file != NULL) + (opt->tokens != NULL);
    if (opt->model == NULL) {
        fprintf(stderr, "%s" PROG ": no model given; pass -m MODEL.gguf (see --help)\n", usage_line);
        return 2;
    }
    if (inputs != 1 && !(inputs == 0 && opt->feed != NULL)) { /* --feed alone runs on its dump's tokens */
        fprintf(stderr, PROG ": give exactly one of -p PROMPT, -f FILE or --tokens IDS (got %d)\n", inputs);
        return 2;
    }
    if (opt->output == NULL && !opt->stats && opt->sink == LLORCH_CAPTURE_SINK_WRITE) {
        fprintf(stderr, PROG ": no output directory given; pass -o DIR (or --stats to write nothing)\n");
        return 2;
    }
    if (opt->text && opt->form != FORM_AUTO && opt->form != LLORCH_CKPT_FORM_NPY) {
        fprintf(stderr, PROG ": --text writes a file per tensor, which the %s form does not; use --format npy\n",
                llorch_ckpt_form_name((enum llorch_ckpt_form) opt->form));
        return 2;
    }
    if (opt->parallel > 0 && (opt->positions != NULL || opt->n_graph_regex > 0 || opt->raw)) {
        fprintf(stderr, PROG ": %s; drop one of the two\n",
                opt->positions != NULL ? "--positions does not go with --parallel (its 'last' is a different row "
                                         "in each sequence)"
                : opt->raw             ? "--raw does not go with --parallel (a raw cache holds every sequence's "
                                         "cells)"
                                       : "--graph-regex does not go with --parallel (its tensors hold the whole "
                                         "batch, not one sequence)");
        return 2;
    }
    if (opt->stats && opt->output != NULL) {
        fprintf(stderr,
                PROG ": error: --stats writes nothing, so the output directory '%s' would stay empty; drop --stats "
                     "to write the dump there, or drop the directory to only print statistics\n",
                opt->output);
        return 2;
    }
    if (opt->stop_at_nan && !opt->stats) {
        fprintf(stderr, PROG ": --stop-at-nan works with --stats; add --stats\n");
        return 2;
    }
    return 0;
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
    if (value == NULL) {
        apply_switch(id, p->opt);
        return 0;
    }
    return apply_value(id, flag, value, p->opt);
}

int extractor_parse_options(int argc, char **argv, struct extractor_options *opt) {
    set_defaults(opt);
    struct parse p = {.opt = opt};
    int          rc = cli_parse(PROG, options, argc, argv, apply_argument, &p);
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

/* extractor_options.c - flags (llama.cpp's names where they exist), the
 * positional form MODEL PROMPT CHECKPOINT_DIR, --help and --version. */
#define _POSIX_C_SOURCE 200809L
#include "extractor_options.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "llorch-checkpoint-extractor"

static const char *usage_line =
    "usage: " PROG " [options] -m MODEL (-p PROMPT | -f FILE | --tokens IDS) -o DIR\n"
    "       " PROG " [options] MODEL PROMPT CHECKPOINT_DIR\n";

static void print_help(void) {
    printf("%s", usage_line);
    printf(
        "\n"
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
        "  4 kq_soft_max    attention probabilities (turns flash attention off)\n"
        "  5 attn_out_proj  attention output: projection, bias, scale\n"
        "  6 ffn_out        feed-forward output (dense, or experts + shared expert)\n"
        "  extras: embd ffn_inp l_out result_norm logits, and where a model has them\n"
        "    q_norm k_norm Qcur_unscaled attn_out_final ffn_out_final ffn_moe_out\n"
        "    ffn_shexp_out ffn_dense_out ('extras' selects them all)\n"
        "  Layers without attention (SSM, linear attention) list the attention\n"
        "  checkpoints as missing, with the reason, in the manifest.\n"
        "\n");
    printf(
        "Input:\n"
        "  -m, --model FILE        GGUF model\n"
        "  -p, --prompt TEXT       prompt (tokenized by the model's vocab, BOS added)\n"
        "  -f, --file FILE         read the prompt from FILE\n"
        "      --tokens IDS        token ids instead of a prompt, e.g. 1,15043\n"
        "  -n, --n-predict N       generate N more tokens greedily (default 0)\n"
        "\n"
        "Output:\n"
        "  -o, --output DIR        new or empty directory for the dump\n"
        "      --checkpoints LIST  names and numbers, e.g. 1-6, attn_norm,4, all (default 1-6)\n"
        "      --layers RANGES     e.g. 0-3,11 (default all)\n"
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
        "      --dump-graph FILE   write llama.cpp's graph of each step size to FILE, one line per\n"
        "                          node, with the checkpoint each node was identified as\n"
        "      --stop-at-nan       with --stats: stop at the first NaN or Inf\n"
        "      --identify MODE     auto (default) or structure: recorded only; checkpoints are\n"
        "                          always identified by dataflow\n"
        "      --queue-mb N        memory bound of the writer queue (default 256)\n"
        "      --capture-to WHERE  disk (default) or memory: copy but write nothing (measures capture)\n"
        "      --split-each        copy each tensor at a graph split of its own (slower): the\n"
        "                          reference for the default, which copies several at one split\n"
        "                          where no later node can have overwritten them\n"
        "      --progress          print a progress line per step on stderr\n"
        "\n");
    printf(
        "llama.cpp settings (recorded in the manifest):\n"
        "  -t, --threads N         compute threads (default: all cores)\n"
        "  -c, --ctx-size N        context size (default: the run's length rounded up to 256)\n"
        "  -b, --batch-size N      logical batch (default 2048)\n"
        "  -ub, --ubatch-size N    micro-batch; one step per micro-batch (default 512)\n"
        "  -fa, --flash-attn MODE  on, off or auto (default auto; off when kq_soft_max is asked)\n"
        "  -ctk, --cache-type-k T  K cache type: f16 (default), f32, bf16, q8_0, ...\n"
        "  -ctv, --cache-type-v T  V cache type\n"
        "  -ngl, --n-gpu-layers N  layers to offload (GPU and RPC devices)\n"
        "      --rpc SERVERS       offload to ggml RPC servers, e.g. 127.0.0.1:50052\n"
        "      --no-repack         portable CPU kernels, no weight repacking (default)\n"
        "      --repack            let ggml repack weights (faster, CPU-specific numerics)\n"
        "      --seed N            recorded; generation is greedy and deterministic\n"
        "  -v, --verbose           show llama.cpp's log\n"
        "  -h, --help, --version\n"
        "\n");
    printf(
        "Examples:\n"
        "  " PROG " model.gguf \"Hello\" dump/\n"
        "  " PROG " -m model.gguf -p \"Once upon a time\" -n 4 -o dump/ --layers 0-1\n"
        "  " PROG " -m model.gguf --tokens 1,15043 --checkpoints 1,4 -ctk f32 -ctv f32 -o dump/\n"
        "  " PROG " -m model.gguf -p \"Hi\" --stats --stop-at-nan\n"
        "  python3 -c \"import numpy as np; print(np.load('dump/checkpoint_01_attn_norm_l00_s000.npy').shape)\"\n"
        "\n"
        "The format is documented in docs/FORMAT.md. Exit status: 0 ok, 1 run failed,\n"
        "2 bad input, 130 interrupted (the manifest then says \"complete\": false).\n");
}

static int usage_error(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

static int parse_int(const char *flag, const char *value, int min, int *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno != 0 || v < min || v > INT_MAX) {
        char bound[32];
        snprintf(bound, sizeof bound, "%d", min);
        fprintf(stderr, PROG ": %s expects an integer >= %s, got '%s'\n", flag, bound, value);
        return 2;
    }
    *out = (int) v;
    return 0;
}

static void set_defaults(struct extractor_options *opt) {
    memset(opt, 0, sizeof *opt);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    opt->threads = cores > 0 ? (int) cores : 1;
    opt->n_batch = 2048;
    opt->n_ubatch = 512;
    opt->flash_attn = FA_AUTO;
    opt->cache_type_k = "f16";
    opt->cache_type_v = "f16";
    opt->n_gpu_layers = -1;
    opt->queue_mb = 256;
    opt->sink = LLORCH_CAPTURE_SINK_WRITE;
    opt->identify = LLORCH_CAPTURE_IDENTIFY_AUTO;
    opt->form = FORM_AUTO;
}

static bool is(const char *arg, const char *short_name, const char *long_name) {
    return (short_name != NULL && strcmp(arg, short_name) == 0) || strcmp(arg, long_name) == 0;
}

/* Flags without a value. Returns 1 if arg was one. */
static int parse_switch(const char *arg, struct extractor_options *opt) {
    if (is(arg, NULL, "--raw")) { opt->raw = true; return 1; }
    if (is(arg, NULL, "--text")) { opt->text = true; return 1; }
    if (is(arg, NULL, "--no-sync")) { opt->no_sync = true; return 1; }
    if (is(arg, NULL, "--stats")) { opt->stats = true; return 1; }
    if (is(arg, NULL, "--stop-at-nan")) { opt->stop_at_nan = true; return 1; }
    if (is(arg, NULL, "--split-each")) { opt->split_each = true; return 1; }
    if (is(arg, NULL, "--no-repack")) { opt->repack = false; return 1; }
    if (is(arg, NULL, "--repack")) { opt->repack = true; return 1; }
    if (is(arg, "-v", "--verbose")) { opt->verbose = true; return 1; }
    if (is(arg, NULL, "--progress")) { opt->progress = true; return 1; }
    return 0;
}

static int parse_enum_value(const char *flag, const char *v, struct extractor_options *opt) {
    if (is(flag, "-fa", "--flash-attn")) {
        if (strcmp(v, "on") == 0) { opt->flash_attn = FA_ON; return 0; }
        if (strcmp(v, "off") == 0) { opt->flash_attn = FA_OFF; return 0; }
        if (strcmp(v, "auto") == 0) { opt->flash_attn = FA_AUTO; return 0; }
        return usage_error("%s expects on, off or auto, got '%s'", flag, v);
    }
    if (is(flag, NULL, "--dtype")) {
        if (strcmp(v, "f32") == 0 || strcmp(v, "native") == 0) { opt->native_dtype = v[0] == 'n'; return 0; }
        return usage_error("%s expects f32 or native, got '%s'", flag, v);
    }
    if (is(flag, NULL, "--format")) {
        opt->form = strcmp(v, "auto") == 0 ? FORM_AUTO : llorch_ckpt_form_from_name(v);
        if (strcmp(v, "auto") != 0 && opt->form < 0) {
            return usage_error("%s expects auto, npy, npz or safetensors, got '%s'", flag, v);
        }
        return 0;
    }
    if (is(flag, NULL, "--identify")) {
        if (strcmp(v, "auto") == 0) { opt->identify = LLORCH_CAPTURE_IDENTIFY_AUTO; return 0; }
        if (strcmp(v, "structure") == 0) { opt->identify = LLORCH_CAPTURE_IDENTIFY_STRUCTURE; return 0; }
        return usage_error("%s expects auto or structure, got '%s'", flag, v);
    }
    if (strcmp(v, "memory") == 0) {   /* --capture-to */
        opt->sink = LLORCH_CAPTURE_SINK_MEMORY;
        return 0;
    }
    if (strcmp(v, "disk") == 0) {
        opt->sink = LLORCH_CAPTURE_SINK_WRITE;
        return 0;
    }
    return usage_error("%s expects disk or memory, got '%s'", flag, v);
}

/* Flags with a value. Returns -1 if arg is not one of them. */
static int parse_valued(const char *arg, const char *v, struct extractor_options *opt) {
    int q = 0;
    if (is(arg, "-m", "--model")) { opt->model = v; return 0; }
    if (is(arg, "-p", "--prompt")) { opt->prompt = v; return 0; }
    if (is(arg, "-f", "--file")) { opt->prompt_file = v; return 0; }
    if (is(arg, NULL, "--tokens")) { opt->tokens = v; return 0; }
    if (is(arg, "-o", "--output")) { opt->output = v; return 0; }
    if (is(arg, NULL, "--checkpoints")) { opt->checkpoints = v; return 0; }
    if (is(arg, NULL, "--layers")) { opt->layers = v; return 0; }
    if (is(arg, "-ctk", "--cache-type-k")) { opt->cache_type_k = v; return 0; }
    if (is(arg, NULL, "--rpc")) { opt->rpc = v; return 0; }
    if (is(arg, NULL, "--dump-graph")) { opt->dump_graph = v; return 0; }
    if (is(arg, "-ctv", "--cache-type-v")) { opt->cache_type_v = v; return 0; }
    if (is(arg, NULL, "--graph-regex")) {
        if (opt->n_graph_regex == (int) (sizeof opt->graph_regex / sizeof opt->graph_regex[0])) {
            return usage_error("too many %s flags (at most 16)%s", arg, "");
        }
        opt->graph_regex[opt->n_graph_regex++] = v;
        return 0;
    }
    if (is(arg, "-n", "--n-predict")) { return parse_int(arg, v, 0, &opt->n_predict); }
    if (is(arg, "-t", "--threads")) { return parse_int(arg, v, 1, &opt->threads); }
    if (is(arg, "-c", "--ctx-size")) { return parse_int(arg, v, 0, &opt->n_ctx); }
    if (is(arg, "-b", "--batch-size")) { return parse_int(arg, v, 1, &opt->n_batch); }
    if (is(arg, "-ub", "--ubatch-size")) { return parse_int(arg, v, 1, &opt->n_ubatch); }
    if (is(arg, "-ngl", "--n-gpu-layers")) { return parse_int(arg, v, -1, &opt->n_gpu_layers); }
    if (is(arg, NULL, "--seed")) { int s; q = parse_int(arg, v, 0, &s); opt->seed = (unsigned) s; return q; }
    if (is(arg, NULL, "--queue-mb")) { int mb; q = parse_int(arg, v, 1, &mb); opt->queue_mb = (size_t) mb; return q; }
    if (is(arg, "-fa", "--flash-attn") || is(arg, NULL, "--dtype") || is(arg, NULL, "--identify") ||
        is(arg, NULL, "--capture-to") || is(arg, NULL, "--format")) {
        return parse_enum_value(arg, v, opt);
    }
    return -1;
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
    if (inputs != 1) {
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
    if (opt->stop_at_nan && !opt->stats) {
        fprintf(stderr, PROG ": --stop-at-nan works with --stats; add --stats\n");
        return 2;
    }
    return 0;
}

int extractor_parse_options(int argc, char **argv, struct extractor_options *opt) {
    set_defaults(opt);
    char *pos[8];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (is(arg, "-h", "--help")) {
            print_help();
            return 1;
        }
        if (is(arg, NULL, "--version")) {
            return 3;   /* the caller prints the version: it knows the llama.cpp build */
        }
        if (parse_switch(arg, opt)) {
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            if (i + 1 >= argc) {
                return usage_error("%s needs a value%s; see --help", arg, "");
            }
            int rc = parse_valued(arg, argv[i + 1], opt);
            if (rc < 0) {
                return usage_error("unknown option '%s'%s; see --help", arg, "");
            }
            if (rc != 0) {
                return 2;
            }
            i++;
            continue;
        }
        if (n_pos < (int) (sizeof pos / sizeof pos[0])) {
            pos[n_pos] = argv[i];
        }
        n_pos++;
    }
    int rc = apply_positionals(pos, n_pos, opt);
    return rc != 0 ? rc : check_required(opt);
}

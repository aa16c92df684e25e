/*
 * ref_engine.c - llorch-ref-engine: runs a token sequence through a GPT-2 or
 * llama GGUF model with the plain-C forward pass of ref_forward.c and
 * writes its checkpoints as a dump (docs/FORMAT.md), through the library's
 * writer API.
 *
 *   llorch-ref-engine -m MODEL.gguf (--tokens 1,2,3 | --tokens-file t.npy) -o DIR
 *                     [-n N] [-ub N] [--kv-type f32|f16] [--checkpoints LIST]
 *                     [--layers RANGES] [--text] [--gelu tanh|f16-table] [--fault SPEC]
 *
 * Exit status: 0 done, 1 failed while running (e.g. a write error),
 * 2 bad input (model, tokens, flags), with one line saying what to fix.
 */
#include "cli.h"
#include "llorch_checkpoint.h"
#include "ref_checkpoints.h"
#include "ref_forward.h"
#include "ref_input.h"
#include "ref_model.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM        "llorch-ref-engine"
#define PRODUCER       PROGRAM " " LLORCH_CKPT_VERSION
#define EXIT_BAD_INPUT 2

struct cli {
    const char        *model;
    int32_t           *token_ids; /* --tokens 1,2,3, parsed     */
    int                n_token_ids;
    const char        *tokens_file; /* --tokens-file tokens.npy  */
    const char        *out_dir;
    const char        *checkpoints; /* --checkpoints, default all */
    const char        *layers;      /* --layers, default all      */
    struct ref_options options;     /* fault, GELU flavour        */
    int                n_predict;   /* -n: tokens to generate     */
    int                n_ubatch;    /* -ub: 0 = the whole prompt  */
    bool               kv_f16;
    bool               text;
};

/* Everything a run needs, gathered after the inputs are checked. */
struct engine {
    struct cli             cli;
    struct ref_model       model;
    int32_t               *tokens; /* prompt, then generated tokens */
    int                    n_prompt;
    int                    n_tokens;
    llorch_ckpt_selection *selection;
    llorch_ckpt_writer    *writer;
    struct ref_kv_cache    cache;
    float                 *logits; /* [n_ubatch][n_vocab] of the last step */
    char                   settings[512];
};

static void usage(FILE *out) {
    fprintf(out, "usage: llorch-ref-engine -m MODEL.gguf (--tokens 1,2,3 | --tokens-file tokens.npy) -o DUMP_DIR\n"
                 "                         [-n N] [-ub N] [--kv-type f32|f16] [--checkpoints LIST]\n"
                 "                         [--layers RANGES] [--text] [--gelu tanh|f16-table] [--fault SPEC]\n"
                 "\n"
                 "Runs the tokens through a gpt2 or llama model with a plain C forward pass and\n"
                 "writes its intermediate tensors as a checkpoint dump (docs/FORMAT.md).\n"
                 "\n"
                 "  -m MODEL.gguf        model (F32, F16, BF16, Q8_0 or Q4_K weights)\n"
                 "  --tokens LIST        token ids, comma separated\n"
                 "  --tokens-file FILE   token ids as a 1-D int32 .npy file\n"
                 "  -o DUMP_DIR          output directory (new or empty)\n"
                 "  -n N                 generate N more tokens greedily, one step each (default 0)\n"
                 "  -ub N                process the prompt in steps of at most N tokens (default: one step)\n"
                 "  --kv-type T          f32 (default) or f16: round K and V (and Q, P in attention) to f16\n"
                 "  --checkpoints LIST   names or numbers 1-6, 'extras', 'all' (default all)\n"
                 "  --layers RANGES      'all' (default) or ranges such as 0-3,11\n"
                 "  --text               also write every tensor as .txt\n"
                 "  --gelu G             gpt2's GELU: tanh (default, exact float32) or f16-table, as\n"
                 "                       llama.cpp's CPU backend computes it (f16 input, f16 table)\n"
                 "  --fault SPEC         one deliberate bug: eps:L, swap-heads:L, rope-offset:L, no-attn-bias:L\n");
}

static int bad_input(const char *message) {
    fprintf(stderr, "llorch-ref-engine: %s\n", message);
    return EXIT_BAD_INPUT;
}

/* ---- command line ------------------------------------------------------ */

enum option_id {
    OPT_TEXT,
    OPT_MODEL,
    OPT_TOKENS,
    OPT_TOKENS_FILE,
    OPT_OUT,
    OPT_CHECKPOINTS,
    OPT_LAYERS,
    OPT_N_PREDICT,
    OPT_UBATCH,
    OPT_KV_TYPE,
    OPT_GELU,
    OPT_FAULT,
};

static const char *const cli_options[] = {
    "--text",    "-m|--model=",     "--tokens=",          "--tokens-file=", "-o|--output=", "--checkpoints=",
    "--layers=", "-n|--n-predict=", "-ub|--ubatch-size=", "--kv-type=",     "--gelu=",      "--fault=",
    NULL};

static int parse_count(const char *flag, const char *value, long min, int *out) {
    long v;
    int  rc = cli_int(PROGRAM, flag, value, min, 1000000, &v);
    if (rc == 0) {
        *out = (int) v;
    }
    return rc;
}

/* One option with its value. Returns 0 or an exit status. */
static int apply_option(void *ctx, int id, const char *flag, const char *value) {
    struct cli  *cli = ctx;
    const char **strings[] = {NULL,          &cli->model,       NULL,        &cli->tokens_file,
                              &cli->out_dir, &cli->checkpoints, &cli->layers};
    char         err[512];
    if (id == CLI_POSITIONAL) {
        return cli_usage_error(PROGRAM, "unexpected argument '%s'; see --help", value);
    }
    switch (id) {
        case OPT_TEXT:
            cli->text = true;
            return 0;
        case OPT_N_PREDICT:
            return parse_count(flag, value, 0, &cli->n_predict);
        case OPT_UBATCH:
            return parse_count(flag, value, 1, &cli->n_ubatch);
        case OPT_KV_TYPE:
            if (strcmp(value, "f32") != 0 && strcmp(value, "f16") != 0) {
                return cli_usage_error(PROGRAM, "--kv-type '%s' is not supported; use f32 or f16", value);
            }
            cli->kv_f16 = strcmp(value, "f16") == 0;
            return 0;
        case OPT_GELU:
            if (strcmp(value, "tanh") != 0 && strcmp(value, "f16-table") != 0) {
                return cli_usage_error(PROGRAM, "--gelu '%s' is not supported; use tanh or f16-table", value);
            }
            cli->options.gelu_f16_table = strcmp(value, "f16-table") == 0;
            return 0;
        case OPT_FAULT:
            return ref_parse_fault(value, &cli->options.fault, err, sizeof err) == 0 ? 0 : bad_input(err);
        case OPT_TOKENS:
            free(cli->token_ids);
            cli->token_ids = NULL;
            return cli_token_list(PROGRAM, flag, value, &cli->token_ids, &cli->n_token_ids);
        default:
            *strings[id] = value;
            return 0;
    }
}

/* Returns 0, or an exit status (EXIT_SUCCESS for --help). */
static int parse_args(struct cli *cli, int argc, char **argv) {
    *cli = (struct cli){.checkpoints = "all", .layers = "all", .options = {.fault = {REF_FAULT_NONE, -1}}};
    int rc = cli_parse(PROGRAM, cli_options, argc, argv, apply_option, cli);
    if (rc == CLI_HELP || rc == CLI_VERSION) {
        if (rc == CLI_HELP) {
            usage(stdout);
        } else {
            printf("%s\n", PRODUCER);
        }
        return -1;
    }
    if (rc != 0) {
        return rc;
    }
    if (cli->model == NULL || cli->out_dir == NULL) {
        return bad_input("-m MODEL.gguf and -o DUMP_DIR are required; see --help");
    }
    if ((cli->token_ids == NULL) == (cli->tokens_file == NULL)) {
        return bad_input("give the input as exactly one of --tokens 1,2,3 or --tokens-file tokens.npy");
    }
    return 0;
}

/* ---- checking the inputs against the model ----------------------------- */

static int read_tokens(struct engine *e, char *err, size_t err_size) {
    int32_t *prompt = NULL;
    int      rc = 0;
    if (e->cli.token_ids != NULL) {
        prompt = e->cli.token_ids; /* parsed with the command line */
        e->n_prompt = e->cli.n_token_ids;
        e->cli.token_ids = NULL;
    } else {
        rc = ref_read_token_file(e->cli.tokens_file, &prompt, &e->n_prompt, err, err_size);
    }
    if (rc != 0) {
        return -1;
    }
    rc = ref_check_tokens(prompt, e->n_prompt, e->model.hp.n_vocab, err, err_size);
    /* room for the generated tokens after the prompt */
    e->tokens = realloc(prompt, (size_t) (e->n_prompt + e->cli.n_predict) * sizeof *e->tokens);
    if (e->tokens == NULL) {
        free(prompt);
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    e->n_tokens = e->n_prompt;
    return rc;
}

/* gpt2 has one learned position embedding per position: no more. */
static int check_length(const struct engine *e, char *err, size_t err_size) {
    int n_total = e->n_prompt + e->cli.n_predict;
    if (e->model.hp.arch == REF_ARCH_GPT2 && n_total > e->model.hp.n_ctx_train) {
        snprintf(err, err_size,
                 "%d prompt + %d generated tokens exceed the model's %d positions; "
                 "give fewer tokens or a smaller -n",
                 e->n_prompt, e->cli.n_predict, e->model.hp.n_ctx_train);
        return -1;
    }
    return 0;
}

static int open_selection(struct engine *e, char *err, size_t err_size) {
    e->selection = llorch_ckpt_selection_create(e->cli.checkpoints, e->cli.layers, err, err_size);
    return e->selection != NULL && llorch_ckpt_selection_check(e->selection, e->model.hp.n_layer, err, err_size) == 0
               ? 0
               : -1;
}

static int open_writer(struct engine *e, char *err, size_t err_size) {
    struct llorch_ckpt_writer_options options = {.text = e->cli.text};
    e->writer = llorch_ckpt_writer_open(e->cli.out_dir, &options, err, err_size);
    return e->writer != NULL ? 0 : -1;
}

/* Loads the model and checks every input against it; exit status or 0. */
static int prepare(struct engine *e) {
    char err[1024];
    if (ref_model_load(&e->model, e->cli.model, err, sizeof err) != 0 || read_tokens(e, err, sizeof err) != 0 ||
        check_length(e, err, sizeof err) != 0 ||
        ref_check_fault(&e->cli.options.fault, &e->model, err, sizeof err) != 0 ||
        open_selection(e, err, sizeof err) != 0 || open_writer(e, err, sizeof err) != 0) {
        return bad_input(err);
    }
    return 0;
}

/* ---- the run ----------------------------------------------------------- */

/* What changes the numbers, for the manifest's settings. */
static void describe_settings(struct engine *e) {
    const char             *kv = e->cli.kv_f16 ? "f16" : "f32";
    int                     n_ubatch = e->cli.n_ubatch > 0 ? e->cli.n_ubatch : e->n_prompt;
    const struct ref_fault *fault = &e->cli.options.fault;
    char                    fault_spec[64] = "none";
    if (fault->kind != REF_FAULT_NONE) {
        snprintf(fault_spec, sizeof fault_spec, "%s:%d", ref_fault_name(fault->kind), fault->layer);
    }
    int n =
        snprintf(e->settings, sizeof e->settings,
                 "{\"type_k\": \"%s\", \"type_v\": \"%s\", \"n_ubatch\": %d, \"n_predict\": %d, "
                 "\"threads\": 1, \"flash_attn\": false, \"accumulation\": \"float32\", "
                 "\"gelu\": \"%s\", \"fault\": \"%s\"",
                 kv, kv, n_ubatch, e->cli.n_predict, e->cli.options.gelu_f16_table ? "f16-table" : "tanh", fault_spec);
    if (fault->kind == REF_FAULT_EPS) {
        n += snprintf(e->settings + n, sizeof e->settings - (size_t) n, ", \"fault_eps\": %g",
                      (double) REF_FAULT_EPS_VALUE);
    }
    snprintf(e->settings + n, sizeof e->settings - (size_t) n, "}");
}

static int set_run(struct engine *e) {
    const struct ref_hparams *hp = &e->model.hp;
    struct llorch_ckpt_run    run = {
           .producer = PRODUCER,
           .model_path = e->model.path,
           .model_size = e->model.file_size,
           .architecture = hp->arch_name,
           .n_layer = hp->n_layer,
           .n_embd = hp->n_embd,
           .n_head = hp->n_head,
           .n_head_kv = hp->n_head_kv,
           .n_vocab = hp->n_vocab,
           .tokens = e->tokens,
           .n_tokens = e->n_tokens,
           .settings_json = e->settings,
    };
    return llorch_ckpt_writer_set_run(e->writer, &run);
}

/* gpt2 has no RoPE: the pre-RoPE checkpoints are recorded as missing. */
static int note_missing(struct engine *e) {
    if (e->model.hp.arch != REF_ARCH_GPT2) {
        return 0;
    }
    const enum llorch_ckpt_kind pre_rope[] = {LLORCH_CKPT_QCUR_PRE_ROPE, LLORCH_CKPT_KCUR_PRE_ROPE};
    for (int il = 0; il < e->model.hp.n_layer; il++) {
        for (int i = 0; i < 2; i++) {
            if (llorch_ckpt_selection_has(e->selection, pre_rope[i], il) &&
                llorch_ckpt_writer_note_missing(e->writer, pre_rope[i], il, "gpt2 applies no RoPE") != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        best = x[i] > x[best] ? i : best;
    }
    return best;
}

/* Runs tokens[pos_start .. pos_start+n-1] as step `step`. */
static int run_step(struct engine *e, int step, int pos_start, int n) {
    struct ref_checkpoints ck = {
        .writer = e->writer,
        .selection = e->selection,
        .step = step,
        .pos_start = pos_start,
        .n_pos = n,
    };
    int rc = ref_forward(&e->model, &e->cache, &e->cli.options, &e->tokens[pos_start], n, pos_start, &ck, e->logits);
    if (rc != 0) {
        fprintf(stderr, "llorch-ref-engine: out of memory in step %d\n", step);
        return -1;
    }
    if (ck.failed) {
        fprintf(stderr, "llorch-ref-engine: %s\n", llorch_ckpt_writer_error(e->writer));
        return -1;
    }
    return 0;
}

/* The prompt in steps of n_ubatch tokens, then one step per generated token. */
static int run_steps(struct engine *e) {
    int n_ubatch = e->cli.n_ubatch > 0 ? e->cli.n_ubatch : e->n_prompt;
    int step = 0, n_last = 0;
    for (int pos = 0; pos < e->n_prompt; pos += n_last, step++) {
        n_last = e->n_prompt - pos < n_ubatch ? e->n_prompt - pos : n_ubatch;
        if (run_step(e, step, pos, n_last) != 0) {
            return -1;
        }
    }
    for (int i = 0; i < e->cli.n_predict; i++, step++) {
        const float *last = &e->logits[(size_t) (n_last - 1) * e->model.hp.n_vocab];
        e->tokens[e->n_tokens++] = argmax(last, e->model.hp.n_vocab);
        n_last = 1;
        if (run_step(e, step, e->n_tokens - 1, 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static int run(struct engine *e) {
    int n_ubatch = e->cli.n_ubatch > 0 && e->cli.n_ubatch < e->n_prompt ? e->cli.n_ubatch : e->n_prompt;
    e->logits = malloc((size_t) n_ubatch * e->model.hp.n_vocab * sizeof(float));
    if (e->logits == NULL ||
        ref_kv_cache_init(&e->cache, &e->model.hp, e->n_prompt + e->cli.n_predict, e->cli.kv_f16) != 0) {
        fprintf(stderr, "llorch-ref-engine: out of memory for the KV cache and logits\n");
        return EXIT_FAILURE;
    }
    describe_settings(e);
    bool ok = set_run(e) == 0 && note_missing(e) == 0;
    if (ok && run_steps(e) != 0) {
        /* the files written so far are whole: say so in a manifest */
        llorch_ckpt_writer_finish(e->writer, false, "the engine failed during a step");
        return EXIT_FAILURE;
    }
    /* set_run again, now with the generated tokens */
    if (!ok || set_run(e) != 0 || llorch_ckpt_writer_finish(e->writer, true, "ok") != 0) {
        fprintf(stderr, "llorch-ref-engine: %s\n", llorch_ckpt_writer_error(e->writer));
        return EXIT_FAILURE;
    }
    fprintf(stderr, "llorch-ref-engine: %zu files, %zu bytes in %s\n", llorch_ckpt_writer_files(e->writer),
            llorch_ckpt_writer_bytes(e->writer), e->cli.out_dir);
    return EXIT_SUCCESS;
}

static void engine_free(struct engine *e) {
    llorch_ckpt_writer_free(e->writer);
    llorch_ckpt_selection_free(e->selection);
    ref_kv_cache_free(&e->cache);
    ref_model_free(&e->model);
    free(e->tokens);
    free(e->cli.token_ids);
    free(e->logits);
}

int main(int argc, char **argv) {
    static struct engine e; /* static: zeroed, and off the stack */
    int                  rc = parse_args(&e.cli, argc, argv);
    if (rc != 0) {
        free(e.cli.token_ids);
        return rc < 0 ? EXIT_SUCCESS : rc;
    }
    rc = prepare(&e);
    if (rc == 0) {
        rc = run(&e);
    }
    engine_free(&e);
    return rc;
}

/*
 * ref_engine.c - llorch-ref-engine: runs token sequences through a GPT-2 or
 * llama GGUF model with the plain-C forward pass of ref_forward.c and
 * writes its checkpoints as a dump (docs/FORMAT.md), through the library's
 * writer API. Several sequences (--tokens "1,2;3,4") are decoded together
 * in one batch with a unified KV cache, in the extractor's --parallel
 * order (ref_sequences.h).
 *
 *   llorch-ref-engine -m MODEL.gguf (--tokens 1,2,3[;4,5...] | --tokens-file t.npy) -o DIR
 *                     [-n N] [-ub N] [--kv-type f32|f16] [--checkpoints LIST]
 *                     [--layers RANGES] [--text] [--gelu tanh|f16-table] [--fault SPEC]
 *                     [--feed REF_DUMP]
 *
 * --feed computes each layer from the reference dump's input to it (its
 * residual stream; ref_feed.h, docs/FORMAT.md "Fed runs").
 *
 * Exit status: 0 done, 1 failed while running (e.g. a write error),
 * 2 bad input (model, tokens, flags), with one line saying what to fix.
 */
#include "cli.h"
#include "llorch_checkpoint.h"
#include "ref_checkpoints.h"
#include "ref_feed.h"
#include "ref_forward.h"
#include "ref_input.h"
#include "ref_model.h"
#include "ref_sequences.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM        "llorch-ref-engine"
#define PRODUCER       PROGRAM " " LLORCH_CKPT_VERSION
#define EXIT_BAD_INPUT 2

struct cli {
    const char        *model;
    struct ref_prompts prompts;     /* --tokens 1,2,3;4,5, parsed */
    const char        *tokens_file; /* --tokens-file tokens.npy  */
    const char        *out_dir;
    const char        *checkpoints; /* --checkpoints, default all */
    const char        *layers;      /* --layers, default all      */
    const char        *feed;        /* --feed REF_DUMP, or NULL   */
    struct ref_options options;     /* fault, GELU flavour        */
    int                n_predict;   /* -n: tokens to generate     */
    int                n_ubatch;    /* -ub: 0 = the whole prompt  */
    bool               kv_f16;
    bool               text;
};

/* Everything a run needs, gathered after the inputs are checked. */
struct engine {
    struct cli                  cli;
    struct ref_model            model;
    struct ref_sequences        seqs; /* the tokens, and the order of the steps */
    llorch_ckpt_selection      *selection;
    llorch_ckpt_writer         *writer;
    struct ref_kv_cache         cache;
    struct ref_feed             feed;                         /* --feed: the reference's rows */
    float                      *logits;                       /* [rows of the largest step][n_vocab] of the last step */
    struct llorch_ckpt_sequence described[REF_MAX_SEQUENCES]; /* the manifest's sequences */
    char                        settings[512];
    char                        fingerprint[LLORCH_CKPT_FINGERPRINT_SIZE]; /* "" until computed, or none */
    bool                        fingerprinted;
};

static void usage(FILE *out) {
    fprintf(out, "usage: llorch-ref-engine -m MODEL.gguf (--tokens 1,2,3[;4,5...] | --tokens-file tokens.npy)\n"
                 "                         -o DUMP_DIR [-n N] [-ub N] [--kv-type f32|f16] [--checkpoints LIST]\n"
                 "                         [--layers RANGES] [--text] [--gelu tanh|f16-table] [--fault SPEC]\n"
                 "                         [--feed REF_DUMP]\n"
                 "\n"
                 "Runs the tokens through a gpt2, llama or qwen2 model with a plain C forward pass and\n"
                 "writes its intermediate tensors as a checkpoint dump (docs/FORMAT.md).\n"
                 "\n"
                 "  -m, --model FILE     model (F32, F16, BF16, Q8_0 or Q4_K weights)\n"
                 "  --tokens LISTS       token ids, comma separated; several lists split by ';' (up to 256)\n"
                 "                       are as many sequences decoded together in one batch, in the order\n"
                 "                       of llorch-checkpoint-extractor --parallel N (the prompts one after\n"
                 "                       another, then one token of every sequence per step), with one\n"
                 "                       unified KV cache; every tensor is then written per sequence\n"
                 "  --tokens-file FILE   token ids as a 1-D int32 .npy file (one sequence)\n"
                 "  -o, --output DIR     output directory (new or empty)\n"
                 "  -n, --n-predict N    generate N more tokens greedily, one step each (default 0)\n"
                 "  -ub, --ubatch-size N process the prompts in steps of at most N tokens (default: one step)\n"
                 "  --kv-type T          f32 (default) or f16: round K and V (and Q, P in attention) to f16\n"
                 "  --checkpoints LIST   names or numbers 1-6, 'extras', 'all' (default all)\n"
                 "  --layers RANGES      'all' (default) or ranges such as 0-3,11\n"
                 "  --text               also write every tensor as .txt\n"
                 "  --gelu G             gpt2's GELU: tanh (default, exact float32) or f16-table, as\n"
                 "                       llama.cpp's CPU backend computes it (f16 input, f16 table)\n"
                 "  --fault SPEC         one deliberate bug: eps:L, swap-heads:L, rope-offset:L, no-attn-bias:L,\n"
                 "                       mask:L (several sequences: layer L's mask ignores sequence ids),\n"
                 "                       ffn-eps:L (the FFN norm's epsilon); eps:L=1e-4 sets the epsilon\n"
                 "                       (default 0.1) for a bug as small as wished\n"
                 "  --feed REF_DUMP      compute each layer from REF_DUMP's input to it: after writing its own\n"
                 "                       embd / l_out / ffn_inp, replace those rows by the reference's (same\n"
                 "                       model and tokens; -n follows the reference's tokens); the manifest\n"
                 "                       says \"fed\" (docs/FORMAT.md, \"Fed runs\")\n"
                 "  -h, --help           this text\n"
                 "  --version            the version\n");
}

static int bad_input(const char *message) {
    fprintf(stderr, "llorch-ref-engine: error: %s\n", message);
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
    OPT_FEED,
};

static const char *const cli_options[] = {"--text",
                                          "-m|--model=",
                                          "--tokens=",
                                          "--tokens-file=",
                                          "-o|--output=",
                                          "--checkpoints=",
                                          "--layers=",
                                          "-n|--n-predict=",
                                          "-ub|--ubatch-size=",
                                          "--kv-type=",
                                          "--gelu=",
                                          "--fault=",
                                          "--feed=",
                                          NULL};

static int parse_count(const char *flag, const char *value, long min, int *out) {
    long v;
    int  rc = cli_int(PROGRAM, flag, value, min, 1000000, &v);
    if (rc == 0) {
        *out = (int) v;
    }
    return rc;
}

/* --tokens "1,2,3;4,5": one list per sequence; the last --tokens counts. */
static int parse_token_lists(struct cli *cli, const char *flag, const char *value) {
    char   err[512];
    char  *lists[REF_MAX_SEQUENCES];
    int    n_lists = 0, rc = 0;
    size_t size = strlen(value) + 1;
    char  *copy = malloc(size);
    ref_prompts_free(&cli->prompts);
    if (copy == NULL) {
        return bad_input("out of memory reading --tokens");
    }
    memcpy(copy, value, size);
    if (ref_split_token_lists(copy, lists, &n_lists, err, sizeof err) != 0) {
        rc = bad_input(err);
    }
    for (int i = 0; i < n_lists && rc == 0; i++) {
        rc = cli_token_list(PROGRAM, flag, lists[i], &cli->prompts.ids[i], &cli->prompts.n_ids[i]);
        cli->prompts.count += rc == 0;
    }
    free(copy);
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
            return parse_token_lists(cli, flag, value);
        case OPT_FEED:
            cli->feed = value;
            return 0;
        default:
            *strings[id] = value;
            return 0;
    }
}

/* Returns 0, or an exit status (EXIT_SUCCESS for --help). */
static int parse_args(struct cli *cli, int argc, char **argv) {
    *cli = (struct cli){
        .checkpoints = "all", .layers = "all", .options = {.fault = {REF_FAULT_NONE, -1, REF_FAULT_EPS_VALUE}}};
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
    if ((cli->prompts.count == 0) == (cli->tokens_file == NULL)) {
        return bad_input("give the input as exactly one of --tokens 1,2,3 or --tokens-file tokens.npy");
    }
    return 0;
}

/* ---- checking the inputs against the model ----------------------------- */

/* The prompts, checked against the vocabulary, become the sequences. */
static int read_tokens(struct engine *e, char *err, size_t err_size) {
    struct ref_prompts *prompts = &e->cli.prompts;
    if (e->cli.tokens_file != NULL) {
        if (ref_read_token_file(e->cli.tokens_file, &prompts->ids[0], &prompts->n_ids[0], err, err_size) != 0) {
            return -1;
        }
        prompts->count = 1;
    }
    for (int i = 0; i < prompts->count; i++) {
        char why[256];
        if (ref_check_tokens(prompts->ids[i], prompts->n_ids[i], e->model.hp.n_vocab, why, sizeof why) != 0) {
            if (prompts->count > 1) { /* say which list */
                snprintf(err, err_size, "--tokens list %d: %s", i + 1, why);
            } else {
                snprintf(err, err_size, "%s", why);
            }
            return -1;
        }
    }
    if (ref_sequences_init(&e->seqs, prompts, e->cli.n_predict, e->cli.n_ubatch) != 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

/* gpt2 has one learned position embedding per position: no more. */
static int check_length(const struct engine *e, char *err, size_t err_size) {
    for (int i = 0; i < e->seqs.n_seqs && e->model.hp.arch == REF_ARCH_GPT2; i++) {
        const struct ref_sequence *q = &e->seqs.seqs[i];
        char                       which[32] = "";
        if (q->n_prompt + e->cli.n_predict <= e->model.hp.n_ctx_train) {
            continue;
        }
        if (e->seqs.n_seqs > 1) {
            snprintf(which, sizeof which, "sequence %d: ", i);
        }
        snprintf(err, err_size,
                 "%s%d prompt + %d generated tokens exceed the model's %d positions; "
                 "give fewer tokens or a smaller -n",
                 which, q->n_prompt, e->cli.n_predict, e->model.hp.n_ctx_train);
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

static const char *model_fingerprint(struct engine *e);

/* --feed: the reference's rows for every layer and token, checked against
 * the model and the tokens before anything is written. */
static int open_feed(struct engine *e, char *err, size_t err_size) {
    if (e->cli.feed == NULL) {
        return 0;
    }
    if (ref_feed_open(&e->feed, e->cli.feed, &e->model, model_fingerprint(e), &e->seqs, e->cli.n_predict, err,
                      err_size) != 0) {
        return -1;
    }
    e->cli.options.feed = &e->feed;
    return 0;
}

/* Loads the model and checks every input against it; exit status or 0. */
static int prepare(struct engine *e) {
    char err[1536];
    if (ref_model_load(&e->model, e->cli.model, err, sizeof err) != 0 || read_tokens(e, err, sizeof err) != 0 ||
        check_length(e, err, sizeof err) != 0 ||
        ref_check_fault(&e->cli.options.fault, &e->model, e->seqs.n_seqs, err, sizeof err) != 0 ||
        open_feed(e, err, sizeof err) != 0 || open_selection(e, err, sizeof err) != 0 ||
        open_writer(e, err, sizeof err) != 0) {
        return bad_input(err);
    }
    return 0;
}

/* ---- the run ----------------------------------------------------------- */

/* What changes the numbers, for the manifest's settings. */
static void describe_settings(struct engine *e) {
    const char             *kv = e->cli.kv_f16 ? "f16" : "f32";
    int                     n_ubatch = e->cli.n_ubatch > 0 ? e->cli.n_ubatch : e->seqs.n_prompt;
    const struct ref_fault *fault = &e->cli.options.fault;
    char                    fault_spec[64] = "none";
    if (fault->kind != REF_FAULT_NONE) {
        snprintf(fault_spec, sizeof fault_spec, "%s:%d", ref_fault_name(fault->kind), fault->layer);
    }
    int n =
        snprintf(e->settings, sizeof e->settings,
                 "{\"type_k\": \"%s\", \"type_v\": \"%s\", \"n_ubatch\": %d, \"n_predict\": %d, "
                 "\"threads\": 1, \"flash_attn\": false, \"weight_type\": \"f32\", \"accumulation\": \"float32\", "
                 "\"gelu\": \"%s\", \"fault\": \"%s\"",
                 kv, kv, n_ubatch, e->cli.n_predict, e->cli.options.gelu_f16_table ? "f16-table" : "tanh", fault_spec);
    if (e->cli.options.gelu_f16_table) { /* docs/FORMAT.md, "Settings that change numbers" */
        n += snprintf(e->settings + n, sizeof e->settings - (size_t) n, ", \"ffn_activation_type\": \"f16\"");
    }
    if (fault->kind == REF_FAULT_EPS || fault->kind == REF_FAULT_FFN_EPS) {
        n += snprintf(e->settings + n, sizeof e->settings - (size_t) n, ", \"fault_eps\": %g", (double) fault->value);
    }
    if (e->seqs.n_seqs > 1) { /* the extractor's --parallel settings */
        n += snprintf(e->settings + n, sizeof e->settings - (size_t) n, ", \"n_parallel\": %d, \"kv_unified\": true",
                      e->seqs.n_seqs);
    }
    snprintf(e->settings + n, sizeof e->settings - (size_t) n, "}");
}

/* The model's fingerprint for the manifest, computed once; NULL (with a
 * warning) where the file cannot be read again. */
static const char *model_fingerprint(struct engine *e) {
    char err[512];
    if (!e->fingerprinted) {
        e->fingerprinted = true;
        if (llorch_ckpt_gguf_fingerprint(e->model.path, e->fingerprint, sizeof e->fingerprint, err, sizeof err) != 0) {
            fprintf(stderr, "llorch-ref-engine: warning: %s (the dump gets no model fingerprint)\n", err);
            e->fingerprint[0] = '\0';
        }
    }
    return e->fingerprint[0] ? e->fingerprint : NULL;
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
           .tokens = e->seqs.tokens,
           .n_tokens = e->seqs.n_tokens,
           .settings_json = e->settings,
           .model_fingerprint = model_fingerprint(e),
           .fed_json = e->cli.options.feed != NULL ? e->feed.fed_json : NULL,
    };
    if (e->seqs.n_seqs > 1) { /* each sequence's tokens in position order */
        for (int i = 0; i < e->seqs.n_seqs; i++) {
            const struct ref_sequence *q = &e->seqs.seqs[i];
            e->described[i] = (struct llorch_ckpt_sequence){.seq = i, .tokens = q->tokens, .n_tokens = q->n_tokens};
        }
        run.sequences = e->described;
        run.n_sequences = e->seqs.n_seqs;
    }
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

/* Runs one step: the batch's tokens, at their positions, in their sequences. */
static int run_step(struct engine *e, int step, const struct ref_batch *batch) {
    struct ref_checkpoints ck = {
        .writer = e->writer,
        .selection = e->selection,
        .step = step,
        .in_seq = e->seqs.n_seqs > 1,
    };
    int rc = ref_forward(&e->model, &e->cache, &e->cli.options, batch, &ck, e->logits);
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

/* The prompts in steps of n_ubatch tokens, then one step per generated
 * token of every sequence (ref_sequences.h). */
static int run_steps(struct engine *e) {
    struct ref_batch batch;
    for (int step = 0; ref_sequences_next(&e->seqs, &batch); step++) {
        if (run_step(e, step, &batch) != 0) {
            return -1;
        }
        ref_sequences_take_logits(&e->seqs, &batch, e->logits, e->model.hp.n_vocab);
        if (e->cli.options.feed != NULL && ref_feed_take_tokens(&e->feed, &e->seqs, &batch) > 0) {
            fprintf(stderr,
                    "llorch-ref-engine: warning: step %d: the engine's own next token differs from the reference's; "
                    "decoding the reference's, as a fed run does\n",
                    step);
        }
    }
    return 0;
}

static int run(struct engine *e) {
    int n_cells = e->seqs.n_prompt + e->cli.n_predict * e->seqs.n_seqs;
    e->logits = malloc((size_t) e->seqs.max_rows * e->model.hp.n_vocab * sizeof(float));
    if (e->logits == NULL || ref_kv_cache_init(&e->cache, &e->model.hp, n_cells, e->cli.kv_f16) != 0) {
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
    ref_feed_free(&e->feed);
    ref_model_free(&e->model);
    ref_sequences_free(&e->seqs);
    ref_prompts_free(&e->cli.prompts);
    free(e->logits);
}

int main(int argc, char **argv) {
    static struct engine e; /* static: zeroed, and off the stack */
    int                  rc = parse_args(&e.cli, argc, argv);
    if (rc != 0) {
        ref_prompts_free(&e.cli.prompts);
        return rc < 0 ? EXIT_SUCCESS : rc;
    }
    rc = prepare(&e);
    if (rc == 0) {
        rc = run(&e);
    }
    engine_free(&e);
    return rc;
}

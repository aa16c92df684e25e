/*
 * make-tiny-model.c - llorch-make-tiny-model: writes a small gpt2, llama or
 * qwen2 GGUF with seeded random weights, for tests and for checking engines
 * against llama.cpp without downloading a model.
 *
 * Exit status: 0 written, 1 failed while writing (no file left), 2 the
 * command line or an input file is wrong (nothing written).
 */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"
#include "llorch_checkpoint.h"
#include "tiny_model.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"

#ifndef LLAMA_VOCAB_DIR
#error "LLAMA_VOCAB_DIR must be defined (the folder of ggml-vocab-gpt-2.gguf)"
#endif

#define PROG "llorch-make-tiny-model"

/* Generous upper bounds: they only reject typos such as --embd 40960000. */
#define MAX_LAYERS   1024
#define MAX_EMBD     65536
#define MAX_FF       (1 << 20)
#define MAX_CTX      (1 << 20)
#define MAX_PATH_LEN 4000

static void usage(FILE *out) {
    fprintf(out,
            "usage: " PROG " --arch gpt2|llama|qwen2 -o FILE [options]\n"
            "\n"
            "Writes a GGUF model with seeded random weights that llama.cpp loads and runs.\n"
            "The same options give the same bytes on every machine.\n"
            "\n"
            "options:\n"
            "  --arch A           gpt2, llama or qwen2 (required); qwen2 is llama's tensors\n"
            "                     plus q/k/v biases, run by llama.cpp with NEOX RoPE\n"
            "  -o, --output FILE  output file; written as FILE.part, renamed when complete\n"
            "  --layers N         transformer blocks (default 2)\n"
            "  --embd N           embedding width (default 64)\n"
            "  --heads N          attention heads; must divide --embd (default 4)\n"
            "  --heads-kv N       llama, qwen2: key/value heads, must divide --heads; fewer\n"
            "                     than --heads gives grouped-query attention (default: --heads)\n"
            "  --ff N             feed-forward width (default: gpt2 4*embd; llama embd*172/64,\n"
            "                     rounded up to a multiple of 4 or of the quant block)\n"
            "  --ctx N            context length; gpt2 position table rows (default 512)\n"
            "  --type T           2-D weights: f32, f16, q8_0 (rows multiple of 32) or q4_K\n"
            "                     (rows multiple of 256); norms, biases stay f32 (default f32)\n"
            "  --seed N           weight seed, 0..2^64-1 (default 1)\n"
            "  --rope-base F      llama, qwen2: RoPE frequency base (default 10000)\n"
            "  --vocab FILE       GGUF whose tokenizer.* keys are copied (default:\n"
            "                     ggml-vocab-gpt-2.gguf for gpt2, ggml-vocab-llama-spm.gguf\n"
            "                     for llama and qwen2, from llama.cpp's models/ folder, here:\n"
            "                     %s)\n"
            "  -h, --help         this text\n"
            "  --version          the version\n"
            "\n"
            "weights: matrices N(0, 0.02), norm weights 1 + N(0, 0.1), biases N(0, 0.02),\n"
            "gpt2 position embeddings N(0, 0.01). Each tensor's values depend only on\n"
            "the seed and the tensor's name.\n"
            "\n"
            "examples:\n"
            "  " PROG " --arch gpt2 -o tiny-gpt2.gguf\n"
            "  " PROG " --arch llama --layers 2 --embd 64 --heads 4 --heads-kv 2 --ff 128 \\\n"
            "      --type f16 --seed 2 -o tiny-llama-f16.gguf\n"
            "  # a Llama-2-7B shape (about 7 GB, written one tensor at a time):\n"
            "  " PROG " --arch llama --layers 32 --embd 4096 --heads 32 --ff 11008 \\\n"
            "      --ctx 4096 --type q8_0 -o /tmp/llama-7b-shape-q8_0.gguf\n"
            "\n"
            "exit status: 0 written, 1 failed while writing, 2 bad option or input file.\n",
            LLAMA_VOCAB_DIR);
}

/* Every refusal is one line naming the input and the fix, exit status 2. */
static void refuse(const char *fmt, ...) {
    va_list ap;
    fputs(PROG ": error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ---- the command line -------------------------------------------------- */

struct options {
    struct tiny_config cfg;
    bool               arch_set, heads_kv_set, ff_set, rope_set;
    char               vocab_default[PATH_MAX];
};

/* Whole numbers: the shared grammar (cli.h), this program's range message. */
static long parse_int(const char *flag, const char *s, long lo, long hi) {
    long v;
    if (cli_int(PROG, flag, s, LONG_MIN, LONG_MAX, &v) != 0) {
        exit(2); /* cli_int said "expects an integer" */
    }
    if (v < lo || v > hi) {
        refuse("%s %ld is out of range; give a value from %ld to %ld", flag, v, lo, hi);
    }
    return v;
}

static uint64_t parse_seed(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        refuse("--seed '%s' is not a number from 0 to 18446744073709551615; give e.g. --seed 1", s);
    }
    return (uint64_t) v;
}

static float parse_rope_base(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0 && v < 1e30)) {
        refuse("--rope-base '%s' is not a positive number; give e.g. --rope-base 10000", s);
    }
    return (float) v;
}

static enum tiny_arch parse_arch(const char *s) {
    if (strcmp(s, "gpt2") == 0) {
        return TINY_ARCH_GPT2;
    }
    if (strcmp(s, "llama") == 0) {
        return TINY_ARCH_LLAMA;
    }
    if (strcmp(s, "qwen2") == 0) {
        return TINY_ARCH_QWEN2;
    }
    refuse("--arch '%s' is not supported; use --arch gpt2, llama or qwen2", s);
    return TINY_ARCH_GPT2;
}

static enum ggml_type parse_type(const char *s) {
    static const struct {
        const char    *name;
        enum ggml_type type;
    } types[] = {
        {"f32", GGML_TYPE_F32},
        {"f16", GGML_TYPE_F16},
        {"q8_0", GGML_TYPE_Q8_0},
        {"q4_K", GGML_TYPE_Q4_K},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(s, types[i].name) == 0) {
            return types[i].type;
        }
    }
    refuse("--type '%s' is not supported; use f32, f16, q8_0 or q4_K", s);
    return GGML_TYPE_F32;
}

enum option_id {
    OPT_LAYERS,
    OPT_EMBD,
    OPT_HEADS,
    OPT_HEADS_KV,
    OPT_FF,
    OPT_CTX,
    OPT_ARCH,
    OPT_TYPE,
    OPT_SEED,
    OPT_ROPE_BASE,
    OPT_VOCAB,
    OPT_OUT
};

static const char *const cli_options[] = {
    "--layers=", "--embd=", "--heads=",     "--heads-kv=", "--ff=",        "--ctx=", "--arch=",
    "--type=",   "--seed=", "--rope-base=", "--vocab=",    "-o|--output=", NULL};

/* Whole-number options: all at least 1, each with its own upper bound. */
static void apply_size(struct options *o, int id, const char *v) {
    struct tiny_config *c = &o->cfg;
    int                *dst[] = {&c->n_layer, &c->n_embd, &c->n_head, &c->n_head_kv, &c->n_ff, &c->n_ctx};
    static const long   max[] = {MAX_LAYERS, MAX_EMBD, MAX_EMBD, MAX_EMBD, MAX_FF, MAX_CTX};
    char                flag[32];
    snprintf(flag, sizeof flag, "%.*s", (int) strcspn(cli_options[id], "="), cli_options[id]);
    *dst[id] = (int) parse_int(flag, v, 1, max[id]);
    o->heads_kv_set = o->heads_kv_set || id == OPT_HEADS_KV;
    o->ff_set = o->ff_set || id == OPT_FF;
}

static int apply_option(void *ctx, int id, const char *flag, const char *v) {
    struct options     *o = ctx;
    struct tiny_config *c = &o->cfg;
    (void) flag;
    if (id == CLI_POSITIONAL) {
        refuse("unexpected argument '%s'; see --help", v);
    }
    switch (id) {
        case OPT_ARCH:
            c->arch = parse_arch(v);
            o->arch_set = true;
            break;
        case OPT_TYPE:
            c->wtype = parse_type(v);
            break;
        case OPT_SEED:
            c->seed = parse_seed(v);
            break;
        case OPT_ROPE_BASE:
            c->rope_base = parse_rope_base(v);
            o->rope_set = true;
            break;
        case OPT_VOCAB:
            c->vocab_path = v;
            break;
        case OPT_OUT:
            c->out_path = v;
            break;
        default:
            apply_size(o, id, v);
            break;
    }
    return 0;
}

static void parse_args(struct options *o, int argc, char **argv) {
    struct tiny_config *c = &o->cfg;
    memset(o, 0, sizeof(*o));
    c->n_layer = 2;
    c->n_embd = 64;
    c->n_head = 4;
    c->n_ctx = 512;
    c->wtype = GGML_TYPE_F32;
    c->seed = 1;
    c->rope_base = 10000.0f;

    int rc = cli_parse(PROG, cli_options, argc, argv, apply_option, o);
    if (rc == CLI_HELP) {
        usage(stdout);
        exit(0);
    }
    if (rc == CLI_VERSION) {
        printf("%s %s\n", PROG, LLORCH_CKPT_VERSION);
        exit(0);
    }
    if (rc != 0) {
        exit(2);
    }
}

/* ---- checks ------------------------------------------------------------ */

static int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

/* Fills in what depends on other flags: heads-kv, ff, vocab. */
static void apply_defaults(struct options *o) {
    struct tiny_config *c = &o->cfg;
    if (!o->heads_kv_set) {
        c->n_head_kv = c->n_head;
    }
    if (!o->ff_set) {
        int64_t blck = ggml_blck_size(c->wtype);
        /* gpt2 uses 4*embd; llama 172/64*embd, which is Llama-2-7B's 11008 for 4096. */
        c->n_ff = c->arch == TINY_ARCH_GPT2
                      ? 4 * c->n_embd
                      : (int) round_up(round_up((int64_t) c->n_embd * 172, 64) / 64, blck > 4 ? blck : 4);
    }
    if (!c->vocab_path) {
        snprintf(o->vocab_default, sizeof(o->vocab_default), "%s/%s", LLAMA_VOCAB_DIR,
                 c->arch == TINY_ARCH_GPT2 ? "ggml-vocab-gpt-2.gguf" : "ggml-vocab-llama-spm.gguf");
        c->vocab_path = o->vocab_default;
    }
}

static void check_arch_flags(const struct options *o) {
    const struct tiny_config *c = &o->cfg;
    if (!o->arch_set) {
        refuse("missing --arch; use --arch gpt2, llama or qwen2");
    }
    if (!c->out_path || !c->out_path[0]) {
        refuse("missing -o FILE; give the path of the model to write");
    }
    if (c->arch == TINY_ARCH_GPT2 && o->heads_kv_set && c->n_head_kv != c->n_head) {
        refuse("--heads-kv is for --arch llama; gpt2 has as many key/value heads as heads, drop --heads-kv");
    }
    if (c->arch == TINY_ARCH_GPT2 && o->rope_set) {
        refuse("--rope-base is for --arch llama; gpt2 has learned positions, drop --rope-base");
    }
}

static void check_shapes(const struct tiny_config *c) {
    if (c->n_embd % c->n_head != 0) {
        refuse("--embd %d is not divisible by --heads %d; choose an --embd that is a multiple of --heads", c->n_embd,
               c->n_head);
    }
    if (c->n_head % c->n_head_kv != 0) {
        refuse("--heads %d is not divisible by --heads-kv %d; choose --heads-kv that divides --heads", c->n_head,
               c->n_head_kv);
    }
    if (c->arch != TINY_ARCH_GPT2 && (c->n_embd / c->n_head) % 2 != 0) {
        refuse("head size --embd/--heads = %d is odd; RoPE rotates pairs, choose --embd/--heads even",
               c->n_embd / c->n_head);
    }
    /* Every matrix row is --embd long, except ffn_down's, which is --ff. */
    int64_t blck = ggml_blck_size(c->wtype);
    if (c->n_embd % blck != 0) {
        refuse("--type %s needs rows that are a multiple of %lld values, but --embd is %d;"
               " choose --embd as a multiple of %lld, or --type f32/f16",
               ggml_type_name(c->wtype), (long long) blck, c->n_embd, (long long) blck);
    }
    if (c->n_ff % blck != 0) {
        refuse("--type %s needs rows that are a multiple of %lld values, but --ff is %d;"
               " choose --ff as a multiple of %lld, or --type f32/f16",
               ggml_type_name(c->wtype), (long long) blck, c->n_ff, (long long) blck);
    }
}

/* ---- inputs and output ------------------------------------------------- */

static void drop_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void) level;
    (void) text;
    (void) user_data;
}

/* Opens the vocab's metadata; refuses files that are missing, not GGUF, or
 * without a token list. */
static struct gguf_context *open_vocab(const char *path, int *n_vocab) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        refuse("--vocab %s: cannot open (%s); give an existing vocab GGUF such as %s/ggml-vocab-gpt-2.gguf", path,
               strerror(errno), LLAMA_VOCAB_DIR);
    }
    char   magic[4] = {0};
    size_t got = fread(magic, 1, sizeof(magic), f);
    fclose(f);
    if (got != sizeof(magic) || memcmp(magic, "GGUF", 4) != 0) {
        refuse("--vocab %s is not a GGUF file; give a vocab GGUF such as %s/ggml-vocab-gpt-2.gguf", path,
               LLAMA_VOCAB_DIR);
    }
    /* gguf prints its own multi-line errors; ours is one line. */
    ggml_log_set(drop_log, NULL);
    struct gguf_init_params p = {true, NULL};
    struct gguf_context    *v = gguf_init_from_file(path, p);
    ggml_log_set(NULL, NULL);
    if (!v) {
        refuse("--vocab %s is a damaged GGUF file; give a vocab GGUF such as %s/ggml-vocab-gpt-2.gguf", path,
               LLAMA_VOCAB_DIR);
    }
    int64_t id = gguf_find_key(v, "tokenizer.ggml.tokens");
    if (id < 0 || gguf_get_kv_type(v, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(v, id) != GGUF_TYPE_STRING ||
        gguf_get_arr_n(v, id) == 0 || gguf_get_arr_n(v, id) > INT32_MAX) {
        gguf_free(v);
        refuse("--vocab %s has no tokenizer.ggml.tokens list; give a vocab GGUF such as %s/ggml-vocab-gpt-2.gguf", path,
               LLAMA_VOCAB_DIR);
    }
    *n_vocab = (int) gguf_get_arr_n(v, id);
    return v;
}

/* Opens PATH.part for writing. Returns NULL with the refusal in err. */
static FILE *open_output(const char *path, char *part, size_t part_size, char *err, size_t err_size) {
    struct stat st;
    if (strlen(path) > MAX_PATH_LEN) {
        snprintf(err, err_size, "-o path is %zu characters long; give a path shorter than %d", strlen(path),
                 MAX_PATH_LEN);
        return NULL;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, err_size, "-o %s is a directory; give a file name such as %s/tiny.gguf", path, path);
        return NULL;
    }
    snprintf(part, part_size, "%s.part", path);
    FILE *f = fopen(part, "wb");
    if (!f) {
        snprintf(err, err_size, "-o %s: cannot create %s (%s); choose a path in a writable directory", path, part,
                 strerror(errno));
    }
    return f;
}

static void print_summary(const struct tiny_config *c, int64_t n_params, int64_t bytes) {
    printf("%s: %s, %d layers, embd %d, %d heads (%d kv), ff %d, ctx %d, vocab %d, %s, "
           "%.2fM params, %lld bytes -> %s\n",
           PROG, tiny_arch_name(c->arch), c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->n_ff, c->n_ctx, c->n_vocab,
           ggml_type_name(c->wtype), (double) n_params / 1e6, (long long) bytes, c->out_path);
}

/* Writes, closes and renames; on any failure removes the .part file. */
static int make_model(const struct tiny_config *c, const struct gguf_context *vocab, FILE *f, const char *part) {
    char    err[2 * MAX_PATH_LEN + 512] = "";
    int64_t n_params = 0, bytes = 0;
    int     rc = tiny_model_write(c, vocab, f, &n_params, &bytes, err, sizeof(err));
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, sizeof(err), "closing %s failed: %s", part, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(part, c->out_path) != 0) {
        snprintf(err, sizeof(err), "renaming %s to %s failed: %s", part, c->out_path, strerror(errno));
        rc = -1;
    }
    tiny_clear_signal_cleanup();
    if (rc != 0) {
        unlink(part);
        fprintf(stderr, PROG ": error: %s; nothing was written to %s\n", err, c->out_path);
        return 1;
    }
    print_summary(c, n_params, bytes);
    return 0;
}

int main(int argc, char **argv) {
    struct options o;
    parse_args(&o, argc, argv);
    check_arch_flags(&o);
    apply_defaults(&o);
    check_shapes(&o.cfg);

    struct gguf_context *vocab = open_vocab(o.cfg.vocab_path, &o.cfg.n_vocab);
    char                 part[MAX_PATH_LEN + 16], err[2 * MAX_PATH_LEN + 256];
    FILE                *f = open_output(o.cfg.out_path, part, sizeof(part), err, sizeof(err));
    if (!f) {
        gguf_free(vocab);
        refuse("%s", err);
    }
    tiny_install_signal_cleanup(part);

    int rc = make_model(&o.cfg, vocab, f, part);
    gguf_free(vocab);
    return rc;
}

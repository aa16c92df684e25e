/* llorch-checkpoint-extractor - run a GGUF model in llama.cpp and write its
 * checkpoints as a dump (docs/FORMAT.md).
 *
 * main() reads top to bottom: options, model, tokens, selection, output,
 * capture, context, the decode steps, then the manifest and a summary. */
#define _POSIX_C_SOURCE 200809L
#include "extractor_options.h"
#include "llorch_capture.h"
#include "llorch_checkpoint.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <llama.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Everything one run holds; freed by run_free(). */
struct run {
    struct extractor_options opt;
    struct llama_model      *model;
    struct llama_context    *ctx;
    struct ggml_threadpool  *threadpool;
    const struct llama_vocab *vocab;
    llama_token             *tokens;      /* prompt + generated */
    int                      n_prompt, n_tokens, n_alloc;
    char                    *prompt_text; /* -p or -f contents */
    llorch_ckpt_selection   *selection;
    llorch_ckpt_writer      *writer;
    llorch_capture          *capture;
    enum llama_flash_attn_type fa;
    const char              *fa_reason;
    bool                     fa_notice;
    int                      n_ctx, n_chunk, steps;
    double                   decode_seconds;
};

static llorch_capture *volatile interrupt_target;
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void) sig;
    interrupted = 1;
    if (interrupt_target != NULL) {
        llorch_capture_request_stop(interrupt_target);
    }
}

/* One line naming the input and the fix; returns exit status 2 (bad input). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

/* llama.cpp's log is shown with -v only; its first error is kept so that
 * our one-line error can say why. */
static bool verbose_log;
static char llama_first_error[256];
static void log_filter(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (verbose_log) {
        fputs(text, stderr);
    }
    if (level == GGML_LOG_LEVEL_ERROR && llama_first_error[0] == '\0') {
        snprintf(llama_first_error, sizeof llama_first_error, "%s", text);
        llama_first_error[strcspn(llama_first_error, "\n")] = '\0';
    }
}

static const char *llama_reason(void) {
    return llama_first_error[0] != '\0' ? llama_first_error : "no reason given; run with -v";
}

static void print_version(void) {
    printf(PROG " %s\n", LLORCH_CKPT_VERSION);
    printf("llama.cpp %.12s from %s, %s\n", LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE,
           LLORCH_LLAMA_PATCHED < 0 ? "patch unknown (installed; each dump records whether its names were seen)"
           : LLORCH_LLAMA_PATCHED   ? "patched (names cache_k, cache_v, attn_out_proj)"
                                    : "unpatched (checkpoints found by graph structure)");
    printf("dump format %s %d\n", LLORCH_CKPT_FORMAT_NAME, LLORCH_CKPT_FORMAT_VERSION);
}

/* --- model --------------------------------------------------------------- */

/* ggml's RPC client aborts the process when a server cannot be reached;
 * check first, so that a wrong address is one line and exit status 2. */
static bool rpc_reachable(const char *endpoint) {
    char host[256];
    snprintf(host, sizeof host, "%s", endpoint);
    char *colon = strrchr(host, ':');
    if (colon == NULL || colon == host || colon[1] == '\0') {
        return false;
    }
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        return false;
    }
    bool ok = false;
    for (struct addrinfo *a = res; a != NULL && !ok; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        ok = fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0;
        if (fd >= 0) {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return ok;
}

/* --rpc: registers each server as a device, as llama.cpp's own --rpc does.
 * Its tensors then live in remote buffers, which capture reads back with
 * ggml_backend_tensor_get. */
static int add_rpc_servers(const char *list) {
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    void *symbol = rpc != NULL ? ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server") : NULL;
    typedef ggml_backend_reg_t (*add_server_fn)(const char *endpoint);
    add_server_fn add = NULL;
    if (symbol != NULL) {
        memcpy(&add, &symbol, sizeof add);   /* POSIX: a symbol's address converts to a function pointer */
    }
    if (add == NULL) {
        return fail("--rpc %s: this llama.cpp was built without the RPC backend; rebuild it with -DGGML_RPC=ON",
                    list);
    }
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *server = strtok_r(copy, ",", &save); server != NULL; server = strtok_r(NULL, ",", &save)) {
        if (!rpc_reachable(server)) {
            return fail("--rpc: cannot connect to RPC server '%s'; start one (llama.cpp's rpc-server) or fix "
                        "the HOST:PORT", server);
        }
        ggml_backend_reg_t reg = add(server);
        if (reg == NULL) {
            return fail("--rpc: cannot reach RPC server '%s'; start one (llama.cpp's rpc-server) or fix the address",
                        server);
        }
        ggml_backend_register(reg);
    }
    return 0;
}

static int load_model(struct run *r) {
    if (r->opt.rpc != NULL && add_rpc_servers(r->opt.rpc) != 0) {
        return 2;
    }
    struct stat st;
    if (stat(r->opt.model, &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail("model '%s' not found; check the path given with -m", r->opt.model);
    }
    FILE *f = fopen(r->opt.model, "rb");
    char magic[4] = {0};
    size_t got = f != NULL ? fread(magic, 1, 4, f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        return fail("model '%s' is not a GGUF file; convert it with llama.cpp's convert_hf_to_gguf.py",
                    r->opt.model);
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = r->opt.repack;
    if (r->opt.n_gpu_layers >= 0) {
        mp.n_gpu_layers = r->opt.n_gpu_layers;
    }
    r->model = llama_model_load_from_file(r->opt.model, mp);
    if (r->model == NULL) {
        return fail("cannot load model '%s' (llama.cpp: %s): the file is corrupt, truncated or of an "
                    "unsupported architecture; check or re-create it", r->opt.model, llama_reason());
    }
    r->vocab = llama_model_get_vocab(r->model);
    return 0;
}

/* --- tokens -------------------------------------------------------------- */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
            }
            buf = grown;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
    }
    return buf;
}

static int tokenize_prompt(struct run *r) {
    const char *text = r->opt.prompt;
    if (r->opt.prompt_file != NULL) {
        r->prompt_text = read_file(r->opt.prompt_file);
        if (r->prompt_text == NULL) {
            return fail("cannot read prompt file '%s': %s; check the path given with -f", r->opt.prompt_file,
                        strerror(errno));
        }
        text = r->prompt_text;
    } else {
        r->prompt_text = strdup(text);
    }
    int len = (int) strlen(text);
    int n = -llama_tokenize(r->vocab, text, len, NULL, 0, true, false);
    r->n_alloc = n + r->opt.n_predict + 1;
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    if (r->tokens == NULL || llama_tokenize(r->vocab, text, len, r->tokens, n, true, false) != n) {
        return fail("cannot tokenize the prompt; check that it is valid UTF-8");
    }
    r->n_prompt = n;
    return 0;
}

static int parse_token_ids(struct run *r) {
    int n_vocab = llama_vocab_n_tokens(r->vocab);
    size_t len = strlen(r->opt.tokens);
    r->n_alloc = (int) len / 2 + 2 + r->opt.n_predict;
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    if (r->tokens == NULL) {
        return fail("out of memory reading --tokens");
    }
    const char *p = r->opt.tokens;
    while (*p != '\0') {
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        if (end == p || errno != 0 || (*end != ',' && *end != '\0')) {
            return fail("--tokens '%s' is not a comma-separated list of integers, e.g. 1,15043", r->opt.tokens);
        }
        if (id < 0 || id >= n_vocab) {
            char msg[96];
            snprintf(msg, sizeof msg, "token id %ld is outside the vocabulary (0-%d)", id, n_vocab - 1);
            return fail("--tokens: %s; use ids of this model's vocabulary", msg);
        }
        r->tokens[r->n_prompt++] = (llama_token) id;
        p = *end == ',' ? end + 1 : end;
    }
    if (r->n_prompt == 0) {
        return fail("--tokens is empty; give at least one token id");
    }
    return 0;
}

static int get_tokens(struct run *r) {
    int rc = r->opt.tokens != NULL ? parse_token_ids(r) : tokenize_prompt(r);
    if (rc == 0 && r->n_prompt == 0) {
        return fail("the prompt gives no tokens; give a non-empty prompt");
    }
    r->n_tokens = r->n_prompt;
    return rc;
}

/* --- selection and settings ---------------------------------------------- */

static int make_selection(struct run *r) {
    char err[512];
    const char *checkpoints = r->opt.checkpoints;
    if (checkpoints == NULL && r->opt.n_graph_regex > 0) {
        checkpoints = "none";   /* only what the regexes match */
    }
    r->selection = llorch_ckpt_selection_create(checkpoints, r->opt.layers, err, sizeof err);
    if (r->selection == NULL) {
        return fail("%s", err);
    }
    for (int i = 0; i < r->opt.n_graph_regex; i++) {
        if (llorch_ckpt_selection_add_regex(r->selection, r->opt.graph_regex[i], err, sizeof err) != 0) {
            return fail("%s", err);
        }
    }
    if (llorch_ckpt_selection_check(r->selection, llama_model_n_layer(r->model), err, sizeof err) != 0) {
        return fail("--layers: %s", err);
    }
    return 0;
}

static bool wants_scores(const struct run *r) {
    int n_layer = llama_model_n_layer(r->model);
    for (int il = 0; il < n_layer; il++) {
        if (llorch_ckpt_selection_has(r->selection, LLORCH_CKPT_KQ_SOFT_MAX, il)) {
            return true;
        }
    }
    return false;
}

/* Flash attention hides the scores inside one fused node. */
static int choose_flash_attn(struct run *r) {
    bool scores = wants_scores(r);
    if (scores && r->opt.flash_attn == FA_ON) {
        return fail("kq_soft_max cannot be captured with -fa on: flash attention fuses the scores away; "
                    "use -fa off or drop checkpoint 4");
    }
    if (scores) {
        r->fa = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        r->fa_reason = r->opt.flash_attn == FA_OFF ? "off (-fa off)" : "off: kq_soft_max is requested";
        r->fa_notice = r->opt.flash_attn == FA_AUTO;   /* printed once the run starts */
    } else {
        r->fa = r->opt.flash_attn == FA_ON    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                : r->opt.flash_attn == FA_OFF ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                              : LLAMA_FLASH_ATTN_TYPE_AUTO;
        r->fa_reason = r->opt.flash_attn == FA_AUTO ? "auto (llama.cpp's default)" : "as given with -fa";
    }
    return 0;
}

static int parse_cache_type(const char *flag, const char *name, enum ggml_type *type) {
    static const enum ggml_type allowed[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                             GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                             GGML_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strcmp(ggml_type_name(allowed[i]), name) == 0) {
            *type = allowed[i];
            return 0;
        }
    }
    return fail("%s: unknown cache type '%s'; use f16, f32, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl", flag,
                name);
}

/* --- output and capture --------------------------------------------------- */

/* --format auto: a one-step run keeps its numbered files; a run of many
 * steps goes into one .npz rather than thousands of small files. */
static enum llorch_ckpt_form chosen_form(const struct run *r) {
    if (r->opt.form != FORM_AUTO) {
        return (enum llorch_ckpt_form) r->opt.form;
    }
    int n_chunk = r->opt.n_ubatch < r->opt.n_batch ? r->opt.n_ubatch : r->opt.n_batch;
    int steps = (r->n_prompt + n_chunk - 1) / n_chunk + r->opt.n_predict;
    return steps > 1 && !r->opt.text ? LLORCH_CKPT_FORM_NPZ : LLORCH_CKPT_FORM_NPY;
}

static int open_output(struct run *r) {
    if (r->opt.stats || r->opt.sink == LLORCH_CAPTURE_SINK_MEMORY) {
        return 0;
    }
    char err[1024];
    struct llorch_ckpt_writer_options wo = {.text = r->opt.text, .form = chosen_form(r)};
    r->writer = llorch_ckpt_writer_open(r->opt.output, &wo, err, sizeof err);
    if (r->writer == NULL) {
        return fail("%s", err);
    }
    return 0;
}

static int create_capture(struct run *r) {
    char err[1024];
    struct llorch_capture_params p = llorch_capture_default_params();
    p.selection = r->selection;
    p.writer = r->writer;
    p.model = r->model;
    p.sink = r->opt.stats ? LLORCH_CAPTURE_SINK_STATS : r->opt.sink;
    p.identify = r->opt.identify;
    p.raw = r->opt.raw;
    p.native_dtype = r->opt.native_dtype;
    p.queue_bytes = r->opt.queue_mb << 20;
    p.stop_at_nan = r->opt.stop_at_nan;
    p.split_each = r->opt.split_each;
    p.stats_out = stdout;
    r->capture = llorch_capture_create(&p, err, sizeof err);
    if (r->capture == NULL) {
        return fail("%s", err);
    }
    return 0;
}

static int create_context(struct run *r) {
    int needed = r->n_prompt + r->opt.n_predict;
    r->n_ctx = r->opt.n_ctx > 0 ? r->opt.n_ctx : (needed + 255) / 256 * 256;
    if (needed > r->n_ctx) {
        char msg[128];
        snprintf(msg, sizeof msg, "%d prompt tokens plus -n %d exceed the context of %d", r->n_prompt,
                 r->opt.n_predict, r->n_ctx);
        return fail("%s; raise -c or shorten the prompt", msg);
    }
    r->n_chunk = r->opt.n_ubatch < r->opt.n_batch ? r->opt.n_ubatch : r->opt.n_batch;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) r->n_ctx;
    cp.n_batch = (uint32_t) r->opt.n_batch;
    cp.n_ubatch = (uint32_t) r->n_chunk;
    cp.n_threads = r->opt.threads;
    cp.n_threads_batch = r->opt.threads;
    cp.flash_attn_type = r->fa;
    if (parse_cache_type("-ctk", r->opt.cache_type_k, &cp.type_k) != 0 ||
        parse_cache_type("-ctv", r->opt.cache_type_v, &cp.type_v) != 0) {
        return 2;
    }
    llorch_capture_attach(r->capture, &cp);
    r->ctx = llama_init_from_model(r->model, cp);
    if (r->ctx == NULL) {
        return fail("llama.cpp could not create a context for '%s' (llama.cpp: %s); a quantized V cache "
                    "needs -fa on", r->opt.model, llama_reason());
    }
    /* Each capture point ends a graph split. Without a threadpool (and
     * without OpenMP) ggml would start its worker threads anew for each
     * split; with one they wait between splits, polling briefly first
     * (ggml's default level), as a split's end is soon followed by the next
     * one's start. The writer thread runs at idle priority, so the polling
     * does not hold it back. */
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(r->opt.threads);
    r->threadpool = ggml_threadpool_new(&tpp);
    if (r->threadpool != NULL) {
        llama_attach_threadpool(r->ctx, r->threadpool, r->threadpool);
    }
    return 0;
}

/* --- the decode steps ----------------------------------------------------- */

/* Every batch size the run decodes: prompt chunks, the last chunk, and one
 * token per generated step. The capture records each graph once, before the
 * first decode, to plan which nodes to read. */
static int prepare_steps(struct run *r) {
    int sizes[3] = {r->n_prompt < r->n_chunk ? r->n_prompt : r->n_chunk, r->n_prompt % r->n_chunk,
                    r->opt.n_predict > 0 ? 1 : 0};
    for (int i = 0; i < 3; i++) {
        if (sizes[i] > 0 && llorch_capture_prepare(r->capture, r->ctx, sizes[i]) != 0) {
            fprintf(stderr, PROG ": error: %s\n", llorch_capture_error(r->capture));
            return 1;
        }
    }
    if (r->opt.dump_graph != NULL) {
        FILE *f = fopen(r->opt.dump_graph, "w");
        if (f == NULL) {
            return fail("cannot write --dump-graph '%s': %s; choose a writable path", r->opt.dump_graph,
                        strerror(errno)) != 0;
        }
        llorch_capture_print_plans(r->capture, f);
        fclose(f);
    }
    return 0;
}

/* One llama_decode of tokens[pos .. pos+n), every token an output. */
static int decode_step(struct run *r, int pos, int n) {
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = r->tokens[pos + i];
        b.pos[i] = pos + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;    /* else the last layer keeps only the output rows */
    }
    b.n_tokens = n;
    llorch_capture_begin_step(r->capture, pos, n);
    double start = llorch_now_seconds();
    int rc = llama_decode(r->ctx, b);
    r->decode_seconds += llorch_now_seconds() - start;
    llama_batch_free(b);
    int capture_rc = llorch_capture_end_step(r->capture);
    r->steps++;
    if (rc != 0 || capture_rc != 0) {
        return rc == 2 && interrupted ? 130 : 1;
    }
    return 0;
}

static llama_token greedy_next(struct run *r) {
    const float *logits = llama_get_logits_ith(r->ctx, -1);
    int n_vocab = llama_vocab_n_tokens(r->vocab);
    int best = 0;
    for (int i = 1; i < n_vocab; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

static void show_progress(const struct run *r, int done, int total) {
    if (!r->opt.progress && !isatty(STDERR_FILENO)) {
        return;
    }
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    fprintf(stderr, "%sstep %d: %d/%d tokens, %zu tensors, %.1f MB%s", r->opt.progress ? "" : "\r", r->steps, done,
            total, rep.tensors, (double) rep.bytes / 1e6, r->opt.progress ? "\n" : "");
}

static int run_steps(struct run *r) {
    int total = r->n_prompt + r->opt.n_predict;
    if (prepare_steps(r) != 0) {
        return 1;
    }
    for (int pos = 0; pos < r->n_prompt && !interrupted; pos += r->n_chunk) {
        int n = r->n_prompt - pos < r->n_chunk ? r->n_prompt - pos : r->n_chunk;
        int rc = decode_step(r, pos, n);
        if (rc != 0) {
            return rc;
        }
        show_progress(r, pos + n, total);
    }
    for (int i = 0; i < r->opt.n_predict && !interrupted; i++) {
        r->tokens[r->n_tokens] = greedy_next(r);
        int rc = decode_step(r, r->n_tokens++, 1);
        if (rc != 0) {
            return rc;
        }
        show_progress(r, r->n_tokens, total);
    }
    if (!r->opt.progress && isatty(STDERR_FILENO)) {
        fprintf(stderr, "\n");
    }
    return interrupted ? 130 : 0;
}

/* --- manifest and summary -------------------------------------------------- */

static void settings_json(const struct run *r, const struct llorch_capture_report *rep, char *buf, size_t size) {
    snprintf(buf, size,
             "{\"threads\": %d, \"n_ctx\": %d, \"n_batch\": %d, \"n_ubatch\": %d, \"type_k\": \"%s\", "
             "\"type_v\": \"%s\", \"flash_attn\": %s, \"flash_attn_reason\": \"%s\", \"repack\": %s, "
             "\"numerics\": \"%s\", "
             "\"n_gpu_layers\": %d, \"seed\": %u, \"n_predict\": %d, \"raw\": %s, \"dtype\": \"%s\", "
             "\"identify\": \"%s\", \"steps\": %d}",
             r->opt.threads, r->n_ctx, r->opt.n_batch, r->n_chunk, r->opt.cache_type_k, r->opt.cache_type_v,
             rep->flash_attn ? "true" : "false", r->fa_reason, r->opt.repack ? "true" : "false",
             r->opt.repack ? "cpu-specific: weights repacked for this CPU's kernels; other CPUs give other results"
                           : "portable: no weight repacking (ggml's standard CPU kernels)",
             r->opt.n_gpu_layers, r->opt.seed, r->opt.n_predict, r->opt.raw ? "true" : "false",
             r->opt.native_dtype ? "native" : "f32",
             r->opt.identify == LLORCH_CAPTURE_IDENTIFY_AUTO ? "auto" : "structure", r->steps);
}

static int write_manifest(struct run *r, bool complete, const char *status) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    char settings[2048], llama_json[512], producer[64], arch[64] = "";
    settings_json(r, &rep, settings, sizeof settings);
    snprintf(llama_json, sizeof llama_json,
             "{\"commit\": \"%s\", \"source\": \"%s\", \"patched\": %s, \"patch_names_seen\": %s}",
             LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE,
             LLORCH_LLAMA_PATCHED < 0 ? "null" : LLORCH_LLAMA_PATCHED ? "true" : "false",
             rep.patched_names ? "true" : "false");
    snprintf(producer, sizeof producer, PROG " %s", LLORCH_CKPT_VERSION);
    llama_model_meta_val_str(r->model, "general.architecture", arch, sizeof arch);
    struct stat st;
    struct llorch_ckpt_run run = {
        .producer = producer, .model_path = r->opt.model,
        .model_size = stat(r->opt.model, &st) == 0 ? (int64_t) st.st_size : -1, .architecture = arch,
        .n_layer = llama_model_n_layer(r->model), .n_embd = llama_model_n_embd(r->model),
        .n_head = llama_model_n_head(r->model), .n_head_kv = llama_model_n_head_kv(r->model),
        .n_vocab = llama_vocab_n_tokens(r->vocab), .tokens = r->tokens, .n_tokens = r->n_tokens,
        .prompt = r->opt.tokens != NULL ? NULL : r->prompt_text, .settings_json = settings,
        .llama_cpp_json = llama_json,
    };
    if (llorch_ckpt_writer_set_run(r->writer, &run) != 0 || llorch_ckpt_writer_finish(r->writer, complete, status) != 0) {
        fprintf(stderr, PROG ": error: %s\n", llorch_ckpt_writer_error(r->writer));
        return 1;
    }
    return 0;
}

static void print_summary(const struct run *r) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    fprintf(stderr, "  %-16s %8s %12s\n", "checkpoint", "tensors", "bytes");
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        if (rep.kind_tensors[k] > 0) {
            fprintf(stderr, "  %02d %-13s %8zu %12zu\n", llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->number,
                    llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->name, rep.kind_tensors[k], rep.kind_bytes[k]);
        }
    }
    double copy_share = r->decode_seconds > 0 ? 100.0 * rep.copy_seconds / r->decode_seconds : 0.0;
    fprintf(stderr, "  %-16s %8zu %12zu\n", "total", rep.tensors, rep.bytes);
    fprintf(stderr,
            PROG ": %d tokens in %d steps%s%s\n"
            "  decode %.3f s, of which capture copies %.3f s (%.1f%%) and waits for the writer %.3f s\n",
            r->n_tokens, r->steps, r->writer != NULL ? ", written to " : "", r->writer != NULL ? r->opt.output : "",
            r->decode_seconds, rep.copy_seconds, copy_share, rep.wait_seconds);
    if (r->writer != NULL) {
        enum llorch_ckpt_form form = chosen_form(r);
        char where[64] = "files";
        if (form != LLORCH_CKPT_FORM_NPY) {
            snprintf(where, sizeof where, "tensors in checkpoints.%s", llorch_ckpt_form_name(form));
        }
        fprintf(stderr, "  %zu %s + tokens.npy + manifest.json; flash attention %s; KV cache %s/%s; %s\n",
                llorch_ckpt_writer_files(r->writer), where, rep.flash_attn ? "on" : "off", r->opt.cache_type_k,
                r->opt.cache_type_v, r->opt.repack ? "repacked weights" : "no repack (portable kernels)");
    }
}

/* --- main ------------------------------------------------------------------ */

static void run_free(struct run *r) {
    llorch_capture_free(r->capture);
    llorch_ckpt_writer_free(r->writer);
    llorch_ckpt_selection_free(r->selection);
    if (r->ctx != NULL) {
        llama_free(r->ctx);
    }
    if (r->threadpool != NULL) {
        ggml_threadpool_free(r->threadpool);
    }
    if (r->model != NULL) {
        llama_model_free(r->model);
    }
    free(r->tokens);
    free(r->prompt_text);
}

static int finish(struct run *r, int rc) {
    if (llorch_capture_finish(r->capture) != 0 && rc != 130) {
        fprintf(stderr, PROG ": error: %s\n", llorch_capture_error(r->capture));
        return 1;     /* no manifest: the dump is not complete */
    }
    if (rc == 1) {
        fprintf(stderr, PROG ": error: llama_decode failed (llama.cpp: %s)\n", llama_reason());
        return 1;
    }
    if (r->writer != NULL && write_manifest(r, rc == 0, rc == 130 ? "interrupted" : "ok") != 0) {
        return 1;
    }
    if (rc == 130) {
        fprintf(stderr, PROG ": interrupted; the manifest marks the dump incomplete\n");
    }
    print_summary(r);
    return rc;
}

int main(int argc, char **argv) {
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = extractor_parse_options(argc, argv, &r.opt);
    if (rc == 3) {
        print_version();
        return 0;
    }
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    verbose_log = r.opt.verbose;
    llama_log_set(log_filter, NULL);
    llama_backend_init();

    rc = load_model(&r);
    if (rc == 0) rc = get_tokens(&r);
    if (rc == 0) rc = make_selection(&r);
    if (rc == 0) rc = choose_flash_attn(&r);
    if (rc == 0) rc = open_output(&r);
    if (rc == 0) rc = create_capture(&r);
    if (rc == 0) rc = create_context(&r);
    if (rc == 0) {
        if (r.fa_notice) {
            fprintf(stderr, PROG ": flash attention turned off: kq_soft_max is requested\n");
        }
        interrupt_target = r.capture;
        signal(SIGINT, on_sigint);
        signal(SIGXFSZ, SIG_IGN);     /* a file-size limit becomes a write error, not a kill */
        rc = finish(&r, run_steps(&r));
    }
    run_free(&r);
    llama_backend_free();
    return rc;
}

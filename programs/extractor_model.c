/* extractor_model.c - the model (checked to be a GGUF file, loaded with
 * any --rpc servers registered first) and the token ids (a prompt, a
 * prompt file, or --tokens). */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "cli.h"

#include "extractor_settings.h"

#include <ctype.h>
#include <errno.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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
        memcpy(&add, &symbol, sizeof add); /* POSIX: a symbol's address converts to a function pointer */
    }
    if (add == NULL) {
        return exit_bad_input(
            "--rpc %s: this llama.cpp was built without the RPC backend; rebuild it with -DGGML_RPC=ON", list);
    }
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *server = strtok_r(copy, ",", &save); server != NULL; server = strtok_r(NULL, ",", &save)) {
        if (!rpc_reachable(server)) {
            return exit_bad_input("--rpc: cannot connect to RPC server '%s'; start one (llama.cpp's rpc-server) or fix "
                                  "the HOST:PORT",
                                  server);
        }
        ggml_backend_reg_t reg = add(server);
        if (reg == NULL) {
            return exit_bad_input(
                "--rpc: cannot reach RPC server '%s'; start one (llama.cpp's rpc-server) or fix the address", server);
        }
        ggml_backend_register(reg);
    }
    return 0;
}

int load_model(struct run *r) {
    if (r->opt.rpc != NULL && add_rpc_servers(r->opt.rpc) != 0) {
        return 2;
    }
    struct stat st;
    if (stat(r->opt.model, &st) == 0 && S_ISDIR(st.st_mode)) {
        return exit_bad_input("model '%s' is a directory; give the path of a .gguf file with -m", r->opt.model);
    }
    if (stat(r->opt.model, &st) != 0 || !S_ISREG(st.st_mode)) {
        return exit_bad_input("model '%s' not found; check the path given with -m", r->opt.model);
    }
    FILE  *f = fopen(r->opt.model, "rb");
    char   magic[4] = {0};
    size_t got = f != NULL ? fread(magic, 1, 4, f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        return exit_bad_input("model '%s' is not a GGUF file; convert it with llama.cpp's convert_hf_to_gguf.py",
                              r->opt.model);
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = r->opt.repack;
    if (r->opt.n_gpu_layers >= 0) {
        mp.n_gpu_layers = r->opt.n_gpu_layers;
    }
    r->model = llama_model_load_from_file(r->opt.model, mp);
    if (r->model == NULL) {
        return exit_bad_input("cannot load model '%s' (llama.cpp: %s): the file is corrupt, truncated or of an "
                              "unsupported architecture; check or re-create it",
                              r->opt.model, llama_reason());
    }
    r->vocab = llama_model_get_vocab(r->model);
    return 0;
}

/* --- tokens -------------------------------------------------------------- */

char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char  *buf = malloc(cap);
    for (;;) {
        size_t got = buf != NULL ? fread(buf + n, 1, cap - n - 1, f) : 0;
        if (got == 0) {
            break;
        }
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
        r->prompt_text = read_text_file(r->opt.prompt_file);
        if (r->prompt_text == NULL) {
            return exit_bad_input("cannot read prompt file '%s': %s; check the path given with -f", r->opt.prompt_file,
                                  strerror(errno));
        }
        text = r->prompt_text;
    } else {
        r->prompt_text = strdup(text);
    }
    int n = tokenize_text(r->vocab, text, r->opt.n_predict + 1, &r->tokens);
    if (n < 0) {
        return exit_bad_input("cannot tokenize the prompt; check that it is valid UTF-8");
    }
    r->n_alloc = n + r->opt.n_predict + 1;
    r->n_prompt = n;
    return 0;
}

int tokenize_text(const struct llama_vocab *vocab, const char *text, int extra, llama_token **tokens) {
    int len = (int) strlen(text);
    int n = -llama_tokenize(vocab, text, len, NULL, 0, true, false);
    *tokens = n >= 0 ? malloc((size_t) (n + extra) * sizeof **tokens) : NULL;
    if (*tokens == NULL || llama_tokenize(vocab, text, len, *tokens, n, true, false) != n) {
        return -1;
    }
    return n;
}

static int parse_token_ids(struct run *r) {
    int32_t *ids;
    int      n;
    if (cli_token_list(PROG, "--tokens", r->opt.tokens, &ids, &n) != 0) {
        return 2;
    }
    int n_vocab = llama_vocab_n_tokens(r->vocab);
    r->n_alloc = n + r->opt.n_predict + 1;
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    for (int i = 0; i < n && r->tokens != NULL; i++) {
        if (ids[i] >= n_vocab) {
            int bad = (int) ids[i];
            free(ids);
            return exit_bad_input("--tokens: token id %d is outside the vocabulary (0-%d); use ids of this model's "
                                  "vocabulary",
                                  bad, n_vocab - 1);
        }
        r->tokens[r->n_prompt++] = (llama_token) ids[i];
    }
    free(ids);
    return r->tokens != NULL ? 0 : exit_bad_input("out of memory reading --tokens");
}

int get_tokens(struct run *r) {
    if (r->opt.parallel > 0) {
        return get_sequences(r);
    }
    bool given = r->opt.tokens != NULL || r->opt.prompt != NULL || r->opt.prompt_file != NULL;
    int  rc = !given ? feed_tokens(r) : r->opt.tokens != NULL ? parse_token_ids(r) : tokenize_prompt(r);
    if (rc == 0 && r->n_prompt == 0) {
        return exit_bad_input("the prompt gives no tokens; give a non-empty prompt");
    }
    r->n_tokens = r->n_prompt;
    return rc != 0 ? rc : check_feed_tokens(r);
}

/* --- the weights' type (the manifest's settings.weight_type) ----------------- */

void extractor_weight_type(const char *model_path, char *buf, size_t size) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context    *g = gguf_init_from_file(model_path, params);
    size_t                  bytes[GGML_TYPE_COUNT] = {0}, best = 0;
    buf[0] = '\0';
    for (int64_t i = 0; g && i < gguf_get_n_tensors(g); i++) {
        enum ggml_type t = gguf_get_tensor_type(g, i);
        if ((int) t >= 0 && t < GGML_TYPE_COUNT) {
            bytes[t] += gguf_get_tensor_size(g, i);
        }
    }
    for (int t = 0; g && t < GGML_TYPE_COUNT; t++) {
        if (bytes[t] > best) {
            best = bytes[t];
            snprintf(buf, size, "%s", ggml_type_name((enum ggml_type) t));
        }
    }
    for (char *p = buf; *p; p++) {
        *p = (char) tolower((unsigned char) *p); /* "q4_K" as -ctk spells types */
    }
    if (g) {
        gguf_free(g);
    }
}

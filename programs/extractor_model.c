/* extractor_model.c - the model (checked to be a GGUF file, loaded with
 * any --rpc servers registered first), and the two helpers that turn text
 * into tokens: a file's text, a text's token ids. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include <errno.h>
#include <ggml-backend.h>
#include <ggml.h>
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
        return extractor_bad_input(
            "--rpc %s: this llama.cpp was built without the RPC backend; rebuild it with -DGGML_RPC=ON", list);
    }
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *server = strtok_r(copy, ",", &save); server != NULL; server = strtok_r(NULL, ",", &save)) {
        if (!rpc_reachable(server)) {
            return extractor_bad_input(
                "--rpc: cannot connect to RPC server '%s'; start one (llama.cpp's rpc-server) or fix "
                "the HOST:PORT",
                server);
        }
        ggml_backend_reg_t reg = add(server);
        if (reg == NULL) {
            return extractor_bad_input(
                "--rpc: cannot reach RPC server '%s'; start one (llama.cpp's rpc-server) or fix the address", server);
        }
        ggml_backend_register(reg);
    }
    return 0;
}

int extractor_load_model(struct extractor_run *r) {
    if (r->opt.rpc != NULL && add_rpc_servers(r->opt.rpc) != 0) {
        return 2;
    }
    struct stat st;
    if (stat(r->opt.model, &st) == 0 && S_ISDIR(st.st_mode)) {
        return extractor_bad_input("model '%s' is a directory; give the path of a .gguf file with -m", r->opt.model);
    }
    if (stat(r->opt.model, &st) != 0 || !S_ISREG(st.st_mode)) {
        return extractor_bad_input("model '%s' not found; check the path given with -m", r->opt.model);
    }
    FILE  *f = fopen(r->opt.model, "rb");
    char   magic[4] = {0};
    size_t got = f != NULL ? fread(magic, 1, 4, f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        return extractor_bad_input("model '%s' is not a GGUF file; convert it with llama.cpp's convert_hf_to_gguf.py",
                                   r->opt.model);
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = r->opt.repack;
    if (r->opt.n_gpu_layers >= 0) {
        mp.n_gpu_layers = r->opt.n_gpu_layers;
    }
    r->model = llama_model_load_from_file(r->opt.model, mp);
    if (r->model == NULL) {
        return extractor_bad_input("cannot load model '%s' (llama.cpp: %s): the file is corrupt, truncated or of an "
                                   "unsupported architecture; check or re-create it",
                                   r->opt.model, extractor_llama_reason());
    }
    r->vocab = llama_model_get_vocab(r->model);
    return 0;
}

/* --- text and tokens ------------------------------------------------------ */

char *extractor_read_text_file(const char *path) {
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

int extractor_tokenize(const struct llama_vocab *vocab, const char *text, int extra, llama_token **tokens) {
    *tokens = NULL;
    if (llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_NONE) {
        return EXTRACTOR_NO_TOKENIZER; /* llama.cpp would abort */
    }
    int len = (int) strlen(text);
    int n = -llama_tokenize(vocab, text, len, NULL, 0, true, false);
    *tokens = n >= 0 ? malloc((size_t) (n + extra) * sizeof **tokens) : NULL;
    if (*tokens == NULL || llama_tokenize(vocab, text, len, *tokens, n, true, false) != n) {
        return -1;
    }
    return n;
}

/*
 * ref_input.c - token ids from --tokens lists and .npy files, and fault
 * specs.
 */
#define _POSIX_C_SOURCE 200809L
#include "ref_input.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- --tokens "1,2,3;4,5" ------------------------------------------------ */

int ref_split_token_lists(char *arg, char **lists, int *n_lists, char *err, size_t err_size) {
    int n = 1;
    for (const char *c = arg; *c != '\0'; c++) {
        n += *c == ';';
    }
    if (n > REF_MAX_SEQUENCES) {
        snprintf(err, err_size, "--tokens holds %d lists split by ';'; give at most %d sequences", n,
                 REF_MAX_SEQUENCES);
        return -1;
    }
    /* split by hand, not with strtok: an empty list must be seen, not skipped */
    for (int i = 0; i < n; i++) {
        char *semicolon = strchr(arg, ';');
        lists[i] = arg;
        if (semicolon != NULL) {
            *semicolon = '\0';
            arg = semicolon + 1;
        }
        if (n > 1 && lists[i][0] == '\0') {
            snprintf(err, err_size,
                     "--tokens: list %d of %d (split by ';') is empty; give token ids in every list, "
                     "e.g. --tokens '1,2;3,4'",
                     i + 1, n);
            return -1;
        }
    }
    *n_lists = n;
    return 0;
}

/* ---- --tokens-file tokens.npy ----------------------------------------- */

static int parse_npy_header(FILE *f, long *count, const char **why) {
    unsigned char pre[10];
    if (fread(pre, 1, sizeof pre, f) != sizeof pre || memcmp(pre, "\x93NUMPY", 6) != 0) {
        *why = "not a .npy file";
        return -1;
    }
    size_t header_len = pre[6] == 1 ? (size_t) (pre[8] | pre[9] << 8) : 0;
    if (pre[6] != 1) { /* versions 2 and 3 have a 4-byte length */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) {
            *why = "truncated header";
            return -1;
        }
        header_len = (size_t) pre[8] | (size_t) pre[9] << 8 | (size_t) more[0] << 16 | (size_t) more[1] << 24;
    }
    char header[4096];
    if (header_len >= sizeof header || fread(header, 1, header_len, f) != header_len) {
        *why = "truncated or oversized header";
        return -1;
    }
    header[header_len] = '\0';
    int         size = strstr(header, "'<i4'") ? 4 : strstr(header, "'<i8'") ? 8 : 0;
    const char *shape = strstr(header, "'shape': (");
    if (size == 0 || strstr(header, "'fortran_order': False") == NULL || shape == NULL ||
        sscanf(shape, "'shape': (%ld,)", count) != 1 || *count < 0) {
        *why = "not a 1-D little-endian int32 or int64 array";
        return -1;
    }
    return size;
}

static int read_ids(FILE *f, int size, long count, int32_t *out) {
    for (long i = 0; i < count; i++) {
        unsigned char b[8];
        if (fread(b, 1, (size_t) size, f) != (size_t) size) {
            return -1;
        }
        uint64_t bits = 0;
        for (int j = size - 1; j >= 0; j--) {
            bits = (bits << 8) | b[j];
        }
        /* sign-extend; ids outside int32 become -1, which the id check refuses */
        int64_t v = size == 4 ? (int64_t) (int32_t) (uint32_t) bits : (int64_t) bits;
        out[i] = v < INT32_MIN || v > INT32_MAX ? -1 : (int32_t) v;
    }
    return 0;
}

int ref_read_token_file(const char *path, int32_t **tokens, int *n_tokens, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_size, "--tokens-file %s: %s; give a .npy file of token ids", path, strerror(errno));
        return -1;
    }
    long        count = 0;
    const char *why = NULL;
    int         size = parse_npy_header(f, &count, &why);
    int32_t    *out = size > 0 && count > 0 ? malloc((size_t) count * sizeof *out) : NULL;
    if (size > 0 && count > 0 && out != NULL && read_ids(f, size, count, out) != 0) {
        why = "the file is shorter than its header says";
    }
    fclose(f);
    if (why == NULL && (count == 0 || out == NULL)) {
        why = count == 0 ? "it holds no tokens" : "out of memory";
    }
    if (why != NULL) {
        snprintf(err, err_size,
                 "--tokens-file %s: %s; give a 1-D int32 .npy file, e.g. "
                 "numpy.save('t.npy', numpy.array([1, 2, 3], dtype=numpy.int32))",
                 path, why);
        free(out);
        return -1;
    }
    *tokens = out;
    *n_tokens = (int) count;
    return 0;
}

int ref_check_tokens(const int32_t *tokens, int n_tokens, int n_vocab, char *err, size_t err_size) {
    for (int i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            snprintf(err, err_size,
                     "token %d (at index %d) is not a valid id for this model; "
                     "ids must be in 0..%d",
                     tokens[i], i, n_vocab - 1);
            return -1;
        }
    }
    return 0;
}

/* ---- --fault ----------------------------------------------------------- */

static const struct {
    enum ref_fault_kind kind;
    const char         *name;
} faults[] = {
    {REF_FAULT_EPS, "eps"},
    {REF_FAULT_SWAP_HEADS, "swap-heads"},
    {REF_FAULT_ROPE_OFFSET, "rope-offset"},
    {REF_FAULT_NO_ATTN_BIAS, "no-attn-bias"},
    {REF_FAULT_MASK, "mask"},
    {REF_FAULT_FFN_EPS, "ffn-eps"},
};

const char *ref_fault_name(enum ref_fault_kind kind) {
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        if (faults[i].kind == kind) {
            return faults[i].name;
        }
    }
    return "none";
}

/* The layer after the colon: digits only. */
static int parse_fault_layer(const char *s, int *layer) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!isdigit((unsigned char) s[0]) || *end != '\0' || errno != 0 || v > 1000000) {
        return -1;
    }
    *layer = (int) v;
    return 0;
}

/* "=VALUE" after the layer of eps and ffn-eps: the epsilon, a positive number. */
static int parse_fault_value(const char *s, enum ref_fault_kind kind, float *value) {
    char  *end;
    double v = strtod(s, &end);
    if ((kind != REF_FAULT_EPS && kind != REF_FAULT_FFN_EPS) || end == s || *end != '\0' || !(v > 0) || v > 1e6) {
        return -1;
    }
    *value = (float) v;
    return 0;
}

int ref_parse_fault(const char *spec, struct ref_fault *fault, char *err, size_t err_size) {
    *fault = (struct ref_fault){REF_FAULT_NONE, -1, REF_FAULT_EPS_VALUE};
    if (strcmp(spec, "none") == 0) {
        return 0;
    }
    char        layer_text[32];
    const char *colon = strchr(spec, ':');
    const char *eq = colon != NULL ? strchr(colon, '=') : NULL;
    int         layer;
    snprintf(layer_text, sizeof layer_text, "%.*s",
             colon == NULL ? 0
             : eq          ? (int) (eq - colon - 1)
                           : 31,
             colon == NULL ? "" : colon + 1);
    if (colon != NULL && parse_fault_layer(layer_text, &layer) == 0) {
        for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
            size_t len = (size_t) (colon - spec);
            if (strlen(faults[i].name) == len && strncmp(spec, faults[i].name, len) == 0) {
                *fault = (struct ref_fault){faults[i].kind, layer, REF_FAULT_EPS_VALUE};
                if (eq == NULL || parse_fault_value(eq + 1, faults[i].kind, &fault->value) == 0) {
                    return 0;
                }
            }
        }
    }
    snprintf(err, err_size,
             "--fault '%s' is not a fault; use eps:L, ffn-eps:L (each with =EPSILON if wished, default 0.1), "
             "swap-heads:L, rope-offset:L, no-attn-bias:L or mask:L with L a layer number",
             spec);
    return -1;
}

int ref_check_fault(const struct ref_fault *fault, const struct ref_model *m, int n_sequences, char *err,
                    size_t err_size) {
    if (fault->kind == REF_FAULT_NONE) {
        return 0;
    }
    const char *name = ref_fault_name(fault->kind);
    const char *why = NULL;
    if (fault->layer >= m->hp.n_layer) {
        snprintf(err, err_size, "--fault %s:%d: the model has layers 0-%d; choose one of them", name, fault->layer,
                 m->hp.n_layer - 1);
        return -1;
    }
    if (fault->kind == REF_FAULT_SWAP_HEADS && m->hp.n_head < 2) {
        why = "the model has only one query head";
    } else if (fault->kind == REF_FAULT_ROPE_OFFSET && m->hp.arch != REF_ARCH_LLAMA) {
        why = "the model applies no RoPE";
    } else if (fault->kind == REF_FAULT_NO_ATTN_BIAS && m->layers[fault->layer].bo == NULL) {
        why = "the model has no attention output bias in that layer";
    } else if (fault->kind == REF_FAULT_MASK && n_sequences < 2) {
        snprintf(err, err_size,
                 "--fault mask:%d needs several sequences (in a run of one, no other sequence's cells can leak "
                 "into attention); give several token lists split by ';', e.g. --tokens '1,2,3;4,5'",
                 fault->layer);
        return -1;
    }
    if (why != NULL) {
        snprintf(err, err_size, "--fault %s:%d: %s; choose another fault for this model", name, fault->layer, why);
        return -1;
    }
    return 0;
}

/* kinds.c - the table of checkpoint kinds and the file naming scheme.
 * One table, shared by the extractor, the writer API and the docs. */
#include "llorch_checkpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct llorch_ckpt_kind_info kinds[LLORCH_CKPT_KIND_COUNT] = {
    {LLORCH_CKPT_ATTN_NORM, "attn_norm", 1, true, "token,channel", false},
    {LLORCH_CKPT_QCUR, "Qcur", 2, true, "token,head,channel", false},
    {LLORCH_CKPT_KCUR, "Kcur", 2, true, "token,head,channel", false},
    {LLORCH_CKPT_VCUR, "Vcur", 2, true, "token,head,channel", false},
    {LLORCH_CKPT_QCUR_PRE_ROPE, "Qcur_pre_rope", 2, true, "token,head,channel", false},
    {LLORCH_CKPT_KCUR_PRE_ROPE, "Kcur_pre_rope", 2, true, "token,head,channel", false},
    {LLORCH_CKPT_CACHE_K, "cache_k", 3, true, "key,head,channel", false},
    {LLORCH_CKPT_CACHE_V, "cache_v", 3, true, "key,head,channel", false},
    {LLORCH_CKPT_KQ_SOFT_MAX, "kq_soft_max", 4, true, "head,token,key", false},
    {LLORCH_CKPT_ATTN_OUT_PROJ, "attn_out_proj", 5, true, "token,channel", false},
    {LLORCH_CKPT_FFN_OUT, "ffn_out", 6, true, "token,channel", false},
    {LLORCH_CKPT_EMBD, "embd", 0, false, "token,channel", false},
    {LLORCH_CKPT_FFN_INP, "ffn_inp", 0, true, "token,channel", false},
    {LLORCH_CKPT_L_OUT, "l_out", 0, true, "token,channel", false},
    {LLORCH_CKPT_RESULT_NORM, "result_norm", 0, false, "token,channel", false},
    {LLORCH_CKPT_LOGITS, "logits", 0, false, "token,vocab", false},
    {LLORCH_CKPT_Q_NORM, "q_norm", 0, true, "token,head,channel", true},
    {LLORCH_CKPT_K_NORM, "k_norm", 0, true, "token,head,channel", true},
    {LLORCH_CKPT_QCUR_UNSCALED, "Qcur_unscaled", 0, true, "token,head,channel", true},
    {LLORCH_CKPT_ATTN_OUT_FINAL, "attn_out_final", 0, true, "token,channel", true},
    {LLORCH_CKPT_FFN_OUT_FINAL, "ffn_out_final", 0, true, "token,channel", true},
    {LLORCH_CKPT_FFN_MOE_OUT, "ffn_moe_out", 0, true, "token,channel", true},
    {LLORCH_CKPT_FFN_SHEXP_OUT, "ffn_shexp_out", 0, true, "token,channel", true},
    {LLORCH_CKPT_FFN_DENSE_OUT, "ffn_dense_out", 0, true, "token,channel", true},
    {LLORCH_CKPT_CACHE_R, "cache_r", 3, true, "state", true},
    {LLORCH_CKPT_CACHE_S, "cache_s", 3, true, "state", true},
    {LLORCH_CKPT_GRAPH, "graph", 0, false, "", false},
};

const struct llorch_ckpt_kind_info *llorch_ckpt_kind_info(enum llorch_ckpt_kind kind) {
    if ((int) kind < 0 || kind >= LLORCH_CKPT_KIND_COUNT) {
        return NULL;
    }
    return &kinds[kind];
}

int llorch_ckpt_kind_from_name(const char *name) {
    for (int i = 0; i < LLORCH_CKPT_KIND_COUNT; i++) {
        if (strcmp(kinds[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* Graph names come partly from the model file: keep [A-Za-z0-9_-] and
 * replace everything else, so a name can never become a path, a hidden file
 * or "..". */
static void sanitize(char *dst, size_t size, const char *src) {
    size_t n = 0;
    for (; src[n] != '\0' && n + 1 < size; n++) {
        unsigned char c = (unsigned char) src[n];
        dst[n] = (isalnum(c) || c == '_' || c == '-') ? (char) c : '_';
    }
    dst[n] = '\0';
}

int llorch_ckpt_file_name(char *buf, size_t size, enum llorch_ckpt_kind kind, int layer, int seq, int step,
                          const char *graph_name, const char *ext) {
    const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info(kind);
    if (info == NULL || ext == NULL) {
        return -1;
    }
    char where[64] = ""; /* "_l03", "_l03_seq01", "_seq01" or "" */
    int  w = layer >= 0 ? snprintf(where, sizeof where, "_l%02d", layer) : 0;
    if (seq >= 0) {
        snprintf(where + w, sizeof where - (size_t) w, "_seq%02d", seq);
    }
    int n;
    if (kind == LLORCH_CKPT_GRAPH) {
        char safe[128];
        sanitize(safe, sizeof safe, graph_name != NULL ? graph_name : "unnamed");
        n = snprintf(buf, size, "graph_%s%s_s%03d.%s", safe, seq >= 0 ? where + w : "", step, ext);
    } else {
        n = snprintf(buf, size, "checkpoint_%02d_%s%s_s%03d.%s", info->number, info->name, where, step, ext);
    }
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}

/* identify_internal.h - the analysis context and the functions of each
 * file of the identification, bottom to top: identify_base.c (result,
 * shared helpers), the passes (identify_attn.c, identify_branch.c,
 * identify_state.c, identify_stream.c), identify.c (their order). A file
 * calls only the files before it in this list. */
#ifndef LLORCH_IDENTIFY_INTERNAL_H
#define LLORCH_IDENTIFY_INTERNAL_H

#include "identify.h"

#include <stdint.h>

/* One softmax attention (KQ -> softmax -> KQV) or one flash-attention node. */
struct attn_core {
    int kq, softmax, kqv; /* -1 where not applicable               */
    int fa;               /* FLASH_ATTN_EXT node, or -1            */
    int q_in, k_in, v_in; /* what the matmuls (or FA) read          */
    int layer;
    int k_cache, v_cache; /* leaf indices of the caches read, or -1 */
};

/* What the analysis found about one layer; the reasons for absences come
 * from here. */
struct layer_facts {
    int         core;      /* index into cores, or -1 */
    bool        has_mixer; /* attention or another mixer before the FFN */
    const char *mixer_op;  /* the non-attention mixer's op, or NULL */
    int         mixer;     /* that node, or -1 */
    int         attn_end;  /* end of the mixer branch (unpeeled), or -1 */
    int         ffn_end;   /* end of the FFN branch (unpeeled), or -1 */
    int         ffn_ends;  /* how many separate ends the FFN has */
    int         ffn_starts;
    int         ffn_base;       /* what the FFN's first products read, or -1 */
    int         ffn_ends_at[4]; /* the FFN's ends (unpeeled) */
    int         n_ffn_ends;
    int         mixer_base; /* what the mixer's first products read, or -1 */
    bool        recurrent;  /* a mixer without attention whose branch was grown */
    bool        mla;        /* V read from the K cache */
    bool        no_cache;   /* K and V are the current tokens' */
    bool        no_rope, partial_rope;
    bool        parallel; /* attention and FFN added to the residual together */
    const char *merge_op; /* a branch leaves by this op, not by an ADD */
};

struct ictx {
    const struct llorch_identify_input *in;
    const struct llorch_graph          *g;
    uint8_t                            *is_const;   /* computed from weights only */
    uint8_t                            *is_mixer;   /* attention or recurrent core  */
    uint8_t                            *region;     /* scratch: one branch          */
    uint8_t                            *anc, *anc2; /* scratch: ancestor marks      */
    uint8_t *carried; /* inside an earlier layer's recurrent mixer branch (not its end): a value that a later
                         layer's mixer may read (RWKV-7's first-layer value) */
    bool                    allow_carried; /* growing a recurrent mixer branch: carried values are not foreign */
    struct attn_core       *cores;
    int                     n_cores;
    struct layer_facts     *layers; /* [n_layer] */
    struct llorch_identity *out;
    size_t                  cap_roles, cap_absent;
    bool                    oom;
};

/* identify_base.c: the result and the shared helpers, below every pass */
const char *llorch_id_arch(const struct ictx *c); /* the architecture's name, for reasons */
/* The ops that carry a state from token to token (SSM scan, WKV, gated
 * linear attention, delta net). */
bool llorch_id_is_recurrence(enum ggml_op op);
void llorch_id_add_role(struct ictx *c, enum llorch_ckpt_kind kind, int layer, int node, int ready);
void llorch_id_add_absence(struct ictx *c, enum llorch_ckpt_kind kind, int layer, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* The role when node >= 0, else the absence with its reason. */
void llorch_id_role_or_absence(struct ictx *c, enum llorch_ckpt_kind kind, int layer, int node, int ready,
                               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
int llorch_id_weight_layer(const struct ictx *c, int node); /* the layer of node's weight input, or -1 */
int llorch_id_strip_views(const struct ictx *c, int node);
int llorch_id_head_source(const struct ictx *c, int node, int64_t head_dim);
int llorch_id_ancestor_layer(struct ictx *c, int node);

/* identify_attn.c */
void llorch_id_find_cores(struct ictx *c);
void llorch_id_attention(struct ictx *c, int core);

/* identify_branch.c */
void llorch_id_mixers(struct ictx *c);
void llorch_id_branches(struct ictx *c, int layer);
void llorch_id_residual(struct ictx *c);
void llorch_id_output(struct ictx *c);

/* identify_state.c */
void llorch_id_states(struct ictx *c, int layer);

#endif

/* identify.h - which graph tensor is which checkpoint, by dataflow.
 *
 * Names in a llama.cpp graph are hints at best: the same name labels up to
 * four tensors, many tensors are unnamed, and some models name a tensor
 * after something else (jamba's attention output is called "ffn_inp").
 * identify.c therefore reads the recorded graph of a step (graph.h) and
 * finds each checkpoint by what it is:
 *
 *   Qcur           what enters the KQ matmul (or flash attention) as the query
 *   Kcur, Vcur     what is written into the K / V cache (without a cache:
 *                  what enters KQ / KQV)
 *   cache_k/_v     the cache views that KQ and KQV read
 *   kq_soft_max    the softmax whose output KQV multiplies
 *   attn_norm      the input of the query projection that the key/value
 *                  projections share
 *   attn_out_proj  the end of the attention branch: output projection, bias
 *                  and scale, before post-norm and residual multiplier
 *   ffn_out        the end of the FFN branch (dense, routed experts plus
 *                  shared expert, or dense + MoE), before post-norm and
 *                  residual multiplier
 *
 * plus the residual stream (embd, ffn_inp, l_out), the output (result_norm,
 * logits) and architecture-specific extras. docs/FORMAT.md states every
 * rule; docs/ARCHITECTURES.md shows the result for every llama.cpp
 * architecture. Where a model has no such tensor, the identity holds an
 * absence with the reason instead. In a layer whose mixer is not attention
 * (SSM, linear attention, RWKV), attn_norm is the mixer's input and
 * attn_out_proj its output. */
#ifndef LLORCH_IDENTIFY_H
#define LLORCH_IDENTIFY_H

#include "graph.h"
#include "llorch_checkpoint.h"

struct llorch_identify_input {
    const struct llorch_graph *graph; /* finished (consumers known) */
    int                        n_tokens;
    int                        n_layer, n_embd, n_vocab;
    const char                *arch; /* for messages */
};

struct llorch_role {
    enum llorch_ckpt_kind kind;
    int                   layer; /* -1 for model-level tensors */
    int                   node;  /* the tensor whose data is the checkpoint */
    int                   ready; /* the node from whose completion on the data is final */
};

struct llorch_absence {
    enum llorch_ckpt_kind kind;
    int                   layer;
    char                  reason[224];
};

struct llorch_identity {
    struct llorch_role    *roles; /* sorted by node */
    int                    n_roles;
    struct llorch_absence *absent;
    int                    n_absent;
};

/* Identifies every checkpoint in the graph. -1 only when out of memory. */
int  llorch_identify_graph(const struct llorch_identify_input *in, struct llorch_identity *out);
void llorch_identity_free(struct llorch_identity *id);

/* Why kind/layer has no tensor in this graph, or NULL if it has one or no
 * reason was found. */
const char *llorch_identity_absent_reason(const struct llorch_identity *id, enum llorch_ckpt_kind kind, int layer);

/* True for the names that only the patched llama.cpp gives. */
bool llorch_identify_is_patch_name(const char *name);

#endif

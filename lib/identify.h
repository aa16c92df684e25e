/* identify.h - which graph tensor is which checkpoint.
 *
 * llama.cpp reuses names (Qcur-N names up to four tensors, ffn_out-N two in
 * llama with a control vector), leaves some tensors unnamed (the gpt2/qwen2
 * attention output projection) and names two ops after the same cache view.
 * So a checkpoint is found by name together with op and shape, and by graph
 * structure (which weight a MUL_MAT reads, which bias an ADD adds) where a
 * name alone would be wrong. */
#ifndef LLORCH_IDENTIFY_H
#define LLORCH_IDENTIFY_H

#include "llorch_capture.h"

#include <ggml.h>
#include <stdbool.h>

/* What the identification needs to know about the model. */
struct llorch_model_facts {
    char  arch[64];
    int   n_layer, n_embd, n_head, n_head_kv, n_vocab;
    bool  rope;                /* Q and K pass through RoPE                  */
    bool  pos_embd;            /* learned position embeddings (gpt2): embd = inpL */
    bool *attn_out_weight;     /* per layer: blk.N.attn_output.weight exists */
    bool *attn_out_bias;       /* per layer: blk.N.attn_output.bias exists   */
    bool *ffn_down_weight;
    bool *ffn_down_bias;
};

int  llorch_model_facts_load(struct llorch_model_facts *f, const struct llama_model *model, const char *path,
                             char *err, size_t err_size);
void llorch_model_facts_free(struct llorch_model_facts *f);

/* The checkpoint kind of t (or -1), and its layer (-1: model level). */
int  llorch_identify(const struct llorch_model_facts *f, enum llorch_capture_identify mode,
                     const struct ggml_tensor *t, int *layer);

/* True for the names that only the patched llama.cpp gives. */
bool llorch_identify_is_patch_name(const char *name);

/* Why a requested checkpoint cannot exist for this model (NULL: it should). */
const char *llorch_identify_absent_reason(const struct llorch_model_facts *f, enum llorch_ckpt_kind kind,
                                          bool flash_attn);

#endif

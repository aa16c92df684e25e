/*
 * ref_input.h - the engine's inputs besides the command line's own
 * grammar (programs/cli.h): token ids from a .npy file, their check against
 * the vocabulary, and the --fault spec.
 */
#ifndef REF_INPUT_H
#define REF_INPUT_H

#include "ref_forward.h"

#include <stddef.h>
#include <stdint.h>

/* A 1-D .npy file of int32 or int64 (little-endian) token ids. */
int ref_read_token_file(const char *path, int32_t **tokens, int *n_tokens, char *err, size_t err_size);

/* Every id in 0..n_vocab-1. */
int ref_check_tokens(const int32_t *tokens, int n_tokens, int n_vocab, char *err, size_t err_size);

/* "eps:L", "swap-heads:L", "rope-offset:L", "no-attn-bias:L", or "none". */
int         ref_parse_fault(const char *spec, struct ref_fault *fault, char *err, size_t err_size);
const char *ref_fault_name(enum ref_fault_kind kind);

/* Whether the model can have this fault (layer in range, a second query
 * head, RoPE, an attention output bias). */
int ref_check_fault(const struct ref_fault *fault, const struct ref_model *m, char *err, size_t err_size);

#endif /* REF_INPUT_H */

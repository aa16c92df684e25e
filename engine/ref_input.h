/*
 * ref_input.h - the engine's inputs besides the command line's own
 * grammar (programs/cli.h): --tokens lists, token ids from a .npy file,
 * their check against the vocabulary, and the --fault spec.
 */
#ifndef REF_INPUT_H
#define REF_INPUT_H

#include "ref_forward.h"

#include <stddef.h>
#include <stdint.h>

/* The most sequences one run decodes together (llama.cpp's LLAMA_MAX_SEQ). */
#define REF_MAX_SEQUENCES 256

/* Splits --tokens "1,2,3;4,5" in place at each ';' into *n_lists lists
 * (lists has room for REF_MAX_SEQUENCES): one per sequence. Refuses more
 * lists than REF_MAX_SEQUENCES, and an empty list among several (a single
 * list is left to the token grammar's own message). */
int ref_split_token_lists(char *arg, char **lists, int *n_lists, char *err, size_t err_size);

/* A 1-D .npy file of int32 or int64 (little-endian) token ids. */
int ref_read_token_file(const char *path, int32_t **tokens, int *n_tokens, char *err, size_t err_size);

/* Every id in 0..n_vocab-1. */
int ref_check_tokens(const int32_t *tokens, int n_tokens, int n_vocab, char *err, size_t err_size);

/* "eps:L", "swap-heads:L", "rope-offset:L", "no-attn-bias:L", "mask:L", or "none". */
int         ref_parse_fault(const char *spec, struct ref_fault *fault, char *err, size_t err_size);
const char *ref_fault_name(enum ref_fault_kind kind);

/* Whether the model and run can have this fault (layer in range, a second
 * query head, RoPE, an attention output bias, a second sequence). */
int ref_check_fault(const struct ref_fault *fault, const struct ref_model *m, int n_sequences, char *err,
                    size_t err_size);

#endif /* REF_INPUT_H */

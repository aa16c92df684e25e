/*
 * ref_sequences.h - the sequences of a run and the order in which their
 * tokens are decoded: the order of llorch-checkpoint-extractor --parallel
 * (programs/extractor_sequences.c), so that the two dumps hold the same
 * steps.
 *
 *   prompts    sequence 0's tokens at positions 0..n0-1, then sequence 1's
 *              at 0..n1-1, ...: this concatenation in steps of n_ubatch
 *              consecutive tokens (a step may hold the end of one sequence
 *              and the start of the next);
 *   generated  each of the -n steps decodes one token of every sequence,
 *              in order of id: the greedy argmax of that sequence's last
 *              logits.
 *
 * A run of one sequence is the same order: its prompt in steps of
 * n_ubatch tokens, then one token per step.
 */
#ifndef REF_SEQUENCES_H
#define REF_SEQUENCES_H

#include "ref_forward.h"
#include "ref_input.h"

#include <stdbool.h>
#include <stdint.h>

/* The prompts as given: one token list per sequence. */
struct ref_prompts {
    int32_t *ids[REF_MAX_SEQUENCES];
    int      n_ids[REF_MAX_SEQUENCES];
    int      count;
};

void ref_prompts_free(struct ref_prompts *p);

struct ref_sequence {
    int32_t *tokens; /* prompt, then generated tokens, in position order */
    int      n_prompt;
    int      n_tokens;
    int32_t  next; /* its greedy next token, once its last token is decoded */
};

struct ref_sequences {
    struct ref_sequence *seqs;
    int                  n_seqs;
    int32_t             *tokens;   /* every token of the run, in decode order */
    int                  n_prompt; /* prompt tokens of all sequences          */
    int                  n_tokens;
    int                  n_ubatch;                             /* prompt tokens per step                  */
    int                  n_generate;                           /* generated steps still to come           */
    int                  prompt_seq;                           /* the next prompt token to decode:        */
    int                  prompt_index;                         /*   sequence prompt_seq's prompt_index-th */
    int32_t             *batch_tokens, *batch_pos, *batch_seq; /* [max_rows] */
    int                  max_rows;                             /* the most tokens in one step */
};

/* Takes the prompts (their lists become the sequences' token arrays);
 * n_ubatch 0: the whole prompt in one step. Returns 0, or -1 when out of
 * memory. */
int  ref_sequences_init(struct ref_sequences *s, struct ref_prompts *prompts, int n_predict, int n_ubatch);
void ref_sequences_free(struct ref_sequences *s);

/* The next step's tokens in b (valid until the next call); false when the
 * run is done. A generated step appends each sequence's next token. */
bool ref_sequences_next(struct ref_sequences *s, struct ref_batch *b);

/* After a step: each sequence whose last token was in b takes the greedy
 * argmax of that token's logits ([b->n_tokens][n_vocab]) as its next. */
void ref_sequences_take_logits(struct ref_sequences *s, const struct ref_batch *b, const float *logits, int n_vocab);

#endif /* REF_SEQUENCES_H */

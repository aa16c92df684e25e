/*
 * ref_feed.h - --feed REF_DUMP: the engine computes each layer from another
 * dump's residual stream (docs/FORMAT.md, "Fed runs").
 *
 * At the start of each layer L the forward pass has computed its own input
 * (embd for L = 0, l_out of L-1 after) and written it as its checkpoint;
 * then it replaces its residual rows by the reference's rows at the same
 * (sequence, position), read with llorch_ckpt_dump_residual. The same
 * after attention: ffn_inp is written, then replaced, where the reference
 * has ffn_inp. Every other checkpoint of layer L is then this engine's
 * computation on the reference's input to L, so a bug shows in its own
 * layer only.
 *
 * All rows are read and checked before the run starts, so that a
 * reference of another model, of other tokens or without the rows is
 * refused before anything is written.
 */
#ifndef REF_FEED_H
#define REF_FEED_H

#include "llorch_compare.h"
#include "ref_model.h"
#include "ref_sequences.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ref_feed {
    llorch_ckpt_dump *dump;
    int               n_layer, n_embd, n_seqs;
    bool              ffn;          /* the reference has ffn_inp: the FFN's input is replaced too */
    float           **rows;         /* [(seq * n_layer + layer) * 2 + where]: [n_pos[seq]][n_embd] */
    int              *n_pos;        /* [seq] positions read: prompt and generated             */
    const int32_t   **ref_tokens;   /* [seq] the reference's tokens in position order         */
    int              *n_ref_tokens; /* [seq]                                                  */
    char             *fed_json;     /* the manifest's "fed" object                            */
};

/* Opens the reference dump at path and reads every row the run needs:
 * the sequences' prompts (checked to be the start of the reference's
 * tokens) and n_predict generated tokens each. fingerprint is the model's
 * (NULL when unknown). -1 with one line in err naming the reference and
 * the fix. */
int  ref_feed_open(struct ref_feed *f, const char *path, const struct ref_model *m, const char *fingerprint,
                   const struct ref_sequences *seqs, int n_predict, char *err, size_t err_size);
void ref_feed_free(struct ref_feed *f);

/* The reference's row of `where` for layer at (seq, pos); both were
 * checked by ref_feed_open. */
const float *ref_feed_row(const struct ref_feed *f, enum llorch_ckpt_residual where, int layer, int seq, int pos);

/* After a step: the sequences whose last token was in b decode the
 * reference's next token, not their own argmax (a fed run follows the
 * reference's tokens, so that the two dumps line up); returns how many
 * picks differed from the engine's own. */
int ref_feed_take_tokens(const struct ref_feed *f, struct ref_sequences *s, const struct ref_batch *b);

#endif /* REF_FEED_H */

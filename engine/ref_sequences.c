/*
 * ref_sequences.c - the decode order of a run's sequences.
 */
#include "ref_sequences.h"

#include <stdlib.h>
#include <string.h>

void ref_prompts_free(struct ref_prompts *p) {
    for (int i = 0; i < p->count; i++) {
        free(p->ids[i]);
        p->ids[i] = NULL;
    }
    p->count = 0;
}

/* Each sequence's prompt, with room for its generated tokens after it. */
static int take_prompts(struct ref_sequences *s, struct ref_prompts *prompts, int n_predict) {
    for (int i = 0; i < s->n_seqs; i++) {
        struct ref_sequence *q = &s->seqs[i];
        int32_t *tokens = realloc(prompts->ids[i], (size_t) (prompts->n_ids[i] + n_predict) * sizeof *tokens);
        if (tokens == NULL) {
            return -1;
        }
        prompts->ids[i] = NULL;
        *q = (struct ref_sequence){.tokens = tokens, .n_prompt = prompts->n_ids[i], .n_tokens = prompts->n_ids[i]};
        s->n_prompt += q->n_prompt;
    }
    return 0;
}

int ref_sequences_init(struct ref_sequences *s, struct ref_prompts *prompts, int n_predict, int n_ubatch) {
    *s = (struct ref_sequences){.n_seqs = prompts->count, .n_generate = n_predict};
    s->seqs = calloc((size_t) s->n_seqs, sizeof *s->seqs);
    if (s->seqs == NULL || take_prompts(s, prompts, n_predict) != 0) {
        return -1;
    }
    s->n_ubatch = n_ubatch > 0 && n_ubatch < s->n_prompt ? n_ubatch : s->n_prompt;
    s->max_rows = s->n_ubatch > s->n_seqs ? s->n_ubatch : s->n_seqs;
    s->tokens = malloc((size_t) (s->n_prompt + n_predict * s->n_seqs) * sizeof *s->tokens);
    s->batch_tokens = malloc((size_t) s->max_rows * sizeof *s->batch_tokens);
    s->batch_pos = malloc((size_t) s->max_rows * sizeof *s->batch_pos);
    s->batch_seq = malloc((size_t) s->max_rows * sizeof *s->batch_seq);
    if (s->tokens == NULL || s->batch_tokens == NULL || s->batch_pos == NULL || s->batch_seq == NULL) {
        return -1;
    }
    for (int i = 0; i < s->n_seqs; i++) {
        memcpy(&s->tokens[s->n_tokens], s->seqs[i].tokens, (size_t) s->seqs[i].n_prompt * sizeof *s->tokens);
        s->n_tokens += s->seqs[i].n_prompt;
    }
    return 0;
}

void ref_sequences_free(struct ref_sequences *s) {
    for (int i = 0; s->seqs != NULL && i < s->n_seqs; i++) {
        free(s->seqs[i].tokens);
    }
    free(s->seqs);
    free(s->tokens);
    free(s->batch_tokens);
    free(s->batch_pos);
    free(s->batch_seq);
    memset(s, 0, sizeof *s);
}

static void add_token(struct ref_sequences *s, struct ref_batch *b, int32_t token, int32_t pos, int32_t seq) {
    s->batch_tokens[b->n_tokens] = token;
    s->batch_pos[b->n_tokens] = pos;
    s->batch_seq[b->n_tokens] = seq;
    b->n_tokens++;
}

/* The next n_ubatch tokens of the concatenated prompts. */
static void next_prompt_batch(struct ref_sequences *s, struct ref_batch *b) {
    while (s->prompt_seq < s->n_seqs && b->n_tokens < s->n_ubatch) {
        const struct ref_sequence *q = &s->seqs[s->prompt_seq];
        add_token(s, b, q->tokens[s->prompt_index], s->prompt_index, s->prompt_seq);
        if (++s->prompt_index == q->n_prompt) {
            s->prompt_seq++;
            s->prompt_index = 0;
        }
    }
}

/* One generated token of every sequence, in order of id. */
static void next_generated_batch(struct ref_sequences *s, struct ref_batch *b) {
    for (int i = 0; i < s->n_seqs; i++) {
        struct ref_sequence *q = &s->seqs[i];
        q->tokens[q->n_tokens++] = q->next;
        s->tokens[s->n_tokens++] = q->next;
        add_token(s, b, q->next, q->n_tokens - 1, i);
    }
    s->n_generate--;
}

bool ref_sequences_next(struct ref_sequences *s, struct ref_batch *b) {
    *b = (struct ref_batch){.tokens = s->batch_tokens, .pos = s->batch_pos, .seq = s->batch_seq};
    if (s->prompt_seq < s->n_seqs) {
        next_prompt_batch(s, b);
    } else if (s->n_generate > 0) {
        next_generated_batch(s, b);
    }
    return b->n_tokens > 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        best = x[i] > x[best] ? i : best;
    }
    return best;
}

void ref_sequences_take_logits(struct ref_sequences *s, const struct ref_batch *b, const float *logits, int n_vocab) {
    for (int t = 0; t < b->n_tokens; t++) {
        struct ref_sequence *q = &s->seqs[b->seq[t]];
        if (b->pos[t] == q->n_tokens - 1) {
            q->next = argmax(&logits[(size_t) t * n_vocab], n_vocab);
        }
    }
}

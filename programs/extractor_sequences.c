/* extractor_sequences.c - --parallel N: N sequences decoded together, as an
 * inference server batches its clients. The prompts go in batches of -ub
 * tokens (sequence 0's tokens, then sequence 1's, ...), then every
 * generated step decodes one token of each sequence. Each token is its
 * sequence's own (no shared prompt), so that every file of the dump can
 * be written once per sequence (llorch_capture_begin_batch). main()
 * comes here instead of extractor_single.c when --parallel is given. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the prompts ------------------------------------------------------------ */

/* The first n non-empty lines of text, in place; returns how many. */
static int split_lines(char *text, char **lines, int n) {
    int   k = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line != NULL && k < n; line = strtok_r(NULL, "\r\n", &save)) {
        lines[k++] = line;
    }
    return k;
}

static int add_prompt(struct extractor_run *r, struct extractor_sequence *s, const char *text) {
    s->prompt = strdup(text);
    s->n_prompt = extractor_tokenize(r->vocab, text, r->opt.n_predict + 1, &s->tokens);
    if (s->n_prompt == EXTRACTOR_NO_TOKENIZER) {
        return extractor_bad_input("%s", EXTRACTOR_NO_TOKENIZER_FIX);
    }
    if (s->prompt == NULL || s->n_prompt < 0) {
        return extractor_bad_input("cannot tokenize the prompt of sequence %d; check that it is valid UTF-8",
                                   (int) (s - r->seqs));
    }
    return 0;
}

/* -f FILE: one prompt per line; -p TEXT: the same prompt N times. */
static int prompts_from_text(struct extractor_run *r) {
    char *lines_buf[256];
    int   n = r->opt.parallel;
    if (r->opt.prompt_file != NULL) {
        r->prompt_text = extractor_read_text_file(r->opt.prompt_file);
        if (r->prompt_text == NULL) {
            return extractor_bad_input("cannot read prompt file '%s': %s; check the path given with -f",
                                       r->opt.prompt_file, strerror(errno));
        }
        int got = split_lines(r->prompt_text, lines_buf, n);
        if (got < n) {
            return extractor_bad_input(
                "-f %s holds %d prompt%s (non-empty lines), fewer than --parallel %d; add lines or "
                "lower --parallel",
                r->opt.prompt_file, got, got == 1 ? "" : "s", n);
        }
    }
    for (int i = 0; i < n; i++) {
        int rc = add_prompt(r, &r->seqs[i], r->opt.prompt_file != NULL ? lines_buf[i] : r->opt.prompt);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* --tokens "1,2,3;1,4": one list per sequence, or one list for all. */
static int prompts_from_ids(struct extractor_run *r) {
    char *lists = strdup(r->opt.tokens);
    char *parts[256], *save = NULL;
    int   k = 0;
    for (char *p = lists != NULL ? strtok_r(lists, ";", &save) : NULL; p != NULL && k < 256;
         p = strtok_r(NULL, ";", &save)) {
        parts[k++] = p;
    }
    int rc = 0;
    if (k != 1 && k != r->opt.parallel) {
        rc = extractor_bad_input(
            "--tokens holds %d lists split by ';' for --parallel %d; give one list per sequence, or "
            "one for all",
            k, r->opt.parallel);
    }
    for (int i = 0; i < r->opt.parallel && rc == 0; i++) {
        int32_t                   *ids = NULL;
        int                        n = 0;
        struct extractor_sequence *s = &r->seqs[i];
        rc = cli_token_list(PROG, "--tokens", parts[k == 1 ? 0 : i], &ids, &n) != 0 ? 2 : 0;
        s->tokens = rc == 0 ? malloc((size_t) (n + r->opt.n_predict + 1) * sizeof *s->tokens) : NULL;
        for (int j = 0; j < n && s->tokens != NULL; j++) {
            s->tokens[j] = (llama_token) ids[j];
        }
        s->n_prompt = n;
        free(ids);
        rc = rc != 0 ? rc : s->tokens == NULL ? extractor_fail("--tokens: out of memory") : 0;
    }
    free(lists);
    return rc;
}

/* Every id within the vocabulary, every prompt non-empty. */
static int check_prompts(struct extractor_run *r) {
    int n_vocab = llama_vocab_n_tokens(r->vocab);
    for (int i = 0; i < r->n_seqs; i++) {
        const struct extractor_sequence *s = &r->seqs[i];
        if (s->n_prompt == 0) {
            return extractor_bad_input("the prompt of sequence %d gives no tokens; give a non-empty prompt", i);
        }
        for (int j = 0; j < s->n_prompt; j++) {
            if (s->tokens[j] < 0 || s->tokens[j] >= n_vocab) {
                return extractor_bad_input("--tokens: token id %d (sequence %d) is outside the vocabulary (0-%d); use "
                                           "ids of this model's vocabulary",
                                           (int) s->tokens[j], i, n_vocab - 1);
            }
        }
    }
    return 0;
}

/* The prompts of every sequence, and the run's tokens in decode order. */
int extractor_get_sequences(struct extractor_run *r) {
    r->n_seqs = r->opt.parallel;
    r->seqs = calloc((size_t) r->n_seqs, sizeof *r->seqs);
    if (r->seqs == NULL) {
        return extractor_fail("out of memory holding --parallel %d sequences; lower --parallel", r->n_seqs);
    }
    int rc = r->opt.tokens != NULL ? prompts_from_ids(r) : prompts_from_text(r);
    rc = rc != 0 ? rc : check_prompts(r);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < r->n_seqs; i++) {
        r->seqs[i].n_tokens = r->seqs[i].n_prompt;
        r->n_prompt += r->seqs[i].n_prompt;
    }
    r->n_alloc = extractor_run_length(r);
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    if (r->tokens == NULL) {
        return extractor_fail("out of memory holding %d tokens; lower --parallel or -n", r->n_alloc);
    }
    for (int i = 0; i < r->n_seqs; i++) {
        memcpy(r->tokens + r->n_tokens, r->seqs[i].tokens, (size_t) r->seqs[i].n_prompt * sizeof *r->tokens);
        r->n_tokens += r->seqs[i].n_prompt;
    }
    return 0;
}

void extractor_free_sequences(struct extractor_run *r) {
    for (int i = 0; i < r->n_seqs; i++) {
        free(r->seqs[i].tokens);
        free(r->seqs[i].prompt);
    }
    free(r->seqs);
}

/* --- the steps ----------------------------------------------------------------- */

/* One llama_decode of a batch filled by the caller; afterwards, each
 * sequence whose last token so far was in it gets its greedy next token. */
static int decode_batch(struct extractor_run *r, struct llama_batch *b, const int32_t *seq_of) {
    if (llorch_capture_begin_batch(r->capture, b) != 0) {
        return extractor_fail("%s", llorch_capture_error(r->capture));
    }
    int rc = extractor_decode(r, b);
    if (rc != 0) {
        return rc;
    }
    for (int32_t i = 0; i < b->n_tokens; i++) {
        struct extractor_sequence *s = &r->seqs[seq_of[i]];
        if (b->pos[i] == s->n_tokens - 1) {
            s->next = extractor_greedy_token(r, i);
        }
    }
    return 0;
}

static void add_token(struct llama_batch *b, llama_token token, int32_t pos, int32_t seq) {
    int32_t i = b->n_tokens++;
    b->token[i] = token;
    b->pos[i] = pos;
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq;
    b->logits[i] = 1; /* else the last layer keeps only the output rows */
}

/* The prompts, sequence after sequence, in batches of n_chunk tokens. */
static int decode_prompts(struct extractor_run *r, struct llama_batch *b, int32_t *seq_of) {
    int s = 0, j = 0, done = 0; /* the next token is sequence s's j-th */
    while (s < r->n_seqs && !extractor_interrupted) {
        b->n_tokens = 0;
        while (s < r->n_seqs && b->n_tokens < r->n_chunk) {
            seq_of[b->n_tokens] = s;
            add_token(b, r->seqs[s].tokens[j], j, s);
            if (++j == r->seqs[s].n_prompt) {
                s++;
                j = 0;
            }
        }
        int rc = decode_batch(r, b, seq_of);
        if (rc != 0) {
            return rc;
        }
        extractor_show_progress(r, done += b->n_tokens, extractor_run_length(r));
    }
    return 0;
}

/* One generated token of every sequence. */
static int decode_generated(struct extractor_run *r, struct llama_batch *b, int32_t *seq_of) {
    b->n_tokens = 0;
    for (int s = 0; s < r->n_seqs; s++) {
        struct extractor_sequence *q = &r->seqs[s];
        q->tokens[q->n_tokens] = q->next;
        r->tokens[r->n_tokens++] = q->next;
        seq_of[s] = s;
        add_token(b, q->next, q->n_tokens++, s);
    }
    return decode_batch(r, b, seq_of);
}

int extractor_run_sequences(struct extractor_run *r) {
    int                rc = 0;
    int                room = r->n_chunk > r->n_seqs ? r->n_chunk : r->n_seqs;
    struct llama_batch b = llama_batch_init(room, 0, 1);
    int32_t           *seq_of = malloc((size_t) room * sizeof *seq_of);
    if (seq_of == NULL) {
        rc = extractor_fail("out of memory for a batch of %d tokens; lower -ub", room);
    }
    rc = rc != 0 ? rc : decode_prompts(r, &b, seq_of);
    for (int i = 0; i < r->opt.n_predict && rc == 0 && !extractor_interrupted; i++) {
        rc = decode_generated(r, &b, seq_of);
        extractor_show_progress(r, r->n_tokens, extractor_run_length(r));
    }
    free(seq_of);
    llama_batch_free(b);
    extractor_end_progress(r);
    return rc != 0 ? rc : extractor_interrupted ? 130 : 0;
}

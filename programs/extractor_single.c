/* extractor_single.c - a run of one sequence: its tokens (a prompt, a
 * prompt file, --tokens, or --feed DUMP's), then its decode steps: prompt
 * chunks of -ub tokens, one step per generated token. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- tokens ------------------------------------------------------------------ */

static int tokenize_prompt(struct extractor_run *r) {
    const char *text = r->opt.prompt;
    if (r->opt.prompt_file != NULL) {
        r->prompt_text = extractor_read_text_file(r->opt.prompt_file);
        if (r->prompt_text == NULL) {
            return extractor_bad_input("cannot read prompt file '%s': %s; check the path given with -f",
                                       r->opt.prompt_file, strerror(errno));
        }
        text = r->prompt_text;
    } else {
        r->prompt_text = strdup(text);
    }
    int n = extractor_tokenize(r->vocab, text, r->opt.n_predict + 1, &r->tokens);
    if (n == EXTRACTOR_NO_TOKENIZER) {
        return extractor_bad_input("%s", EXTRACTOR_NO_TOKENIZER_FIX);
    }
    if (n < 0) {
        return extractor_bad_input("cannot tokenize the prompt; check that it is valid UTF-8");
    }
    r->n_alloc = n + r->opt.n_predict + 1;
    r->n_prompt = n;
    return 0;
}

static int parse_token_ids(struct extractor_run *r) {
    int32_t *ids;
    int      n;
    if (cli_token_list(PROG, "--tokens", r->opt.tokens, &ids, &n) != 0) {
        return 2;
    }
    int n_vocab = llama_vocab_n_tokens(r->vocab);
    r->n_alloc = n + r->opt.n_predict + 1;
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    for (int i = 0; i < n && r->tokens != NULL; i++) {
        if (ids[i] >= n_vocab) {
            int bad = (int) ids[i];
            free(ids);
            return extractor_bad_input("--tokens: token id %d is outside the vocabulary (0-%d); use ids of this "
                                       "model's vocabulary",
                                       bad, n_vocab - 1);
        }
        r->tokens[r->n_prompt++] = (llama_token) ids[i];
    }
    free(ids);
    return r->tokens != NULL ? 0 : extractor_bad_input("--tokens: out of memory");
}

int extractor_get_tokens(struct extractor_run *r) {
    bool given = r->opt.tokens != NULL || r->opt.prompt != NULL || r->opt.prompt_file != NULL;
    int  rc = !given ? extractor_feed_tokens(r) : r->opt.tokens != NULL ? parse_token_ids(r) : tokenize_prompt(r);
    if (rc == 0 && r->n_prompt == 0) {
        return extractor_bad_input("the prompt gives no tokens; give a non-empty prompt");
    }
    r->n_tokens = r->n_prompt;
    return rc != 0 ? rc : extractor_check_feed_tokens(r);
}

/* --- the steps ------------------------------------------------------------------ */

/* One llama_decode of tokens[pos .. pos+n), every token an output. */
static int decode_step(struct extractor_run *r, int pos, int n) {
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = r->tokens[pos + i];
        b.pos[i] = pos + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1; /* else the last layer keeps only the output rows */
    }
    b.n_tokens = n;
    llorch_capture_begin_step(r->capture, pos, n);
    int rc = extractor_decode(r, &b);
    llama_batch_free(b);
    return rc;
}

int extractor_run_steps(struct extractor_run *r) {
    int total = r->n_prompt + r->opt.n_predict;
    for (int pos = 0; pos < r->n_prompt && !extractor_interrupted; pos += r->n_chunk) {
        int n = r->n_prompt - pos < r->n_chunk ? r->n_prompt - pos : r->n_chunk;
        int rc = decode_step(r, pos, n);
        if (rc != 0) {
            return rc;
        }
        extractor_show_progress(r, pos + n, total);
    }
    for (int i = 0; i < r->opt.n_predict && !extractor_interrupted; i++) {
        if (r->feed == NULL) { /* fed: DUMP's own next token is there already */
            r->tokens[r->n_tokens] = extractor_greedy_token(r, -1);
        }
        int rc = decode_step(r, r->n_tokens++, 1);
        if (rc != 0) {
            return rc;
        }
        extractor_show_progress(r, r->n_tokens, total);
    }
    extractor_end_progress(r);
    return extractor_interrupted ? 130 : 0;
}

/* extractor_step.c - what the one-sequence steps (extractor_single.c) and
 * the --parallel steps (extractor_sequences.c) share: the graphs recorded
 * before the first step, one timed llama_decode with the capture around
 * it, the greedy next token, and the progress line. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Every batch size the run decodes: prompt chunks, the last chunk, and one
 * token per generated step (one per sequence with --parallel). The capture
 * records each graph once, before the first decode, to plan which nodes to
 * read. */
int extractor_prepare_steps(struct extractor_run *r) {
    int sizes[3] = {r->n_prompt < r->n_chunk ? r->n_prompt : r->n_chunk, r->n_prompt % r->n_chunk,
                    r->opt.n_predict > 0 ? (r->n_seqs > 0 ? r->n_seqs : 1) : 0};
    for (int i = 0; i < 3; i++) {
        if (sizes[i] > 0 && llorch_capture_prepare(r->capture, r->ctx, sizes[i]) != 0) {
            return extractor_fail("%s", llorch_capture_error(r->capture));
        }
    }
    if (r->opt.dump_graph != NULL) {
        FILE *f = fopen(r->opt.dump_graph, "w");
        if (f == NULL) {
            return extractor_bad_input("--dump-graph %s: cannot write it: %s; choose a writable path",
                                       r->opt.dump_graph, strerror(errno));
        }
        llorch_capture_print_plans(r->capture, f);
        fclose(f);
    }
    return 0;
}

int extractor_decode(struct extractor_run *r, struct llama_batch *b) {
    double start = llorch_now_seconds();
    int    rc = llama_decode(r->ctx, *b);
    r->decode_seconds += llorch_now_seconds() - start;
    int capture_rc = llorch_capture_end_step(r->capture);
    r->steps++;
    if (rc != 0 || capture_rc != 0) {
        return rc == 2 && extractor_interrupted ? 130 : 1;
    }
    return 0;
}

llama_token extractor_greedy_token(const struct extractor_run *r, int32_t i) {
    const float *logits = llama_get_logits_ith(r->ctx, i);
    int          n_vocab = llama_vocab_n_tokens(r->vocab);
    int          best = 0;
    for (int v = 1; v < n_vocab; v++) {
        if (logits[v] > logits[best]) {
            best = v;
        }
    }
    return best;
}

/* The step just decoded, numbered as its files are (s000 is step 0). */
void extractor_show_progress(const struct extractor_run *r, int done, int total) {
    if (!r->opt.progress && !isatty(STDERR_FILENO)) {
        return;
    }
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    fprintf(stderr, "%sstep %d: %d/%d tokens, %zu tensors, %.1f MB%s", r->opt.progress ? "" : "\r", r->steps - 1, done,
            total, rep.tensors, (double) rep.bytes / 1e6, r->opt.progress ? "\n" : "");
}

void extractor_end_progress(const struct extractor_run *r) {
    if (!r->opt.progress && isatty(STDERR_FILENO)) {
        fprintf(stderr, "\n");
    }
}

/* extractor_feed.c - --feed DUMP: llama.cpp computes each layer from DUMP's
 * own input to it (docs/FORMAT.md, "Fed runs"). DUMP is checked before
 * anything is written (one sequence, this model, its tokens, every row of
 * embd and l_out, and of ffn_inp where it has any), and its rows are read
 * into memory then, so that the capture's callback only copies them into
 * llama.cpp's tensors (lib/capture/feed.c). */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "llorch_compare.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct extractor_feed {
    llorch_ckpt_dump *dump;
    int               n_layer, n_embd;
    bool              ffn_inp; /* DUMP has ffn_inp: fed too */
    int               n_pos;   /* positions 0 .. n_pos-1 held in rows */
    float            *rows;    /* [slot][position][n_embd]: slot 0 .. n_layer-1 the input of
                                  layer L (embd, l_out of L-1), then ffn_inp of layer L */
};

static bool has_checkpoint(const llorch_ckpt_dump *d, const char *name) {
    for (size_t i = 0; i < llorch_ckpt_dump_n_entries(d); i++) {
        if (strcmp(llorch_ckpt_dump_entry(d, i)->checkpoint, name) == 0) {
            return true;
        }
    }
    return false;
}

/* DUMP must be a dump of this model: architecture, sizes and, where both
 * have one, the fingerprint. */
static int check_model(const struct extractor_run *r, const llorch_ckpt_dump *d) {
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    char                            arch[64] = "", fp[LLORCH_CKPT_FINGERPRINT_SIZE], err[512];
    llama_model_meta_val_str(r->model, "general.architecture", arch, sizeof arch);
    int n_layer = llama_model_n_layer(r->model), n_embd = llama_model_n_embd(r->model);
    if ((m->architecture != NULL && strcmp(m->architecture, arch) != 0) || m->n_layer != n_layer ||
        m->n_embd != n_embd) {
        return extractor_bad_input("--feed %s is a dump of another model (%s, %d layers, n_embd %d; '%s' is %s, %d "
                                   "layers, n_embd %d); feed from a dump of this model",
                                   r->opt.feed, m->architecture != NULL ? m->architecture : "no architecture",
                                   m->n_layer, m->n_embd, r->opt.model, arch, n_layer, n_embd);
    }
    if (m->fingerprint != NULL && llorch_ckpt_gguf_fingerprint(r->opt.model, fp, sizeof fp, err, sizeof err) == 0 &&
        strcmp(fp, m->fingerprint) != 0) {
        return extractor_bad_input("--feed %s is a dump of another model file (its model.fingerprint differs from that "
                                   "of '%s'); feed from a dump of this model's weights",
                                   r->opt.feed, r->opt.model);
    }
    return 0;
}

int extractor_open_feed(struct extractor_run *r) {
    if (r->opt.feed == NULL) {
        return 0;
    }
    if (r->opt.parallel > 0) {
        return extractor_bad_input(
            "--feed does not go with --parallel: a fed run decodes one sequence; drop --parallel");
    }
    char err[1024];
    r->feed = calloc(1, sizeof *r->feed);
    if (r->feed == NULL) {
        return extractor_fail("out of memory opening --feed %s", r->opt.feed);
    }
    r->feed->dump = llorch_ckpt_dump_open(r->opt.feed, err, sizeof err);
    if (r->feed->dump == NULL) {
        return extractor_bad_input("--feed: %s; give the directory of a dump", err);
    }
    const llorch_ckpt_dump *d = r->feed->dump;
    if (llorch_ckpt_dump_n_sequences(d) > 0) {
        return extractor_bad_input("--feed %s holds %zu sequences (--parallel); feed from a dump of one sequence",
                                   r->opt.feed, llorch_ckpt_dump_n_sequences(d));
    }
    if (!llorch_ckpt_dump_has_tokens(d) || llorch_ckpt_dump_n_tokens(d) == 0) {
        return extractor_bad_input("--feed %s lists no tokens; feed from a dump whose manifest has its token ids",
                                   r->opt.feed);
    }
    r->feed->n_layer = llama_model_n_layer(r->model);
    r->feed->n_embd = llama_model_n_embd(r->model);
    r->feed->ffn_inp = has_checkpoint(d, "ffn_inp");
    return check_model(r, d);
}

/* Without -p, -f or --tokens: DUMP's tokens, the last -n of them decoded
 * one by one as generated tokens. */
int extractor_feed_tokens(struct extractor_run *r) {
    size_t n = llorch_ckpt_dump_n_tokens(r->feed->dump);
    if ((size_t) r->opt.n_predict >= n) {
        return extractor_bad_input("-n %d: --feed %s holds %zu tokens in all; give -n below that", r->opt.n_predict,
                                   r->opt.feed, n);
    }
    r->n_alloc = (int) n + 1;
    r->tokens = malloc((size_t) r->n_alloc * sizeof *r->tokens);
    if (r->tokens == NULL) {
        return extractor_fail("out of memory reading the tokens of --feed %s", r->opt.feed);
    }
    memcpy(r->tokens, llorch_ckpt_dump_tokens(r->feed->dump), n * sizeof *r->tokens);
    r->n_prompt = (int) n - r->opt.n_predict;
    return 0;
}

/* The run's tokens must be DUMP's: the prompt its first tokens, and what
 * -n decodes its remaining ones (taken from it, not chosen greedily: the
 * fed logits are not DUMP's own run's). */
int extractor_check_feed_tokens(struct extractor_run *r) {
    if (r->feed == NULL) {
        return 0;
    }
    const int32_t *ids = llorch_ckpt_dump_tokens(r->feed->dump);
    size_t         n = llorch_ckpt_dump_n_tokens(r->feed->dump);
    if ((size_t) r->n_prompt + (size_t) r->opt.n_predict != n) {
        return extractor_bad_input(
            "--feed %s holds %zu tokens, this run %d (%d prompt + -n %d); run on its tokens (drop "
            "-p, -f and --tokens) or set -n to match",
            r->opt.feed, n, r->n_prompt + r->opt.n_predict, r->n_prompt, r->opt.n_predict);
    }
    for (int i = 0; i < r->n_prompt; i++) {
        if (r->tokens[i] != ids[i]) {
            return extractor_bad_input("--feed %s: its token at position %d is %d, this run's %d; run on its tokens "
                                       "(drop -p, -f and --tokens)",
                                       r->opt.feed, i, (int) ids[i], (int) r->tokens[i]);
        }
    }
    for (size_t i = (size_t) r->n_prompt; i < n; i++) {
        r->tokens[i] = ids[i]; /* room: n_prompt + n_predict + 1 */
    }
    return 0;
}

/* Every row the run will feed, read now: a bad or short DUMP is refused
 * before anything is written. */
int extractor_load_feed(struct extractor_run *r) {
    if (r->feed == NULL) {
        return 0;
    }
    struct extractor_feed *f = r->feed;
    int                    slots = f->n_layer * (f->ffn_inp ? 2 : 1);
    f->n_pos = extractor_run_length(r);
    size_t slot_floats = (size_t) f->n_pos * (size_t) f->n_embd;
    f->rows = malloc((size_t) slots * slot_floats * sizeof *f->rows);
    if (f->rows == NULL) {
        return extractor_fail("out of memory reading the residual stream of --feed %s (%d x %d rows)", r->opt.feed,
                              slots, f->n_pos);
    }
    char err[1024];
    for (int s = 0; s < slots; s++) {
        enum llorch_ckpt_residual where =
            s < f->n_layer ? LLORCH_CKPT_RESIDUAL_LAYER_INPUT : LLORCH_CKPT_RESIDUAL_FFN_INPUT;
        if (llorch_ckpt_dump_residual(f->dump, s % f->n_layer, where, -1, 0, f->n_pos,
                                      f->rows + (size_t) s * slot_floats, err, sizeof err) != 0) {
            return extractor_bad_input("--feed: %s", err);
        }
    }
    return 0;
}

/* The capture's feed (llorch_capture_params.feed): rows by position. */
static int supply_rows(void *ctx, enum llorch_ckpt_kind kind, int layer, const int32_t *positions, int32_t n,
                       float *out, char *err, size_t err_size) {
    const struct extractor_feed *f = ctx;
    int slot = kind == LLORCH_CKPT_EMBD ? 0 : kind == LLORCH_CKPT_L_OUT ? layer + 1 : f->n_layer + layer;
    if (slot < 0 || slot >= f->n_layer * (f->ffn_inp ? 2 : 1) || (kind == LLORCH_CKPT_FFN_INP && !f->ffn_inp)) {
        snprintf(err, err_size, "the feed holds no %s of layer %d", llorch_ckpt_kind_info(kind)->name, layer);
        return -1;
    }
    size_t row = (size_t) f->n_embd, base = (size_t) slot * (size_t) f->n_pos * row;
    for (int32_t i = 0; i < n; i++) {
        if (positions[i] < 0 || positions[i] >= f->n_pos) {
            snprintf(err, err_size, "the feed holds no row for position %d (the run has %d tokens)", positions[i],
                     f->n_pos);
            return -1;
        }
        memcpy(out + (size_t) i * row, f->rows + base + (size_t) positions[i] * row, row * sizeof *out);
    }
    return 0;
}

void extractor_feed_params(const struct extractor_run *r, struct llorch_capture_params *p) {
    if (r->feed != NULL) {
        p->feed = supply_rows;
        p->feed_ctx = r->feed;
        p->feed_ffn_inp = r->feed->ffn_inp;
        p->output_bytes = 0; /* the feed writes at graph splits; the capture reads there too */
    }
}

bool extractor_feed_has_ffn_inp(const struct extractor_run *r) {
    return r->feed != NULL && r->feed->ffn_inp;
}

/* The manifest's "fed" object (docs/FORMAT.md), or NULL without --feed. */
char *extractor_feed_json(const struct extractor_run *r) {
    if (r->feed == NULL) {
        return NULL;
    }
    const llorch_ckpt_dump *d = r->feed->dump;
    const char             *producer = llorch_ckpt_dump_producer(d), *fp = llorch_ckpt_dump_model(d)->fingerprint;
    cJSON                  *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "from", r->opt.feed);
    cJSON_AddStringToObject(o, "producer", producer != NULL ? producer : "unknown");
    cJSON_AddItemToObject(o, "fingerprint", fp != NULL ? cJSON_CreateString(fp) : cJSON_CreateNull());
    const char *at[] = {"embd", "l_out", "ffn_inp"};
    cJSON_AddItemToObject(o, "at", cJSON_CreateStringArray(at, r->feed->ffn_inp ? 3 : 2));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int il = 0; il < r->feed->n_layer; il++) {
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(il));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

void extractor_free_feed(struct extractor_run *r) {
    if (r->feed != NULL) {
        llorch_ckpt_dump_free(r->feed->dump);
        free(r->feed->rows);
        free(r->feed);
        r->feed = NULL;
    }
}

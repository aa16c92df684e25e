/* extractor_setup.c - the stages from the selection to the llama.cpp
 * context: what to capture, flash attention, the output, the capture,
 * the context. Each returns 0 or an exit status (said on stderr). */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include <ggml-backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- selection and settings ---------------------------------------------- */

int extractor_make_selection(struct extractor_run *r) {
    char        err[512];
    const char *checkpoints = r->opt.checkpoints;
    if (checkpoints == NULL && r->opt.n_graph_regex > 0) {
        checkpoints = "none"; /* only what the regexes match */
    }
    r->selection = llorch_ckpt_selection_create(checkpoints, r->opt.layers, err, sizeof err);
    if (r->selection == NULL) {
        return extractor_bad_input("%s", err);
    }
    for (int i = 0; i < r->opt.n_graph_regex; i++) {
        if (llorch_ckpt_selection_add_regex(r->selection, r->opt.graph_regex[i], err, sizeof err) != 0) {
            return extractor_bad_input("%s", err);
        }
    }
    if (llorch_ckpt_selection_check(r->selection, llama_model_n_layer(r->model), err, sizeof err) != 0) {
        return extractor_bad_input("--layers: %s", err);
    }
    if (r->opt.positions != NULL &&
        llorch_ckpt_selection_set_positions(r->selection, r->opt.positions, extractor_run_length(r), err, sizeof err) !=
            0) {
        return extractor_bad_input("%s", err);
    }
    return 0;
}

static bool wants_scores(const struct extractor_run *r) {
    int n_layer = llama_model_n_layer(r->model);
    for (int il = 0; il < n_layer; il++) {
        if (llorch_ckpt_selection_has(r->selection, LLORCH_CKPT_KQ_SOFT_MAX, il)) {
            return true;
        }
    }
    return false;
}

/* Flash attention hides the scores inside one fused node, and changes the
 * numbers of every checkpoint after it. It is off unless -fa on (or auto)
 * asks for it, whatever the selection: a checkpoint's numbers never depend
 * on which checkpoints are selected. Where it is asked for, the scores
 * cannot be captured. */
int extractor_choose_flash_attn(struct extractor_run *r) {
    if (r->opt.flash_attn != EXTRACTOR_FA_OFF && wants_scores(r)) {
        return extractor_bad_input("kq_soft_max cannot be captured with -fa %s: flash attention fuses the scores away; "
                                   "use -fa off (the default) or drop checkpoint 4",
                                   r->opt.flash_attn == EXTRACTOR_FA_ON ? "on" : "auto");
    }
    r->fa = r->opt.flash_attn == EXTRACTOR_FA_ON     ? LLAMA_FLASH_ATTN_TYPE_ENABLED
            : r->opt.flash_attn == EXTRACTOR_FA_AUTO ? LLAMA_FLASH_ATTN_TYPE_AUTO
                                                     : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    r->fa_reason = r->opt.flash_attn == EXTRACTOR_FA_ON     ? "on (-fa on)"
                   : r->opt.flash_attn == EXTRACTOR_FA_AUTO ? "auto (-fa auto: llama.cpp's choice)"
                                                            : "off (the default, -fa off)";
    return 0;
}

static int parse_cache_type(const char *flag, const char *name, enum ggml_type *type) {
    static const enum ggml_type allowed[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16,
                                             GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                             GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strcmp(ggml_type_name(allowed[i]), name) == 0) {
            *type = allowed[i];
            return 0;
        }
    }
    return extractor_bad_input(
        "%s: unknown cache type '%s'; use f16, f32, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl", flag, name);
}

/* --- output and capture --------------------------------------------------- */

/* --format auto: a one-step run keeps its numbered files; a run of many
 * steps goes into one .npz rather than thousands of small files. */
static enum llorch_ckpt_form choose_form(const struct extractor_run *r) {
    if (r->opt.form != EXTRACTOR_FORM_AUTO) {
        return (enum llorch_ckpt_form) r->opt.form;
    }
    return extractor_total_steps(r) > 1 && !r->opt.text ? LLORCH_CKPT_FORM_NPZ : LLORCH_CKPT_FORM_NPY;
}

int extractor_open_output(struct extractor_run *r) {
    r->form = choose_form(r);
    if (r->opt.stats || r->opt.sink == LLORCH_CAPTURE_SINK_MEMORY) {
        return 0;
    }
    char                              err[1024];
    struct llorch_ckpt_writer_options wo = {.text = r->opt.text, .no_sync = r->opt.no_sync, .form = r->form};
    r->writer = llorch_ckpt_writer_open(r->opt.output, &wo, err, sizeof err);
    if (r->writer == NULL) {
        return extractor_bad_input("%s", err);
    }
    return 0;
}

/* Whether layers of the model run on a device (a GPU, an RPC server): there
 * every graph split synchronizes a stream, and reading after the graph pays. */
static bool offloads(const struct extractor_run *r) {
    if (r->opt.n_gpu_layers == 0) {
        return false;
    }
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        enum ggml_backend_dev_type type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            return true;
        }
    }
    return false;
}

int extractor_create_capture(struct extractor_run *r) {
    char                         err[1024];
    struct llorch_capture_params p = llorch_capture_default_params();
    p.selection = r->selection;
    p.writer = r->writer;
    p.model = r->model;
    p.sink = r->opt.stats ? LLORCH_CAPTURE_SINK_STATS : r->opt.sink;
    p.identify = r->opt.identify;
    p.raw = r->opt.raw;
    p.native_dtype = r->opt.native_dtype;
    p.queue_bytes = r->opt.queue_mb << 20;
    p.output_bytes = r->opt.output_auto && !offloads(r) ? 0 : r->opt.output_mb << 20;
    r->output_bytes = p.output_bytes;
    p.stop_at_nan = r->opt.stop_at_nan;
    p.split_each = r->opt.split_each;
    p.stats_out = stdout;
    extractor_feed_params(r, &p);
    r->output_bytes = p.output_bytes;
    r->capture = llorch_capture_create(&p, err, sizeof err);
    if (r->capture == NULL) {
        return extractor_bad_input("%s", err);
    }
    return 0;
}

int extractor_create_context(struct extractor_run *r) {
    int needed = extractor_run_length(r);
    r->n_ctx = r->opt.n_ctx > 0 ? r->opt.n_ctx : (needed + 255) / 256 * 256;
    if (needed > r->n_ctx) {
        char msg[160];
        snprintf(msg, sizeof msg, "%d prompt %s plus -n %d%s exceed the context of %d", r->n_prompt,
                 r->n_prompt == 1 ? "token" : "tokens", r->opt.n_predict, r->n_seqs > 0 ? " per sequence" : "",
                 r->n_ctx);
        return extractor_bad_input("%s; raise -c or shorten the prompt", msg);
    }
    r->n_chunk = r->opt.n_ubatch < r->opt.n_batch ? r->opt.n_ubatch : r->opt.n_batch;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) r->n_ctx;
    cp.n_batch = (uint32_t) r->opt.n_batch;
    cp.n_ubatch = (uint32_t) r->n_chunk;
    cp.n_threads = r->opt.threads;
    cp.n_threads_batch = r->opt.threads;
    cp.flash_attn_type = r->fa;
    if (r->n_seqs > 0) { /* one cache for all sequences, filled in decode order (llorch_capture_begin_batch) */
        cp.n_seq_max = (uint32_t) r->n_seqs;
        cp.kv_unified = true;
    }
    if (parse_cache_type("-ctk", r->opt.cache_type_k, &cp.type_k) != 0 ||
        parse_cache_type("-ctv", r->opt.cache_type_v, &cp.type_v) != 0) {
        return 2;
    }
    llorch_capture_attach(r->capture, &cp);
    r->ctx = llama_init_from_model(r->model, cp);
    if (r->ctx == NULL) {
        return extractor_bad_input("llama.cpp could not create a context for '%s' (llama.cpp: %s); a quantized V cache "
                                   "needs -fa on",
                                   r->opt.model, extractor_llama_reason());
    }
    /* Each capture point ends a graph split. Without a threadpool (and
     * without OpenMP) ggml would start its worker threads anew for each
     * split; with one they wait between splits, polling briefly first
     * (ggml's default level), as a split's end is soon followed by the next
     * one's start. The writer thread runs at idle priority, so the polling
     * does not hold it back. */
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(r->opt.threads);
    r->threadpool = ggml_threadpool_new(&tpp);
    if (r->threadpool != NULL) {
        llama_attach_threadpool(r->ctx, r->threadpool, r->threadpool);
    }
    return 0;
}

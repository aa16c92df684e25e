/* extractor_manifest.c - the end of a run: the manifest (the run, its
 * settings, the llama.cpp build) and the summary on stderr. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "extractor_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* --- manifest and summary -------------------------------------------------- */

/* The settings of this run, as the manifest records them. */
static char *settings_of(const struct run *r, const struct llorch_capture_report *rep) {
    char weight_type[32];
    extractor_weight_type(r->opt.model, weight_type, sizeof weight_type);
    struct extractor_settings s = {
        .weight_type = weight_type,
        .gelu_f16 = rep->gelu_f16,
        .threads = r->opt.threads,
        .n_ctx = r->n_ctx,
        .n_batch = r->opt.n_batch,
        .n_ubatch = r->n_chunk,
        .type_k = r->opt.cache_type_k,
        .type_v = r->opt.cache_type_v,
        .flash_attn = rep->flash_attn,
        .flash_attn_reason = r->fa_reason,
        .repack = r->opt.repack,
        .n_gpu_layers = r->opt.n_gpu_layers,
        .seed = r->opt.seed,
        .n_predict = r->opt.n_predict,
        .raw = r->opt.raw,
        .native_dtype = r->opt.native_dtype,
        .identify_structure = r->opt.identify == LLORCH_CAPTURE_IDENTIFY_STRUCTURE,
        .steps = r->steps,
        .n_parallel = r->n_seqs,
    };
    return extractor_settings_json(&s);
}

/* The model's fingerprint (docs/FORMAT.md) into buf; NULL, with a
 * warning, where the file cannot be read again (the dump is still
 * written, without one). */
static const char *model_fingerprint(const char *path, char *buf, size_t size) {
    char err[512];
    if (llorch_ckpt_gguf_fingerprint(path, buf, size, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": warning: %s (the dump gets no model fingerprint)\n", err);
        return NULL;
    }
    return buf;
}

int write_manifest(struct run *r, bool complete, const char *status) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    char                          producer[64], arch[64] = "";
    char                         *settings = settings_of(r, &rep);
    struct extractor_capture_path path = {rep.steps_outputs, rep.steps_splits, rep.splits};
    char *llama_json = extractor_llama_cpp_json(LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE, LLORCH_LLAMA_PATCHED,
                                                rep.patched_names, &path);
    char *fed = feed_json(r);
    if (settings == NULL || llama_json == NULL || (r->feed != NULL && fed == NULL)) {
        free(settings);
        free(llama_json);
        free(fed);
        fprintf(stderr, PROG ": error: out of memory writing the manifest\n");
        return 1;
    }
    snprintf(producer, sizeof producer, PROG " %s", LLORCH_CKPT_VERSION);
    llama_model_meta_val_str(r->model, "general.architecture", arch, sizeof arch);
    struct llorch_ckpt_sequence seqs[256];
    for (int i = 0; i < r->n_seqs && i < 256; i++) {
        seqs[i] = (struct llorch_ckpt_sequence){
            .seq = i, .tokens = r->seqs[i].tokens, .n_tokens = r->seqs[i].n_tokens, .prompt = r->seqs[i].prompt};
    }
    struct stat            st;
    char                   fingerprint[LLORCH_CKPT_FINGERPRINT_SIZE];
    struct llorch_ckpt_run run = {
        .producer = producer,
        .model_path = r->opt.model,
        .model_size = stat(r->opt.model, &st) == 0 ? (int64_t) st.st_size : -1,
        .architecture = arch,
        .n_layer = llama_model_n_layer(r->model),
        .n_embd = llama_model_n_embd(r->model),
        .n_head = llama_model_n_head(r->model),
        .n_head_kv = llama_model_n_head_kv(r->model),
        .n_vocab = llama_vocab_n_tokens(r->vocab),
        .tokens = r->tokens,
        .n_tokens = r->n_tokens,
        .prompt = r->opt.tokens != NULL || r->n_seqs > 0 ? NULL : r->prompt_text,
        .settings_json = settings,
        .llama_cpp_json = llama_json,
        .sequences = r->n_seqs > 0 ? seqs : NULL,
        .n_sequences = r->n_seqs,
        .model_fingerprint = model_fingerprint(r->opt.model, fingerprint, sizeof fingerprint),
        .fed_json = fed,
    };
    int rc =
        llorch_ckpt_writer_set_run(r->writer, &run) != 0 || llorch_ckpt_writer_finish(r->writer, complete, status) != 0;
    free(settings);
    free(llama_json);
    free(fed);
    if (rc != 0) {
        fprintf(stderr, PROG ": error: %s\n", llorch_ckpt_writer_error(r->writer));
        return 1;
    }
    return 0;
}

/* How the checkpoints were read: after each graph, or at graph splits. */
static void print_capture_path(const struct llorch_capture_report *rep, size_t output_bytes) {
    if (rep->steps_outputs + rep->steps_splits == 0) {
        return;
    }
    fprintf(stderr,
            "  capture: %zu steps read after the graph (up to %.1f MiB kept as graph outputs), %zu at graph "
            "splits; %zu splits added\n",
            rep->steps_outputs, (double) rep->marked_bytes / (1 << 20), rep->steps_splits, rep->splits);
    if (rep->steps_outputs == 0 && output_bytes > 0) {
        fprintf(stderr, "  (this llama.cpp does not ask the eval callback before it allocates a graph, or the graph "
                        "was reused: patches/llama-graph-checkpoint-names.patch adds that)\n");
    }
}

void print_summary(const struct run *r) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    fprintf(stderr, "  %-16s %8s %12s\n", "checkpoint", "tensors", "bytes");
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        if (rep.kind_tensors[k] > 0) {
            fprintf(stderr, "  %02d %-13s %8zu %12zu\n", llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->number,
                    llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->name, rep.kind_tensors[k], rep.kind_bytes[k]);
        }
    }
    double copy_share = r->decode_seconds > 0 ? 100.0 * rep.copy_seconds / r->decode_seconds : 0.0;
    fprintf(stderr, "  %-16s %8zu %12zu\n", "total", rep.tensors, rep.bytes);
    fprintf(stderr,
            PROG ": %d tokens in %d steps%s%s\n"
                 "  decode %.3f s, of which capture copies %.3f s (%.1f%%) and waits for the writer %.3f s\n",
            r->n_tokens, r->steps, r->writer != NULL ? ", written to " : "", r->writer != NULL ? r->opt.output : "",
            r->decode_seconds, rep.copy_seconds, copy_share, rep.wait_seconds);
    print_capture_path(&rep, r->output_bytes);
    if (r->feed != NULL) {
        fprintf(stderr,
                "  fed from %s: embd, l_out%s replaced in every layer (%zu tensors); --feed reads and writes at "
                "graph splits only\n",
                r->opt.feed, feed_has_ffn_inp(r) ? ", ffn_inp" : "", rep.fed_tensors);
    }
    if (r->writer != NULL) {
        fprintf(stderr, "  copies held at most %.1f MiB in memory (bound %zu MiB, --queue-mb)\n",
                (double) rep.memory_peak_bytes / (1 << 20), r->opt.queue_mb);
        enum llorch_ckpt_form form = chosen_form(r);
        char                  where[64] = "files";
        if (form != LLORCH_CKPT_FORM_NPY) {
            snprintf(where, sizeof where, "tensors in checkpoints.%s", llorch_ckpt_form_name(form));
        }
        fprintf(stderr, "  %zu %s + tokens.npy + manifest.json; flash attention %s; KV cache %s/%s; %s\n",
                llorch_ckpt_writer_files(r->writer), where, rep.flash_attn ? "on" : "off", r->opt.cache_type_k,
                r->opt.cache_type_v, r->opt.repack ? "repacked weights" : "no repack (portable kernels)");
    }
}

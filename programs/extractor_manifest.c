/* extractor_manifest.c - the end of a run: the manifest (the run, its
 * settings, the llama.cpp build) and the summary on stderr: what was
 * written where and what to do next; with -v, how the run went. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include "extractor_settings.h"

#include <ctype.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* --- the weights' type (the manifest's settings.weight_type) ----------------- */

/* The ggml type name ("f32", "q8_0", ...) that holds most of the bytes of
 * the GGUF's tensors (the manifest's settings.weight_type); "" when the
 * file cannot be read. */
static void weight_type(const char *model_path, char *buf, size_t size) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context    *g = gguf_init_from_file(model_path, params);
    size_t                  bytes[GGML_TYPE_COUNT] = {0}, best = 0;
    buf[0] = '\0';
    for (int64_t i = 0; g && i < gguf_get_n_tensors(g); i++) {
        enum ggml_type t = gguf_get_tensor_type(g, i);
        if ((int) t >= 0 && t < GGML_TYPE_COUNT) {
            bytes[t] += gguf_get_tensor_size(g, i);
        }
    }
    for (int t = 0; g && t < GGML_TYPE_COUNT; t++) {
        if (bytes[t] > best) {
            best = bytes[t];
            snprintf(buf, size, "%s", ggml_type_name((enum ggml_type) t));
        }
    }
    for (char *p = buf; *p; p++) {
        *p = (char) tolower((unsigned char) *p); /* "q4_K" as -ctk spells types */
    }
    if (g) {
        gguf_free(g);
    }
}

/* --- the manifest ------------------------------------------------------------ */

/* The settings of this run, as the manifest records them. */
static char *settings_of(const struct extractor_run *r, const struct llorch_capture_report *rep) {
    char weight[32];
    weight_type(r->opt.model, weight, sizeof weight);
    struct extractor_settings s = {
        .weight_type = weight,
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

int extractor_write_manifest(struct extractor_run *r, bool complete, const char *status) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    char                          producer[64], arch[64] = "";
    char                         *settings = settings_of(r, &rep);
    struct extractor_capture_path path = {rep.steps_outputs, rep.steps_splits, rep.splits};
    char *llama_json = extractor_llama_cpp_json(LLORCH_LLAMA_COMMIT, LLORCH_LLAMA_SOURCE, LLORCH_LLAMA_PATCHED,
                                                rep.patched_names, &path);
    char *fed = extractor_feed_json(r);
    if (settings == NULL || llama_json == NULL || (r->feed != NULL && fed == NULL)) {
        free(settings);
        free(llama_json);
        free(fed);
        return extractor_fail("out of memory writing the manifest of %s", r->opt.output);
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
        return extractor_fail("%s", llorch_ckpt_writer_error(r->writer));
    }
    return 0;
}

/* --- the summary ---------------------------------------------------------------- */

/* "1 token", "2 tokens". */
static const char *plural(size_t n, const char *one, const char *many) {
    return n == 1 ? one : many;
}

/* Bytes for people: "512 bytes", "4.0 KiB", "1.2 GiB". */
static void human_bytes(char *buf, size_t size, size_t bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%zu %s", bytes, plural(bytes, "byte", "bytes"));
        return;
    }
    double v = (double) bytes / 1024;
    int    u = 0;
    for (; v >= 1024 && u < 3; u++) {
        v /= 1024;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* How the checkpoints were read: after each graph, or at graph splits. */
static void print_capture_path(const struct llorch_capture_report *rep, size_t output_bytes) {
    if (rep->steps_outputs + rep->steps_splits == 0) {
        return;
    }
    extractor_detail("  capture: %zu steps read after the graph (up to %.1f MiB kept as graph outputs), %zu at graph "
                     "splits; %zu splits added\n",
                     rep->steps_outputs, (double) rep->marked_bytes / (1 << 20), rep->steps_splits, rep->splits);
    if (rep->steps_outputs == 0 && output_bytes > 0) {
        extractor_detail("  (this llama.cpp does not ask the eval callback before it allocates a graph, or the graph "
                         "was reused: patches/llama-graph-checkpoint-names.patch adds that)\n");
    }
}

/* -v: each checkpoint's tensors and bytes, the time, the capture's path,
 * its memory, the settings that change numbers. */
static void print_details(const struct extractor_run *r, const struct llorch_capture_report *rep) {
    extractor_detail("  %-16s %8s %12s\n", "checkpoint", "tensors", "bytes");
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        if (rep->kind_tensors[k] > 0) {
            extractor_detail("  %02d %-13s %8zu %12zu\n", info->number, info->name, rep->kind_tensors[k],
                             rep->kind_bytes[k]);
        }
    }
    extractor_detail("  %-16s %8zu %12zu\n", "total", rep->tensors, rep->bytes);
    double copy_share = r->decode_seconds > 0 ? 100.0 * rep->copy_seconds / r->decode_seconds : 0.0;
    extractor_detail("  decode %.3f s, of which capture copies %.3f s (%.1f%%) and waits for the writer %.3f s\n",
                     r->decode_seconds, rep->copy_seconds, copy_share, rep->wait_seconds);
    print_capture_path(rep, r->output_bytes);
    if (r->feed != NULL) {
        extractor_detail("  --feed reads and writes at graph splits only\n");
    }
    if (r->writer != NULL) {
        extractor_detail("  copies held at most %.1f MiB in memory (bound %zu MiB, --queue-mb)\n",
                         (double) rep->memory_peak_bytes / (1 << 20), r->opt.queue_mb);
        if (rep->writer_during_decode) {
            extractor_detail("  the writer wrote during the decode, on a core the computation left free\n");
        } else {
            extractor_detail("  the writer wrote after the last step (or near the bound): -t %d takes every core, "
                             "and a writer beside the compute threads would slow them\n",
                             r->opt.threads);
        }
    }
    extractor_detail("  flash attention %s; KV cache %s/%s; %s\n", rep->flash_attn ? "on" : "off", r->opt.cache_type_k,
                     r->opt.cache_type_v, r->opt.repack ? "repacked weights" : "no repack (portable kernels)");
}

/* The files of the dump: "18 .npy files", "checkpoints.npz (18 tensors)". */
static void print_files(const struct extractor_run *r) {
    size_t n = llorch_ckpt_writer_files(r->writer);
    if (r->form != LLORCH_CKPT_FORM_NPY) {
        fprintf(stderr, "  files: checkpoints.%s (%zu %s), tokens.npy, manifest.json\n", llorch_ckpt_form_name(r->form),
                n, plural(n, "tensor", "tensors"));
    } else if (r->opt.text) {
        fprintf(stderr, "  files: %zu .npy and %zu .txt (%zu in all), tokens.npy, manifest.json\n", n, n, 2 * n);
    } else {
        fprintf(stderr, "  files: %zu .npy, tokens.npy, manifest.json\n", n);
    }
}

/* What to do with the dump: compare it with an engine's. */
static void print_next(const struct extractor_run *r) {
    if (r->writer == NULL) {
        fprintf(stderr, r->opt.stats ? "next: to write these tensors, drop --stats and give -o DIR\n"
                                     : "next: -v shows how long the capture took\n");
    } else if (r->feed != NULL) {
        fprintf(stderr,
                "next: llorch-checkpoint-compare REFERENCE %s --isolated %s (REFERENCE: llama.cpp's own dump of "
                "these tokens) judges each layer of %s on its own\n",
                r->opt.feed, r->opt.output, r->opt.feed);
    } else {
        fprintf(stderr,
                "next: llorch-checkpoint-compare %s YOUR_DUMP (YOUR_DUMP: your engine's checkpoints of the same "
                "tokens, %s/tokens.npy)\n",
                r->opt.output, r->opt.output);
    }
}

void extractor_print_summary(const struct extractor_run *r) {
    struct llorch_capture_report rep;
    llorch_capture_get_report(r->capture, &rep);
    char bytes[32];
    human_bytes(bytes, sizeof bytes, rep.bytes);
    print_details(r, &rep);
    const char *what = r->writer != NULL ? "wrote"
                       : r->opt.stats    ? "printed the statistics of"
                                         : "copied (and dropped, --capture-to memory)";
    fprintf(stderr, PROG ": %s %zu %s (%s) of %d %s in %d %s%s%s\n", what, rep.tensors,
            plural(rep.tensors, "tensor", "tensors"), bytes, r->n_tokens,
            plural((size_t) r->n_tokens, "token", "tokens"), r->steps, plural((size_t) r->steps, "step", "steps"),
            r->writer != NULL ? " to " : "; nothing written", r->writer != NULL ? r->opt.output : "");
    if (r->feed != NULL) {
        fprintf(stderr, "  fed from %s: embd, l_out%s replaced in every layer (%zu tensors)\n", r->opt.feed,
                extractor_feed_has_ffn_inp(r) ? ", ffn_inp" : "", rep.fed_tensors);
    }
    if (r->writer != NULL) {
        print_files(r);
    }
    print_next(r);
}

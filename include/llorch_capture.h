/*
 * llorch_capture.h - capture checkpoints from any llama.cpp program.
 *
 *   llorch_ckpt_selection *sel = llorch_ckpt_selection_create("1-6", "all", err, sizeof err);
 *   llorch_ckpt_writer    *w   = llorch_ckpt_writer_open("dump", NULL, err, sizeof err);
 *   struct llorch_capture_params p = llorch_capture_default_params();
 *   p.selection = sel; p.writer = w; p.model = model;
 *   llorch_capture *cap = llorch_capture_create(&p, err, sizeof err);
 *
 *   struct llama_context_params cp = llama_context_default_params();
 *   llorch_capture_attach(cap, &cp);          // installs cb_eval only if something is selected
 *   ctx = llama_init_from_model(model, cp);
 *   llorch_capture_prepare(cap, ctx, n);      // for every batch size n you will decode
 *
 *   for each batch (of any size up to n_batch), every token marked as output:
 *       llorch_capture_begin_step(cap, pos_start, n_tokens);
 *       llama_decode(ctx, batch);
 *       llorch_capture_end_step(cap);
 *
 *   llorch_capture_finish(cap);               // drains the writer thread
 *   llorch_ckpt_writer_set_run(w, &run); llorch_ckpt_writer_finish(w, true, "ok");
 *
 * The capture only reads (unless feed is set, see below): the callback never
 * changes a tensor, and llama.cpp's results are bit-identical with and
 * without it. Checkpoints are found by
 * their place in the dataflow (what enters the KQ matmul, what is added to
 * the residual), not by names: llorch_capture_prepare records the graph of
 * a batch size once, without computing it, and plans which nodes to read.
 * In the ask phase the callback answers true only at those nodes. Copies
 * happen on the compute thread (a strided gather into memory that earlier
 * copies used, or that was mapped before the step began: a page touched
 * for the first time while the graph computes costs more than the copy);
 * files are written by a writer thread behind a queue; the
 * memory held for copies not yet written, and mapped ahead for them, is
 * bounded by queue_bytes.
 *
 * Scope: one sequence (seq_id 0) decoded from position 0 into a fresh KV
 * cache, so that cache cell i holds position i; the cache and score files
 * are trimmed to cells 0 .. pos_start + n_tokens - 1 on that basis. Several
 * sequences: llorch_capture_begin_batch.
 *
 * Each capture point ends a graph split; the plan gathers several tensors
 * at one point wherever ggml-alloc's liveness proves that no later node has
 * overwritten them (split_each turns that off). With the patched llama.cpp,
 * which asks the eval callback about each node before it allocates a graph,
 * the capture marks the checkpoints as graph outputs there (up to
 * output_bytes), and reads them all after the graph's last node: no split
 * of its own, and one round trip per device (a GPU's reads go
 * asynchronously into pinned memory). The report says which path each
 * step took. On a CPU build without
 * OpenMP, attach a ggml threadpool to the context (llama_attach_threadpool):
 * otherwise ggml starts its worker threads anew for every split.
 */
#ifndef LLORCH_CAPTURE_H
#define LLORCH_CAPTURE_H

#include "llorch_checkpoint.h"

#include <llama.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum llorch_capture_sink {
    LLORCH_CAPTURE_SINK_WRITE = 0, /* write every tensor through the writer       */
    LLORCH_CAPTURE_SINK_MEMORY,    /* copy and drop (measures the capture alone)  */
    LLORCH_CAPTURE_SINK_STATS,     /* print shape/min/max/mean/NaN/Inf, no files  */
};

enum llorch_capture_identify {
    LLORCH_CAPTURE_IDENTIFY_AUTO = 0,  /* the patch's names where present, else graph structure */
    LLORCH_CAPTURE_IDENTIFY_STRUCTURE, /* graph structure only: ignore the patch's names        */
};

struct llorch_capture_params {
    const llorch_ckpt_selection *selection; /* borrowed; outlives the capture        */
    llorch_ckpt_writer          *writer;    /* borrowed; needed for LLORCH_CAPTURE_SINK_WRITE */
    const struct llama_model    *model;
    enum llorch_capture_sink     sink;
    enum llorch_capture_identify identify;
    bool                         raw;          /* write cache/scores as llama.cpp holds them */
    bool                         native_dtype; /* keep f16 as f16 instead of f32           */
    size_t                       queue_bytes;  /* bound on copies not yet written (bytes)   */
    bool                         stop_at_nan;  /* stats: abort at the first NaN/Inf         */
    FILE                        *stats_out;    /* stats: where lines go (default stdout)    */
    bool                         split_each;   /* capture each tensor at a graph split of its
                                                  own, as soon as it is computed, instead of
                                                  gathering several at one split: slower, the
                                                  reference that the merged plan must equal */
    size_t output_bytes;                       /* with the patched llama.cpp: checkpoints up to
                                                  this many bytes (in graph order) are marked
                                                  graph outputs before the graph is allocated
                                                  and read after it, without graph splits; the
                                                  compute buffer grows by as much. 0 (the
                                                  default): splits only, the faster path where
                                                  the CPU computes every layer; 512 MiB suits
                                                  layers on a GPU or RPC device */
    /* Feeding (docs/FORMAT.md, "Fed runs"): where feed is set, the capture
     * replaces the residual stream that each layer reads by rows that feed
     * supplies, after recording llama.cpp's own value as usual: embd (layer
     * 0's input), l_out of layers 0 .. n_layer-2 (the next layer's input)
     * and, with feed_ffn_inp, ffn_inp of every layer (the FFN's input).
     * Each layer's checkpoints are then what llama.cpp computes from the
     * supplied input to that layer. One sequence only; every capture point
     * is then read at a graph split (output_bytes is ignored). feed fills
     * out[i * n_embd + c] for the token at positions[i] (n rows) of
     * checkpoint kind (LLORCH_CKPT_EMBD, _L_OUT, _FFN_INP) of layer (-1
     * for embd) and returns 0, or -1 with a one-line message in err. It
     * runs on the compute thread. NULL (the default): nothing is written. */
    int (*feed)(void *ctx, enum llorch_ckpt_kind kind, int layer, const int32_t *positions, int32_t n, float *out,
                char *err, size_t err_size);
    void *feed_ctx;
    bool  feed_ffn_inp;
};

struct llorch_capture_report {
    size_t tensors;                              /* tensors captured                              */
    size_t bytes;                                /* data bytes captured (what the files hold)     */
    double copy_seconds;                         /* time in the callback: gather + convert        */
    double wait_seconds;                         /* time the callback waited for a full queue     */
    double write_seconds;                        /* writer thread: time spent writing files       */
    size_t queue_peak_bytes;                     /* the most data bytes queued for the writer at once */
    size_t memory_peak_bytes;                    /* the most memory held for copies at once (bound: queue_bytes) */
    bool   writer_during_decode;                 /* the writer was woken while graphs computed (a core
                                                    left to it, or a device computing); else it
                                                    wrote after the last step or near the bound  */
    bool flash_attn;                             /* a FLASH_ATTN_EXT node was seen                */
    bool gelu_f16;                               /* a GELU ran on the CPU: ggml looks it up in an
                                                    f16 table (input and output rounded to f16)   */
    bool   patched_names;                        /* the patch's names were seen in the graph      */
    size_t nonfinite;                            /* stats: NaN/Inf values seen                    */
    size_t steps_outputs;                        /* steps read after the graph (marked outputs)   */
    size_t steps_splits;                         /* steps read at graph splits only               */
    size_t splits;                               /* graph splits the capture added (capture points
                                                    before a graph's last node)                   */
    size_t marked_bytes;                         /* the most memory marked as outputs in a graph  */
    size_t fed_tensors;                          /* feed: tensors replaced, every step counted    */
    size_t kind_tensors[LLORCH_CKPT_KIND_COUNT]; /* per checkpoint kind       */
    size_t kind_bytes[LLORCH_CKPT_KIND_COUNT];
};

typedef struct llorch_capture llorch_capture;

struct llorch_capture_params llorch_capture_default_params(void);

llorch_capture *llorch_capture_create(const struct llorch_capture_params *params, char *err, size_t err_size);

/* Installs cb_eval (and an abort callback that stops llama_decode after a
 * write error or llorch_capture_request_stop) when anything is selected;
 * with an empty selection it leaves cparams untouched. */
void llorch_capture_attach(llorch_capture *cap, struct llama_context_params *cparams);

/* Records the graph of a batch of n_tokens tokens and plans its capture:
 * one llama_decode that the capture stops after recording (llama.cpp logs it
 * as aborted), after which the context's memory is cleared. Call it, while
 * the context is empty, for every batch size that will be decoded with
 * capture (prompt chunks and 1 for generation); sizes already prepared
 * return at once. -1 on error (llorch_capture_error says why). */
int llorch_capture_prepare(llorch_capture *cap, struct llama_context *ctx, int32_t n_tokens);

/* Prints every prepared graph, one line per node, with the checkpoint each
 * node was identified as, then the absences and their reasons. */
void llorch_capture_print_plans(const llorch_capture *cap, FILE *out);

/* Call before each llama_decode: the batch's first position and size.
 * A batch larger than n_ubatch is computed by llama.cpp as micro-batches
 * of n_ubatch consecutive tokens (the last one shorter), one graph each:
 * the capture writes one step per micro-batch, at its positions. It knows
 * where a graph ends because a graph of n tokens computes exactly the
 * nodes of the plan for n tokens (after a structural divergence, by the
 * plan's first node: the embedding lookup). Prepare both sizes. */
void llorch_capture_begin_step(llorch_capture *cap, int32_t pos_start, int32_t n_tokens);

/* Instead of llorch_capture_begin_step, for batches of several sequences
 * (as an inference server decodes them): call before each llama_decode
 * with the batch itself. Every step's files are then written once per
 * sequence, with that sequence's rows and cache cells only (docs/FORMAT.md,
 * "Several sequences"). The context needs kv_unified = true, and the
 * capture follows each sequence from position 0 in order, in a cache that
 * is never edited (no llama_memory_seq_rm, _cp, _add): there, cells fill
 * in decode order. Each token belongs to one sequence below n_seq_max and
 * is an output. Returns -1 (and captures nothing more) when the batch
 * breaks a rule; llorch_capture_error says which. */
int llorch_capture_begin_batch(llorch_capture *cap, const struct llama_batch *batch);

/* Call after each llama_decode. Records, after the first step, requested
 * checkpoints that the graph did not have. Returns -1 after a capture error. */
int llorch_capture_end_step(llorch_capture *cap);

/* Async-signal-safe: the next node ends the computation (Ctrl-C). */
void llorch_capture_request_stop(llorch_capture *cap);

/* Waits until the writer thread has written everything captured so far
 * (the files of the steps decoded so far then exist). -1 after a write error. */
int llorch_capture_sync(llorch_capture *cap);

/* Waits for the writer thread and stops it. Returns -1 if any write failed. */
int llorch_capture_finish(llorch_capture *cap);

void        llorch_capture_get_report(const llorch_capture *cap, struct llorch_capture_report *report);
const char *llorch_capture_error(const llorch_capture *cap);
void        llorch_capture_free(llorch_capture *cap);

#ifdef __cplusplus
}
#endif

#endif /* LLORCH_CAPTURE_H */

/* queue.h - hands captured tensors from the compute thread to a writer
 * thread. Bounded by bytes: the memory of every captured tensor not yet
 * written, queued or not, stays within the bound (one tensor larger than
 * the bound excepted); the compute thread waits for the writer where it
 * would not. */
#ifndef LLORCH_QUEUE_H
#define LLORCH_QUEUE_H

#include "llorch_checkpoint.h"

struct llorch_buffer_chunk;

#include <stdbool.h>
#include <stddef.h>

/* One captured tensor; the queue owns it once pushed and frees it (and its
 * data) after the consumer has seen it. */
struct llorch_queue_item {
    struct llorch_ckpt_tensor   tensor; /* tensor.data == data */
    void                       *data;   /* from llorch_queue_buffer */
    struct llorch_buffer_chunk *chunk;  /* data's chunk, for its release */
    size_t                      bytes;
    int                         node; /* the graph node it came from (capture keeps graph order) */
    char                        graph_name[128];
    char                        graph_op[32];
    char                        device[64]; /* the buffer it was read from, when not host memory */
    struct llorch_queue_item   *next;
};

/* Called on the writer thread for each item, in push order. A non-zero
 * return is sticky: later items are dropped and push() fails. */
typedef int (*llorch_queue_consume_fn)(void *ctx, const struct llorch_queue_item *item);

typedef struct llorch_queue llorch_queue;

llorch_queue *llorch_queue_create(size_t max_bytes, llorch_queue_consume_fn consume, void *ctx);
/* A buffer of `bytes` for an item's data, from memory that consumed items
 * left behind where there is some (buffers.h): reuse keeps the compute
 * thread's copy out of freshly mapped pages. *chunk goes into the item;
 * the buffer is released with the item (llorch_queue_recycle). */
void *llorch_queue_buffer(llorch_queue *q, size_t bytes, struct llorch_buffer_chunk **chunk);
/* Maps memory for `bytes` of buffers ahead of need (llorch_buffers_reserve). */
void llorch_queue_reserve(llorch_queue *q, size_t bytes);
/* Takes ownership of an item that is not to be consumed (or was never
 * pushed): it and its buffer are released as if it had been consumed. */
void llorch_queue_recycle(llorch_queue *q, struct llorch_queue_item *item);
/* Takes ownership of item. Returns -1 when the consumer has failed. The
 * writer thread is woken once several megabytes are queued, or by
 * llorch_queue_flush; a lazy queue's only near the bound. */
int llorch_queue_push(llorch_queue *q, struct llorch_queue_item *item);
/* Eager (the default): the writer is woken as work comes, to write while
 * the producer computes. Lazy: only near the bound, and by drain and
 * finish, for a producer whose computation keeps every core busy: even at
 * idle priority a runnable writer takes time slices from it. */
void llorch_queue_set_eager(llorch_queue *q, bool eager);
/* Wakes the writer thread for whatever is queued (eager queues only). */
void llorch_queue_flush(llorch_queue *q);
/* Waits until every item pushed so far is consumed; returns the consumer's
 * first failure (0 if none). The thread keeps running. */
int llorch_queue_drain(llorch_queue *q);
/* Waits until every pushed item is consumed, stops the thread; returns the
 * consumer's first failure (0 if none). */
int llorch_queue_finish(llorch_queue *q);
/* Seconds the producer spent waiting for the writer, the most data bytes
 * queued at once, and the most memory the items' buffers held at once. */
void llorch_queue_stats(const llorch_queue *q, double *wait_seconds, size_t *peak_bytes, size_t *peak_held);
void llorch_queue_free(llorch_queue *q);

#endif

/* buffers.h - the memory that captured tensors are copied into: large
 * chunks, backed by transparent huge pages where the kernel offers them,
 * handed out in order and reused once every buffer in them is released.
 * A first touch of fresh memory costs a page fault per 4 KiB page, more
 * than the copy into it; with 2 MiB pages it costs one per 2 MiB, and
 * reused chunks cost none. Not thread-safe: the queue holds its lock. */
#ifndef LLORCH_BUFFERS_H
#define LLORCH_BUFFERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct llorch_buffers llorch_buffers;
struct llorch_buffer_chunk;

/* Released chunks are kept for reuse while all chunks together stay
 * within `bound` bytes; beyond it they are freed. */
llorch_buffers *llorch_buffers_create(size_t bound);
/* Whether a buffer of `bytes` can be handed out without the chunks in use
 * growing past the bound. llorch_buffers_get hands it out either way. */
bool llorch_buffers_fit(const llorch_buffers *b, size_t bytes);
/* A buffer of `bytes` (64-byte aligned); *chunk receives its chunk, for
 * release. NULL when out of memory. */
void *llorch_buffers_get(llorch_buffers *b, size_t bytes, struct llorch_buffer_chunk **chunk);
/* Maps spare chunks, within the bound, until buffers of `bytes` in all can
 * be handed out without touching fresh memory: called before a step, it
 * keeps the first touch (a page fault per page, several times the copy on
 * a virtual machine) off the compute path. Advice: out of memory or at
 * the bound it maps less. */
void llorch_buffers_reserve(llorch_buffers *b, size_t bytes);
void llorch_buffers_release(llorch_buffers *b, struct llorch_buffer_chunk *chunk);
/* Bytes held in chunks (in use or spare). */
size_t llorch_buffers_held(const llorch_buffers *b);
void   llorch_buffers_free(llorch_buffers *b);

#endif

/* buffers.h - the memory that captured tensors are copied into: large
 * chunks, backed by transparent huge pages where the kernel offers them,
 * handed out in order and reused once every buffer in them is released.
 * A first touch of fresh memory costs a page fault per 4 KiB page, more
 * than the copy into it; with 2 MiB pages it costs one per 2 MiB, and
 * reused chunks cost none. Not thread-safe: the queue holds its lock. */
#ifndef LLORCH_BUFFERS_H
#define LLORCH_BUFFERS_H

#include <stddef.h>

typedef struct llorch_buffers llorch_buffers;
struct llorch_buffer_chunk;

/* Keeps at most max_spare bytes of released chunks for reuse. */
llorch_buffers *llorch_buffers_create(size_t max_spare);
/* A buffer of `bytes` (64-byte aligned); *chunk receives its chunk, for
 * release. NULL when out of memory. */
void *llorch_buffers_get(llorch_buffers *b, size_t bytes, struct llorch_buffer_chunk **chunk);
void  llorch_buffers_release(llorch_buffers *b, struct llorch_buffer_chunk *chunk);
/* Bytes held in chunks (in use or spare). */
size_t llorch_buffers_held(const llorch_buffers *b);
void   llorch_buffers_free(llorch_buffers *b);

#endif

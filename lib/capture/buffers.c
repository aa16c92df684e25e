/* buffers.c - chunks of memory for captured tensors (see buffers.h).
 *
 * A chunk hands out buffers by bumping an offset. Each buffer holds a
 * reference; a chunk whose references are all released is reset (the
 * current one) or kept as a spare for the next chunk needed. */
#define _GNU_SOURCE /* MADV_HUGEPAGE */
#include "buffers.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE  ((size_t) 2 << 20)
#define CHUNK_SIZE ((size_t) 8 << 20)
#define ALIGN      64

struct llorch_buffer_chunk {
    char                       *base;
    size_t                      size;
    size_t                      used;
    int                         refs;
    struct llorch_buffer_chunk *next; /* in the spare list */
};

struct llorch_buffers {
    struct llorch_buffer_chunk *current;
    struct llorch_buffer_chunk *spares;
    size_t                      spare_bytes;
    size_t                      held; /* all chunks: in use, current and spare */
    size_t                      bound;
};

llorch_buffers *llorch_buffers_create(size_t bound) {
    llorch_buffers *b = calloc(1, sizeof *b);
    if (b != NULL) {
        b->bound = bound;
    }
    return b;
}

/* The size of the chunk that a buffer of n bytes is cut from. */
static size_t chunk_size_for(size_t n) {
    return n > CHUNK_SIZE ? (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : CHUNK_SIZE;
}

static struct llorch_buffer_chunk *new_chunk(llorch_buffers *b, size_t size) {
    struct llorch_buffer_chunk *c = calloc(1, sizeof *c);
    void                       *mem = NULL;
    if (c == NULL || posix_memalign(&mem, HUGE_PAGE, size) != 0) {
        free(c);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(mem, size, MADV_HUGEPAGE); /* advice only: small pages where refused */
#endif
    c->base = mem;
    c->size = size;
    b->held += size;
    return c;
}

/* Maps every page of a chunk: the first touch, off the compute path. */
static void fault_in(struct llorch_buffer_chunk *c) {
#ifdef MADV_POPULATE_WRITE
    if (madvise(c->base, c->size, MADV_POPULATE_WRITE) == 0) {
        return;
    }
#endif
    for (size_t off = 0; off < c->size; off += 4096) { /* older kernels: one write per page */
        ((volatile char *) c->base)[off] = 0;
    }
}

static void free_chunk(llorch_buffers *b, struct llorch_buffer_chunk *c) {
    b->held -= c->size;
    free(c->base);
    free(c);
}

/* A released chunk becomes a spare while all chunks together stay within
 * the bound. */
static void retire(llorch_buffers *b, struct llorch_buffer_chunk *c) {
    if (b->held > b->bound) {
        free_chunk(b, c);
        return;
    }
    c->used = 0;
    c->next = b->spares;
    b->spares = c;
    b->spare_bytes += c->size;
}

/* A spare that holds `size` bytes, or a new chunk. */
static struct llorch_buffer_chunk *take_chunk(llorch_buffers *b, size_t size) {
    for (struct llorch_buffer_chunk **link = &b->spares; *link != NULL; link = &(*link)->next) {
        if ((*link)->size >= size) {
            struct llorch_buffer_chunk *c = *link;
            *link = c->next;
            b->spare_bytes -= c->size;
            return c;
        }
    }
    size_t want = chunk_size_for(size);
    while (b->spares != NULL && b->held + want > b->bound) { /* too small to use: make room */
        struct llorch_buffer_chunk *c = b->spares;
        b->spares = c->next;
        b->spare_bytes -= c->size;
        free_chunk(b, c);
    }
    return new_chunk(b, want);
}

/* Whether a buffer of `bytes` comes from the current chunk or a spare, or
 * a new chunk keeps the chunks in use within the bound. */
bool llorch_buffers_fit(const llorch_buffers *b, size_t bytes) {
    size_t                            n = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    const struct llorch_buffer_chunk *c = b->current;
    if (c != NULL && (c->refs == 0 ? c->size : c->size - c->used) >= n) {
        return true;
    }
    for (const struct llorch_buffer_chunk *s = b->spares; s != NULL; s = s->next) {
        if (s->size >= n) {
            return true;
        }
    }
    size_t free_current = c != NULL && c->refs == 0 ? c->size : 0; /* retired when replaced */
    return b->held - b->spare_bytes - free_current + chunk_size_for(n) <= b->bound;
}

void *llorch_buffers_get(llorch_buffers *b, size_t bytes, struct llorch_buffer_chunk **chunk) {
    size_t n = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    n = n > 0 ? n : ALIGN;
    struct llorch_buffer_chunk *c = b->current;
    if (c != NULL && c->refs == 0) {
        c->used = 0; /* everything in it was released: start over, in warm memory */
    }
    if (c == NULL || c->size - c->used < n) {
        struct llorch_buffer_chunk *next = take_chunk(b, n);
        if (next == NULL) {
            return NULL;
        }
        if (c != NULL && c->refs == 0) {
            retire(b, c);
        }
        b->current = c = next; /* a chunk still referenced is retired by its last release */
    }
    void *p = c->base + c->used;
    c->used += n;
    c->refs++;
    *chunk = c;
    return p;
}

/* Bytes that buffers can take without a new chunk: the rest of the
 * current chunk (all of it once released) and the spares. */
static size_t ready_bytes(const llorch_buffers *b) {
    const struct llorch_buffer_chunk *c = b->current;
    size_t                            in_current = c == NULL ? 0 : c->refs == 0 ? c->size : c->size - c->used;
    return in_current + b->spare_bytes;
}

void llorch_buffers_reserve(llorch_buffers *b, size_t bytes) {
    size_t ready = ready_bytes(b);
    while (ready < bytes && b->held + CHUNK_SIZE <= b->bound) {
        struct llorch_buffer_chunk *c = new_chunk(b, CHUNK_SIZE);
        if (c == NULL) {
            return; /* advice only: the copies allocate what they need */
        }
        fault_in(c);
        c->next = b->spares;
        b->spares = c;
        b->spare_bytes += c->size;
        ready += c->size;
    }
}

void llorch_buffers_release(llorch_buffers *b, struct llorch_buffer_chunk *c) {
    if (--c->refs == 0 && c != b->current) {
        retire(b, c);
    }
}

size_t llorch_buffers_held(const llorch_buffers *b) {
    return b->held;
}

void llorch_buffers_free(llorch_buffers *b) {
    if (b == NULL) {
        return;
    }
    while (b->spares != NULL) {
        struct llorch_buffer_chunk *c = b->spares;
        b->spares = c->next;
        free_chunk(b, c);
    }
    if (b->current != NULL) {
        free_chunk(b, b->current); /* every buffer is released by now */
    }
    free(b);
}

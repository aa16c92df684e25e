/* test_queue.c - the writer queue keeps every copy not yet written within
 * its bound, hands items over in order with their data intact, and makes
 * the producer wait for a slow writer rather than grow.
 *
 * The phases are chosen so that released chunks of one size cannot serve
 * the next size: kept as spares beside a full queue, they would take the
 * memory past the bound.
 *
 * A lazy queue's writer consumes nothing until it is woken (the bound
 * near, a drain), a flush notwithstanding, and sleeps again once it has
 * emptied the queue; an eager queue's writer consumes as work comes.
 *
 * Memory reserved before a step is mapped (every page resident, where a
 * fresh buffer's pages are not), serves that many bytes of buffers without
 * a new chunk, and stays within the bound. */
#define _DEFAULT_SOURCE /* mincore */
#define _POSIX_C_SOURCE 200809L
#include "queue.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB   ((size_t) 1 << 20)
#define BOUND (16 * MIB)

struct consumer {
    int    seen;
    int    bad;
    size_t largest;
};

static int consume(void *ctx, const struct llorch_queue_item *item) {
    struct consumer     *c = ctx;
    const unsigned char *d = item->data;
    unsigned char        want = (unsigned char) c->seen;
    if (item->node != c->seen || d[0] != want || d[item->bytes - 1] != want) {
        c->bad++;
    }
    c->seen++;
    c->largest = item->bytes > c->largest ? item->bytes : c->largest;
    struct timespec slow = {0, 2 * 1000 * 1000}; /* a writer slower than the producer */
    nanosleep(&slow, NULL);
    return 0;
}

static int push_items(llorch_queue *q, int *next, int count, size_t bytes) {
    for (int i = 0; i < count; i++) {
        struct llorch_queue_item *item = calloc(1, sizeof *item);
        if (item == NULL || (item->data = llorch_queue_buffer(q, bytes, &item->chunk)) == NULL) {
            fprintf(stderr, "FAIL: out of memory\n");
            return -1;
        }
        memset(item->data, *next & 0xff, bytes);
        item->bytes = bytes;
        item->node = (*next)++;
        if (llorch_queue_push(q, item) != 0) {
            fprintf(stderr, "FAIL: push\n");
            return -1;
        }
    }
    return 0;
}

static int count_consumed(void *ctx, const struct llorch_queue_item *item) {
    (void) item;
    atomic_fetch_add((atomic_int *) ctx, 1);
    return 0;
}

/* Pushes count items of 1 MiB (contents unchecked). */
static int push_mib(llorch_queue *q, int count) {
    for (int i = 0; i < count; i++) {
        struct llorch_queue_item *item = calloc(1, sizeof *item);
        if (item == NULL || (item->data = llorch_queue_buffer(q, MIB, &item->chunk)) == NULL) {
            return -1;
        }
        item->bytes = MIB;
        if (llorch_queue_push(q, item) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Whether *seen reaches want within ten seconds (a writer that was woken
 * gets there at once; the margin is for a loaded machine). */
static int reaches(atomic_int *seen, int want) {
    struct timespec step = {0, 1000 * 1000};
    for (int i = 0; i < 10000 && atomic_load(seen) < want; i++) {
        nanosleep(&step, NULL);
    }
    return atomic_load(seen) >= want;
}

static int check_lazy(void) {
    atomic_int      seen = 0;
    int             failures = 0;
    struct timespec pause = {0, 50 * 1000 * 1000};
    llorch_queue   *q = llorch_queue_create(BOUND, count_consumed, &seen);
    if (q == NULL) {
        return 1;
    }
    llorch_queue_set_eager(q, false);
    if (push_mib(q, 4) != 0) {
        return 1;
    }
    llorch_queue_flush(q);
    nanosleep(&pause, NULL);
    if (atomic_load(&seen) != 0) {
        fprintf(stderr, "FAIL: a lazy writer consumed %d items before it was woken\n", atomic_load(&seen));
        failures++;
    }
    if (llorch_queue_drain(q) != 0 || atomic_load(&seen) != 4) {
        fprintf(stderr, "FAIL: drain left a lazy writer at %d of 4 items\n", atomic_load(&seen));
        failures++;
    }
    if (push_mib(q, 4) != 0) { /* 4 MiB queued: the bound (16) is not near */
        return 1;
    }
    nanosleep(&pause, NULL);
    if (atomic_load(&seen) != 4) {
        fprintf(stderr, "FAIL: a drained lazy writer went on to consume (%d of 4 items)\n", atomic_load(&seen));
        failures++;
    }
    if (push_mib(q, 5) != 0 || !reaches(&seen, 5)) { /* 9 MiB queued: within 8 MiB of the bound */
        fprintf(stderr, "FAIL: a lazy writer near the bound was not woken (%d items)\n", atomic_load(&seen));
        failures++;
    }
    llorch_queue_drain(q);
    llorch_queue_set_eager(q, true);
    if (push_mib(q, 9) != 0 || !reaches(&seen, 22)) { /* 9 MiB: one batch (8 MiB) wakes an eager writer */
        fprintf(stderr, "FAIL: an eager writer consumed %d of 22 items without a drain\n", atomic_load(&seen));
        failures++;
    }
    if (llorch_queue_finish(q) != 0 || atomic_load(&seen) != 22) {
        failures++;
    }
    llorch_queue_free(q);
    if (failures == 0) {
        printf("ok: a lazy writer waits for a wake (drain, the bound near), an eager one writes as work comes\n");
    }
    return failures;
}

static int consume_nothing(void *ctx, const struct llorch_queue_item *item) {
    (void) ctx;
    (void) item;
    return 0;
}

/* The pages of [p, p + bytes) that are resident. */
static size_t resident_pages(void *p, size_t bytes) {
    size_t         page = (size_t) sysconf(_SC_PAGESIZE), n = bytes / page, count = 0;
    unsigned char *vec = calloc(n, 1);
    if (vec != NULL && mincore(p, bytes, vec) == 0) {
        for (size_t i = 0; i < n; i++) {
            count += vec[i] & 1;
        }
    }
    free(vec);
    return count;
}

/* A buffer of `bytes` taken and released at once; returns the fraction of
 * the 8 MiB chunk under it that is resident. */
static double resident_under_new_buffer(llorch_queue *q, size_t bytes) {
    struct llorch_queue_item item = {0};
    item.data = llorch_queue_buffer(q, bytes, &item.chunk);
    if (item.data == NULL) {
        return -1.0;
    }
    size_t                    page = (size_t) sysconf(_SC_PAGESIZE);
    double                    share = (double) resident_pages(item.data, 8 * MIB) / (double) (8 * MIB / page);
    struct llorch_queue_item *heap = malloc(sizeof *heap);
    *heap = item;
    llorch_queue_recycle(q, heap);
    return share;
}

static int check_reserve(void) {
    int           failures = 0;
    double        wait;
    size_t        peak_bytes, held, held_after;
    llorch_queue *fresh = llorch_queue_create(BOUND, consume_nothing, NULL);
    llorch_queue *q = llorch_queue_create(BOUND, consume_nothing, NULL);
    if (fresh == NULL || q == NULL) {
        return 1;
    }
    double unreserved = resident_under_new_buffer(fresh, 1 * MIB);
    llorch_queue_reserve(q, 12 * MIB);
    llorch_queue_stats(q, &wait, &peak_bytes, &held);
    double reserved = resident_under_new_buffer(q, 1 * MIB);
    if (unreserved > 0.5 || reserved < 1.0) {
        fprintf(stderr, "FAIL: resident share of a new buffer's chunk: %.2f without reserve, %.2f with\n", unreserved,
                reserved);
        failures++;
    }
    if (held < 12 * MIB || held > BOUND) {
        fprintf(stderr, "FAIL: reserving 12 MiB holds %zu bytes (bound %zu)\n", held, BOUND);
        failures++;
    }
    struct llorch_queue_item items[12];
    for (int i = 0; i < 12; i++) { /* buffers of 12 MiB held at once come from the reserve */
        items[i].data = llorch_queue_buffer(q, 1 * MIB - 64, &items[i].chunk);
    }
    llorch_queue_stats(q, &wait, &peak_bytes, &held_after);
    if (held_after != held) {
        fprintf(stderr, "FAIL: 12 MiB of buffers after reserving 12 MiB grew the memory from %zu to %zu\n", held,
                held_after);
        failures++;
    }
    for (int i = 0; i < 12; i++) {
        struct llorch_queue_item *heap = malloc(sizeof *heap);
        *heap = items[i];
        llorch_queue_recycle(q, heap);
    }
    llorch_queue_reserve(q, 10 * BOUND);
    llorch_queue_stats(q, &wait, &peak_bytes, &held);
    if (held > BOUND) {
        fprintf(stderr, "FAIL: reserving past the bound holds %zu bytes (bound %zu)\n", held, BOUND);
        failures++;
    }
    llorch_queue_free(fresh);
    llorch_queue_free(q);
    if (failures == 0) {
        printf(
            "ok: reserve maps %.0f%% of a chunk (%.0f%% unreserved), serves 12 MiB of buffers, stays within %zu MiB\n",
            100.0 * reserved, 100.0 * unreserved, BOUND / MIB);
    }
    return failures;
}

int main(void) {
    struct consumer c = {0};
    llorch_queue   *q = llorch_queue_create(BOUND, consume, &c);
    int             next = 0, failures = 0;
    double          wait;
    size_t          peak_bytes, peak_held;
    if (q == NULL || push_items(q, &next, 6, 10 * MIB) != 0 || push_items(q, &next, 6, 14 * MIB) != 0 ||
        push_items(q, &next, 64, 1 * MIB) != 0 || llorch_queue_drain(q) != 0) {
        return 1;
    }
    llorch_queue_stats(q, &wait, &peak_bytes, &peak_held);
    if (peak_held > BOUND) {
        fprintf(stderr, "FAIL: copies held %zu bytes at once, over the bound of %zu\n", peak_held, BOUND);
        failures++;
    }
    if (wait <= 0.0) {
        fprintf(stderr, "FAIL: the producer never waited for a writer slower than it\n");
        failures++;
    }
    /* one item larger than the bound goes through alone */
    if (push_items(q, &next, 1, 24 * MIB) != 0 || llorch_queue_finish(q) != 0) {
        return 1;
    }
    size_t peak_after_phases = peak_held;
    llorch_queue_stats(q, &wait, &peak_bytes, &peak_held);
    if (peak_held > 24 * MIB) {
        fprintf(stderr, "FAIL: %zu bytes held with one 24 MiB item, more than the item\n", peak_held);
        failures++;
    }
    if (c.seen != next || c.bad != 0 || c.largest != 24 * MIB) {
        fprintf(stderr, "FAIL: the writer saw %d of %d items, %d out of order or corrupt\n", c.seen, next, c.bad);
        failures++;
    }
    llorch_queue_free(q);
    failures += check_reserve();
    failures += check_lazy();
    if (failures == 0) {
        printf("ok: %d items through a %zu MiB bound: at most %.1f MiB held, %.2f s waiting for the writer\n", next,
               BOUND / MIB, (double) peak_after_phases / MIB, wait);
    }
    return failures == 0 ? 0 : 1;
}

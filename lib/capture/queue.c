/* queue.c - a FIFO between the compute thread (producer) and one writer
 * thread (consumer), bounded by the bytes it holds. Disk I/O therefore
 * never runs on the compute thread; the producer only waits when the
 * writer falls behind by more than the bound. */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "queue.h"

#include "buffers.h"
#include "util.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* Bytes pushed before the writer is woken (see llorch_queue_push). */
#define WAKE_BYTES ((size_t) 8 << 20)

struct llorch_queue {
    pthread_mutex_t           lock;
    pthread_cond_t            changed; /* an item was pushed or consumed */
    pthread_t                 thread;
    struct llorch_queue_item *head, *tail;
    size_t                    bytes; /* data bytes queued or being consumed */
    size_t                    items; /* items queued or being consumed */
    size_t                    max_bytes;
    size_t                    peak_bytes;
    size_t                    peak_held;   /* the most memory the buffers held at once */
    llorch_buffers           *buffers;     /* the items' data */
    size_t                    unsignalled; /* bytes pushed since the writer was last woken */
    bool                      eager;       /* wake the writer as work comes (llorch_queue_set_eager) */
    bool                      awake;       /* the writer may consume: always when eager; when lazy,
                                              from a wake until it has emptied the queue */
    bool                    closing;
    int                     failed; /* the consumer's first failure */
    double                  wait_seconds;
    llorch_queue_consume_fn consume;
    void                   *ctx;
};

/* Lets the writer consume, and wakes it. Called with the lock held. */
static void wake_locked(llorch_queue *q) {
    q->awake = true;
    q->unsignalled = 0;
    pthread_cond_broadcast(&q->changed);
}

/* Releases an item and its buffer. Called with the lock held. */
static void recycle_locked(llorch_queue *q, struct llorch_queue_item *item) {
    llorch_buffers_release(q->buffers, item->chunk);
    free(item);
}

void llorch_queue_recycle(llorch_queue *q, struct llorch_queue_item *item) {
    pthread_mutex_lock(&q->lock);
    recycle_locked(q, item);
    pthread_mutex_unlock(&q->lock);
}

/* The bound covers every captured byte not yet written, queued or not
 * (a layer's cache copies wait for attention before they are queued):
 * while the writer has work that will release memory, a copy that does not
 * fit waits for it. With nothing queued it goes ahead, even past the
 * bound: waiting could never end. */
void *llorch_queue_buffer(llorch_queue *q, size_t bytes, struct llorch_buffer_chunk **chunk) {
    pthread_mutex_lock(&q->lock);
    if (q->items > 0 && !llorch_buffers_fit(q->buffers, bytes) && !q->failed) {
        double start = llorch_now_seconds();
        wake_locked(q); /* the writer may be waiting for a batch to fill, or lazy */
        while (q->items > 0 && !llorch_buffers_fit(q->buffers, bytes) && !q->failed) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        q->wait_seconds += llorch_now_seconds() - start;
    }
    void  *p = llorch_buffers_get(q->buffers, bytes, chunk);
    size_t held = llorch_buffers_held(q->buffers);
    q->peak_held = held > q->peak_held ? held : q->peak_held;
    pthread_mutex_unlock(&q->lock);
    return p;
}

void llorch_queue_reserve(llorch_queue *q, size_t bytes) {
    pthread_mutex_lock(&q->lock);
    llorch_buffers_reserve(q->buffers, bytes);
    size_t held = llorch_buffers_held(q->buffers);
    q->peak_held = held > q->peak_held ? held : q->peak_held;
    pthread_mutex_unlock(&q->lock);
}

static struct llorch_queue_item *pop_locked(llorch_queue *q) {
    struct llorch_queue_item *item = q->head;
    q->head = item->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    return item;
}

/* The writer runs at idle priority: where the computation leaves a core
 * idle, it writes there at once. Where every core computes, the scheduler
 * still gives it a time slice now and then, and a compute thread waits at
 * a barrier meanwhile: such a producer makes the queue lazy
 * (llorch_queue_set_eager). When the queue is full the computation waits,
 * the cores idle, and the writer runs. */
static void lower_priority(void) {
#ifdef SCHED_IDLE
    struct sched_param param = {.sched_priority = 0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
#endif
}

static void *writer_main(void *arg) {
    llorch_queue *q = arg;
    lower_priority();
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while ((q->head == NULL || !q->awake) && !q->closing) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        if (q->head == NULL) {
            break; /* closing and drained */
        }
        struct llorch_queue_item *item = pop_locked(q);
        int                       failed = q->failed;
        pthread_mutex_unlock(&q->lock);

        int rc = failed ? failed : q->consume(q->ctx, item);

        pthread_mutex_lock(&q->lock);
        if (rc != 0 && q->failed == 0) {
            q->failed = rc;
        }
        q->bytes -= item->bytes;
        q->items--;
        recycle_locked(q, item);
        if (q->head == NULL && !q->eager) {
            q->awake = false; /* lazy: back to sleep until the next wake */
        }
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

llorch_queue *llorch_queue_create(size_t max_bytes, llorch_queue_consume_fn consume, void *ctx) {
    llorch_queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    q->max_bytes = max_bytes;
    q->buffers = llorch_buffers_create(max_bytes);
    if (q->buffers == NULL) {
        free(q);
        return NULL;
    }
    q->consume = consume;
    q->ctx = ctx;
    q->eager = true;
    q->awake = true;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        pthread_cond_destroy(&q->changed);
        pthread_mutex_destroy(&q->lock);
        llorch_buffers_free(q->buffers);
        free(q);
        return NULL;
    }
    return q;
}

int llorch_queue_push(llorch_queue *q, struct llorch_queue_item *item) {
    item->next = NULL;
    pthread_mutex_lock(&q->lock);
    /* An item larger than the bound still goes through once the queue is
     * empty: waiting for room that can never come would deadlock. */
    if (q->bytes > 0 && q->bytes + item->bytes > q->max_bytes && !q->failed) {
        double start = llorch_now_seconds();
        wake_locked(q); /* a lazy writer may sleep: only it makes room */
        while (q->bytes > 0 && q->bytes + item->bytes > q->max_bytes && !q->failed) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        q->wait_seconds += llorch_now_seconds() - start;
    }
    int failed = q->failed;
    if (failed) {
        recycle_locked(q, item);
        pthread_mutex_unlock(&q->lock);
        return -1;
    }
    if (q->tail != NULL) {
        q->tail->next = item;
    } else {
        q->head = item;
    }
    q->tail = item;
    q->bytes += item->bytes;
    q->items++;
    if (q->bytes > q->peak_bytes) {
        q->peak_bytes = q->bytes;
    }
    /* waking the writer for every tensor costs a context switch each; it is
     * woken for a batch, or by llorch_queue_flush; a lazy queue's writer
     * only when the bound comes near */
    q->unsignalled += item->bytes;
    if ((q->eager && q->unsignalled >= WAKE_BYTES) || q->bytes + WAKE_BYTES > q->max_bytes) {
        wake_locked(q);
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void llorch_queue_set_eager(llorch_queue *q, bool eager) {
    pthread_mutex_lock(&q->lock);
    q->eager = eager;
    q->awake = eager;
    if (eager) {
        wake_locked(q);
    }
    pthread_mutex_unlock(&q->lock);
}

void llorch_queue_flush(llorch_queue *q) {
    pthread_mutex_lock(&q->lock);
    if (q->eager) {
        wake_locked(q);
    }
    pthread_mutex_unlock(&q->lock);
}

int llorch_queue_drain(llorch_queue *q) {
    pthread_mutex_lock(&q->lock);
    wake_locked(q);
    while (q->items > 0) {
        pthread_cond_wait(&q->changed, &q->lock);
    }
    int failed = q->failed;
    pthread_mutex_unlock(&q->lock);
    return failed;
}

int llorch_queue_finish(llorch_queue *q) {
    pthread_mutex_lock(&q->lock);
    bool already = q->closing;
    q->closing = true;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
    if (!already) {
        pthread_join(q->thread, NULL);
    }
    return q->failed;
}

void llorch_queue_stats(const llorch_queue *q, double *wait_seconds, size_t *peak_bytes, size_t *peak_held) {
    *wait_seconds = q->wait_seconds;
    *peak_bytes = q->peak_bytes;
    *peak_held = q->peak_held;
}

void llorch_queue_free(llorch_queue *q) {
    if (q == NULL) {
        return;
    }
    llorch_queue_finish(q);
    llorch_buffers_free(q->buffers);
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

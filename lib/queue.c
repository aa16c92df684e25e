/* queue.c - a FIFO between the compute thread (producer) and one writer
 * thread (consumer), bounded by the bytes it holds. Disk I/O therefore
 * never runs on the compute thread; the producer only waits when the
 * writer falls behind by more than the bound. */
#define _POSIX_C_SOURCE 200809L
#include "queue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct llorch_queue {
    pthread_mutex_t lock;
    pthread_cond_t  changed;     /* an item was pushed or consumed */
    pthread_t       thread;
    struct llorch_queue_item *head, *tail;
    size_t  bytes;               /* data bytes queued or being consumed */
    size_t  items;               /* items queued or being consumed */
    size_t  max_bytes;
    size_t  peak_bytes;
    bool    closing;
    int     failed;              /* the consumer's first failure */
    double  wait_seconds;
    llorch_queue_consume_fn consume;
    void   *ctx;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void free_item(struct llorch_queue_item *item) {
    free(item->data);
    free(item);
}

static struct llorch_queue_item *pop_locked(llorch_queue *q) {
    struct llorch_queue_item *item = q->head;
    q->head = item->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    return item;
}

static void *writer_main(void *arg) {
    llorch_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->closing) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        if (q->head == NULL) {
            break;                          /* closing and drained */
        }
        struct llorch_queue_item *item = pop_locked(q);
        int failed = q->failed;
        pthread_mutex_unlock(&q->lock);

        int rc = failed ? failed : q->consume(q->ctx, item);

        pthread_mutex_lock(&q->lock);
        if (rc != 0 && q->failed == 0) {
            q->failed = rc;
        }
        q->bytes -= item->bytes;
        q->items--;
        free_item(item);
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
    q->consume = consume;
    q->ctx = ctx;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        pthread_cond_destroy(&q->changed);
        pthread_mutex_destroy(&q->lock);
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
        double start = now_seconds();
        while (q->bytes > 0 && q->bytes + item->bytes > q->max_bytes && !q->failed) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        q->wait_seconds += now_seconds() - start;
    }
    int failed = q->failed;
    if (failed) {
        pthread_mutex_unlock(&q->lock);
        free_item(item);
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
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int llorch_queue_drain(llorch_queue *q) {
    pthread_mutex_lock(&q->lock);
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

double llorch_queue_wait_seconds(const llorch_queue *q) { return q->wait_seconds; }
size_t llorch_queue_peak_bytes(const llorch_queue *q) { return q->peak_bytes; }

void llorch_queue_free(llorch_queue *q) {
    if (q == NULL) {
        return;
    }
    llorch_queue_finish(q);
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

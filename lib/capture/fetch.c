/* fetch.c - device tensors to host memory, one round trip per capture point.
 *
 * The eval callback does not get llama.cpp's backends, so each device gets
 * a backend of its own for reading (ggml_backend_dev_init): its stream is
 * not the compute stream, which is safe because the scheduler synchronizes
 * the computing backend before the callback reads (ask == false). Reads go
 * into one staging area per device, grown as needed and kept across steps:
 * the device's host buffer type (pinned memory, which lets a GPU copy
 * asynchronously at full speed) or plain memory. */
#define _POSIX_C_SOURCE 200809L
#include "fetch.h"

#include "util.h"

#include <ggml-backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_ALIGN 64

struct fetch_device {
    ggml_backend_dev_t    dev;
    ggml_backend_t        backend; /* for reading only */
    ggml_backend_buffer_t pinned;  /* staging in the device's host buffer type, or NULL */
    void                 *plain;   /* staging in plain memory, when it has none */
    size_t                cap, used;
};

struct fetch_read {
    const struct ggml_tensor *t;
    int                       device;
    size_t                    offset; /* into the device's staging */
};

struct llorch_fetch {
    struct fetch_device *devices;
    size_t               n_devices, cap_devices;
    struct fetch_read   *reads;
    size_t               n_reads, cap_reads;
};

bool llorch_fetch_is_host(const struct ggml_tensor *t) {
    const struct ggml_tensor *base = t->view_src != NULL ? t->view_src : t;
    return base->buffer == NULL || ggml_backend_buffer_is_host(base->buffer);
}

llorch_fetch *llorch_fetch_create(void) {
    return calloc(1, sizeof(llorch_fetch));
}

static void free_staging(struct fetch_device *d) {
    if (d->pinned != NULL) {
        ggml_backend_buffer_free(d->pinned);
    }
    free(d->plain);
    d->pinned = NULL;
    d->plain = NULL;
    d->cap = 0;
}

void llorch_fetch_free(llorch_fetch *f) {
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n_devices; i++) {
        free_staging(&f->devices[i]);
        if (f->devices[i].backend != NULL) {
            ggml_backend_free(f->devices[i].backend);
        }
    }
    free(f->devices);
    free(f->reads);
    free(f);
}

void llorch_fetch_reset(llorch_fetch *f) {
    f->n_reads = 0;
    for (size_t i = 0; i < f->n_devices; i++) {
        f->devices[i].used = 0;
    }
}

static ggml_backend_dev_t device_of(const struct ggml_tensor *t) {
    const struct ggml_tensor *base = t->view_src != NULL ? t->view_src : t;
    return ggml_backend_buft_get_device(ggml_backend_buffer_get_type(base->buffer));
}

/* The index of dev in f->devices, added when new; -1 when out of memory. */
static int device_index(llorch_fetch *f, ggml_backend_dev_t dev) {
    for (size_t i = 0; i < f->n_devices; i++) {
        if (f->devices[i].dev == dev) {
            return (int) i;
        }
    }
    if (llorch_grow(&f->devices, &f->cap_devices, f->n_devices + 1, sizeof *f->devices, 4) != 0) {
        return -1;
    }
    memset(&f->devices[f->n_devices], 0, sizeof *f->devices);
    f->devices[f->n_devices].dev = dev;
    return (int) f->n_devices++;
}

static const struct fetch_read *find_read(const llorch_fetch *f, const struct ggml_tensor *t) {
    for (size_t i = 0; i < f->n_reads; i++) {
        if (f->reads[i].t == t) {
            return &f->reads[i];
        }
    }
    return NULL;
}

int llorch_fetch_add(llorch_fetch *f, const struct ggml_tensor *t) {
    if (llorch_fetch_is_host(t) || find_read(f, t) != NULL) {
        return 0;
    }
    int d = device_index(f, device_of(t));
    if (d < 0 || llorch_grow(&f->reads, &f->cap_reads, f->n_reads + 1, sizeof *f->reads, 64) != 0) {
        return -1;
    }
    struct fetch_device *dev = &f->devices[d];
    f->reads[f->n_reads++] = (struct fetch_read){t, d, dev->used};
    dev->used += (ggml_nbytes(t) + FETCH_ALIGN - 1) / FETCH_ALIGN * FETCH_ALIGN;
    return 0;
}

static void *staging_base(const struct fetch_device *d) {
    return d->pinned != NULL ? ggml_backend_buffer_get_base(d->pinned) : d->plain;
}

/* Room for d->used bytes, pinned where the device offers host memory. */
static int grow_staging(struct fetch_device *d) {
    if (d->used <= d->cap) {
        return 0;
    }
    size_t want = d->used > 2 * d->cap ? d->used : 2 * d->cap;
    free_staging(d);
    ggml_backend_buffer_type_t host = ggml_backend_dev_host_buffer_type(d->dev);
    if (host != NULL) {
        d->pinned = ggml_backend_buft_alloc_buffer(host, want);
    }
    if (d->pinned == NULL) {
        d->plain = malloc(want);
        if (d->plain == NULL) {
            return -1;
        }
    }
    d->cap = want;
    return 0;
}

int llorch_fetch_run(llorch_fetch *f, char *err, size_t err_size) {
    for (size_t i = 0; i < f->n_devices; i++) {
        struct fetch_device *d = &f->devices[i];
        if (d->used == 0) {
            continue;
        }
        if (d->backend == NULL) {
            d->backend = ggml_backend_dev_init(d->dev, NULL);
        }
        if (d->backend == NULL || grow_staging(d) != 0) {
            snprintf(err, err_size, "cannot read tensors from device %s (%zu bytes): out of memory",
                     ggml_backend_dev_name(d->dev), d->used);
            return -1;
        }
    }
    for (size_t i = 0; i < f->n_reads; i++) {
        const struct fetch_read *r = &f->reads[i];
        struct fetch_device     *d = &f->devices[r->device];
        ggml_backend_tensor_get_async(d->backend, r->t, (char *) staging_base(d) + r->offset, 0, ggml_nbytes(r->t));
    }
    for (size_t i = 0; i < f->n_devices; i++) {
        if (f->devices[i].used > 0) {
            ggml_backend_synchronize(f->devices[i].backend);
        }
    }
    return 0;
}

const void *llorch_fetch_host(const llorch_fetch *f, const struct ggml_tensor *t) {
    if (llorch_fetch_is_host(t)) {
        return t->data;
    }
    const struct fetch_read *r = find_read(f, t);
    const char              *base = r != NULL ? staging_base(&f->devices[r->device]) : NULL;
    return base != NULL ? base + r->offset : NULL;
}

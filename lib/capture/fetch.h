/* fetch.h - device tensors to host memory, all of one capture point in one
 * round trip: each device's reads are issued asynchronously (into pinned
 * host memory where the device offers it, such as a CUDA GPU's), then
 * every device is synchronized once. A tensor in host memory is read in
 * place and costs nothing here. */
#ifndef LLORCH_FETCH_H
#define LLORCH_FETCH_H

#include <ggml.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct llorch_fetch llorch_fetch;

llorch_fetch *llorch_fetch_create(void);
void          llorch_fetch_free(llorch_fetch *f);

/* Forgets the tensors of the previous capture point (keeps the memory). */
void llorch_fetch_reset(llorch_fetch *f);
/* Adds t to the reads of this capture point; a tensor already added, or
 * in host memory, is not read twice. -1 when out of memory. */
int llorch_fetch_add(llorch_fetch *f, const struct ggml_tensor *t);
/* Reads every added tensor and waits for them. -1 when out of memory or
 * when a device cannot be opened for reading (err says which). */
int llorch_fetch_run(llorch_fetch *f, char *err, size_t err_size);
/* t's bytes from t->data on, in host memory (after llorch_fetch_run for a
 * device tensor), or NULL when t was not fetched. */
const void *llorch_fetch_host(const llorch_fetch *f, const struct ggml_tensor *t);

/* Whether t's memory is host memory (read in place). */
bool llorch_fetch_is_host(const struct ggml_tensor *t);

#endif

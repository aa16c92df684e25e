/*
 * read_object.c - the dump object's life: allocation and free, at the
 * bottom of the reader (read_manifest.c fills the object, read_dump.c
 * opens files for it; both call down into this file).
 */
#define _POSIX_C_SOURCE 200809L
#include "read_internal.h"

#include "error.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

llorch_ckpt_dump *llorch_read_dump_new(const char *name, const char *manifest_name, char *err, size_t err_size) {
    llorch_ckpt_dump *d = calloc(1, sizeof *d);
    if (d) {
        d->container_fd = -1;
        d->name = llorch_strdup(name);
        d->manifest_name = llorch_strdup(manifest_name);
    }
    if (!d || !d->name || !d->manifest_name) {
        llorch_set_error(err, err_size, "%s: out of memory", manifest_name);
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    return d;
}

void llorch_ckpt_dump_free(llorch_ckpt_dump *d) {
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n_files; i++) {
        free(d->files[i].name);
        free(d->files[i].buf);
    }
    free(d->files);
    llorch_container_free(d->container);
    if (d->container_fd >= 0) {
        close(d->container_fd);
    }
    cJSON_Delete(d->root);
    for (size_t i = 0; d->entries && i < d->n_entries; i++) {
        free((void *) d->entries[i].positions);
        free((void *) d->entries[i].cells);
    }
    for (size_t i = 0; i < d->n_sequences; i++) {
        free((void *) d->sequences[i].tokens);
    }
    void *const owned[] = {d->entries, d->sequences, d->tokens, d->dir, d->name, d->manifest_name, d};
    llorch_free_all(owned, sizeof owned / sizeof owned[0]);
}

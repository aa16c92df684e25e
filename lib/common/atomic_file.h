/* atomic_file.h - a file written as PATH.part and renamed to PATH once
 * whole, so that a reader never meets a partial file under its final name;
 * and the fsyncs that make a finished dump survive a power loss. */
#ifndef LLORCH_ATOMIC_FILE_H
#define LLORCH_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct llorch_atomic_file {
    FILE *f;
    char  path[4096];
    char  part[4200];
    int   error; /* errno of the first failed write, or -1 for a short write */
};

/* Creates dir/name.part for writing. -1 with a message naming it. */
int llorch_atomic_create(struct llorch_atomic_file *a, const char *dir, const char *name, char *err, size_t err_size);
/* Writes n bytes; a failure is remembered for llorch_atomic_commit. */
void llorch_atomic_write(struct llorch_atomic_file *a, const void *data, size_t n);
/* Flushes and closes the file (after an fsync when sync is set) and renames
 * it into place. On any failure, including an earlier write's, removes the
 * part and fails with a message that names the file and the cause. */
int llorch_atomic_commit(struct llorch_atomic_file *a, bool sync, char *err, size_t err_size);
/* Closes and removes the part. */
void llorch_atomic_abort(struct llorch_atomic_file *a);

/* fsync of a file or a directory by its path; -1 with a message. */
int llorch_sync_path(const char *path, char *err, size_t err_size);

#endif

/* atomic_file.c - files renamed into place once whole (see atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int llorch_atomic_create(struct llorch_atomic_file *a, const char *dir, const char *name, char *err, size_t err_size) {
    a->error = 0;
    snprintf(a->path, sizeof a->path, "%s/%s", dir, name);
    snprintf(a->part, sizeof a->part, "%s.part", a->path);
    a->f = fopen(a->part, "wb");
    if (a->f == NULL) {
        snprintf(err, err_size, "cannot create %s: %s; check the output directory's permissions", a->part,
                 strerror(errno));
        return -1;
    }
    return 0;
}

void llorch_atomic_write(struct llorch_atomic_file *a, const void *data, size_t n) {
    if (a->error != 0 || n == 0) {
        return;
    }
    errno = 0;
    if (fwrite(data, 1, n, a->f) != n) {
        a->error = errno != 0 ? errno : -1;
    }
}

/* The first failure of the steps that end a file: flush, sync, close. */
static int finish_file(struct llorch_atomic_file *a, bool sync) {
    int error = a->error;
    errno = 0;
    if (fflush(a->f) != 0 && error == 0) {
        error = errno != 0 ? errno : -1;
    }
    if (sync && error == 0 && fsync(fileno(a->f)) != 0) {
        error = errno;
    }
    errno = 0;
    if (fclose(a->f) != 0 && error == 0) {
        error = errno != 0 ? errno : -1;
    }
    a->f = NULL;
    return error;
}

int llorch_atomic_commit(struct llorch_atomic_file *a, bool sync, char *err, size_t err_size) {
    int error = finish_file(a, sync);
    if (error == 0 && rename(a->part, a->path) != 0) {
        error = errno;
    }
    if (error != 0) {
        snprintf(err, err_size, "writing %s failed: %s; free space or choose another output directory", a->path,
                 error > 0 ? strerror(error) : "short write");
        remove(a->part);
        return -1;
    }
    return 0;
}

void llorch_atomic_abort(struct llorch_atomic_file *a) {
    if (a->f != NULL) {
        fclose(a->f);
        a->f = NULL;
    }
    remove(a->part);
}

int llorch_sync_path(const char *path, char *err, size_t err_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        snprintf(err, err_size, "cannot sync %s to disk: %s; check the output directory", path, strerror(e));
        return -1;
    }
    close(fd);
    return 0;
}

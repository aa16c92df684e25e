/*
 * read_file.c - the files of a dump directory: which names may be opened
 * (llorch_ckpt_safe_name), paths in messages, opening a file inside the
 * directory without following symlinks, and reading a whole one.
 */
#define _POSIX_C_SOURCE 200809L

#include "error.h"
#include "read_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- messages ------------------------------------------------------------ */

/* Copies s for a message, replacing what would break the one-line rule. */
const char *llorch_read_printable(const char *s, char *buf, size_t size) {
    size_t n = 0;
    for (; *s && n + 1 < size; s++) {
        unsigned char ch = (unsigned char) *s;
        buf[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char) ch;
    }
    buf[n] = '\0';
    return buf;
}

void llorch_read_join_path(char *buf, size_t size, const char *dir, const char *file) {
    size_t      len = strlen(dir);
    const char *sep = (len > 0 && dir[len - 1] == '/') ? "" : "/";
    char        safe[NAME_MAX_BYTES + 1];
    snprintf(buf, size, "%s%s%s", dir, sep, llorch_read_printable(file, safe, sizeof safe));
}

/* ---- names ---------------------------------------------------------------- */

bool llorch_ckpt_safe_name(const char *name) {
    if (!name || !*name || strlen(name) > NAME_MAX_BYTES || strcmp(name, ".") == 0) {
        return false;
    }
    if (strchr(name, '/') || strchr(name, '\\') || strstr(name, "..")) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *) name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return true;
}
/* ---- files --------------------------------------------------------------- */

/* Opens dir/file for reading: a plain name, a regular file, no symlink. */
int llorch_read_open_in_dir(const char *dir, const char *file, struct stat *st, char *err, size_t err_size) {
    char path[4096];
    llorch_read_join_path(path, sizeof path, dir, file);
    if (!llorch_ckpt_safe_name(file)) {
        llorch_set_error(err, err_size, "%s: refusing the file name: not a plain name inside the dump directory", path);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        llorch_set_error(err, err_size, "%s: cannot open the directory: %s", dir, strerror(errno));
        return -1;
    }
    /* O_NONBLOCK: a FIFO planted under a tensor's name must not hang us. */
    int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int open_errno = errno;
    close(dfd);
    if (fd < 0) {
        llorch_set_error(err, err_size, "%s: %s", path,
                         open_errno == ELOOP ? "is a symbolic link (refused)" : strerror(open_errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        llorch_set_error(err, err_size, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the whole of dir/file (at most max bytes) into a new buffer with a
 * terminating NUL that is not counted in *size. */
int llorch_read_file_in_dir(const char *dir, const char *file, size_t max, unsigned char **out, size_t *size, char *err,
                            size_t err_size) {
    struct stat st;
    char        path[4096];
    llorch_read_join_path(path, sizeof path, dir, file);
    int fd = llorch_read_open_in_dir(dir, file, &st, err, err_size);
    if (fd < 0) {
        return -1;
    }
    if (st.st_size < 0 || (uint64_t) st.st_size > max) {
        llorch_set_error(err, err_size, "%s: too large (%lld bytes)", path, (long long) st.st_size);
        close(fd);
        return -1;
    }
    size_t         n = (size_t) st.st_size, got = 0;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        llorch_set_error(err, err_size, "%s: out of memory reading %zu bytes", path, n);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            llorch_set_error(err, err_size, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t) r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return 0;
}

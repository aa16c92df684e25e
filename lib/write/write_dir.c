/* write_dir.c - the output directory: created with its parents, and
 * refused when it is a file, not empty, or not writable. */
#define _POSIX_C_SOURCE 200809L
#include "write_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int make_dirs(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int) sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return (mkdir(buf, 0777) != 0 && errno != EEXIST) ? -1 : 0;
}

static bool dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool empty = true;
    for (struct dirent *e = readdir(d); e != NULL && empty; e = readdir(d)) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

int llorch_write_prepare_dir(const char *dir, bool allow_nonempty, char *err, size_t err_size) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, err_size, "output '%s' exists and is not a directory; choose a new directory", dir);
            return -1;
        }
        if (!allow_nonempty && !dir_is_empty(dir)) {
            snprintf(err, err_size, "output directory '%s' is not empty; choose a new directory or empty it", dir);
            return -1;
        }
    } else if (make_dirs(dir) != 0) {
        snprintf(err, err_size, "cannot create output directory '%s': %s; choose a writable location", dir,
                 strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, err_size, "output directory '%s' is not writable; choose a writable location", dir);
        return -1;
    }
    return 0;
}

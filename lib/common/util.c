/* util.c - small helpers every part uses. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double llorch_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

char *llorch_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char  *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

void llorch_format_shape(char *buf, size_t size, int n_dims, const int64_t *shape) {
    size_t used = (size_t) snprintf(buf, size, "(");
    for (int i = 0; i < n_dims && used < size; i++) {
        used += (size_t) snprintf(buf + used, size - used, "%s%lld", i > 0 ? ", " : "", (long long) shape[i]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, n_dims == 1 ? ",)" : ")");
    }
}

/* util.c - small helpers every part uses. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "util.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double llorch_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

int llorch_usable_cores(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int) n : 1;
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

void llorch_free_all(void *const *ptrs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(ptrs[i]);
    }
}

int llorch_grow(void *items, size_t *cap, size_t need, size_t elem_size, size_t first) {
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap > 0 ? *cap : first;
    while (n < need) {
        n *= 2;
    }
    void **array = items;
    void  *grown = realloc(*array, n * elem_size);
    if (grown == NULL) {
        return -1;
    }
    *array = grown;
    *cap = n;
    return 0;
}

const char *llorch_enum_name(const char *const *names, size_t n, int value, const char *unknown) {
    return value >= 0 && (size_t) value < n ? names[value] : unknown;
}

int llorch_enum_value(const char *const *names, size_t n, const char *name) {
    for (size_t i = 0; name != NULL && i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            return (int) i;
        }
    }
    return -1;
}

void llorch_sort(void *base, size_t n, size_t size, int (*compare)(const void *, const void *)) {
    if (n > 1) {
        qsort(base, n, size, compare);
    }
}

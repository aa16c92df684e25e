/* util.h - small helpers every part uses. */
#ifndef LLORCH_UTIL_H
#define LLORCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on a monotonic clock. */
double llorch_now_seconds(void);
/* The cores this process may run on (its CPU affinity), at least 1. */
int llorch_usable_cores(void);
/* A malloc'd copy of s; NULL when out of memory. */
char *llorch_strdup(const char *s);
/* A shape as numpy prints it: "(2, 3)", "(5,)", "()". */
void llorch_format_shape(char *buf, size_t size, int n_dims, const int64_t *shape);

/* names[value] for an enum whose values are 0 .. n-1, else unknown. */
const char *llorch_enum_name(const char *const *names, size_t n, int value, const char *unknown);
/* The value whose name is name, or -1. */
int llorch_enum_value(const char *const *names, size_t n, const char *name);
/* free() of each of n pointers. */
void llorch_free_all(void *const *ptrs, size_t n);
/* Makes room for at least need elements of elem_size bytes in *items (of
 * capacity *cap), doubling from first. 0, or -1 when out of memory (the
 * array is then unchanged). */
int llorch_grow(void *items, size_t *cap, size_t need, size_t elem_size, size_t first);
/* qsort() that accepts an empty array with a NULL base: qsort's own
 * contract requires a valid pointer even for zero elements. */
void llorch_sort(void *base, size_t n, size_t size, int (*compare)(const void *, const void *));

#endif

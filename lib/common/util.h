/* util.h - small helpers every part uses. */
#ifndef LLORCH_UTIL_H
#define LLORCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on a monotonic clock. */
double llorch_now_seconds(void);
/* A malloc'd copy of s; NULL when out of memory. */
char *llorch_strdup(const char *s);
/* A shape as numpy prints it: "(2, 3)", "(5,)", "()". */
void llorch_format_shape(char *buf, size_t size, int n_dims, const int64_t *shape);

#endif

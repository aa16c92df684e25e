/* error.c - one-line error messages into a caller's buffer. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

void llorch_set_error(char *err, size_t size, const char *fmt, ...) {
    if (err == NULL || size == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* error.h - one-line error messages into a caller's buffer. */
#ifndef LLORCH_ERROR_H
#define LLORCH_ERROR_H

#include <stddef.h>

/* printf into err (if err and size are set); always NUL-terminated. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void llorch_set_error(char *err, size_t size, const char *fmt, ...);

#endif

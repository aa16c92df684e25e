/* check.h - the C tests' assertions. CHECK stops the test at its first
 * failure, for checks whose failure leaves nothing sound to check next;
 * EXPECT counts a failure in the test's own `failures` and goes on. Both
 * print the file and line, then the message; fail_if is CHECK for a test
 * that names what failed instead. */
#ifndef LLORCH_TESTS_CHECK_H
#define LLORCH_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

/* Stops the test when `bad`: "FAIL: what: detail". */
static inline void fail_if(int bad, const char *what, const char *detail) {
    if (bad) {
        fprintf(stderr, "FAIL: %s: %s\n", what, detail != NULL ? detail : "");
        exit(1);
    }
}

#endif

/*
 * test_engine_npy.h - a minimal .npy reader for the engine tests: float32
 * and int32 arrays in C order, version 1.0 headers (what the dump writer
 * produces). Independent of the library on purpose: the tests check the
 * files, not the library's idea of them.
 */
#ifndef TEST_ENGINE_NPY_H
#define TEST_ENGINE_NPY_H

#include <stddef.h>
#include <stdint.h>

struct npy {
    char    descr[8]; /* "<f4" or "<i4" */
    int     n_dims;
    int64_t shape[4];
    size_t  count; /* elements */
    void   *data;  /* malloc'd */
};

/* Returns 0, or -1 with a message on stderr. */
int  npy_read(const char *path, struct npy *out);
void npy_free(struct npy *a);

#endif

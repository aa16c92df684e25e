/* test_engine_npy.c - see test_engine_npy.h. */
#include "test_engine_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_shape(const char *header, struct npy *a) {
    const char *s = strstr(header, "'shape': (");
    if (s == NULL) {
        return -1;
    }
    s += strlen("'shape': (");
    a->n_dims = 0;
    a->count = 1;
    while (*s != ')' && a->n_dims < 4) {
        char     *end;
        long long v = strtoll(s, &end, 10);
        if (end == s) {
            return -1;
        }
        a->shape[a->n_dims++] = v;
        a->count *= (size_t) v;
        s = end;
        while (*s == ',' || *s == ' ') {
            s++;
        }
    }
    return *s == ')' ? 0 : -1;
}

static int parse_header(FILE *f, struct npy *a) {
    unsigned char pre[10];
    char          header[1024];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01\x00", 8) != 0) {
        return -1;
    }
    size_t len = (size_t) pre[8] | (size_t) pre[9] << 8;
    if (len >= sizeof header || fread(header, 1, len, f) != len) {
        return -1;
    }
    header[len] = '\0';
    const char *d = strstr(header, "'descr': '");
    if (d == NULL || strstr(header, "'fortran_order': False") == NULL) {
        return -1;
    }
    memcpy(a->descr, d + strlen("'descr': '"), 3);
    a->descr[3] = '\0';
    return (strcmp(a->descr, "<f4") == 0 || strcmp(a->descr, "<i4") == 0) ? parse_shape(header, a) : -1;
}

int npy_read(const char *path, struct npy *a) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    int rc = parse_header(f, a);
    if (rc == 0) {
        a->data = malloc(a->count * 4 + 1);
        rc = a->data != NULL && fread(a->data, 4, a->count, f) == a->count ? 0 : -1;
    }
    fclose(f);
    if (rc != 0) {
        fprintf(stderr, "%s: not a float32/int32 .npy file this reader understands\n", path);
        npy_free(a);
    }
    return rc;
}

void npy_free(struct npy *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

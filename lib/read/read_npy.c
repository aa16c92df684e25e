/*
 * read_npy.c - .npy arrays: the header parser (the subset of Python dict
 * literals numpy writes, versions 1.0 and 2.0), the check of the data size
 * against the shape, and the llorch_ckpt_array_* API on a parsed array.
 */
#define _POSIX_C_SOURCE 200809L

#include "checksum.h"
#include "error.h"
#include "npy.h"
#include "read_internal.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC     "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_PREFIX_V2 12 /* magic, version, uint32 length */
/* numpy's own reader refuses headers over 10000 bytes by default and ours
 * are under 200: the cap bounds what a hostile header makes us parse. */
#define NPY_MAX_HEADER 65536u
#define NPY_MAX_DESCR  16

/* ---- shapes -------------------------------------------------------------- */

/* count = product of shape, bytes = count * item size; -1 on overflow. */
int llorch_read_shape_bytes(int n_dims, const int64_t *shape, enum llorch_ckpt_dtype dtype, int64_t *count,
                            int64_t *bytes) {
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / shape[i])) {
            return -1;
        }
        n *= shape[i];
    }
    int64_t item = (int64_t) llorch_dtype_size(dtype);
    if (n > INT64_MAX / item) {
        return -1;
    }
    *count = n;
    *bytes = n * item;
    return 0;
}

/* ---- the header ---------------------------------------------------------- */

struct npy_header {
    enum llorch_ckpt_dtype dtype;
    bool                   fortran_order;
    int                    n_dims;
    int64_t                shape[LLORCH_CKPT_MAX_DIMS];
};

/* The header is a Python dict literal; this parser takes exactly the subset
 * numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
struct cursor {
    const unsigned char *p, *end;
    char                *msg;
    size_t               msg_size;
};

static int header_error(struct cursor *c, const char *what) {
    llorch_set_error(c->msg, c->msg_size, "malformed .npy header: %s", what);
    return -1;
}

static void skip_space(struct cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool peek(struct cursor *c, char ch) {
    skip_space(c);
    return c->p < c->end && *c->p == (unsigned char) ch;
}

static bool eat(struct cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == (unsigned char) ch) {
        c->p++;
        return true;
    }
    return false;
}

static int parse_quoted(struct cursor *c, char *out, size_t out_size) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
        return header_error(c, "expected a quoted string");
    }
    unsigned char quote = *c->p++;
    size_t        n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p < 0x20 || *c->p >= 0x7f || n + 1 >= out_size) {
            return header_error(c, "unexpected string (escapes, non-ASCII or too long)");
        }
        out[n++] = (char) *c->p++;
    }
    if (c->p >= c->end) {
        return header_error(c, "unterminated string");
    }
    c->p++;
    out[n] = '\0';
    return 0;
}

static int parse_word(struct cursor *c, const char *word) {
    size_t len = strlen(word);
    skip_space(c);
    if ((size_t) (c->end - c->p) < len || memcmp(c->p, word, len) != 0) {
        return -1;
    }
    c->p += len;
    return 0;
}

static int parse_bool(struct cursor *c, bool *out) {
    if (parse_word(c, "True") == 0) {
        *out = true;
        return 0;
    }
    if (parse_word(c, "False") == 0) {
        *out = false;
        return 0;
    }
    return header_error(c, "fortran_order is neither True nor False");
}

static int parse_dim(struct cursor *c, int64_t *out) {
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
        return header_error(c, "a shape dimension is not a non-negative integer");
    }
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int digit = *c->p++ - '0';
        if (v > (INT64_MAX - digit) / 10) {
            return header_error(c, "a shape dimension overflows");
        }
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

static int parse_shape(struct cursor *c, struct npy_header *h) {
    if (!eat(c, '(')) {
        return header_error(c, "shape is not a tuple");
    }
    h->n_dims = 0;
    if (eat(c, ')')) {
        return 0;
    }
    for (;;) {
        if (h->n_dims == LLORCH_CKPT_MAX_DIMS) {
            return header_error(c, "more than 4 dimensions");
        }
        if (parse_dim(c, &h->shape[h->n_dims++]) != 0) {
            return -1;
        }
        if (eat(c, ')')) {
            return 0;
        }
        if (!eat(c, ',')) {
            return header_error(c, "expected ',' or ')' in shape");
        }
        if (eat(c, ')')) {
            return 0;
        }
    }
}

static int parse_header_value(struct cursor *c, const char *key, struct npy_header *h, unsigned *seen) {
    if (strcmp(key, "descr") == 0 && !(*seen & 1u)) {
        char descr[NPY_MAX_DESCR];
        *seen |= 1u;
        if (parse_quoted(c, descr, sizeof descr) != 0) {
            return -1;
        }
        if (llorch_dtype_from_descr(descr, &h->dtype) != 0) {
            llorch_set_error(c->msg, c->msg_size, "unsupported dtype '%s' (<f4, <f2 and <i4 are supported)", descr);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "fortran_order") == 0 && !(*seen & 2u)) {
        *seen |= 2u;
        return parse_bool(c, &h->fortran_order);
    }
    if (strcmp(key, "shape") == 0 && !(*seen & 4u)) {
        *seen |= 4u;
        return parse_shape(c, h);
    }
    return header_error(c, "unknown or repeated key");
}

static int parse_header(const unsigned char *p, size_t n, struct npy_header *h, char *msg, size_t msg_size) {
    struct cursor c = {p, p + n, msg, msg_size};
    unsigned      seen = 0;
    if (!eat(&c, '{')) {
        return header_error(&c, "not a dict");
    }
    while (!eat(&c, '}')) {
        char key[32];
        if (parse_quoted(&c, key, sizeof key) != 0) {
            return -1;
        }
        if (!eat(&c, ':')) {
            return header_error(&c, "expected ':'");
        }
        if (parse_header_value(&c, key, h, &seen) != 0) {
            return -1;
        }
        if (!eat(&c, ',') && !peek(&c, '}')) {
            return header_error(&c, "expected ',' or '}'");
        }
    }
    skip_space(&c);
    if (c.p != c.end) {
        return header_error(&c, "trailing bytes after the dict");
    }
    if (seen != 7u) {
        return header_error(&c, "missing descr, fortran_order or shape");
    }
    if (h->fortran_order) {
        llorch_set_error(msg, msg_size, "fortran_order True is not supported (C order only)");
        return -1;
    }
    return 0;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Finds the header: *start and *len of the dict, within buf. */
static int npy_prefix(const unsigned char *buf, size_t size, size_t *start, size_t *len, char *msg, size_t msg_size) {
    if (size >= NPY_MAGIC_LEN && memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        llorch_set_error(msg, msg_size, "not a .npy file (wrong magic)");
        return -1;
    }
    if (size < NPY_PREFIX_V1) {
        llorch_set_error(msg, msg_size, "truncated: %zu bytes is less than a .npy header", size);
        return -1;
    }
    unsigned major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2) || minor != 0) {
        llorch_set_error(msg, msg_size, "unsupported .npy version %u.%u (1.0 and 2.0 are supported)", major, minor);
        return -1;
    }
    if (major == 2 && size < NPY_PREFIX_V2) {
        llorch_set_error(msg, msg_size, "truncated: %zu bytes is less than a .npy 2.0 header", size);
        return -1;
    }
    uint32_t h = major == 1 ? (uint32_t) buf[8] | (uint32_t) buf[9] << 8 : le32(buf + 8);
    *start = major == 1 ? NPY_PREFIX_V1 : NPY_PREFIX_V2;
    if (h > NPY_MAX_HEADER) {
        llorch_set_error(msg, msg_size, "header length %u exceeds the limit of %u bytes", h, NPY_MAX_HEADER);
        return -1;
    }
    if (h > size - *start) {
        llorch_set_error(msg, msg_size, "truncated header: it declares %u bytes, %zu follow", h, size - *start);
        return -1;
    }
    *len = h;
    return 0;
}

static int check_data_size(const struct npy_header *h, size_t have, char *msg, size_t msg_size) {
    int64_t count, bytes;
    char    shape[128];
    llorch_format_shape(shape, sizeof shape, h->n_dims, h->shape);
    if (llorch_read_shape_bytes(h->n_dims, h->shape, h->dtype, &count, &bytes) != 0) {
        llorch_set_error(msg, msg_size, "shape %s is too large", shape);
        return -1;
    }
    if ((uint64_t) bytes != (uint64_t) have) {
        llorch_set_error(msg, msg_size, "%s: shape %s of %s needs %lld data bytes, the file has %zu",
                         (uint64_t) bytes > (uint64_t) have ? "truncated data"
                                                            : "size on disk does not match the header",
                         shape, llorch_ckpt_dtype_name(h->dtype), (long long) bytes, have);
        return -1;
    }
    return 0;
}

/* ---- arrays -------------------------------------------------------------- */

/* Takes ownership of buf (freed on failure too). */
static llorch_ckpt_array *array_from_buffer(unsigned char *buf, size_t size, const char *name, char *err,
                                            size_t err_size) {
    char              msg[512];
    size_t            start = 0, len = 0;
    struct npy_header h = {0};
    if (npy_prefix(buf, size, &start, &len, msg, sizeof msg) != 0 ||
        parse_header(buf + start, len, &h, msg, sizeof msg) != 0 ||
        check_data_size(&h, size - start - len, msg, sizeof msg) != 0) {
        llorch_set_error(err, err_size, "%s: %s", name, msg);
        free(buf);
        return NULL;
    }
    llorch_ckpt_array *a = calloc(1, sizeof *a);
    if (!a) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        free(buf);
        return NULL;
    }
    a->dtype = h.dtype;
    a->n_dims = h.n_dims;
    memcpy(a->shape, h.shape, sizeof a->shape);
    a->count = 1;
    for (int i = 0; i < h.n_dims; i++) {
        a->count *= h.shape[i];
    }
    a->buf = buf;
    a->data = buf + start + len;
    a->data_bytes = size - start - len;
    return a;
}

llorch_ckpt_array *llorch_ckpt_array_parse(const void *buf, size_t size, const char *name, char *err, size_t err_size) {
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        return NULL;
    }
    if (size) {
        memcpy(copy, buf, size);
    }
    return array_from_buffer(copy, size, name, err, err_size);
}

llorch_ckpt_array *llorch_ckpt_array_read(const char *dir, const char *file, char *err, size_t err_size) {
    unsigned char *buf;
    size_t         size;
    char           path[4096];
    if (llorch_read_file_in_dir(dir, file, SIZE_MAX - 1, &buf, &size, err, err_size) != 0) {
        return NULL;
    }
    llorch_read_join_path(path, sizeof path, dir, file);
    return array_from_buffer(buf, size, path, err, err_size);
}

enum llorch_ckpt_dtype llorch_ckpt_array_dtype(const llorch_ckpt_array *a) {
    return a->dtype;
}
int llorch_ckpt_array_n_dims(const llorch_ckpt_array *a) {
    return a->n_dims;
}
int64_t llorch_ckpt_array_count(const llorch_ckpt_array *a) {
    return a->count;
}

int64_t llorch_ckpt_array_dim(const llorch_ckpt_array *a, int axis) {
    return axis >= 0 && axis < a->n_dims ? a->shape[axis] : -1;
}

/* Element i, known to be in range. */
static double element(const llorch_ckpt_array *a, int64_t i) {
    const unsigned char *p = a->data + (size_t) i * llorch_dtype_size(a->dtype);
    switch (a->dtype) {
        case LLORCH_CKPT_DTYPE_F16:
            return (double) llorch_half_to_float((uint16_t) (p[0] | p[1] << 8));
        case LLORCH_CKPT_DTYPE_I32: {
            uint32_t u = le32(p);
            int32_t  v;
            memcpy(&v, &u, sizeof v);
            return v;
        }
        case LLORCH_CKPT_DTYPE_F32:
        default: {
            uint32_t u = le32(p);
            float    v;
            memcpy(&v, &u, sizeof v);
            return v;
        }
    }
}

double llorch_ckpt_array_value(const llorch_ckpt_array *a, int64_t i) {
    return i >= 0 && i < a->count ? element(a, i) : NAN;
}

int llorch_ckpt_array_gather(const llorch_ckpt_array *a, int64_t start, int64_t stride, int64_t n, double *out) {
    if (n <= 0) {
        return n == 0 ? 0 : -1;
    }
    if (start < 0 || start >= a->count || stride < 0 || (stride > 0 && n - 1 > (a->count - 1 - start) / stride)) {
        return -1;
    }
    for (int64_t k = 0; k < n; k++) {
        out[k] = element(a, start + k * stride);
    }
    return 0;
}

const unsigned char *llorch_ckpt_array_data(const llorch_ckpt_array *a, size_t *bytes) {
    if (bytes) {
        *bytes = a->data_bytes;
    }
    return a->data;
}

uint32_t llorch_ckpt_array_crc32(const llorch_ckpt_array *a) {
    return llorch_crc32(a->data, a->data_bytes);
}

void llorch_ckpt_array_free(llorch_ckpt_array *a) {
    if (a) {
        free(a->buf);
        free(a);
    }
}

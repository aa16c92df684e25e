/*
 * read.c - the safe readers of a dump: .npy arrays and manifest.json, and
 * through read_container.c the members of a container form.
 *
 * Every byte read here comes from a file of unknown origin. The rules:
 *   - a name from a manifest is opened only if it is a plain file name, and
 *     only relative to the dump directory, without following symlinks;
 *   - nothing is allocated from a declared size: buffers are as large as the
 *     file (or the caller's buffer) and declared shapes must fit in them;
 *   - every field is checked (type, integrality, range) before use;
 *   - every failure is one line that names the file.
 */
#define _POSIX_C_SOURCE 200809L

#include "checksum.h"
#include "read_container.h"
#include "error.h"
#include "npy.h"
#include "util.h"
#include "llorch_compare.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAGIC          "\x93NUMPY"
#define NPY_MAGIC_LEN      6
#define NPY_PREFIX_V1      10              /* magic, version, uint16 length */
#define NPY_PREFIX_V2      12              /* magic, version, uint32 length */
/* numpy's own reader refuses headers over 10000 bytes by default and ours
 * are under 200: the cap bounds what a hostile header makes us parse. */
#define NPY_MAX_HEADER     65536u
#define NPY_MAX_DESCR      16
/* A manifest of 100k files is ~40 MB; a 1 GiB one is not a manifest. */
#define MANIFEST_MAX_BYTES ((size_t)1 << 30)
#define MANIFEST_NAME      "manifest.json"
/* JSON numbers are doubles: integers are exact up to 2^53. */
#define JSON_MAX_INT       ((int64_t)1 << 53)
#define NAME_MAX_BYTES     255
#define AXIS_MAX_BYTES     32

/* ---- errors -------------------------------------------------------------- */


/* Copies s for a message, replacing what would break the one-line rule. */
static const char *printable(const char *s, char *buf, size_t size)
{
    size_t n = 0;
    for (; *s && n + 1 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        buf[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[n] = '\0';
    return buf;
}

static void join_path(char *buf, size_t size, const char *dir, const char *file)
{
    size_t len = strlen(dir);
    const char *sep = (len > 0 && dir[len - 1] == '/') ? "" : "/";
    char safe[NAME_MAX_BYTES + 1];
    snprintf(buf, size, "%s%s%s", dir, sep, printable(file, safe, sizeof safe));
}

/* ---- names and dtypes ---------------------------------------------------- */

bool llorch_ckpt_safe_name(const char *name)
{
    if (!name || !*name || strlen(name) > NAME_MAX_BYTES || strcmp(name, ".") == 0) {
        return false;
    }
    if (strchr(name, '/') || strchr(name, '\\') || strstr(name, "..")) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

/* count = product of shape, bytes = count * item size; -1 on overflow. */
static int shape_bytes(int n_dims, const int64_t *shape, enum llorch_ckpt_dtype dtype,
                       int64_t *count, int64_t *bytes)
{
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / shape[i])) {
            return -1;
        }
        n *= shape[i];
    }
    int64_t item = (int64_t)llorch_dtype_size(dtype);
    if (n > INT64_MAX / item) {
        return -1;
    }
    *count = n;
    *bytes = n * item;
    return 0;
}

/* ---- files --------------------------------------------------------------- */

/* Opens dir/file for reading: a plain name, a regular file, no symlink. */
static int open_in_dir(const char *dir, const char *file, struct stat *st, char *err, size_t err_size)
{
    char path[4096];
    join_path(path, sizeof path, dir, file);
    if (!llorch_ckpt_safe_name(file)) {
        llorch_set_error(err, err_size, "%s: refusing the file name: not a plain name inside the dump directory", path);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        llorch_set_error(err, err_size, "%s: cannot open the directory: %s", dir, strerror(errno));
        return -1;
    }
    /* O_NONBLOCK: a FIFO planted under a tensor's name must not hang us. */
    int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int open_errno = errno;
    close(dfd);
    if (fd < 0) {
        llorch_set_error(err, err_size, "%s: %s", path,
                  open_errno == ELOOP ? "is a symbolic link (refused)" : strerror(open_errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        llorch_set_error(err, err_size, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the whole of dir/file (at most max bytes) into a new buffer with a
 * terminating NUL that is not counted in *size. */
static int read_file_in_dir(const char *dir, const char *file, size_t max,
                            unsigned char **out, size_t *size, char *err, size_t err_size)
{
    struct stat st;
    char path[4096];
    join_path(path, sizeof path, dir, file);
    int fd = open_in_dir(dir, file, &st, err, err_size);
    if (fd < 0) {
        return -1;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        llorch_set_error(err, err_size, "%s: too large (%lld bytes)", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        llorch_set_error(err, err_size, "%s: out of memory reading %zu bytes", path, n);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            llorch_set_error(err, err_size, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return 0;
}

/* ---- .npy ---------------------------------------------------------------- */

struct llorch_ckpt_array {
    enum llorch_ckpt_dtype dtype;
    int                    n_dims;
    int64_t                shape[LLORCH_CKPT_MAX_DIMS];
    int64_t                count;
    unsigned char         *buf;    /* owned: the whole file */
    const unsigned char   *data;   /* into buf, after the header */
    size_t                 data_bytes;
};

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

static int header_error(struct cursor *c, const char *what)
{
    llorch_set_error(c->msg, c->msg_size, "malformed .npy header: %s", what);
    return -1;
}

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool peek(struct cursor *c, char ch)
{
    skip_space(c);
    return c->p < c->end && *c->p == (unsigned char)ch;
}

static bool eat(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == (unsigned char)ch) {
        c->p++;
        return true;
    }
    return false;
}

static int parse_quoted(struct cursor *c, char *out, size_t out_size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
        return header_error(c, "expected a quoted string");
    }
    unsigned char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p < 0x20 || *c->p >= 0x7f || n + 1 >= out_size) {
            return header_error(c, "unexpected string (escapes, non-ASCII or too long)");
        }
        out[n++] = (char)*c->p++;
    }
    if (c->p >= c->end) {
        return header_error(c, "unterminated string");
    }
    c->p++;
    out[n] = '\0';
    return 0;
}

static int parse_word(struct cursor *c, const char *word)
{
    size_t len = strlen(word);
    skip_space(c);
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0) {
        return -1;
    }
    c->p += len;
    return 0;
}

static int parse_bool(struct cursor *c, bool *out)
{
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

static int parse_dim(struct cursor *c, int64_t *out)
{
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

static int parse_shape(struct cursor *c, struct npy_header *h)
{
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

static int parse_header_value(struct cursor *c, const char *key, struct npy_header *h, unsigned *seen)
{
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

static int parse_header(const unsigned char *p, size_t n, struct npy_header *h, char *msg, size_t msg_size)
{
    struct cursor c = { p, p + n, msg, msg_size };
    unsigned seen = 0;
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

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Finds the header: *start and *len of the dict, within buf. */
static int npy_prefix(const unsigned char *buf, size_t size, size_t *start, size_t *len,
                      char *msg, size_t msg_size)
{
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
    uint32_t h = major == 1 ? (uint32_t)buf[8] | (uint32_t)buf[9] << 8 : le32(buf + 8);
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

static int check_data_size(const struct npy_header *h, size_t have, char *msg, size_t msg_size)
{
    int64_t count, bytes;
    char shape[128];
    llorch_format_shape(shape, sizeof shape, h->n_dims, h->shape);
    if (shape_bytes(h->n_dims, h->shape, h->dtype, &count, &bytes) != 0) {
        llorch_set_error(msg, msg_size, "shape %s is too large", shape);
        return -1;
    }
    if ((uint64_t)bytes != (uint64_t)have) {
        llorch_set_error(msg, msg_size, "%s: shape %s of %s needs %lld data bytes, the file has %zu",
                  (uint64_t)bytes > (uint64_t)have ? "truncated data" : "size on disk does not match the header",
                  shape, llorch_ckpt_dtype_name(h->dtype), (long long)bytes, have);
        return -1;
    }
    return 0;
}

/* Takes ownership of buf (freed on failure too). */
static llorch_ckpt_array *array_from_buffer(unsigned char *buf, size_t size, const char *name,
                                            char *err, size_t err_size)
{
    char msg[512];
    size_t start = 0, len = 0;
    struct npy_header h = { 0 };
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

llorch_ckpt_array *llorch_ckpt_array_parse(const void *buf, size_t size, const char *name,
                                           char *err, size_t err_size)
{
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

llorch_ckpt_array *llorch_ckpt_array_read(const char *dir, const char *file, char *err, size_t err_size)
{
    unsigned char *buf;
    size_t size;
    char path[4096];
    if (read_file_in_dir(dir, file, SIZE_MAX - 1, &buf, &size, err, err_size) != 0) {
        return NULL;
    }
    join_path(path, sizeof path, dir, file);
    return array_from_buffer(buf, size, path, err, err_size);
}

enum llorch_ckpt_dtype llorch_ckpt_array_dtype(const llorch_ckpt_array *a) { return a->dtype; }
int     llorch_ckpt_array_n_dims(const llorch_ckpt_array *a) { return a->n_dims; }
int64_t llorch_ckpt_array_count(const llorch_ckpt_array *a) { return a->count; }

int64_t llorch_ckpt_array_dim(const llorch_ckpt_array *a, int axis)
{
    return axis >= 0 && axis < a->n_dims ? a->shape[axis] : -1;
}

/* Element i, known to be in range. */
static double element(const llorch_ckpt_array *a, int64_t i)
{
    const unsigned char *p = a->data + (size_t)i * llorch_dtype_size(a->dtype);
    switch (a->dtype) {
    case LLORCH_CKPT_DTYPE_F16:
        return (double)llorch_half_to_float((uint16_t)(p[0] | p[1] << 8));
    case LLORCH_CKPT_DTYPE_I32: {
        uint32_t u = le32(p);
        int32_t v;
        memcpy(&v, &u, sizeof v);
        return v;
    }
    case LLORCH_CKPT_DTYPE_F32:
    default: {
        uint32_t u = le32(p);
        float v;
        memcpy(&v, &u, sizeof v);
        return v;
    }
    }
}

double llorch_ckpt_array_value(const llorch_ckpt_array *a, int64_t i)
{
    return i >= 0 && i < a->count ? element(a, i) : NAN;
}

int llorch_ckpt_array_gather(const llorch_ckpt_array *a, int64_t start, int64_t stride,
                             int64_t n, double *out)
{
    if (n <= 0) {
        return n == 0 ? 0 : -1;
    }
    if (start < 0 || start >= a->count || stride < 0 ||
        (stride > 0 && n - 1 > (a->count - 1 - start) / stride)) {
        return -1;
    }
    for (int64_t k = 0; k < n; k++) {
        out[k] = element(a, start + k * stride);
    }
    return 0;
}

const unsigned char *llorch_ckpt_array_data(const llorch_ckpt_array *a, size_t *bytes)
{
    if (bytes) {
        *bytes = a->data_bytes;
    }
    return a->data;
}

uint32_t llorch_ckpt_array_crc32(const llorch_ckpt_array *a)
{
    return llorch_crc32(a->data, a->data_bytes);
}

void llorch_ckpt_array_free(llorch_ckpt_array *a)
{
    if (a) {
        free(a->buf);
        free(a);
    }
}

/* ---- manifest ------------------------------------------------------------ */

struct mem_file {
    char          *name;
    unsigned char *buf;
    size_t         size;
};

struct llorch_ckpt_dump {
    char                     *dir;            /* NULL for a parsed manifest */
    char                     *name;           /* dir, or the name given     */
    char                     *manifest_name;  /* for messages               */
    cJSON                    *root;           /* entries' strings live here */
    bool                      complete;
    const char               *status;
    const char               *producer;
    const char               *tokens_file;
    const char               *container_file;  /* NULL for the npy form */
    enum llorch_container_form container_form;
    llorch_container         *container;       /* its index, once opened */
    int                       container_fd;    /* -1 when none or in memory */
    struct llorch_ckpt_model  model;
    bool                      has_tokens;
    int32_t                  *tokens;
    size_t                    n_tokens;
    struct llorch_ckpt_entry *entries;
    size_t                    n_entries;
    struct mem_file          *files;
    size_t                    n_files;
};

/* Where in the manifest we are, for messages. */
struct ctx {
    const char *manifest;
    char        where[320];
    char       *err;
    size_t      err_size;
};

static int bad(struct ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llorch_set_error(c->err, c->err_size, "%s: %s%s%s", c->manifest, c->where, c->where[0] ? ": " : "", msg);
    return -1;
}

static bool json_integer(const cJSON *item, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    double v = item->valuedouble;
    /* The range check comes first: converting an out-of-range double to an
     * integer is undefined behaviour. lo and hi are within +-2^53. */
    if (!(v >= (double)lo && v <= (double)hi)) {
        return false;
    }
    int64_t i = (int64_t)v;
    if ((double)i != v) {
        return false;
    }
    *out = i;
    return true;
}

static int get_int(struct ctx *c, const cJSON *obj, const char *key, int64_t lo, int64_t hi,
                   bool required, int64_t fallback, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        *out = fallback;
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!json_integer(item, lo, hi, out)) {
        return bad(c, "field '%s' must be an integer in [%lld, %lld]", key, (long long)lo, (long long)hi);
    }
    return 0;
}

static int get_int32(struct ctx *c, const cJSON *obj, const char *key, int64_t lo,
                     bool required, int fallback, int *out)
{
    int64_t v = fallback;
    if (get_int(c, obj, key, lo, INT32_MAX, required, fallback, &v) != 0) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int get_string(struct ctx *c, const cJSON *obj, const char *key, bool required, const char **out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!item || cJSON_IsNull(item)) {
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!cJSON_IsString(item) || !item->valuestring) {
        return bad(c, "field '%s' must be a string", key);
    }
    *out = item->valuestring;
    return 0;
}

static int get_bool(struct ctx *c, const cJSON *obj, const char *key, bool required, bool *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        *out = false;
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!cJSON_IsBool(item)) {
        return bad(c, "field '%s' must be true or false", key);
    }
    *out = cJSON_IsTrue(item);
    return 0;
}

/* A container form (format_version 2) names its single file. */
static int parse_container(struct ctx *c, const cJSON *root, int64_t version, llorch_ckpt_dump *d)
{
    const cJSON *container = cJSON_GetObjectItemCaseSensitive(root, "container");
    const char *form;
    if (version == LLORCH_CKPT_FORMAT_VERSION) {
        return container ? bad(c, "field 'container' needs format_version %d", LLORCH_CKPT_FORMAT_VERSION_CONTAINER)
                         : 0;
    }
    if (!cJSON_IsObject(container)) {
        return bad(c, "format_version %d needs the object 'container'", LLORCH_CKPT_FORMAT_VERSION_CONTAINER);
    }
    snprintf(c->where, sizeof c->where, "container");
    if (get_string(c, container, "format", true, &form) != 0 ||
        get_string(c, container, "file", true, &d->container_file) != 0) {
        return -1;
    }
    if (!llorch_ckpt_safe_name(d->container_file)) {
        return bad(c, "refusing the file name: not a plain name inside the dump directory");
    }
    if (strcmp(form, "npz") == 0) {
        d->container_form = LLORCH_CONTAINER_NPZ;
    } else if (strcmp(form, "safetensors") == 0) {
        d->container_form = LLORCH_CONTAINER_SAFETENSORS;
    } else {
        return bad(c, "unknown container format (npz and safetensors are known)");
    }
    c->where[0] = '\0';
    return 0;
}

static int parse_header_fields(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d)
{
    const char *format;
    int64_t version;
    if (!cJSON_IsObject(root)) {
        return bad(c, "not a JSON object");
    }
    if (get_string(c, root, "format", true, &format) != 0) {
        return -1;
    }
    if (strcmp(format, LLORCH_CKPT_FORMAT_NAME) != 0) {
        return bad(c, "not a checkpoint dump (format is not \"%s\")", LLORCH_CKPT_FORMAT_NAME);
    }
    if (get_int(c, root, "format_version", 0, INT32_MAX, true, 0, &version) != 0) {
        return -1;
    }
    if (version != LLORCH_CKPT_FORMAT_VERSION && version != LLORCH_CKPT_FORMAT_VERSION_CONTAINER) {
        return bad(c, "format_version %lld is not supported (this reader knows %d and %d)",
                   (long long)version, LLORCH_CKPT_FORMAT_VERSION, LLORCH_CKPT_FORMAT_VERSION_CONTAINER);
    }
    if (parse_container(c, root, version, d) != 0) {
        return -1;
    }
    return get_bool(c, root, "complete", true, &d->complete) ||
           get_string(c, root, "status", false, &d->status) ||
           get_string(c, root, "producer", false, &d->producer) ? -1 : 0;
}

static int parse_model(struct ctx *c, const cJSON *root, struct llorch_ckpt_model *m)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        return bad(c, "field 'model' is missing or not an object");
    }
    snprintf(c->where, sizeof c->where, "model");
    int rc = get_string(c, model, "architecture", true, &m->architecture) ||
             get_int32(c, model, "n_layer", 0, true, -1, &m->n_layer) ||
             get_int32(c, model, "n_embd", 0, true, -1, &m->n_embd) ||
             get_int32(c, model, "n_head", 0, false, -1, &m->n_head) ||
             get_int32(c, model, "n_head_kv", 0, false, -1, &m->n_head_kv) ||
             get_int32(c, model, "n_vocab", 0, false, -1, &m->n_vocab) ? -1 : 0;
    c->where[0] = '\0';
    return rc;
}

static int parse_tokens(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d)
{
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (get_string(c, root, "tokens_file", false, &d->tokens_file) != 0) {
        return -1;
    }
    if (d->tokens_file && !llorch_ckpt_safe_name(d->tokens_file)) {
        return bad(c, "refusing tokens_file: not a plain file name inside the dump directory");
    }
    if (!tokens || cJSON_IsNull(tokens)) {
        return 0;
    }
    if (!cJSON_IsArray(tokens)) {
        return bad(c, "field 'tokens' must be an array");
    }
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, tokens) {
        n++;
    }
    d->tokens = malloc((n ? n : 1) * sizeof *d->tokens);
    if (!d->tokens) {
        return bad(c, "out of memory");
    }
    n = 0;
    cJSON_ArrayForEach(item, tokens) {
        int64_t v;
        if (!json_integer(item, INT32_MIN, INT32_MAX, &v)) {
            return bad(c, "tokens[%zu] is not a 32-bit integer", n);
        }
        d->tokens[n++] = (int32_t)v;
    }
    d->n_tokens = n;
    d->has_tokens = true;
    return 0;
}

static int parse_shape_field(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *item;
    if (!cJSON_IsArray(shape)) {
        return bad(c, "field 'shape' is missing or not an array");
    }
    e->n_dims = 0;
    cJSON_ArrayForEach(item, shape) {
        if (e->n_dims == LLORCH_CKPT_MAX_DIMS) {
            return bad(c, "field 'shape' has more than %d dimensions", LLORCH_CKPT_MAX_DIMS);
        }
        if (!json_integer(item, 0, JSON_MAX_INT, &e->shape[e->n_dims++])) {
            return bad(c, "field 'shape' holds a value that is not a non-negative integer");
        }
    }
    return 0;
}

static int parse_axes_field(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e)
{
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(obj, "axes");
    const cJSON *item;
    int n = 0;
    if (!cJSON_IsArray(axes)) {
        return bad(c, "field 'axes' is missing or not an array");
    }
    cJSON_ArrayForEach(item, axes) {
        if (n == e->n_dims) {
            return bad(c, "field 'axes' has more names than 'shape' has dimensions");
        }
        if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0] ||
            strlen(item->valuestring) > AXIS_MAX_BYTES) {
            return bad(c, "field 'axes' holds a value that is not a short non-empty string");
        }
        for (int i = 0; i < n; i++) {
            if (strcmp(e->axes[i], item->valuestring) == 0) {
                return bad(c, "field 'axes' names '%s' twice", e->axes[i]);
            }
        }
        e->axes[n++] = item->valuestring;
    }
    if (n != e->n_dims) {
        return bad(c, "field 'axes' has %d names for %d dimensions", n, e->n_dims);
    }
    return 0;
}

static int axis_index(const struct llorch_ckpt_entry *e, const char *name)
{
    for (int i = 0; i < e->n_dims; i++) {
        if (strcmp(e->axes[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* The token axis has n_pos rows and the key axis n_key (FORMAT.md); a raw
 * tensor keeps llama.cpp's layout and has neither. */
static int check_entry_axes(struct ctx *c, struct llorch_ckpt_entry *e)
{
    int token = axis_index(e, "token"), key = axis_index(e, "key");
    if (e->raw) {
        return 0;
    }
    if (token >= 0 && e->shape[token] != e->n_pos) {
        return bad(c, "the token axis has %lld rows but n_pos is %lld",
                   (long long)e->shape[token], (long long)e->n_pos);
    }
    if (key >= 0 && e->n_key >= 0 && e->shape[key] != e->n_key) {
        return bad(c, "the key axis has %lld rows but n_key is %lld",
                   (long long)e->shape[key], (long long)e->n_key);
    }
    if (key >= 0) {
        e->n_key = e->shape[key];
    }
    return 0;
}

static int check_entry_size(struct ctx *c, const struct llorch_ckpt_entry *e)
{
    int64_t count, bytes;
    if (shape_bytes(e->n_dims, e->shape, e->dtype, &count, &bytes) != 0 || bytes > JSON_MAX_INT) {
        return bad(c, "field 'shape' is too large");
    }
    if (e->bytes >= 0 && e->bytes != bytes) {
        return bad(c, "field 'bytes' is %lld but the shape needs %lld",
                   (long long)e->bytes, (long long)bytes);
    }
    return 0;
}

static int parse_entry_numbers(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e)
{
    int64_t crc;
    if (get_int32(c, obj, "number", 0, false, 0, &e->number) ||
        get_int32(c, obj, "layer", -1, true, 0, &e->layer) ||
        get_int32(c, obj, "step", 0, true, 0, &e->step) ||
        get_int(c, obj, "pos_start", 0, INT32_MAX, true, 0, &e->pos_start) ||
        get_int(c, obj, "n_pos", 0, INT32_MAX, true, 0, &e->n_pos) ||
        get_int(c, obj, "n_key", 0, INT32_MAX, false, -1, &e->n_key) ||
        get_int(c, obj, "bytes", 0, JSON_MAX_INT, false, -1, &e->bytes) ||
        get_int(c, obj, "crc32", 0, UINT32_MAX, false, -1, &crc)) {
        return -1;
    }
    e->has_crc32 = crc >= 0;
    e->crc32 = e->has_crc32 ? (uint32_t)crc : 0;
    return 0;
}

static int parse_entry(struct ctx *c, const cJSON *obj, size_t index, struct llorch_ckpt_entry *e)
{
    const char *dtype;
    char safe[NAME_MAX_BYTES + 1];
    snprintf(c->where, sizeof c->where, "files[%zu]", index);
    if (!cJSON_IsObject(obj)) {
        return bad(c, "not an object");
    }
    if (get_string(c, obj, "file", true, &e->file) != 0) {
        return -1;
    }
    if (!llorch_ckpt_safe_name(e->file)) {
        return bad(c, "refusing file name '%s': not a plain name inside the dump directory",
                   printable(e->file, safe, sizeof safe));
    }
    snprintf(c->where, sizeof c->where, "files[%zu] (%s)", index, e->file);
    if (get_string(c, obj, "checkpoint", true, &e->checkpoint) ||
        get_string(c, obj, "graph_name", false, &e->graph_name) ||
        get_string(c, obj, "dtype", true, &dtype) ||
        get_bool(c, obj, "raw", false, &e->raw) ||
        parse_entry_numbers(c, obj, e) ||
        parse_shape_field(c, obj, e) ||
        parse_axes_field(c, obj, e)) {
        return -1;
    }
    if (!e->checkpoint[0]) {
        return bad(c, "field 'checkpoint' is empty");
    }
    if (llorch_dtype_from_name(dtype, &e->dtype) != 0) {
        return bad(c, "unsupported dtype (float32, float16 and int32 are)");
    }
    return check_entry_axes(c, e) || check_entry_size(c, e) ? -1 : 0;
}

static int name_compare(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Each file is listed once: what the entries declare then adds up to at
 * most the size of the dump, which bounds what comparing them allocates. */
static int check_unique_files(struct ctx *c, const llorch_ckpt_dump *d)
{
    const char **names = malloc((d->n_entries ? d->n_entries : 1) * sizeof *names);
    if (!names) {
        return bad(c, "out of memory");
    }
    for (size_t i = 0; i < d->n_entries; i++) {
        names[i] = d->entries[i].file;
    }
    qsort(names, d->n_entries, sizeof *names, name_compare);
    int rc = 0;
    for (size_t i = 1; i < d->n_entries && rc == 0; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = bad(c, "file '%s' is listed more than once", names[i]);
        }
    }
    free(names);
    return rc;
}

static int parse_entries(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    const cJSON *item;
    size_t n = 0;
    if (!cJSON_IsArray(files)) {
        return bad(c, "field 'files' is missing or not an array");
    }
    cJSON_ArrayForEach(item, files) {
        n++;
    }
    d->entries = calloc(n ? n : 1, sizeof *d->entries);
    if (!d->entries) {
        return bad(c, "out of memory");
    }
    cJSON_ArrayForEach(item, files) {
        if (parse_entry(c, item, d->n_entries, &d->entries[d->n_entries]) != 0) {
            return -1;
        }
        d->n_entries++;
    }
    c->where[0] = '\0';
    return check_unique_files(c, d);
}

static int parse_json(struct ctx *c, const char *text, size_t size, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, size, &end, false);
    if (!root) {
        size_t at = end && end >= text && end <= text + size ? (size_t)(end - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < at; i++) {
            line += text[i] == '\n';
        }
        return bad(c, "not valid JSON (at byte %zu, line %zu)", at, line);
    }
    *out = root;
    for (; end && end < text + size; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            return bad(c, "trailing bytes after the JSON object");
        }
    }
    return 0;
}

/* text must be NUL-terminated at text[size]. */
static llorch_ckpt_dump *dump_from_text(const char *text, size_t size, const char *name,
                                        const char *manifest_name, char *err, size_t err_size)
{
    llorch_ckpt_dump *d = calloc(1, sizeof *d);
    struct ctx c = { manifest_name, "", err, err_size };
    if (d) {
        d->container_fd = -1;
    }
    if (!d || !(d->name = llorch_strdup(name)) || !(d->manifest_name = llorch_strdup(manifest_name))) {
        llorch_set_error(err, err_size, "%s: out of memory", manifest_name);
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    if (parse_json(&c, text, size, &d->root) != 0 ||
        parse_header_fields(&c, d->root, d) != 0 ||
        parse_model(&c, d->root, &d->model) != 0 ||
        parse_tokens(&c, d->root, d) != 0 ||
        parse_entries(&c, d->root, d) != 0) {
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    return d;
}

llorch_ckpt_dump *llorch_ckpt_dump_parse(const char *json, size_t size, const char *name,
                                         char *err, size_t err_size)
{
    /* cJSON wants a NUL after the text; the caller's buffer need not have one. */
    char *text = malloc(size + 1);
    if (!text) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        return NULL;
    }
    memcpy(text, json, size);
    text[size] = '\0';
    llorch_ckpt_dump *d = dump_from_text(text, size, name, name, err, err_size);
    free(text);
    return d;
}

static int tokens_equal(const llorch_ckpt_dump *d, const llorch_ckpt_array *a)
{
    if ((size_t)a->count != d->n_tokens) {
        return 0;
    }
    for (size_t i = 0; i < d->n_tokens; i++) {
        if (element(a, (int64_t)i) != d->tokens[i]) {
            return 0;
        }
    }
    return 1;
}

/* The token file must hold the manifest's tokens; without "tokens" in the
 * manifest, it provides them. */
static int read_tokens_file(llorch_ckpt_dump *d, char *err, size_t err_size)
{
    char path[4096];
    llorch_ckpt_array *a = llorch_ckpt_array_read(d->dir, d->tokens_file, err, err_size);
    if (!a) {
        return -1;
    }
    join_path(path, sizeof path, d->dir, d->tokens_file);
    int rc = 0;
    if (a->dtype != LLORCH_CKPT_DTYPE_I32 || a->n_dims != 1) {
        llorch_set_error(err, err_size, "%s: token ids must be a 1-D int32 array", path);
        rc = -1;
    } else if (d->has_tokens && !tokens_equal(d, a)) {
        llorch_set_error(err, err_size, "%s: token ids differ from the manifest's \"tokens\"", path);
        rc = -1;
    } else if (!d->has_tokens) {
        d->tokens = malloc((size_t)(a->count ? a->count : 1) * sizeof *d->tokens);
        rc = d->tokens ? 0 : -1;
        for (int64_t i = 0; rc == 0 && i < a->count; i++) {
            d->tokens[i] = (int32_t)element(a, i);
        }
        d->n_tokens = (size_t)a->count;
        d->has_tokens = rc == 0;
    }
    llorch_ckpt_array_free(a);
    return rc;
}

/* Indexes the container: its members are read on demand. */
static int open_container_file(llorch_ckpt_dump *d, char *err, size_t err_size)
{
    char path[4096];
    struct stat st;
    join_path(path, sizeof path, d->dir, d->container_file);
    d->container_fd = open_in_dir(d->dir, d->container_file, &st, err, err_size);
    if (d->container_fd < 0) {
        return -1;
    }
    d->container = llorch_container_open_fd(d->container_fd, d->container_form, path, err, err_size);
    return d->container ? 0 : -1;
}

llorch_ckpt_dump *llorch_ckpt_dump_open(const char *dir, char *err, size_t err_size)
{
    unsigned char *text;
    size_t size;
    char manifest_name[4096];
    join_path(manifest_name, sizeof manifest_name, dir, MANIFEST_NAME);
    if (read_file_in_dir(dir, MANIFEST_NAME, MANIFEST_MAX_BYTES, &text, &size, err, err_size) != 0) {
        return NULL;
    }
    llorch_ckpt_dump *d = dump_from_text((const char *)text, size, dir, manifest_name, err, err_size);
    free(text);
    if (!d) {
        return NULL;
    }
    d->dir = llorch_strdup(dir);
    if (!d->dir) {
        llorch_set_error(err, err_size, "%s: out of memory", manifest_name);
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    if ((d->tokens_file && read_tokens_file(d, err, err_size) != 0) ||
        (d->container_file && open_container_file(d, err, err_size) != 0)) {
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    return d;
}

int llorch_ckpt_dump_add_file(llorch_ckpt_dump *d, const char *file, const void *buf, size_t size,
                              char *err, size_t err_size)
{
    struct mem_file *files = realloc(d->files, (d->n_files + 1) * sizeof *files);
    if (!files) {
        llorch_set_error(err, err_size, "%s: out of memory", d->name);
        return -1;
    }
    d->files = files;
    struct mem_file *f = &files[d->n_files];
    f->name = llorch_strdup(file);
    f->buf = malloc(size ? size : 1);
    f->size = size;
    if (!f->name || !f->buf) {
        free(f->name);
        free(f->buf);
        llorch_set_error(err, err_size, "%s: out of memory", d->name);
        return -1;
    }
    if (size) {
        memcpy(f->buf, buf, size);
    }
    d->n_files++;
    if (d->container_file && !d->container && strcmp(file, d->container_file) == 0) {
        d->container = llorch_container_open_mem(f->buf, f->size, d->container_form, file, err, err_size);
        return d->container ? 0 : -1;
    }
    return 0;
}

const char *llorch_ckpt_dump_name(const llorch_ckpt_dump *d) { return d->name; }
bool        llorch_ckpt_dump_complete(const llorch_ckpt_dump *d) { return d->complete; }
const char *llorch_ckpt_dump_status(const llorch_ckpt_dump *d) { return d->status; }
const char *llorch_ckpt_dump_producer(const llorch_ckpt_dump *d) { return d->producer; }
const struct llorch_ckpt_model *llorch_ckpt_dump_model(const llorch_ckpt_dump *d) { return &d->model; }
bool           llorch_ckpt_dump_has_tokens(const llorch_ckpt_dump *d) { return d->has_tokens; }
size_t         llorch_ckpt_dump_n_tokens(const llorch_ckpt_dump *d) { return d->n_tokens; }
const int32_t *llorch_ckpt_dump_tokens(const llorch_ckpt_dump *d) { return d->tokens; }
size_t llorch_ckpt_dump_n_entries(const llorch_ckpt_dump *d) { return d->n_entries; }

const struct llorch_ckpt_entry *llorch_ckpt_dump_entry(const llorch_ckpt_dump *d, size_t i)
{
    return i < d->n_entries ? &d->entries[i] : NULL;
}

static const struct mem_file *find_mem_file(const llorch_ckpt_dump *d, const char *file)
{
    for (size_t i = 0; i < d->n_files; i++) {
        if (strcmp(d->files[i].name, file) == 0) {
            return &d->files[i];
        }
    }
    return NULL;
}

/* The container member of entry e. */
static const struct llorch_container_member *entry_member(const llorch_ckpt_dump *d,
                                                          const struct llorch_ckpt_entry *e,
                                                          char *err, size_t err_size)
{
    const struct llorch_container_member *m = d->container ? llorch_container_find(d->container, e->file) : NULL;
    if (!d->container) {
        llorch_set_error(err, err_size, "%s: container %s was not supplied", d->name, d->container_file);
    } else if (!m) {
        llorch_set_error(err, err_size, "%s/%s: no member '%s'", d->name, d->container_file, e->file);
    } else if (m->typed && !m->dtype_known) {
        llorch_set_error(err, err_size, "%s/%s: tensor '%s' has a dtype or rank this reader does not know",
                         d->name, d->container_file, e->file);
        m = NULL;
    }
    return m;
}

static int entry_file_size(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e,
                           uint64_t *size, char *err, size_t err_size)
{
    if (d->container_file) {
        const struct llorch_container_member *m = entry_member(d, e, err, err_size);
        *size = m ? m->size : 0;
        return m ? 0 : -1;
    }
    if (d->dir) {
        struct stat st;
        int fd = open_in_dir(d->dir, e->file, &st, err, err_size);
        if (fd < 0) {
            return -1;
        }
        close(fd);
        *size = (uint64_t)st.st_size;
        return 0;
    }
    const struct mem_file *f = find_mem_file(d, e->file);
    if (!f) {
        char path[4096];
        join_path(path, sizeof path, d->name, e->file);
        llorch_set_error(err, err_size, "%s: no such file", path);
        return -1;
    }
    *size = f->size;
    return 0;
}

int llorch_ckpt_dump_check_size(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size)
{
    const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
    int64_t count = 0, bytes = 0;
    uint64_t size;
    char path[4096];
    if (!e || entry_file_size(d, e, &size, err, err_size) != 0) {
        return -1;
    }
    shape_bytes(e->n_dims, e->shape, e->dtype, &count, &bytes);  /* checked when parsed */
    /* a safetensors member is the data alone; every other one is a .npy file */
    uint64_t prefix = d->container_form == LLORCH_CONTAINER_SAFETENSORS ? 0 : NPY_PREFIX_V1;
    if (size < prefix || size - prefix < (uint64_t)bytes) {
        join_path(path, sizeof path, d->dir ? d->dir : d->name, e->file);
        llorch_set_error(err, err_size, "%s: truncated: %llu bytes cannot hold the %lld data bytes the manifest declares",
                  path, (unsigned long long)size, (long long)bytes);
        return -1;
    }
    return 0;
}

/* A safetensors tensor, given the .npy header of its dtype and shape so
 * that it is parsed and checked as every other array. */
static llorch_ckpt_array *array_from_tensor(const struct llorch_container_member *m, const unsigned char *data,
                                            const char *path, char *err, size_t err_size)
{
    char header[512];
    size_t header_size = llorch_npy_header(header, sizeof header, m->dtype, m->n_dims, m->shape);
    unsigned char *file = header_size ? malloc(header_size + m->size + 1) : NULL;
    if (!file) {
        llorch_set_error(err, err_size, "%s: out of memory", path);
        return NULL;
    }
    memcpy(file, header, header_size);
    memcpy(file + header_size, data, m->size);
    llorch_ckpt_array *a = llorch_ckpt_array_parse(file, header_size + m->size, path, err, err_size);
    free(file);
    return a;
}

static llorch_ckpt_array *load_member(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e,
                                      const char *path, char *err, size_t err_size)
{
    const struct llorch_container_member *m = entry_member(d, e, err, err_size);
    unsigned char *bytes;
    if (!m || llorch_container_read(d->container, m, &bytes, err, err_size) != 0) {
        return NULL;
    }
    llorch_ckpt_array *a = m->typed ? array_from_tensor(m, bytes, path, err, err_size)
                                    : llorch_ckpt_array_parse(bytes, m->size, path, err, err_size);
    free(bytes);
    return a;
}

static llorch_ckpt_array *load_entry_array(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e,
                                           const char *path, char *err, size_t err_size)
{
    if (d->container_file) {
        return load_member(d, e, path, err, err_size);
    }
    if (d->dir) {
        return llorch_ckpt_array_read(d->dir, e->file, err, err_size);
    }
    const struct mem_file *f = find_mem_file(d, e->file);
    if (!f) {
        llorch_set_error(err, err_size, "%s: no such file", path);
        return NULL;
    }
    return llorch_ckpt_array_parse(f->buf, f->size, path, err, err_size);
}

static int check_against_entry(const llorch_ckpt_array *a, const struct llorch_ckpt_entry *e,
                               const char *path, char *err, size_t err_size)
{
    char have[128], want[128];
    llorch_format_shape(have, sizeof have, a->n_dims, a->shape);
    llorch_format_shape(want, sizeof want, e->n_dims, e->shape);
    if (a->dtype != e->dtype) {
        llorch_set_error(err, err_size, "%s: dtype %s differs from the manifest's %s", path,
                  llorch_ckpt_dtype_name(a->dtype), llorch_ckpt_dtype_name(e->dtype));
        return -1;
    }
    if (strcmp(have, want) != 0) {
        llorch_set_error(err, err_size, "%s: shape %s differs from the manifest's %s", path, have, want);
        return -1;
    }
    if (e->has_crc32) {
        uint32_t crc = llorch_ckpt_array_crc32(a);
        if (crc != e->crc32) {
            llorch_set_error(err, err_size, "%s: crc32 %lu does not match the manifest's %lu (corrupted data)",
                      path, (unsigned long)crc, (unsigned long)e->crc32);
            return -1;
        }
    }
    return 0;
}

llorch_ckpt_array *llorch_ckpt_dump_load(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size)
{
    const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
    char path[4096];
    if (!e) {
        llorch_set_error(err, err_size, "%s: no file entry %zu", d->manifest_name, i);
        return NULL;
    }
    if (d->container_file) {
        snprintf(path, sizeof path, "%s/%s:%s", d->dir ? d->dir : d->name, d->container_file, e->file);
    } else {
        join_path(path, sizeof path, d->dir ? d->dir : d->name, e->file);
    }
    llorch_ckpt_array *a = load_entry_array(d, e, path, err, err_size);
    if (a && check_against_entry(a, e, path, err, err_size) != 0) {
        llorch_ckpt_array_free(a);
        return NULL;
    }
    return a;
}

void llorch_ckpt_dump_free(llorch_ckpt_dump *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n_files; i++) {
        free(d->files[i].name);
        free(d->files[i].buf);
    }
    free(d->files);
    llorch_container_free(d->container);
    if (d->container_fd >= 0) {
        close(d->container_fd);
    }
    free(d->entries);
    free(d->tokens);
    cJSON_Delete(d->root);
    free(d->dir);
    free(d->name);
    free(d->manifest_name);
    free(d);
}

/* read_container.c - indexes a dump's container: the members of a .npz
 * (a zip archive, PKWARE APPNOTE 6.3, with zip64) or the tensors of a
 * safetensors file. The input is untrusted: every offset and size is
 * checked against the file before it is used, and nothing larger than
 * the file is allocated. */
#define _POSIX_C_SOURCE 200809L
#include "read_container.h"

#include "error.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EOCD_SIZE           22
#define EOCD_MAX_COMMENT    0xffff
#define ZIP64_LOCATOR_SIZE  20
#define ZIP64_EOCD_SIZE     56
#define CENTRAL_HEADER_SIZE 46
#define LOCAL_HEADER_SIZE   30
#define ST_MAX_HEADER       100000000u /* the reference reader's limit */

struct llorch_container {
    int                             fd; /* -1 for memory */
    const unsigned char            *mem;
    uint64_t                        size;
    char                           *name;
    struct llorch_container_member *members; /* sorted by name */
    size_t                          n_members;
    char                           *names; /* the members' names, back to back */
};

/* ---- bytes ------------------------------------------------------------- */

static uint32_t get16(const unsigned char *p) {
    return (uint32_t) p[0] | (uint32_t) p[1] << 8;
}
static uint32_t get32(const unsigned char *p) {
    return get16(p) | get16(p + 2) << 16;
}
static uint64_t get64(const unsigned char *p) {
    return (uint64_t) get32(p) | (uint64_t) get32(p + 4) << 32;
}

/* Reads n bytes at off; fails if they are not all inside the container. */
static int read_at(const llorch_container *c, uint64_t off, void *buf, size_t n) {
    if (off > c->size || n > c->size - off) {
        return -1;
    }
    if (c->fd < 0) {
        memcpy(buf, c->mem + off, n);
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(c->fd, (char *) buf + got, n - got, (off_t) (off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        got += (size_t) r;
    }
    return 0;
}

/* A new buffer with n bytes at off, NUL-terminated. */
static unsigned char *read_new(const llorch_container *c, uint64_t off, uint64_t n) {
    if (off > c->size || n > c->size - off) {
        return NULL;
    }
    unsigned char *buf = malloc((size_t) n + 1);
    if (buf != NULL && read_at(c, off, buf, (size_t) n) != 0) {
        free(buf);
        return NULL;
    }
    if (buf != NULL) {
        buf[n] = '\0';
    }
    return buf;
}

static int bad(const llorch_container *c, char *err, size_t err_size, const char *what) {
    llorch_set_error(err, err_size, "%s: %s", c->name, what);
    return -1;
}

/* ---- the member table ----------------------------------------------------- */

static int member_compare(const void *a, const void *b) {
    return strcmp(((const struct llorch_container_member *) a)->name,
                  ((const struct llorch_container_member *) b)->name);
}

/* Sorts the members for lookup; a name listed twice is an error. */
static int sort_members(llorch_container *c, char *err, size_t err_size) {
    if (c->n_members > 1) {
        llorch_sort(c->members, c->n_members, sizeof *c->members, member_compare);
    }
    for (size_t i = 1; i < c->n_members; i++) {
        if (strcmp(c->members[i - 1].name, c->members[i].name) == 0) {
            llorch_set_error(err, err_size, "%s: member '%.200s' is listed twice", c->name, c->members[i].name);
            return -1;
        }
    }
    return 0;
}

/* ---- .npz ------------------------------------------------------------------ */

struct zip_end {
    uint64_t n, cd_size, cd_offset;
};

/* The end of central directory record: the last signature whose comment
 * reaches exactly to the end of the file. */
static int find_eocd(const llorch_container *c, uint64_t *at, unsigned char eocd[EOCD_SIZE]) {
    uint64_t span = c->size < EOCD_SIZE + EOCD_MAX_COMMENT ? c->size : EOCD_SIZE + EOCD_MAX_COMMENT;
    if (span < EOCD_SIZE) {
        return -1;
    }
    unsigned char *tail = read_new(c, c->size - span, span);
    if (tail == NULL) {
        return -1;
    }
    int rc = -1;
    for (uint64_t i = span - EOCD_SIZE + 1; i-- > 0;) {
        if (get32(tail + i) == 0x06054b50 && i + EOCD_SIZE + get16(tail + i + 20) == span) {
            memcpy(eocd, tail + i, EOCD_SIZE);
            *at = c->size - span + i;
            rc = 0;
            break;
        }
    }
    free(tail);
    return rc;
}

static int read_zip64_end(const llorch_container *c, uint64_t eocd_at, struct zip_end *end) {
    unsigned char loc[ZIP64_LOCATOR_SIZE], rec[ZIP64_EOCD_SIZE];
    if (eocd_at < ZIP64_LOCATOR_SIZE || read_at(c, eocd_at - ZIP64_LOCATOR_SIZE, loc, sizeof loc) != 0 ||
        get32(loc) != 0x07064b50 || read_at(c, get64(loc + 8), rec, sizeof rec) != 0 || get32(rec) != 0x06064b50 ||
        get32(rec + 16) != 0 || get32(rec + 20) != 0 || get64(rec + 24) != get64(rec + 32)) {
        return -1;
    }
    end->n = get64(rec + 32);
    end->cd_size = get64(rec + 40);
    end->cd_offset = get64(rec + 48);
    return 0;
}

static int read_zip_end(const llorch_container *c, struct zip_end *end, uint64_t *cd_limit) {
    unsigned char eocd[EOCD_SIZE];
    uint64_t      at;
    if (find_eocd(c, &at, eocd) != 0 || get16(eocd + 4) != 0 || get16(eocd + 6) != 0 ||
        get16(eocd + 8) != get16(eocd + 10)) {
        return -1;
    }
    end->n = get16(eocd + 10);
    end->cd_size = get32(eocd + 12);
    end->cd_offset = get32(eocd + 16);
    *cd_limit = at;
    if (end->n == 0xffff || end->cd_size == 0xffffffffu || end->cd_offset == 0xffffffffu) {
        if (read_zip64_end(c, at, end) != 0) {
            return -1;
        }
        *cd_limit = at - ZIP64_LOCATOR_SIZE; /* the zip64 record sits between; bounded below */
    }
    /* each entry needs at least its fixed part: this bounds what n may allocate */
    if (end->cd_offset > *cd_limit || end->cd_size > *cd_limit - end->cd_offset ||
        end->n > end->cd_size / CENTRAL_HEADER_SIZE) {
        return -1;
    }
    return 0;
}

/* The zip64 extra field of a central entry: each saturated field, in order. */
static int zip64_extra(const unsigned char *extra, size_t len, bool want_size, bool want_offset, uint64_t *size,
                       uint64_t *offset) {
    for (size_t i = 0; i + 4 <= len;) {
        uint32_t id = get16(extra + i), n = get16(extra + i + 2);
        if (n > len - i - 4) {
            return -1;
        }
        if (id == 0x0001) {
            const unsigned char *p = extra + i + 4;
            size_t               need = (want_size ? 16 : 0) + (want_offset ? 8 : 0);
            if (n < need) {
                return -1;
            }
            if (want_size) {
                *size = get64(p); /* uncompressed; compressed (equal when stored) follows */
                if (get64(p + 8) != *size) {
                    return -1;
                }
                p += 16;
            }
            if (want_offset) {
                *offset = get64(p);
            }
            return 0;
        }
        i += 4 + n;
    }
    return want_size || want_offset ? -1 : 0;
}

/* Where a member's bytes start: after its local header, whose name must be
 * the central directory's. */
static int member_start(const llorch_container *c, uint64_t header_at, const char *name, size_t name_len,
                        uint64_t *start) {
    unsigned char h[LOCAL_HEADER_SIZE];
    char          local_name[0x10000];
    if (read_at(c, header_at, h, sizeof h) != 0 || get32(h) != 0x04034b50 || get16(h + 26) != name_len ||
        read_at(c, header_at + LOCAL_HEADER_SIZE, local_name, name_len) != 0 ||
        memcmp(local_name, name, name_len) != 0) {
        return -1;
    }
    *start = header_at + LOCAL_HEADER_SIZE + name_len + get16(h + 28);
    return 0;
}

/* One central directory entry at cd[*pos]: a stored, unencrypted member
 * whose bytes lie before the central directory. */
static const char *parse_central_entry(llorch_container *c, const unsigned char *cd, uint64_t cd_size, uint64_t *pos,
                                       uint64_t cd_offset, struct llorch_container_member *m, char **names) {
    const unsigned char *h = cd + *pos;
    if (cd_size - *pos < CENTRAL_HEADER_SIZE || get32(h) != 0x02014b50) {
        return "malformed central directory";
    }
    size_t name_len = get16(h + 28), extra_len = get16(h + 30), comment_len = get16(h + 32);
    if (cd_size - *pos - CENTRAL_HEADER_SIZE < (uint64_t) name_len + extra_len + comment_len || name_len == 0) {
        return "malformed central directory";
    }
    if ((get16(h + 8) & 0x0001) != 0 || get16(h + 10) != 0) {
        return "a member is encrypted or compressed (only stored members are read)";
    }
    uint64_t csize = get32(h + 20), size = get32(h + 24), offset = get32(h + 42);
    bool     big_size = size == 0xffffffffu || csize == 0xffffffffu, big_offset = offset == 0xffffffffu;
    if (zip64_extra(h + CENTRAL_HEADER_SIZE + name_len, extra_len, big_size, big_offset, &size, &offset) != 0 ||
        (!big_size && csize != size)) {
        return "malformed zip64 field";
    }
    memcpy(*names, h + CENTRAL_HEADER_SIZE, name_len);
    (*names)[name_len] = '\0';
    if (strlen(*names) != name_len) {
        return "a member name holds a NUL byte";
    }
    uint64_t start;
    if (member_start(c, offset, *names, name_len, &start) != 0 || start > cd_offset || size > cd_offset - start) {
        return "a member's local header or data lies outside the archive";
    }
    *m = (struct llorch_container_member){.name = *names, .offset = start, .size = size};
    *names += name_len + 1;
    *pos += CENTRAL_HEADER_SIZE + name_len + extra_len + comment_len;
    return NULL;
}

static int index_npz(llorch_container *c, char *err, size_t err_size) {
    struct zip_end end;
    uint64_t       cd_limit;
    if (read_zip_end(c, &end, &cd_limit) != 0) {
        return bad(c, err, err_size, "not a zip archive (no valid end of central directory); not an .npz");
    }
    unsigned char *cd = read_new(c, end.cd_offset, end.cd_size);
    c->members = calloc(end.n ? end.n : 1, sizeof *c->members);
    c->names = malloc(end.cd_size + 1); /* names are copied from cd: it bounds them */
    if (cd == NULL || c->members == NULL || c->names == NULL) {
        free(cd);
        return bad(c, err, err_size, "cannot read the central directory");
    }
    char    *names = c->names;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < end.n; i++) {
        const char *why = parse_central_entry(c, cd, end.cd_size, &pos, end.cd_offset, &c->members[i], &names);
        if (why != NULL) {
            free(cd);
            return bad(c, err, err_size, why);
        }
        c->n_members++;
    }
    free(cd);
    return sort_members(c, err, err_size);
}

/* ---- safetensors ------------------------------------------------------------ */

static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double) (uint64_t) v->valuedouble) {
        return false;
    }
    *out = (uint64_t) v->valuedouble;
    return true;
}

static int st_dtype(const char *s, enum llorch_ckpt_dtype *out) {
    if (strcmp(s, "F32") == 0) {
        *out = LLORCH_CKPT_DTYPE_F32;
        return 4;
    }
    if (strcmp(s, "F16") == 0) {
        *out = LLORCH_CKPT_DTYPE_F16;
        return 2;
    }
    if (strcmp(s, "I32") == 0) {
        *out = LLORCH_CKPT_DTYPE_I32;
        return 4;
    }
    return 0;
}

/* One tensor of the header; data_size is the data section's size. */
static const char *parse_st_tensor(const cJSON *t, uint64_t data_start, uint64_t data_size,
                                   struct llorch_container_member *m) {
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    uint64_t     begin, end, count = 1, dim;
    if (!cJSON_IsObject(t) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) || cJSON_GetArraySize(offsets) != 2 ||
        !json_u64(cJSON_GetArrayItem(offsets, 0), &begin) || !json_u64(cJSON_GetArrayItem(offsets, 1), &end) ||
        begin > end || end > data_size) {
        return "a tensor lacks dtype, shape or data_offsets inside the data";
    }
    int item = st_dtype(dtype->valuestring, &m->dtype);
    m->typed = true;
    m->dtype_known = item > 0 && cJSON_GetArraySize(shape) <= 4;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!json_u64(d, &dim) || (dim != 0 && count > UINT64_MAX / dim)) {
            return "a tensor's shape is not a list of sizes";
        }
        count *= dim;
        if (m->n_dims < 4) {
            m->shape[m->n_dims] = (int64_t) dim;
        }
        m->n_dims++;
    }
    if (m->dtype_known && (count > UINT64_MAX / (uint64_t) item || end - begin != count * (uint64_t) item)) {
        return "a tensor's data_offsets do not match its dtype and shape";
    }
    m->offset = data_start + begin;
    m->size = end - begin;
    return NULL;
}

static int index_st_header(llorch_container *c, const cJSON *root, uint64_t data_start, char *err, size_t err_size) {
    size_t       n = 0, names_size = 1;
    const cJSON *t;
    cJSON_ArrayForEach(t, root) {
        n++;
        names_size += strlen(t->string) + 1;
    }
    c->members = calloc(n ? n : 1, sizeof *c->members);
    c->names = malloc(names_size);
    if (c->members == NULL || c->names == NULL) {
        return bad(c, err, err_size, "out of memory");
    }
    char *names = c->names;
    cJSON_ArrayForEach(t, root) {
        if (strcmp(t->string, "__metadata__") == 0) {
            continue;
        }
        struct llorch_container_member *m = &c->members[c->n_members];
        const char                     *why = parse_st_tensor(t, data_start, c->size - data_start, m);
        if (why != NULL) {
            llorch_set_error(err, err_size, "%s: tensor '%.200s': %s", c->name, t->string, why);
            return -1;
        }
        m->name = strcpy(names, t->string);
        names += strlen(t->string) + 1;
        c->n_members++;
    }
    return sort_members(c, err, err_size);
}

static int index_safetensors(llorch_container *c, char *err, size_t err_size) {
    unsigned char len[8];
    if (read_at(c, 0, len, sizeof len) != 0 || get64(len) > ST_MAX_HEADER || get64(len) > c->size - 8) {
        return bad(c, err, err_size, "not a safetensors file (header length missing or out of range)");
    }
    uint64_t       n = get64(len);
    unsigned char *text = read_new(c, 8, n);
    cJSON         *root = text != NULL ? cJSON_ParseWithLength((const char *) text, (size_t) n) : NULL;
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad(c, err, err_size, "not a safetensors file (the header is not a JSON object)");
    }
    int rc = index_st_header(c, root, 8 + n, err, err_size);
    cJSON_Delete(root);
    return rc;
}

/* ---- the index ------------------------------------------------------------- */

static llorch_container *open_container(llorch_container *c, enum llorch_container_form form, const char *name,
                                        char *err, size_t err_size) {
    c->name = strdup(name);
    if (c->name == NULL) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        llorch_container_free(c);
        return NULL;
    }
    int rc = form == LLORCH_CONTAINER_NPZ ? index_npz(c, err, err_size) : index_safetensors(c, err, err_size);
    if (rc != 0) {
        llorch_container_free(c);
        return NULL;
    }
    return c;
}

llorch_container *llorch_container_open_fd(int fd, enum llorch_container_form form, const char *name, char *err,
                                           size_t err_size) {
    struct stat       st;
    llorch_container *c = calloc(1, sizeof *c);
    if (c == NULL || fstat(fd, &st) != 0 || st.st_size < 0) {
        free(c);
        llorch_set_error(err, err_size, "%s: cannot read: %s", name, strerror(errno));
        return NULL;
    }
    c->fd = fd;
    c->size = (uint64_t) st.st_size;
    return open_container(c, form, name, err, err_size);
}

llorch_container *llorch_container_open_mem(const void *buf, size_t size, enum llorch_container_form form,
                                            const char *name, char *err, size_t err_size) {
    llorch_container *c = calloc(1, sizeof *c);
    if (c == NULL) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        return NULL;
    }
    c->fd = -1;
    c->mem = buf;
    c->size = size;
    return open_container(c, form, name, err, err_size);
}

const struct llorch_container_member *llorch_container_find(const llorch_container *c, const char *name) {
    struct llorch_container_member key = {.name = name};
    return c->n_members == 0 ? NULL : bsearch(&key, c->members, c->n_members, sizeof key, member_compare);
}

size_t llorch_container_n_members(const llorch_container *c) {
    return c->n_members;
}

const struct llorch_container_member *llorch_container_member(const llorch_container *c, size_t i) {
    return i < c->n_members ? &c->members[i] : NULL;
}

int llorch_container_read(const llorch_container *c, const struct llorch_container_member *m, unsigned char **out,
                          char *err, size_t err_size) {
    *out = read_new(c, m->offset, m->size);
    if (*out == NULL) {
        llorch_set_error(err, err_size, "%s: cannot read member '%.200s' (%llu bytes at %llu)", c->name, m->name,
                         (unsigned long long) m->size, (unsigned long long) m->offset);
        return -1;
    }
    return 0;
}

void llorch_container_free(llorch_container *c) {
    if (c == NULL) {
        return;
    }
    free(c->members);
    free(c->names);
    free(c->name);
    free(c);
}

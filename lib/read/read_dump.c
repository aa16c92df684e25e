/*
 * read_dump.c - the dump API: opening a dump directory (the manifest, the
 * token file, the index of a container), files supplied from memory, the
 * accessors, and checking and loading the file of an entry.
 */
#define _POSIX_C_SOURCE 200809L

#include "error.h"
#include "npy.h"
#include "read_internal.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A manifest of 100k files is ~40 MB; a 1 GiB one is not a manifest. */
#define MANIFEST_MAX_BYTES ((size_t) 1 << 30)
#define MANIFEST_NAME      "manifest.json"

/* ---- opening ------------------------------------------------------------- */

static int tokens_equal(const llorch_ckpt_dump *d, const llorch_ckpt_array *a) {
    if ((size_t) a->count != d->n_tokens) {
        return 0;
    }
    for (size_t i = 0; i < d->n_tokens; i++) {
        if (llorch_ckpt_array_value(a, (int64_t) i) != d->tokens[i]) {
            return 0;
        }
    }
    return 1;
}

/* Without "tokens" in the manifest, the token file (path) provides them. */
static int take_tokens(llorch_ckpt_dump *d, const llorch_ckpt_array *a, const char *path, char *err, size_t err_size) {
    d->tokens = malloc((size_t) (a->count ? a->count : 1) * sizeof *d->tokens);
    if (!d->tokens) {
        llorch_set_error(err, err_size, "%s: out of memory", path);
        return -1;
    }
    for (int64_t i = 0; i < a->count; i++) {
        d->tokens[i] = (int32_t) llorch_ckpt_array_value(a, i);
    }
    d->n_tokens = (size_t) a->count;
    d->has_tokens = true;
    return 0;
}

/* The token file must hold the manifest's tokens; without "tokens" in the
 * manifest, it provides them. */
static int read_tokens_file(llorch_ckpt_dump *d, char *err, size_t err_size) {
    char               path[4096];
    llorch_ckpt_array *a = llorch_ckpt_array_read(d->dir, d->tokens_file, err, err_size);
    if (!a) {
        return -1;
    }
    llorch_read_join_path(path, sizeof path, d->dir, d->tokens_file);
    int rc = 0;
    if (a->dtype != LLORCH_CKPT_DTYPE_I32 || a->n_dims != 1) {
        llorch_set_error(err, err_size, "%s: token ids must be a 1-D int32 array", path);
        rc = -1;
    } else if (d->has_tokens && !tokens_equal(d, a)) {
        llorch_set_error(err, err_size, "%s: token ids differ from the manifest's \"tokens\"", path);
        rc = -1;
    } else if (!d->has_tokens) {
        rc = take_tokens(d, a, path, err, err_size);
    }
    llorch_ckpt_array_free(a);
    return rc;
}

/* Indexes the container: its members are read on demand. */
static int open_container_file(llorch_ckpt_dump *d, char *err, size_t err_size) {
    char        path[4096];
    struct stat st;
    llorch_read_join_path(path, sizeof path, d->dir, d->container_file);
    d->container_fd = llorch_read_open_in_dir(d->dir, d->container_file, &st, err, err_size);
    if (d->container_fd < 0) {
        return -1;
    }
    d->container = llorch_container_open_fd(d->container_fd, d->container_form, path, err, err_size);
    return d->container ? 0 : -1;
}

/* Where the manifest could not be read because it or its directory is
 * not there, says so (in the words of the Python reader) with the fix;
 * any other error keeps its own message. */
static void missing_manifest(const char *dir, char *err, size_t err_size) {
    struct stat st;
    char        path[4096];
    llorch_read_join_path(path, sizeof path, dir, MANIFEST_NAME);
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) {
            llorch_set_error(err, err_size, "%s: no such directory; give the directory of a dump", dir);
        }
    } else if (!S_ISDIR(st.st_mode)) {
        llorch_set_error(err, err_size, "%s: not a directory; give the directory of a dump", dir);
    } else if (lstat(path, &st) != 0 && errno == ENOENT) {
        llorch_set_error(err, err_size,
                         "%s: no manifest.json: not a dump, or still being written (a run writes its manifest "
                         "last); give the directory of a finished dump",
                         dir);
    }
}

llorch_ckpt_dump *llorch_ckpt_dump_open(const char *dir, char *err, size_t err_size) {
    unsigned char *text;
    size_t         size;
    char           manifest_name[4096];
    llorch_read_join_path(manifest_name, sizeof manifest_name, dir, MANIFEST_NAME);
    if (llorch_read_file_in_dir(dir, MANIFEST_NAME, MANIFEST_MAX_BYTES, &text, &size, err, err_size) != 0) {
        missing_manifest(dir, err, err_size); /* the usual case, said as people need it */
        return NULL;
    }
    llorch_ckpt_dump *d = llorch_read_dump_from_text((const char *) text, size, dir, manifest_name, err, err_size);
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

/* ---- files from memory --------------------------------------------------- */

int llorch_ckpt_dump_add_file(llorch_ckpt_dump *d, const char *file, const void *buf, size_t size, char *err,
                              size_t err_size) {
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

/* ---- accessors ----------------------------------------------------------- */

const char *llorch_ckpt_dump_name(const llorch_ckpt_dump *d) {
    return d->name;
}
bool llorch_ckpt_dump_complete(const llorch_ckpt_dump *d) {
    return d->complete;
}
const char *llorch_ckpt_dump_status(const llorch_ckpt_dump *d) {
    return d->status;
}
const char *llorch_ckpt_dump_producer(const llorch_ckpt_dump *d) {
    return d->producer;
}
const struct llorch_ckpt_model *llorch_ckpt_dump_model(const llorch_ckpt_dump *d) {
    return &d->model;
}
bool llorch_ckpt_dump_has_tokens(const llorch_ckpt_dump *d) {
    return d->has_tokens;
}
size_t llorch_ckpt_dump_n_tokens(const llorch_ckpt_dump *d) {
    return d->n_tokens;
}
const int32_t *llorch_ckpt_dump_tokens(const llorch_ckpt_dump *d) {
    return d->tokens;
}
size_t llorch_ckpt_dump_n_entries(const llorch_ckpt_dump *d) {
    return d->n_entries;
}
size_t llorch_ckpt_dump_n_sequences(const llorch_ckpt_dump *d) {
    return d->n_sequences;
}
const struct llorch_ckpt_dump_sequence *llorch_ckpt_dump_sequence(const llorch_ckpt_dump *d, size_t i) {
    return i < d->n_sequences ? &d->sequences[i] : NULL;
}

const struct llorch_ckpt_entry *llorch_ckpt_dump_entry(const llorch_ckpt_dump *d, size_t i) {
    return i < d->n_entries ? &d->entries[i] : NULL;
}

/* ---- the file of an entry ------------------------------------------------ */

/* Entry i, or NULL with a message. */
static const struct llorch_ckpt_entry *find_entry(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size) {
    const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
    if (!e) {
        llorch_set_error(err, err_size, "%s: no file entry %zu", d->manifest_name, i);
    }
    return e;
}

static const struct mem_file *find_mem_file(const llorch_ckpt_dump *d, const char *file) {
    for (size_t i = 0; i < d->n_files; i++) {
        if (strcmp(d->files[i].name, file) == 0) {
            return &d->files[i];
        }
    }
    return NULL;
}

/* The container member of entry e. */
static const struct llorch_container_member *entry_member(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e,
                                                          char *err, size_t err_size) {
    const struct llorch_container_member *m = d->container ? llorch_container_find(d->container, e->file) : NULL;
    if (!d->container) {
        llorch_set_error(err, err_size, "%s: container %s was not supplied", d->name, d->container_file);
    } else if (!m) {
        llorch_set_error(err, err_size, "%s/%s: no member '%s'", d->name, d->container_file, e->file);
    } else if (m->typed && !m->dtype_known) {
        llorch_set_error(err, err_size, "%s/%s: tensor '%s' has a dtype or rank this reader does not know", d->name,
                         d->container_file, e->file);
        m = NULL;
    }
    return m;
}

static int entry_file_size(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e, uint64_t *size, char *err,
                           size_t err_size) {
    if (d->container_file) {
        const struct llorch_container_member *m = entry_member(d, e, err, err_size);
        *size = m ? m->size : 0;
        return m ? 0 : -1;
    }
    if (d->dir) {
        struct stat st;
        int         fd = llorch_read_open_in_dir(d->dir, e->file, &st, err, err_size);
        if (fd < 0) {
            return -1;
        }
        close(fd);
        *size = (uint64_t) st.st_size;
        return 0;
    }
    const struct mem_file *f = find_mem_file(d, e->file);
    if (!f) {
        char path[4096];
        llorch_read_join_path(path, sizeof path, d->name, e->file);
        llorch_set_error(err, err_size, "%s: no such file", path);
        return -1;
    }
    *size = f->size;
    return 0;
}

int llorch_ckpt_dump_check_size(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size) {
    const struct llorch_ckpt_entry *e = find_entry(d, i, err, err_size);
    int64_t                         count = 0, bytes = 0;
    uint64_t                        size;
    char                            path[4096];
    if (!e || entry_file_size(d, e, &size, err, err_size) != 0) {
        return -1;
    }
    llorch_read_shape_bytes(e->n_dims, e->shape, e->dtype, &count, &bytes); /* checked when parsed */
    /* a safetensors member is the data alone; every other one is a .npy file */
    uint64_t prefix = d->container_form == LLORCH_CONTAINER_SAFETENSORS ? 0 : NPY_PREFIX_V1;
    if (size < prefix || size - prefix < (uint64_t) bytes) {
        llorch_read_join_path(path, sizeof path, d->dir ? d->dir : d->name, e->file);
        llorch_set_error(err, err_size,
                         "%s: truncated: %llu bytes cannot hold the %lld data bytes the manifest declares", path,
                         (unsigned long long) size, (long long) bytes);
        return -1;
    }
    return 0;
}

/* A safetensors tensor, given the .npy header of its dtype and shape so
 * that it is parsed and checked as every other array. */
static llorch_ckpt_array *array_from_tensor(const struct llorch_container_member *m, const unsigned char *data,
                                            const char *path, char *err, size_t err_size) {
    char           header[512];
    size_t         header_size = llorch_npy_header(header, sizeof header, m->dtype, m->n_dims, m->shape);
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

static llorch_ckpt_array *load_member(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e, const char *path,
                                      char *err, size_t err_size) {
    const struct llorch_container_member *m = entry_member(d, e, err, err_size);
    unsigned char                        *bytes;
    if (!m || llorch_container_read(d->container, m, &bytes, err, err_size) != 0) {
        return NULL;
    }
    llorch_ckpt_array *a = m->typed ? array_from_tensor(m, bytes, path, err, err_size)
                                    : llorch_ckpt_array_parse(bytes, m->size, path, err, err_size);
    free(bytes);
    return a;
}

static llorch_ckpt_array *load_entry_array(const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e,
                                           const char *path, char *err, size_t err_size) {
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

static int check_against_entry(const llorch_ckpt_array *a, const struct llorch_ckpt_entry *e, const char *path,
                               char *err, size_t err_size) {
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
            llorch_set_error(err, err_size, "%s: crc32 %lu does not match the manifest's %lu (corrupted data)", path,
                             (unsigned long) crc, (unsigned long) e->crc32);
            return -1;
        }
    }
    return 0;
}

llorch_ckpt_array *llorch_ckpt_dump_load(const llorch_ckpt_dump *d, size_t i, char *err, size_t err_size) {
    const struct llorch_ckpt_entry *e = find_entry(d, i, err, err_size);
    char                            path[4096];
    if (!e) {
        return NULL;
    }
    if (d->container_file) {
        snprintf(path, sizeof path, "%s/%s:%s", d->dir ? d->dir : d->name, d->container_file, e->file);
    } else {
        llorch_read_join_path(path, sizeof path, d->dir ? d->dir : d->name, e->file);
    }
    llorch_ckpt_array *a = load_entry_array(d, e, path, err, err_size);
    if (a && check_against_entry(a, e, path, err, err_size) != 0) {
        llorch_ckpt_array_free(a);
        return NULL;
    }
    return a;
}

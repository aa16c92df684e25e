/* write_safetensors.c - the safetensors format (huggingface/safetensors):
 * an 8-byte little-endian header length N, N bytes of JSON
 * {"NAME": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}, padded with spaces so that the data
 * starts at a multiple of 8, then the tensors' bytes back to back (the
 * reference reader refuses gaps and overlaps).
 *
 * Two things are known only at the end of the run: the header, and where
 * the 2-byte tensors go. They go after all 4-byte ones (the reference
 * writer's order, by falling alignment), so that every tensor's data is
 * aligned to its element size for readers that map the file. The tensors
 * therefore stream into two data files, and finish writes PATH as header
 * plus both (copy_file_range: a reflink or an in-kernel copy). */
#define _GNU_SOURCE /* copy_file_range */
#include "write_containers.h"

#include "npy.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_BUFFER ((size_t) 1 << 20)
#define HEADER_ALIGN  8

/* A data file: one per element size. */
struct stream {
    char    *path;
    FILE    *f;
    char    *buffer;
    uint64_t size;
};

struct tensor {
    char                   name[256];
    enum llorch_ckpt_dtype dtype;
    int                    n_dims;
    int64_t                shape[4];
    int                    stream;     /* 0: 4-byte elements, 1: 2-byte elements */
    uint64_t               begin, end; /* within its stream */
};

struct llorch_st_writer {
    char          *path;
    struct stream  streams[2];
    struct tensor *tensors;
    size_t         n_tensors, cap_tensors;
    uint64_t       data_start; /* set by finish */
    bool           finished;
};

static const char *st_dtype(enum llorch_ckpt_dtype dtype) {
    switch (dtype) {
        case LLORCH_CKPT_DTYPE_F32:
            return "F32";
        case LLORCH_CKPT_DTYPE_F16:
            return "F16";
        case LLORCH_CKPT_DTYPE_I32:
            return "I32";
    }
    return NULL;
}

static int write_failed(const char *path, char *err, size_t err_size) {
    snprintf(err, err_size, "writing %s failed: %s; free space or choose another output directory", path,
             strerror(errno));
    return -1;
}

static int open_stream(struct stream *st, const char *path, const char *suffix, char *err, size_t err_size) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    st->path = malloc(n);
    st->buffer = malloc(STREAM_BUFFER);
    if (st->path == NULL || st->buffer == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    snprintf(st->path, n, "%s%s", path, suffix);
    st->f = fopen(st->path, "wb");
    if (st->f == NULL) {
        snprintf(err, err_size, "cannot create %s: %s; check the output directory", st->path, strerror(errno));
        return -1;
    }
    setvbuf(st->f, st->buffer, _IOFBF, STREAM_BUFFER);
    return 0;
}

llorch_st_writer *llorch_st_writer_create(const char *path, char *err, size_t err_size) {
    llorch_st_writer *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->path = strdup(path);
    }
    if (s == NULL || s->path == NULL) {
        snprintf(err, err_size, "out of memory");
        llorch_st_writer_free(s);
        return NULL;
    }
    if (open_stream(&s->streams[0], path, ".data", err, err_size) != 0 ||
        open_stream(&s->streams[1], path, ".data2", err, err_size) != 0) {
        llorch_st_writer_free(s);
        return NULL;
    }
    return s;
}

static struct tensor *new_tensor(llorch_st_writer *s) {
    if (llorch_grow(&s->tensors, &s->cap_tensors, s->n_tensors + 1, sizeof *s->tensors, 256) != 0) {
        return NULL;
    }
    return &s->tensors[s->n_tensors++];
}

int llorch_st_writer_add(llorch_st_writer *s, const char *name, enum llorch_ckpt_dtype dtype, int n_dims,
                         const int64_t *shape, const void *data, size_t data_size, size_t *index, char *err,
                         size_t err_size) {
    /* names are unique: they are the writer's file names */
    bool           fits = strlen(name) < sizeof s->tensors[0].name && n_dims <= 4 && st_dtype(dtype) != NULL;
    struct tensor *t = fits && strcmp(name, "__metadata__") != 0 ? new_tensor(s) : NULL;
    if (t == NULL) {
        snprintf(err, err_size, "tensor '%s' cannot be stored in safetensors (name, rank, type, or memory)", name);
        return -1;
    }
    struct stream *st = &s->streams[t->stream = llorch_dtype_size(dtype) == 2];
    if (data_size > 0 && fwrite(data, 1, data_size, st->f) != data_size) {
        s->n_tensors--;
        return write_failed(st->path, err, err_size);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, (size_t) n_dims * sizeof *shape);
    t->begin = st->size;
    t->end = st->size += data_size;
    *index = s->n_tensors - 1;
    return 0;
}

/* Offsets within the data section: the second stream follows the first. */
static uint64_t data_begin(const llorch_st_writer *s, const struct tensor *t) {
    return t->begin + (t->stream == 1 ? s->streams[0].size : 0);
}

/* The header: length, JSON, spaces up to the data's alignment. */
static char *header_bytes(const llorch_st_writer *s, size_t *size) {
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", LLORCH_CKPT_FORMAT_NAME);
    cJSON_AddStringToObject(meta, "format_version", "2");
    for (size_t i = 0; i < s->n_tensors; i++) {
        const struct tensor *t = &s->tensors[i];
        cJSON               *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype(t->dtype));
        cJSON *dims = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->n_dims; d++) {
            cJSON_AddItemToArray(dims, cJSON_CreateNumber((double) t->shape[d]));
        }
        cJSON *offsets = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double) data_begin(s, t)));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double) (data_begin(s, t) + t->end - t->begin)));
    }
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (json == NULL) {
        return NULL;
    }
    size_t n = strlen(json);
    size_t padded = (8 + n + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN - 8;
    char  *bytes = malloc(8 + padded);
    if (bytes != NULL) {
        for (int i = 0; i < 8; i++) {
            bytes[i] = (char) ((uint64_t) padded >> (8 * i));
        }
        memcpy(bytes + 8, json, n);
        memset(bytes + 8 + n, ' ', padded - n);
        *size = 8 + padded;
    }
    cJSON_free(json);
    return bytes;
}

/* Appends a data file to out: in the kernel where it can. */
static int append_file(const char *path, int out, uint64_t size) {
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return -1;
    }
    uint64_t done = 0;
    while (done < size) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t) (size - done), 0);
        if (n < 0 && done == 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            break; /* no in-kernel copy here: read and write */
        }
        if (n <= 0) {
            close(in);
            return -1;
        }
        done += (uint64_t) n;
    }
    char buf[1 << 16];
    while (done < size) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0 || write(out, buf, (size_t) n) != n) {
            close(in);
            return -1;
        }
        done += (uint64_t) n;
    }
    close(in);
    return 0;
}

static int close_streams(llorch_st_writer *s, char *err, size_t err_size) {
    for (int i = 0; i < 2; i++) {
        int rc = fclose(s->streams[i].f);
        s->streams[i].f = NULL;
        if (rc != 0) {
            return write_failed(s->streams[i].path, err, err_size);
        }
    }
    return 0;
}

int llorch_st_writer_finish(llorch_st_writer *s, bool sync, char *err, size_t err_size) {
    if (close_streams(s, err, err_size) != 0) {
        return -1;
    }
    size_t h_size = 0;
    char  *h = header_bytes(s, &h_size);
    if (h == NULL) {
        snprintf(err, err_size, "out of memory formatting the safetensors header");
        return -1;
    }
    int  out = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    bool ok = out >= 0 && write(out, h, h_size) == (ssize_t) h_size &&
              append_file(s->streams[0].path, out, s->streams[0].size) == 0 &&
              append_file(s->streams[1].path, out, s->streams[1].size) == 0 && (!sync || fsync(out) == 0);
    int saved = errno;
    free(h);
    ok = (out >= 0 && close(out) == 0) && ok;
    if (!ok) {
        errno = saved != 0 ? saved : errno;
        return write_failed(s->path, err, err_size);
    }
    s->data_start = h_size;
    s->finished = true;
    return 0;
}

uint64_t llorch_st_writer_offset(const llorch_st_writer *s, size_t index) {
    return s->data_start + data_begin(s, &s->tensors[index]);
}

void llorch_st_writer_free(llorch_st_writer *s) {
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (s->streams[i].f != NULL) {
            fclose(s->streams[i].f);
        }
        if (s->streams[i].path != NULL) {
            remove(s->streams[i].path);
        }
        free(s->streams[i].buffer);
        free(s->streams[i].path);
    }
    if (!s->finished && s->path != NULL) {
        remove(s->path);
    }
    free(s->tensors);
    free(s->path);
    free(s);
}

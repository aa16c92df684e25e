/*
 * gguf_fingerprint.c - the model fingerprint "sha256-sampled-v1" of a GGUF
 * file (docs/FORMAT.md, "The model fingerprint"): SHA-256 of the
 * tensor-info table and of fixed-size blocks of every tensor's data, so
 * that a 7 GB model costs a few MB of reads. The file is untrusted: every
 * count and length is checked against the file's size before use.
 */
#define _POSIX_C_SOURCE 200809L /* pread */

#include "error.h"
#include "llorch_checkpoint.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FP_BLOCK    4096u /* bytes of one sampled block             */
#define FP_SAMPLES  8u    /* blocks of a tensor larger than 8 blocks */
#define FP_MAX_FILE ((uint64_t) 1 << 60)

enum gguf_type {
    GGUF_UINT8 = 0,
    GGUF_INT8,
    GGUF_UINT16,
    GGUF_INT16,
    GGUF_UINT32,
    GGUF_INT32,
    GGUF_FLOAT32,
    GGUF_BOOL,
    GGUF_STRING,
    GGUF_ARRAY,
    GGUF_UINT64,
    GGUF_INT64,
    GGUF_FLOAT64,
    GGUF_TYPE_COUNT
};

/* A buffered sequential reader over the file. */
struct fp_reader {
    int           fd;
    const char   *path;
    uint64_t      size;    /* of the file */
    uint64_t      buf_pos; /* file offset of buf[0] */
    size_t        buf_len; /* valid bytes in buf */
    size_t        at;      /* next byte in buf */
    unsigned char buf[1 << 16];
    char         *err;
    size_t        err_size;
};

static uint64_t fp_tell(const struct fp_reader *r) {
    return r->buf_pos + r->at;
}

static int fp_truncated(struct fp_reader *r, const char *what) {
    llorch_set_error(r->err, r->err_size,
                     "%s: not a whole GGUF file (%s at byte %llu runs past its end, %llu bytes); "
                     "give a complete .gguf model",
                     r->path, what, (unsigned long long) fp_tell(r), (unsigned long long) r->size);
    return -1;
}

/* Reads n bytes (n <= sizeof buf) into out. */
static int fp_read(struct fp_reader *r, void *out, size_t n, const char *what) {
    if (n > r->size - fp_tell(r)) {
        return fp_truncated(r, what);
    }
    if (r->buf_len - r->at < n) {
        uint64_t pos = fp_tell(r);
        size_t   want = sizeof r->buf;
        if (want > r->size - pos) {
            want = (size_t) (r->size - pos);
        }
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t) (pos + got));
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                llorch_set_error(r->err, r->err_size, "%s: cannot read: %s; check the file", r->path,
                                 k < 0 ? strerror(errno) : "it shrank while being read");
                return -1;
            }
            got += (size_t) k;
        }
        r->buf_pos = pos;
        r->buf_len = got;
        r->at = 0;
    }
    memcpy(out, r->buf + r->at, n);
    r->at += n;
    return 0;
}

/* Skips n bytes. */
static int fp_skip(struct fp_reader *r, uint64_t n, const char *what) {
    if (n > r->size - fp_tell(r)) {
        return fp_truncated(r, what);
    }
    if (n <= r->buf_len - r->at) {
        r->at += (size_t) n;
    } else {
        r->buf_pos = fp_tell(r) + n;
        r->buf_len = 0;
        r->at = 0;
    }
    return 0;
}

static int fp_u32(struct fp_reader *r, uint32_t *v, const char *what) {
    unsigned char b[4];
    if (fp_read(r, b, 4, what) != 0) {
        return -1;
    }
    *v = (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
    return 0;
}

static int fp_u64(struct fp_reader *r, uint64_t *v, const char *what) {
    uint32_t lo, hi;
    if (fp_u32(r, &lo, what) != 0 || fp_u32(r, &hi, what) != 0) {
        return -1;
    }
    *v = (uint64_t) hi << 32 | lo;
    return 0;
}

/* Bytes of one value of a fixed-size type, 0 for string and array. */
static uint64_t fixed_size(uint32_t type) {
    static const uint8_t sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < GGUF_TYPE_COUNT ? sizes[type] : 0;
}

static int fp_bad(struct fp_reader *r, const char *what) {
    llorch_set_error(r->err, r->err_size,
                     "%s: not a GGUF file ggml can read (%s at byte %llu); give a valid .gguf model", r->path, what,
                     (unsigned long long) fp_tell(r));
    return -1;
}

/* Skips one metadata value of type type; general.alignment's is returned
 * in *alignment when want_alignment. */
static int skip_value(struct fp_reader *r, uint32_t type, bool want_alignment, uint32_t *alignment) {
    if (want_alignment) {
        if (type != GGUF_UINT32) {
            return fp_bad(r, "general.alignment is not a uint32");
        }
        return fp_u32(r, alignment, "general.alignment");
    }
    if (type == GGUF_STRING) {
        uint64_t len;
        return fp_u64(r, &len, "a string length") || fp_skip(r, len, "a string") ? -1 : 0;
    }
    if (type == GGUF_ARRAY) {
        uint32_t elem;
        uint64_t n;
        if (fp_u32(r, &elem, "an array type") != 0 || fp_u64(r, &n, "an array length") != 0) {
            return -1;
        }
        if (elem == GGUF_STRING) {
            for (uint64_t i = 0; i < n; i++) {
                uint64_t len;
                if (fp_u64(r, &len, "a string length") != 0 || fp_skip(r, len, "a string") != 0) {
                    return -1;
                }
            }
            return 0;
        }
        uint64_t each = fixed_size(elem);
        if (each == 0) {
            return fp_bad(r, "an array of an unknown type or of arrays");
        }
        if (n > (r->size - fp_tell(r)) / each) {
            return fp_truncated(r, "an array");
        }
        return fp_skip(r, n * each, "an array");
    }
    if (fixed_size(type) == 0) {
        return fp_bad(r, "a metadata value of an unknown type");
    }
    return fp_skip(r, fixed_size(type), "a metadata value");
}

/* Skips the metadata key-value pairs; finds general.alignment. */
static int skip_metadata(struct fp_reader *r, uint64_t n_kv, uint32_t *alignment) {
    static const char align_key[] = "general.alignment";
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t len;
        uint32_t type;
        char     key[sizeof align_key];
        bool     is_align = false;
        if (fp_u64(r, &len, "a key length") != 0) {
            return -1;
        }
        if (len == sizeof align_key - 1) {
            if (fp_read(r, key, (size_t) len, "a key") != 0) {
                return -1;
            }
            is_align = memcmp(key, align_key, (size_t) len) == 0;
        } else if (fp_skip(r, len, "a key") != 0) {
            return -1;
        }
        if (fp_u32(r, &type, "a value type") != 0 || skip_value(r, type, is_align, alignment) != 0) {
            return -1;
        }
    }
    if (*alignment == 0 || (*alignment & (*alignment - 1)) != 0) {
        return fp_bad(r, "general.alignment is not a power of two");
    }
    return 0;
}

struct fp_tensor {
    uint64_t offset; /* from the start of the data section */
    uint64_t index;  /* in the table */
};

static int by_offset(const void *a, const void *b) {
    const struct fp_tensor *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

/* Reads the tensor-info table: each tensor's offset, in table order. */
static int read_tensor_infos(struct fp_reader *r, uint64_t n, struct fp_tensor *t) {
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len, dim, offset;
        uint32_t n_dims, type;
        if (fp_u64(r, &len, "a tensor name length") != 0 || fp_skip(r, len, "a tensor name") != 0 ||
            fp_u32(r, &n_dims, "a tensor's dimension count") != 0) {
            return -1;
        }
        if (n_dims == 0 || n_dims > 4) {
            return fp_bad(r, "a tensor with more than 4 dimensions");
        }
        for (uint32_t d = 0; d < n_dims; d++) {
            if (fp_u64(r, &dim, "a tensor dimension") != 0) {
                return -1;
            }
        }
        if (fp_u32(r, &type, "a tensor type") != 0 || fp_u64(r, &offset, "a tensor offset") != 0) {
            return -1;
        }
        t[i].offset = offset;
        t[i].index = i;
    }
    return 0;
}

/* Hashes file bytes [pos, pos + n). */
static int hash_range(struct fp_reader *r, EVP_MD_CTX *md, uint64_t pos, uint64_t n) {
    while (n > 0) {
        size_t  want = n < sizeof r->buf ? (size_t) n : sizeof r->buf;
        ssize_t k = pread(r->fd, r->buf, want, (off_t) pos);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            llorch_set_error(r->err, r->err_size, "%s: cannot read: %s; check the file", r->path,
                             k < 0 ? strerror(errno) : "it shrank while being read");
            return -1;
        }
        if (EVP_DigestUpdate(md, r->buf, (size_t) k) != 1) {
            llorch_set_error(r->err, r->err_size, "%s: SHA-256 failed (OpenSSL)", r->path);
            return -1;
        }
        pos += (uint64_t) k;
        n -= (uint64_t) k;
    }
    r->buf_len = 0; /* buf now holds other bytes */
    r->at = 0;
    r->buf_pos = 0;
    return 0;
}

/* The sampled blocks of one tensor whose data is [start, start + size). */
static int hash_tensor(struct fp_reader *r, EVP_MD_CTX *md, uint64_t start, uint64_t size) {
    if (size <= (uint64_t) FP_BLOCK * FP_SAMPLES) {
        return hash_range(r, md, start, size);
    }
    for (uint64_t i = 0; i < FP_SAMPLES; i++) {
        if (hash_range(r, md, start + i * (size - FP_BLOCK) / (FP_SAMPLES - 1), FP_BLOCK) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Header, metadata and tensor infos; then the table and the samples. */
static int fingerprint(struct fp_reader *r, EVP_MD_CTX *md) {
    unsigned char magic[4];
    uint32_t      version, alignment = 32;
    uint64_t      n_tensors, n_kv;
    if (fp_read(r, magic, 4, "the magic") != 0 || memcmp(magic, "GGUF", 4) != 0) {
        llorch_set_error(r->err, r->err_size, "%s: not a GGUF file (no GGUF magic); give a .gguf model", r->path);
        return -1;
    }
    if (fp_u32(r, &version, "the version") != 0 || fp_u64(r, &n_tensors, "the tensor count") != 0 ||
        fp_u64(r, &n_kv, "the metadata count") != 0) {
        return -1;
    }
    if (version != 2 && version != 3) {
        llorch_set_error(r->err, r->err_size,
                         "%s: GGUF version %u is not supported (2 and 3 are; a big-endian file reads as another "
                         "version); convert the model again with a current llama.cpp",
                         r->path, (unsigned) version);
        return -1;
    }
    if (skip_metadata(r, n_kv, &alignment) != 0) {
        return -1;
    }
    /* A tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes. */
    if (n_tensors > (r->size - fp_tell(r)) / 32) {
        return fp_truncated(r, "the tensor-info table");
    }
    struct fp_tensor *t = malloc((size_t) (n_tensors ? n_tensors : 1) * sizeof *t);
    if (t == NULL) {
        llorch_set_error(r->err, r->err_size, "%s: out of memory", r->path);
        return -1;
    }
    uint64_t table_start = fp_tell(r);
    int      rc = read_tensor_infos(r, n_tensors, t);
    uint64_t table_end = fp_tell(r);
    uint64_t data_start = (table_end + alignment - 1) / alignment * alignment;
    if (rc == 0 && data_start > r->size) {
        rc = fp_truncated(r, "the data section");
    }
    if (rc == 0) {
        rc = hash_range(r, md, table_start, table_end - table_start);
    }
    /* Each tensor's data runs to the next greater offset, the last to the
     * end of the file. */
    struct fp_tensor *sorted = rc == 0 ? malloc((size_t) (n_tensors ? n_tensors : 1) * sizeof *sorted) : NULL;
    uint64_t         *end = rc == 0 ? malloc((size_t) (n_tensors ? n_tensors : 1) * sizeof *end) : NULL;
    if (rc == 0 && (sorted == NULL || end == NULL)) {
        llorch_set_error(r->err, r->err_size, "%s: out of memory", r->path);
        rc = -1;
    }
    uint64_t data_size = r->size - data_start;
    if (rc == 0) {
        memcpy(sorted, t, (size_t) n_tensors * sizeof *t);
        llorch_sort(sorted, (size_t) n_tensors, sizeof *sorted, by_offset);
        for (uint64_t i = n_tensors, next = data_size; rc == 0 && i-- > 0;) {
            if (sorted[i].offset > data_size) {
                llorch_set_error(r->err, r->err_size,
                                 "%s: not a whole GGUF file (tensor %llu's data starts at byte %llu of a data "
                                 "section of %llu bytes); give a complete .gguf model",
                                 r->path, (unsigned long long) sorted[i].index, (unsigned long long) sorted[i].offset,
                                 (unsigned long long) data_size);
                rc = -1;
                break;
            }
            if (i + 1 < n_tensors && sorted[i + 1].offset > sorted[i].offset) {
                next = sorted[i + 1].offset;
            }
            end[sorted[i].index] = next;
        }
    }
    for (uint64_t i = 0; rc == 0 && i < n_tensors; i++) {
        rc = hash_tensor(r, md, data_start + t[i].offset, end[i] - t[i].offset);
    }
    free(end);
    free(sorted);
    free(t);
    return rc;
}

int llorch_ckpt_gguf_fingerprint(const char *path, char *out, size_t out_size, char *err, size_t err_size) {
    if (out == NULL || out_size < LLORCH_CKPT_FINGERPRINT_SIZE) {
        llorch_set_error(err, err_size, "llorch_ckpt_gguf_fingerprint: the output buffer needs %d bytes",
                         LLORCH_CKPT_FINGERPRINT_SIZE);
        return -1;
    }
    out[0] = '\0';
    struct fp_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        llorch_set_error(err, err_size, "%s: out of memory", path);
        return -1;
    }
    r->path = path;
    r->err = err;
    r->err_size = err_size;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0 || fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        llorch_set_error(err, err_size, "%s: cannot open the model: %s; give the path of a .gguf file", path,
                         r->fd < 0 ? strerror(errno) : "not a regular file");
        if (r->fd >= 0) {
            close(r->fd);
        }
        free(r);
        return -1;
    }
    r->size = (uint64_t) st.st_size;
    EVP_MD_CTX   *md = EVP_MD_CTX_new();
    unsigned char digest[32];
    unsigned int  digest_len = 0;
    int           rc = -1;
    if (r->size >= FP_MAX_FILE) {
        llorch_set_error(err, err_size, "%s: the file is too large to be a model", path);
    } else if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        llorch_set_error(err, err_size, "%s: SHA-256 is not available (OpenSSL)", path);
    } else if (fingerprint(r, md) == 0) {
        if (EVP_DigestFinal_ex(md, digest, &digest_len) != 1 || digest_len != sizeof digest) {
            llorch_set_error(err, err_size, "%s: SHA-256 failed (OpenSSL)", path);
        } else {
            size_t n = (size_t) snprintf(out, out_size, "%s:", LLORCH_CKPT_FINGERPRINT_SCHEME);
            for (size_t i = 0; i < sizeof digest; i++, n += 2) {
                snprintf(out + n, out_size - n, "%02x", digest[i]);
            }
            rc = 0;
        }
    }
    EVP_MD_CTX_free(md);
    close(r->fd);
    free(r);
    return rc;
}

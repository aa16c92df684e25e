/* write_npz.c - numpy's .npz, written as a stream: a zip archive whose
 * members are stored .npy files (PKWARE APPNOTE 6.3: local file header,
 * data, central directory, end of central directory; zip64 records where
 * a size, an offset or the member count outgrow the 32- and 16-bit fields).
 *
 * Each member is in memory when it is added, so its CRC-32 and sizes go
 * into the local header: no data descriptors, which some readers handle
 * poorly. Members are padded (an extra field) so that each .npy's data
 * starts at a multiple of 64 bytes, for readers that map the file. */
#define _POSIX_C_SOURCE 200809L
#include "write_containers.h"

#include "checksum.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCAL_HEADER_SIZE   30
#define CENTRAL_HEADER_SIZE 46
#define EOCD_SIZE           22
#define ZIP64_EOCD_SIZE     56
#define ZIP64_LOCATOR_SIZE  20
#define ZIP_VERSION         20     /* 2.0: stored members */
#define ZIP64_VERSION       45     /* 4.5: zip64 */
#define DOS_DATE_1980       0x0021 /* 1980-01-01: a fixed time keeps dumps reproducible */
#define PAD_EXTRA_ID        0xd935 /* alignment padding, as Android's zipalign writes it */
#define DATA_ALIGN          64
#define U32_LIMIT           0xffffffffu /* the value a zip64 field leaves in the 32-bit slot */
#define U16_LIMIT           0xffffu
/* Where zip64 takes over; a test lowers them to reach zip64 with small files. */
#ifndef NPZ_ZIP64_BYTES
#define NPZ_ZIP64_BYTES U32_LIMIT
#endif
#ifndef NPZ_ZIP64_MEMBERS
#define NPZ_ZIP64_MEMBERS U16_LIMIT
#endif
#define STREAM_BUFFER ((size_t) 1 << 20)

struct member {
    char     name[256];
    uint32_t crc;
    uint64_t size;
    uint64_t offset; /* of the local header */
};

struct llorch_npz_writer {
    FILE          *f;
    char          *path;
    char          *buffer; /* stdio's: small members leave in large writes */
    uint64_t       offset; /* bytes written so far */
    struct member *members;
    size_t         n_members, cap_members;
    bool           finished;
};

static void put16(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}

static void put32(unsigned char *p, uint32_t v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t) v);
    put32(p + 4, (uint32_t) (v >> 32));
}

static int write_bytes(llorch_npz_writer *z, const void *buf, size_t n, char *err, size_t err_size) {
    if (n > 0 && fwrite(buf, 1, n, z->f) != n) {
        snprintf(err, err_size, "writing %s failed: %s; free space or choose another output directory", z->path,
                 strerror(errno));
        return -1;
    }
    z->offset += n;
    return 0;
}

llorch_npz_writer *llorch_npz_writer_create(const char *path, char *err, size_t err_size) {
    llorch_npz_writer *z = calloc(1, sizeof *z);
    if (z != NULL) {
        z->path = strdup(path);
        z->buffer = malloc(STREAM_BUFFER);
    }
    if (z == NULL || z->path == NULL || z->buffer == NULL) {
        snprintf(err, err_size, "out of memory");
        llorch_npz_writer_free(z);
        return NULL;
    }
    z->f = fopen(path, "wb");
    if (z->f == NULL) {
        snprintf(err, err_size, "cannot create %s: %s; check the output directory", path, strerror(errno));
        llorch_npz_writer_free(z);
        return NULL;
    }
    setvbuf(z->f, z->buffer, _IOFBF, STREAM_BUFFER);
    return z;
}

static struct member *new_member(llorch_npz_writer *z) {
    if (llorch_grow(&z->members, &z->cap_members, z->n_members + 1, sizeof *z->members, 256) != 0) {
        return NULL;
    }
    return &z->members[z->n_members++];
}

/* The local header with its extra fields: zip64 sizes when the member
 * needs them, then padding up to the alignment of the .npy data. */
static size_t local_header(unsigned char *h, const struct member *m, size_t name_len, size_t npy_header_size) {
    bool     zip64 = m->size >= NPZ_ZIP64_BYTES;
    size_t   z64 = zip64 ? 20 : 0;
    uint64_t data_at = m->offset + LOCAL_HEADER_SIZE + name_len + z64 + 4 + npy_header_size;
    size_t   pad = (size_t) ((DATA_ALIGN - data_at % DATA_ALIGN) % DATA_ALIGN);
    size_t   extra = z64 + 4 + pad;
    put32(h, 0x04034b50);
    put16(h + 4, zip64 ? ZIP64_VERSION : ZIP_VERSION);
    put16(h + 6, 0);  /* flags */
    put16(h + 8, 0);  /* stored */
    put16(h + 10, 0); /* time */
    put16(h + 12, DOS_DATE_1980);
    put32(h + 14, m->crc);
    put32(h + 18, zip64 ? U32_LIMIT : (uint32_t) m->size);
    put32(h + 22, zip64 ? U32_LIMIT : (uint32_t) m->size);
    put16(h + 26, (uint32_t) name_len);
    put16(h + 28, (uint32_t) extra);
    unsigned char *e = h + LOCAL_HEADER_SIZE;
    memcpy(e, m->name, name_len);
    e += name_len;
    if (zip64) {
        put16(e, 0x0001);
        put16(e + 2, 16);
        put64(e + 4, m->size);
        put64(e + 12, m->size);
        e += 20;
    }
    put16(e, PAD_EXTRA_ID);
    put16(e + 2, (uint32_t) pad);
    memset(e + 4, 0, pad);
    return LOCAL_HEADER_SIZE + name_len + extra;
}

int llorch_npz_writer_add(llorch_npz_writer *z, const char *name, const void *npy_header, size_t header_size,
                          const void *data, size_t data_size, uint64_t *data_offset, char *err, size_t err_size) {
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len >= sizeof z->members[0].name) {
        snprintf(err, err_size, "member name '%s' is empty or too long", name);
        return -1;
    }
    struct member *m = new_member(z);
    if (m == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    memcpy(m->name, name, name_len + 1);
    m->crc = llorch_crc32_update(llorch_crc32(npy_header, header_size), data, data_size);
    m->size = header_size + data_size;
    m->offset = z->offset;
    unsigned char h[LOCAL_HEADER_SIZE + 256 + 20 + 4 + DATA_ALIGN];
    size_t        h_size = local_header(h, m, name_len, header_size);
    if (write_bytes(z, h, h_size, err, err_size) != 0 || write_bytes(z, npy_header, header_size, err, err_size) != 0) {
        return -1;
    }
    *data_offset = z->offset;
    return write_bytes(z, data, data_size, err, err_size);
}

/* A central directory entry; its zip64 extra holds, in this order, the
 * fields whose 32-bit slot is saturated. */
static size_t central_header(unsigned char *h, const struct member *m) {
    size_t name_len = strlen(m->name);
    bool   big_size = m->size >= NPZ_ZIP64_BYTES, big_offset = m->offset >= NPZ_ZIP64_BYTES;
    size_t z64 = (big_size ? 16 : 0) + (big_offset ? 8 : 0);
    size_t extra = z64 > 0 ? 4 + z64 : 0;
    put32(h, 0x02014b50);
    put16(h + 4, z64 > 0 ? ZIP64_VERSION : ZIP_VERSION); /* made by (MS-DOS attributes) */
    put16(h + 6, z64 > 0 ? ZIP64_VERSION : ZIP_VERSION);
    put16(h + 8, 0);
    put16(h + 10, 0);
    put16(h + 12, 0);
    put16(h + 14, DOS_DATE_1980);
    put32(h + 16, m->crc);
    put32(h + 20, big_size ? U32_LIMIT : (uint32_t) m->size);
    put32(h + 24, big_size ? U32_LIMIT : (uint32_t) m->size);
    put16(h + 28, (uint32_t) name_len);
    put16(h + 30, (uint32_t) extra);
    put16(h + 32, 0); /* comment */
    put16(h + 34, 0); /* disk */
    put16(h + 36, 0); /* internal attributes */
    put32(h + 38, 0); /* external attributes */
    put32(h + 42, big_offset ? U32_LIMIT : (uint32_t) m->offset);
    unsigned char *e = h + CENTRAL_HEADER_SIZE;
    memcpy(e, m->name, name_len);
    e += name_len;
    if (z64 > 0) {
        put16(e, 0x0001);
        put16(e + 2, (uint32_t) z64);
        e += 4;
        if (big_size) {
            put64(e, m->size);
            put64(e + 8, m->size);
            e += 16;
        }
        if (big_offset) {
            put64(e, m->offset);
        }
    }
    return CENTRAL_HEADER_SIZE + name_len + extra;
}

static int write_end_records(llorch_npz_writer *z, uint64_t cd_offset, uint64_t cd_size, char *err, size_t err_size) {
    uint64_t       n = z->n_members;
    bool           many = n >= NPZ_ZIP64_MEMBERS, far = cd_offset >= NPZ_ZIP64_BYTES, big = cd_size >= NPZ_ZIP64_BYTES;
    bool           zip64 = many || far || big;
    unsigned char  r[ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE + EOCD_SIZE];
    unsigned char *p = r;
    if (zip64) {
        uint64_t eocd64_at = z->offset;
        put32(p, 0x06064b50);
        put64(p + 4, ZIP64_EOCD_SIZE - 12);
        put16(p + 12, ZIP64_VERSION);
        put16(p + 14, ZIP64_VERSION);
        put32(p + 16, 0);
        put32(p + 20, 0);
        put64(p + 24, n);
        put64(p + 32, n);
        put64(p + 40, cd_size);
        put64(p + 48, cd_offset);
        p += ZIP64_EOCD_SIZE;
        put32(p, 0x07064b50);
        put32(p + 4, 0);
        put64(p + 8, eocd64_at);
        put32(p + 16, 1);
        p += ZIP64_LOCATOR_SIZE;
    }
    put32(p, 0x06054b50);
    put16(p + 4, 0);
    put16(p + 6, 0);
    put16(p + 8, many ? U16_LIMIT : (uint32_t) n);
    put16(p + 10, many ? U16_LIMIT : (uint32_t) n);
    put32(p + 12, big ? U32_LIMIT : (uint32_t) cd_size);
    put32(p + 16, far ? U32_LIMIT : (uint32_t) cd_offset);
    put16(p + 20, 0);
    return write_bytes(z, r, (size_t) (p + EOCD_SIZE - r), err, err_size);
}

int llorch_npz_writer_finish(llorch_npz_writer *z, bool sync, char *err, size_t err_size) {
    uint64_t cd_offset = z->offset;
    for (size_t i = 0; i < z->n_members; i++) {
        unsigned char h[CENTRAL_HEADER_SIZE + 256 + 28];
        if (write_bytes(z, h, central_header(h, &z->members[i]), err, err_size) != 0) {
            return -1;
        }
    }
    if (write_end_records(z, cd_offset, z->offset - cd_offset, err, err_size) != 0) {
        return -1;
    }
    int rc = fflush(z->f);
    if (rc == 0 && sync) {
        rc = fsync(fileno(z->f));
    }
    rc = fclose(z->f) != 0 ? -1 : rc;
    z->f = NULL;
    if (rc != 0) {
        snprintf(err, err_size, "writing %s failed: %s; free space or choose another output directory", z->path,
                 strerror(errno));
        return -1;
    }
    z->finished = true;
    return 0;
}

void llorch_npz_writer_free(llorch_npz_writer *z) {
    if (z == NULL) {
        return;
    }
    if (z->f != NULL) {
        fclose(z->f);
    }
    if (!z->finished && z->path != NULL) {
        remove(z->path);
    }
    free(z->buffer);
    free(z->members);
    free(z->path);
    free(z);
}

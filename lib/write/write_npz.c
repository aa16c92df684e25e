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

/* Little-endian fields: widths[i] (2, 4 or 8) bytes of values[i], in
 * order (the layout of every zip record). Returns the bytes written. */
static size_t pack(unsigned char *p, const uint64_t *values, const char *widths) {
    size_t n = 0;
    for (size_t i = 0; widths[i] != '\0'; i++) {
        for (int b = 0; b < widths[i] - '0'; b++) {
            p[n++] = (unsigned char) (values[i] >> (8 * b));
        }
    }
    return n;
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

/* A new member named name; NULL with a message when the name does not fit
 * or memory runs out. */
static struct member *new_member(llorch_npz_writer *z, const char *name, char *err, size_t err_size) {
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len >= sizeof z->members[0].name ||
        llorch_grow(&z->members, &z->cap_members, z->n_members + 1, sizeof *z->members, 256) != 0) {
        snprintf(err, err_size, "cannot add member '%s': empty, too long, or out of memory", name);
        return NULL;
    }
    struct member *m = &z->members[z->n_members++];
    memcpy(m->name, name, name_len + 1);
    return m;
}

/* The local header with its extra fields: zip64 sizes when the member
 * needs them, then padding up to the alignment of the .npy data. */
static size_t local_header(unsigned char *h, const struct member *m, size_t name_len, size_t npy_header_size) {
    bool     zip64 = m->size >= NPZ_ZIP64_BYTES;
    size_t   z64 = zip64 ? 20 : 0;
    uint64_t data_at = m->offset + LOCAL_HEADER_SIZE + name_len + z64 + 4 + npy_header_size;
    size_t   pad = (size_t) ((DATA_ALIGN - data_at % DATA_ALIGN) % DATA_ALIGN);
    uint64_t size32 = zip64 ? U32_LIMIT : m->size;
    /* signature, version, flags, method (stored), time, date, crc, sizes, name and extra lengths */
    const uint64_t fields[] = {
        0x04034b50,   zip64 ? ZIP64_VERSION : ZIP_VERSION, 0, 0, 0, DOS_DATE_1980, m->crc, size32, size32, name_len,
        z64 + 4 + pad};
    size_t n = pack(h, fields, "42222244422");
    memcpy(h + n, m->name, name_len);
    n += name_len;
    if (zip64) {
        n += pack(h + n, (const uint64_t[]){0x0001, 16, m->size, m->size}, "2288");
    }
    n += pack(h + n, (const uint64_t[]){PAD_EXTRA_ID, pad}, "22");
    memset(h + n, 0, pad);
    return n + pad;
}

int llorch_npz_writer_add(llorch_npz_writer *z, const char *name, const void *npy_header, size_t header_size,
                          const void *data, size_t data_size, uint64_t *data_offset, char *err, size_t err_size) {
    struct member *m = new_member(z, name, err, err_size);
    if (m == NULL) {
        return -1;
    }
    size_t name_len = strlen(name);
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
    size_t   name_len = strlen(m->name);
    bool     big_size = m->size >= NPZ_ZIP64_BYTES, big_offset = m->offset >= NPZ_ZIP64_BYTES;
    size_t   z64 = (big_size ? 16 : 0) + (big_offset ? 8 : 0);
    uint64_t version = z64 > 0 ? ZIP64_VERSION : ZIP_VERSION, size32 = big_size ? U32_LIMIT : m->size;
    /* signature, made by (MS-DOS attributes), needed, flags, method, time, date, crc, sizes, name, extra and
     * comment lengths, disk, internal and external attributes, local header offset */
    const uint64_t fields[] = {0x02014b50,
                               version,
                               version,
                               0,
                               0,
                               0,
                               DOS_DATE_1980,
                               m->crc,
                               size32,
                               size32,
                               name_len,
                               z64 > 0 ? 4 + z64 : 0,
                               0,
                               0,
                               0,
                               0,
                               big_offset ? U32_LIMIT : m->offset};
    size_t         n = pack(h, fields, "42222224442222244");
    memcpy(h + n, m->name, name_len);
    n += name_len;
    if (z64 > 0) {
        n += pack(h + n, (const uint64_t[]){0x0001, z64}, "22");
        n += big_size ? pack(h + n, (const uint64_t[]){m->size, m->size}, "88") : 0;
        n += big_offset ? pack(h + n, (const uint64_t[]){m->offset}, "8") : 0;
    }
    return n;
}

/* The end records: zip64's end of central directory and its locator when
 * a count, size or offset outgrows the classic record, then that record. */
static int write_end_records(llorch_npz_writer *z, uint64_t cd_offset, uint64_t cd_size, char *err, size_t err_size) {
    uint64_t      n = z->n_members;
    bool          many = n >= NPZ_ZIP64_MEMBERS, far = cd_offset >= NPZ_ZIP64_BYTES, big = cd_size >= NPZ_ZIP64_BYTES;
    unsigned char r[ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE + EOCD_SIZE];
    size_t        used = 0;
    if (many || far || big) {
        const uint64_t eocd64[] = {0x06064b50, ZIP64_EOCD_SIZE - 12, ZIP64_VERSION, ZIP64_VERSION, 0, 0, n, n, cd_size,
                                   cd_offset};
        used += pack(r, eocd64, "4822448888");
        used += pack(r + used, (const uint64_t[]){0x07064b50, 0, z->offset, 1}, "4484");
    }
    uint64_t       n16 = many ? U16_LIMIT : n;
    const uint64_t eocd[] = {0x06054b50, 0, 0, n16, n16, big ? U32_LIMIT : cd_size, far ? U32_LIMIT : cd_offset, 0};
    used += pack(r + used, eocd, "42222442");
    return write_bytes(z, r, used, err, err_size);
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

/* test_npz_zip64.c - the .npz writer's zip64 records, reached with small
 * files: the thresholds are lowered (4 KiB, 8 members) so that member
 * sizes, local header offsets, the central directory's offset and the
 * member count all take their zip64 form. The archive is then read by our
 * reader here and by numpy and zipfile (npz_zip64_check.py).
 *   test_npz_zip64 OUT.npz */
#define NPZ_ZIP64_BYTES   4096u
#define NPZ_ZIP64_MEMBERS 8u
#include "../lib/write/write_npz.c"

#include "npy.h"
#include "read_container.h"

#include <fcntl.h>
#include <unistd.h>

#define N_MEMBERS 20

static int failed(const char *what) {
    fprintf(stderr, "FAIL: %s\n", what);
    return 1;
}

/* member i: float32 values i*1000 + k*0.5 for k < 97*i + 1 */
static float *member_values(int i, int64_t *n) {
    *n = 97 * i + 1;
    float *v = malloc((size_t) *n * sizeof *v);
    for (int64_t k = 0; v != NULL && k < *n; k++) {
        v[k] = (float) i * 1000.0f + (float) k * 0.5f;
    }
    return v;
}

static int write_archive(const char *path) {
    char               err[512];
    llorch_npz_writer *z = llorch_npz_writer_create(path, err, sizeof err);
    if (z == NULL) {
        return failed(err);
    }
    for (int i = 0; i < N_MEMBERS; i++) {
        int64_t  n;
        float   *v = member_values(i, &n);
        char     header[256], name[64];
        size_t   h = llorch_npy_header(header, sizeof header, LLORCH_CKPT_DTYPE_F32, 1, &n);
        uint64_t at;
        snprintf(name, sizeof name, "m%02d.npy", i);
        int rc = llorch_npz_writer_add(z, name, header, h, v, (size_t) n * 4, &at, err, sizeof err);
        free(v);
        if (rc != 0 || at % 64 != 0) {
            return failed(rc != 0 ? err : "member data not 64-byte aligned");
        }
    }
    int rc = llorch_npz_writer_finish(z, false, err, sizeof err);
    llorch_npz_writer_free(z);
    return rc != 0 ? failed(err) : 0;
}

/* Our reader finds every member, and its bytes are the .npy we wrote. */
static int read_archive(const char *path) {
    char              err[512];
    int               fd = open(path, O_RDONLY);
    llorch_container *c = fd >= 0 ? llorch_container_open_fd(fd, LLORCH_CONTAINER_NPZ, path, err, sizeof err) : NULL;
    if (c == NULL || llorch_container_n_members(c) != N_MEMBERS) {
        return failed(c == NULL ? err : "member count");
    }
    for (int i = 0; i < N_MEMBERS; i++) {
        char name[64];
        snprintf(name, sizeof name, "m%02d.npy", i);
        const struct llorch_container_member *m = llorch_container_find(c, name);
        unsigned char                        *bytes;
        int64_t                               n;
        float                                *v = member_values(i, &n);
        char                                  header[256];
        size_t h = llorch_npy_header(header, sizeof header, LLORCH_CKPT_DTYPE_F32, 1, &n);
        if (m == NULL || m->size != h + (uint64_t) n * 4 || llorch_container_read(c, m, &bytes, err, sizeof err) != 0) {
            return failed(m == NULL ? "member missing" : "member size or read");
        }
        int same = memcmp(bytes, header, h) == 0 && memcmp(bytes + h, v, (size_t) n * 4) == 0;
        free(bytes);
        free(v);
        if (!same) {
            return failed("member bytes differ");
        }
    }
    llorch_container_free(c);
    close(fd);
    printf("ok: %d members written with zip64 sizes, offsets and count, read back by our reader\n", N_MEMBERS);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        return failed("usage: test_npz_zip64 OUT.npz");
    }
    return write_archive(argv[1]) || read_archive(argv[1]);
}

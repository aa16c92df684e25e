/* test_write_regressions.c - the writer's error reporting and durability,
 * checked by wrapping the C library calls it makes (-Wl,--wrap):
 *  - a failed write reports its own cause, not an errno left over from an
 *    earlier call (fwrite made to fail without setting errno);
 *  - every file a manifest names is fsynced, and so is the directory,
 *    before manifest.json is renamed into place (fsync and rename
 *    recorded), in the npy, npz and safetensors forms.
 *   test_write_regressions WORKDIR */
#define _XOPEN_SOURCE 700
#include "llorch_checkpoint.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t __real_fwrite(const void *ptr, size_t size, size_t n, FILE *f);
size_t __wrap_fwrite(const void *ptr, size_t size, size_t n, FILE *f);
int    __real_fsync(int fd);
int    __wrap_fsync(int fd);
int    __real_rename(const char *from, const char *to);
int    __wrap_rename(const char *from, const char *to);

static bool fail_next_fwrite;

/* A short write that leaves errno as it was. */
size_t __wrap_fwrite(const void *ptr, size_t size, size_t n, FILE *f) {
    if (fail_next_fwrite) {
        fail_next_fwrite = false;
        return 0;
    }
    return __real_fwrite(ptr, size, n, f);
}

/* The calls seen, in order: "sync PATH" or "rename PATH". */
static char events[4096][1300];
static int  n_events;

static void record(const char *what, const char *path) {
    if (n_events < 4096) {
        snprintf(events[n_events++], sizeof events[0], "%s %s", what, path);
    }
}

int __wrap_fsync(int fd) {
    char link[64], path[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    record("sync", path);
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to) {
    int  rc = __real_rename(from, to);
    char path[512];
    if (rc == 0 && realpath(to, path) != NULL) {
        record("rename", path);
    }
    return rc;
}

static int failures;

static void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static const float values[6] = {1, 2, 3, 4, 5, 6};

static struct llorch_ckpt_tensor tensor(enum llorch_ckpt_kind kind, int layer, int step) {
    struct llorch_ckpt_tensor t = {.kind = kind,
                                   .layer = layer,
                                   .step = step,
                                   .n_pos = 2,
                                   .n_dims = 2,
                                   .shape = {2, 3},
                                   .dtype = LLORCH_CKPT_DTYPE_F32,
                                   .data = values};
    return t;
}

static void test_stale_errno(const char *work) {
    char dir[1024], err[512];
    snprintf(dir, sizeof dir, "%s/errno", work);
    llorch_ckpt_writer *w = llorch_ckpt_writer_open(dir, NULL, err, sizeof err);
    check(w != NULL, err);
    if (w == NULL) {
        return;
    }
    struct llorch_ckpt_tensor t = tensor(LLORCH_CKPT_ATTN_NORM, 0, 0);
    fail_next_fwrite = true;
    errno = EACCES; /* left over from some earlier, unrelated call */
    int         rc = llorch_ckpt_writer_write(w, &t);
    const char *msg = llorch_ckpt_writer_error(w);
    check(rc != 0, "a failed write was not reported");
    check(strstr(msg, strerror(EACCES)) == NULL, "the message carries an errno from before the write");
    check(strstr(msg, "checkpoint_01_attn_norm_l00_s000.npy") != NULL, "the message does not name the file");
    printf("a short write without errno reports: %s\n", msg);
    llorch_ckpt_writer_free(w);
}

/* Index of the first event "what path", or -1. */
static int find_event(const char *what, const char *path) {
    char want[1300];
    snprintf(want, sizeof want, "%s %s", what, path);
    for (int i = 0; i < n_events; i++) {
        if (strcmp(events[i], want) == 0) {
            return i;
        }
    }
    return -1;
}

static void test_durability(const char *work, enum llorch_ckpt_form form) {
    char dir[1024], err[512], real_dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/sync-%s", work, llorch_ckpt_form_name(form));
    struct llorch_ckpt_writer_options opt = {.form = form};
    llorch_ckpt_writer               *w = llorch_ckpt_writer_open(dir, &opt, err, sizeof err);
    check(w != NULL && realpath(dir, real_dir) != NULL, err);
    if (w == NULL) {
        return;
    }
    n_events = 0;
    int32_t                tokens[2] = {1, 2};
    struct llorch_ckpt_run run = {
        .producer = "test", .architecture = "llama", .n_layer = 2, .tokens = tokens, .n_tokens = 2};
    for (int layer = 0; layer < 2; layer++) {
        struct llorch_ckpt_tensor t = tensor(LLORCH_CKPT_FFN_OUT, layer, 0);
        check(llorch_ckpt_writer_write(w, &t) == 0, llorch_ckpt_writer_error(w));
    }
    check(llorch_ckpt_writer_set_run(w, &run) == 0 && llorch_ckpt_writer_finish(w, true, "ok") == 0,
          llorch_ckpt_writer_error(w));
    llorch_ckpt_writer_free(w);

    snprintf(path, sizeof path, "%s/manifest.json", real_dir);
    int manifest = find_event("rename", path);
    check(manifest >= 0, "manifest.json was not renamed into place");
    int manifest_sync = find_event("sync", path);
    /* the manifest's data is synced while it is still manifest.json.part */
    snprintf(path, sizeof path, "%s/manifest.json.part", real_dir);
    manifest_sync = manifest_sync >= 0 ? manifest_sync : find_event("sync", path);
    check(manifest_sync >= 0 && manifest_sync < manifest, "manifest.json is not synced before its rename");
    const char *data[3] = {"tokens.npy", NULL, NULL};
    if (form == LLORCH_CKPT_FORM_NPY) {
        data[1] = "checkpoint_06_ffn_out_l00_s000.npy";
        data[2] = "checkpoint_06_ffn_out_l01_s000.npy";
    } else {
        data[1] = form == LLORCH_CKPT_FORM_NPZ ? "checkpoints.npz.part" : "checkpoints.safetensors.part";
    }
    for (int i = 0; i < 3 && data[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s/%s", real_dir, data[i]);
        int  at = find_event("sync", path);
        char what[1300];
        snprintf(what, sizeof what, "%s form: %s is not synced before the manifest's rename",
                 llorch_ckpt_form_name(form), data[i]);
        check(at >= 0 && at < manifest, what);
    }
    int dir_sync = find_event("sync", real_dir);
    check(dir_sync >= 0 && dir_sync < manifest, "the directory is not synced before the manifest's rename");
    printf("%s form: %d fsync/rename calls recorded; data, directory and manifest synced before the rename\n",
           llorch_ckpt_form_name(form), n_events);
}

/* Two llama.cpp names that sanitise to one file name get two files, and
 * the dump opens: "a b" and "a_b" both become graph_a_b_s000.npy. */
static void test_name_collision(const char *work) {
    char dir[1024], err[512];
    snprintf(dir, sizeof dir, "%s/collide", work);
    llorch_ckpt_writer *w = llorch_ckpt_writer_open(dir, NULL, err, sizeof err);
    check(w != NULL, err);
    if (w == NULL) {
        return;
    }
    static const float        other[6] = {-1, -2, -3, -4, -5, -6};
    struct llorch_ckpt_tensor a = tensor(LLORCH_CKPT_GRAPH, -1, 0), b = a;
    a.graph_name = "a b";
    b.graph_name = "a_b";
    b.data = other;
    int32_t                tokens[2] = {1, 2};
    struct llorch_ckpt_run run = {
        .producer = "test", .architecture = "llama", .n_layer = 1, .tokens = tokens, .n_tokens = 2};
    check(llorch_ckpt_writer_write(w, &a) == 0 && llorch_ckpt_writer_write(w, &b) == 0 &&
              llorch_ckpt_writer_set_run(w, &run) == 0 && llorch_ckpt_writer_finish(w, true, "ok") == 0,
          llorch_ckpt_writer_error(w));
    llorch_ckpt_writer_free(w);
    char        first[1200], second[1200];
    struct stat st;
    snprintf(first, sizeof first, "%s/graph_a_b_s000.npy", dir);
    snprintf(second, sizeof second, "%s/graph_a_b~2_s000.npy", dir);
    check(stat(first, &st) == 0 && stat(second, &st) == 0, "the second name did not get a file of its own");
    printf("two graph names that sanitise alike: graph_a_b_s000.npy and graph_a_b~2_s000.npy\n");
}

/* The manifest lists steps in order, so the writer takes them in order. */
static void test_step_order(const char *work) {
    char dir[1024], err[512];
    snprintf(dir, sizeof dir, "%s/order", work);
    llorch_ckpt_writer *w = llorch_ckpt_writer_open(dir, NULL, err, sizeof err);
    check(w != NULL, err);
    if (w == NULL) {
        return;
    }
    struct llorch_ckpt_tensor late = tensor(LLORCH_CKPT_ATTN_NORM, 0, 1), early = tensor(LLORCH_CKPT_FFN_OUT, 0, 0);
    check(llorch_ckpt_writer_write(w, &late) == 0, llorch_ckpt_writer_error(w));
    check(llorch_ckpt_writer_write(w, &early) != 0, "step 0 after step 1 was accepted");
    check(strstr(llorch_ckpt_writer_error(w), "step 0 written after step 1") != NULL, llorch_ckpt_writer_error(w));
    printf("a step written out of order is refused: %s\n", llorch_ckpt_writer_error(w));
    llorch_ckpt_writer_free(w);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_write_regressions WORKDIR\n");
        return 2;
    }
    test_stale_errno(argv[1]);
    test_step_order(argv[1]);
    test_name_collision(argv[1]);
    test_durability(argv[1], LLORCH_CKPT_FORM_NPY);
    test_durability(argv[1], LLORCH_CKPT_FORM_NPZ);
    test_durability(argv[1], LLORCH_CKPT_FORM_SAFETENSORS);
    return failures != 0;
}

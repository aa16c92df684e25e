/* write.c - the writer: one .npy (and optionally .txt) file per tensor, each
 * written as NAME.part and renamed when whole; or every tensor as a member
 * of one container file (.npz or safetensors, written as NAME.part and
 * renamed when finished); then the manifest.
 * Used by the extractor's writer thread and by engines directly. */
#define _POSIX_C_SOURCE 200809L
#include "llorch_checkpoint.h"

#include "checksum.h"
#include "write_containers.h"
#include "manifest.h"
#include "npy.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct llorch_ckpt_writer {
    char  *dir;
    bool   text;
    enum llorch_ckpt_form form;
    char   container[64];           /* its file name, in a container form */
    char   container_part[4200];    /* its path while being written */
    llorch_npz_writer *npz;
    llorch_st_writer  *st;
    cJSON *run;        /* from llorch_ckpt_writer_set_run */
    cJSON *files;      /* manifest entries, in write order */
    cJSON *missing;
    size_t bytes;      /* data bytes written (headers not counted) */
    size_t n_files;
    char   error[1024];
};

static int fail(llorch_ckpt_writer *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* --- the output directory ------------------------------------------------ */

static int make_dirs(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int) sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return (mkdir(buf, 0777) != 0 && errno != EEXIST) ? -1 : 0;
}

static bool dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool empty = true;
    for (struct dirent *e = readdir(d); e != NULL && empty; e = readdir(d)) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

static int prepare_dir(const char *dir, bool allow_nonempty, char *err, size_t err_size) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, err_size, "output '%s' exists and is not a directory; choose a new directory", dir);
            return -1;
        }
        if (!allow_nonempty && !dir_is_empty(dir)) {
            snprintf(err, err_size, "output directory '%s' is not empty; choose a new directory or empty it", dir);
            return -1;
        }
    } else if (make_dirs(dir) != 0) {
        snprintf(err, err_size, "cannot create output directory '%s': %s; choose a writable location", dir,
                 strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, err_size, "output directory '%s' is not writable; choose a writable location", dir);
        return -1;
    }
    return 0;
}

const char *llorch_ckpt_form_name(enum llorch_ckpt_form form) {
    switch (form) {
        case LLORCH_CKPT_FORM_NPY: return "npy";
        case LLORCH_CKPT_FORM_NPZ: return "npz";
        case LLORCH_CKPT_FORM_SAFETENSORS: return "safetensors";
    }
    return NULL;
}

int llorch_ckpt_form_from_name(const char *name) {
    for (int f = LLORCH_CKPT_FORM_NPY; f <= LLORCH_CKPT_FORM_SAFETENSORS; f++) {
        if (name != NULL && strcmp(name, llorch_ckpt_form_name((enum llorch_ckpt_form) f)) == 0) {
            return f;
        }
    }
    return -1;
}

/* A container form: its file is created now, as NAME.part. */
static int open_container(llorch_ckpt_writer *w, char *err, size_t err_size) {
    if (w->form == LLORCH_CKPT_FORM_NPY) {
        return 0;
    }
    snprintf(w->container, sizeof w->container, "checkpoints.%s", llorch_ckpt_form_name(w->form));
    snprintf(w->container_part, sizeof w->container_part, "%s/%s.part", w->dir, w->container);
    if (w->form == LLORCH_CKPT_FORM_NPZ) {
        w->npz = llorch_npz_writer_create(w->container_part, err, err_size);
        return w->npz != NULL ? 0 : -1;
    }
    w->st = llorch_st_writer_create(w->container_part, err, err_size);
    return w->st != NULL ? 0 : -1;
}

llorch_ckpt_writer *llorch_ckpt_writer_open(const char *dir, const struct llorch_ckpt_writer_options *opt,
                                            char *err, size_t err_size) {
    struct llorch_ckpt_writer_options none = {0};
    opt = opt != NULL ? opt : &none;
    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, err_size, "no output directory given");
        return NULL;
    }
    if (llorch_ckpt_form_name(opt->form) == NULL) {
        snprintf(err, err_size, "unknown dump form %d; use npy, npz or safetensors", (int) opt->form);
        return NULL;
    }
    if (opt->text && opt->form != LLORCH_CKPT_FORM_NPY) {
        snprintf(err, err_size, "text files (--text) come with the npy form only; use --format npy");
        return NULL;
    }
    if (prepare_dir(dir, opt->allow_nonempty, err, err_size) != 0) {
        return NULL;
    }
    llorch_ckpt_writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->dir = strdup(dir)) == NULL) {
        free(w);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    w->text = opt->text;
    w->form = opt->form;
    w->files = cJSON_CreateArray();
    w->missing = cJSON_CreateArray();
    if (open_container(w, err, err_size) != 0) {
        llorch_ckpt_writer_free(w);
        return NULL;
    }
    return w;
}

/* --- one file ------------------------------------------------------------ */

static size_t element_count(const struct llorch_ckpt_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        n *= (size_t) t->shape[i];
    }
    return n;
}

static int write_value_text(FILE *f, enum llorch_ckpt_dtype dtype, const void *data, size_t i) {
    switch (dtype) {
        case LLORCH_CKPT_DTYPE_F32: {
            float v;
            memcpy(&v, (const char *) data + 4 * i, 4);
            return fprintf(f, "%.9g\n", (double) v);
        }
        case LLORCH_CKPT_DTYPE_F16: {
            uint16_t h;
            memcpy(&h, (const char *) data + 2 * i, 2);
            return fprintf(f, "%.9g\n", (double) llorch_half_to_float(h));
        }
        case LLORCH_CKPT_DTYPE_I32: {
            int32_t v;
            memcpy(&v, (const char *) data + 4 * i, 4);
            return fprintf(f, "%d\n", v);
        }
    }
    return -1;
}

/* Writes dir/name via dir/name.part. body() writes the content. */
static int write_file(llorch_ckpt_writer *w, const char *name, const struct llorch_ckpt_tensor *t, bool text) {
    char path[4096], part[4200];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    snprintf(part, sizeof part, "%s.part", path);
    FILE *f = fopen(part, "wb");
    if (f == NULL) {
        return fail(w, "cannot create %s: %s; check the output directory", part, strerror(errno));
    }
    size_t n = element_count(t);
    bool ok = true;
    if (text) {
        for (size_t i = 0; i < n && ok; i++) {
            ok = write_value_text(f, t->dtype, t->data, i) > 0;
        }
    } else {
        char header[512];
        size_t header_size = llorch_npy_header(header, sizeof header, t->dtype, t->n_dims, t->shape);
        size_t data_size = n * llorch_npy_dtype_size(t->dtype);
        ok = header_size > 0 && fwrite(header, 1, header_size, f) == header_size &&
             fwrite(t->data, 1, data_size, f) == data_size;
    }
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(part, path) != 0) {
        if (errno == 0) {
            errno = saved;
        }
        int e = errno;
        remove(part);
        return fail(w, "writing %s failed: %s; free space or choose another output directory", path, strerror(e));
    }
    return 0;
}

static int check_tensor(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t) {
    if (llorch_ckpt_kind_info(t->kind) == NULL || t->n_dims < 1 || t->n_dims > 4 || t->data == NULL ||
        llorch_npy_descr(t->dtype) == NULL) {
        return fail(w, "invalid tensor description (kind %d, %d dims)", (int) t->kind, t->n_dims);
    }
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] < 0) {
            return fail(w, "invalid tensor shape: dimension %d is %lld", i, (long long) t->shape[i]);
        }
    }
    return 0;
}

/* A container member: the .npy file itself (npz) or the raw data
 * (safetensors). *offset receives the data's offset in the container
 * (for safetensors, the tensor's index until finish). */
static int write_member(llorch_ckpt_writer *w, const char *name, const struct llorch_ckpt_tensor *t,
                        size_t bytes, uint64_t *offset) {
    if (w->npz != NULL) {
        char header[512];
        size_t header_size = llorch_npy_header(header, sizeof header, t->dtype, t->n_dims, t->shape);
        if (header_size == 0) {
            return fail(w, "cannot format the .npy header of %s", name);
        }
        return llorch_npz_writer_add(w->npz, name, header, header_size, t->data, bytes, offset, w->error,
                                     sizeof w->error);
    }
    char key[256];
    size_t index;
    snprintf(key, sizeof key, "%.*s", (int) strlen(name) - 4, name);     /* without ".npy" */
    int rc = llorch_st_writer_add(w->st, key, t->dtype, t->n_dims, t->shape, t->data, bytes, &index, w->error,
                                  sizeof w->error);
    *offset = index;     /* the file offset is known at finish (set_st_offsets) */
    return rc;
}

/* The manifest entry's file is the member's name: the zip member
 * "X.npy" (np.load's key "X"), or the safetensors tensor "X". */
static cJSON *member_entry(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t, const char *name,
                           uint32_t crc, size_t bytes, uint64_t offset) {
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int) strlen(name) - 4, name);
    cJSON *e = llorch_manifest_file_entry(t, w->npz != NULL ? name : key, NULL, crc, bytes);
    cJSON_AddStringToObject(e, "key", key);
    cJSON_AddNumberToObject(e, "offset", (double) offset);
    return e;
}

int llorch_ckpt_writer_write(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t) {
    if (check_tensor(w, t) != 0) {
        return -1;
    }
    char name[256], text_name[256];
    if (llorch_ckpt_file_name(name, sizeof name, t->kind, t->layer, t->step, t->graph_name, "npy") < 0 ||
        llorch_ckpt_file_name(text_name, sizeof text_name, t->kind, t->layer, t->step, t->graph_name, "txt") < 0) {
        return fail(w, "file name too long for tensor %s", t->graph_name != NULL ? t->graph_name : "?");
    }
    size_t bytes = element_count(t) * llorch_npy_dtype_size(t->dtype);
    uint32_t crc = llorch_crc32(t->data, bytes);
    cJSON *entry;
    if (w->form == LLORCH_CKPT_FORM_NPY) {
        if (write_file(w, name, t, false) != 0 || (w->text && write_file(w, text_name, t, true) != 0)) {
            return -1;
        }
        entry = llorch_manifest_file_entry(t, name, w->text ? text_name : NULL, crc, bytes);
    } else {
        uint64_t offset;
        if (write_member(w, name, t, bytes, &offset) != 0) {
            return -1;
        }
        entry = member_entry(w, t, name, crc, bytes, offset);
    }
    cJSON_AddItemToArray(w->files, entry);
    w->bytes += bytes;
    w->n_files++;
    return 0;
}

/* --- the run and the manifest -------------------------------------------- */

static int write_tokens(llorch_ckpt_writer *w, const int32_t *tokens, int n_tokens) {
    int32_t none = 0;
    struct llorch_ckpt_tensor t = {
        .kind = LLORCH_CKPT_GRAPH, .n_dims = 1, .shape = {n_tokens},
        .dtype = LLORCH_CKPT_DTYPE_I32, .data = n_tokens > 0 ? (const void *) tokens : (const void *) &none,
    };
    return write_file(w, "tokens.npy", &t, false);
}

int llorch_ckpt_writer_set_run(llorch_ckpt_writer *w, const struct llorch_ckpt_run *run) {
    cJSON *r = llorch_manifest_run(run, w->error, sizeof w->error);
    if (r == NULL) {
        return -1;
    }
    cJSON_Delete(w->run);
    w->run = r;
    return write_tokens(w, run->tokens, run->n_tokens);
}

int llorch_ckpt_writer_note_missing(llorch_ckpt_writer *w, enum llorch_ckpt_kind kind, int layer, const char *reason) {
    if (llorch_ckpt_kind_info(kind) == NULL) {
        return fail(w, "invalid checkpoint kind %d", (int) kind);
    }
    cJSON_AddItemToArray(w->missing, llorch_manifest_missing_entry(kind, layer, reason));
    return 0;
}

/* Safetensors offsets are known once the header is written. */
static void set_st_offsets(llorch_ckpt_writer *w) {
    cJSON *e;
    cJSON_ArrayForEach(e, w->files) {
        cJSON *offset = cJSON_GetObjectItemCaseSensitive(e, "offset");
        cJSON_SetNumberValue(offset, (double) llorch_st_writer_offset(w->st, (size_t) offset->valuedouble));
    }
}

/* Completes the container and gives it its name: from here on it is whole. */
static int finish_container(llorch_ckpt_writer *w) {
    int rc = w->npz != NULL ? llorch_npz_writer_finish(w->npz, w->error, sizeof w->error)
                            : llorch_st_writer_finish(w->st, w->error, sizeof w->error);
    if (rc != 0) {
        return -1;
    }
    if (w->st != NULL) {
        set_st_offsets(w);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", w->dir, w->container);
    if (rename(w->container_part, path) != 0) {
        return fail(w, "cannot rename %s to %s: %s; check the output directory", w->container_part, path,
                    strerror(errno));
    }
    return 0;
}

int llorch_ckpt_writer_finish(llorch_ckpt_writer *w, bool complete, const char *status) {
    const char *container = w->form == LLORCH_CKPT_FORM_NPY ? NULL : w->container;
    if (container != NULL && finish_container(w) != 0) {
        return -1;
    }
    struct llorch_manifest_container c = {.form = llorch_ckpt_form_name(w->form), .file = container};
    return llorch_manifest_write(w->dir, w->run, w->files, w->missing, container != NULL ? &c : NULL, complete,
                                 status, w->error, sizeof w->error);
}

const char *llorch_ckpt_writer_error(const llorch_ckpt_writer *w) { return w->error; }
size_t llorch_ckpt_writer_bytes(const llorch_ckpt_writer *w) { return w->bytes; }
size_t llorch_ckpt_writer_files(const llorch_ckpt_writer *w) { return w->n_files; }

void llorch_ckpt_writer_free(llorch_ckpt_writer *w) {
    if (w == NULL) {
        return;
    }
    llorch_npz_writer_free(w->npz);
    llorch_st_writer_free(w->st);
    cJSON_Delete(w->run);
    cJSON_Delete(w->files);
    cJSON_Delete(w->missing);
    free(w->dir);
    free(w);
}

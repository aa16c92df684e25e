/* write.c - the writer: every tensor of a dump, as one .npy file each
 * (write_npy.c) or as a member of one container (write_npz.c,
 * write_safetensors.c); then, once every byte is on disk, the manifest
 * (manifest.c), whose presence says that the dump is whole.
 * Used by the extractor's writer thread and by engines directly. */
#define _POSIX_C_SOURCE 200809L
#include "llorch_checkpoint.h"

#include "atomic_file.h"
#include "checksum.h"
#include "manifest.h"
#include "name_set.h"
#include "npy.h"
#include "util.h"
#include "write_containers.h"
#include "write_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct llorch_ckpt_writer {
    char                  *dir;
    bool                   text;
    bool                   sync; /* fsync before the manifest */
    enum llorch_ckpt_form  form;
    char                   container[64];        /* its file name, in a container form */
    char                   container_part[4200]; /* its path while being written */
    llorch_npz_writer     *npz;
    llorch_st_writer      *st;
    struct llorch_name_set names; /* the file (or member) names used so far */
    cJSON                 *run;   /* from llorch_ckpt_writer_set_run */
    cJSON                 *files; /* manifest entries, in write order */
    cJSON                 *missing;
    int                    last_step; /* of the last tensor written: steps come in order */
    int                    in_seq;    /* -1 before the first tensor, then whether the dump is per sequence */
    bool                   sequences; /* the run has several sequences: format version 3 */
    size_t                 bytes;     /* data bytes written (headers not counted) */
    size_t                 n_files;
    bool                   made_dir;        /* the directory did not exist before */
    bool                   container_named; /* the container has its final name */
    bool                   tokens_written;  /* tokens.npy was (or may have been) written */
    bool                   finished;        /* the manifest is written: the dump is whole */
    char                   error[1024];
};

/* Sets the writer's error message; returns -1. */
static int writer_error(llorch_ckpt_writer *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *llorch_ckpt_writer_error(const llorch_ckpt_writer *w) {
    return w->error;
}

/* Indexed by enum llorch_ckpt_form. */
static const char *const form_names[] = {"npy", "npz", "safetensors"};

const char *llorch_ckpt_form_name(enum llorch_ckpt_form form) {
    return llorch_enum_name(form_names, 3, (int) form, NULL);
}

int llorch_ckpt_form_from_name(const char *name) {
    return llorch_enum_value(form_names, 3, name);
}

/* --- opening ---------------------------------------------------------------- */

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

static int check_options(const char *dir, const struct llorch_ckpt_writer_options *opt, char *err, size_t err_size) {
    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, err_size, "no output directory given");
        return -1;
    }
    if (llorch_ckpt_form_name(opt->form) == NULL) {
        snprintf(err, err_size, "unknown dump form %d; use npy, npz or safetensors", (int) opt->form);
        return -1;
    }
    if (opt->text && opt->form != LLORCH_CKPT_FORM_NPY) {
        snprintf(err, err_size, "text files (--text) come with the npy form only; use --format npy");
        return -1;
    }
    return 0;
}

llorch_ckpt_writer *llorch_ckpt_writer_open(const char *dir, const struct llorch_ckpt_writer_options *opt, char *err,
                                            size_t err_size) {
    struct llorch_ckpt_writer_options none = {0};
    opt = opt != NULL ? opt : &none;
    struct stat st;
    bool        existed = dir != NULL && stat(dir, &st) == 0;
    if (check_options(dir, opt, err, err_size) != 0 ||
        llorch_write_prepare_dir(dir, opt->allow_nonempty, err, err_size) != 0) {
        return NULL;
    }
    llorch_ckpt_writer *w = calloc(1, sizeof *w);
    if (w != NULL) {
        w->dir = strdup(dir);
    }
    if (w == NULL || w->dir == NULL) {
        free(w);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    w->made_dir = !existed;
    w->text = opt->text;
    w->sync = !opt->no_sync;
    w->form = opt->form;
    w->files = cJSON_CreateArray();
    w->missing = cJSON_CreateArray();
    w->in_seq = -1;
    if (open_container(w, err, err_size) != 0) {
        llorch_ckpt_writer_free(w);
        return NULL;
    }
    return w;
}

/* --- tensors ------------------------------------------------------------------ */

/* Names in a comma-separated list of axes. */
static int count_axes(const char *axes) {
    int n = axes[0] != '\0';
    for (const char *p = axes; *p != '\0'; p++) {
        n += *p == ',';
    }
    return n;
}

static int check_tensor(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t) {
    if (llorch_ckpt_kind_info(t->kind) == NULL || t->n_dims < 1 || t->n_dims > 4 || t->data == NULL ||
        llorch_dtype_descr(t->dtype) == NULL) {
        return writer_error(w, "invalid tensor description (kind %d, %d dims)", (int) t->kind, t->n_dims);
    }
    const char *axes = t->axes != NULL ? t->axes : llorch_ckpt_kind_info(t->kind)->axes;
    if (count_axes(axes) != t->n_dims && !(t->axes == NULL && t->kind == LLORCH_CKPT_GRAPH)) {
        return writer_error(w, "tensor %s: %d axis names ('%s') for %d dimensions; give one name per dimension",
                            llorch_ckpt_kind_info(t->kind)->name, count_axes(axes), axes, t->n_dims);
    }
    if (w->in_seq >= 0 && w->in_seq != (int) t->in_seq) {
        return writer_error(w, "tensor %s: a dump holds one sequence or per-sequence tensors (in_seq), not both",
                            llorch_ckpt_kind_info(t->kind)->name);
    }
    if (t->in_seq && t->seq < 0) {
        return writer_error(w, "tensor %s: sequence id %d; give the llama_seq_id (0 or more)",
                            llorch_ckpt_kind_info(t->kind)->name, (int) t->seq);
    }
    for (int i = 1; t->positions != NULL && i < t->n_pos; i++) {
        if (t->positions[i] <= t->positions[i - 1] || t->positions[0] < t->pos_start) {
            return writer_error(w, "tensor %s: positions must ascend from pos_start",
                                llorch_ckpt_kind_info(t->kind)->name);
        }
    }
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] < 0) {
            return writer_error(w, "invalid tensor shape: dimension %d is %lld", i, (long long) t->shape[i]);
        }
    }
    return 0;
}

/* The tensor's file name, unique in the dump. Two llama.cpp names can
 * become one file name (every character but [A-Za-z0-9_-] is replaced):
 * the second gets "~2" after its name, the third "~3", ... A checkpoint
 * written twice for the same layer and step is the caller's error. */
static int unique_name(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t, char *name, size_t size) {
    if (llorch_ckpt_file_name(name, size, t->kind, t->layer, t->in_seq ? t->seq : -1, t->step, t->graph_name, "npy") <
        0) {
        return writer_error(w, "file name too long for tensor %s", t->graph_name != NULL ? t->graph_name : "?");
    }
    if (llorch_name_set_has(&w->names, name) && t->kind != LLORCH_CKPT_GRAPH) {
        return writer_error(w, "%s: this checkpoint of layer %d, step %d was already written", name, t->layer, t->step);
    }
    char base[256];
    snprintf(base, sizeof base, "%s", name);
    const char *step = strrchr(base, '_'); /* "_sSSS.npy" */
    for (int k = 2; llorch_name_set_has(&w->names, name); k++) {
        /* '~' is never in a sanitised name: a tagged name cannot meet another */
        snprintf(name, size, "%.*s~%d%s", (int) (step - base), base, k, step);
    }
    if (llorch_name_set_add(&w->names, name) != 0) {
        return writer_error(w, "out of memory");
    }
    return 0;
}

/* A container member: the .npy file itself (npz) or the raw data
 * (safetensors). *offset receives the data's offset in the container
 * (for safetensors, the tensor's index until finish). */
static int write_member(llorch_ckpt_writer *w, const char *name, const struct llorch_ckpt_tensor *t, size_t bytes,
                        uint64_t *offset) {
    if (w->npz != NULL) {
        char   header[512];
        size_t header_size = llorch_npy_header(header, sizeof header, t->dtype, t->n_dims, t->shape);
        if (header_size == 0) {
            return writer_error(w, "cannot format the .npy header of %s", name);
        }
        return llorch_npz_writer_add(w->npz, name, header, header_size, t->data, bytes, offset, w->error,
                                     sizeof w->error);
    }
    char   key[256];
    size_t index;
    snprintf(key, sizeof key, "%.*s", (int) strlen(name) - 4, name); /* without ".npy" */
    int rc = llorch_st_writer_add(w->st, key, t->dtype, t->n_dims, t->shape, t->data, bytes, &index, w->error,
                                  sizeof w->error);
    *offset = index; /* the file offset is known at finish (set_st_offsets) */
    return rc;
}

/* The manifest entry's file is the member's name: the zip member
 * "X.npy" (np.load's key "X"), or the safetensors tensor "X". */
static cJSON *member_entry(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t, const char *name, uint32_t crc,
                           size_t bytes, uint64_t offset) {
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int) strlen(name) - 4, name);
    cJSON *e = llorch_manifest_file_entry(t, w->npz != NULL ? name : key, NULL, crc, bytes);
    cJSON_AddStringToObject(e, "key", key);
    cJSON_AddNumberToObject(e, "offset", (double) offset);
    return e;
}

/* The npy form: the .npy file and, with text, its .txt twin. */
static cJSON *write_files(llorch_ckpt_writer *w, const char *name, const struct llorch_ckpt_tensor *t, uint32_t crc,
                          size_t bytes) {
    char text_name[256];
    snprintf(text_name, sizeof text_name, "%.*s.txt", (int) strlen(name) - 4, name);
    if (llorch_write_npy_file(w->dir, name, t, false, w->error, sizeof w->error) != 0 ||
        (w->text && llorch_write_npy_file(w->dir, text_name, t, true, w->error, sizeof w->error) != 0)) {
        return NULL;
    }
    return llorch_manifest_file_entry(t, name, w->text ? text_name : NULL, crc, bytes);
}

int llorch_ckpt_writer_write(llorch_ckpt_writer *w, const struct llorch_ckpt_tensor *t) {
    char name[256];
    if (t->step < w->last_step) {
        return writer_error(w,
                            "step %d written after step %d: write the steps in order (the manifest lists "
                            "them in order, docs/FORMAT.md)",
                            t->step, w->last_step);
    }
    if (check_tensor(w, t) != 0 || unique_name(w, t, name, sizeof name) != 0) {
        return -1;
    }
    w->last_step = t->step;
    w->in_seq = t->in_seq;
    size_t   bytes = llorch_write_elements(t) * llorch_dtype_size(t->dtype);
    uint32_t crc = llorch_crc32(t->data, bytes);
    cJSON   *entry = NULL;
    if (w->form == LLORCH_CKPT_FORM_NPY) {
        entry = write_files(w, name, t, crc, bytes);
    } else {
        uint64_t offset;
        if (write_member(w, name, t, bytes, &offset) == 0) {
            entry = member_entry(w, t, name, crc, bytes, offset);
        }
    }
    if (entry == NULL) {
        return -1;
    }
    cJSON_AddItemToArray(w->files, entry);
    w->bytes += bytes;
    w->n_files++;
    return 0;
}

/* --- the run and the manifest ----------------------------------------------- */

static int write_tokens(llorch_ckpt_writer *w, const int32_t *tokens, int n_tokens) {
    int32_t                   none = 0;
    struct llorch_ckpt_tensor t = {
        .kind = LLORCH_CKPT_GRAPH,
        .n_dims = 1,
        .shape = {n_tokens},
        .dtype = LLORCH_CKPT_DTYPE_I32,
        .data = n_tokens > 0 ? (const void *) tokens : (const void *) &none,
    };
    w->tokens_written = true;
    return llorch_write_npy_file(w->dir, "tokens.npy", &t, false, w->error, sizeof w->error);
}

int llorch_ckpt_writer_set_run(llorch_ckpt_writer *w, const struct llorch_ckpt_run *run) {
    cJSON *r = llorch_manifest_run(run, w->error, sizeof w->error);
    if (r == NULL) {
        return -1;
    }
    cJSON_Delete(w->run);
    w->run = r;
    w->sequences = run->n_sequences > 0;
    return write_tokens(w, run->tokens, run->n_tokens);
}

int llorch_ckpt_writer_note_missing(llorch_ckpt_writer *w, enum llorch_ckpt_kind kind, int layer, const char *reason) {
    if (llorch_ckpt_kind_info(kind) == NULL) {
        return writer_error(w, "invalid checkpoint kind %d", (int) kind);
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
    int rc = w->npz != NULL ? llorch_npz_writer_finish(w->npz, w->sync, w->error, sizeof w->error)
                            : llorch_st_writer_finish(w->st, w->sync, w->error, sizeof w->error);
    if (rc != 0) {
        return -1;
    }
    if (w->st != NULL) {
        set_st_offsets(w);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", w->dir, w->container);
    if (rename(w->container_part, path) != 0) {
        return writer_error(w, "cannot rename %s to %s: %s; check the output directory", w->container_part, path,
                            strerror(errno));
    }
    w->container_named = true;
    return 0;
}

/* Every file the manifest will name is on disk before it is: the npy
 * form's files one by one (a container was synced as it was closed), the
 * token ids, then the directory that names them. */
static int sync_files(llorch_ckpt_writer *w) {
    char         path[4200];
    const cJSON *e;
    const cJSON *files = w->form == LLORCH_CKPT_FORM_NPY ? w->files : NULL;
    cJSON_ArrayForEach(e, files) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "text_file");
        snprintf(path, sizeof path, "%s/%s", w->dir, file->valuestring);
        if (llorch_sync_path(path, w->error, sizeof w->error) != 0) {
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s", w->dir, cJSON_IsString(text) ? text->valuestring : "");
        if (cJSON_IsString(text) && llorch_sync_path(path, w->error, sizeof w->error) != 0) {
            return -1;
        }
    }
    snprintf(path, sizeof path, "%s/tokens.npy", w->dir);
    return llorch_sync_path(path, w->error, sizeof w->error) != 0 ||
                   llorch_sync_path(w->dir, w->error, sizeof w->error) != 0
               ? -1
               : 0;
}

int llorch_ckpt_writer_finish(llorch_ckpt_writer *w, bool complete, const char *status) {
    const char *container = w->form == LLORCH_CKPT_FORM_NPY ? NULL : w->container;
    if ((container != NULL && finish_container(w) != 0) || (w->sync && sync_files(w) != 0)) {
        return -1;
    }
    struct llorch_manifest_container c = {.form = llorch_ckpt_form_name(w->form), .file = container};
    if (llorch_manifest_write(w->dir, w->run, w->files, w->missing, container != NULL ? &c : NULL,
                              w->in_seq == 1 || w->sequences, complete, status, w->sync, w->error,
                              sizeof w->error) != 0) {
        return -1;
    }
    w->finished = true;
    return w->sync ? llorch_sync_path(w->dir, w->error, sizeof w->error) : 0;
}

size_t llorch_ckpt_writer_bytes(const llorch_ckpt_writer *w) {
    return w->bytes;
}

size_t llorch_ckpt_writer_files(const llorch_ckpt_writer *w) {
    return w->n_files;
}

/* A writer freed before its manifest was written (a full disk, a failed
 * run) leaves no dump: it removes every file it wrote (a container's .part
 * goes with its writer), and the directory if it made it, so that the
 * same command can run again into the same directory. */
static void remove_written(const llorch_ckpt_writer *w) {
    char path[4200];
    for (size_t i = 0; w->form == LLORCH_CKPT_FORM_NPY && i < w->names.n_slots; i++) {
        const char *name = w->names.slots[i];
        if (name != NULL) {
            snprintf(path, sizeof path, "%s/%s", w->dir, name);
            remove(path);
            snprintf(path, sizeof path, "%s/%.*s.txt", w->dir, (int) strlen(name) - 4, name);
            if (w->text) {
                remove(path);
            }
        }
    }
    if (w->container_named) {
        snprintf(path, sizeof path, "%s/%s", w->dir, w->container);
        remove(path);
    }
    snprintf(path, sizeof path, "%s/tokens.npy", w->dir);
    if (w->tokens_written) {
        remove(path);
    }
    if (w->made_dir) {
        rmdir(w->dir); /* only when empty: nothing of anyone else's goes */
    }
}

void llorch_ckpt_writer_free(llorch_ckpt_writer *w) {
    if (w == NULL) {
        return;
    }
    llorch_npz_writer_free(w->npz); /* first: an unfinished container's .part goes here */
    llorch_st_writer_free(w->st);
    w->npz = NULL;
    w->st = NULL;
    if (!w->finished) {
        remove_written(w);
    }
    llorch_name_set_free(&w->names);
    cJSON_Delete(w->run);
    cJSON_Delete(w->files);
    cJSON_Delete(w->missing);
    free(w->dir);
    free(w);
}

/*
 * read_internal.h - what the files of the reader share, private to
 * lib/read: the array and dump objects, the limits that more than one file
 * applies, and the helpers one file defines for the others:
 *
 *   read_object.c    the dump object's allocation and free (the bottom)
 *   read_file.c      plain names, paths for messages, opening and reading
 *                    a file inside the dump directory
 *   read_npy.c       the .npy parser and the llorch_ckpt_array_* API
 *   read_manifest.c  manifest.json into a dump object
 *   read_dump.c      the dump API: opening, token file, container, loading
 *   read_fields.c    the manifest's descriptive fields as flat text pairs
 *   read_container.c the members of a container form (read_container.h)
 *
 * Every byte they read comes from a file of unknown origin. The rules:
 *   - a name from a manifest is opened only if it is a plain file name, and
 *     only relative to the dump directory, without following symlinks;
 *   - nothing is allocated from a declared size: buffers are as large as the
 *     file (or the caller's buffer) and declared shapes must fit in them;
 *   - every field is checked (type, integrality, range) before use;
 *   - every failure is one line that names the file.
 */
#ifndef LLORCH_READ_INTERNAL_H
#define LLORCH_READ_INTERNAL_H

#include "llorch_compare.h"
#include "read_container.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define NPY_PREFIX_V1  10 /* magic, version, uint16 length */
#define NAME_MAX_BYTES 255

struct llorch_ckpt_array {
    enum llorch_ckpt_dtype dtype;
    int                    n_dims;
    int64_t                shape[LLORCH_CKPT_MAX_DIMS];
    int64_t                count;
    unsigned char         *buf;  /* owned: the whole file */
    const unsigned char   *data; /* into buf, after the header */
    size_t                 data_bytes;
};

/* A file supplied with llorch_ckpt_dump_add_file. */
struct mem_file {
    char          *name;
    unsigned char *buf;
    size_t         size;
};

struct llorch_ckpt_dump {
    char                             *dir;           /* NULL for a parsed manifest */
    char                             *name;          /* dir, or the name given     */
    char                             *manifest_name; /* for messages               */
    cJSON                            *root;          /* entries' strings live here */
    bool                              complete;
    const char                       *status;
    const char                       *producer;
    const char                       *tokens_file;
    const char                       *container_file; /* NULL for the npy form */
    enum llorch_container_form        container_form;
    llorch_container                 *container;    /* its index, once opened */
    int                               container_fd; /* -1 when none or in memory */
    struct llorch_ckpt_model          model;
    bool                              has_tokens;
    int32_t                          *tokens;
    size_t                            n_tokens;
    struct llorch_ckpt_entry         *entries;
    size_t                            n_entries;
    int                               version;
    struct llorch_ckpt_dump_sequence *sequences; /* version 3 */
    size_t                            n_sequences;
    struct mem_file                  *files;
    size_t                            n_files;
};

/* ---- read_file.c --------------------------------------------------------- */

/* Copies s into buf for a message, replacing what would break the one-line
 * rule; returns buf. */
const char *llorch_read_printable(const char *s, char *buf, size_t size);
/* dir/file for messages (file made printable). */
void llorch_read_join_path(char *buf, size_t size, const char *dir, const char *file);
/* Opens dir/file for reading: a plain name, a regular file, no symlink.
 * Returns the descriptor, or -1 with a message. */
int llorch_read_open_in_dir(const char *dir, const char *file, struct stat *st, char *err, size_t err_size);
/* Reads the whole of dir/file (at most max bytes) into a new buffer with a
 * terminating NUL that is not counted in *size. */
int llorch_read_file_in_dir(const char *dir, const char *file, size_t max, unsigned char **out, size_t *size, char *err,
                            size_t err_size);

/* ---- read_npy.c ---------------------------------------------------------- */

/* count = product of shape, bytes = count * item size; -1 on overflow. */
int llorch_read_shape_bytes(int n_dims, const int64_t *shape, enum llorch_ckpt_dtype dtype, int64_t *count,
                            int64_t *bytes);

/* ---- read_manifest.c ----------------------------------------------------- */

/* The dump a manifest describes, without its files. text must be
 * NUL-terminated at text[size]; name is the dump's name, manifest_name
 * the one messages give. */
/* read_object.c: an empty dump object named `name`; NULL (err set) when out
 * of memory. llorch_ckpt_dump_free frees it. */
llorch_ckpt_dump *llorch_read_dump_new(const char *name, const char *manifest_name, char *err, size_t err_size);

llorch_ckpt_dump *llorch_read_dump_from_text(const char *text, size_t size, const char *name, const char *manifest_name,
                                             char *err, size_t err_size);

#endif

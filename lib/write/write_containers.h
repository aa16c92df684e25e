/* write_containers.h - the single-file forms of a dump (docs/FORMAT.md,
 * "Containers"): numpy's .npz and safetensors, streamed into PATH (the
 * writer renames it when finished). */
#ifndef LLORCH_WRITE_CONTAINERS_H
#define LLORCH_WRITE_CONTAINERS_H

#include "llorch_checkpoint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- writing .npz (write_npz.c) ----------------------------------------- */

/* A zip archive of stored (uncompressed) .npy members, written as a
 * stream: each member's header is written with its CRC and sizes (no data
 * descriptors), zip64 fields only where a size or offset needs them. Every
 * member's data starts at a multiple of 64 bytes in the file. */
typedef struct llorch_npz_writer llorch_npz_writer;

llorch_npz_writer *llorch_npz_writer_create(const char *path, char *err, size_t err_size);
/* Appends member `name`: npy_header then data. *data_offset receives the
 * file offset of data. */
int llorch_npz_writer_add(llorch_npz_writer *z, const char *name, const void *npy_header, size_t header_size,
                          const void *data, size_t data_size, uint64_t *data_offset, char *err, size_t err_size);
/* Writes the central directory and closes the file (after an fsync when
 * sync is set). */
int llorch_npz_writer_finish(llorch_npz_writer *z, bool sync, char *err, size_t err_size);
/* Closes the file if still open; removes it unless finished. */
void llorch_npz_writer_free(llorch_npz_writer *z);

/* ---- writing safetensors (write_safetensors.c) -------------------------- */

/* The header comes first but is known only at the end: tensors stream into
 * PATH.data (4-byte types) and PATH.data2 (2-byte types), and finish
 * writes PATH as header + both, so that every tensor's data is aligned to
 * its element size, as the reference writer orders them. */
typedef struct llorch_st_writer llorch_st_writer;

llorch_st_writer *llorch_st_writer_create(const char *path, char *err, size_t err_size);
/* Appends a tensor; *index receives its number for llorch_st_writer_offset. */
int llorch_st_writer_add(llorch_st_writer *s, const char *name, enum llorch_ckpt_dtype dtype, int n_dims,
                         const int64_t *shape, const void *data, size_t data_size, size_t *index, char *err,
                         size_t err_size);
/* Writes PATH: the header (with metadata "format" and "format_version")
 * and the data (then an fsync when sync is set); removes the data files. */
int llorch_st_writer_finish(llorch_st_writer *s, bool sync, char *err, size_t err_size);
/* After finish: the file offset of tensor `index`'s data. */
uint64_t llorch_st_writer_offset(const llorch_st_writer *s, size_t index);
/* Removes whatever was written unless finished. */
void llorch_st_writer_free(llorch_st_writer *s);

#endif

/* manifest.h - builds manifest.json (docs/FORMAT.md). */
#ifndef LLORCH_MANIFEST_H
#define LLORCH_MANIFEST_H

#include "llorch_checkpoint.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The entry of one written file. */
cJSON *llorch_manifest_file_entry(const struct llorch_ckpt_tensor *t, const char *file, const char *text_file,
                                  uint32_t crc, size_t bytes);
cJSON *llorch_manifest_missing_entry(enum llorch_ckpt_kind kind, int layer, const char *reason);
/* The run part (producer, model, tokens, settings); NULL with err set on a
 * malformed settings/llama_cpp JSON string. */
cJSON *llorch_manifest_run(const struct llorch_ckpt_run *run, char *err, size_t err_size);
/* The container of a dump in a container form. */
struct llorch_manifest_container {
    const char *form; /* "npz", "safetensors" */
    const char *file; /* its file name in the dump directory */
};

/* Assembles the manifest and writes dir/manifest.json atomically (synced
 * to disk before its rename when sync is set). container is NULL for the
 * npy form; sequences: the files are per sequence (format version 3). */
int llorch_manifest_write(const char *dir, const cJSON *run, const cJSON *files, const cJSON *missing,
                          const struct llorch_manifest_container *container, bool sequences, bool complete,
                          const char *status, bool sync, char *err, size_t err_size);

#endif

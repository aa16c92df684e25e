/*
 * fuzz_manifest.c - libFuzzer target: the manifest reader on arbitrary
 * bytes (not NUL-terminated). A manifest that parses must give entries
 * whose fields hold what the format promises.
 */
#include "llorch_compare.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const llorch_ckpt_dump *d, size_t i) {
    const struct llorch_ckpt_entry *e = llorch_ckpt_dump_entry(d, i);
    char                            err[512];
    if (!e || !llorch_ckpt_safe_name(e->file) || !e->checkpoint[0] || e->n_dims < 0 ||
        e->n_dims > LLORCH_CKPT_MAX_DIMS || e->layer < -1 || e->pos_start < 0 || e->n_pos < 0) {
        abort();
    }
    for (int k = 0; k < e->n_dims; k++) {
        if (e->shape[k] < 0 || !e->axes[k] || !e->axes[k][0]) {
            abort();
        }
    }
    /* No files were supplied: both must fail cleanly, naming the file. */
    if (llorch_ckpt_dump_check_size(d, i, err, sizeof err) == 0 || !strstr(err, e->file)) {
        abort();
    }
    if (llorch_ckpt_dump_load(d, i, err, sizeof err) != NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char              err[512];
    llorch_ckpt_dump *d = llorch_ckpt_dump_parse((const char *) data, size, "fuzz", err, sizeof err);
    if (!d) {
        if (strncmp(err, "fuzz: ", 6) != 0) {
            abort(); /* every message names the file */
        }
        return 0;
    }
    const struct llorch_ckpt_model *m = llorch_ckpt_dump_model(d);
    if (m->n_layer < 0 || m->n_embd < 0) { /* architecture may be absent (NULL) */
        abort();
    }
    for (size_t i = 0; i < llorch_ckpt_dump_n_entries(d); i++) {
        check_entry(d, i);
    }
    llorch_ckpt_dump_free(d);
    return 0;
}

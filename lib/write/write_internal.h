/* write_internal.h - what write.c shares with write_npy.c and write_dir.c. */
#ifndef LLORCH_WRITE_INTERNAL_H
#define LLORCH_WRITE_INTERNAL_H

#include "llorch_checkpoint.h"

#include <stdbool.h>
#include <stddef.h>

/* Elements of a tensor's shape. */
size_t llorch_write_elements(const struct llorch_ckpt_tensor *t);

/* Writes dir/name (a .npy file, or with text one %.9g value per line) as
 * name.part renamed when whole. -1 with a message in err. */
int llorch_write_npy_file(const char *dir, const char *name, const struct llorch_ckpt_tensor *t, bool text, char *err,
                          size_t err_size);

/* Creates the output directory if needed and checks that it is usable:
 * a directory, empty unless allowed, writable. -1 with a message. */
int llorch_write_prepare_dir(const char *dir, bool allow_nonempty, char *err, size_t err_size);

#endif

/* read_container.h - indexes the container of a dump in a single-file
 * form (.npz or safetensors), held in a file or in memory, checking every
 * field before use. */
#ifndef LLORCH_READ_CONTAINER_H
#define LLORCH_READ_CONTAINER_H

#include "llorch_checkpoint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum llorch_container_form {
    LLORCH_CONTAINER_NPZ = 1,
    LLORCH_CONTAINER_SAFETENSORS = 2,
};

/* One member: for npz the stored .npy file, for safetensors the raw data
 * with the header's dtype and shape. */
struct llorch_container_member {
    const char            *name;
    uint64_t               offset; /* of the member's bytes in the container */
    uint64_t               size;
    bool                   typed;       /* safetensors: dtype and shape below are set */
    bool                   dtype_known; /* safetensors: F32, F16 or I32 */
    enum llorch_ckpt_dtype dtype;
    int                    n_dims;
    int64_t                shape[4];
};

typedef struct llorch_container llorch_container;

/* Indexes a container from a file descriptor (read with pread, not
 * closed) or from memory (buf, size; not copied, must outlive the index).
 * name is used in messages. */
llorch_container *llorch_container_open_fd(int fd, enum llorch_container_form form, const char *name, char *err,
                                           size_t err_size);
llorch_container *llorch_container_open_mem(const void *buf, size_t size, enum llorch_container_form form,
                                            const char *name, char *err, size_t err_size);
const struct llorch_container_member *llorch_container_find(const llorch_container *c, const char *name);
size_t                                llorch_container_n_members(const llorch_container *c);
const struct llorch_container_member *llorch_container_member(const llorch_container *c, size_t i);
/* Reads a member's bytes into a new buffer (free() it). */
int  llorch_container_read(const llorch_container *c, const struct llorch_container_member *m, unsigned char **out,
                           char *err, size_t err_size);
void llorch_container_free(llorch_container *c);

#endif

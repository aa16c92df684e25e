/* name_set.h - a set of strings (the file names of a dump), so that no
 * name is used twice. Open addressing, grown at half full. */
#ifndef LLORCH_NAME_SET_H
#define LLORCH_NAME_SET_H

#include <stdbool.h>
#include <stddef.h>

struct llorch_name_set {
    char **slots;
    size_t n_slots, n_names;
};

/* True if name is in the set. */
bool llorch_name_set_has(const struct llorch_name_set *s, const char *name);
/* Adds a copy of name; 0, or -1 when out of memory. */
int  llorch_name_set_add(struct llorch_name_set *s, const char *name);
void llorch_name_set_free(struct llorch_name_set *s);

#endif

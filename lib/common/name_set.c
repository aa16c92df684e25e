/* name_set.c - a set of strings (see name_set.h). */
#include "name_set.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211u;
    }
    return h;
}

/* The slot of name, or the empty slot where it would go. */
static size_t find(char *const *slots, size_t n_slots, const char *name) {
    size_t i = (size_t) (hash(name) & (n_slots - 1));
    while (slots[i] != NULL && strcmp(slots[i], name) != 0) {
        i = (i + 1) & (n_slots - 1);
    }
    return i;
}

bool llorch_name_set_has(const struct llorch_name_set *s, const char *name) {
    return s->n_slots > 0 && s->slots[find(s->slots, s->n_slots, name)] != NULL;
}

static int grow(struct llorch_name_set *s) {
    size_t n = s->n_slots > 0 ? s->n_slots * 2 : 256;
    char **slots = calloc(n, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        if (s->slots[i] != NULL) {
            slots[find(slots, n, s->slots[i])] = s->slots[i];
        }
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n;
    return 0;
}

int llorch_name_set_add(struct llorch_name_set *s, const char *name) {
    if ((s->n_names + 1) * 2 > s->n_slots && grow(s) != 0) {
        return -1;
    }
    size_t i = find(s->slots, s->n_slots, name);
    if (s->slots[i] == NULL) {
        s->slots[i] = llorch_strdup(name);
        if (s->slots[i] == NULL) {
            return -1;
        }
        s->n_names++;
    }
    return 0;
}

void llorch_name_set_free(struct llorch_name_set *s) {
    for (size_t i = 0; i < s->n_slots; i++) {
        free(s->slots[i]);
    }
    free(s->slots);
    s->slots = NULL;
    s->n_slots = s->n_names = 0;
}

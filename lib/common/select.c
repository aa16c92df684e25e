/* select.c - which checkpoints and layers the user asked for.
 *
 *   checkpoints: "1-6", "attn_norm,Qcur,4", "all", "extras", "default"
 *   layers:      "all", "0-3,11"
 */
#define _POSIX_C_SOURCE 200809L
#include "error.h"
#include "llorch_checkpoint.h"
#include "positions.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct layer_range {
    int first, last;
};

struct llorch_ckpt_selection {
    bool                          kinds[LLORCH_CKPT_KIND_COUNT];
    bool                          named[LLORCH_CKPT_KIND_COUNT]; /* asked for by name */
    struct layer_range           *ranges;                        /* NULL: all layers */
    int                           n_ranges;
    regex_t                      *regexes;
    int                           n_regexes;
    struct llorch_position_range *positions; /* NULL: every position */
    int                           n_positions;
};

static void select_number(llorch_ckpt_selection *sel, int number) {
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        bool                                pre_rope = k == LLORCH_CKPT_QCUR_PRE_ROPE || k == LLORCH_CKPT_KCUR_PRE_ROPE;
        if (info->number == number && !pre_rope) {
            sel->kinds[k] = true;
        }
    }
}

static void select_extras(llorch_ckpt_selection *sel) {
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info((enum llorch_ckpt_kind) k);
        bool                                pre_rope = k == LLORCH_CKPT_QCUR_PRE_ROPE || k == LLORCH_CKPT_KCUR_PRE_ROPE;
        if (info->number == 0 && k != LLORCH_CKPT_GRAPH && !pre_rope) {
            sel->kinds[k] = true;
        }
    }
}

/* "attn_norm, Qcur, ..." for messages. */
static void kind_names(char *buf, size_t size) {
    size_t used = 0;
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT && used < size; k++) {
        if (k != LLORCH_CKPT_GRAPH) {
            int n = snprintf(buf + used, size - used, "%s, ", llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->name);
            used += n > 0 ? (size_t) n : 0;
        }
    }
}

/* Parses "N" or "N-M" with 0 <= N <= M. Returns 0 on success. */
static int parse_range(const char *s, int *first, int *last) {
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    long b = a;
    if (end == s || !isdigit((unsigned char) s[0]) || errno != 0) {
        return -1;
    }
    if (*end == '-') {
        const char *t = end + 1;
        if (!isdigit((unsigned char) *t)) {
            return -1;
        }
        b = strtol(t, &end, 10);
        if (errno != 0) {
            return -1;
        }
    }
    if (*end != '\0' || a > b || b > INT_MAX) {
        return -1;
    }
    *first = (int) a;
    *last = (int) b;
    return 0;
}

static int add_checkpoint_item(llorch_ckpt_selection *sel, const char *item, char *err, size_t err_size) {
    int first, last;
    if (strcmp(item, "all") == 0) {
        for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
            sel->kinds[k] = k != LLORCH_CKPT_GRAPH;
        }
    } else if (strcmp(item, "default") == 0) {
        for (int n = 1; n <= 6; n++) {
            select_number(sel, n);
        }
    } else if (strcmp(item, "none") == 0) {
        /* nothing: only --graph-regex matches */
    } else if (strcmp(item, "extras") == 0) {
        select_extras(sel);
    } else if (isdigit((unsigned char) item[0])) {
        if (parse_range(item, &first, &last) != 0 || first < 1 || last > 6) {
            llorch_set_error(err, err_size, "checkpoint number '%s' is not in 1-6; use 1-6 or a name (see --help)",
                             item);
            return -1;
        }
        for (int n = first; n <= last; n++) {
            select_number(sel, n);
        }
    } else {
        int k = llorch_ckpt_kind_from_name(item);
        if (k < 0 || k == LLORCH_CKPT_GRAPH) {
            char names[512];
            kind_names(names, sizeof names);
            llorch_set_error(err, err_size, "unknown checkpoint '%s'; use 1-6, %sextras or all", item, names);
            return -1;
        }
        sel->kinds[k] = true;
        sel->named[k] = true;
    }
    return 0;
}

/* Calls add(sel, item) for each comma-separated item of list. */
static int for_each_item(llorch_ckpt_selection *sel, const char *list, const char *what,
                         int (*add)(llorch_ckpt_selection *, const char *, char *, size_t), char *err,
                         size_t err_size) {
    char *copy = strdup(list);
    if (copy == NULL) {
        llorch_set_error(err, err_size, "out of memory");
        return -1;
    }
    int   rc = 0;
    int   n_items = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item != NULL && rc == 0; item = strtok_r(NULL, ",", &save)) {
        rc = add(sel, item, err, err_size);
        n_items++;
    }
    if (rc == 0 && n_items == 0) {
        llorch_set_error(err, err_size, "empty %s list '%s'", what, list);
        rc = -1;
    }
    free(copy);
    return rc;
}

static int add_layer_item(llorch_ckpt_selection *sel, const char *item, char *err, size_t err_size) {
    int first, last;
    if (parse_range(item, &first, &last) != 0) {
        llorch_set_error(err, err_size, "bad layer range '%s'; use 'all' or ranges such as 0-3,11", item);
        return -1;
    }
    struct layer_range *grown = realloc(sel->ranges, (size_t) (sel->n_ranges + 1) * sizeof *grown);
    if (grown == NULL) {
        llorch_set_error(err, err_size, "out of memory");
        return -1;
    }
    sel->ranges = grown;
    sel->ranges[sel->n_ranges++] = (struct layer_range){first, last};
    return 0;
}

llorch_ckpt_selection *llorch_ckpt_selection_create(const char *checkpoints, const char *layers, char *err,
                                                    size_t err_size) {
    llorch_ckpt_selection *sel = calloc(1, sizeof *sel);
    if (sel == NULL) {
        llorch_set_error(err, err_size, "out of memory");
        return NULL;
    }
    if (for_each_item(sel, checkpoints != NULL ? checkpoints : "default", "checkpoint", add_checkpoint_item, err,
                      err_size) != 0 ||
        (layers != NULL && strcmp(layers, "all") != 0 &&
         for_each_item(sel, layers, "layer", add_layer_item, err, err_size) != 0)) {
        llorch_ckpt_selection_free(sel);
        return NULL;
    }
    return sel;
}

int llorch_ckpt_selection_add_regex(llorch_ckpt_selection *sel, const char *regex, char *err, size_t err_size) {
    regex_t *grown = realloc(sel->regexes, (size_t) (sel->n_regexes + 1) * sizeof *grown);
    if (grown == NULL) {
        llorch_set_error(err, err_size, "out of memory");
        return -1;
    }
    sel->regexes = grown;
    int rc = regcomp(&sel->regexes[sel->n_regexes], regex, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &sel->regexes[sel->n_regexes], why, sizeof why);
        llorch_set_error(err, err_size, "bad --graph-regex '%s': %s", regex, why);
        return -1;
    }
    sel->n_regexes++;
    sel->kinds[LLORCH_CKPT_GRAPH] = true;
    return 0;
}

int llorch_ckpt_selection_check(const llorch_ckpt_selection *sel, int n_layer, char *err, size_t err_size) {
    for (int i = 0; i < sel->n_ranges; i++) {
        if (sel->ranges[i].last >= n_layer) {
            llorch_set_error(err, err_size, "layer %d is out of range: the model has %d layers (0-%d)",
                             sel->ranges[i].last, n_layer, n_layer - 1);
            return -1;
        }
    }
    return 0;
}

static bool layer_selected(const llorch_ckpt_selection *sel, int layer) {
    if (sel->ranges == NULL) {
        return true;
    }
    for (int i = 0; i < sel->n_ranges; i++) {
        if (layer >= sel->ranges[i].first && layer <= sel->ranges[i].last) {
            return true;
        }
    }
    return false;
}

bool llorch_ckpt_selection_has(const llorch_ckpt_selection *sel, enum llorch_ckpt_kind kind, int layer) {
    const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info(kind);
    if (info == NULL || !sel->kinds[kind]) {
        return false;
    }
    return !info->per_layer || layer_selected(sel, layer);
}

bool llorch_ckpt_selection_named(const llorch_ckpt_selection *sel, enum llorch_ckpt_kind kind) {
    return (int) kind >= 0 && kind < LLORCH_CKPT_KIND_COUNT && sel->named[kind];
}

bool llorch_ckpt_selection_empty(const llorch_ckpt_selection *sel) {
    for (int k = 0; k < LLORCH_CKPT_KIND_COUNT; k++) {
        if (sel->kinds[k]) {
            return false;
        }
    }
    return true;
}

bool llorch_ckpt_selection_match_graph(const llorch_ckpt_selection *sel, const char *name) {
    for (int i = 0; i < sel->n_regexes; i++) {
        if (regexec(&sel->regexes[i], name, 0, NULL, 0) == 0) {
            return true;
        }
    }
    return false;
}

int llorch_ckpt_selection_set_positions(llorch_ckpt_selection *sel, const char *spec, int32_t n_tokens, char *err,
                                        size_t err_size) {
    struct llorch_position_range *ranges;
    int                           n;
    if (llorch_positions_parse(spec, n_tokens, &ranges, &n, err, err_size) != 0) {
        return -1;
    }
    free(sel->positions);
    sel->positions = ranges;
    sel->n_positions = n;
    return 0;
}

bool llorch_ckpt_selection_position(const llorch_ckpt_selection *sel, int32_t pos) {
    return sel->positions == NULL || llorch_positions_has(sel->positions, sel->n_positions, pos);
}

bool llorch_ckpt_selection_has_positions(const llorch_ckpt_selection *sel) {
    return sel->positions != NULL;
}

void llorch_ckpt_selection_free(llorch_ckpt_selection *sel) {
    if (sel == NULL) {
        return;
    }
    free(sel->positions);
    for (int i = 0; i < sel->n_regexes; i++) {
        regfree(&sel->regexes[i]);
    }
    free(sel->regexes);
    free(sel->ranges);
    free(sel);
}

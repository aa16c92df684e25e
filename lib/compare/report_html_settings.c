/*
 * report_html_settings.c - both dumps' settings side by side: every
 * descriptive field of the two manifests (producer, model, prompt,
 * settings, llama_cpp, an engine's own keys; llorch_ckpt_dump_fields), one
 * line per key, the reference's keys in their order and then the
 * candidate's others. Lines whose values differ, or that one dump lacks,
 * are highlighted: a KV cache type, flash attention or repacking that
 * differs explains many a divergence before any bug does.
 */
#include "report_internal.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct field {
    char *key, *value;
};

struct fields {
    struct field        *items;
    size_t               n, cap;
    const struct field **sorted; /* by key, then order: for lookups */
    bool                 out_of_memory;
};

static void take_field(void *ctx, const char *key, const char *value) {
    struct fields *l = ctx;
    if (l->out_of_memory || llorch_grow(&l->items, &l->cap, l->n + 1, sizeof *l->items, 32) != 0) {
        l->out_of_memory = true;
        return;
    }
    struct field fl = {llorch_strdup(key), llorch_strdup(value)};
    if (!fl.key || !fl.value) {
        free(fl.key);
        free(fl.value);
        l->out_of_memory = true;
        return;
    }
    l->items[l->n++] = fl;
}

static int field_compare(const void *pa, const void *pb) {
    const struct field *a = *(const struct field *const *) pa, *b = *(const struct field *const *) pb;
    int                 c = strcmp(a->key, b->key);
    return c ? c : (a > b) - (a < b); /* both in one array: its order */
}

/* The manifest's fields, after the dump's path as given on the command
 * line and its token count, which the manifest does not hold. */
static int collect(struct fields *l, const char *path, const llorch_ckpt_dump *d) {
    char tokens[32];
    memset(l, 0, sizeof *l);
    snprintf(tokens, sizeof tokens, "%zu", llorch_ckpt_dump_n_tokens(d));
    take_field(l, "dump", path);
    take_field(l, "tokens (count)", tokens);
    if (llorch_ckpt_dump_fields(d, take_field, l) < 0 || l->out_of_memory) {
        return -1;
    }
    l->sorted = malloc((l->n ? l->n : 1) * sizeof *l->sorted);
    if (!l->sorted) {
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        l->sorted[i] = &l->items[i];
    }
    llorch_sort(l->sorted, l->n, sizeof *l->sorted, field_compare);
    return 0;
}

static void free_fields(struct fields *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    free(l->sorted);
}

/* The value of key in l, or NULL; the first of keys listed twice. */
static const char *find(const struct fields *l, const char *key) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int    c = strcmp(l->sorted[mid]->key, key);
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < l->n && strcmp(l->sorted[lo]->key, key) == 0 ? l->sorted[lo]->value : NULL;
}

static void value_cell(FILE *f, const char *value) {
    if (!value) {
        fputs("<td class=\"value absent\">(absent)</td>", f);
        return;
    }
    fputs("<td class=\"value mono\">", f);
    llorch_html_text(f, value);
    fputs("</td>", f);
}

static size_t setting_line(FILE *f, const char *key, const char *ref, const char *cand) {
    bool differs = !ref || !cand || strcmp(ref, cand) != 0;
    fprintf(f, "<tr class=\"setting%s\"", differs ? " differs" : "");
    llorch_html_attr(f, "data-key", key);
    fputs("><td class=\"name mono\">", f);
    llorch_html_text(f, key);
    fprintf(f, "</td><td>%s</td>", differs ? "&#8800;" : "");
    value_cell(f, ref);
    value_cell(f, cand);
    fputs("</tr>\n", f);
    return differs;
}

static void settings_table(FILE *f, const struct fields *ref, const struct fields *cand) {
    size_t differ = 0;
    fputs("<table id=\"settings\">\n<thead><tr><th class=\"name\">field</th><th></th><th class=\"name\">reference"
          "</th><th class=\"name\">candidate</th></tr></thead>\n<tbody>\n",
          f);
    for (size_t i = 0; i < ref->n; i++) {
        const char *key = ref->items[i].key;
        if (find(ref, key) == ref->items[i].value) { /* a key listed twice: its first */
            differ += setting_line(f, key, ref->items[i].value, find(cand, key));
        }
    }
    for (size_t i = 0; i < cand->n; i++) {
        const char *key = cand->items[i].key;
        if (!find(ref, key) && find(cand, key) == cand->items[i].value) {
            differ += setting_line(f, key, NULL, cand->items[i].value);
        }
    }
    fprintf(f, "</tbody>\n</table>\n<p id=\"settings-differ\" data-count=\"%zu\">%zu field%s differ%s.</p>\n", differ,
            differ, differ == 1 ? "" : "s", differ == 1 ? "s" : "");
}

int llorch_html_settings(FILE *f, const struct llorch_ckpt_report_info *info) {
    struct fields ref = {0}, cand = {0};
    int           rc = 0;
    fputs("<section id=\"settings-section\">\n<h2>Settings</h2>\n<p>Both manifests side by side; "
          "highlighted lines differ or are in one dump only.</p>\n",
          f);
    if (collect(&ref, info->ref_name, info->ref) != 0 || collect(&cand, info->cand_name, info->cand) != 0) {
        fputs("<p class=\"note\">out of memory</p>\n", f);
        rc = -1;
    } else {
        settings_table(f, &ref, &cand);
    }
    fputs("</section>\n", f);
    free_fields(&ref);
    free_fields(&cand);
    return rc;
}

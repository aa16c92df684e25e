/*
 * read_fields.c - a manifest's descriptive fields as flat (key, value)
 * text pairs (llorch_ckpt_dump_fields): producer, model, prompt,
 * settings, llama_cpp and whatever else a producer adds, so that a report
 * can show two dumps' settings side by side without knowing each key. The
 * values are the manifest's own, unchecked: whoever shows them escapes them.
 */
#include "read_internal.h"

#include <stdlib.h>
#include <string.h>

/* Deeper objects are shown as JSON: the keys stay readable. */
#define FLATTEN_DEPTH 4
#define KEY_MAX_BYTES 512

struct visit {
    llorch_ckpt_field_fn fn;
    void                *ctx;
    int                  count;
    bool                 out_of_memory;
};

/* The per-tensor lists: long, and shown elsewhere (the table, the tokens). */
static bool skipped(const char *key) {
    static const char *const lists[] = {"files", "tokens", "missing"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        if (strcmp(key, lists[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void emit(struct visit *v, const char *key, const cJSON *item) {
    if (cJSON_IsString(item)) {
        v->fn(v->ctx, key, item->valuestring);
        v->count++;
        return;
    }
    char *text = cJSON_PrintUnformatted(item);
    if (!text) {
        v->out_of_memory = true;
        return;
    }
    v->fn(v->ctx, key, text);
    v->count++;
    cJSON_free(text);
}

static void visit_object(struct visit *v, const cJSON *obj, const char *prefix, int depth) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        char key[KEY_MAX_BYTES];
        if (!item->string || (depth == 0 && skipped(item->string))) {
            continue;
        }
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", item->string);
        if (cJSON_IsObject(item) && depth + 1 < FLATTEN_DEPTH && item->child) {
            visit_object(v, item, key, depth + 1);
        } else {
            emit(v, key, item);
        }
    }
}

int llorch_ckpt_dump_fields(const llorch_ckpt_dump *d, llorch_ckpt_field_fn fn, void *ctx) {
    struct visit v = {fn, ctx, 0, false};
    if (d->root && cJSON_IsObject(d->root)) {
        visit_object(&v, d->root, "", 0);
    }
    return v.out_of_memory ? -1 : v.count;
}

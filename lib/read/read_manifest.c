/*
 * read_manifest.c - manifest.json into a dump object: the JSON field
 * getters, each part of the manifest (header, container, model, tokens,
 * files) checked against the format (docs/FORMAT.md), and
 * llorch_ckpt_dump_parse for a manifest held in memory.
 */
#define _POSIX_C_SOURCE 200809L

#include "error.h"
#include "npy.h"
#include "read_internal.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON numbers are doubles: integers are exact up to 2^53. */
#define JSON_MAX_INT   ((int64_t) 1 << 53)
#define AXIS_MAX_BYTES 32

/* ---- fields -------------------------------------------------------------- */

/* Where in the manifest we are, for messages. */
struct ctx {
    const char *manifest;
    char        where[320];
    char       *err;
    size_t      err_size;
};

static int bad(struct ctx *c, const char *fmt, ...) {
    char    msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llorch_set_error(c->err, c->err_size, "%s: %s%s%s", c->manifest, c->where, c->where[0] ? ": " : "", msg);
    return -1;
}

static bool json_integer(const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    double v = item->valuedouble;
    /* The range check comes first: converting an out-of-range double to an
     * integer is undefined behaviour. lo and hi are within +-2^53. */
    if (!(v >= (double) lo && v <= (double) hi)) {
        return false;
    }
    int64_t i = (int64_t) v;
    if ((double) i != v) {
        return false;
    }
    *out = i;
    return true;
}

static int get_int(struct ctx *c, const cJSON *obj, const char *key, int64_t lo, int64_t hi, bool required,
                   int64_t fallback, int64_t *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        *out = fallback;
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!json_integer(item, lo, hi, out)) {
        return bad(c, "field '%s' must be an integer in [%lld, %lld]", key, (long long) lo, (long long) hi);
    }
    return 0;
}

static int get_int32(struct ctx *c, const cJSON *obj, const char *key, int64_t lo, bool required, int fallback,
                     int *out) {
    int64_t v = fallback;
    if (get_int(c, obj, key, lo, INT32_MAX, required, fallback, &v) != 0) {
        return -1;
    }
    *out = (int) v;
    return 0;
}

static int get_string(struct ctx *c, const cJSON *obj, const char *key, bool required, const char **out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!item || cJSON_IsNull(item)) {
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!cJSON_IsString(item) || !item->valuestring) {
        return bad(c, "field '%s' must be a string", key);
    }
    *out = item->valuestring;
    return 0;
}

static int get_bool(struct ctx *c, const cJSON *obj, const char *key, bool required, bool *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        *out = false;
        return required ? bad(c, "missing field '%s'", key) : 0;
    }
    if (!cJSON_IsBool(item)) {
        return bad(c, "field '%s' must be true or false", key);
    }
    *out = cJSON_IsTrue(item);
    return 0;
}

/* ---- the parts of a manifest --------------------------------------------- */

/* A container form (format_version 2) names its single file. */
static int parse_container(struct ctx *c, const cJSON *root, int64_t version, llorch_ckpt_dump *d) {
    const cJSON *container = cJSON_GetObjectItemCaseSensitive(root, "container");
    const char  *form;
    if (version == LLORCH_CKPT_FORMAT_VERSION) {
        return container ? bad(c, "field 'container' needs format_version %d", LLORCH_CKPT_FORMAT_VERSION_CONTAINER)
                         : 0;
    }
    if (version == LLORCH_CKPT_FORMAT_VERSION_SEQUENCES && container == NULL) {
        return 0; /* version 3: the npy form or a container */
    }
    if (!cJSON_IsObject(container)) {
        return bad(c, "format_version %d needs the object 'container'", LLORCH_CKPT_FORMAT_VERSION_CONTAINER);
    }
    snprintf(c->where, sizeof c->where, "container");
    if (get_string(c, container, "format", true, &form) != 0 ||
        get_string(c, container, "file", true, &d->container_file) != 0) {
        return -1;
    }
    if (!llorch_ckpt_safe_name(d->container_file)) {
        return bad(c, "refusing the file name: not a plain name inside the dump directory");
    }
    if (strcmp(form, "npz") == 0) {
        d->container_form = LLORCH_CONTAINER_NPZ;
    } else if (strcmp(form, "safetensors") == 0) {
        d->container_form = LLORCH_CONTAINER_SAFETENSORS;
    } else {
        return bad(c, "unknown container format (npz and safetensors are known)");
    }
    c->where[0] = '\0';
    return 0;
}

static int parse_header_fields(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d) {
    const char *format;
    int64_t     version;
    if (!cJSON_IsObject(root)) {
        return bad(c, "not a JSON object");
    }
    if (get_string(c, root, "format", true, &format) != 0) {
        return -1;
    }
    if (strcmp(format, LLORCH_CKPT_FORMAT_NAME) != 0) {
        return bad(c, "not a checkpoint dump (format is not \"%s\")", LLORCH_CKPT_FORMAT_NAME);
    }
    if (get_int(c, root, "format_version", 0, INT32_MAX, true, 0, &version) != 0) {
        return -1;
    }
    if (version < LLORCH_CKPT_FORMAT_VERSION || version > LLORCH_CKPT_FORMAT_VERSION_SEQUENCES) {
        return bad(c, "format_version %lld is not supported (this reader knows %d to %d)", (long long) version,
                   LLORCH_CKPT_FORMAT_VERSION, LLORCH_CKPT_FORMAT_VERSION_SEQUENCES);
    }
    d->version = (int) version;
    if (parse_container(c, root, version, d) != 0) {
        return -1;
    }
    return get_bool(c, root, "complete", true, &d->complete) || get_string(c, root, "status", false, &d->status) ||
                   get_string(c, root, "producer", false, &d->producer)
               ? -1
               : 0;
}

/* "fingerprint" is optional (dumps from before it, engines that have none);
 * one that is there must have a fingerprint's form, so that it can be shown
 * in a one-line message as it is. */
static int parse_fingerprint(struct ctx *c, const cJSON *model, const char **out) {
    if (get_string(c, model, "fingerprint", false, out) != 0) {
        return -1;
    }
    if (*out != NULL && !llorch_ckpt_fingerprint_valid(*out)) {
        *out = NULL;
        return bad(c,
                   "field 'fingerprint' is not a model fingerprint (SCHEME:HEX of at most 255 bytes, e.g. "
                   "\"%s:\" and 64 hex digits)",
                   LLORCH_CKPT_FINGERPRINT_SCHEME);
    }
    return 0;
}

/* "architecture" is optional: the writer leaves it out when the run names
 * none (struct llorch_ckpt_run), and such a dump must still be readable. */
static int parse_model(struct ctx *c, const cJSON *root, struct llorch_ckpt_model *m) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        return bad(c, "field 'model' is missing or not an object");
    }
    snprintf(c->where, sizeof c->where, "model");
    int rc = get_string(c, model, "architecture", false, &m->architecture) ||
                     get_int32(c, model, "n_layer", 0, true, -1, &m->n_layer) ||
                     get_int32(c, model, "n_embd", 0, true, -1, &m->n_embd) ||
                     get_int32(c, model, "n_head", 0, false, -1, &m->n_head) ||
                     get_int32(c, model, "n_head_kv", 0, false, -1, &m->n_head_kv) ||
                     get_int32(c, model, "n_vocab", 0, false, -1, &m->n_vocab) ||
                     parse_fingerprint(c, model, &m->fingerprint)
                 ? -1
                 : 0;
    c->where[0] = '\0';
    return rc;
}

/* An array of 32-bit token ids into a new array. */
static int parse_token_list(struct ctx *c, const cJSON *tokens, int32_t **out, size_t *n_out) {
    if (!cJSON_IsArray(tokens)) {
        return bad(c, "field 'tokens' must be an array");
    }
    size_t       n = (size_t) cJSON_GetArraySize(tokens);
    int32_t     *ids = malloc((n ? n : 1) * sizeof *ids);
    const cJSON *item;
    if (!ids) {
        return bad(c, "out of memory");
    }
    *out = ids;
    n = 0;
    cJSON_ArrayForEach(item, tokens) {
        int64_t v;
        if (!json_integer(item, INT32_MIN, INT32_MAX, &v)) {
            return bad(c, "tokens[%zu] is not a 32-bit integer", n);
        }
        ids[n++] = (int32_t) v;
    }
    *n_out = n;
    return 0;
}

static int parse_tokens(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d) {
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (get_string(c, root, "tokens_file", false, &d->tokens_file) != 0) {
        return -1;
    }
    if (d->tokens_file && !llorch_ckpt_safe_name(d->tokens_file)) {
        return bad(c, "refusing tokens_file: not a plain file name inside the dump directory");
    }
    if (!tokens || cJSON_IsNull(tokens)) {
        return 0;
    }
    d->has_tokens = true;
    return parse_token_list(c, tokens, &d->tokens, &d->n_tokens);
}

/* "sequences" (format version 3): each sequence's id, tokens and prompt. */
static int parse_sequences(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "sequences");
    if (d->version != LLORCH_CKPT_FORMAT_VERSION_SEQUENCES) {
        return list != NULL ? bad(c, "field 'sequences' needs format_version %d", LLORCH_CKPT_FORMAT_VERSION_SEQUENCES)
                            : 0;
    }
    if (!cJSON_IsArray(list)) {
        return bad(c, "format_version %d needs the array 'sequences'", LLORCH_CKPT_FORMAT_VERSION_SEQUENCES);
    }
    size_t n = (size_t) cJSON_GetArraySize(list);
    d->sequences = calloc(n ? n : 1, sizeof *d->sequences);
    if (!d->sequences) {
        return bad(c, "out of memory");
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        struct llorch_ckpt_dump_sequence *s = &d->sequences[d->n_sequences];
        snprintf(c->where, sizeof c->where, "sequences[%zu]", d->n_sequences);
        if (!cJSON_IsObject(item) || get_int32(c, item, "seq", 0, true, 0, &s->seq) ||
            get_string(c, item, "prompt", false, &s->prompt)) {
            return cJSON_IsObject(item) ? -1 : bad(c, "not an object");
        }
        d->n_sequences++; /* counted before its tokens: freed with the dump */
        if (parse_token_list(c, cJSON_GetObjectItemCaseSensitive(item, "tokens"), (int32_t **) &s->tokens,
                             &s->n_tokens) != 0) {
            return -1;
        }
    }
    c->where[0] = '\0';
    return 0;
}

static int parse_shape_field(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *item;
    if (!cJSON_IsArray(shape)) {
        return bad(c, "field 'shape' is missing or not an array");
    }
    e->n_dims = 0;
    cJSON_ArrayForEach(item, shape) {
        if (e->n_dims == LLORCH_CKPT_MAX_DIMS) {
            return bad(c, "field 'shape' has more than %d dimensions", LLORCH_CKPT_MAX_DIMS);
        }
        if (!json_integer(item, 0, JSON_MAX_INT, &e->shape[e->n_dims++])) {
            return bad(c, "field 'shape' holds a value that is not a non-negative integer");
        }
    }
    return 0;
}

/* obj's array `key`, or NULL with the error set. */
static const cJSON *get_array(struct ctx *c, const cJSON *obj, const char *key) {
    const cJSON *array = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(array)) {
        bad(c, "field '%s' is missing or not an array", key);
        return NULL;
    }
    return array;
}

static int parse_axes_field(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e) {
    const cJSON *axes = get_array(c, obj, "axes");
    const cJSON *item;
    int          n = 0;
    if (!axes) {
        return -1;
    }
    cJSON_ArrayForEach(item, axes) {
        if (n == e->n_dims) {
            return bad(c, "field 'axes' has more names than 'shape' has dimensions");
        }
        if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0] ||
            strlen(item->valuestring) > AXIS_MAX_BYTES) {
            return bad(c, "field 'axes' holds a value that is not a short non-empty string");
        }
        for (int i = 0; i < n; i++) {
            if (strcmp(e->axes[i], item->valuestring) == 0) {
                return bad(c, "field 'axes' names '%s' twice", e->axes[i]);
            }
        }
        e->axes[n++] = item->valuestring;
    }
    if (n != e->n_dims) {
        return bad(c, "field 'axes' has %d names for %d dimensions", n, e->n_dims);
    }
    return 0;
}

static int axis_index(const struct llorch_ckpt_entry *e, const char *name) {
    for (int i = 0; i < e->n_dims; i++) {
        if (strcmp(e->axes[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* The token axis has n_pos rows and the key axis n_key (FORMAT.md); a raw
 * tensor keeps llama.cpp's layout and has neither. */
static int check_entry_axes(struct ctx *c, struct llorch_ckpt_entry *e) {
    int token = axis_index(e, "token"), key = axis_index(e, "key");
    if (e->raw) {
        return 0;
    }
    if (token >= 0 && e->shape[token] != e->n_pos) {
        return bad(c, "the token axis has %lld rows but n_pos is %lld", (long long) e->shape[token],
                   (long long) e->n_pos);
    }
    if (key >= 0 && e->n_key >= 0 && e->shape[key] != e->n_key) {
        return bad(c, "the key axis has %lld rows but n_key is %lld", (long long) e->shape[key], (long long) e->n_key);
    }
    if (key >= 0) {
        e->n_key = e->shape[key];
    }
    return 0;
}

static int check_entry_size(struct ctx *c, const struct llorch_ckpt_entry *e) {
    int64_t count, bytes;
    if (llorch_read_shape_bytes(e->n_dims, e->shape, e->dtype, &count, &bytes) != 0 || bytes > JSON_MAX_INT) {
        return bad(c, "field 'shape' is too large");
    }
    if (e->bytes >= 0 && e->bytes != bytes) {
        return bad(c, "field 'bytes' is %lld but the shape needs %lld", (long long) e->bytes, (long long) bytes);
    }
    return 0;
}

static int parse_entry_numbers(struct ctx *c, const cJSON *obj, struct llorch_ckpt_entry *e) {
    int64_t crc;
    if (get_int32(c, obj, "number", 0, false, 0, &e->number) || get_int32(c, obj, "layer", -1, true, 0, &e->layer) ||
        get_int32(c, obj, "step", 0, true, 0, &e->step) ||
        get_int(c, obj, "pos_start", 0, INT32_MAX, true, 0, &e->pos_start) ||
        get_int(c, obj, "n_pos", 0, INT32_MAX, true, 0, &e->n_pos) ||
        get_int(c, obj, "n_key", 0, INT32_MAX, false, -1, &e->n_key) ||
        get_int(c, obj, "bytes", 0, JSON_MAX_INT, false, -1, &e->bytes) ||
        get_int(c, obj, "crc32", 0, UINT32_MAX, false, -1, &crc)) {
        return -1;
    }
    e->has_crc32 = crc >= 0;
    e->crc32 = e->has_crc32 ? (uint32_t) crc : 0;
    return 0;
}

/* An optional list of `count` whole numbers from `lo` on, ascending when
 * asked: "positions" (each token row's position, ascending from
 * pos_start) and "cells" (each key position's cache cell). Bounded by a
 * count that the file's size vouches for once the data is read. */
static int parse_index_list(struct ctx *c, const cJSON *obj, const char *key, int64_t count, int64_t lo, bool ascending,
                            const int64_t **out) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (list == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != count) {
        return bad(c, "field '%s' must list %lld numbers (n_pos, n_key)", key, (long long) count);
    }
    int64_t *values = malloc((size_t) (count > 0 ? count : 1) * sizeof *values);
    if (!values) {
        return bad(c, "out of memory");
    }
    *out = values;
    const cJSON *item;
    int64_t      n = 0;
    cJSON_ArrayForEach(item, list) {
        int64_t min = ascending && n > 0 ? values[n - 1] + 1 : lo;
        if (!json_integer(item, min, INT32_MAX, &values[n])) {
            return bad(c, "field '%s' must hold whole numbers from %lld%s", key, (long long) lo,
                       ascending ? ", ascending" : "");
        }
        n++;
    }
    return 0;
}

/* "seq" (format version 3, where every entry has one) and its "cells". */
static int parse_seq_fields(struct ctx *c, const cJSON *obj, int version, struct llorch_ckpt_entry *e) {
    bool sequences = version == LLORCH_CKPT_FORMAT_VERSION_SEQUENCES;
    if (get_int32(c, obj, "seq", 0, sequences, -1, &e->seq) != 0) {
        return -1;
    }
    if (!sequences && e->seq >= 0) {
        return bad(c, "field 'seq' needs format_version %d", LLORCH_CKPT_FORMAT_VERSION_SEQUENCES);
    }
    return parse_index_list(c, obj, "cells", e->n_key, 0, false, &e->cells);
}

static int parse_entry(struct ctx *c, const cJSON *obj, int version, size_t index, struct llorch_ckpt_entry *e) {
    const char *dtype;
    char        safe[NAME_MAX_BYTES + 1];
    snprintf(c->where, sizeof c->where, "files[%zu]", index);
    if (!cJSON_IsObject(obj)) {
        return bad(c, "not an object");
    }
    if (get_string(c, obj, "file", true, &e->file) != 0) {
        return -1;
    }
    if (!llorch_ckpt_safe_name(e->file)) {
        return bad(c, "refusing file name '%s': not a plain name inside the dump directory",
                   llorch_read_printable(e->file, safe, sizeof safe));
    }
    snprintf(c->where, sizeof c->where, "files[%zu] (%s)", index, e->file);
    if (get_string(c, obj, "checkpoint", true, &e->checkpoint) ||
        get_string(c, obj, "graph_name", false, &e->graph_name) || get_string(c, obj, "dtype", true, &dtype) ||
        get_bool(c, obj, "raw", false, &e->raw) || parse_entry_numbers(c, obj, e) || parse_shape_field(c, obj, e) ||
        parse_axes_field(c, obj, e) ||
        parse_index_list(c, obj, "positions", e->n_pos, e->pos_start, true, &e->positions) ||
        parse_seq_fields(c, obj, version, e)) {
        return -1;
    }
    if (!e->checkpoint[0]) {
        return bad(c, "field 'checkpoint' is empty");
    }
    if (llorch_dtype_from_name(dtype, &e->dtype) != 0) {
        return bad(c, "unsupported dtype (float32, float16 and int32 are)");
    }
    return check_entry_axes(c, e) || check_entry_size(c, e) ? -1 : 0;
}

static int name_compare(const void *a, const void *b) {
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Each file is listed once: what the entries declare then adds up to at
 * most the size of the dump, which bounds what comparing them allocates. */
static int check_unique_files(struct ctx *c, const llorch_ckpt_dump *d) {
    const char **names = malloc((d->n_entries ? d->n_entries : 1) * sizeof *names);
    if (!names) {
        return bad(c, "out of memory");
    }
    for (size_t i = 0; i < d->n_entries; i++) {
        names[i] = d->entries[i].file;
    }
    llorch_sort(names, d->n_entries, sizeof *names, name_compare);
    int rc = 0;
    for (size_t i = 1; i < d->n_entries && rc == 0; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = bad(c, "file '%s' is listed more than once", names[i]);
        }
    }
    free(names);
    return rc;
}

/* A file of a dump of several sequences belongs to one that it lists. */
static int check_entry_seq(struct ctx *c, const llorch_ckpt_dump *d, const struct llorch_ckpt_entry *e) {
    for (size_t i = 0; i < d->n_sequences; i++) {
        if (d->sequences[i].seq == e->seq) {
            return 0;
        }
    }
    return e->seq < 0 ? 0 : bad(c, "sequence %d is not listed in 'sequences'", e->seq);
}

/* docs/FORMAT.md: files are listed in the order they were produced, steps
 * in order; what is read as "the latest" of a checkpoint relies on it. */
static int check_step_order(struct ctx *c, const struct llorch_ckpt_entry *entries, size_t i) {
    if (i > 0 && entries[i].step < entries[i - 1].step) {
        return bad(c, "step %d is listed after step %d: a manifest lists its files in step order", entries[i].step,
                   entries[i - 1].step);
    }
    return 0;
}

static int parse_entries(struct ctx *c, const cJSON *root, llorch_ckpt_dump *d) {
    const cJSON *files = get_array(c, root, "files");
    const cJSON *item;
    if (!files) {
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize(files);
    d->entries = calloc(n ? n : 1, sizeof *d->entries);
    if (!d->entries) {
        return bad(c, "out of memory");
    }
    cJSON_ArrayForEach(item, files) {
        if (parse_entry(c, item, d->version, d->n_entries, &d->entries[d->n_entries]) != 0 ||
            check_step_order(c, d->entries, d->n_entries) != 0 ||
            check_entry_seq(c, d, &d->entries[d->n_entries]) != 0) {
            struct llorch_ckpt_entry *e = &d->entries[d->n_entries]; /* not yet counted: the dump would not free it */
            free((void *) e->positions);
            free((void *) e->cells);
            e->positions = e->cells = NULL;
            return -1;
        }
        d->n_entries++;
    }
    c->where[0] = '\0';
    return check_unique_files(c, d);
}

static int parse_json(struct ctx *c, const char *text, size_t size, cJSON **out) {
    const char *end = NULL;
    cJSON      *root = cJSON_ParseWithLengthOpts(text, size, &end, false);
    if (!root) {
        size_t at = end && end >= text && end <= text + size ? (size_t) (end - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < at; i++) {
            line += text[i] == '\n';
        }
        return bad(c, "not valid JSON (at byte %zu, line %zu)", at, line);
    }
    *out = root;
    for (; end && end < text + size; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            return bad(c, "trailing bytes after the JSON object");
        }
    }
    return 0;
}

/* ---- the dump ------------------------------------------------------------ */

/* text must be NUL-terminated at text[size]. */
llorch_ckpt_dump *llorch_read_dump_from_text(const char *text, size_t size, const char *name, const char *manifest_name,
                                             char *err, size_t err_size) {
    llorch_ckpt_dump *d = llorch_read_dump_new(name, manifest_name, err, err_size);
    struct ctx        c = {manifest_name, "", err, err_size};
    if (!d) {
        return NULL;
    }
    if (parse_json(&c, text, size, &d->root) != 0 || parse_header_fields(&c, d->root, d) != 0 ||
        parse_model(&c, d->root, &d->model) != 0 || parse_tokens(&c, d->root, d) != 0 ||
        parse_sequences(&c, d->root, d) != 0 || parse_entries(&c, d->root, d) != 0) {
        llorch_ckpt_dump_free(d);
        return NULL;
    }
    return d;
}

llorch_ckpt_dump *llorch_ckpt_dump_parse(const char *json, size_t size, const char *name, char *err, size_t err_size) {
    /* cJSON wants a NUL after the text; the caller's buffer need not have one. */
    char *text = malloc(size + 1);
    if (!text) {
        llorch_set_error(err, err_size, "%s: out of memory", name);
        return NULL;
    }
    memcpy(text, json, size);
    text[size] = '\0';
    llorch_ckpt_dump *d = llorch_read_dump_from_text(text, size, name, name, err, err_size);
    free(text);
    return d;
}

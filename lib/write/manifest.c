/* manifest.c - manifest.json: what each file of the dump is, and how the
 * dump was made. Written last and atomically: its presence means the files
 * it lists are whole. */
#define _POSIX_C_SOURCE 200809L
#include "manifest.h"

#include "atomic_file.h"
#include "json_fields.h"
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *axes_array(const char *axes) {
    cJSON *arr = cJSON_CreateArray();
    char   buf[128];
    snprintf(buf, sizeof buf, "%s", axes != NULL ? axes : "");
    char *save = NULL;
    for (char *a = strtok_r(buf, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(a));
    }
    return arr;
}

cJSON *llorch_manifest_file_entry(const struct llorch_ckpt_tensor *t, const char *file, const char *text_file,
                                  uint32_t crc, size_t bytes) {
    const struct llorch_ckpt_kind_info *info = llorch_ckpt_kind_info(t->kind);
    cJSON                              *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "file", file);
    if (text_file != NULL) {
        cJSON_AddStringToObject(e, "text_file", text_file);
    }
    cJSON_AddStringToObject(e, "checkpoint", info->name);
    static const char *const where[] = {"number", "layer", "step", "pos_start", "n_pos", "n_key"};
    llorch_json_add_numbers(e, where,
                            (const double[]){info->number, t->layer, t->step, t->pos_start, t->n_pos, t->n_key}, 6);
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    for (int i = 0; i < t->n_dims; i++) {
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double) t->shape[i]));
    }
    cJSON_AddStringToObject(e, "dtype", llorch_ckpt_dtype_name(t->dtype));
    /* a graph tensor without axis names is named as ggml holds it: ne1, ne0 */
    static const char *raw_axes[] = {"ne0", "ne1,ne0", "ne2,ne1,ne0", "ne3,ne2,ne1,ne0"};
    const char *axes = t->axes != NULL ? t->axes : t->kind == LLORCH_CKPT_GRAPH ? raw_axes[t->n_dims - 1] : info->axes;
    cJSON_AddItemToObject(e, "axes", axes_array(axes));
    if (t->raw) {
        cJSON_AddBoolToObject(e, "raw", true);
    }
    if (t->graph_name != NULL) {
        cJSON_AddStringToObject(e, "graph_name", t->graph_name);
    }
    if (t->graph_op != NULL) {
        cJSON_AddStringToObject(e, "graph_op", t->graph_op);
    }
    if (t->device != NULL) {
        cJSON_AddStringToObject(e, "device", t->device);
    }
    if (t->positions != NULL) {
        cJSON_AddItemToObject(e, "positions", cJSON_CreateIntArray(t->positions, t->n_pos));
    }
    if (t->in_seq) {
        cJSON_AddNumberToObject(e, "seq", t->seq);
    }
    if (t->in_seq && t->cells != NULL) {
        cJSON_AddItemToObject(e, "cells", cJSON_CreateIntArray(t->cells, t->n_key));
    }
    cJSON_AddNumberToObject(e, "crc32", crc);
    cJSON_AddNumberToObject(e, "bytes", (double) bytes);
    return e;
}

cJSON *llorch_manifest_missing_entry(enum llorch_ckpt_kind kind, int layer, const char *reason) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "checkpoint", llorch_ckpt_kind_info(kind)->name);
    cJSON_AddNumberToObject(e, "layer", layer);
    cJSON_AddStringToObject(e, "reason", reason);
    return e;
}

static cJSON *model_object(const struct llorch_ckpt_run *run) {
    cJSON *m = cJSON_CreateObject();
    if (run->model_path != NULL) {
        cJSON_AddStringToObject(m, "path", run->model_path);
    }
    cJSON_AddNumberToObject(m, "size", (double) run->model_size);
    if (run->architecture != NULL) {
        cJSON_AddStringToObject(m, "architecture", run->architecture);
    }
    if (run->model_fingerprint != NULL) {
        cJSON_AddStringToObject(m, "fingerprint", run->model_fingerprint);
    }
    static const char *const sizes[] = {"n_layer", "n_embd", "n_head", "n_head_kv", "n_vocab"};
    llorch_json_add_numbers(m, sizes,
                            (const double[]){run->n_layer, run->n_embd, run->n_head, run->n_head_kv, run->n_vocab}, 5);
    return m;
}

/* Adds key: parsed JSON object text; fails on malformed text. */
static int add_json_text(cJSON *obj, const char *key, const char *text, char *err, size_t err_size) {
    if (text == NULL) {
        return 0;
    }
    cJSON *parsed = cJSON_Parse(text);
    if (parsed == NULL || !cJSON_IsObject(parsed)) {
        cJSON_Delete(parsed);
        snprintf(err, err_size, "run.%s is not a JSON object: %.60s", key, text);
        return -1;
    }
    cJSON_AddItemToObject(obj, key, parsed);
    return 0;
}

/* The "fed" object (docs/FORMAT.md, "Fed runs"): "from" and "producer"
 * strings, "fingerprint" a string or null, "at" a list of embd, l_out and
 * ffn_inp, "layers" a list of layers; other keys are kept. */
static int add_fed(cJSON *obj, const char *text, char *err, size_t err_size) {
    if (text == NULL) {
        return 0;
    }
    cJSON       *fed = cJSON_Parse(text);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(fed, "at");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(fed, "layers");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(fed, "fingerprint");
    const cJSON *item;
    bool         ok = cJSON_IsObject(fed) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fed, "from")) &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fed, "producer")) &&
              (cJSON_IsNull(fp) || (cJSON_IsString(fp) && llorch_ckpt_fingerprint_valid(fp->valuestring))) &&
              cJSON_IsArray(at) && cJSON_IsArray(layers);
    const cJSON *at_list = ok ? at : NULL, *layer_list = ok ? layers : NULL;
    cJSON_ArrayForEach(item, at_list) {
        ok = ok && cJSON_IsString(item) &&
             (strcmp(item->valuestring, "embd") == 0 || strcmp(item->valuestring, "l_out") == 0 ||
              strcmp(item->valuestring, "ffn_inp") == 0);
    }
    cJSON_ArrayForEach(item, layer_list) {
        ok = ok && cJSON_IsNumber(item) && item->valuedouble >= 0 && item->valuedouble == (double) item->valueint;
    }
    if (!ok) {
        cJSON_Delete(fed);
        snprintf(err, err_size,
                 "run.fed_json is not a \"fed\" object ({\"from\": str, \"producer\": str, \"fingerprint\": str|null, "
                 "\"at\": [embd|l_out|ffn_inp...], \"layers\": [int...]}): %.60s",
                 text);
        return -1;
    }
    cJSON_AddItemToObject(obj, "fed", fed);
    return 0;
}

cJSON *llorch_manifest_run(const struct llorch_ckpt_run *run, char *err, size_t err_size) {
    if (run->model_fingerprint != NULL && !llorch_ckpt_fingerprint_valid(run->model_fingerprint)) {
        snprintf(err, err_size,
                 "run.model_fingerprint is not a fingerprint (SCHEME:HEX, e.g. from llorch_ckpt_gguf_fingerprint): "
                 "%.60s",
                 run->model_fingerprint);
        return NULL;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "producer", run->producer != NULL ? run->producer : "unknown");
    cJSON_AddItemToObject(r, "model", model_object(run));
    if (run->prompt != NULL) {
        cJSON_AddStringToObject(r, "prompt", run->prompt);
    }
    cJSON *tokens = cJSON_AddArrayToObject(r, "tokens");
    for (int i = 0; i < run->n_tokens; i++) {
        cJSON_AddItemToArray(tokens, cJSON_CreateNumber(run->tokens[i]));
    }
    cJSON_AddStringToObject(r, "tokens_file", "tokens.npy");
    if (run->n_sequences > 0) {
        cJSON *seqs = cJSON_AddArrayToObject(r, "sequences");
        for (int i = 0; i < run->n_sequences; i++) {
            const struct llorch_ckpt_sequence *s = &run->sequences[i];
            cJSON                             *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "seq", s->seq);
            if (s->prompt != NULL) {
                cJSON_AddStringToObject(o, "prompt", s->prompt);
            }
            cJSON_AddItemToObject(o, "tokens", cJSON_CreateIntArray(s->tokens, s->n_tokens));
            cJSON_AddItemToArray(seqs, o);
        }
    }
    if (add_json_text(r, "settings", run->settings_json, err, err_size) != 0 ||
        add_json_text(r, "llama_cpp", run->llama_cpp_json, err, err_size) != 0 ||
        add_fed(r, run->fed_json, err, err_size) != 0) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

int llorch_manifest_write(const char *dir, const cJSON *run, const cJSON *files, const cJSON *missing,
                          const struct llorch_manifest_container *container, bool sequences, bool complete,
                          const char *status, bool sync, char *err, size_t err_size) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", LLORCH_CKPT_FORMAT_NAME);
    int version = sequences           ? LLORCH_CKPT_FORMAT_VERSION_SEQUENCES
                  : container != NULL ? LLORCH_CKPT_FORMAT_VERSION_CONTAINER
                                      : LLORCH_CKPT_FORMAT_VERSION;
    cJSON_AddNumberToObject(root, "format_version", version);
    cJSON_AddBoolToObject(root, "complete", complete);
    cJSON_AddStringToObject(root, "status", status != NULL ? status : (complete ? "ok" : "incomplete"));
    if (container != NULL) {
        cJSON *c = cJSON_AddObjectToObject(root, "container");
        cJSON_AddStringToObject(c, "format", container->form);
        cJSON_AddStringToObject(c, "file", container->file);
    }
    /* references, not copies: a long run's entries are printed, not duplicated */
    for (const cJSON *item = run != NULL ? run->child : NULL; item != NULL; item = item->next) {
        cJSON_AddItemReferenceToObject(root, item->string, (cJSON *) item);
    }
    cJSON_AddItemReferenceToObject(root, "files", (cJSON *) files);
    cJSON_AddItemReferenceToObject(root, "missing", (cJSON *) missing);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL) {
        snprintf(err, err_size, "out of memory while formatting the manifest");
        return -1;
    }
    struct llorch_atomic_file f;
    int                       rc = llorch_atomic_create(&f, dir, "manifest.json", err, err_size);
    if (rc == 0) {
        llorch_atomic_write(&f, text, strlen(text));
        llorch_atomic_write(&f, "\n", 1);
        rc = llorch_atomic_commit(&f, sync, err, err_size);
    }
    cJSON_free(text);
    return rc;
}

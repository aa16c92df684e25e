/* extractor_settings.c - the manifest's "settings" and "llama_cpp" objects,
 * built with cJSON: any value (a path with quotes, a long one) stays valid,
 * untruncated JSON. */
#include "extractor_settings.h"

#include "json_fields.h"

#include <cjson/cJSON.h>

static char *print_and_delete(cJSON *o) {
    char *text = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static const char numerics_repacked[] =
    "cpu-specific: weights repacked for this CPU's kernels; other CPUs give other results";
static const char numerics_portable[] = "portable: no weight repacking (ggml's standard CPU kernels)";

char *extractor_settings_json(const struct extractor_settings *s) {
    cJSON                   *o = cJSON_CreateObject();
    static const char *const sizes[] = {"threads", "n_ctx", "n_batch", "n_ubatch"};
    llorch_json_add_numbers(o, sizes, (const double[]){s->threads, s->n_ctx, s->n_batch, s->n_ubatch}, 4);
    cJSON_AddStringToObject(o, "type_k", s->type_k);
    cJSON_AddStringToObject(o, "type_v", s->type_v);
    if (s->weight_type && s->weight_type[0]) {
        cJSON_AddStringToObject(o, "weight_type", s->weight_type);
    }
    if (s->gelu_f16) {
        cJSON_AddStringToObject(o, "ffn_activation_type", "f16");
    }
    cJSON_AddBoolToObject(o, "flash_attn", s->flash_attn);
    cJSON_AddStringToObject(o, "flash_attn_reason", s->flash_attn_reason);
    cJSON_AddBoolToObject(o, "repack", s->repack);
    cJSON_AddStringToObject(o, "numerics", s->repack ? numerics_repacked : numerics_portable);
    static const char *const run[] = {"n_gpu_layers", "seed", "n_predict"};
    llorch_json_add_numbers(o, run, (const double[]){s->n_gpu_layers, s->seed, s->n_predict}, 3);
    cJSON_AddBoolToObject(o, "raw", s->raw);
    cJSON_AddStringToObject(o, "dtype", s->native_dtype ? "native" : "f32");
    cJSON_AddStringToObject(o, "identify", s->identify_structure ? "structure" : "auto");
    cJSON_AddNumberToObject(o, "steps", s->steps);
    if (s->n_parallel > 0) {
        cJSON_AddNumberToObject(o, "n_parallel", s->n_parallel);
        cJSON_AddBoolToObject(o, "kv_unified", true);
    }
    return print_and_delete(o);
}

/* "outputs": every step read after its graph; "splits": every step at
 * graph splits; "outputs+splits": some of each; "none": no step captured. */
static const char *capture_path_name(const struct extractor_capture_path *p) {
    if (p->steps_outputs > 0) {
        return p->steps_splits > 0 ? "outputs+splits" : "outputs";
    }
    return p->steps_splits > 0 ? "splits" : "none";
}

char *extractor_llama_cpp_json(const char *commit, const char *source, int patched, bool names_seen,
                               const struct extractor_capture_path *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "commit", commit);
    cJSON_AddStringToObject(o, "source", source);
    if (patched < 0) {
        cJSON_AddNullToObject(o, "patched");
    } else {
        cJSON_AddBoolToObject(o, "patched", patched != 0);
    }
    cJSON_AddBoolToObject(o, "patch_names_seen", names_seen);
    cJSON_AddStringToObject(o, "capture", capture_path_name(path));
    cJSON_AddNumberToObject(o, "capture_splits", (double) path->splits);
    return print_and_delete(o);
}

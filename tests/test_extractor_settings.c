/* test_extractor_settings.c - the extractor's "settings" and "llama_cpp"
 * JSON stay valid JSON that holds every value exactly, whatever the values:
 * a llama.cpp source path with quotes and backslashes, a long one, and
 * control characters. */
#include "extractor_settings.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static const char *string_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_llama_cpp(const char *source) {
    struct extractor_capture_path path = {.steps_outputs = 3, .steps_splits = 1, .splits = 7};
    char                         *text = extractor_llama_cpp_json("80fb11ac73e6", source, 1, true, &path);
    cJSON                        *o = text != NULL ? cJSON_Parse(text) : NULL;
    check(o != NULL, "llama_cpp: not valid JSON");
    const char *got = string_of(o, "source");
    check(got != NULL && strcmp(got, source) == 0, "llama_cpp: source does not round-trip");
    check(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "patched")), "llama_cpp: patched");
    got = string_of(o, "capture");
    check(got != NULL && strcmp(got, "outputs+splits") == 0, "llama_cpp: capture names both paths");
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(o, "capture_splits");
    check(cJSON_IsNumber(splits) && splits->valuedouble == 7, "llama_cpp: capture_splits");
    cJSON_Delete(o);
    free(text);
}

static void test_settings(const char *reason) {
    struct extractor_settings s = {.threads = 2,
                                   .n_ctx = 256,
                                   .n_batch = 2048,
                                   .n_ubatch = 512,
                                   .type_k = "f16",
                                   .type_v = "q8_0",
                                   .flash_attn = true,
                                   .flash_attn_reason = reason,
                                   .seed = 4294967295u,
                                   .n_predict = 3,
                                   .steps = 4};
    char                     *text = extractor_settings_json(&s);
    cJSON                    *o = text != NULL ? cJSON_Parse(text) : NULL;
    check(o != NULL, "settings: not valid JSON");
    const char *got = string_of(o, "flash_attn_reason");
    check(got != NULL && strcmp(got, reason) == 0, "settings: flash_attn_reason does not round-trip");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    check(cJSON_IsNumber(seed) && seed->valuedouble == 4294967295.0, "settings: seed");
    check(string_of(o, "type_v") != NULL && strcmp(string_of(o, "type_v"), "q8_0") == 0, "settings: type_v");
    cJSON_Delete(o);
    free(text);
}

int main(void) {
    char long_path[4001];
    memset(long_path, 'x', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    test_llama_cpp("dir:/home/me/llama.cpp");
    test_llama_cpp("dir:/home/me/\"quoted\" \\ path\twith tab");
    test_llama_cpp(long_path);
    test_settings("off: kq_soft_max is requested");
    test_settings(long_path);
    if (failures == 0) {
        printf("ok: settings and llama_cpp JSON are valid and round-trip quotes, backslashes, control "
               "characters and 4000-byte values\n");
    }
    return failures != 0;
}

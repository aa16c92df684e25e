/* json_fields.c - several named numbers into a JSON object at once. */
#include "json_fields.h"

void llorch_json_add_numbers(cJSON *o, const char *const *keys, const double *values, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cJSON_AddNumberToObject(o, keys[i], values[i]);
    }
}

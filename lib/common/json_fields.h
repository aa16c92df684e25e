/* json_fields.h - several named numbers into a JSON object at once. */
#ifndef LLORCH_JSON_FIELDS_H
#define LLORCH_JSON_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Adds keys[i]: values[i] for i < n, in order. */
void llorch_json_add_numbers(cJSON *o, const char *const *keys, const double *values, size_t n);

#endif

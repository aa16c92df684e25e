/* positions.c - which token rows to keep (see positions.h). */
#define _POSIX_C_SOURCE 200809L
#include "positions.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decimal digits only: a position or a count. */
static bool parse_number(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 10) {
        return false;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* One item: "last", "last:K", "A" or "A-B". */
static int parse_item(const char *s, size_t len, int32_t n_tokens, struct llorch_position_range *r, char *err,
                      size_t err_size) {
    int64_t a, b;
    if (len == 4 && strncmp(s, "last", 4) == 0) {
        a = b = (int64_t) n_tokens - 1;
    } else if (len > 5 && strncmp(s, "last:", 5) == 0 && parse_number(s + 5, len - 5, &a) && a >= 1) {
        if (a > n_tokens) {
            snprintf(err, err_size, "--positions '%.*s': the run has only %d tokens", (int) len, s, n_tokens);
            return -1;
        }
        b = (int64_t) n_tokens - 1;
        a = b - a + 1;
    } else {
        const char *dash = memchr(s, '-', len);
        size_t      head = dash != NULL ? (size_t) (dash - s) : len;
        if (!parse_number(s, head, &a) || (dash != NULL ? !parse_number(dash + 1, len - head - 1, &b) : (b = a, 0)) ||
            a > b) {
            snprintf(err, err_size, "--positions: '%.*s' is not a position, a range A-B, last or last:N", (int) len, s);
            return -1;
        }
    }
    if (a < 0 || b >= n_tokens) {
        snprintf(err, err_size, "--positions '%.*s' is outside the run's %d tokens (0-%d)", (int) len, s, n_tokens,
                 n_tokens - 1);
        return -1;
    }
    *r = (struct llorch_position_range){(int32_t) a, (int32_t) b};
    return 0;
}

static int by_first(const void *a, const void *b) {
    const struct llorch_position_range *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

int llorch_positions_parse(const char *spec, int32_t n_tokens, struct llorch_position_range **ranges, int *n, char *err,
                           size_t err_size) {
    size_t count = 1;
    for (const char *p = spec; *p != '\0'; p++) {
        count += *p == ',';
    }
    struct llorch_position_range *out = malloc(count * sizeof *out);
    if (out == NULL) {
        snprintf(err, err_size, "--positions: out of memory");
        return -1;
    }
    const char *s = spec;
    for (size_t k = 0; k < count; k++) {
        const char *end = strchr(s, ',');
        size_t      len = end != NULL ? (size_t) (end - s) : strlen(s);
        if (parse_item(s, len, n_tokens, &out[k], err, err_size) != 0) {
            free(out);
            return -1;
        }
        s += len + 1;
    }
    llorch_sort(out, count, sizeof *out, by_first);
    for (size_t k = 1; k < count; k++) {
        if (out[k].first <= out[k - 1].last) {
            snprintf(err, err_size, "--positions: %d-%d and %d-%d overlap; list each position once", out[k - 1].first,
                     out[k - 1].last, out[k].first, out[k].last);
            free(out);
            return -1;
        }
    }
    *ranges = out;
    *n = (int) count;
    return 0;
}

bool llorch_positions_has(const struct llorch_position_range *ranges, int n, int32_t pos) {
    for (int i = 0; i < n; i++) {
        if (pos >= ranges[i].first && pos <= ranges[i].last) {
            return true;
        }
    }
    return false;
}

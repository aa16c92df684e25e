/* cli.c - the command line of every program (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* arg is the option (exactly, or as "--long=..."); *inline_value gets the
 * part after '=' for the long form. */
static bool matches(const struct cli_option *o, const char *arg, const char **inline_value) {
    *inline_value = NULL;
    if ((o->short_name != NULL && strcmp(arg, o->short_name) == 0) || strcmp(arg, o->long_name) == 0) {
        return true;
    }
    size_t n = strlen(o->long_name);
    if (strncmp(arg, o->long_name, n) == 0 && arg[n] == '=') {
        *inline_value = arg + n + 1;
        return true;
    }
    return false;
}

static int option_value(const char *prog, const struct cli_option *o, const char *arg, const char *inline_value,
                        int argc, char **argv, int *i, const char **value) {
    if (o->kind == CLI_SWITCH) {
        if (inline_value != NULL) {
            cli_usage_error(prog, "%s takes no value; see --help", o->long_name);
            return CLI_ERROR;
        }
        return o->id;
    }
    if (inline_value == NULL && *i >= argc) {
        cli_usage_error(prog, "%s needs a value; see --help", arg);
        return CLI_ERROR;
    }
    *value = inline_value != NULL ? inline_value : argv[(*i)++];
    return o->id;
}

int cli_next(const char *prog, const struct cli_option *options, int argc, char **argv, int *i, const char **value) {
    *value = NULL;
    if (*i >= argc) {
        return CLI_END;
    }
    const char *arg = argv[(*i)++];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        return CLI_HELP;
    }
    if (strcmp(arg, "--version") == 0) {
        return CLI_VERSION;
    }
    if (arg[0] != '-' || arg[1] == '\0') {
        *value = arg;
        return CLI_POSITIONAL;
    }
    for (const struct cli_option *o = options; o->long_name != NULL; o++) {
        const char *inline_value;
        if (matches(o, arg, &inline_value)) {
            return option_value(prog, o, arg, inline_value, argc, argv, i, value);
        }
    }
    cli_usage_error(prog, "unknown option '%s'; see --help", arg);
    return CLI_ERROR;
}

/* Decimal digits with an optional leading '-'. */
static bool parse_long(const char *s, const char *end, long *out) {
    const char *p = s;
    if (p < end && *p == '-') {
        p++;
    }
    if (p == end) {
        return false;
    }
    for (const char *q = p; q < end; q++) {
        if (*q < '0' || *q > '9') {
            return false;
        }
    }
    char buf[32];
    if ((size_t) (end - s) >= sizeof buf) {
        return false;
    }
    memcpy(buf, s, (size_t) (end - s));
    buf[end - s] = '\0';
    errno = 0;
    *out = strtol(buf, NULL, 10);
    return errno == 0;
}

int cli_int(const char *prog, const char *flag, const char *value, long min, long max, long *out) {
    long v;
    if (!parse_long(value, value + strlen(value), &v) || v < min || v > max) {
        return cli_usage_error(prog, "%s expects an integer from %ld to %ld, got '%s'", flag, min, max, value);
    }
    *out = v;
    return 0;
}

int cli_token_list(const char *prog, const char *flag, const char *list, int32_t **ids, int *n) {
    size_t count = 1;
    for (const char *p = list; *p != '\0'; p++) {
        count += *p == ',';
    }
    int32_t *out = malloc(count * sizeof *out);
    if (out == NULL) {
        return cli_usage_error(prog, "%s: out of memory", flag);
    }
    const char *s = list;
    for (size_t k = 0; k < count; k++) {
        const char *end = strchr(s, ',');
        end = end != NULL ? end : s + strlen(s);
        long v;
        if (!parse_long(s, end, &v) || v < 0 || v > INT32_MAX) {
            free(out);
            return cli_usage_error(prog, "%s: '%.*s' is not a token id; give ids like 1,15043", flag, (int) (end - s),
                                   s);
        }
        out[k] = (int32_t) v;
        s = end + 1;
    }
    *ids = out;
    *n = (int) count;
    return 0;
}

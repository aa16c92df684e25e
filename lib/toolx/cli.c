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

/* One entry of an options list, taken apart. */
struct option {
    char short_name[16], long_name[64];
    bool takes_value;
};

static void split(const char *entry, struct option *o) {
    const char *bar = strchr(entry, '|');
    const char *name = bar != NULL ? bar + 1 : entry;
    size_t      n = strlen(name);
    o->takes_value = n > 0 && name[n - 1] == '=';
    snprintf(o->short_name, sizeof o->short_name, "%.*s", bar != NULL ? (int) (bar - entry) : 0, entry);
    snprintf(o->long_name, sizeof o->long_name, "%.*s", (int) (o->takes_value ? n - 1 : n), name);
}

/* arg is the option (exactly, or as "--long=..."); *inline_value gets the
 * part after '=' for the long form. */
static bool matches(const struct option *o, const char *arg, const char **inline_value) {
    *inline_value = NULL;
    if ((o->short_name[0] != '\0' && strcmp(arg, o->short_name) == 0) || strcmp(arg, o->long_name) == 0) {
        return true;
    }
    size_t n = strlen(o->long_name);
    if (strncmp(arg, o->long_name, n) == 0 && arg[n] == '=') {
        *inline_value = arg + n + 1;
        return true;
    }
    return false;
}

static int option_value(const char *prog, const struct option *o, int id, const char *arg, const char *inline_value,
                        int argc, char **argv, int *i, const char **value) {
    if (!o->takes_value) {
        if (inline_value != NULL) {
            cli_usage_error(prog, "%s takes no value; see --help", o->long_name);
            return CLI_ERROR;
        }
        return id;
    }
    if (inline_value == NULL && *i >= argc) {
        cli_usage_error(prog, "%s needs a value; see --help", arg);
        return CLI_ERROR;
    }
    *value = inline_value != NULL ? inline_value : argv[(*i)++];
    return id;
}

/* cli_next on a plain NULL-terminated list of names. */
static const char *list_names(const void *table, int id) {
    return ((const char *const *) table)[id];
}

static int next_in(const char *prog, cli_names_fn names, const void *table, int argc, char **argv, int *i,
                   const char **value) {
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
    const char *entry;
    for (int id = 0; (entry = names(table, id)) != NULL; id++) {
        struct option o;
        const char   *inline_value;
        split(entry, &o);
        if (matches(&o, arg, &inline_value)) {
            return option_value(prog, &o, id, arg, inline_value, argc, argv, i, value);
        }
    }
    cli_usage_error(prog, "unknown option '%s'; see --help", arg);
    return CLI_ERROR;
}

int cli_next(const char *prog, const char *const *options, int argc, char **argv, int *i, const char **value) {
    return next_in(prog, list_names, options, argc, argv, i, value);
}

int cli_parse(const char *prog, const char *const *options, int argc, char **argv, cli_apply_fn apply, void *ctx) {
    return cli_parse_table(prog, list_names, options, argc, argv, apply, ctx);
}

int cli_parse_table(const char *prog, cli_names_fn names, const void *table, int argc, char **argv, cli_apply_fn apply,
                    void *ctx) {
    int i = 1;
    for (;;) {
        const char *value;
        char        flag[64]; /* the option as given, without "=VALUE", for messages */
        snprintf(flag, sizeof flag, "%.*s", i < argc ? (int) strcspn(argv[i], "=") : 0, i < argc ? argv[i] : "");
        int id = next_in(prog, names, table, argc, argv, &i, &value);
        if (id == CLI_END) {
            return 0;
        }
        if (id == CLI_HELP || id == CLI_VERSION) {
            return id;
        }
        if (id == CLI_ERROR) {
            return CLI_EXIT_USAGE;
        }
        int rc = apply(ctx, id, flag, value);
        if (rc != 0) {
            return rc;
        }
    }
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

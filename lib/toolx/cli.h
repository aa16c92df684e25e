/* cli.h - the command line of every program (programs/, engine/), one way:
 *   -x VALUE, --long VALUE and --long=VALUE; switches take no value;
 *   -h/--help and --version;
 *   an unknown option, or an option without its value, is a usage error
 *   (exit status 2) whose one line names it;
 *   integers are decimal digits with an optional leading '-' (no spaces, no
 *   '+'), within a stated range; token lists are such integers separated
 *   by commas. */
#ifndef LLORCH_CLI_H
#define LLORCH_CLI_H

#include <stdint.h>

#define CLI_EXIT_USAGE 2

/* What cli_next found, besides an option's id (>= 0). */
enum cli_result {
    CLI_END = -1,        /* no arguments left */
    CLI_POSITIONAL = -2, /* *value is the argument */
    CLI_HELP = -3,
    CLI_VERSION = -4,
    CLI_ERROR = -5, /* already reported on stderr */
};

/* The next argument of argv (from *i, which it advances): an option's id,
 * with *value set for an option that takes one, or one of enum cli_result.
 * options lists the program's options, NULL-terminated; an option's id is
 * its index in the list. Each is its long name, with its short name before
 * a '|' when it has one, and '=' at the end when it takes a value:
 * "--raw", "-m|--model=". */
int cli_next(const char *prog, const char *const *options, int argc, char **argv, int *i, const char **value);

/* What a program does with one of its options (id >= 0; value NULL for a
 * switch; flag as given, without "=VALUE") or with a positional argument
 * (id CLI_POSITIONAL, value the argument). Returns 0, or an exit status. */
typedef int (*cli_apply_fn)(void *ctx, int id, const char *flag, const char *value);

/* Parses argv[1..] with cli_next and calls apply for each option and
 * positional argument, in order. Returns 0 when all are taken, CLI_HELP or
 * CLI_VERSION when asked for (the caller prints them), or an exit status:
 * CLI_EXIT_USAGE for a usage error (reported), or apply's. */
int cli_parse(const char *prog, const char *const *options, int argc, char **argv, cli_apply_fn apply, void *ctx);

/* The names of option id (>= 0) of a program's own table of options, in
 * the notation of cli_next ("-m|--model="), or NULL past its last one. */
typedef const char *(*cli_names_fn)(const void *table, int id);

/* cli_parse for a program that keeps its options in a table of its own
 * (one row per option: names, value, help): names(table, id) gives the
 * names of row id. */
int cli_parse_table(const char *prog, cli_names_fn names, const void *table, int argc, char **argv, cli_apply_fn apply,
                    void *ctx);

/* Parses an integer in [min, max] into *out. Returns 0, or reports one
 * line and returns CLI_EXIT_USAGE. *out is written only on success. */
int cli_int(const char *prog, const char *flag, const char *value, long min, long max, long *out);

/* Parses "1,15043,2" into a malloc'd array of *n ids in [0, INT32_MAX].
 * Returns 0, or reports one line and returns CLI_EXIT_USAGE. */
int cli_token_list(const char *prog, const char *flag, const char *list, int32_t **ids, int *n);

/* Prints "PROG: error: message" on stderr; returns CLI_EXIT_USAGE. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_usage_error(const char *prog, const char *fmt, ...);

#endif

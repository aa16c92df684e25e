/*
 * llorch-checkpoint-compare: compare two checkpoint dumps and name the first
 * (checkpoint, layer) where they diverge. See docs/COMPARE.md.
 */
#include "llorch_compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "llorch-checkpoint-compare"

enum { EXIT_PASS = 0, EXIT_DIVERGED = 1, EXIT_BAD_INPUT = 2 };
enum output { OUTPUT_TABLE, OUTPUT_JSON, OUTPUT_QUIET };

struct cli {
    const char                  *ref_dir, *cand_dir;
    enum output                  output;
    llorch_ckpt_compare_options *options;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROGRAM " REFERENCE_DIR CANDIDATE_DIR [options]\n"
        "\n"
        "Compares two checkpoint dumps position by position and names the first\n"
        "(checkpoint, layer) where the candidate leaves the reference's tolerance.\n"
        "\n"
        "  --preset NAME            f32 (default), f16 (an f16 KV cache, f16 weights or\n"
        "                           --dtype native) or exact (bit for bit)\n"
        "  --atol X                 absolute tolerance: |cand - ref| <= atol + rtol*|ref|\n"
        "  --rtol X                 relative tolerance\n"
        "  --nmse X                 largest NMSE (MSE over the reference's variance)\n"
        "  --within X               smallest fraction of elements within tolerance (1)\n"
        "  --tol [CKPT:]K=V[,K=V]   any of atol, rtol, nmse, within, for one checkpoint\n"
        "                           (e.g. --tol kq_soft_max:atol=1e-5,rtol=1e-4) or all\n"
        "  --allow-token-mismatch   compare dumps of different token ids anyway\n"
        "  --json                   the report as JSON on stdout\n"
        "  -q, --quiet              only the verdict\n"
        "  -h, --help               this help\n"
        "  --version                the version\n"
        "\n"
        "The preset is applied first, then the other tolerance flags in order.\n"
        "Exit status: 0 all checkpoints pass, 1 a checkpoint diverges, 2 bad input.\n");
}

/* "--name value" or "--name=value"; NULL when argv[*i] is not --name. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t len = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, len) != 0) {
        return NULL;
    }
    if (arg[len] == '=') {
        return arg + len + 1;
    }
    if (arg[len] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int apply_preset(struct cli *cli, int argc, char **argv)
{
    char err[256];
    for (int i = 1; i < argc; i++) {
        bool missing = false;
        const char *v = option_value(argc, argv, &i, "--preset", &missing);
        if (missing) {
            fprintf(stderr, PROGRAM ": --preset needs a value\n");
            return -1;
        }
        if (v && llorch_ckpt_compare_options_preset(cli->options, v, err, sizeof err) != 0) {
            fprintf(stderr, PROGRAM ": %s\n", err);
            return -1;
        }
    }
    return 0;
}

/* --atol X is --tol atol=X; --tol takes the spec as it is. */
static int apply_tolerance(struct cli *cli, const char *key, const char *value)
{
    char spec[512], err[1024];      /* an unknown checkpoint lists the known ones */
    if (key) {
        snprintf(spec, sizeof spec, "%s=%s", key, value);
    } else {
        snprintf(spec, sizeof spec, "%s", value);
    }
    if (llorch_ckpt_compare_options_tolerance(cli->options, spec, err, sizeof err) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        return -1;
    }
    return 0;
}

/* Returns 1 if argv[*i] was a value option (handled), 0 if not, -1 on error. */
static int value_option(struct cli *cli, int argc, char **argv, int *i)
{
    static const struct { const char *flag, *key; } flags[] = {
        { "--tol", NULL }, { "--atol", "atol" }, { "--rtol", "rtol" },
        { "--nmse", "nmse" }, { "--within", "within" }, { "--preset", "" },
    };
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        bool missing = false;
        const char *v = option_value(argc, argv, i, flags[f].flag, &missing);
        if (missing) {
            fprintf(stderr, PROGRAM ": %s needs a value\n", flags[f].flag);
            return -1;
        }
        if (!v) {
            continue;
        }
        if (flags[f].key && !flags[f].key[0]) {
            return 1;                       /* --preset: applied first */
        }
        return apply_tolerance(cli, flags[f].key, v) == 0 ? 1 : -1;
    }
    return 0;
}

/* Returns 0 to go on, or an exit status + 1 (help, version, usage error). */
static int flag_option(struct cli *cli, const char *arg)
{
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        usage(stdout);
        return EXIT_PASS + 1;
    }
    if (strcmp(arg, "--version") == 0) {
        printf(PROGRAM " %s\n", LLORCH_CKPT_VERSION);
        return EXIT_PASS + 1;
    }
    if (strcmp(arg, "--json") == 0) {
        cli->output = OUTPUT_JSON;
    } else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
        cli->output = OUTPUT_QUIET;
    } else if (strcmp(arg, "--allow-token-mismatch") == 0) {
        llorch_ckpt_compare_options_allow_token_mismatch(cli->options, true);
    } else {
        fprintf(stderr, PROGRAM ": unknown option '%s' (see --help)\n", arg);
        return EXIT_BAD_INPUT + 1;
    }
    return 0;
}

static int positional(struct cli *cli, const char *arg)
{
    if (!cli->ref_dir) {
        cli->ref_dir = arg;
    } else if (!cli->cand_dir) {
        cli->cand_dir = arg;
    } else {
        fprintf(stderr, PROGRAM ": unexpected argument '%s' (two dumps are compared)\n", arg);
        return -1;
    }
    return 0;
}

/* Returns -1 to go on, or the exit status. */
static int parse_cli(struct cli *cli, int argc, char **argv)
{
    if (apply_preset(cli, argc, argv) != 0) {
        return EXIT_BAD_INPUT;
    }
    for (int i = 1; i < argc; i++) {
        int rc = value_option(cli, argc, argv, &i);
        if (rc < 0) {
            return EXIT_BAD_INPUT;
        }
        if (rc > 0) {
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            rc = flag_option(cli, argv[i]);
            if (rc) {
                return rc - 1;
            }
        } else if (positional(cli, argv[i]) != 0) {
            return EXIT_BAD_INPUT;
        }
    }
    if (!cli->cand_dir) {
        usage(stderr);
        return EXIT_BAD_INPUT;
    }
    return -1;
}

/* Warnings once each: the table prints them itself; the verdict alone has
 * no room for them and JSON is for programs, so people get them here. */
static void print_diagnostics(const struct cli *cli, const llorch_ckpt_comparison *c)
{
    for (size_t i = 0; cli->output != OUTPUT_TABLE && i < llorch_ckpt_comparison_n_warnings(c); i++) {
        fprintf(stderr, PROGRAM ": warning: %s\n", llorch_ckpt_comparison_warning(c, i));
    }
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (r->status == LLORCH_CKPT_STATUS_ERROR) {
            fprintf(stderr, PROGRAM ": error: %s\n", r->message);
        }
    }
}

static int fail_input(const struct cli *cli, const char *message)
{
    fprintf(stderr, PROGRAM ": error: %s\n", message);
    if (cli->output == OUTPUT_JSON) {
        llorch_ckpt_report_json_error(stdout, message);
    }
    return EXIT_BAD_INPUT;
}

static int report(const struct cli *cli, const llorch_ckpt_comparison *c,
                  const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand)
{
    struct llorch_ckpt_report_info info = { cli->ref_dir, cli->cand_dir, ref, cand, cli->options };
    int rc;
    print_diagnostics(cli, c);
    switch (cli->output) {
    case OUTPUT_JSON:  rc = llorch_ckpt_report_json(stdout, c, &info); break;
    case OUTPUT_QUIET: rc = llorch_ckpt_report_verdict(stdout, c); break;
    case OUTPUT_TABLE:
    default:           rc = llorch_ckpt_report_table(stdout, c, &info); break;
    }
    if (rc != 0 || fflush(stdout) != 0) {
        fprintf(stderr, PROGRAM ": error: cannot write the report\n");
        return EXIT_BAD_INPUT;
    }
    return llorch_ckpt_comparison_exit_code(c);
}

static int run(const struct cli *cli)
{
    char err[4096];
    llorch_ckpt_dump *ref = NULL, *cand = NULL;
    llorch_ckpt_comparison *c = NULL;
    int status;
    if (!(ref = llorch_ckpt_dump_open(cli->ref_dir, err, sizeof err)) ||
        !(cand = llorch_ckpt_dump_open(cli->cand_dir, err, sizeof err)) ||
        !(c = llorch_ckpt_compare(ref, cand, cli->options, err, sizeof err))) {
        status = fail_input(cli, err);
    } else {
        status = report(cli, c, ref, cand);
    }
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_dump_free(cand);
    llorch_ckpt_dump_free(ref);
    return status;
}

int main(int argc, char **argv)
{
    struct cli cli = { NULL, NULL, OUTPUT_TABLE, llorch_ckpt_compare_options_create() };
    if (!cli.options) {
        fprintf(stderr, PROGRAM ": out of memory\n");
        return EXIT_BAD_INPUT;
    }
    int status = parse_cli(&cli, argc, argv);
    if (status < 0) {
        status = run(&cli);
    }
    llorch_ckpt_compare_options_free(cli.options);
    return status;
}

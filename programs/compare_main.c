/*
 * llorch-checkpoint-compare: compare two checkpoint dumps and name the first
 * (checkpoint, layer) where they diverge. See docs/COMPARE.md.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, stat */

#include "atomic_file.h"
#include "cli.h"
#include "llorch_compare.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "llorch-checkpoint-compare"

enum {
    EXIT_PASS = 0,
    EXIT_DIVERGED = 1,
    EXIT_BAD_INPUT = 2
};
enum output {
    OUTPUT_TABLE,
    OUTPUT_JSON,
    OUTPUT_QUIET,
    OUTPUT_HEATMAP
};

struct cli {
    const char                  *ref_dir, *cand_dir;
    enum output                  output;
    llorch_ckpt_compare_options *options;
    const char                  *html;     /* --html FILE, or NULL */
    const char                  *noise;    /* --noise DIR, or NULL */
    bool                         decision; /* --decision: the logits decide */
    const char                  *isolated; /* --isolated DIR: a fed run, or NULL */
};

static void usage(FILE *f) {
    fprintf(f, "usage: " PROG " REFERENCE_DIR CANDIDATE_DIR [options]\n"
               "\n"
               "Compares two checkpoint dumps position by position and names the first\n"
               "(checkpoint, layer) where the candidate goes wrong, or says why none is to blame.\n"
               "\n"
               "By default a checkpoint fails where its error grows far over its inputs' errors\n"
               "(1000x NMSE; a right engine only carries them along), allowing for the precision\n"
               "both dumps state (f16 cache, quantized weights): bugs far below any fixed\n"
               "tolerance are named where they are, slow drift through deep layers is not.\n"
               "\n"
               "  --only LIST              the checkpoints the candidate's engine produces (names or\n"
               "                           numbers 1-6, e.g. attn_norm,ffn_out,logits): only these\n"
               "                           are compared, and only their absence counts as missing\n"
               "  --allow-missing          a candidate that lacks checkpoints or positions, or says it\n"
               "                           is incomplete, passes on what it holds (still reported)\n"
               "  --isolated FED           judge each layer on its own: FED is llama.cpp fed the\n"
               "                           candidate's residual stream (extractor --feed CAND), or the\n"
               "                           candidate fed the reference's; the exit status is that\n"
               "                           comparison's, beside the chained one, layer by layer\n");
    fprintf(f, "  --preset NAME            fixed limits instead of the default judgement: f32, f16\n"
               "                           (an f16 KV cache, f16 weights or --dtype native), backend\n"
               "                           (two llama.cpp backends or settings: CPU vs CUDA, flash\n"
               "                           attention on vs off), exact (bit for bit); auto: the default\n"
               "  --atol X                 absolute tolerance: |cand - ref| <= atol + rtol*|ref|\n"
               "  --rtol X                 relative tolerance\n"
               "  --nmse X                 largest NMSE (MSE over the reference's variance)\n"
               "  --within X               smallest fraction of elements within tolerance (1)\n"
               "  --tol [CKPT:]K=V[,K=V]   any of atol, rtol, nmse, within, for one checkpoint\n"
               "                           (e.g. --tol kq_soft_max:atol=1e-5,rtol=1e-4) or all\n"
               "  --noise DIR              a noise floor: a second reference (same model and tokens,\n"
               "                           another backend or setting); a checkpoint outside the\n"
               "                           tolerance passes when its max_abs_err and rmse are within\n"
               "                           K times the reference's against DIR at that checkpoint\n"
               "                           and layer\n"
               "  --noise-factor K         K for --noise (default 4)\n"
               "  --allow-token-mismatch   compare dumps of different token ids anyway\n"
               "  --allow-model-mismatch   compare dumps of different models (model.fingerprint)\n"
               "                           anyway\n"
               "  --seq N[:M]              dumps of several sequences (--parallel): compare sequence\n"
               "                           N of the reference with sequence M (default N) of the\n"
               "                           candidate; a dump of one sequence is that sequence. By\n"
               "                           default two such dumps compare every sequence\n"
               "  --decision               judge the run by the logits alone (engines whose internals\n"
               "                           use other layouts): pass when the argmax agrees at every\n"
               "                           compared position and the mean KL divergence is at most\n"
               "                           --kl-max; both dumps need the logits (--checkpoints ...,logits)\n"
               "  --kl-max X               the mean KL divergence (nats) --decision allows (default 1e-4)\n"
               "  --json                   the report as JSON on stdout\n"
               "  -q, --quiet              only the verdict\n"
               "  --heatmap                a heat map of layers by checkpoints on stdout (colored\n"
               "                           on a terminal; NO_COLOR=1 turns that off)\n"
               "  --html FILE              also write the report as one self-contained HTML page:\n"
               "                           heat map, the first divergence per position, head and\n"
               "                           step, both dumps' settings, every row\n"
               "  -h, --help               this help\n"
               "  --version                the version\n"
               "\n"
               "A tolerance flag replaces the default judgement by the f32 preset with that limit;\n"
               "the preset is applied first, then the other tolerance flags in order.\n"
               "Exit status: 0 all checkpoints pass and the candidate holds what the reference\n"
               "holds, 1 a checkpoint diverges (or settings explain the failures), 2 bad input,\n"
               "3 all compared checkpoints pass but the candidate lacks some or is incomplete.\n");
}

enum option_id {
    OPT_JSON,
    OPT_QUIET,
    OPT_ALLOW_TOKENS,
    OPT_PRESET,
    OPT_TOL,
    OPT_ATOL,
    OPT_RTOL,
    OPT_NMSE,
    OPT_WITHIN,
    OPT_HTML,
    OPT_HEATMAP,
    OPT_SEQ,
    OPT_NOISE,
    OPT_NOISE_FACTOR,
    OPT_ALLOW_MODEL,
    OPT_DECISION,
    OPT_KL_MAX,
    OPT_ONLY,
    OPT_ALLOW_MISSING,
    OPT_ISOLATED
};

static const char *const cli_options[] = {"--json",          "-q|--quiet",      "--allow-token-mismatch",
                                          "--preset=",       "--tol=",          "--atol=",
                                          "--rtol=",         "--nmse=",         "--within=",
                                          "--html=",         "--heatmap",       "--seq=",
                                          "--noise=",        "--noise-factor=", "--allow-model-mismatch",
                                          "--decision",      "--kl-max=",       "--only=",
                                          "--allow-missing", "--isolated=",     NULL};

/* --atol X is --tol atol=X; --tol takes the spec as it is. */
static int apply_tolerance(struct cli *cli, int id, const char *value) {
    static const char *const keys[] = {"atol", "rtol", "nmse", "within"};
    char                     spec[512], err[1024]; /* an unknown checkpoint lists the known ones */
    if (id == OPT_TOL) {
        snprintf(spec, sizeof spec, "%s", value);
    } else {
        snprintf(spec, sizeof spec, "%s=%s", keys[id - OPT_ATOL], value);
    }
    if (llorch_ckpt_compare_options_tolerance(cli->options, spec, err, sizeof err) != 0) {
        return cli_usage_error(PROG, "%s", err);
    }
    return 0;
}

/* --seq N or N:M. */
static int apply_seq(struct cli *cli, const char *value) {
    long        ref, cand;
    char        buf[64];
    const char *colon = strchr(value, ':');
    snprintf(buf, sizeof buf, "%.*s", colon != NULL ? (int) (colon - value) : (int) strlen(value), value);
    int rc = cli_int(PROG, "--seq", buf, 0, 255, &ref);
    cand = ref;
    if (rc == 0 && colon != NULL) {
        rc = cli_int(PROG, "--seq", colon + 1, 0, 255, &cand);
    }
    if (rc == 0) {
        llorch_ckpt_compare_options_sequences(cli->options, (int) ref, (int) cand);
    }
    return rc;
}

static int apply_noise_factor(struct cli *cli, const char *value) {
    char   err[256], *end;
    double k = strtod(value, &end);
    if (end == value || *end) {
        return cli_usage_error(PROG, "--noise-factor expects a number, got '%s'", value);
    }
    if (llorch_ckpt_compare_options_noise_factor(cli->options, k, err, sizeof err) != 0) {
        return cli_usage_error(PROG, "--noise-factor: %s", err);
    }
    return 0;
}

/* --kl-max X: the decision's bound on the mean KL divergence. */
static int apply_kl_max(struct cli *cli, const char *value) {
    char   err[256], *end;
    double x = strtod(value, &end);
    if (end == value || *end) {
        return cli_usage_error(PROG, "--kl-max expects a number, got '%s'", value);
    }
    if (llorch_ckpt_compare_options_kl_max(cli->options, x, err, sizeof err) != 0) {
        return cli_usage_error(PROG, "--kl-max: %s", err);
    }
    return 0;
}

static int positional(struct cli *cli, const char *arg) {
    if (!cli->ref_dir) {
        cli->ref_dir = arg;
    } else if (!cli->cand_dir) {
        cli->cand_dir = arg;
    } else {
        return cli_usage_error(PROG, "unexpected argument '%s' (two dumps are compared)", arg);
    }
    return 0;
}

/* One pass over the arguments takes the presets only, the next everything
 * else: the preset is applied first, then the other options in order. */
struct pass {
    struct cli *cli;
    bool        presets;
};

static int apply_option(void *ctx, int id, const char *flag, const char *value) {
    struct pass *p = ctx;
    struct cli  *cli = p->cli;
    char         err[256];
    (void) flag;
    if (id == CLI_POSITIONAL || id == OPT_PRESET) {
        if (p->presets != (id == OPT_PRESET)) {
            return 0; /* taken in the other pass */
        }
        if (id == CLI_POSITIONAL) {
            return positional(cli, value);
        }
        return llorch_ckpt_compare_options_preset(cli->options, value, err, sizeof err) == 0
                   ? 0
                   : cli_usage_error(PROG, "%s", err);
    }
    if (p->presets) {
        return 0;
    }
    switch (id) {
        case OPT_JSON:
        case OPT_QUIET:
        case OPT_HEATMAP: /* the last one given wins */
            cli->output = id == OPT_JSON ? OUTPUT_JSON : id == OPT_QUIET ? OUTPUT_QUIET : OUTPUT_HEATMAP;
            return 0;
        case OPT_HTML:
            cli->html = value;
            return 0;
        case OPT_ALLOW_TOKENS:
            llorch_ckpt_compare_options_allow_token_mismatch(cli->options, true);
            return 0;
        case OPT_ALLOW_MODEL:
            llorch_ckpt_compare_options_allow_model_mismatch(cli->options, true);
            return 0;
        case OPT_SEQ:
            return apply_seq(cli, value);
        case OPT_NOISE:
            cli->noise = value;
            return 0;
        case OPT_NOISE_FACTOR:
            return apply_noise_factor(cli, value);
        case OPT_DECISION:
            cli->decision = true;
            llorch_ckpt_compare_options_decision(cli->options, true);
            return 0;
        case OPT_KL_MAX:
            return apply_kl_max(cli, value);
        case OPT_ONLY:
            return llorch_ckpt_compare_options_only(cli->options, value, err, sizeof err) == 0
                       ? 0
                       : cli_usage_error(PROG, "--only %s: %s", value, err);
        case OPT_ISOLATED:
            cli->isolated = value;
            return 0;
        case OPT_ALLOW_MISSING:
            llorch_ckpt_compare_options_allow_missing(cli->options, true);
            return 0;
        default:
            return apply_tolerance(cli, id, value);
    }
}

/* Returns -1 to go on, or the exit status. */
static int parse_cli(struct cli *cli, int argc, char **argv) {
    struct pass presets = {cli, true}, rest = {cli, false};
    int         rc = cli_parse(PROG, cli_options, argc, argv, apply_option, &presets);
    if (rc == 0) {
        rc = cli_parse(PROG, cli_options, argc, argv, apply_option, &rest);
    }
    if (rc == CLI_HELP || rc == CLI_VERSION) {
        if (rc == CLI_HELP) {
            usage(stdout);
        } else {
            printf(PROG " %s\n", LLORCH_CKPT_VERSION);
        }
        return EXIT_PASS;
    }
    if (rc != 0) {
        return rc;
    }
    if (!cli->cand_dir) {
        fprintf(stderr, "usage: " PROG " REFERENCE_DIR CANDIDATE_DIR [options]\n");
        return cli_usage_error(PROG, "%s; give two dumps, e.g. llama.cpp's and your engine's (see --help)",
                               cli->ref_dir ? "only one dump given" : "no dumps given");
    }
    return -1;
}

/* Warnings once each: the table prints them itself; the verdict alone has
 * no room for them and JSON is for programs, so people get them here. */
static void print_diagnostics(const struct cli *cli, const llorch_ckpt_comparison *c) {
    for (size_t i = 0; cli->output != OUTPUT_TABLE && i < llorch_ckpt_comparison_n_warnings(c); i++) {
        fprintf(stderr, PROG ": warning: %s\n", llorch_ckpt_comparison_warning(c, i));
    }
    for (size_t i = 0; i < llorch_ckpt_comparison_n_rows(c); i++) {
        const struct llorch_ckpt_row *r = llorch_ckpt_comparison_row(c, i);
        if (r->status == LLORCH_CKPT_STATUS_ERROR) {
            fprintf(stderr, PROG ": error: %s\n", r->message);
        }
    }
}

static int fail_input(const struct cli *cli, const char *message) {
    fprintf(stderr, PROG ": error: %s\n", message);
    if (cli->output == OUTPUT_JSON) {
        llorch_ckpt_report_json_error(stdout, message);
    }
    return EXIT_BAD_INPUT;
}

/* Colors only for a person at a terminal who has not turned them off. */
static bool use_color(void) {
    const char *term = getenv("TERM");
    return isatty(fileno(stdout)) && !getenv("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
}

static int print_report(const struct cli *cli, const llorch_ckpt_comparison *c,
                        const struct llorch_ckpt_report_info *info) {
    switch (cli->output) {
        case OUTPUT_JSON:
            return llorch_ckpt_report_json(stdout, c, info);
        case OUTPUT_QUIET:
            return llorch_ckpt_report_verdict(stdout, c);
        case OUTPUT_HEATMAP:
            return llorch_ckpt_report_heatmap(stdout, c, info, use_color());
        case OUTPUT_TABLE:
        default:
            return llorch_ckpt_report_table(stdout, c, info);
    }
}

/* --html FILE is created as FILE.part before any dump is read, so that a
 * path that cannot be written fails at once, and renamed when whole. */
static int open_html(const char *path, struct llorch_atomic_file *a) {
    char        dir[4096], err[4400];
    struct stat st;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (!name[0] || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        return cli_usage_error(PROG, "--html %s is a directory; give the report's file name, e.g. %s%sreport.html",
                               path, path, name[0] ? "/" : "");
    }
    if (strlen(path) + 8 > sizeof a->path) {
        return cli_usage_error(PROG, "--html %.64s...: the path is too long; choose a shorter one", path);
    }
    snprintf(dir, sizeof dir, "%.*s", slash ? (int) (slash - path) : 1, slash ? path : ".");
    if (llorch_atomic_create(a, slash == path ? "" : dir, name, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": error: --html: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

static int write_html(struct llorch_atomic_file *html, const llorch_ckpt_comparison *c,
                      const struct llorch_ckpt_report_info *info) {
    char err[4400];
    if (llorch_ckpt_report_html(html->f, c, info) != 0) {
        llorch_atomic_abort(html);
        fprintf(stderr,
                PROG ": error: --html: cannot write %s (a write error or out of memory); free space or "
                     "choose another path\n",
                html->path);
        return -1;
    }
    if (llorch_atomic_commit(html, false, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": error: --html: %s\n", err);
        return -1;
    }
    return 0;
}

/* --decision: the logits alone give the exit status (0 or 1), whatever
 * the other rows; without logits in common there is nothing to decide by
 * (an error, before any report). */
static int decision_missing(const struct cli *cli, const llorch_ckpt_comparison *c) {
    char                  why[4400], message[4800];
    llorch_ckpt_decision *d = llorch_ckpt_comparison_decision(c, why, sizeof why);
    if (d) {
        llorch_ckpt_decision_free(d);
        return 0;
    }
    snprintf(message, sizeof message,
             "--decision: %s vs %s: %s; dump the logits of both runs (--checkpoints including logits, e.g. "
             "--checkpoints 1-6,logits) and compare again",
             cli->ref_dir, cli->cand_dir, why);
    return fail_input(cli, message);
}

static int decision_status(const struct cli *cli, const llorch_ckpt_comparison *c) {
    if (!cli->decision) {
        return llorch_ckpt_comparison_exit_code(c);
    }
    llorch_ckpt_decision *d = llorch_ckpt_comparison_decision(c, NULL, 0);
    int                   status = llorch_ckpt_decision_exit_code(d);
    llorch_ckpt_decision_free(d);
    return status;
}

/* The HTML file first: when it cannot be written, the one line that says
 * so is all there is. */
static int report(const struct cli *cli, const llorch_ckpt_comparison *c, const llorch_ckpt_comparison *isolated,
                  const llorch_ckpt_dump *const dumps[4], struct llorch_atomic_file *html) {
    struct llorch_ckpt_report_info info = {cli->ref_dir, cli->cand_dir, dumps[0],     dumps[1],
                                           cli->options, isolated,      cli->isolated};
    if (html && write_html(html, c, &info) != 0) {
        return EXIT_BAD_INPUT;
    }
    print_diagnostics(cli, c);
    if (print_report(cli, c, &info) != 0 || fflush(stdout) != 0) {
        fprintf(stderr, PROG ": error: cannot write the report\n");
        return EXIT_BAD_INPUT;
    }
    return isolated ? llorch_ckpt_comparison_exit_code(isolated) : decision_status(cli, c);
}

/* --isolated FED: a run fed the other side's residual stream. Made by the
 * reference's producer (llama.cpp fed by the candidate), it stands in for
 * the reference; else (the engine fed by llama.cpp) for the candidate. */
static llorch_ckpt_comparison *compare_isolated(const struct cli *cli, llorch_ckpt_dump *const d[4], char *err,
                                                size_t err_size) {
    const char             *fed = llorch_ckpt_dump_producer(d[3]), *ref = llorch_ckpt_dump_producer(d[0]);
    bool                    for_ref = fed && ref && strcmp(fed, ref) == 0;
    llorch_ckpt_comparison *c =
        llorch_ckpt_compare(for_ref ? d[3] : d[0], for_ref ? d[1] : d[3], cli->options, err, err_size);
    if (c && llorch_ckpt_comparison_fed(c, NULL) == 0) {
        snprintf(err, err_size,
                 "--isolated %s: not a fed run (its manifest has no \"fed\"); make it with "
                 "llorch-checkpoint-extractor --feed %s (llama.cpp fed by the candidate)",
                 cli->isolated, cli->cand_dir);
        llorch_ckpt_comparison_free(c);
        return NULL;
    }
    return c;
}

static int run(const struct cli *cli) {
    char                      err[4096];
    struct llorch_atomic_file html = {0};
    llorch_ckpt_dump         *d[4] = {NULL, NULL, NULL, NULL}; /* reference, candidate, noise, fed */
    const char               *dirs[4] = {cli->ref_dir, cli->cand_dir, cli->noise, cli->isolated};
    llorch_ckpt_comparison   *c = NULL, *isolated = NULL;
    int                       status, opened = 0;
    if (cli->html && (status = open_html(cli->html, &html)) != 0) {
        return status;
    }
    while (opened < 4 && (!dirs[opened] || (d[opened] = llorch_ckpt_dump_open(dirs[opened], err, sizeof err)))) {
        opened++;
    }
    c = opened == 4 ? llorch_ckpt_compare_noise(d[0], d[1], d[2], cli->options, err, sizeof err) : NULL;
    if (c && cli->isolated && (isolated = compare_isolated(cli, d, err, sizeof err)) == NULL) {
        llorch_ckpt_comparison_free(c);
        c = NULL;
    }
    if (c == NULL) {
        status = fail_input(cli, err);
    } else if (cli->decision && (status = decision_missing(cli, c)) != 0) {
        /* said so */
    } else {
        status = report(cli, c, isolated, (const llorch_ckpt_dump *const *) d, cli->html ? &html : NULL);
    }
    if (html.f) {
        llorch_atomic_abort(&html); /* no report: nothing under its name */
    }
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_comparison_free(isolated);
    for (int i = 0; i < 4; i++) {
        llorch_ckpt_dump_free(d[i]);
    }
    return status;
}

int main(int argc, char **argv) {
    struct cli cli = {NULL, NULL, OUTPUT_TABLE, llorch_ckpt_compare_options_create(), NULL, NULL, false, NULL};
    if (!cli.options) {
        fprintf(stderr, PROG ": error: out of memory; close other programs and try again\n");
        return EXIT_BAD_INPUT;
    }
    int status = parse_cli(&cli, argc, argv);
    if (status < 0) {
        status = run(&cli);
    }
    llorch_ckpt_compare_options_free(cli.options);
    return status;
}

/* extractor_log.c - what the extractor says on stderr besides its summary:
 * llama.cpp's log (with -v), the run's details (with -v), every error
 * line, and what SIGINT does. */
#define _POSIX_C_SOURCE 200809L
#include "extractor.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool verbose;
static char llama_first_error[256];

/* llama.cpp's log is shown with -v only; its first error is kept so that
 * our one-line error can say why. */
static void log_filter(enum ggml_log_level level, const char *text, void *data) {
    (void) data;
    if (verbose) {
        fputs(text, stderr);
    }
    if (level == GGML_LOG_LEVEL_ERROR && llama_first_error[0] == '\0') {
        snprintf(llama_first_error, sizeof llama_first_error, "%s", text);
        llama_first_error[strcspn(llama_first_error, "\n")] = '\0';
    }
}

void extractor_log_init(bool on) {
    verbose = on;
    llama_log_set(log_filter, NULL);
}

bool extractor_verbose(void) {
    return verbose;
}

const char *extractor_llama_reason(void) {
    return llama_first_error[0] != '\0' ? llama_first_error : "no reason given; run with -v to see llama.cpp's log";
}

static void error_line(const char *fmt, va_list ap) {
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

int extractor_bad_input(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_line(fmt, ap);
    va_end(ap);
    return 2;
}

int extractor_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_line(fmt, ap);
    va_end(ap);
    return 1;
}

void extractor_detail(const char *fmt, ...) {
    if (!verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* --- SIGINT ------------------------------------------------------------------- */

static llorch_capture *volatile interrupt_target;
volatile sig_atomic_t extractor_interrupted;

static void on_sigint(int sig) {
    (void) sig;
    extractor_interrupted = 1;
    if (interrupt_target != NULL) {
        llorch_capture_request_stop(interrupt_target);
    }
}

void extractor_catch_signals(llorch_capture *c) {
    interrupt_target = c;
    signal(SIGINT, on_sigint);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit becomes a write error, not a kill */
}

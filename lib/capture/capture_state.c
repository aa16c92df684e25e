/* capture_state.c - the bottom of lib/capture: the capture's error, its
 * table of what was ever captured, its notes on what was not, and whether
 * it needs a callback at all. Every other file calls down into these;
 * nothing here calls up. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void llorch_capture_set_error(llorch_capture *cap, const char *fmt, ...) {
    if (cap->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cap->error, sizeof cap->error, fmt, ap);
    va_end(ap);
    cap->failed = 1;
}

size_t llorch_capture_ever_index(const llorch_capture *cap, int kind, int layer) {
    return (size_t) kind * (size_t) (cap->n_layer + 1) + (size_t) (layer + 1);
}

void llorch_capture_note_missing(llorch_capture *cap, enum llorch_ckpt_kind kind, int layer, const char *reason) {
    for (int i = 0; i < cap->n_missing; i++) {
        if (cap->missing[i].kind == kind && cap->missing[i].layer == layer) {
            return;
        }
    }
    struct missing_note *grown = realloc(cap->missing, (size_t) (cap->n_missing + 1) * sizeof *grown);
    if (grown == NULL) {
        llorch_capture_set_error(cap, "out of memory");
        return;
    }
    cap->missing = grown;
    struct missing_note *m = &cap->missing[cap->n_missing++];
    m->kind = kind;
    m->layer = layer;
    snprintf(m->reason, sizeof m->reason, "%s", reason);
}

bool llorch_capture_active(const llorch_capture *cap) {
    return cap->p.feed != NULL || !llorch_ckpt_selection_empty(cap->p.selection);
}

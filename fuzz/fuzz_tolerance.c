/*
 * fuzz_tolerance.c - libFuzzer target: --tol specs and presets.
 */
#include "llorch_compare.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char   spec[512], err[256];
    size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
    memcpy(spec, data, n);
    spec[n] = '\0';
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    if (!o) {
        return 0;
    }
    llorch_ckpt_compare_options_preset(o, spec, err, sizeof err);
    /* The spec twice: settings accumulate; then a lookup by its own name. */
    for (int i = 0; i < 2; i++) {
        llorch_ckpt_compare_options_tolerance(o, spec, err, sizeof err);
    }
    char *colon = strchr(spec, ':');
    if (colon) {
        *colon = '\0';
    }
    struct llorch_ckpt_tolerance t = llorch_ckpt_compare_options_get(o, spec);
    if (!(t.atol >= 0 && t.rtol >= 0 && t.nmse >= 0 && t.within >= 0 && t.within <= 1) || !isfinite(t.atol) ||
        !isfinite(t.rtol) || !isfinite(t.nmse)) {
        abort();
    }
    llorch_ckpt_compare_options_free(o);
    return 0;
}

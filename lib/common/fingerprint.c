/*
 * fingerprint.c - the form of a model fingerprint (docs/FORMAT.md, "The
 * model fingerprint"), which the writer checks before writing one and the
 * reader before taking one from an untrusted manifest. Computing one from
 * a GGUF file is lib/write/gguf_fingerprint.c.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include "llorch_checkpoint.h"

#include <string.h>

#define MAX_FINGERPRINT 255

bool llorch_ckpt_fingerprint_valid(const char *s) {
    if (s == NULL) {
        return false;
    }
    size_t n = strnlen(s, MAX_FINGERPRINT + 1), scheme = 0;
    if (n > MAX_FINGERPRINT) {
        return false;
    }
    while (scheme < n && ((s[scheme] >= 'a' && s[scheme] <= 'z') || (s[scheme] >= '0' && s[scheme] <= '9') ||
                          s[scheme] == '.' || s[scheme] == '-')) {
        scheme++;
    }
    if (scheme == 0 || scheme >= n - 1 || s[scheme] != ':') {
        return false;
    }
    for (size_t i = scheme + 1; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

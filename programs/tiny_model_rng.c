/*
 * tiny_model_rng.c - seeded normal values that are the same on every machine.
 *
 * A counter-based splitmix64 (value k of a stream is mix(key + (k+1)*gamma))
 * feeds Box-Muller computed in double and rounded once to float. Nothing
 * depends on generation order, thread count or chunk size, and the only
 * floating-point operations are log, sqrt, cos, sin and + * in double, so
 * the rounded float32 values are reproducible across compilers and
 * machines (the target is built with -ffp-contract=off so no FMA sneaks in).
 */
#include "tiny_model.h"

#include <math.h>

#define TINY_GOLDEN_GAMMA 0x9e3779b97f4a7c15ull
#define TINY_TWO_PI       6.283185307179586476925286766559

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FNV-1a: the tensor name chooses the stream. */
static uint64_t hash_name(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 0x100000001b3ull;
    }
    return h;
}

struct tiny_rng tiny_rng_for(uint64_t seed, const char *tensor_name) {
    struct tiny_rng rng = {mix64(hash_name(tensor_name) ^ mix64(seed + TINY_GOLDEN_GAMMA))};
    return rng;
}

static uint64_t rng_at(const struct tiny_rng *rng, uint64_t k) {
    return mix64(rng->key + (k + 1) * TINY_GOLDEN_GAMMA);
}

/* Box-Muller on the pair of uniforms (2p, 2p+1) gives elements 2p and 2p+1. */
static void normal_pair(const struct tiny_rng *rng, uint64_t p, double *z0, double *z1) {
    double u1 = (double) ((rng_at(rng, 2 * p) >> 11) + 1) * 0x1p-53; /* (0, 1]: log is finite */
    double u2 = (double) (rng_at(rng, 2 * p + 1) >> 11) * 0x1p-53;   /* [0, 1) */
    double r = sqrt(-2.0 * log(u1));
    double a = TINY_TWO_PI * u2;
    *z0 = r * cos(a);
    *z1 = r * sin(a);
}

void tiny_rng_fill(const struct tiny_rng *rng, struct tiny_init init, int64_t first, int64_t n, float *out) {
    int64_t i = first, end = first + n;
    while (i < end) {
        double z[2];
        normal_pair(rng, (uint64_t) i / 2, &z[0], &z[1]);
        /* The first pair may start at its second element, the last may end at its first. */
        for (int64_t j = i % 2; j < 2 && i < end; j++, i++) {
            out[i - first] = (float) (init.mean + init.std * z[j]);
        }
    }
}

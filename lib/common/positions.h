/* positions.h - which token rows to keep (--positions): ranges of
 * absolute positions, parsed from "last", "last:16", "0-15,2040-2055". */
#ifndef LLORCH_POSITIONS_H
#define LLORCH_POSITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct llorch_position_range {
    int32_t first, last; /* inclusive */
};

/* Parses spec against a run of n_tokens tokens into *ranges (malloc'd,
 * ascending, disjoint; *n of them). "last" is position n_tokens-1 and
 * "last:K" the last K positions. -1 with a one-line message naming the
 * item for an empty list or item, a position outside 0..n_tokens-1, or
 * overlapping ranges. */
int llorch_positions_parse(const char *spec, int32_t n_tokens, struct llorch_position_range **ranges, int *n, char *err,
                           size_t err_size);

/* Whether pos is in one of the n ranges. */
bool llorch_positions_has(const struct llorch_position_range *ranges, int n, int32_t pos);

#endif

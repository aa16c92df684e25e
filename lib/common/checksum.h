/* checksum.h - the CRC-32 of a file's data, as the manifest records it:
 * zlib's CRC-32 (the same value as Python's zlib.crc32). */
#ifndef LLORCH_CHECKSUM_H
#define LLORCH_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint32_t llorch_crc32(const void *data, size_t size);
/* Continues crc (a previous result, or 0) over more data. */
uint32_t llorch_crc32_update(uint32_t crc, const void *data, size_t size);

#endif

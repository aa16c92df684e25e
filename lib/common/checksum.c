/* checksum.c - CRC-32 through libdeflate, whose carry-less-multiply code
 * runs at about 17 GB/s here against zlib's 7: the writer thread checksums
 * every byte it writes, on a core that compute may need. */
#include "checksum.h"

#include <libdeflate.h>

uint32_t llorch_crc32(const void *data, size_t size) {
    return libdeflate_crc32(0, data, size);
}

uint32_t llorch_crc32_update(uint32_t crc, const void *data, size_t size) {
    return libdeflate_crc32(crc, data, size);
}

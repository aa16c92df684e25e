"""numpy's .npz written as a stream, as docs/FORMAT.md specifies (and as the
C writer, lib/write/write_npz.c, writes it byte for byte): stored .npy
members whose CRC-32 and sizes are in the local header, an extra field
(id 0xD935, zeros) padding each member so that its .npy data starts at a
multiple of 64 bytes, fixed times (1980-01-01), zip64 fields only where a
size, an offset or the member count needs them."""

import os
import struct
import zlib

from .npyfile import ALIGN

ZIP64_BYTES = 0xFFFFFFFF
ZIP64_MEMBERS = 0xFFFF
DOS_DATE_1980 = 0x0021
PAD_EXTRA_ID = 0xD935


class NpzStream:
    """Appends .npy members to PATH (normally checkpoints.npz.part)."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "wb")
        self.offset = 0
        self.members = []  # (name bytes, crc, size, local header offset)

    def _write(self, data):
        self.f.write(data)
        self.offset += len(data)

    def add(self, name, npy_header, data):
        """Adds member NAME (KEY.npy); returns the offset of its data."""
        raw = name.encode("utf-8")
        size = len(npy_header) + len(data)
        crc = zlib.crc32(data, zlib.crc32(npy_header)) & 0xFFFFFFFF
        zip64 = size >= ZIP64_BYTES
        z64 = 20 if zip64 else 0
        data_at = self.offset + 30 + len(raw) + z64 + 4 + len(npy_header)
        pad = (ALIGN - data_at % ALIGN) % ALIGN
        size32 = ZIP64_BYTES if zip64 else size
        version = 45 if zip64 else 20
        h = struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, 0, 0, DOS_DATE_1980, crc, size32, size32, len(raw),
                        z64 + 4 + pad)
        h += raw
        if zip64:
            h += struct.pack("<HHQQ", 0x0001, 16, size, size)
        h += struct.pack("<HH", PAD_EXTRA_ID, pad) + b"\0" * pad
        self.members.append((raw, crc, size, self.offset))
        self._write(h)
        self._write(npy_header)
        at = self.offset
        self._write(data)
        return at

    def _central(self, raw, crc, size, offset):
        big_size, big_offset = size >= ZIP64_BYTES, offset >= ZIP64_BYTES
        z64 = (16 if big_size else 0) + (8 if big_offset else 0)
        version = 45 if z64 else 20
        size32 = ZIP64_BYTES if big_size else size
        h = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, 0, 0, DOS_DATE_1980, crc, size32,
                        size32, len(raw), 4 + z64 if z64 else 0, 0, 0, 0, 0,
                        ZIP64_BYTES if big_offset else offset)
        h += raw
        if z64:
            h += struct.pack("<HH", 0x0001, z64)
            h += struct.pack("<QQ", size, size) if big_size else b""
            h += struct.pack("<Q", offset) if big_offset else b""
        return h

    def finish(self):
        """Writes the central directory and the end records; closes the file."""
        cd_offset = self.offset
        for m in self.members:
            self._write(self._central(*m))
        cd_size = self.offset - cd_offset
        n = len(self.members)
        many, far, big = n >= ZIP64_MEMBERS, cd_offset >= ZIP64_BYTES, cd_size >= ZIP64_BYTES
        end = b""
        if many or far or big:
            end += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_offset)
            end += struct.pack("<IIQI", 0x07064B50, 0, self.offset, 1)
        n16 = ZIP64_MEMBERS if many else n
        end += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n16, n16, ZIP64_BYTES if big else cd_size,
                           ZIP64_BYTES if far else cd_offset, 0)
        self._write(end)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()

    def abort(self):
        if not self.f.closed:
            self.f.close()

"""The model fingerprint of a GGUF file (docs/FORMAT.md, "The model
fingerprint"): "sha256-sampled-v1:" and the SHA-256 of the tensor-info
table and of fixed-size blocks of each tensor's data, so that a 7 GB model
costs a few MB of reads. The same value as the C library's
llorch_ckpt_gguf_fingerprint and the Rust crate's gguf_fingerprint."""

import hashlib
import mmap
import os
import re
import struct

SCHEME = "sha256-sampled-v1"
BLOCK = 4096   # bytes of one sampled block
SAMPLES = 8    # blocks of a tensor larger than SAMPLES * BLOCK bytes

_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type: bytes
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_VALID = re.compile(r"[a-z0-9.-]+:[0-9a-f]+\Z")


def fingerprint_valid(s):
    """Whether s has a fingerprint's form: SCHEME:HEX, at most 255 bytes."""
    return isinstance(s, str) and len(s) <= 255 and _VALID.match(s) is not None


class _Cursor:
    def __init__(self, path, buf):
        self.path, self.buf, self.at = path, buf, 0

    def take(self, n, what):
        if n > len(self.buf) - self.at:
            raise ValueError(f"{self.path}: not a whole GGUF file ({what} at byte {self.at} runs past its end, "
                             f"{len(self.buf)} bytes); give a complete .gguf model")
        self.at += n
        return self.at - n

    def u32(self, what):
        return struct.unpack_from("<I", self.buf, self.take(4, what))[0]

    def u64(self, what):
        return struct.unpack_from("<Q", self.buf, self.take(8, what))[0]

    def bad(self, what):
        return ValueError(f"{self.path}: not a GGUF file ggml can read ({what} at byte {self.at}); "
                          f"give a valid .gguf model")


def _skip_value(c, vtype):
    if vtype == _STRING:
        c.take(c.u64("a string length"), "a string")
    elif vtype == _ARRAY:
        etype, n = c.u32("an array type"), c.u64("an array length")
        if etype == _STRING:
            for _ in range(n):
                c.take(c.u64("a string length"), "a string")
        elif etype in _FIXED:
            c.take(n * _FIXED[etype], "an array")
        else:
            raise c.bad("an array of an unknown type or of arrays")
    elif vtype in _FIXED:
        c.take(_FIXED[vtype], "a metadata value")
    else:
        raise c.bad("a metadata value of an unknown type")


def gguf_fingerprint(path):
    """The fingerprint of the GGUF file at path, e.g.
    "sha256-sampled-v1:9f86d0...". ValueError names the file when it is not
    a whole GGUF file (version 2 or 3)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ValueError(f"{path}: not a GGUF file (no GGUF magic); give a .gguf model")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _fingerprint(path, buf, size)


def _fingerprint(path, buf, size):
    c = _Cursor(path, buf)
    if size < 4 or buf[0:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file (no GGUF magic); give a .gguf model")
    c.take(4, "the magic")
    version = c.u32("the version")
    n_tensors, n_kv = c.u64("the tensor count"), c.u64("the metadata count")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} is not supported (2 and 3 are; a big-endian file reads "
                         f"as another version); convert the model again with a current llama.cpp")
    alignment = 32
    for _ in range(n_kv):
        key = bytes(buf[c.take(c.u64("a key length"), "a key"):c.at])
        vtype = c.u32("a value type")
        if key == b"general.alignment":
            if vtype != _UINT32:
                raise c.bad("general.alignment is not a uint32")
            alignment = c.u32("general.alignment")
        else:
            _skip_value(c, vtype)
    if alignment == 0 or alignment & (alignment - 1):
        raise c.bad("general.alignment is not a power of two")
    if n_tensors > (size - c.at) // 32:
        c.take(size, "the tensor-info table")
    table_start, offsets = c.at, []
    for _ in range(n_tensors):
        c.take(c.u64("a tensor name length"), "a tensor name")
        n_dims = c.u32("a tensor's dimension count")
        if not 1 <= n_dims <= 4:
            raise c.bad("a tensor with more than 4 dimensions")
        c.take(8 * n_dims, "a tensor dimension")
        c.u32("a tensor type")
        offsets.append(c.u64("a tensor offset"))
    table_end = c.at
    data_start = (table_end + alignment - 1) // alignment * alignment
    if data_start > size:
        c.take(size, "the data section")
    data_size = size - data_start
    h = hashlib.sha256(buf[table_start:table_end])
    ends = sorted(set(offsets)) + [data_size]
    for i, off in enumerate(offsets):
        if off > data_size:
            raise ValueError(f"{path}: not a whole GGUF file (tensor {i}'s data starts at byte {off} of a data "
                             f"section of {data_size} bytes); give a complete .gguf model")
    nxt = {o: e for o, e in zip(ends, ends[1:])}
    for off in offsets:
        n, start = nxt[off] - off, data_start + off
        if n <= SAMPLES * BLOCK:
            h.update(buf[start:start + n])
        else:
            for i in range(SAMPLES):
                at = start + i * (n - BLOCK) // (SAMPLES - 1)
                h.update(buf[at:at + BLOCK])
    return f"{SCHEME}:{h.hexdigest()}"

"""numpy's .npy format, version 1.0, as docs/FORMAT.md writes it: a header
padded with spaces to a multiple of 64 bytes, little-endian data in C order.
The header text is the one the C writer (lib/common/npy.c) produces."""

import ast
import os
import zlib

import numpy as np

ALIGN = 64
MAGIC = b"\x93NUMPY\x01\x00"

# dtype name in the manifest -> numpy dtype (little-endian)
DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int32": np.dtype("<i4")}
DESCRS = {"float32": "<f4", "float16": "<f2", "int32": "<i4"}


def dtype_name(dtype):
    """The manifest's name of a numpy dtype: float32, float16 or int32."""
    dt = np.dtype(dtype)
    for name, d in DTYPES.items():
        if dt.kind == d.kind and dt.itemsize == d.itemsize:
            return name
    raise ValueError(f"dtype {dt} is not float32, float16 or int32; convert the array first")


def as_dump_array(array):
    """A C-ordered little-endian float32/float16/int32 copy-free view where possible."""
    a = np.asarray(array)
    name = dtype_name(a.dtype)
    return np.ascontiguousarray(a, dtype=DTYPES[name]), name


def header(dtype, shape):
    """The .npy v1.0 header for a dtype name and a shape, 64-byte aligned."""
    dims = ", ".join(str(int(n)) for n in shape)
    if len(shape) == 1:
        dims += ","
    text = f"{{'descr': '{DESCRS[dtype]}', 'fortran_order': False, 'shape': ({dims}), }}"
    total = -(-(10 + len(text) + 1) // ALIGN) * ALIGN
    pad = total - 10 - len(text) - 1
    body = (text + " " * pad + "\n").encode("ascii")
    return MAGIC + len(body).to_bytes(2, "little") + body


def crc32(data):
    """zlib's CRC-32 of the data bytes, as the manifest's crc32."""
    return zlib.crc32(memoryview(data).cast("B")) & 0xFFFFFFFF


def write_atomic(path, chunks):
    """Writes the chunks to PATH.part, syncs it, renames it to PATH."""
    part = path + ".part"
    with open(part, "wb") as f:
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def write_npy(path, array):
    """Writes one .npy file atomically; returns (dtype name, crc32, bytes)."""
    a, name = as_dump_array(array)
    data = memoryview(a).cast("B") if a.size else b""
    write_atomic(path, [header(name, a.shape), data])
    return name, crc32(data), len(data)


def write_text(path, array):
    """The .txt twin: one value per line, %.9g (round-trips float32)."""
    a, name = as_dump_array(array)
    fmt = "%d" if name == "int32" else "%.9g"
    lines = "".join((fmt % v) + "\n" for v in a.reshape(-1).tolist())
    write_atomic(path, [lines.encode("ascii")])


def parse_header(buf):
    """(dtype, shape, data offset) of the .npy bytes in buf."""
    if bytes(buf[:6]) != MAGIC[:6] and not MAGIC.startswith(bytes(buf[:6])):
        raise ValueError("not a .npy file")
    if len(buf) < 10:
        raise ValueError(f"truncated: {len(buf)} bytes, shorter than a .npy header")
    major = buf[6]
    if major == 1:
        hlen, start = int.from_bytes(buf[8:10], "little"), 10
    else:
        hlen, start = int.from_bytes(buf[8:12], "little"), 12
    if len(buf) < start + hlen:
        raise ValueError(f"truncated: {len(buf)} bytes, shorter than its .npy header ({start + hlen} bytes)")
    d = ast.literal_eval(bytes(buf[start : start + hlen]).decode("latin1"))
    if d.get("fortran_order"):
        raise ValueError("Fortran-ordered .npy files are not dump files")
    return np.dtype(d["descr"]), tuple(d["shape"]), start + hlen

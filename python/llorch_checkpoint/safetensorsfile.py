"""The safetensors container as docs/FORMAT.md describes it (and as the C
reader, lib/read/read_container.c, reads it): an 8-byte little-endian header
length N, N bytes of JSON that map each key to {"dtype", "shape",
"data_offsets": [begin, end]} (offsets from the start of the data; the key
"__metadata__" holds strings), then the data. numpy only: the `safetensors`
package is not needed."""

import json

import numpy as np

# the largest header this reader accepts (the C reader's bound, ST_MAX_HEADER)
MAX_HEADER = 100 << 20

# safetensors dtype -> the manifest's dtype name (docs/FORMAT.md: F32, F16, I32)
DTYPE_NAMES = {"F32": "float32", "F16": "float16", "I32": "int32"}


class Tensor:
    """One tensor of the header: its dtype (safetensors' name), shape, and
    where its data lies in the file (begin, end: absolute byte offsets)."""

    def __init__(self, key, dtype, shape, begin, end):
        self.key, self.dtype, self.shape, self.begin, self.end = key, dtype, shape, begin, end


def _size(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_header(buf):
    """({key: Tensor}, data start) of the safetensors bytes in buf (bytes,
    memoryview or a uint8 array). Raises ValueError saying what is wrong;
    a file cut short says "truncated". Data past the file's end is not
    checked here (see Tensor.end)."""
    if len(buf) < 8:
        raise ValueError(f"truncated: {len(buf)} bytes, shorter than a safetensors header length (8 bytes)")
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > MAX_HEADER:
        raise ValueError(f"not a safetensors file: a header length of {n} bytes is out of range")
    if len(buf) < 8 + n:
        raise ValueError(f"truncated: {len(buf)} bytes, shorter than its safetensors header ({8 + n} bytes)")
    try:
        root = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a safetensors file: the header is not JSON") from None
    if not isinstance(root, dict):
        raise ValueError("not a safetensors file: the header is not a JSON object")
    start = 8 + n
    tensors = {}
    for key, t in root.items():
        if key == "__metadata__":
            continue
        off = t.get("data_offsets") if isinstance(t, dict) else None
        shape = t.get("shape") if isinstance(t, dict) else None
        if (not isinstance(t.get("dtype") if isinstance(t, dict) else None, str) or not isinstance(shape, list)
                or not all(_size(d) for d in shape) or not isinstance(off, list) or len(off) != 2
                or not all(_size(o) for o in off) or off[0] > off[1]):
            raise ValueError(f"tensor {key!r}: the header lacks its dtype, shape or data_offsets")
        tensors[key] = Tensor(key, t["dtype"], tuple(shape), start + off[0], start + off[1])
    return tensors, start


def array(buf, t, manifest_dtype):
    """The numpy array of tensor t in buf, of the manifest's dtype name
    (float32, float16 or int32: F16 stays float16, as in a .npy file).
    Raises ValueError for another dtype, data that does not fit its dtype
    and shape, or data past the end of buf ("truncated")."""
    if DTYPE_NAMES.get(t.dtype) != manifest_dtype:
        known = " (a dump's tensors are F32, F16 or I32)" if t.dtype not in DTYPE_NAMES else ""
        raise ValueError(f"tensor {t.key!r} is {t.dtype}{known}, the manifest says {manifest_dtype}")
    dtype = np.dtype({"F32": "<f4", "F16": "<f2", "I32": "<i4"}[t.dtype])
    count = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
    if t.end - t.begin != count * dtype.itemsize:
        raise ValueError(f"tensor {t.key!r}: data_offsets span {t.end - t.begin} bytes, its dtype {t.dtype} and "
                         f"shape {list(t.shape)} need {count * dtype.itemsize}")
    if t.end > len(buf):
        raise ValueError(f"truncated: {len(buf)} bytes, {t.key} needs up to byte {t.end}")
    return np.frombuffer(buf, dtype=dtype, count=count, offset=t.begin).reshape(t.shape)

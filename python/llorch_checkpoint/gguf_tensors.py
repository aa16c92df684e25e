"""A small GGUF reader (versions 2 and 3, little-endian): the metadata and
the tensors of F32, F16 and BF16 type as numpy arrays, enough for a plain
numpy engine such as llorch_checkpoint.rwkv7. No llama.cpp gguf-py needed.

    g = GGUFTensors("model.gguf")
    g.kv["general.architecture"]               # 'rwkv7'
    g.tensor("blk.0.time_mix_key.weight")       # numpy, shape = ggml's ne reversed

As in llama.cpp's gguf-py, the numpy shape is ggml's `ne` reversed: a
matrix with ne = [n_in, n_out] is (n_out, n_in), and ggml_mul_mat(W, x) is
x @ W.T. The layout is the one docs/FORMAT.md describes for the model
fingerprint (llorch_checkpoint.gguf)."""

import mmap
import os
import struct

import numpy as np

from .gguf import _ARRAY, _STRING, _Cursor

# GGUF metadata value type -> struct format (8: string, 9: array)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# ggml tensor type -> (name, numpy dtype)
TENSOR_TYPES = {0: ("F32", np.dtype("<f4")), 1: ("F16", np.dtype("<f2")), 30: ("BF16", np.dtype("<u2"))}


def _value(c, vtype):
    if vtype == _STRING:
        n = c.u64("a string length")
        at = c.take(n, "a string")
        return bytes(c.buf[at:at + n]).decode("utf-8", errors="replace")
    if vtype == _ARRAY:
        etype, n = c.u32("an array type"), c.u64("an array length")
        if etype == _ARRAY:
            raise c.bad("an array of arrays")
        return [_value(c, etype) for _ in range(n)]
    if vtype not in _SCALAR:
        raise c.bad("a metadata value of an unknown type")
    fmt = _SCALAR[vtype]
    return struct.unpack_from(fmt, c.buf, c.take(struct.calcsize(fmt), "a metadata value"))[0]


class GGUFTensors:
    """The metadata (kv, tokenizer arrays skipped unless keep_tokenizer) and
    the tensor table of a GGUF file, its tensors read on demand."""

    def __init__(self, path, keep_tokenizer=False):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            if self.size < 4 or f.read(4) != b"GGUF":
                raise ValueError(f"{self.path}: not a GGUF file (no GGUF magic); give a .gguf model")
            f.seek(0)
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        c = _Cursor(self.path, self._buf)
        c.take(4, "the magic")
        version = c.u32("the version")
        if version not in (2, 3):
            raise ValueError(f"{self.path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = c.u64("the tensor count"), c.u64("the metadata count")
        self.kv = {}
        for _ in range(n_kv):
            n = c.u64("a key length")
            at = c.take(n, "a key")
            key = bytes(self._buf[at:at + n]).decode("utf-8", errors="replace")
            value = _value(c, c.u32("a value type"))
            if keep_tokenizer or not key.startswith("tokenizer."):
                self.kv[key] = value
        alignment = int(self.kv.get("general.alignment", 32))
        self.infos = {}
        for _ in range(n_tensors):
            n = c.u64("a tensor name length")
            at = c.take(n, "a tensor name")
            name = bytes(self._buf[at:at + n]).decode("utf-8", errors="replace")
            n_dims = c.u32("a tensor's dimension count")
            if not 1 <= n_dims <= 4:
                raise c.bad("a tensor with more than 4 dimensions")
            ne = [c.u64("a tensor dimension") for _ in range(n_dims)]
            self.infos[name] = (ne, c.u32("a tensor type"), c.u64("a tensor offset"))
        self.data_start = (c.at + alignment - 1) // alignment * alignment

    @property
    def architecture(self):
        return self.kv.get("general.architecture")

    def hp(self, key, default=None):
        """ARCH.key of the metadata (rwkv7.block_count, ...)."""
        return self.kv.get(f"{self.architecture}.{key}", default)

    def __contains__(self, name):
        return name in self.infos

    def tensor(self, name, dtype=np.float64):
        """The tensor as a numpy array of dtype, numpy shape = ne reversed.
        F32, F16 and BF16 only: a quantized tensor is refused by name."""
        if name not in self.infos:
            raise KeyError(f"{self.path}: no tensor {name}")
        ne, ttype, offset = self.infos[name]
        if ttype not in TENSOR_TYPES:
            raise ValueError(f"{self.path}: tensor {name} has ggml type {ttype}; this reader reads F32, F16 and "
                             f"BF16 (convert the model with --outtype f32 or f16)")
        tname, dt = TENSOR_TYPES[ttype]
        count = int(np.prod(ne, dtype=np.int64))
        start = self.data_start + offset
        if start + count * dt.itemsize > self.size:
            raise ValueError(f"{self.path}: not a whole GGUF file (tensor {name} runs past its end)")
        a = np.frombuffer(self._buf, dtype=dt, count=count, offset=start)
        if tname == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a.astype(dtype).reshape([int(n) for n in reversed(ne)])

    def file_type_name(self, name):
        return TENSOR_TYPES.get(self.infos[name][1], (f"type {self.infos[name][1]}",))[0]

"""Loads the tensors of a dump in any form, with readers that are not ours.

    from dump_load import Dump
    d = Dump("dump/")            # reads manifest.json
    for entry in d.manifest["files"]:
        a = d.array(entry)       # numpy array, as the entry describes

- npy form: np.load of each file;
- npz form: np.load of checkpoints.npz, indexed by the entry's "key";
- safetensors form: read_safetensors below, written from the format's
  specification (huggingface/safetensors README and the reference crate's
  validation: header length, JSON header, dtypes, data_offsets covering the
  data section back to back, no gaps).
"""
import json
import os
import struct

import numpy as np

ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I32": np.dtype("<i4")}
ST_MAX_HEADER = 100_000_000


class FormatError(Exception):
    pass


def read_safetensors(path):
    """Returns ({name: array}, metadata, {name: file offset of its data})."""
    raw = open(path, "rb").read()
    if len(raw) < 8:
        raise FormatError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > ST_MAX_HEADER or 8 + n > len(raw):
        raise FormatError(f"{path}: header length {n} is invalid")
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise FormatError(f"{path}: the header does not start with '{{'")
    if (8 + n) % 8 != 0:
        raise FormatError(f"{path}: the data does not start at a multiple of 8")
    header = json.loads(text)
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    data = raw[8 + n:]
    end = 0
    tensors, offsets = {}, {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        dtype = ST_DTYPES[info["dtype"]]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if begin != end or stop - begin != count * dtype.itemsize:
            raise FormatError(f"{path}: {name}: data_offsets {begin},{stop} leave a gap, overlap or "
                              f"mismatch the shape")
        if (8 + n + begin) % dtype.itemsize != 0:
            raise FormatError(f"{path}: {name}: data not aligned to its element size")
        tensors[name] = np.frombuffer(data[begin:stop], dtype=dtype).reshape(info["shape"])
        offsets[name] = 8 + n + begin
        end = stop
    if end != len(data):
        raise FormatError(f"{path}: the data section holds {len(data) - end} bytes that no tensor covers")
    return tensors, metadata, offsets


class Dump:
    def __init__(self, d):
        self.dir = d
        self.manifest = json.load(open(os.path.join(d, "manifest.json")))
        c = self.manifest.get("container")
        self.form = c["format"] if c else "npy"
        self.container = os.path.join(d, c["file"]) if c else None
        self._npz = None
        self._st = None

    def files(self):
        """The names the dump's manifest accounts for in the directory."""
        names = {"manifest.json", self.manifest.get("tokens_file", "tokens.npy")}
        if self.container:
            return names | {os.path.basename(self.container)}
        return names | {f["file"] for f in self.manifest["files"]} | \
            {f["text_file"] for f in self.manifest["files"] if "text_file" in f}

    def array(self, entry):
        if self.form == "npy":
            return np.load(os.path.join(self.dir, entry["file"]))
        if self.form == "npz":
            if self._npz is None:
                self._npz = np.load(self.container)
            return self._npz[entry["key"]]
        if self._st is None:
            self._st = read_safetensors(self.container)[0]
        return self._st[entry["key"]]

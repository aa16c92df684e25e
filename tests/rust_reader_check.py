"""Checks what rust/examples/read_dump printed against numpy's np.load of
the same files: every tensor of the dump (or every member of an .npz),
dtype, shape, the CRC-32 of the data and every value bit for bit.

    rust_reader_check.py dump DIR OUT.tsv [MIN_TENSORS]
    rust_reader_check.py npz FILE OUT.tsv
"""
import json
import os
import sys
import zlib

import numpy as np


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def parse(path):
    rows = {}
    with open(path) as f:
        for line in f:
            name, dtype, dims, crc, vals = line.rstrip("\n").split("\t")
            if name in rows:
                fail("read_dump printed %s twice" % name)
            shape = tuple(int(d) for d in dims.split(",")) if dims else ()
            rows[name] = (dtype, shape, int(crc), vals.split(" ") if vals else [])
    return rows


def check(name, arr, row):
    dtype, shape, crc, vals = row
    if str(arr.dtype) != dtype or arr.shape != shape:
        fail("%s: Rust read %s %s, numpy %s %s" % (name, dtype, shape, arr.dtype, arr.shape))
    data = np.ascontiguousarray(arr).tobytes()
    if zlib.crc32(data) != crc:
        fail("%s: CRC-32 %d from Rust, %d from numpy" % (name, crc, zlib.crc32(data)))
    width = 4 if arr.dtype.itemsize == 2 else 8
    view = arr.reshape(-1).view(np.uint16 if arr.dtype.itemsize == 2 else np.uint32)
    want = ["%0*x" % (width, v) for v in view.tolist()]
    if want != vals:
        bad = next(i for i in range(max(len(want), len(vals))) if i >= len(vals) or i >= len(want) or want[i] != vals[i])
        fail("%s: value %d differs (numpy %s, Rust %s)" % (name, bad, want[bad] if bad < len(want) else "-",
                                                           vals[bad] if bad < len(vals) else "-"))


def main():
    mode, path, out = sys.argv[1:4]
    rows = parse(out)
    if mode == "npz":
        z = np.load(path)
        if sorted(z.files) != sorted(rows):
            fail("members: numpy %s, Rust %s" % (sorted(z.files), sorted(rows)))
        for k in z.files:
            check(k, z[k], rows[k])
        print("ok: %d members of %s equal numpy's" % (len(rows), path))
        return
    m = json.load(open(os.path.join(path, "manifest.json")))
    container = m.get("container")
    z = None
    if container and container["format"] == "npz":
        z = np.load(os.path.join(path, container["file"]))
    elif container:  # safetensors, parsed here from its specification
        raw = open(os.path.join(path, container["file"]), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        types = {"F32": np.float32, "F16": np.float16, "I32": np.int32}
        z = {k: np.frombuffer(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]],
                              dtype=types[t["dtype"]]).reshape(t["shape"])
             for k, t in header.items() if k != "__metadata__"}
    check("tokens", np.load(os.path.join(path, "tokens.npy")), rows.pop("tokens"))
    names = [e.get("key", e["file"]) for e in m["files"]]
    if sorted(names) != sorted(rows):
        fail("tensors: manifest %d, Rust printed %d" % (len(names), len(rows)))
    for e, name in zip(m["files"], names):
        arr = z[e["key"]] if z is not None else np.load(os.path.join(path, e["file"]))
        check(name, arr, rows[name])
    minimum = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if len(names) < minimum:
        fail("only %d tensors (expected at least %d)" % (len(names), minimum))
    print("ok: %d tensors of %s (format_version %d) equal numpy's" % (len(names), path, m["format_version"]))


main()

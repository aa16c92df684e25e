#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/TARGET/NAME).

  fuzz/make_corpus.py [OUT_DIR]     default: fuzz/corpus next to this script

The seeds are small valid inputs (and a few near misses) made with numpy's
own .npy writer and the dump format of docs/FORMAT.md; the fuzzer mutates
them. Seed names have no .npy extension (the repository ignores *.npy).
"""
import io
import json
import os
import sys
import zlib

import numpy as np

SEPARATOR = b"\n@@@\n"


def npy(a, version=(1, 0)):
    b = io.BytesIO()
    np.lib.format.write_array(b, np.ascontiguousarray(a), version=version)
    return b.getvalue()


def npy_seeds():
    rng = np.random.default_rng(1)
    return {
        "v1-f32-2d": npy(rng.standard_normal((3, 4)).astype(np.float32)),
        "v2-f32-3d": npy(rng.standard_normal((2, 2, 3)).astype(np.float32), (2, 0)),
        "v1-f16-1d": npy(np.array([0, 1, -2, 65504, 6e-8, np.inf, np.nan], dtype=np.float16)),
        "v1-i32-tokens": npy(np.array([1, 15043, 2], dtype=np.int32)),
        "v1-f32-scalar": npy(np.array(1.5, dtype=np.float32)),
        "v1-f32-4d": npy(np.zeros((1, 2, 1, 2), dtype=np.float32)),
        "v1-f32-empty": npy(np.zeros((0, 3), dtype=np.float32)),
        "v1-f64-refused": npy(np.zeros(2, dtype=np.float64)),
        "v1-fortran-refused": npy(np.asfortranarray(np.zeros((2, 3), dtype=np.float32)))
        .replace(b"'fortran_order': False", b"'fortran_order': True "),
    }


def entry(name, layer, step, start, n, a, axes, fname, **extra):
    e = {"file": fname, "checkpoint": name, "number": 0, "layer": layer, "step": step,
         "pos_start": start, "n_pos": n, "shape": list(a.shape),
         "dtype": {np.float32: "float32", np.float16: "float16"}[a.dtype.type], "axes": axes,
         "crc32": zlib.crc32(a.tobytes()), "bytes": a.nbytes}
    if "key" in axes:
        e["n_key"] = a.shape[axes.index("key")]
    e.update(extra)
    return e


def manifest(files, tokens=(1, 2, 3), complete=True, **model):
    m = {"format": "llorch-checkpoint-dump", "format_version": 1, "complete": complete, "status": "ok",
         "producer": "make_corpus.py",
         "model": dict({"architecture": "llama", "n_layer": 1, "n_embd": 2, "n_head": 1, "n_head_kv": 1,
                        "n_vocab": 4}, **model),
         "tokens": list(tokens), "files": files}
    return json.dumps(m, indent=None).encode()


def tiny_dump(tag, steps, perturb=0.0, f16=False):
    """A 3-token model: attn_norm (token), cache_k (key), kq_soft_max
    (token + key), a graph tensor; split into steps. Returns (manifest, files)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2)).astype(np.float32) + np.float32(perturb)
    k = rng.standard_normal((3, 1, 2)).astype(np.float16 if f16 else np.float32)
    s = np.tril(rng.random((1, 3, 3))).astype(np.float32)
    entries, files = [], {}
    for step, (a, n) in enumerate(steps):
        b = a + n
        parts = [("attn_norm", x[a:b], ["token", "channel"]),
                 ("cache_k", k[:b], ["key", "head", "channel"]),
                 ("kq_soft_max", s[:, a:b, :b], ["head", "token", "key"])]
        for name, arr, axes in parts:
            fname = f"{tag}_{name}_{step}"
            entries.append(entry(name, 0, step, a, n, arr, axes, fname))
            files[fname] = npy(arr)
        fname = f"{tag}_graph_{step}"
        entries.append(entry("graph", -1, step, a, n, x[a:b], ["token", "channel"], fname, graph_name="x-0"))
        files[fname] = npy(x[a:b])
    return entries, files


def compare_seed(ref, cand):
    (re, rf), (ce, cf) = ref, cand
    files = dict(rf, **cf)
    parts = [manifest(re), manifest(ce)] + [name.encode() + b"\n" + data for name, data in files.items()]
    return SEPARATOR.join(parts)


def compare_seeds():
    one = tiny_dump("a", [(0, 3)])
    return {
        "same": compare_seed(one, one),
        "one-vs-steps": compare_seed(one, tiny_dump("b", [(0, 2), (2, 1)])),
        "token-by-token": compare_seed(tiny_dump("b", [(0, 1), (1, 1), (2, 1)]), one),
        "perturbed": compare_seed(one, tiny_dump("b", [(0, 3)], perturb=0.5)),
        "f16-cache": compare_seed(one, tiny_dump("b", [(0, 3)], f16=True)),
        "empty-tensor": empty_tensor_seed(),
    }


def empty_tensor_seed():
    """Rows declared by a file without elements (no bytes vouch for them)."""
    a = np.zeros((2000000000, 0), dtype=np.float32)
    e = [entry("cache_k", 0, 0, 0, 0, a, ["key", "channel"], "e"),
         entry("attn_norm", 0, 0, 0, 2000000000, a, ["token", "channel"], "e2")]
    return SEPARATOR.join([manifest(e), manifest(e), b"e\n" + npy(a), b"e2\n" + npy(a)])


def manifest_seeds():
    e, _ = tiny_dump("a", [(0, 2), (2, 1)])
    raw = dict(e[1], raw=True, axes=["ne2", "ne1", "ne0"])
    return {
        "steps": manifest(e),
        "raw": manifest([raw]),
        "incomplete": manifest(e[:2], complete=False),
        "tokens-file": manifest(e).replace(b'"tokens": [1, 2, 3]', b'"tokens_file": "tokens.npy"'),
        "empty": manifest([]),
    }


def npz(arrays):
    b = io.BytesIO()
    np.savez(b, **arrays)            # numpy's own writer: stored members
    return b.getvalue()


def safetensors(arrays):
    """The format's specification: u64 header length, JSON header padded to
    8 bytes, the data back to back."""
    names = {"float32": "F32", "float16": "F16", "int32": "I32"}
    header, data = {"__metadata__": {"format": "llorch-checkpoint-dump"}}, b""
    for name, a in arrays.items():
        header[name] = {"dtype": names[str(a.dtype)], "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + a.nbytes]}
        data += a.tobytes()
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return len(text).to_bytes(8, "little") + text + data


def container_seeds():
    """First byte: 0 for .npz, 1 for safetensors (see fuzz_container.c)."""
    rng = np.random.default_rng(2)
    arrays = {"checkpoint_01_attn_norm_l00_s000": rng.standard_normal((2, 4)).astype(np.float32),
              "checkpoint_03_cache_k_l00_s000": np.arange(6, dtype=np.float16).reshape(3, 2),
              "tokens": np.array([1, 2], dtype=np.int32)}
    return {"npz": b"\0" + npz(arrays), "npz-empty": b"\0" + npz({}),
            "safetensors": b"\1" + safetensors(arrays), "safetensors-empty": b"\1" + safetensors({})}


def tolerance_seeds():
    return {"global": b"atol=1e-4,rtol=1e-3", "checkpoint": b"kq_soft_max:atol=1e-5,rtol=1e-4,nmse=1e-6,within=1",
            "preset": b"f16", "bad": b"atol=-1,foo"}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    for target, seeds in {"npy": npy_seeds(), "manifest": manifest_seeds(), "compare": compare_seeds(),
                          "tolerance": tolerance_seeds(), "container": container_seeds()}.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print(f"seed corpus written to {out}")


if __name__ == "__main__":
    main()

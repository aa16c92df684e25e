#!/usr/bin/python3
"""Checks of extractor dumps with numpy alone (independent of our reader).

  dump_checks.py structure DUMP [--kv f16|f32] [--extras]
  dump_checks.py same DUMP_A DUMP_B
  dump_checks.py positions STEPPED SINGLE [--atol A] [--rtol R]
  dump_checks.py text DUMP
  dump_checks.py incomplete DUMP
"""
import argparse
import json
import os
import sys
import zlib

import numpy as np

from dump_load import Dump

SIX = ["attn_norm", "Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max", "attn_out_proj", "ffn_out"]
DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def load_manifest(d):
    path = os.path.join(d, "manifest.json")
    if not os.path.exists(path):
        fail(f"{d} has no manifest.json")
    m = json.load(open(path))
    version = 2 if "container" in m else 1
    if m.get("format") != "llorch-checkpoint-dump" or m.get("format_version") != version:
        fail(f"{path}: unexpected format {m.get('format')} {m.get('format_version')}")
    return m


DUMPS = {}


def load_file(d, entry):
    """Loads one listed tensor (in any form) and checks it against its manifest entry."""
    if d not in DUMPS:
        DUMPS[d] = Dump(d)
    a = DUMPS[d].array(entry)
    if list(a.shape) != entry["shape"]:
        fail(f"{entry['file']}: shape {a.shape} != manifest {entry['shape']}")
    if a.dtype != DTYPES[entry["dtype"]]:
        fail(f"{entry['file']}: dtype {a.dtype} != manifest {entry['dtype']}")
    if zlib.crc32(a.tobytes()) != entry["crc32"] or a.nbytes != entry["bytes"]:
        fail(f"{entry['file']}: crc32/bytes differ from the manifest")
    return a


def by_key(m):
    return {(f["checkpoint"], f["layer"], f["step"]): f for f in m["files"]}


def check_cache(d, files, kv, n_layer):
    """The cache rows of this step equal K/V entering attention, rounded to the cache type."""
    for (name, layer, step), f in files.items():
        if name not in ("cache_k", "cache_v"):
            continue
        src = files.get(("Kcur" if name == "cache_k" else "Vcur", layer, step))
        if src is None:
            continue
        cache = load_file(d, f)
        cur = load_file(d, src)
        rows = cache[src["pos_start"]: src["pos_start"] + src["n_pos"]]
        want = cur.astype(np.float16).astype(np.float32) if kv == "f16" else cur
        if rows.shape != want.shape or not np.array_equal(rows, want):
            fail(f"{f['file']}: rows {src['pos_start']}.. differ from {src['file']} rounded to {kv} "
                 f"(max {np.abs(rows - want).max() if rows.shape == want.shape else 'shape'})")
        if f["n_key"] != src["pos_start"] + src["n_pos"] or cache.shape[0] != f["n_key"]:
            fail(f"{f['file']}: {cache.shape[0]} key rows, expected {src['pos_start'] + src['n_pos']}")


def check_scores(d, files):
    """Each query row is a distribution over keys 0..its position, zero after."""
    for (name, layer, step), f in files.items():
        if name != "kq_soft_max":
            continue
        s = load_file(d, f).astype(np.float64)
        if not np.allclose(s.sum(-1), 1.0, atol=1e-5):
            fail(f"{f['file']}: rows do not sum to 1")
        for t in range(f["n_pos"]):
            pos = f["pos_start"] + t
            if np.any(s[:, t, pos + 1:] != 0):
                fail(f"{f['file']}: token {pos} attends to later keys")


def check_listed(d):
    """The directory holds what the manifest accounts for, nothing half-written."""
    listed = Dump(d).files()
    for name in os.listdir(d):
        if ".part" in name:
            fail(f"{name}: a half-written file was left")
        if name not in listed:
            fail(f"{name}: not listed in the manifest")


def cmd_structure(a):
    m = load_manifest(a.dump)
    n_layer = m["model"]["n_layer"]
    files = by_key(m)
    check_listed(a.dump)
    for f in m["files"]:
        load_file(a.dump, f)
    tokens = np.load(os.path.join(a.dump, "tokens.npy"))
    if tokens.dtype != np.int32 or tokens.tolist() != m["tokens"]:
        fail("tokens.npy differs from the manifest's tokens")
    wanted = SIX + (["ffn_inp", "l_out"] if a.extras else [])
    steps = sorted({f["step"] for f in m["files"]})
    for step in steps:
        for layer in range(n_layer):
            for name in wanted:
                if (name, layer, step) not in files:
                    fail(f"{name} layer {layer} step {step} is missing")
    if a.extras:
        for name in ("embd", "result_norm", "logits"):
            if (name, -1, 0) not in files:
                fail(f"{name} is missing")
    check_cache(a.dump, files, a.kv, n_layer)
    check_scores(a.dump, files)
    print(f"ok: {len(m['files'])} files, {n_layer} layers, {len(steps)} steps; shapes, dtypes, crc32, "
          f"cache = K/V rounded to {a.kv}, scores are causal distributions")


def cmd_same(a):
    ma, mb = load_manifest(a.a), load_manifest(a.b)
    strip = lambda m: [{k: v for k, v in f.items()} for f in m["files"]]
    if strip(ma) != strip(mb):
        fail("the manifests list different files")
    names = [f["file"] for f in ma["files"]]
    if "container" in ma:       # the same tensors at the same offsets: the whole file is equal
        names = [ma["container"]["file"]]
    for name in names:
        ba = open(os.path.join(a.a, name), "rb").read()
        bb = open(os.path.join(a.b, name), "rb").read()
        if ba != bb:
            fail(f"{name} differs")
    print(f"ok: {len(ma['files'])} tensors byte-identical ({Dump(a.a).form} form)")


def rows_by_position(d, m):
    """(checkpoint, layer) -> {position: row} over all steps (token axis 0 or 1)."""
    out = {}
    for f in m["files"]:
        arr = load_file(d, f)
        axes = f["axes"]
        if "token" not in axes:
            continue
        ax = axes.index("token")
        for t in range(f["n_pos"]):
            row = np.take(arr, t, axis=ax)
            if "key" in axes:                         # scores: keep keys 0..pos
                row = row[..., : f["pos_start"] + t + 1]
            out.setdefault((f["checkpoint"], f["layer"]), {})[f["pos_start"] + t] = row
    return out


def cmd_positions(a):
    ms, m1 = load_manifest(a.stepped), load_manifest(a.single)
    if ms["tokens"] != m1["tokens"]:
        fail("the two dumps ran different tokens")
    rs, r1 = rows_by_position(a.stepped, ms), rows_by_position(a.single, m1)
    if rs.keys() != r1.keys():
        fail(f"different checkpoints: {sorted(set(rs) ^ set(r1))}")
    worst = 0.0
    for key in r1:
        if rs[key].keys() != r1[key].keys():
            fail(f"{key}: positions differ")
        for pos in r1[key]:
            x, y = rs[key][pos].astype(np.float64), r1[key][pos].astype(np.float64)
            err = np.abs(x - y)
            if np.any(err > a.atol + a.rtol * np.abs(y)):
                fail(f"{key} position {pos}: max error {err.max():.3g}")
            worst = max(worst, float(err.max()))
    steps = len({f["step"] for f in ms["files"]})
    print(f"ok: {len(r1)} checkpoints line up by position over {steps} steps; max abs difference {worst:.3g}")


def cmd_text(a):
    m = load_manifest(a.dump)
    for f in m["files"]:
        x = load_file(a.dump, f)
        t = np.loadtxt(os.path.join(a.dump, f["text_file"]), dtype=np.float32, ndmin=1).reshape(x.shape)
        if t.tobytes() != x.astype(np.float32).tobytes():
            fail(f"{f['text_file']} does not round-trip to {f['file']}")
    print(f"ok: {len(m['files'])} .txt files load with np.loadtxt to the same float32 bits")


def cmd_incomplete(a):
    m = load_manifest(a.dump)
    if m["complete"] is not False or m["status"] != "interrupted":
        fail(f"manifest says complete={m['complete']} status={m['status']}")
    check_listed(a.dump)
    for f in m["files"]:
        load_file(a.dump, f)
    if len(m["files"]) < 20:
        fail(f"interrupted after 20 steps, yet only {len(m['files'])} tensors are listed")
    print(f"ok: interrupted {Dump(a.dump).form} dump lists {len(m['files'])} whole tensors and says complete=false")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("structure"); s.add_argument("dump"); s.add_argument("--kv", default="f16")
    s.add_argument("--extras", action="store_true")
    s = sub.add_parser("same"); s.add_argument("a"); s.add_argument("b")
    s = sub.add_parser("positions"); s.add_argument("stepped"); s.add_argument("single")
    s.add_argument("--atol", type=float, default=1e-5); s.add_argument("--rtol", type=float, default=1e-4)
    s = sub.add_parser("text"); s.add_argument("dump")
    s = sub.add_parser("incomplete"); s.add_argument("dump")
    a = p.parse_args()
    globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    main()

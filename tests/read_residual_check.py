"""The residual accessors (C llorch_ckpt_dump_residual, Rust
Dump::residual) against numpy: the rows of embd / l_out / ffn_inp at
absolute positions, gathered here from the manifest on its own (np.load of
every file, positions, steps, sequences; the latest step wins), compared bit
for bit with what tests/test_read_residual.c (or the Rust example) wrote.

    read_residual_check.py rows DUMP OUT_DIR [SEQ [POS_START N_POS]]
    read_residual_check.py to-f16 SRC DST      an npy-form dump with its residual files as float16
    read_residual_check.py add-repeat SRC DST  an npy-form dump with position 0 of every residual
                                               again in a later step, values doubled
"""
import json
import os
import shutil
import sys
import zlib

import numpy as np

RESIDUALS = ("embd", "l_out", "ffn_inp")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def load_all(path, m):
    """Every entry's array, by manifest index, from any form."""
    c = m.get("container")
    if c and c["format"] == "npz":
        z = np.load(os.path.join(path, c["file"]))
        return lambda e: z[e["key"]]
    if c:
        raw = open(os.path.join(path, c["file"]), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        types = {"F32": np.float32, "F16": np.float16}

        def st(e):
            t = header[e["key"]]
            b, end = t["data_offsets"]
            return np.frombuffer(raw[8 + n + b:8 + n + end], dtype=types[t["dtype"]]).reshape(t["shape"])
        return st
    return lambda e: np.load(os.path.join(path, e["file"]))


def expected(path, m, layer, where, seq, start, n):
    name, src = ("ffn_inp", layer) if where == "ffn_input" else (("embd", -1) if layer == 0 else ("l_out", layer - 1))
    load = load_all(path, m)
    rows = {}  # position -> (step, index, row)
    for i, e in enumerate(m["files"]):
        if e["checkpoint"] != name or e["layer"] != src or ("seq" in e and e["seq"] != seq):
            continue
        a = load(e).astype(np.float32)
        positions = e.get("positions") or list(range(e["pos_start"], e["pos_start"] + e["n_pos"]))
        for r, p in enumerate(positions):
            if start <= p < start + n and (p not in rows or rows[p][:2] <= (e["step"], i)):
                rows[p] = (e["step"], i, a[r])
    missing = [p for p in range(start, start + n) if p not in rows]
    if missing:
        fail("numpy finds no %s of layer %d at positions %s" % (name, src, missing[:5]))
    return np.stack([rows[p][2] for p in range(start, start + n)]) if n else np.zeros((0, m["model"]["n_embd"]),
                                                                                       np.float32)


def check_rows(path, out_dir, seq, start, n):
    m = json.load(open(os.path.join(path, "manifest.json")))
    if n < 0:
        n = len(m["tokens"]) if seq < 0 or "sequences" not in m else len(
            next(s for s in m["sequences"] if s["seq"] == seq)["tokens"])
    checked = 0
    for layer in range(m["model"]["n_layer"]):
        for where in ("layer_input", "ffn_input"):
            for suffix, lo, count in (("", start, n), ("_mid", start + 1, n - 2)):
                if count <= 0:
                    continue
                want = expected(path, m, layer, where, seq, lo, count)
                f = os.path.join(out_dir, "L%d_%s%s.f32" % (layer, where, suffix))
                got = np.fromfile(f, dtype=np.float32).reshape(want.shape)
                if got.tobytes() != want.tobytes():
                    bad = np.argwhere(got.view(np.uint32) != want.view(np.uint32))[0]
                    fail("%s: row %d channel %d: %r, numpy %r" % (f, bad[0], bad[1], got[tuple(bad)], want[tuple(bad)]))
                checked += 1
    print("ok: %d residual ranges of %s equal numpy's, bit for bit" % (checked, path))


def rewrite(src, dst, change):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    m = json.load(open(os.path.join(dst, "manifest.json")))
    if "container" in m:
        fail("%s: an npy-form dump is needed" % src)
    change(dst, m)
    json.dump(m, open(os.path.join(dst, "manifest.json"), "w"), indent=2)


def entry_data(dst, e, a):
    np.save(os.path.join(dst, e["file"]), a)
    data = np.ascontiguousarray(a).tobytes()
    e.update(dtype=str(a.dtype), bytes=len(data), crc32=zlib.crc32(data), shape=list(a.shape))


def to_f16(dst, m):
    n = 0
    for e in m["files"]:
        if e["checkpoint"] in RESIDUALS:
            entry_data(dst, e, np.load(os.path.join(dst, e["file"])).astype(np.float16))
            n += 1
    if n == 0:
        fail("no residual files to convert")


def add_repeat(dst, m):
    last = max(e["step"] for e in m["files"]) + 1
    extra = []
    for e in m["files"]:
        held = e.get("positions") or [e["pos_start"]]
        if e["checkpoint"] in RESIDUALS and e["pos_start"] == 0 and held[0] == 0 and "seq" not in e:
            a = np.load(os.path.join(dst, e["file"]))[:1] * 2
            r = dict(e, file="repeat_" + e["file"], step=last, pos_start=0, n_pos=1)
            r.pop("positions", None)
            r.pop("text_file", None)
            entry_data(dst, r, a.astype(np.float32))
            extra.append(r)
    m["files"] += extra


def main():
    mode = sys.argv[1]
    if mode == "rows":
        path, out_dir = sys.argv[2:4]
        seq = int(sys.argv[4]) if len(sys.argv) > 4 else -1
        start, n = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (0, -1)
        check_rows(path, out_dir, seq, start, n)
    elif mode == "to-f16":
        rewrite(sys.argv[2], sys.argv[3], to_f16)
    elif mode == "add-repeat":
        rewrite(sys.argv[2], sys.argv[3], add_repeat)
        # the repeated rows are what must come back: doubled
        m = json.load(open(os.path.join(sys.argv[3], "manifest.json")))
        want = expected(sys.argv[3], m, 1, "layer_input", -1, 0, 1)
        orig = expected(sys.argv[2], json.load(open(os.path.join(sys.argv[2], "manifest.json"))), 1, "layer_input",
                        -1, 0, 1)
        if not np.array_equal(want, orig * 2):
            fail("the repeated row is not the later one")
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()

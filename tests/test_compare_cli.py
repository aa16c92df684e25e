#!/usr/bin/python3
"""Tests of llorch-checkpoint-compare on dumps written here with numpy alone,
straight from docs/FORMAT.md (an independent writer: np.save makes the files).

  test_compare_cli.py --tool PATH --work DIR CASE

Cases: identical perturbed origins steps tolerance nmse metrics malformed
       names structure json quiet tol_names warnings step_order
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

TOOL = None
WORK = None

N_LAYER, N_TOK, N_EMBD, N_HEAD, HEAD_DIM, N_VOCAB = 3, 7, 16, 2, 8, 40
TOKENS = [11, 5, 31, 2, 7, 19, 23]
LAYER_ORDER = ["attn_norm", "Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max",
               "attn_out_proj", "ffn_inp", "ffn_out", "l_out"]
NUMBER = {"attn_norm": 1, "Qcur": 2, "Kcur": 2, "Vcur": 2, "cache_k": 3, "cache_v": 3,
          "kq_soft_max": 4, "attn_out_proj": 5, "ffn_out": 6}
AXES = {"Qcur": ["token", "head", "channel"], "Kcur": ["token", "head", "channel"],
        "Vcur": ["token", "head", "channel"], "cache_k": ["key", "head", "channel"],
        "cache_v": ["key", "head", "channel"], "kq_soft_max": ["head", "token", "key"],
        "logits": ["token", "vocab"]}
NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- the synthetic model: one full tensor per (checkpoint, layer) ------------------

def full_shape(name, T=N_TOK):
    if name in ("Qcur", "Kcur", "Vcur", "cache_k", "cache_v"):
        return (T, N_HEAD, HEAD_DIM)
    if name == "kq_soft_max":
        return (N_HEAD, T, T)
    if name == "logits":
        return (T, N_VOCAB)
    return (T, N_EMBD)


def causal_softmax(scores):
    T = scores.shape[1]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    s = np.where(mask, -np.inf, scores.astype(np.float64))
    e = np.exp(s - s.max(axis=2, keepdims=True))
    return (e / e.sum(axis=2, keepdims=True)).astype(np.float32)


def make_model(seed=1, T=N_TOK):
    """{(checkpoint, layer): array over every position} in graph order."""
    rng = np.random.default_rng(seed)
    t = {("embd", -1): rng.standard_normal(full_shape("embd", T)).astype(np.float32)}
    for layer in range(N_LAYER):
        for name in LAYER_ORDER:
            a = rng.standard_normal(full_shape(name, T)).astype(np.float32)
            t[(name, layer)] = causal_softmax(a) if name == "kq_soft_max" else a
    t[("result_norm", -1)] = rng.standard_normal(full_shape("result_norm", T)).astype(np.float32)
    t[("logits", -1)] = rng.standard_normal(full_shape("logits", T)).astype(np.float32)
    return t


def copy_model(t):
    return {k: v.copy() for k, v in t.items()}


def keys_from(t, start):
    """The keys from `start` on, in graph order."""
    keys = list(t.keys())
    return keys[keys.index(start):]


def perturb(t, keys, amount, seed=7):
    """Adds noise of `amount` times each tensor's spread."""
    rng = np.random.default_rng(seed)
    for k in keys:
        t[k] = (t[k] + amount * np.std(t[k]) * rng.standard_normal(t[k].shape)).astype(t[k].dtype)


# ---- the writer, from FORMAT.md -------------------------------------------------------

def step_slice(name, a, start, n):
    end = start + n
    if name in ("cache_k", "cache_v"):
        return a[:end]                   # keys 0..K-1, K = end
    if name == "kq_soft_max":
        return a[:, start:end, :end]
    return a[start:end]


def file_name(name, layer, step, graph_name=None):
    if name == "graph":
        return f"graph_{graph_name}_s{step:03d}.npy"
    lay = f"_l{layer:02d}" if layer >= 0 else ""
    return f"checkpoint_{NUMBER.get(name, 0):02d}_{name}{lay}_s{step:03d}.npy"


def entry_for(d, name, layer, step, start, n, a, dtype="float32", graph_name=None, axes=None):
    a = np.ascontiguousarray(a.astype(NP_DTYPES[dtype]))
    fname = file_name(name, layer, step, graph_name)
    np.save(os.path.join(d, fname), a)
    axes = axes or AXES.get(name, ["token", "channel"])
    e = {"file": fname, "checkpoint": name, "number": NUMBER.get(name, 0), "layer": layer,
         "step": step, "pos_start": start, "n_pos": n,
         "n_key": a.shape[axes.index("key")] if "key" in axes else 0,
         "shape": list(a.shape), "dtype": dtype, "axes": axes,
         "crc32": zlib.crc32(a.tobytes()), "bytes": a.nbytes}
    if graph_name:
        e["graph_name"] = graph_name
    return e


# One synthetic model, so one fingerprint (docs/FORMAT.md, "The model fingerprint").
SYNTHETIC_FINGERPRINT = "sha256-sampled-v1:" + "5e" * 32


def write_dump(d, t, steps=None, tokens=TOKENS, dtypes=None, complete=True, model=None,
               graph=None, edit=None):
    """Writes the dump of model t split into steps [(pos_start, n_pos), ...].
    dtypes: {checkpoint: dtype}; graph: {graph_name: array} (token, channel);
    edit(manifest) may change the manifest before it is written."""
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    steps = steps or [(0, len(tokens))]
    files = []
    for step, (start, n) in enumerate(steps):
        for (name, layer), a in t.items():
            dtype = (dtypes or {}).get(name, "float32")
            files.append(entry_for(d, name, layer, step, start, n, step_slice(name, a, start, n), dtype))
        for gname, a in (graph or {}).items():
            files.append(entry_for(d, "graph", -1, step, start, n, a[start:start + n], graph_name=gname))
    np.save(os.path.join(d, "tokens.npy"), np.array(tokens, dtype=np.int32))
    m = {"format": "llorch-checkpoint-dump", "format_version": 1, "complete": complete,
         "status": "ok" if complete else "interrupted", "producer": "test_compare_cli.py",
         "model": model or {"path": "synthetic", "size": -1, "architecture": "gpt2", "n_layer": N_LAYER,
                            "n_embd": N_EMBD, "n_head": N_HEAD, "n_head_kv": N_HEAD, "n_vocab": N_VOCAB,
                            "fingerprint": SYNTHETIC_FINGERPRINT},
         "prompt": "synthetic", "tokens": tokens, "tokens_file": "tokens.npy",
         "settings": {"n_ubatch": steps[0][1]}, "files": files,
         "missing": [{"checkpoint": "Qcur_pre_rope", "layer": 0, "reason": "gpt2 applies no RoPE"}],
         "some_future_key": {"ignored": True}}
    if edit:
        edit(m)
    write_manifest(d, m)
    return m


def write_manifest(d, m):
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1)


def read_manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


# ---- running the tool -------------------------------------------------------------------

def run(*args, expect=None):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
    for bad in ("Sanitizer", "runtime error:", "LeakSanitizer"):
        check(bad not in p.stderr, f"sanitizer report for {args}:\n{p.stderr}")
    if expect is not None and p.returncode != expect:
        fail(f"{' '.join(map(str, args))}: exit {p.returncode}, expected {expect}\n"
             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def run_json(*args, expect=None):
    p = run(*args, "--json", expect=expect)
    try:
        report = json.loads(p.stdout)
    except ValueError as e:
        fail(f"--json output does not parse: {e}\n{p.stdout}")
    check(report["exit_code"] == p.returncode, f"JSON exit_code {report['exit_code']} != {p.returncode}")
    check(report["verdict"] == {0: "pass", 1: "fail", 2: "error", 3: "incomplete"}[p.returncode], "JSON verdict")
    return report


def row(report, name, layer):
    for r in report["rows"]:
        if r["checkpoint"] == name and r["layer"] == (layer if layer >= 0 else None):
            return r
    fail(f"no row {name} layer {layer}")


def path(name):
    return os.path.join(WORK, name)


# ---- cases --------------------------------------------------------------------------------

def case_identical():
    t = make_model()
    write_dump(path("ref"), t)
    write_dump(path("cand"), copy_model(t))
    p = run(path("ref"), path("cand"), expect=0)
    n_rows = 1 + N_LAYER * len(LAYER_ORDER) + 2
    check(f"all {n_rows} checkpoint rows match by the default judgement" in p.stdout, p.stdout)
    check("=>" not in p.stdout, "no first-failure marker when all pass")
    run(path("ref"), path("ref"), "--preset", "exact", expect=0)
    report = run_json(path("ref"), path("cand"), expect=0)
    check(len(report["rows"]) == n_rows and report["first_divergence"] is None, "JSON rows")
    check([r["checkpoint"] for r in report["rows"][:3]] == ["embd", "attn_norm", "Qcur"], "reference order")
    check(all(r["max_abs_err"] == 0 and r["cosine"] == 1 for r in report["rows"]), "zero error")


def case_perturbed():
    t = make_model()
    write_dump(path("ref"), t)
    c = copy_model(t)
    perturb(c, keys_from(c, ("attn_norm", 1)), 0.05)
    write_dump(path("cand"), c)
    p = run(path("ref"), path("cand"), expect=1)
    want = "first divergence: attn_norm, layer 1 (introduced here: its input l_out layer 0 passed)"
    check(want in p.stdout, f"closing sentence missing:\n{p.stdout}")
    marked = [line for line in p.stdout.splitlines() if line.startswith("=>")]
    check(len(marked) == 1 and "attn_norm" in marked[0] and " 1 " in marked[0], f"marker: {marked}")
    report = run_json(path("ref"), path("cand"), expect=1)
    first = report["first_divergence"]
    check((first["checkpoint"], first["layer"], first["origin"]) == ("attn_norm", 1, "introduced"), str(first))
    check(row(report, "l_out", 0)["status"] == "PASS", "layer 0 passes")
    an = row(report, "attn_norm", 1)
    check(an["inputs"] == [{"checkpoint": "l_out", "layer": 0, "state": "passed"}], str(an["inputs"]))
    for name, layer, inp in [("Qcur", 1, "attn_norm"), ("kq_soft_max", 1, "Qcur"), ("l_out", 1, "ffn_out"),
                             ("attn_norm", 2, "l_out"), ("logits", -1, "result_norm")]:
        r = row(report, name, layer)
        check(r["status"] == "FAIL" and r["origin"] == "inherited", f"{name} {layer}: {r['status']} {r.get('origin')}")
        check(any(i["checkpoint"] == inp and i["state"] == "failed" for i in r["inputs"]), f"{name} inputs {r['inputs']}")
    check(row(report, "result_norm", -1)["inputs"][0] == {"checkpoint": "l_out", "layer": N_LAYER - 1,
                                                         "state": "failed"}, "result_norm <- l_out(last)")
    q = run(path("ref"), path("cand"), "-q", expect=1)
    check(q.stdout.strip() == want, f"-q: {q.stdout!r}")


def case_origins():
    """Dataflow fallbacks: absent inputs make the origin unknown; Kcur when no cache."""
    t = make_model()
    only = {k: v for k, v in t.items() if k[0] in ("attn_norm", "Qcur", "Kcur", "kq_soft_max")}
    write_dump(path("ref"), only)
    c = copy_model(only)
    perturb(c, [("attn_norm", 1)], 0.05)
    perturb(c, [("kq_soft_max", 2)], 0.05)
    write_dump(path("cand"), c)
    report = run_json(path("ref"), path("cand"), expect=1)
    an = row(report, "attn_norm", 1)
    check(an["origin"] == "unknown" and an["inputs"][0]["state"] == "absent", str(an))
    check("is absent" in an["origin_text"], an["origin_text"])
    kq = row(report, "kq_soft_max", 2)
    check(kq["origin"] == "introduced", str(kq))
    check([(i["checkpoint"], i["state"]) for i in kq["inputs"]] == [("Qcur", "passed"), ("Kcur", "passed")],
          str(kq["inputs"]))
    a0 = row(report, "attn_norm", 0)
    check(a0["status"] == "PASS", "attn_norm 0 passes")
    # embd failing is introduced: it is the model's first tensor.
    write_dump(path("ref"), t)
    c = copy_model(t)
    perturb(c, [("embd", -1)], 0.05)
    write_dump(path("cand"), c)
    p = run(path("ref"), path("cand"), "-q", expect=1)
    check("first divergence: embd (introduced here: the model's first tensor)" in p.stdout, p.stdout)


STEP_SPLITS = [[(0, 3), (3, 1), (4, 3)], [(0, 1)] + [(i, 1) for i in range(1, N_TOK)], [(0, 5), (5, 2)]]


def case_steps():
    t = make_model()
    write_dump(path("one"), t)
    noisy = copy_model(t)
    perturb(noisy, list(noisy.keys()), 1e-7)
    for i, split in enumerate(STEP_SPLITS):
        write_dump(path(f"split{i}"), noisy if i == 0 else t, steps=split)
        run(path("one"), path(f"split{i}"), expect=0)
        run(path(f"split{i}"), path("one"), expect=0)
    run(path("split1"), path("split2"), expect=0)
    report = run_json(path("one"), path("split0"), expect=0)
    kq = row(report, "kq_soft_max", 0)
    check(kq["n"] == N_HEAD * N_TOK * (N_TOK + 1) // 2, f"kq_soft_max compares keys 0..t only: n={kq['n']}")
    check(row(report, "cache_k", 1)["n"] == N_TOK * N_HEAD * HEAD_DIM, "cache_k: every key once")
    check(row(report, "attn_norm", 2)["n"] == N_TOK * N_EMBD, "attn_norm: every position once")
    check(row(report, "Qcur", 0)["max_abs_err"] > 0, "the noise is seen")
    # The cache is read from the latest step that holds a key: a wrong
    # early step is superseded, a wrong last step is not.
    m = read_manifest(path("split0"))
    wrong_early = next(f for f in m["files"] if f["checkpoint"] == "cache_k" and f["layer"] == 1 and f["step"] == 0)
    rewrite_npy(path("split0"), wrong_early, lambda a: a + 1)
    run(path("one"), path("split0"), expect=0)
    wrong_last = next(f for f in m["files"] if f["checkpoint"] == "cache_k" and f["layer"] == 1 and f["step"] == 2)
    rewrite_npy(path("split0"), wrong_last, lambda a: a + 1)
    report = run_json(path("one"), path("split0"), expect=1)
    check(report["first_divergence"]["checkpoint"] == "cache_k", str(report["first_divergence"]))
    # Masked keys (k > t) are not compared: garbage there changes nothing.
    m = read_manifest(path("one"))
    kq0 = next(f for f in m["files"] if f["checkpoint"] == "kq_soft_max" and f["layer"] == 0)
    rewrite_npy(path("one"), kq0, lambda a: a + np.triu(np.ones(a.shape[1:], dtype=a.dtype), 1))
    run(path("one"), path("split1"), expect=0)


def rewrite_npy(d, entry, change):
    """Changes a file's values and keeps the manifest consistent (crc32)."""
    a = change(np.load(os.path.join(d, entry["file"]))).astype(NP_DTYPES[entry["dtype"]])
    np.save(os.path.join(d, entry["file"]), a)
    m = read_manifest(d)
    for f in m["files"]:
        if f["file"] == entry["file"]:
            f["crc32"] = zlib.crc32(a.tobytes())
    write_manifest(d, m)


def case_tolerance():
    t = make_model()
    write_dump(path("ref"), t)
    c = copy_model(t)
    perturb(c, list(c.keys()), 2e-3)
    write_dump(path("cand"), c)
    ref, cand = path("ref"), path("cand")
    run(ref, cand, expect=1)                                 # f32: atol 1e-4, rtol 1e-3
    run(ref, cand, "--preset", "f16", expect=0)              # f16: 1e-2, 1e-2
    run(ref, cand, "--atol", "1e-2", expect=1)               # NMSE 4e-6 > 1e-6 still fails
    run(ref, cand, "--atol", "1e-2", "--nmse", "1e-5", expect=0)
    run(ref, cand, "--atol=1e-2", "--nmse=1e-5", expect=0)
    run(ref, cand, "--tol", "atol=1e-2,nmse=1e-5", expect=0)
    run(ref, cand, "--within", "0", "--nmse", "1", expect=0)
    # The preset comes first whatever its place; later flags override it.
    run(ref, cand, "--atol", "1e-9", "--preset", "f16", expect=1)
    report = run_json(ref, cand, "--preset", "f16", "--tol", "kq_soft_max:atol=1e-6,rtol=0", expect=1)
    failing = {r["checkpoint"] for r in report["rows"] if r["status"] != "PASS"}
    check(failing == {"kq_soft_max"}, f"only kq_soft_max fails: {failing}")
    check(row(report, "kq_soft_max", 0)["tolerance"]["atol"] == 1e-6, "per-checkpoint atol")
    check(row(report, "attn_norm", 0)["tolerance"]["atol"] == 1e-2, "global atol")
    # exact: any difference fails; identical passes.
    run(ref, ref, "--preset", "exact", expect=0)
    run(ref, cand, "--preset", "exact", "-q", expect=1)
    for bad in (["--preset", "f64"], ["--tol", "atol"], ["--tol", "foo=1"], ["--atol", "-1"],
                ["--within", "2"], ["--atol"], ["--bogus"], ["--tol", "kq_soft_max:atol=x"]):
        p = run(ref, cand, *bad, expect=2)
        check(p.stderr.strip(), f"{bad}: an error message")
    run(ref, expect=2)
    run(ref, cand, ref, expect=2)
    check("usage:" in run("--help", expect=0).stdout, "--help")


def case_nmse():
    """A small error over a whole low-variance tensor: every element is within
    atol, yet NMSE catches it."""
    t = make_model()
    t[("attn_norm", 0)] = (t[("attn_norm", 0)] * 1e-5).astype(np.float32)
    write_dump(path("ref"), t)
    c = copy_model(t)
    c[("attn_norm", 0)] = (c[("attn_norm", 0)] + 5e-5).astype(np.float32)
    write_dump(path("cand"), c)
    report = run_json(path("ref"), path("cand"), expect=1)
    r = row(report, "attn_norm", 0)
    check(r["status"] == "FAIL" and r["within"] == 1.0 and r["nmse"] > 1, str(r))
    run(path("ref"), path("cand"), "--tol", "attn_norm:nmse=100", expect=0)


def np_metrics(r, c):
    r = r.astype(np.float64)
    c = c.astype(np.float64)
    d = c - r
    nz = r != 0
    return {"max_abs_err": np.max(np.abs(d)), "mean_abs_err": np.mean(np.abs(d)),
            "rmse": np.sqrt(np.mean(d * d)), "nmse": np.mean(d * d) / np.var(r),
            "cosine": np.dot(r, c) / (np.linalg.norm(r) * np.linalg.norm(c)),
            "max_rel_err": np.max(np.abs(d[nz]) / np.abs(r[nz]))}


def close(a, b, rel=1e-12):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def check_metrics(report, name, layer, ref, cand, where):
    got = row(report, name, layer)
    want = np_metrics(ref.ravel(), cand.ravel())
    for k, v in want.items():
        check(close(got[k], v), f"{name} {layer} {k}: {got[k]!r} vs numpy {v!r}")
    check(got["n"] == ref.size, f"{name} {layer} n {got['n']} vs {ref.size}")
    check(got["max_abs_at"] == where, f"{name} {layer} location {got['max_abs_at']} vs {where}")


def argmax_at(axes, d):
    return dict(zip(axes, (int(i) for i in np.unravel_index(np.argmax(np.abs(d)), d.shape))))


def case_metrics():
    t = make_model(seed=3)
    c = copy_model(t)
    perturb(c, list(c.keys()), 1e-3, seed=11)
    c[("Vcur", 1)] = t[("Vcur", 1)].astype(np.float16).astype(np.float32)  # compared as written in f16
    write_dump(path("ref"), t)
    write_dump(path("cand"), c, steps=STEP_SPLITS[0], dtypes={"Vcur": "float16"})
    report = run_json(path("ref"), path("cand"), "--preset", "f16")
    for key in [("attn_norm", 0), ("Qcur", 1), ("cache_k", 2), ("logits", -1)]:
        r, cd = t[key].astype(np.float64), c[key].astype(np.float64)
        check_metrics(report, key[0], key[1], r, cd, argmax_at(AXES.get(key[0], ["token", "channel"]), cd - r))
    v = row(report, "Vcur", 1)
    check(v["cand_dtype"] == "float16" and v["ref_dtype"] == "float32", "dtypes")
    r16 = t[("Vcur", 1)].astype(np.float64)
    c16 = t[("Vcur", 1)].astype(np.float16).astype(np.float64)
    check_metrics(report, "Vcur", 1, r16, c16, argmax_at(AXES["Vcur"], c16 - r16))
    # Scores: keys 0..t of token t only.
    r, cd = t[("kq_soft_max", 2)].astype(np.float64), c[("kq_soft_max", 2)].astype(np.float64)
    causal = ~np.triu(np.ones((N_TOK, N_TOK), dtype=bool), 1)
    sel = np.broadcast_to(causal, r.shape)
    got = row(report, "kq_soft_max", 2)
    want = np_metrics(r[sel], cd[sel])
    for k, val in want.items():
        check(close(got[k], val), f"kq_soft_max {k}: {got[k]!r} vs numpy {val!r}")
    d = np.where(sel, np.abs(cd - r), 0)
    check(got["max_abs_at"] == argmax_at(AXES["kq_soft_max"], d),
          f"kq location {got['max_abs_at']} vs {argmax_at(AXES['kq_soft_max'], d)}")
    check(got["within"] == np.mean(np.abs(cd[sel] - r[sel]) <= 1e-2 + 1e-2 * np.abs(r[sel])), "within")


# ---- malformed input: every case exits 2 and names the file -------------------------------

def npy_bytes(a, version=(1, 0)):
    import io
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def npy_with_header(header, data, version=1):
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h + data


def corrupt(case, entry, d):
    """Returns (new file bytes or None, manifest edit or None) for a case."""
    f = os.path.join(d, entry["file"])
    raw = open(f, "rb").read()
    a = np.load(f)
    shape = tuple(entry["shape"])
    bigger = (shape[0] + 1,) + shape[1:]

    def hdr(descr="<f4", fortran="False", shp=shape):
        return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, repr(tuple(shp)))
    cases = {
        "truncated": (raw[:-10], None),
        "truncated-header": (raw[:30], None),
        "tiny": (raw[:5], None),
        "empty": (b"", None),
        "shape-lies-bigger": (npy_with_header(hdr(shp=bigger), a.tobytes()), lambda e: e.update(
            shape=list(bigger), n_pos=bigger[0], bytes=a.nbytes * bigger[0] // shape[0])),
        "shape-lies-smaller": (npy_with_header(hdr(shp=(1,) + shape[1:]), a.tobytes()), None),
        "huge-shape": (npy_with_header(hdr(shp=(2**40, 2**30)), a.tobytes()), None),
        "overflow-shape": (npy_with_header(hdr(shp=(2**62, 2**62, 16)), a.tobytes()), None),
        "wrong-magic": (b"\x93NUMPZ" + raw[6:], None),
        "version-3": (raw[:6] + b"\x03\x00" + raw[8:], None),
        "dtype-f8": (npy_with_header(hdr(descr="<f8"), a.astype(np.float64).tobytes()), None),
        "dtype-big-endian": (npy_with_header(hdr(descr=">f4"), a.astype(">f4").tobytes()), None),
        "fortran": (npy_with_header(hdr(fortran="True"), a.tobytes()), None),
        "header-length-huge": (b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + raw[10:], None),
        "header-garbage": (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2x), }",
                                           a.tobytes()), None),
        "header-unknown-key": (npy_with_header(hdr()[:-1] + "'extra': 1, }", a.tobytes()), None),
        "crc-mismatch": (raw[:-4] + bytes(b ^ 0x55 for b in raw[-4:]), None),
        "manifest-dtype": (None, lambda e: e.update(dtype="float16", bytes=a.nbytes // 2)),
        "manifest-shape": (None, lambda e: e.update(shape=list(reversed(shape)))),
    }
    return cases[case]


NPY_CASES = ["truncated", "truncated-header", "tiny", "empty", "shape-lies-bigger", "shape-lies-smaller",
             "huge-shape", "overflow-shape", "wrong-magic", "version-3", "dtype-f8", "dtype-big-endian",
             "fortran", "header-length-huge", "header-garbage", "header-unknown-key", "crc-mismatch",
             "manifest-dtype", "manifest-shape"]


def expect_bad(ref, cand, names, what):
    p = run(ref, cand, expect=2)
    out = p.stdout + p.stderr
    for n in names:
        check(n in out, f"{what}: the output does not name {n}:\n{out}")
    errors = [line for line in p.stderr.splitlines() if "error" in line]
    check(errors, f"{what}: no error line on stderr")
    return p


def case_malformed():
    t = make_model()
    base = path("base")
    write_dump(base, t)
    ref = path("ref")
    write_dump(ref, t)
    m = read_manifest(base)
    target = next(f for f in m["files"] if f["checkpoint"] == "Kcur" and f["layer"] == 1)
    # The .npy files.
    for case in NPY_CASES:
        d = path("bad")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d)
        data, edit = corrupt(case, target, d)
        if data is not None:
            open(os.path.join(d, target["file"]), "wb").write(data)
        if edit:
            mm = read_manifest(d)
            edit(next(f for f in mm["files"] if f["file"] == target["file"]))
            write_manifest(d, mm)
        expect_bad(ref, d, [target["file"]], case)
        expect_bad(d, ref, [target["file"]], case + " (as reference)")
    # v2.0 headers are read (a valid file, not an error).
    d = path("v2")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    a = np.load(os.path.join(d, target["file"]))
    open(os.path.join(d, target["file"]), "wb").write(npy_bytes(a, (2, 0)))
    run(ref, d, expect=0)
    malformed_files(base, ref, target)
    malformed_manifests(base, ref)


def malformed_files(base, ref, target):
    d = path("bad")
    for case in ("missing", "symlink", "fifo", "directory"):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d)
        f = os.path.join(d, target["file"])
        os.remove(f)
        if case == "symlink":
            os.symlink(os.path.join(base, target["file"]), f)
        elif case == "fifo":
            os.mkfifo(f)
        elif case == "directory":
            os.mkdir(f)
        expect_bad(ref, d, [target["file"]], case)


def edit_entry(index, **changes):
    def edit(m):
        for k, v in changes.items():
            if v is None:
                m["files"][index].pop(k, None)
            else:
                m["files"][index][k] = v
    return edit


def malformed_manifests(base, ref):
    t = make_model()
    outside = os.path.join(WORK, "outside.npy")
    np.save(outside, np.zeros((N_TOK, N_EMBD), dtype=np.float32))
    edits = {
        "absolute-name": edit_entry(3, file=outside),
        "dotdot-name": edit_entry(3, file="../outside.npy"),
        "slash-name": edit_entry(3, file="sub/x.npy"),
        "backslash-name": edit_entry(3, file="..\\x.npy"),
        "empty-name": edit_entry(3, file=""),
        "control-name": edit_entry(3, file="a\nb.npy"),
        "layer-string": edit_entry(3, layer="two"),
        "layer-float": edit_entry(3, layer=1.5),
        "layer-huge": edit_entry(3, layer=1e300),
        "pos-negative": edit_entry(3, pos_start=-4),
        "shape-missing": edit_entry(3, shape=None),
        "shape-string": edit_entry(3, shape="(7, 16)"),
        "shape-too-many": edit_entry(3, shape=[1, 1, 1, 1, 1], axes=["a", "b", "c", "d", "e"]),
        "shape-huge": edit_entry(3, shape=[2**52, 2**52]),
        "axes-missing": edit_entry(3, axes=None),
        "axes-count": edit_entry(3, axes=["token"]),
        "axes-duplicate": edit_entry(3, axes=["token", "token"]),
        "n_pos-wrong": edit_entry(3, n_pos=3),
        "crc-string": edit_entry(3, crc32="abc"),
        "crc-range": edit_entry(3, crc32=2**33),
        "dtype-unknown": edit_entry(3, dtype="float64"),
        "bytes-wrong": edit_entry(3, bytes=12),
        "checkpoint-missing": edit_entry(3, checkpoint=None),
        "file-number": edit_entry(3, file=12),
        "file-listed-twice": lambda m: m["files"][4].update(file=m["files"][3]["file"]),
        "entry-not-object": lambda m: m["files"].__setitem__(3, [1, 2]),
        "files-missing": lambda m: m.pop("files"),
        "model-missing": lambda m: m.pop("model"),
        "n_layer-string": lambda m: m["model"].update(n_layer="3"),
        "format-wrong": lambda m: m.update(format="something-else"),
        "format-version-2": lambda m: m.update(format_version=2),
        "complete-missing": lambda m: m.pop("complete"),
        "tokens-bad": lambda m: m.update(tokens=[1, "x"]),
        "tokens-file-outside": lambda m: m.update(tokens_file="../tokens.npy"),
        "not-object": lambda m: (m.clear(), m.update({"x": 1})) and None,
    }
    for case, edit in edits.items():
        d = path("badm")
        write_dump(d, t, edit=edit)
        expect_bad(ref, d, ["manifest.json"], case)
    for case, text in {"not-json": "{\"format\": ", "empty-manifest": "", "array": "[1, 2]",
                       "trailing": json.dumps(read_manifest(base)) + " x",
                       "deep": "[" * 100000 + "]" * 100000}.items():
        d = path("badm")
        write_dump(d, t)
        open(os.path.join(d, "manifest.json"), "w").write(text)
        expect_bad(ref, d, ["manifest.json"], case)
    d = path("badm")
    write_dump(d, t)
    os.remove(os.path.join(d, "manifest.json"))
    expect_bad(ref, d, ["manifest.json"], "no manifest")
    expect_bad(ref, path("does-not-exist"), ["does-not-exist"], "no directory")
    write_dump(d, t)
    np.save(os.path.join(d, "tokens.npy"), np.array(TOKENS[::-1], dtype=np.int32))
    expect_bad(ref, d, ["tokens.npy"], "tokens.npy differs from the manifest")


# ---- names and structure --------------------------------------------------------------------

def case_names():
    """Graph tensors align by graph_name; dumps without tokens in the manifest
    read them from tokens_file."""
    t = make_model()
    rng = np.random.default_rng(5)
    graph = {"attn_norm-0": rng.standard_normal((N_TOK, N_EMBD)).astype(np.float32),
             "ffn_up-1": rng.standard_normal((N_TOK, N_EMBD)).astype(np.float32)}
    write_dump(path("ref"), t, graph=graph)
    g2 = {k: v.copy() for k, v in graph.items()}
    g2["ffn_up-1"] += 0.5
    write_dump(path("cand"), t, steps=STEP_SPLITS[0], graph=g2, edit=lambda m: m.pop("tokens"))
    report = run_json(path("ref"), path("cand"), expect=1)
    graph_rows = {r["graph_name"]: r for r in report["rows"] if r["checkpoint"] == "graph"}
    check(set(graph_rows) == {"attn_norm-0", "ffn_up-1"}, str(graph_rows.keys()))
    check(graph_rows["attn_norm-0"]["status"] == "PASS", "graph attn_norm-0 passes")
    bad = graph_rows["ffn_up-1"]
    check(bad["status"] == "FAIL" and bad["origin"] == "unknown", str(bad))
    check(report["first_divergence"]["graph_name"] == "ffn_up-1", str(report["first_divergence"]))
    p = run(path("ref"), path("cand"), "-q", expect=1)
    check("first divergence: graph ffn_up-1" in p.stdout, p.stdout)


def case_structure():
    t = make_model()
    ref = path("ref")
    write_dump(ref, t)
    d = path("cand")
    model = {"architecture": "gpt2", "n_layer": N_LAYER, "n_embd": N_EMBD}
    for what, change in {"n_layer": {"n_layer": N_LAYER + 1}, "architecture": {"architecture": "llama"},
                         "n_embd": {"n_embd": N_EMBD * 2}}.items():
        write_dump(d, t, model=dict(model, **change))
        p = run(ref, d, expect=2)
        check("different models" in p.stderr, f"{what}: {p.stderr}")
        check(json.loads(run(ref, d, "--json", expect=2).stdout)["verdict"] == "error", "JSON error")
    # Token ids: an error unless allowed.
    write_dump(d, t, tokens=[11, 5, 31, 2, 8, 19, 23])
    p = run(ref, d, expect=2)
    check("token ids differ at position 4" in p.stderr, p.stderr)
    p = run(ref, d, "--allow-token-mismatch", expect=0)
    check("warning: token ids differ" in p.stdout, p.stdout)
    # Fewer tokens, a prefix of the reference's: positions only one dump has
    # are noted, the rest compared (more in structure_token_prefix below).
    short = {k: step_slice(k[0], v, 0, 5) if k[0] != "kq_soft_max" else v[:, :5, :5] for k, v in t.items()}
    write_dump(d, short, tokens=TOKENS[:5])
    run(ref, d, expect=3)
    # ... a candidate that lacks positions the reference holds is incomplete (3)
    p = run(ref, d, "--allow-token-mismatch", expect=3)
    check("only in the reference" in p.stdout and "positions that only one dump has" in p.stdout, p.stdout)
    check("not compared: " in p.stdout and "exit status 3" in p.stdout, p.stdout)
    run(ref, d, "--allow-token-mismatch", "--allow-missing", expect=0)
    # An incomplete dump is compared with a warning, and fails as incomplete.
    write_dump(d, {k: v for k, v in t.items() if k[1] < 2}, complete=False)
    p = run(ref, d, expect=3)
    check("warning: the candidate" in p.stdout and "INCOMPLETE" in p.stdout, p.stdout)
    check("only in the reference: attn_norm layers 2" in p.stdout, p.stdout)
    check(p.stdout.strip().splitlines()[-1].startswith("incomplete: the candidate says it is incomplete"), p.stdout)
    # A checkpoint only one dump has is listed, not an error; the candidate
    # that lacks it fails as incomplete unless told what it produces.
    write_dump(d, {k: v for k, v in t.items() if k[0] != "Qcur"})
    p = run(ref, d, expect=3)
    check("only in the reference: Qcur layers 0,1,2" in p.stdout, p.stdout)
    run(ref, d, "--allow-missing", expect=0)
    run(ref, d, "--only", "embd,attn_norm,Kcur,Vcur,cache_k,cache_v,kq_soft_max,5,ffn_inp,6,l_out,result_norm,logits",
        expect=0)
    report = run_json(d, ref, expect=0)
    check({o["checkpoint"] for o in report["only_in_candidate"]} == {"Qcur"}, str(report["only_in_candidate"]))
    # Different head counts: shapes do not line up, named, exit 2.
    c = copy_model(t)
    c[("Kcur", 1)] = c[("Kcur", 1)].reshape(N_TOK, N_HEAD * 2, HEAD_DIM // 2)
    perturb(c, [("cache_k", 1)], 0.05)
    write_dump(d, c)
    p = run(ref, d, expect=2)
    check("checkpoint_02_Kcur_l01_s000.npy" in p.stderr and "does not line up" in p.stderr, p.stderr)
    check("ERROR" in p.stdout and "first divergence: Kcur, layer 1 (not comparable" in p.stdout, p.stdout)
    report = run_json(ref, d, expect=2)
    check(row(report, "Kcur", 1)["status"] == "ERROR", "ERROR row")
    check(row(report, "cache_k", 1)["origin"] == "inherited", "an ERROR input counts as failed")
    # f16 against f32: compared, with a warning.
    write_dump(d, t, dtypes={"cache_k": "float16", "cache_v": "float16"})
    p = run(ref, d, "--preset", "f16", expect=0)
    check("differ in dtype" in p.stdout and p.stderr == "", p.stdout + p.stderr)
    structure_token_prefix()


def prefix_of(t, n):
    """Model t's first n positions: what a run on its first n tokens computes."""
    return {k: step_slice(k[0], v, 0, n) if k[0] != "kq_soft_max" else v[:, :n, :n] for k, v in t.items()}


def structure_token_prefix():
    """A shorter run whose token ids are a prefix of the other's compares on
    the shared positions (docs/COMPARE.md, "The verdict"): a shorter
    reference leaves the candidate's extra positions uncompared and passes;
    a shorter candidate is incomplete (exit status 3) unless --allow-missing;
    ids that differ are refused in one line that names both dumps."""
    tokens = [11, 5, 31, 2, 7, 19, 23, 3, 29, 13, 17, 37]
    long_t = make_model(seed=3, T=len(tokens))
    short, long_one, long_gen = path("prefix-9"), path("prefix-12"), path("prefix-12-generated")
    write_dump(short, prefix_of(long_t, 9), tokens=tokens[:9])
    write_dump(long_one, long_t, tokens=tokens)
    # the 9-token prompt and 3 generated tokens, a step each
    write_dump(long_gen, long_t, tokens=tokens, steps=[(0, 9), (9, 1), (10, 1), (11, 1)])
    # A shorter reference: passes; the summary says what was not compared.
    for cand in (long_one, long_gen):
        p = run(short, cand, expect=0)
        want = (f"warning: the reference {short} ran on 9 tokens, the candidate {cand} on 12 whose first 9 "
                "are the reference's: the candidate's positions 9 to 11 are not compared")
        check(want in p.stdout, f"{cand}: the note on uncompared positions:\n{p.stdout}")
        check("0 only in the reference, 3 only in the candidate (not compared)" in p.stdout, p.stdout)
        check("not compared: " not in p.stdout and p.stderr == "", p.stdout + p.stderr)
        report = run_json(short, cand, expect=0)
        check(row(report, "attn_norm", 1)["n"] == 9 * N_EMBD, "the 9 shared positions are compared")
        check(row(report, "kq_soft_max", 0)["n"] == N_HEAD * 9 * 10 // 2, "scores: keys 0..t of 9 tokens")
        check(any("positions 9 to 11 are not compared" in w for w in report["warnings"]), "JSON warning")
    # A shorter candidate: incomplete, exit status 3, unless --allow-missing.
    for ref in (long_one, long_gen):
        p = run(ref, short, expect=3)
        check("positions 9 to 11 are missing from the candidate" in p.stdout, p.stdout)
        check("not compared: " in p.stdout and "exit status 3" in p.stdout, p.stdout)
        check(p.stdout.strip().splitlines()[-1].startswith("incomplete: "), p.stdout)
        check(run_json(ref, short, expect=3)["missing"]["positions"] > 0, "JSON missing positions")
        p = run(ref, short, "--allow-missing", expect=0)
        check("(allowed by --allow-missing)" in p.stdout, p.stdout)
    # Different ids, within the shared positions: refused, one line naming
    # both dumps and the fix; --allow-token-mismatch compares anyway.
    other = path("prefix-12-other")
    write_dump(other, long_t, tokens=tokens[:6] + [8] + tokens[7:])
    for ref, cand, a, b in ((short, other, 23, 8), (other, short, 8, 23)):
        p = run(ref, cand, expect=2)
        lines = p.stderr.strip().splitlines()
        check(len(lines) == 1 and lines[0].startswith(
            f"llorch-checkpoint-compare: error: token ids differ at position 6: {a} in the reference, "
            f"{b} in the candidate"), f"one line:\n{p.stderr}")
        check(ref in lines[0] and cand in lines[0] and "--allow-token-mismatch" in lines[0], lines[0])
        check(run_json(ref, cand, expect=2)["verdict"] == "error", "JSON error")
    p = run(short, other, "--allow-token-mismatch", expect=0)  # the values are the same
    check("warning: token ids differ at position 6: 23 in the reference, 8 in the candidate" in p.stdout, p.stdout)


def case_json():
    t = make_model()
    write_dump(path("ref"), t)
    c = copy_model(t)
    perturb(c, keys_from(c, ("ffn_out", 0)), 0.05)
    write_dump(path("cand"), c)
    report = run_json(path("ref"), path("cand"), expect=1)
    check(report["first_divergence"]["checkpoint"] == "ffn_out", str(report["first_divergence"]))
    check(report["message"].startswith("first divergence: ffn_out, layer 0 (introduced here: its input ffn_inp"),
          report["message"])
    table = run(path("ref"), path("cand"), expect=1).stdout
    check(report["message"] in table, "the table and JSON agree")
    for r in report["rows"]:
        for k in ("checkpoint", "layer", "status", "n", "max_abs_err", "max_abs_at", "max_rel_err",
                  "mean_abs_err", "rmse", "nmse", "cosine", "within", "tolerance"):
            check(k in r, f"row lacks {k}: {r}")
    check(report["tolerance"] == {"atol": 1e-4, "rtol": 1e-3, "nmse": 1e-2, "within": 0, "preset": "auto"},
          str(report["tolerance"]))
    check(report["judgement"] == "default" and row(report, "ffn_out", 0)["growth"] > 1e3, "the default judgement")
    report = run_json(path("ref"), path("cand"), "--preset", "f32", expect=1)
    check(report["tolerance"] == {"atol": 1e-4, "rtol": 1e-3, "nmse": 1e-6, "within": 1, "preset": "f32"},
          str(report["tolerance"]))
    check(report["judgement"] == "tolerance" and "growth" not in row(report, "ffn_out", 0), "a preset's judgement")


def case_quiet():
    t = make_model()
    write_dump(path("ref"), t)
    write_dump(path("cand"), t)
    p = run(path("ref"), path("cand"), "-q", expect=0)
    check(len(p.stdout.splitlines()) == 1 and "match" in p.stdout, repr(p.stdout))
    check(p.stderr == "", repr(p.stderr))


# ---- regressions ---------------------------------------------------------------------------

def case_tol_names():
    """A tolerance for a misspelled checkpoint is an error, not a no-op."""
    t = make_model()
    write_dump(path("ref"), t)
    c = copy_model(t)
    perturb(c, [("Qcur", 0)], 1e-3)
    write_dump(path("cand"), c)
    p = run(path("ref"), path("cand"), "--tol", "Qcurr:atol=1", expect=2)
    lines = p.stderr.splitlines()
    check(len(lines) == 1 and "unknown checkpoint 'Qcurr'" in lines[0], f"one line naming Qcurr: {p.stderr!r}")
    for known in LAYER_ORDER + ["embd", "result_norm", "logits", "Qcur_pre_rope", "graph"]:
        check(re.search(rf"[( ]{known}[,)]", lines[0]), f"{known} not listed: {lines[0]}")
    check(p.stdout == "", f"no report: {p.stdout!r}")
    run(path("ref"), path("cand"), expect=1)
    run(path("ref"), path("cand"), "--tol", "Qcur:atol=1,nmse=1", expect=0)
    run(path("ref"), path("cand"), "--tol", "graph:atol=1", expect=1)


def case_warnings():
    """The table holds the warnings, once; -q and --json leave them on stderr."""
    t = make_model()
    write_dump(path("ref"), t)
    write_dump(path("cand"), t, tokens=[11, 5, 31, 2, 8, 19, 23], complete=False)
    want = ["warning: token ids differ at position 4: 7 in the reference, 8 in the candidate",
            f"warning: the candidate {path('cand')} is incomplete (\"complete\": false, status: interrupted)"]
    p = run(path("ref"), path("cand"), "--allow-token-mismatch", expect=3)  # incomplete
    for w in want:
        check(p.stdout.count(w) == 1, f"the table holds '{w}' once:\n{p.stdout}")
        check(w not in p.stderr, f"not repeated on stderr: {p.stderr}")
    lines = p.stdout.splitlines()
    check(lines.index(next(x for x in lines if x.startswith(want[0]))) < len(lines) - 2, "before the summary")
    for flag in ("-q", "--json"):
        p = run(path("ref"), path("cand"), "--allow-token-mismatch", flag, expect=3)
        check(all(w in p.stderr for w in want), f"{flag}: warnings on stderr: {p.stderr!r}")
    check(all(any(x.startswith(w[9:]) for x in run_json(path("ref"), path("cand"), "--allow-token-mismatch")
                  ["warnings"]) for w in want), "JSON warnings")


def case_step_order():
    """The latest file of a checkpoint is the one of the highest step, even
    where the manifest lists a later step first (FORMAT.md promises step
    order; a reader that refuses the manifest is as good)."""
    t = make_model()
    write_dump(path("one"), t)
    d = path("reversed")
    m = write_dump(d, t, steps=STEP_SPLITS[0], edit=lambda m: m["files"].reverse())
    stale = next(f for f in m["files"] if f["checkpoint"] == "cache_k" and f["layer"] == 1 and f["step"] == 0)
    rewrite_npy(d, stale, lambda a: a + 1)          # superseded by steps 1 and 2
    p = run(path("one"), d)
    if p.returncode == 2 and "manifest.json" in p.stderr:
        print(f"note: the reader refuses steps out of order: {p.stderr.strip()}")
        return
    check(p.returncode == 0, f"the stale step 0 was used: exit {p.returncode}\n{p.stdout}")
    for args in ((path("one"), d), (d, path("one"))):
        report = run_json(*args, expect=0)
        r = row(report, "cache_k", 1)
        check(r["max_abs_err"] == 0 and r["n"] == N_TOK * N_HEAD * HEAD_DIM, str(r))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global TOOL, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    TOOL = args.tool
    WORK = os.path.join(args.work, args.case)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    CASES[args.case]()
    print(f"ok: {args.case}")


if __name__ == "__main__":
    main()

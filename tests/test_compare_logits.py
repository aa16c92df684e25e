#!/usr/bin/python3
"""The decision by the logits (docs/COMPARE.md, "The decision: logits"):
every number of --json's "decision" is checked against numpy's own
computation on the same arrays (np.load of the dumps' logits files:
softmax, KL, argmax and top-5 in numpy, the KL in extended precision),
and the exit status of --decision in its three cases.

The dumps are written by numpy alone (the writer of test_compare_cli.py,
straight from docs/FORMAT.md).

  test_compare_logits.py --tool PATH --work DIR CASE

Cases: clean differs positions missing

Without --decision the exit status is the checkpoints' verdict, which
other tests own: only --decision's is asserted here.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_compare_cli as cli  # noqa: E402  (the numpy writer of dumps)

TOOL = None
WORK = None
REL = 1e-9


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def path(name):
    return os.path.join(WORK, name)


def run(*args, expect=None):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
    for bad in ("Sanitizer", "runtime error:"):
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
    return report


# ---- numpy's decision, from the files -------------------------------------------------

def load_logits(d):
    """{absolute position: row (float64)} of a dump's logits, the latest step
    of each position winning (docs/COMPARE.md)."""
    m = cli.read_manifest(d)
    rows = {}
    files = [f for f in m["files"] if f["checkpoint"] == "logits"]
    for f in sorted(files, key=lambda f: f["step"]):      # stable: manifest order within a step
        a = np.load(os.path.join(d, f["file"])).astype(np.float64)
        check(f["axes"] == ["token", "vocab"], f"axes {f['axes']}")
        pos = f.get("positions") or list(range(f["pos_start"], f["pos_start"] + f["n_pos"]))
        for i, p in enumerate(pos):
            rows[p] = a[i]
    return rows


def kl_np(a, b):
    """KL(softmax(a) || softmax(b)) in extended precision (stable: max subtracted)."""
    a = a.astype(np.longdouble)
    b = b.astype(np.longdouble)
    la = a - a.max() - np.log(np.sum(np.exp(a - a.max())))
    lb = b - b.max() - np.log(np.sum(np.exp(b - b.max())))
    return float(np.sum(np.exp(la) * (la - lb)))


def top5(x):
    return set(np.argsort(-x, kind="stable")[:5].tolist())


def expected(ref_dir, cand_dir, kl_max):
    r, c = load_logits(ref_dir), load_logits(cand_dir)
    common = sorted(set(r) & set(c))
    out = []
    for p in common:
        out.append({"position": p, "ref_argmax": int(np.argmax(r[p])), "cand_argmax": int(np.argmax(c[p])),
                    "top5_overlap": len(top5(r[p]) & top5(c[p])), "kl": kl_np(r[p], c[p])})
    kls = np.array([o["kl"] for o in out])
    agree = sum(o["ref_argmax"] == o["cand_argmax"] for o in out)
    diffs = [o for o in out if o["ref_argmax"] != o["cand_argmax"]]
    worst = int(np.argmax(kls))
    return {"n_positions": len(out), "top1_agree": agree, "top1_rate": agree / len(out),
            "top5_overlap_mean": float(np.mean([o["top5_overlap"] for o in out])),
            "kl_mean": float(np.mean(kls)), "kl_max": float(kls[worst]),
            "kl_max_position": out[worst]["position"],
            "first_argmax_diff": None if not diffs else {"position": diffs[0]["position"],
                                                         "ref_token": diffs[0]["ref_argmax"],
                                                         "cand_token": diffs[0]["cand_argmax"]},
            "positions": out,
            "verdict": "pass" if not diffs and float(np.mean(kls)) <= kl_max else "fail"}


def close(a, b):
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def check_decision(report, ref_dir, cand_dir, kl_max=1e-4):
    """Every number of the report's decision against numpy's."""
    got, want = report["decision"], expected(ref_dir, cand_dir, kl_max)
    check(got is not None, "decision is null")
    for key in ("n_positions", "top1_agree", "kl_max_position", "first_argmax_diff", "verdict"):
        check(got[key] == want[key], f"decision {key}: {got[key]} != numpy {want[key]}")
    for key in ("top1_rate", "top5_overlap_mean", "kl_mean", "kl_max"):
        check(close(got[key], want[key]), f"decision {key}: {got[key]!r} != numpy {want[key]!r}")
    check(len(got["positions"]) == len(want["positions"]), "positions")
    for g, w in zip(got["positions"], want["positions"]):
        for key in ("position", "ref_argmax", "cand_argmax", "top5_overlap"):
            check(g[key] == w[key], f"position {w['position']} {key}: {g[key]} != numpy {w[key]}")
        check(close(g["kl"], w["kl"]), f"position {w['position']} kl: {g['kl']!r} != numpy {w['kl']!r}")
    return want


def rewrite_logits(d, change):
    """Changes the values of every logits file of d (change(array, entry)) and
    keeps the manifest consistent (crc32)."""
    m = cli.read_manifest(d)
    for f in m["files"]:
        if f["checkpoint"] == "logits":
            a = np.ascontiguousarray(change(np.load(os.path.join(d, f["file"])), f).astype(np.float32))
            np.save(os.path.join(d, f["file"]), a)
            f["crc32"] = zlib.crc32(a.tobytes())
    cli.write_manifest(d, m)


def noisy_logits(t, amount, seed=5):
    rng = np.random.default_rng(seed)
    c = cli.copy_model(t)
    lg = c[("logits", -1)]
    c[("logits", -1)] = (lg + amount * rng.standard_normal(lg.shape)).astype(np.float32)
    return c


# ---- cases ------------------------------------------------------------------------------

def case_clean():
    """Argmax equal everywhere: decoding (one file per step) against one step."""
    t = cli.make_model()
    c = noisy_logits(t, 1e-3)
    check((np.argmax(t[("logits", -1)], 1) == np.argmax(c[("logits", -1)], 1)).all(), "precondition: same argmax")
    cli.write_dump(path("ref"), t)
    cli.write_dump(path("cand"), c, steps=[(i, 1) for i in range(cli.N_TOK)])
    report = run_json(path("ref"), path("cand"))
    want = check_decision(report, path("ref"), path("cand"))
    check(want["n_positions"] == cli.N_TOK and want["kl_mean"] > 0, "every position, some KL")
    check(report["decision"]["decides"] is False and report["decision"]["kl_threshold"] == 1e-4, "defaults")
    p = run(path("ref"), path("cand"))
    lines = [line for line in p.stdout.splitlines() if line.startswith("logits: ")]
    check(len(lines) == 1, f"one logits line:\n{p.stdout}")
    check(f"top-1 agreement 100.0% ({cli.N_TOK}/{cli.N_TOK} positions), top-5 overlap" in lines[0] and
          lines[0].endswith("; the argmax never differs"), lines[0])
    p = run(path("ref"), path("cand"), "--decision", expect=0)
    check(p.stdout.splitlines()[-1].startswith("decision by logits: pass"), p.stdout)
    check(any(line.lstrip().startswith("attn_norm") for line in p.stdout.splitlines()), "rows still printed")
    report = run_json(path("ref"), path("cand"), "--decision", expect=0)
    check(report["verdict"] == "pass" and report["message"].startswith("decision by logits: pass"), report["message"])
    q = run(path("ref"), path("cand"), "--decision", "-q", expect=0)
    check(q.stdout.startswith("decision by logits: pass"), q.stdout)
    # The same dump twice: KL exactly 0, top-5 whole.
    report = run_json(path("ref"), path("ref"))
    d = check_decision(report, path("ref"), path("ref"))
    check(report["decision"]["kl_max"] == 0 and report["decision"]["top5_overlap_mean"] == 5, str(d["kl_max"]))
    # An engine whose internals use another layout: Qcur's heads differ in
    # shape, a row that cannot be compared (exit 2); --decision judges by the
    # logits alone (exit 0).
    cli.write_dump(path("layout"), c, edit=lambda m: relayout_qcur(path("layout"), m))
    report = run_json(path("ref"), path("layout"))
    check(next(r for r in report["rows"] if r["checkpoint"] == "Qcur" and r["layer"] == 0)["status"] == "ERROR",
          "Qcur layer 0 cannot be compared")
    p = run(path("ref"), path("layout"), "--decision", expect=0)
    check("ERROR" in p.stdout and "decision by logits: pass" in p.stdout, p.stdout)


def relayout_qcur(d, m):
    """Qcur of layer 0 as (token, 4 heads, 4 channels): does not line up."""
    f = next(f for f in m["files"] if f["checkpoint"] == "Qcur" and f["layer"] == 0)
    a = np.load(os.path.join(d, f["file"])).reshape(f["shape"][0], 4, 4)
    np.save(os.path.join(d, f["file"]), a)
    f["shape"] = list(a.shape)
    f["crc32"] = zlib.crc32(a.tobytes())


def swap_top(a, rows):
    """The two largest logits of each of rows swapped: the argmax moves."""
    a = a.copy()
    for r in rows:
        i, j = np.argsort(-a[r], kind="stable")[:2]
        a[r, i], a[r, j] = a[r, j], a[r, i]
    return a


def case_differs():
    """The argmax differs at positions 3 and 5; then a KL-only failure."""
    t = cli.make_model()
    c = noisy_logits(t, 1e-3)
    c[("logits", -1)] = swap_top(c[("logits", -1)], [3, 5])
    cli.write_dump(path("ref"), t, steps=[(0, 3), (3, 1), (4, 3)])
    cli.write_dump(path("cand"), c)
    report = run_json(path("ref"), path("cand"))
    want = check_decision(report, path("ref"), path("cand"))
    ref_tok = int(np.argmax(t[("logits", -1)][3]))
    check(want["first_argmax_diff"]["position"] == 3 and want["top1_agree"] == cli.N_TOK - 2, str(want))
    check(report["decision"]["first_argmax_diff"]["ref_token"] == ref_tok, "ref token")
    cand_tok = report["decision"]["first_argmax_diff"]["cand_token"]
    p = run(path("ref"), path("cand"))
    line = next(line for line in p.stdout.splitlines() if line.startswith("logits: "))
    check(line.endswith(f"; first argmax difference at position 3 (reference token {ref_tok}, candidate {cand_tok})")
          and f"({cli.N_TOK - 2}/{cli.N_TOK} positions)" in line, line)
    p = run(path("ref"), path("cand"), "--decision", expect=1)
    last = p.stdout.splitlines()[-1]
    check(last.startswith("decision by logits: fail (the argmax differs at 2 of 7 positions, first at position 3"),
          last)
    report = run_json(path("ref"), path("cand"), "--decision", expect=1)
    check(report["verdict"] == "fail" and report["decision"]["verdict"] == "fail", "JSON verdict")
    # A sharper distribution (logits x 1.5): the same argmax and top-5, a KL
    # far above the bound: --decision fails, and passes with --kl-max above it.
    s = cli.copy_model(t)
    s[("logits", -1)] = (1.5 * t[("logits", -1)]).astype(np.float32)
    cli.write_dump(path("sharp"), s)
    report = run_json(path("ref"), path("sharp"), "--decision", expect=1)
    want = check_decision(report, path("ref"), path("sharp"))
    check(want["first_argmax_diff"] is None and want["kl_mean"] > 1e-2, str(want["kl_mean"]))
    p = run(path("ref"), path("sharp"), "--decision", expect=1)
    check("but the mean KL divergence" in p.stdout.splitlines()[-1], p.stdout)
    bound = want["kl_mean"] * 1.01
    report = run_json(path("ref"), path("sharp"), "--decision", "--kl-max", bound, expect=0)
    check_decision(report, path("ref"), path("sharp"), kl_max=bound)
    check(close(report["decision"]["kl_threshold"], bound), "kl_threshold")
    run(path("ref"), path("sharp"), "--decision", "--kl-max", want["kl_mean"] * 0.99, expect=1)
    for bad in ("-1", "x", "inf"):
        run(path("ref"), path("sharp"), "--decision", "--kl-max", bad, expect=2)


def case_positions():
    """A --positions dump holds rows 1, 4 and 6 of the logits only."""
    t = cli.make_model()
    c = noisy_logits(t, 1e-2)
    c[("logits", -1)] = swap_top(c[("logits", -1)], [4])
    cli.write_dump(path("ref"), t, steps=[(i, 1) for i in range(cli.N_TOK)])
    cli.write_dump(path("cand"), c)
    keep = [1, 4, 6]

    def keep_rows(a, f):
        f.update(n_pos=len(keep), pos_start=keep[0], positions=keep, shape=[len(keep), a.shape[1]],
                 bytes=len(keep) * a.shape[1] * 4)
        return a[keep]
    rewrite_logits(path("cand"), keep_rows)
    report = run_json(path("ref"), path("cand"))
    want = check_decision(report, path("ref"), path("cand"))
    check([p["position"] for p in want["positions"]] == keep, str(want["positions"]))
    check(want["first_argmax_diff"]["position"] == 4, str(want["first_argmax_diff"]))
    logits = next(r for r in report["rows"] if r["checkpoint"] == "logits")
    check(logits["ref_only"] == cli.N_TOK - len(keep), f"ref_only {logits['ref_only']}")
    run(path("ref"), path("cand"), "--decision", expect=1)


def case_missing():
    """No logits in common: decision null; --decision is an error (exit 2)."""
    t = cli.make_model()
    no_logits = {k: v for k, v in t.items() if k[0] != "logits"}
    cli.write_dump(path("ref"), t)
    cli.write_dump(path("bare"), no_logits)
    cli.write_dump(path("bare2"), cli.copy_model(no_logits))
    for ref, cand, why in [("ref", "bare", "only the reference holds logits"),
                           ("bare", "ref", "only the candidate holds logits"),
                           ("bare", "bare2", "neither dump holds logits")]:
        report = run_json(path(ref), path(cand))
        check(report["decision"] is None, "decision null")
        p = run(path(ref), path(cand))
        check("logits: " not in p.stdout, "no logits line")
        p = run(path(ref), path(cand), "--decision", expect=2)
        err = p.stderr.strip().splitlines()
        check(len(err) == 1 and "error: --decision" in err[0] and why in err[0] and "--checkpoints" in err[0],
              p.stderr)
        check(p.stdout == "", f"no report: {p.stdout}")
        report = run_json(path(ref), path(cand), "--decision", expect=2)
        check(report["verdict"] == "error" and why in report["message"], report["message"])


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
    if np.finfo(np.longdouble).eps > 1e-18:
        print("note: no extended precision here; KL checked to 1e-6 relative")
        global REL
        REL = 1e-6
    CASES[args.case]()
    print(f"ok: {args.case}")


if __name__ == "__main__":
    main()

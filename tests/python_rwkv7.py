#!/usr/bin/env python3
"""The Python package's numpy RWKV-7 (python -m llorch_checkpoint.rwkv7)
against llama.cpp, on the trained ../shared/models/tiny-rwkv7-834K-F32.gguf
(tests/python.cmake, test python_rwkv7):

  python_rwkv7.py MODELS_DIR WORK

1. The extractor's dump (-ctk f32 -ctv f32 --checkpoints all) and the
   package's: the same files (checkpoint, layer, step, positions, shape, in
   the same order), and compare passes by its default judgement (exit 0);
   one step, and a prompt in micro-batches plus greedily generated tokens
   (-ub 2 -n 4: the package picks the same tokens).
2. Each --fault is named by compare (--json) at its own checkpoint and layer,
   introduced there, every earlier layer passing: a layer-norm epsilon
   (attn_norm), the channel mix's norm epsilon (ffn_out) and the decay
   (attn_out_proj), each far below what --preset f32 sees (it passes them).
3. Fed runs: the package fed by llama.cpp's dump (the manifest's "fed", the
   fault named at its layer and every later layer passing, where the chained
   run fails them), llama.cpp fed by the package's dump (--feed), and
   compare --isolated both ways: layer 5's FFN wrong on its own input, every
   other part right.
4. The package's last-token logits for rwkv.cpp's tokens 34,105,110 equal
   rwkv.cpp's committed expected logits (tiny-rwkv7-834K-expected-logits.bin,
   256 little-endian float32) within tests/archs_rwkv7.py's 1e-5.

Programs from the environment: EXTRACTOR, COMPARE; the package from
PYTHONPATH. Exit 0 passed, 1 failed, 77 skipped (no model)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

MODEL = "tiny-rwkv7-834K-F32.gguf"
EXPECTED = "tiny-rwkv7-834K-expected-logits.bin"
TOKENS = "34,105,110,32,116,104,101"   # '"in the' as rwkv.cpp's byte vocabulary reads it
LOGITS_TOKENS = "34,105,110"            # rwkv.cpp's test tokens (tests/archs_rwkv7.py)
LOGITS_TOLERANCE = 1e-5                 # tests/archs_rwkv7.py's
FED_FAULT_LAYER = 5
# fault, the checkpoint and layer compare must name, and the state checkpoint of the
# same layer that carries it first where both dumps hold one (llama.cpp's graph writes
# the WKV state before the time mix's output projection, the token shift before the
# channel mix)
SMALL_FAULTS = (("eps:3=3e-5", "attn_norm", 3, None),
                ("ffn-eps:5=3e-5", "ffn_out", 5, "cache_r"),
                ("decay:7=1.002", "attn_out_proj", 7, "cache_s"))
FIELDS = ("checkpoint", "number", "layer", "step", "pos_start", "n_pos", "n_key", "shape", "dtype", "axes",
          "positions")


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def run(cmd, ok=(0,)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode not in ok:
        fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}")
    return p


class Env:
    def __init__(self, models, work):
        self.model = os.path.join(models, MODEL)
        self.expected = os.path.join(models, EXPECTED)
        self.work = work
        self.extractor, self.compare = os.environ["EXTRACTOR"], os.environ["COMPARE"]

    def extract(self, name, *args):
        out = os.path.join(self.work, name)
        run([self.extractor, "-m", self.model, "-t", "2", "-ctk", "f32", "-ctv", "f32", "--checkpoints", "all",
             "-o", out, *args])
        return out

    def rwkv7(self, name, *args, ok=(0,)):
        out = os.path.join(self.work, name)
        p = run([sys.executable, "-m", "llorch_checkpoint.rwkv7", self.model, "-o", out, *args], ok=ok)
        return out, p

    def compare_json(self, ref, cand, *args):
        p = subprocess.run([self.compare, ref, cand, "--json", *args], stdout=subprocess.PIPE, text=True)
        try:
            return p.returncode, json.loads(p.stdout)
        except json.JSONDecodeError:
            fail(f"compare {ref} {cand} {' '.join(args)} exited {p.returncode} without JSON: {p.stdout[-2000:]}")


def manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def kinds_of(d):
    return sorted({e["checkpoint"] for e in manifest(d)["files"]})


def layout(d, only=None):
    """The files of a dump as (field values), in manifest order."""
    return [tuple(json.dumps(e.get(k)) for k in FIELDS) for e in manifest(d)["files"]
            if only is None or e["checkpoint"] in only]


def row(r, checkpoint, layer):
    hit = [x for x in r["rows"] if x["checkpoint"] == checkpoint and x["layer"] == layer]
    return hit[0] if hit else None


def check_same_files(ref, cand, label):
    """cand holds ref's files exactly (names, layers, steps, positions, shapes, order); what
    only cand holds must be the recurrent state, which this extractor may not capture."""
    held = set(kinds_of(ref))
    a, b = layout(ref), layout(cand, only=held)
    if a != b:
        diff = next((x, y) for x, y in zip(a + [None] * len(b), b + [None] * len(a)) if x != y)
        fail(f"{label}: the package's files are not the extractor's: first difference {diff}")
    extra = set(kinds_of(cand)) - held
    if extra - {"cache_r", "cache_s"}:
        fail(f"{label}: the package writes {sorted(extra)}, which the extractor does not")
    mr, mc = manifest(ref), manifest(cand)
    if mr["tokens"] != mc["tokens"]:
        fail(f"{label}: tokens {mc['tokens']}, llama.cpp's {mr['tokens']}")
    if mr["model"].get("fingerprint") != mc["model"].get("fingerprint") or not mc["model"].get("fingerprint"):
        fail(f"{label}: model fingerprint {mc['model'].get('fingerprint')}, the extractor's "
             f"{mr['model'].get('fingerprint')}")
    settings = mc["settings"]
    if any(settings.get(k) != "f32" for k in ("weight_type", "compute_dtype", "dtype", "type_k", "type_v")):
        fail(f"{label}: settings {settings} do not state f32")
    print(f"{label}: {len(a)} files as the extractor's (checkpoints, layers, steps, positions, shapes, order)"
          + (f"; also {', '.join(sorted(extra))}, which this extractor does not capture" if extra else ""))


def check_pass(env, ref, cand, label, *args):
    rc, r = env.compare_json(ref, cand, *args)
    bad = [(x["checkpoint"], x["layer"], x["status"]) for x in r["rows"] if x["status"] != "PASS"]
    if rc != 0 or bad or r["verdict"] != "pass" or r["only_in_reference"]:
        fail(f"{label}: compare exit {rc} ({r.get('message')}); {len(bad)} rows do not pass: {bad[:6]}"
             f"{' ...' if len(bad) > 6 else ''}; "
             f"only in the reference {r['only_in_reference']}")
    worst = max(r["rows"], key=lambda x: x["nmse"])
    worst_abs = max(r["rows"], key=lambda x: x["max_abs_err"])
    print(f"{label}: compare passes, {len(r['rows'])} checkpoints; largest NMSE {worst['nmse']:.2e} "
          f"({worst['checkpoint']} layer {worst['layer']}), largest max_abs_err {worst_abs['max_abs_err']:.2e} "
          f"({worst_abs['checkpoint']} layer {worst_abs['layer']})")
    return r


def expected_names(r, checkpoint, layer, state):
    """The fault's own checkpoint, and the state checkpoint that carries it where both dumps hold it."""
    names = {checkpoint}
    if state is not None and row(r, state, layer) is not None:
        names.add(state)
    return names


def check_named(r, rc, label, checkpoint, layer, state=None):
    """The first divergence is the fault's own checkpoint at its layer, introduced there; or,
    where both dumps hold the layer's recurrent state, that state, introduced (llama.cpp's
    graph writes it before the mixer's output, which compare computes from it: docs/COMPARE.md),
    with the fault's own checkpoint failing after it (inherited from the state where compare
    computes it from the state; introduced where not: RWKV's token shift cache_r holds the
    channel mix's normed input, which an FFN-norm fault reaches before ffn_out)."""
    f = r.get("first_divergence") or {}
    got = (f.get("checkpoint"), f.get("layer"), f.get("origin"))
    names = expected_names(r, checkpoint, layer, state)
    own = row(r, checkpoint, layer) or {}
    ok = got == (checkpoint, layer, "introduced") or (
        got[0] in names and got[1:] == (layer, "introduced")
        and own.get("status") == "FAIL" and own.get("origin") in ("introduced", "inherited"))
    if rc != 1 or not ok:
        fail(f"{label}: compare exit {rc}, first divergence {got}, {checkpoint} layer {layer} "
             f"{own.get('status')} {own.get('origin')}; expected {checkpoint}, layer {layer}, introduced"
             + (f" (or {state} before it)" if len(names) > 1 else ""))
    before = [(x["checkpoint"], x["layer"]) for x in r["rows"]
              if x["layer"] is not None and x["layer"] < layer and x["status"] != "PASS"]
    if before or any(x["layer"] is None and x["checkpoint"] == "embd" and x["status"] != "PASS" for x in r["rows"]):
        fail(f"{label}: rows before layer {layer} fail: {before}")
    return own


# ---------------------------------------------------------------- the cases

def case_clean(env):
    ref = env.extract("llama.cpp", "--tokens", TOKENS)
    cand, _ = env.rwkv7("rwkv7", "--tokens", TOKENS)
    check_same_files(ref, cand, "one step")
    check_pass(env, ref, cand, "one step")
    # the prompt in micro-batches of 2, then 4 generated tokens, one step each; the package
    # chooses them (greedy) from its own logits
    ref2 = env.extract("llama.cpp-gen", "--tokens", LOGITS_TOKENS, "-b", "2", "-ub", "2", "-n", "4")
    cand2, _ = env.rwkv7("rwkv7-gen", "--tokens", LOGITS_TOKENS, "-ub", "2", "-n", "4")
    check_same_files(ref2, cand2, "-ub 2 -n 4")
    r = check_pass(env, ref2, cand2, "-ub 2 -n 4")
    d = r.get("decision") or {}
    if d.get("top1_agree") != d.get("n_positions") or d.get("n_positions") != 3 + 4:
        fail(f"-ub 2 -n 4: the argmax differs ({d.get('top1_agree')}/{d.get('n_positions')} positions agree)")
    return ref


def case_faults(env, ref):
    for spec, checkpoint, layer, state in SMALL_FAULTS:
        cand, _ = env.rwkv7(f"fault-{spec.split('=')[0].replace(':', '')}", "--tokens", TOKENS, "--fault", spec)
        rc, r = env.compare_json(ref, cand)
        x = check_named(r, rc, f"--fault {spec}", checkpoint, layer, state)
        rc_f32, r_f32 = env.compare_json(ref, cand, "--preset", "f32")
        if rc_f32 != 0:
            fail(f"--fault {spec}: --preset f32 exits {rc_f32} ({r_f32.get('message')}); the fault was meant to be "
                 f"below its fixed limits")
        first = r["first_divergence"]["checkpoint"]
        print(f"--fault {spec}: {checkpoint}, layer {layer}, fails, {x['origin']} (NMSE {x['nmse']:.2e}, "
              f"{x['growth']:.3g}x its inputs'; max_abs_err {x['max_abs_err']:.2e})"
              + (f", after the state it leaves ({first}, NMSE {row(r, first, layer)['nmse']:.2e})"
                 if first != checkpoint else "") + "; --preset f32 passes the run")
    # a bad fault is refused with exit 2
    _, p = env.rwkv7("fault-bad", "--tokens", TOKENS, "--fault", "decay:12", ok=(2,))
    if "layers 0-11" not in p.stdout:
        fail(f"--fault decay:12: {p.stdout.strip()}")


def case_fed(env, ref):
    spec = f"ffn-eps:{FED_FAULT_LAYER}=1e-3"
    state_kinds = ",".join(kinds_of(ref))   # what llama.cpp fed by it can hold: compare then misses nothing
    chained, _ = env.rwkv7("fed-chained", "--tokens", TOKENS, "--fault", spec, "--checkpoints", state_kinds)
    fed, _ = env.rwkv7("fed-by-llama.cpp", "--fault", spec, "--feed", ref)
    clean_fed, _ = env.rwkv7("fed-clean", "--feed", ref)
    mr = manifest(ref)
    want = {"from": ref, "producer": mr["producer"], "fingerprint": mr["model"]["fingerprint"],
            "at": ["embd", "l_out", "ffn_inp"], "layers": list(range(mr["model"]["n_layer"]))}
    for d in (fed, clean_fed):
        if manifest(d).get("fed") != want:
            fail(f"{d}: the manifest's fed is {manifest(d).get('fed')}; expected {want}")
    print(f"fed by llama.cpp: the manifest says fed {want['at']} in layers 0-{want['layers'][-1]}")
    check_pass(env, ref, clean_fed, "no fault, fed by llama.cpp")
    # chained: the fault spreads to every later layer and the logits
    rc, r = env.compare_json(ref, chained)
    check_named(r, rc, f"{spec}, chained", "ffn_out", FED_FAULT_LAYER, "cache_r")
    spread = sorted({x["layer"] for x in r["rows"] if x["status"] != "PASS" and x["layer"] is not None})
    if spread != list(range(FED_FAULT_LAYER, mr["model"]["n_layer"])) or row(r, "logits", None)["status"] == "PASS":
        fail(f"{spec}, chained: failing layers {spread}, logits {row(r, 'logits', None)['status']}; the fault "
             f"should spread to every later layer and the logits")
    print(f"{spec}, chained: named at ffn_out layer {FED_FAULT_LAYER}; layers {spread[0]}-{spread[-1]} and the "
          f"logits fail")
    # fed: named there, every later row passes
    rc, r = env.compare_json(ref, fed)
    x = check_named(r, rc, f"{spec}, fed", "ffn_out", FED_FAULT_LAYER, "cache_r")
    after = [(y["checkpoint"], y["layer"]) for y in r["rows"]
             if (y["layer"] is None or y["layer"] > FED_FAULT_LAYER) and y["checkpoint"] != "embd"
             and y["status"] != "PASS"]
    n_after = sum(1 for y in r["rows"] if y["layer"] is None or y["layer"] > FED_FAULT_LAYER)
    if after:
        fail(f"{spec}, fed by llama.cpp: rows after layer {FED_FAULT_LAYER} fail: {after}")
    print(f"{spec}, fed by llama.cpp: named at {x['checkpoint']} layer {FED_FAULT_LAYER} (NMSE {x['nmse']:.2e}); "
          f"{n_after} rows after it pass")
    # --isolated, the package fed by llama.cpp, and llama.cpp fed by the package
    lfed = os.path.join(env.work, "llama.cpp-fed-by-rwkv7")
    run([env.extractor, "-m", env.model, "-t", "2", "-ctk", "f32", "-ctv", "f32", "--checkpoints", "all",
         "--feed", chained, "-o", lfed])
    if manifest(lfed).get("fed", {}).get("from") != chained:
        fail(f"llama.cpp fed by the package: fed {manifest(lfed).get('fed')}")
    for label, fed_dump in (("the package fed by llama.cpp", fed), ("llama.cpp fed by the package", lfed)):
        rc, r = env.compare_json(ref, chained, "--isolated", fed_dump)
        iso = r.get("isolation") or {}
        # cache_r holds the channel mix's token shift too (the ffn_norm row): compare counts it with
        # the FFN part (it comes after ffn_inp), which then fails first there
        wrong = [(l["layer"], part) for l in iso.get("layers", []) for part in ("attention", "ffn")
                 if l[part]["isolated"] != "PASS"]
        named = iso.get("wrong_on_their_own") or ""
        if rc != 1 or wrong != [(FED_FAULT_LAYER, "ffn")] or not ("ffn_out" in named or "cache_r" in named):
            fail(f"--isolated ({label}): exit {rc}, parts failing isolated {wrong}, "
                 f"wrong on their own {iso.get('wrong_on_their_own')!r}; expected layer {FED_FAULT_LAYER}'s FFN only")
        layer = iso["layers"][FED_FAULT_LAYER]["ffn"]
        later = max(l[p]["isolated_nmse"] for l in iso["layers"] if l["layer"] > FED_FAULT_LAYER
                    for p in ("attention", "ffn"))
        print(f"--isolated ({label}): only layer {FED_FAULT_LAYER} is wrong on its own input, its FFN (isolated NMSE "
              f"{layer['isolated_nmse']:.2e}; later layers at most {later:.2e}); compare: {iso['wrong_on_their_own']}")
    # the fed dump against the dump it was fed from: llama.cpp computes the package's layers from its inputs
    rc, r = env.compare_json(chained, lfed)
    x = check_named(r, rc, f"{spec}: the package against llama.cpp fed by it", "ffn_out", FED_FAULT_LAYER, "cache_r")
    # l_out of that layer adds the two FFN outputs to the same residual: it inherits the difference
    bad = [(y["checkpoint"], y["layer"], y.get("origin")) for y in r["rows"] if y["status"] != "PASS"
           and (y["layer"] != FED_FAULT_LAYER or y["checkpoint"] not in ("ffn_out", "cache_r"))
           and (y["checkpoint"], y["layer"], y.get("origin")) != ("l_out", FED_FAULT_LAYER, "inherited")]
    if bad:
        fail(f"{spec}: the package against llama.cpp fed by it: other rows fail: {bad}")
    print(f"{spec}: the package against llama.cpp fed by it: ffn_out layer {FED_FAULT_LAYER} fails, introduced "
          f"(with its l_out, inherited, and the token shift it leaves), every other row passes")
    # a fed run refuses other tokens
    _, p = env.rwkv7("fed-other-tokens", "--feed", ref, "--tokens", "1,2,3", ok=(2,))
    if "not the tokens" not in p.stdout:
        fail(f"--feed with other --tokens: {p.stdout.strip()}")


def case_logits(env):
    cand, _ = env.rwkv7("rwkv7-logits", "--tokens", LOGITS_TOKENS)
    logits = np.load(os.path.join(cand, "checkpoint_00_logits_s000.npy"))
    want = np.fromfile(env.expected, dtype="<f4")
    if logits.shape != (3, want.size):
        fail(f"logits: shape {logits.shape}, expected (3, {want.size})")
    diff = float(np.abs(logits[-1].astype(np.float64) - want).max())
    rel = diff / float(np.abs(want).max())
    if not diff <= LOGITS_TOLERANCE:
        fail(f"last-token logits differ from rwkv.cpp's expected logits by {diff:.3g} (> {LOGITS_TOLERANCE})")
    print(f"last-token logits vs rwkv.cpp's expected logits: max abs diff {diff:.3g} ({rel:.2g} of the largest; "
          f"tolerance {LOGITS_TOLERANCE})")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    env = Env(*sys.argv[1:3])
    if not (os.path.isfile(env.model) and os.path.isfile(env.expected)):
        print(f"SKIP: {env.model} or {env.expected} is not present (../shared/models is optional)")
        return 77
    shutil.rmtree(env.work, ignore_errors=True)
    os.makedirs(env.work)
    ref = case_clean(env)
    case_faults(env, ref)
    case_fed(env, ref)
    case_logits(env)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The verdict both ways (tests/compare.cmake, verdict_*): llama.cpp's dump
(the extractor) as the reference, llorch-ref-engine's as the candidate.

  clean      right engines pass by default, with an f32 and an f16 KV cache
             on the reference's side, on every model given; the settings
             that differ are named; with --preset f32 the f16 cache's
             failures are blamed on the settings, never on a checkpoint
  faults     bugs far smaller than the f32 preset's limits are named at
             their own checkpoint and layer, introduced there
  missing    a crashed or partial candidate fails (exit 3) unless --only or
             --allow-missing says what the engine produces
  isolation  a fault in one layer, chained and fed (--isolated), from both sides
  selection  two extractor runs that differ only in the checkpoints asked
             for agree bit for bit on the rows they share; flash attention
             on one side is named as a setting, never blamed on a checkpoint

usage: verdict_check.py CASE WORK MODEL [MODEL...]
Environment: EXTRACTOR, ENGINE, COMPARE."""

import json
import os
import shutil
import subprocess
import sys

TOKENS = "1,450,200,300,12,7,99,48,31,5"


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    for bad in ("Sanitizer", "runtime error:"):
        if bad in p.stderr:
            fail(f"sanitizer report for {args}:\n{p.stderr}")
    return p


def extract(work, model, name, *extra):
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    p = run(os.environ["EXTRACTOR"], "-m", model, "--tokens", TOKENS, "--checkpoints", "all", "-o", out, *extra)
    if p.returncode != 0:
        fail(f"extractor {name}: {p.stderr.strip()[-400:]}")
    return out


def engine(work, model, name, *extra):
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    p = run(os.environ["ENGINE"], "-m", model, "--tokens", TOKENS, "-o", out, *extra)
    if p.returncode != 0:
        fail(f"engine {name}: {p.stderr.strip()[-400:]}")
    return out


def compare(ref, cand, *extra, expect):
    p = run(os.environ["COMPARE"], ref, cand, "--json", *extra)
    try:
        j = json.loads(p.stdout)
    except ValueError:
        fail(f"compare {ref} {cand} {extra}: no JSON: {p.stdout[:300]} {p.stderr[:300]}")
    if p.returncode != expect or j["exit_code"] != expect:
        fail(f"compare {os.path.basename(ref)} {os.path.basename(cand)} {' '.join(extra)}: exit {p.returncode}, "
             f"expected {expect}: {j['message']}")
    return j


def first(j):
    f = j["first_divergence"] or {}
    return f.get("checkpoint"), f.get("layer"), f.get("origin")


def case_clean(work, models):
    for model in models:
        name = os.path.basename(model)
        cand = engine(work, model, "engine")
        for kv in ("f32", "f16"):
            ref = extract(work, model, f"llama-{kv}", "-ctk", kv, "-ctv", kv)
            j = compare(ref, cand, expect=0)
            worst = max((r for r in j["rows"] if r.get("growth") is not None),
                        key=lambda r: r["growth"] / r["allowed_growth"])
            keys = {s["key"] for s in j["settings_differ"]}
            if kv == "f16" and not {"type_k", "type_v"} <= keys:
                fail(f"{name}: the f16 cache is not named among the settings that differ: {keys}")
            print(f"{name} {kv} cache: pass; worst growth {worst['growth']:.3g}x of {worst['allowed_growth']:g} "
                  f"({worst['checkpoint']} layer {worst['layer']}); settings differ: {sorted(keys)}")
            if kv == "f16":  # fixed f32 limits: failures, blamed on the settings
                j = compare(ref, cand, "--preset", "f32", expect=1)
                origins = {r["origin"] for r in j["rows"] if r["status"] == "FAIL"}
                if not j["settings_explain"] or origins != {"settings"} or "introduced" in j["message"]:
                    fail(f"{name}: --preset f32 against an f16 cache: {j['message']}; origins {origins}")
                if "-ctk f32 -ctv f32" not in j["message"]:
                    fail(f"{name}: the fix is not given: {j['message']}")
                print(f"{name} f16 cache, --preset f32: {j['message'][:90]}...")


# (fault, checkpoint, layer, small): each is named where it is; a small one
# leaves an NMSE below the f32 preset's limit (1e-6) at its checkpoint
FAULTS = [("eps:2=1e-4", "attn_norm", 2, True), ("ffn-eps:1=1e-3", "ffn_out", 1, True),
          ("ffn-eps:3=1e-4", "ffn_out", 3, True), ("eps:1", "attn_norm", 1, False),
          ("swap-heads:1", "Qcur_pre_rope", 1, False), ("rope-offset:2", "Qcur", 2, False)]


def case_faults(work, models):
    model = models[0]
    ref = extract(work, model, "llama", "-ctk", "f32", "-ctv", "f32")
    for fault, checkpoint, layer, small in FAULTS:
        cand = engine(work, model, "fault", "--fault", fault)
        j = compare(ref, cand, expect=1)
        if first(j) != (checkpoint, layer, "introduced"):
            fail(f"{fault}: first divergence {first(j)}, expected ({checkpoint}, {layer}, introduced)")
        row = next(r for r in j["rows"] if r["checkpoint"] == checkpoint and r["layer"] == layer)
        before = [r for r in j["rows"][:j["first_divergence"]["row"]] if r["status"] != "PASS"]
        if before:
            fail(f"{fault}: rows before the first divergence fail: {before}")
        if small and not row["nmse"] < 1e-6:
            fail(f"{fault}: nmse {row['nmse']:.3g} at {checkpoint} layer {layer}: not below the f32 preset's 1e-6")
        fixed = json.loads(run(os.environ["COMPARE"], ref, cand, "--json", "--preset", "f32").stdout)
        print(f"{fault}: {checkpoint} layer {layer} introduced, nmse {row['nmse']:.3g}, {row['growth']:.3g}x its "
              f"inputs'; --preset f32: {first(fixed) if fixed['first_divergence'] else 'pass'}")


def case_missing(work, models):
    model = models[0]
    ref = extract(work, model, "llama", "-ctk", "f32", "-ctv", "f32")
    clean = engine(work, model, "engine")
    # an engine that crashed after its first tensor
    crashed = os.path.join(work, "crashed")
    shutil.rmtree(crashed, ignore_errors=True)
    shutil.copytree(clean, crashed)
    m = json.load(open(f"{crashed}/manifest.json"))
    m.update(complete=False, status="error: engine crashed at layer 1", files=m["files"][:1])
    json.dump(m, open(f"{crashed}/manifest.json", "w"))
    j = compare(ref, crashed, expect=3)
    n_rows = len(compare(ref, clean, expect=0)["rows"])
    if j["verdict"] != "incomplete" or not j["missing"]["candidate_incomplete"] or j["missing"]["rows"] != n_rows - 1:
        fail(f"crashed: {j['verdict']} {j['missing']}")
    compare(ref, crashed, "--allow-missing", expect=0)
    # an engine that runs attention its own way: no Q, K, V, cache or scores
    partial = os.path.join(work, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(clean, partial)
    hidden = {"Qcur", "Kcur", "Vcur", "Qcur_pre_rope", "Kcur_pre_rope", "cache_k", "cache_v", "kq_soft_max"}
    m = json.load(open(f"{partial}/manifest.json"))
    m["files"] = [f for f in m["files"] if f["checkpoint"] not in hidden]
    json.dump(m, open(f"{partial}/manifest.json", "w"))
    j = compare(ref, partial, expect=3)
    if j["missing"]["rows"] != sum(1 for r in compare(ref, clean, expect=0)["rows"] if r["checkpoint"] in hidden):
        fail(f"partial: {j['missing']}")
    text = run(os.environ["COMPARE"], ref, partial).stdout
    if "not compared: the candidate lacks" not in text or "exit status 3" not in text:
        fail(f"partial: the summary does not say what was not compared:\n{text}")
    compare(ref, partial, "--only", "embd,attn_norm,5,ffn_inp,6,l_out,result_norm,logits", expect=0)
    compare(ref, partial, "--allow-missing", expect=0)
    # --only names what is compared: a checkpoint outside it is not, even when it fails
    broken = engine(work, model, "fault", "--fault", "swap-heads:1")
    compare(ref, broken, expect=1)
    compare(ref, broken, "--only", "attn_norm", expect=0)
    p = run(os.environ["COMPARE"], ref, partial, "--only", "attn_nrom")
    if p.returncode != 2 or "attn_nrom" not in p.stderr:
        fail(f"--only attn_nrom: exit {p.returncode}: {p.stderr}")
    print("crashed and partial candidates fail with exit 3; --only and --allow-missing let them pass")


def case_selection(work, models):
    for model in models:
        some = extract(work, model, "some", "--checkpoints", "1,6")
        every = extract(work, model, "every")
        j = compare(every, some, "--preset", "exact", "--only", "1,6", expect=0)
        if not all(r["max_abs_err"] == 0 for r in j["rows"]) or not j["rows"]:
            fail(f"{model}: the rows both selections hold differ")
        if any(s["key"] == "flash_attn" for s in j["settings_differ"]):
            fail(f"{model}: flash attention depends on the selection: {j['settings_differ']}")
        print(f"{os.path.basename(model)}: --checkpoints 1,6 and all agree bit for bit on {len(j['rows'])} rows")
        # flash attention on one side is a setting that differs, never an introduced checkpoint
        fa = extract(work, model, "fa", "-fa", "on", "--checkpoints", "1-3,5,6")
        j = compare(every, fa, "--allow-missing", expect=0)
        if not any(s["key"] == "flash_attn" for s in j["settings_differ"]):
            fail(f"{model}: -fa on is not named among the settings that differ: {j['settings_differ']}")
        p = run(os.environ["COMPARE"], every, fa, "--json", "--allow-missing", "--preset", "f32")
        fixed = json.loads(p.stdout)
        if p.returncode == 1 and (not fixed["settings_explain"] or "-fa on" not in fixed["message"]):
            fail(f"{model}: -fa on against off under --preset f32 blames a checkpoint: {fixed['message']}")
        print(f"{os.path.basename(model)}: -fa on against off passes, flash_attn named; --preset f32: "
              f"{fixed['message'][:100]}")


def isolation_rows(j):
    return {(layer["layer"], part): layer[part] for layer in j["isolation"]["layers"] for part in ("attention", "ffn")}


def case_isolation(work, models):
    """A fault in one layer: the chained comparison fails from it on (or, with
    an f16 cache on the reference's side, hides it in the drift); the run fed
    the reference's residual stream names exactly that layer (--isolated),
    from either side: the engine fed by llama.cpp, llama.cpp fed by the engine."""
    model = models[0]
    fault, layer, part = "ffn-eps:3=1e-3", 3, "ffn"
    for kv in ("f32", "f16"):
        ref = extract(work, model, f"llama-{kv}", "-ctk", kv, "-ctv", kv)
        cand = engine(work, model, "bug", "--fault", fault)
        fed = engine(work, model, "bug-fed", "--fault", fault, "--feed", ref)
        j = compare(ref, cand, "--isolated", fed, expect=1)
        rows = isolation_rows(j)
        wrong = sorted(k for k, v in rows.items() if v["isolated"] == "FAIL")
        if wrong != [(layer, part)]:
            fail(f"{kv} cache: isolated failures {wrong}, expected [({layer}, '{part}')]")
        chained = sorted(k for k, v in rows.items() if v["chained"] == "FAIL")
        if kv == "f32" and chained != [(l, p) for l in range(layer, max(r[0] for r in rows) + 1)
                                       for p in ("attention", "ffn") if (l, p) >= (layer, part)]:
            fail(f"f32 cache: the chained comparison fails {chained}, expected every part from layer {layer}'s FFN on")
        if "layer 3's FFN" not in j["isolation"]["wrong_on_their_own"]:
            fail(f"{kv}: {j['isolation']}")
        print(f"{kv} cache: chained fails {chained or 'nothing'}; isolated fails {wrong}; per layer FFN NMSE "
              + ", ".join(f"{l}: {rows[(l, 'ffn')]['chained_nmse']:.2g}/{rows[(l, 'ffn')]['isolated_nmse']:.2g}"
                          for l in sorted({r[0] for r in rows})))
    # llama.cpp fed by the engine, where the extractor can feed
    fed = os.path.join(work, "llama-fed")
    shutil.rmtree(fed, ignore_errors=True)
    p = run(os.environ["EXTRACTOR"], "-m", model, "--tokens", TOKENS, "--checkpoints", "all", "-ctk", "f32", "-ctv",
            "f32", "--feed", cand, "-o", fed)
    if p.returncode == 2 and "--feed" in p.stderr and "unknown" in p.stderr:
        print("note: this extractor cannot feed")
        return
    if p.returncode != 0:
        fail(f"extractor --feed: {p.stderr.strip()[-300:]}")
    j = compare(ref, cand, "--isolated", fed, expect=1)
    wrong = sorted(k for k, v in isolation_rows(j).items() if v["isolated"] == "FAIL")
    if wrong != [(layer, part)]:
        fail(f"llama.cpp fed by the engine: isolated failures {wrong}, expected [({layer}, '{part}')]")
    print(f"llama.cpp fed by the engine: isolated failures {wrong}")


CASES = {"clean": case_clean, "faults": case_faults, "missing": case_missing, "selection": case_selection,
         "isolation": case_isolation}

if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in CASES:
        fail(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    present = [m for m in sys.argv[3:] if os.path.exists(m)]
    if not present or (sys.argv[1] == "faults" and present[0] != sys.argv[3]):
        print(f"SKIP: no model of {sys.argv[3:]} is here (../shared/models)")
        sys.exit(77)
    CASES[sys.argv[1]](sys.argv[2], present)

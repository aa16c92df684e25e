"""Checks of the Python package (python/llorch_checkpoint), run by
tests/python.cmake. Each case exits 0 (passed), 1 (failed) or 77 (skipped:
torch missing).

  python_checks.py roundtrip WORK MODEL   the C writer's dumps re-written by the package: bit for bit
  python_checks.py torch WORK MODEL       PyTorch with the hooks against llama.cpp: clean, then a RoPE fault

Programs come from the environment: EXTRACTOR, ENGINE, COMPARE."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from llorch_checkpoint import Dump, DumpWriter

TOKENS = "1,15043,3186,338,263,4,29871,1"


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def run(*cmd, ok=(0,)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode not in ok:
        fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}")
    return p


def compare_json(ref, cand, *args):
    p = subprocess.run([os.environ["COMPARE"], ref, cand, "--json", *args], stdout=subprocess.PIPE, text=True)
    return p.returncode, json.loads(p.stdout)


def rewrite(src, out, form):
    """src's every tensor, read by the package, written again by it."""
    m = src.manifest
    mm = m["model"]
    with DumpWriter(out, form=form) as w:
        w.set_run(producer="python re-write", architecture=mm["architecture"], n_layer=mm["n_layer"],
                  n_embd=mm["n_embd"], n_head=mm["n_head"], n_head_kv=mm["n_head_kv"], n_vocab=mm["n_vocab"],
                  tokens=src.tokens, settings=m["settings"])
        for e, a in src:
            w.write(e["checkpoint"], a, layer=e["layer"], step=e["step"], pos_start=e["pos_start"], n_pos=e["n_pos"],
                    n_key=e["n_key"])


def case_roundtrip(work, model):
    # the ref engine's npy dump (the C writer API) and the extractor's npz dump, each in 2 steps
    run(os.environ["ENGINE"], "-m", model, "--tokens", TOKENS, "-ub", "5", "-o", f"{work}/eng")
    run(os.environ["EXTRACTOR"], "-m", model, "--tokens", TOKENS, "-ub", "5", "-ctk", "f32", "-ctv", "f32",
        "--checkpoints", "all", "--format", "npz", "-o", f"{work}/extz")
    for src in ("eng", "extz"):
        d = Dump(f"{work}/{src}")
        for e, a in d:  # the reader gives what numpy reads
            want = (np.load(f"{work}/{src}/{e['file']}") if not d.container else
                    np.load(f"{work}/{src}/checkpoints.npz")[e["key"]])
            if want.dtype != a.dtype or want.shape != a.shape or want.tobytes() != a.tobytes():
                fail(f"{src}: Dump.load({e['file']}) differs from numpy's")
        for form in ("npy", "npz"):
            out = f"{work}/{src}-py{form}"
            rewrite(d, out, form)
            rc, r = compare_json(f"{work}/{src}", out, "--preset", "exact")
            passed = [x for x in r["rows"] if x["status"] == "PASS"]
            groups = {(e["checkpoint"], e["layer"]) for e in d.files}
            if rc != 0 or len(passed) != len(groups) or any(x["max_abs_err"] != 0 for x in r["rows"]):
                fail(f"{src} re-written as {form}: compare --preset exact exit {rc}, {len(passed)}/{len(groups)}")
            print(f"{src} -> {form}: {len(d.files)} tensors, {len(passed)} checkpoints identical (--preset exact)")
    # the npz container is byte for byte the C writer's; the npy files too
    with open(f"{work}/extz/checkpoints.npz", "rb") as a, open(f"{work}/extz-pynpz/checkpoints.npz", "rb") as b:
        if a.read() != b.read():
            fail("the package's checkpoints.npz differs from the C writer's")
    for e in Dump(f"{work}/eng").files:
        with open(f"{work}/eng/{e['file']}", "rb") as a, open(f"{work}/eng-pynpy/{e['file']}", "rb") as b:
            if a.read() != b.read():
                fail(f"{e['file']}: the package's .npy differs from the C writer's")
    print("npz container and npy files: byte-identical to the C writer's")


def torch_dump(model_path, tokens, out, fault=None, steps=(None,)):
    import torch

    from llorch_checkpoint.torch_hooks import Capture
    from python_torch_model import load_gguf

    model = load_gguf(model_path, fault)
    cfg = model.cfg
    with Capture(model, out, architecture=cfg["arch"], n_head=cfg["n_head"], n_head_kv=cfg["n_head_kv"],
                 model_path=model_path, settings={"fault": fault or "none"}):
        ids = torch.tensor([tokens], dtype=torch.long)
        cut = steps[0] or len(tokens)
        model(ids[:, :cut])
        if cut < len(tokens):
            model(ids[:, cut:])


def check_clean(ref, cand, label):
    rc, r = compare_json(ref, cand)
    rows = r["rows"]
    bad = [x for x in rows if x["status"] != "PASS"]
    names = {x["checkpoint"] for x in rows}
    need = {"attn_norm", "Qcur", "Kcur", "Vcur", "Qcur_pre_rope", "Kcur_pre_rope", "cache_k", "cache_v",
            "kq_soft_max", "attn_out_proj", "ffn_out", "embd", "l_out", "logits"}
    if rc != 0 or bad or not need <= names or r["only_in_reference"] or r["only_in_candidate"]:
        fail(f"{label}: compare exit {rc}, failed {[(x['checkpoint'], x['layer']) for x in bad]}, "
             f"missing {sorted(need - names)}, only in one: {r['only_in_reference']} {r['only_in_candidate']}")
    worst = max(rows, key=lambda x: x["max_abs_err"])
    print(f"{label}: {len(rows)} checkpoints pass against llama.cpp; worst max_abs_err "
          f"{worst['max_abs_err']:.3e} ({worst['checkpoint']} layer {worst['layer']})")


def case_torch(work, model):
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: no torch (Debian: apt-get install python3-torch)")
        sys.exit(77)
    ref = f"{work}/llama.cpp"
    run(os.environ["EXTRACTOR"], "-m", model, "--tokens", TOKENS, "-ctk", "f32", "-ctv", "f32", "--checkpoints", "all",
        "-o", ref)
    tokens = [int(t) for t in np.load(f"{ref}/tokens.npy")]
    torch_dump(model, tokens, f"{work}/torch")
    check_clean(ref, f"{work}/torch", "one step")
    # two steps (a KV cache across forward calls) against llama.cpp's one step
    torch_dump(model, tokens, f"{work}/torch-2steps", steps=(5,))
    check_clean(ref, f"{work}/torch-2steps", "two steps")
    # llama.cpp also as the candidate: the PyTorch dump is a valid reference
    rc, _ = compare_json(f"{work}/torch", ref)
    if rc != 0:
        fail(f"PyTorch as the reference: compare exit {rc}")
    # the fault: RoPE on adjacent pairs instead of the halves
    torch_dump(model, tokens, f"{work}/torch-fault", fault="rope-halves")
    rc, r = compare_json(ref, f"{work}/torch-fault")
    f = r.get("first_divergence") or {}
    got = (f.get("checkpoint"), f.get("layer"), f.get("origin"))
    if rc == 0 or got != ("Qcur", 0, "introduced"):
        fail(f"RoPE fault: compare exit {rc}, first divergence {got}, expected ('Qcur', 0, 'introduced')")
    pre = [x for x in r["rows"] if x["checkpoint"] == "Qcur_pre_rope" and x["layer"] == 0]
    if not pre or pre[0]["status"] != "PASS":
        fail("RoPE fault: Qcur_pre_rope of layer 0 should still pass")
    print(f"RoPE fault: compare exit {rc}, first divergence {got}")


def main():
    case, work, model = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"roundtrip": case_roundtrip, "torch": case_torch}[case](work, model)
    print("PASS")


if __name__ == "__main__":
    main()

"""Checks of the Python package (python/llorch_checkpoint), run by
tests/python.cmake. Each case exits 0 (passed), 1 (failed) or 77 (skipped:
torch missing).

  python_checks.py roundtrip WORK MODEL   the C writer's dumps re-written by the package: bit for bit
  python_checks.py torch WORK MODEL       PyTorch with the hooks against llama.cpp: clean, then a RoPE fault
  python_checks.py errors WORK ""         the writer refuses what the format forbids; the reader names damaged files

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
                  tokens=src.tokens, settings=m["settings"], model_fingerprint=mm.get("fingerprint"))
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


def torch_dump(model_path, tokens, out, fault=None, steps=(None,), keep=None):
    import torch

    from llorch_checkpoint.torch_hooks import Capture
    from python_torch_model import load_gguf

    model = load_gguf(model_path, fault)
    cfg = model.cfg
    with Capture(model, out, architecture=cfg["arch"], n_head=cfg["n_head"], n_head_kv=cfg["n_head_kv"],
                 model_path=model_path, settings={"fault": fault or "none"}):
        ids = torch.tensor([tokens], dtype=torch.long)
        cut = steps[0] or len(tokens)
        if keep is not None:  # as generate() calls it: the prompt with KEEP, then one token per step with 1
            model(ids[:, :cut], **keep)
            for t in range(cut, len(tokens)):
                model(ids[:, t:t + 1], **{k: 1 for k in keep})
            return
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
    # generate(): logits_to_keep=1 (num_logits_to_keep in older transformers; or a tensor of indices) on a
    # 5-token prompt, then a token per step: the logits rows are written at positions 4-7 (3 and 4-7)
    n_vocab = Dump(ref).manifest["model"]["n_vocab"]
    # the candidate lacks logits rows by design: where compare fails a run for that, say it is expected
    helptext = subprocess.run([os.environ["COMPARE"], "--help"], stdout=subprocess.PIPE, text=True).stdout
    lacks_rows = ["--allow-missing"] if "--allow-missing" in helptext else []
    for label, keep, want in (("logits_to_keep=1", {"logits_to_keep": 1}, [4]),
                              ("num_logits_to_keep=1", {"num_logits_to_keep": 1}, [4]),
                              ("logits_to_keep=tensor([1, 3])", {"logits_to_keep": torch.tensor([1, 3])}, [1, 3])):
        out = f"{work}/torch-{label.split('=')[0]}-{len(want)}"
        torch_dump(model, tokens, out, steps=(5,), keep=keep)
        e = Dump(out).entry("logits", step=0)
        if e["n_pos"] != len(want) or e.get("positions") != want or e["shape"] != [len(want), n_vocab]:
            fail(f"{label}: logits of step 0 have n_pos {e['n_pos']}, positions {e.get('positions')}, shape "
                 f"{e['shape']}; expected positions {want}")
        rc, r = compare_json(ref, out, *lacks_rows)
        rows = {x["checkpoint"]: x for x in r["rows"] if x["layer"] is None}
        lg = rows.get("logits", {})
        n_rows = len(want) + 3
        if rc != 0 or lg.get("status") != "PASS" or lg.get("n") != n_rows * n_vocab \
                or lg.get("ref_only") != 8 - n_rows or lg.get("cand_only") != 0:
            fail(f"{label}: compare exit {rc}, logits {lg}")
        bad = [(x["checkpoint"], x["layer"]) for x in r["rows"] if x["status"] != "PASS"]
        if bad:
            fail(f"{label}: rows that do not pass: {bad}")
        print(f"{label}: step 0's logits at positions {want}, {n_rows} of 8 logits rows compared, all pass")
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
    # layer 1's post-attention norm epsilon 1% off the model's: an error far below the f32 preset's limits
    # (the tiny models' activations are small: 10% off already reaches them), named where it is
    torch_dump(model, tokens, f"{work}/torch-eps", fault="ffn-eps:1*1.01")
    rc, r = compare_json(ref, f"{work}/torch-eps")
    f = r.get("first_divergence") or {}
    got = (f.get("checkpoint"), f.get("layer"), f.get("origin"))
    ffn = next(x for x in r["rows"] if x["checkpoint"] == "ffn_out" and x["layer"] == 1)
    if rc != 1 or got != ("ffn_out", 1, "introduced"):
        fail(f"ffn-eps fault: compare exit {rc}, first divergence {got}, expected ('ffn_out', 1, 'introduced')")
    if not (ffn["nmse"] < 1e-6 and ffn["growth"] > 1e3):
        fail(f"ffn-eps fault: ffn_out layer 1 has nmse {ffn['nmse']:.3g} (below the f32 preset's 1e-6 expected), "
             f"growth {ffn['growth']:.3g}")
    _, fixed = compare_json(ref, f"{work}/torch-eps", "--preset", "f32")
    print(f"ffn-eps fault: first divergence {got}, nmse {ffn['nmse']:.3g}, {ffn['growth']:.3g}x its input's; "
          f"--preset f32: {fixed['message']}")


def expect_error(label, want, fn):
    """fn() raises ValueError whose message holds every string of want."""
    try:
        fn()
    except ValueError as e:
        missing = [w for w in want if w not in str(e)]
        if missing:
            fail(f"{label}: the error does not say {missing}: {e}")
        print(f"{label}: ValueError: {e}")
        return
    fail(f"{label}: no ValueError")


def case_errors(work, _model):
    model = dict(producer="t", architecture="llama", n_layer=2, n_embd=4, n_head=2, n_head_kv=1, n_vocab=9,
                 tokens=[1, 2, 3])
    w = DumpWriter(f"{work}/w")
    w.set_run(**model)
    expect_error("layer past n_layer", ["attn_norm", "layer 2", "from 0 to 1", "n_layer 2"],
                 lambda: w.write("attn_norm", np.zeros((3, 4), np.float32), layer=2))
    expect_error("width not n_embd", ["ffn_out", "width 5", "n_embd 4"],
                 lambda: w.write("ffn_out", np.zeros((3, 5), np.float32), layer=0))
    expect_error("model-level width not n_embd", ["result_norm", "width 3", "n_embd 4"],
                 lambda: w.write("result_norm", np.zeros((3, 3), np.float32)))
    w.write("attn_norm", np.zeros((3, 4), np.float32), layer=1)  # what the format allows still goes in
    w.write("Qcur", np.zeros((3, 2, 2), np.float32), layer=1)
    w.write("logits", np.zeros((3, 9), np.float32))
    w.close()
    w2 = DumpWriter(f"{work}/w2")  # written before the model is known: checked by set_run
    w2.write("l_out", np.zeros((3, 6), np.float32), layer=0)
    expect_error("width checked by set_run", ["l_out", "width 6", "n_embd 4"], lambda: w2.set_run(**model))
    # a truncated .npy: the reader names the file and says so, in the data and in the header
    d = f"{work}/w"
    name = "checkpoint_01_attn_norm_l01_s000.npy"
    with open(f"{d}/{name}", "rb") as f:
        whole = f.read()
    for size in (len(whole) - 5, 20, 3):
        with open(f"{d}/{name}", "wb") as f:
            f.write(whole[:size])
        expect_error(f"{name} cut to {size} bytes", [f"{d}/{name}", "truncated"],
                     lambda: Dump(d).get("attn_norm", layer=1))
    # the npz form's container, cut short
    with DumpWriter(f"{work}/z", form="npz") as z:
        z.set_run(**model)
        z.write("attn_norm", np.ones((3, 4), np.float32), layer=0)
    os.truncate(f"{work}/z/checkpoints.npz", 70)
    expect_error("checkpoints.npz cut short", [f"{work}/z/checkpoints.npz", "truncated"],
                 lambda: Dump(f"{work}/z").get("attn_norm", layer=0))


def main():
    case, work, model = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"roundtrip": case_roundtrip, "torch": case_torch, "errors": case_errors}[case](work, model)
    print("PASS")


if __name__ == "__main__":
    main()

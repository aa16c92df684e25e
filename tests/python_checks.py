"""Checks of the Python package (python/llorch_checkpoint), run by
tests/python.cmake. Each case exits 0 (passed), 1 (failed) or 77 (skipped:
torch missing).

  python_checks.py roundtrip WORK MODEL   the C writer's dumps re-written by the package: bit for bit
  python_checks.py torch WORK MODEL       PyTorch with the hooks against llama.cpp: clean, then a RoPE fault
  python_checks.py gpt2 WORK MODEL        a PyTorch GPT-2 (HF's module names, Conv1D) against llama.cpp's gpt2
  python_checks.py fed WORK MODEL         PyTorch fed by llama.cpp's dump (feed=): clean, a fault isolated at its
                                          layer (chained: it spreads), reference_input()
  python_checks.py errors WORK ""         the writer refuses what the format forbids; the reader names damaged files
  python_checks.py safetensors WORK MODEL the reader reads the extractor's safetensors dump: every tensor as the same
                                          run's npz dump, a few values as a header parsed here; damaged files named

Programs come from the environment: EXTRACTOR, ENGINE, COMPARE."""

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

from llorch_checkpoint import Dump, DumpWriter, reference_input

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


def gguf_arch(path):
    from gguf import GGUFReader

    return bytes(GGUFReader(path).fields["general.architecture"].parts[-1]).decode()


def load_model(model_path, fault=None):
    """The plain-torch model of a GGUF: GPT-2 (tests/python_torch_gpt2.py) or llama/qwen2."""
    if gguf_arch(model_path) == "gpt2":
        from python_torch_gpt2 import load_gguf
    else:
        from python_torch_model import load_gguf
    return load_gguf(model_path, fault)


def torch_dump(model_path, tokens, out, fault=None, steps=(None,), keep=None, feed=None, **capture):
    """The model's dump: one forward call, or one per slice between the cuts in steps."""
    import torch

    from llorch_checkpoint.torch_hooks import Capture

    model = load_model(model_path, fault)
    cfg = model.cfg
    with Capture(model, out, architecture=cfg["arch"], n_head=cfg["n_head"], n_head_kv=cfg["n_head_kv"],
                 model_path=model_path, settings={"fault": fault or "none"}, feed=feed, **capture):
        ids = torch.tensor([tokens], dtype=torch.long)
        cut = steps[0] or len(tokens)
        if keep is not None:  # as generate() calls it: the prompt with KEEP, then one token per step with 1
            model(ids[:, :cut], **keep)
            for t in range(cut, len(tokens)):
                model(ids[:, t:t + 1], **{k: 1 for k in keep})
            return
        cuts = [0] + [c for c in steps if c] + [len(tokens)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                model(ids[:, a:b])


def check_clean(ref, cand, label, rope=True):
    rc, r = compare_json(ref, cand)
    rows = r["rows"]
    bad = [x for x in rows if x["status"] != "PASS"]
    names = {x["checkpoint"] for x in rows}
    need = {"attn_norm", "Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max", "attn_out_proj", "ffn_out",
            "embd", "ffn_inp", "l_out", "result_norm", "logits"}
    need |= {"Qcur_pre_rope", "Kcur_pre_rope"} if rope else set()
    if rc != 0 or bad or not need <= names or r["only_in_reference"] or r["only_in_candidate"]:
        fail(f"{label}: compare exit {rc}, failed {[(x['checkpoint'], x['layer']) for x in bad]}, "
             f"missing {sorted(need - names)}, only in one: {r['only_in_reference']} {r['only_in_candidate']}")
    worst = max(rows, key=lambda x: x["max_abs_err"])
    print(f"{label}: {len(rows)} checkpoints pass against llama.cpp; worst max_abs_err "
          f"{worst['max_abs_err']:.3e} ({worst['checkpoint']} layer {worst['layer']})")
    return r


def case_torch(work, model):
    need_torch()
    import torch

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


def need_torch():
    if importlib.util.find_spec("torch") is None:
        print("SKIP: no torch (Debian: apt-get install python3-torch)")
        sys.exit(77)


def extract(model, out, *args):
    run(os.environ["EXTRACTOR"], "-m", model, "--tokens", TOKENS, "-ctk", "f32", "-ctv", "f32", "--checkpoints", "all",
        "-o", out, *args)
    return [int(t) for t in np.load(f"{out}/tokens.npy")]


def case_gpt2(work, model):
    """GPT-2 with HF's module names against llama.cpp's gpt2: every checkpoint, one step and two."""
    need_torch()
    ref = f"{work}/llama.cpp"
    tokens = extract(model, ref)
    for label, out, steps in (("gpt2, one step", "torch", (None,)), ("gpt2, two steps", "torch-2steps", (5,))):
        torch_dump(model, tokens, f"{work}/{out}", steps=steps)
        check_clean(ref, f"{work}/{out}", label, rope=False)
        e = Dump(f"{work}/{out}").entry("Qcur", 0, step=0)
        if e["shape"] != [steps[0] or len(tokens), 4, 16]:
            fail(f"{label}: Qcur layer 0 has shape {e['shape']}")
    missing = {(m["checkpoint"], m["layer"]) for m in Dump(f"{work}/torch").manifest["missing"]}
    if missing != {(c, l) for c in ("Qcur_pre_rope", "Kcur_pre_rope") for l in (0, 1)}:
        fail(f"gpt2: missing {sorted(missing)}; expected the pre-RoPE Q/K of each layer (no RoPE)")
    # generate(): the prompt with logits_to_keep=1, then one token per call
    out = f"{work}/torch-keep"
    torch_dump(model, tokens, out, steps=(5,), keep={"logits_to_keep": 1})
    helptext = subprocess.run([os.environ["COMPARE"], "--help"], stdout=subprocess.PIPE, text=True).stdout
    rc, r = compare_json(ref, out, *(["--allow-missing"] if "--allow-missing" in helptext else []))
    bad = [(x["checkpoint"], x["layer"]) for x in r["rows"] if x["status"] != "PASS"]
    if rc != 0 or bad:
        fail(f"gpt2 logits_to_keep=1: compare exit {rc}, rows that do not pass: {bad}")
    print("gpt2 logits_to_keep=1: every row passes")
    rc, _ = compare_json(f"{work}/torch", ref)
    if rc != 0:
        fail(f"gpt2, PyTorch as the reference: compare exit {rc}")


def rows_of(r, layer=None, after=None):
    """compare's rows of one layer (None: the model-level rows), or of every layer after `after`
    together with the model-level rows."""
    if after is not None:
        return [x for x in r["rows"] if x["layer"] is None or x["layer"] > after]
    return [x for x in r["rows"] if x["layer"] == layer]


def check_feed_exact(ref, cand, n_layer, label):
    """The fed values are llama.cpp's bit for bit: the model's ffn_inp is llama.cpp's input to the layer plus
    the model's attention output, its l_out llama.cpp's ffn_inp plus the model's FFN output (float32 adds)."""
    c = Dump(cand)
    for il in range(n_layer):  # every row, by position (the two dumps' steps may differ)
        n = len(c.tokens)
        want = reference_input(ref, il, positions=range(n)) + c.rows("attn_out_proj", il)
        if want.tobytes() != c.rows("ffn_inp", il).tobytes():
            fail(f"{label}: ffn_inp of layer {il} is not llama.cpp's input to it + attn_out_proj, bit for bit")
        want = reference_input(ref, il, where="ffn", positions=range(n)) + c.rows("ffn_out", il)
        if want.tobytes() != c.rows("l_out", il).tobytes():
            fail(f"{label}: l_out of layer {il} is not llama.cpp's ffn_inp + ffn_out, bit for bit")
    print(f"{label}: the fed residuals are llama.cpp's bit for bit (ffn_inp, l_out of {n_layer} layers)")


def check_reference_input(ref, n_layer, label):
    """reference_input() is np.load of the files it names, by step and by position."""
    d = Dump(ref)

    def npload(checkpoint, layer, step):
        e = d.entry(checkpoint, layer, step)
        if d.container:
            return np.load(f"{ref}/{d.container['file']}")[e["key"]]
        return np.load(f"{ref}/{e['file']}")

    steps = sorted({e["step"] for e in d.files})
    n = 0
    for il in range(n_layer):
        for step in steps:
            for where, (checkpoint, at) in (("layer", ("embd", -1) if il == 0 else ("l_out", il - 1)),
                                            ("ffn", ("ffn_inp", il))):
                got, want = reference_input(ref, il, step=step, where=where), npload(checkpoint, at, step)
                if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
                    fail(f"{label}: reference_input(layer {il}, step {step}, {where}) is not {checkpoint} "
                         f"layer {at} step {step}")
                n += 1
        # by position, across the dump's steps: the rows of every step, in order
        whole = np.concatenate([npload("l_out" if il else "embd", il - 1, s) for s in steps])
        got = reference_input(ref, il, positions=range(len(whole)))
        if got.tobytes() != whole.tobytes():
            fail(f"{label}: reference_input(layer {il}, positions 0..{len(whole) - 1}) is not the steps' rows")
        if reference_input(ref, il, positions=[3, 1]).tobytes() != whole[[3, 1]].tobytes():
            fail(f"{label}: reference_input(layer {il}, positions [3, 1]) is not rows 3 and 1")
    if reference_input(d, n_layer - 1).tobytes() != npload("l_out", n_layer - 2, steps[-1]).tobytes():
        fail(f"{label}: reference_input(layer {n_layer - 1}) (the latest step) is not l_out of the last step")
    expect_error(f"{label}: where", ["where='attn'"], lambda: reference_input(ref, 0, where="attn"))
    expect_error(f"{label}: layer", [f"layer {n_layer}", f"0 to {n_layer - 1}"], lambda: reference_input(ref, n_layer))
    try:
        reference_input(ref, 1, positions=[0, 99])
        fail(f"{label}: reference_input at position 99 did not raise")
    except KeyError as e:
        if "99" not in str(e):
            fail(f"{label}: the KeyError does not name position 99: {e}")
    print(f"{label}: reference_input() equals np.load of {n} files, by step and by position")


def case_fed(work, model):
    """PyTorch fed by llama.cpp: each layer from llama.cpp's input to it (docs/FORMAT.md, "Fed runs")."""
    need_torch()
    from llorch_checkpoint.torch_hooks import Capture

    ref, ref2 = f"{work}/llama.cpp", f"{work}/llama.cpp-ub5"
    tokens = extract(model, ref)
    extract(model, ref2, "-ub", "5")  # two steps (5 + 3 tokens), the npz form
    m = Dump(ref).manifest
    n_layer, rope = m["model"]["n_layer"], m["model"]["architecture"] != "gpt2"
    fault_layer = n_layer // 2
    check_reference_input(ref, n_layer, "npy, one step")
    check_reference_input(ref2, n_layer, "npz, two steps")

    # clean: every row passes, the fed residuals (as the model computed them) too
    fed = f"{work}/torch-fed"
    torch_dump(model, tokens, fed, feed=ref)
    r = check_clean(ref, fed, "fed, one step", rope=rope)
    got = Dump(fed).manifest.get("fed")
    want = {"from": ref, "producer": m["producer"], "fingerprint": m["model"]["fingerprint"],
            "at": ["embd", "l_out", "ffn_inp"], "layers": list(range(n_layer))}
    if got != want:
        fail(f"fed: the manifest's fed is {got}; expected {want}")
    residual = [x for x in r["rows"] if x["checkpoint"] in ("embd", "ffn_inp", "l_out")]
    if len(residual) != 1 + 2 * n_layer or any(x["status"] != "PASS" for x in residual):
        fail(f"fed: residual rows {[(x['checkpoint'], x['layer'], x['status']) for x in residual]}")
    check_feed_exact(ref, fed, n_layer, "fed, one step")
    # fed across llama.cpp's steps: the torch run's calls (3 + 3 + 2 tokens) are not llama.cpp's (5 + 3)
    torch_dump(model, tokens, f"{work}/torch-fed-3steps", steps=(3, 6), feed=ref2)
    check_clean(ref2, f"{work}/torch-fed-3steps", "fed from 2 steps, 3 calls", rope=rope)
    check_feed_exact(ref2, f"{work}/torch-fed-3steps", n_layer, "fed from 2 steps, 3 calls")
    # only the layers' inputs: attention and FFN proved together
    torch_dump(model, tokens, f"{work}/torch-fed-layer", feed=ref, feed_at=("embd", "l_out"))
    check_clean(ref, f"{work}/torch-fed-layer", "fed at embd and l_out only", rope=rope)
    at = Dump(f"{work}/torch-fed-layer").manifest["fed"]["at"]
    if at != ["embd", "l_out"]:
        fail(f"feed_at=('embd', 'l_out'): fed.at {at}")

    # a fault in one deep layer: named there; fed, the layers after it pass; chained, they fail
    fault = f"ffn-eps:{fault_layer}=0.1"
    results = {}
    for label, feed in (("fed", ref), ("chained", None)):
        out = f"{work}/torch-fault-{label}"
        torch_dump(model, tokens, out, fault=fault, feed=feed)
        rc, r = compare_json(ref, out)
        f = r.get("first_divergence") or {}
        got = (f.get("checkpoint"), f.get("layer"), f.get("origin"))
        if rc != 1 or got != ("ffn_out", fault_layer, "introduced"):
            fail(f"{fault}, {label}: compare exit {rc}, first divergence {got}, expected "
                 f"('ffn_out', {fault_layer}, 'introduced')")
        before = [x for x in r["rows"] if x["layer"] is not None and x["layer"] < fault_layer]
        if any(x["status"] != "PASS" for x in before):
            fail(f"{fault}, {label}: a layer before {fault_layer} fails")
        results[label] = r
    after = rows_of(results["fed"], after=fault_layer)
    bad = [(x["checkpoint"], x["layer"]) for x in after if x["status"] != "PASS"]
    if bad:
        fail(f"{fault}, fed: rows after layer {fault_layer} fail: {bad}; a fed run isolates the layer")
    print(f"{fault}, fed: first divergence ffn_out layer {fault_layer}; {len(after)} rows after it all pass")
    chained = results["chained"]
    for il in range(fault_layer + 1, n_layer):
        failing = [x["checkpoint"] for x in rows_of(chained, il) if x["status"] != "PASS"]
        if "l_out" not in failing:
            fail(f"{fault}, chained: layer {il} has l_out passing (failing: {failing}); the fault should spread")
    logits = [x for x in rows_of(chained) if x["checkpoint"] == "logits"]
    if not logits or logits[0]["status"] == "PASS":
        fail(f"{fault}, chained: the logits pass")
    n_bad = sum(x["status"] != "PASS" for x in rows_of(chained, after=fault_layer))
    print(f"{fault}, chained: first divergence ffn_out layer {fault_layer}; {n_bad} rows after it fail, "
          f"l_out of every later layer and the logits among them")

    # refusals: a dump of another model
    probe = load_model(model)
    for label, mm, words in (("another model's layers", {"n_layer": n_layer + 1}, [f"{n_layer + 1} layers"]),
                             ("another model's fingerprint", {"fingerprint": "sha256-sampled-v1:00"},
                              ["fingerprint", "sha256-sampled-v1:00"])):
        fake = f"{work}/fake-{len(words)}"
        with DumpWriter(fake) as w:
            model_block = {"n_layer": n_layer, **mm}
            w.set_run(producer="fake", architecture=m["model"]["architecture"], n_layer=model_block["n_layer"],
                      n_embd=m["model"]["n_embd"], n_head=1, n_head_kv=1, n_vocab=m["model"]["n_vocab"],
                      tokens=tokens, model_fingerprint=mm.get("fingerprint"))
            w.write("embd", np.zeros((len(tokens), m["model"]["n_embd"]), np.float32))
        expect_error(f"feed from {label}", words,
                     lambda: Capture(probe, f"{work}/refused-{len(words)}", architecture="x", n_head=1, n_head_kv=1,
                                     model_path=model, feed=fake))


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


def case_safetensors(work, model):
    # one run, two containers: f16 cache kept as f16 (--dtype native), so both F32 and F16 tensors; 4 steps
    args = ["-m", model, "--tokens", TOKENS, "-ub", "3", "-n", "1", "--checkpoints", "all", "--dtype", "native",
            "-t", "2"]
    for form in ("safetensors", "npz"):
        run(os.environ["EXTRACTOR"], *args, "--format", form, "-o", f"{work}/{form}")
    st, z = Dump(f"{work}/safetensors"), Dump(f"{work}/npz")
    if st.container != {"format": "safetensors", "file": "checkpoints.safetensors"}:
        fail(f"the safetensors dump's container is {st.container}")
    if [e["key"] for e in st.files] != [e["key"] for e in z.files]:
        fail("the safetensors and npz dumps list different tensors")
    if st.tokens.tobytes() != z.tokens.tobytes():
        fail("the two dumps' tokens differ")
    dtypes = set()
    for (e, a), (_, b) in zip(st, z):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            fail(f"{e['key']}: safetensors {a.dtype}{a.shape} differs from the npz dump's {b.dtype}{b.shape}")
        dtypes.add(str(a.dtype))
    if dtypes != {"float32", "float16"}:
        fail(f"the dump's tensors are {sorted(dtypes)}, expected float32 and float16")
    print(f"safetensors: {len(st.files)} tensors ({', '.join(sorted(dtypes))}) equal the npz dump's bit for bit")

    # independently: the header parsed here, values against numpy's own reading of the npz
    path = f"{work}/safetensors/checkpoints.safetensors"
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    if header.get("__metadata__", {}).get("format") != "llorch-checkpoint-dump" or (8 + n) % 8:
        fail(f"safetensors header: metadata {header.get('__metadata__')}, data at {8 + n}")
    npz = np.load(f"{work}/npz/checkpoints.npz")
    f16 = [k for k, t in header.items() if k != "__metadata__" and t["dtype"] == "F16"]
    keys = [st.files[0]["key"], st.files[-1]["key"], f16[0], "checkpoint_01_attn_norm_l01_s002"]
    for key in keys:
        t = header[key]
        begin, end = t["data_offsets"]
        want = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype={"F32": "<f4", "F16": "<f2"}[t["dtype"]])
        want = want.reshape(t["shape"])
        got = st.get(**{k: v for k, v in [(k, next(e for e in st.files if e["key"] == key)[k])
                                          for k in ("checkpoint", "layer", "step")]})
        if want.tobytes() != got.tobytes() or want.dtype != got.dtype or npz[key].tobytes() != want.tobytes():
            fail(f"{key}: the header parsed here gives other values than the reader or numpy's npz")
        print(f"  {key}: {t['dtype']} {t['shape']}, first values {want.reshape(-1)[:3].tolist()}: as the reader")

    # damaged: cut in the data, in the header, in the header's length; the reader names the file
    for size in (len(raw) - 6, 8 + n // 2, 5):
        shutil.rmtree(f"{work}/cut", ignore_errors=True)
        shutil.copytree(f"{work}/safetensors", f"{work}/cut")
        os.truncate(f"{work}/cut/checkpoints.safetensors", size)
        last = max(st.files, key=lambda e: header[e["key"]]["data_offsets"][1])  # the tensor at the end
        expect_error(f"checkpoints.safetensors cut to {size} bytes",
                     [f"{work}/cut/checkpoints.safetensors", "truncated", "re-create it"],
                     lambda: Dump(f"{work}/cut").get(last["checkpoint"], last["layer"], last["step"]))
    # a manifest that disagrees with the container: its shape
    shutil.rmtree(f"{work}/cut")
    shutil.copytree(f"{work}/safetensors", f"{work}/cut")
    with open(f"{work}/cut/manifest.json", encoding="utf-8") as f:
        m = json.load(f)
    m["files"][0]["shape"] = [1] + m["files"][0]["shape"]
    with open(f"{work}/cut/manifest.json", "w", encoding="utf-8") as f:
        json.dump(m, f)
    first = m["files"][0]
    expect_error("manifest shape differs", ["checkpoints.safetensors", "the manifest says"],
                 lambda: Dump(f"{work}/cut").get(first["checkpoint"], first["layer"], first["step"]))


def main():
    case, work, model = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    cases = {"roundtrip": case_roundtrip, "torch": case_torch, "gpt2": case_gpt2, "fed": case_fed,
             "errors": case_errors, "safetensors": case_safetensors}
    cases[case](work, model)
    print("PASS")


if __name__ == "__main__":
    main()

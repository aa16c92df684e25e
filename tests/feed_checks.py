"""Checks of fed runs (llorch-checkpoint-extractor --feed, docs/FORMAT.md "Fed runs").

    feed_checks.py same A B [--fed-from DIR] [--devices]
        every tensor of B holds A's bits, the same files in the same order, and the
        manifests are equal apart from "fed" and llama_cpp.capture_splits (a fed run
        adds splits), and with --devices each entry's "device"; npy files are compared
        byte for byte. --fed-from: B's "fed" names DIR, A's producer and fingerprint,
        every layer.
    feed_checks.py perturb A OUT LAYER
        OUT: a copy of A whose l_out of LAYER has 1e-2 noise added (crc32 fixed).
    feed_checks.py norm A PERTURBED FED MODEL LAYER
        FED (fed by PERTURBED) holds A's bits up to LAYER (every file of layers <= LAYER,
        and embd), and its attn_norm of LAYER + 1 is numpy's RMSNorm (LayerNorm for
        gpt2) of PERTURBED's l_out of LAYER times the GGUF's norm weight (+ bias), within
        1e-5 relative; A's attn_norm differs from it by far more. Needs llama.cpp's
        gguf-py on PYTHONPATH.
"""
import json
import os
import shutil
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_load import Dump  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def comparable(manifest, devices):
    m = json.loads(json.dumps(manifest))
    m.pop("fed", None)
    m.get("llama_cpp", {}).pop("capture_splits", None)
    if devices:
        for e in m["files"]:
            e.pop("device", None)
        m["model"].pop("path", None)
        m["settings"].pop("n_gpu_layers", None)
        m["llama_cpp"].pop("capture", None)
    return m


def check_fed(b, a, origin, where):
    fed = b.manifest.get("fed")
    check(fed is not None, f"{where}: the manifest has no 'fed'")
    model = a.manifest["model"]
    want_at = ["embd", "l_out", "ffn_inp"] if any(e["checkpoint"] == "ffn_inp" for e in a.manifest["files"]) \
        else ["embd", "l_out"]
    check(fed == {"from": origin, "producer": a.manifest["producer"], "fingerprint": model.get("fingerprint"),
                  "at": want_at, "layers": list(range(model["n_layer"]))}, f"{where}: fed is {fed}")


def cmd_same(args):
    a, b = Dump(args[0]), Dump(args[1])
    devices = "--devices" in args
    fa, fb = a.manifest["files"], b.manifest["files"]
    check([e["file"] for e in fa] == [e["file"] for e in fb], "the dumps list other tensors")
    for ea, eb in zip(fa, fb):
        check(a.array(ea).tobytes() == b.array(eb).tobytes(), f"{eb['file']} differs")
        path_a, path_b = os.path.join(args[0], ea["file"]), os.path.join(args[1], eb["file"])
        if os.path.isfile(path_a) and path_a.endswith(".npy"):
            check(open(path_a, "rb").read() == open(path_b, "rb").read(), f"{eb['file']}: the files differ")
    check(np.array_equal(np.load(os.path.join(args[0], "tokens.npy")), np.load(os.path.join(args[1], "tokens.npy"))),
          "tokens.npy differs")
    ma, mb = comparable(a.manifest, devices), comparable(b.manifest, devices)
    diff = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    check(not diff, f"the manifests differ in {diff}")
    if "--fed-from" in args:
        check_fed(b, a, args[args.index("--fed-from") + 1], args[1])
    print(f"ok: {args[1]} holds {args[0]}'s bits: {len(fb)} tensors")


def entry(d, name, layer):
    found = [e for e in d.manifest["files"] if e["checkpoint"] == name and e["layer"] == layer]
    check(len(found) == 1, f"{name} of layer {layer}: {len(found)} files (a one-step dump is expected)")
    return found[0]


def cmd_perturb(args):
    src, out, layer = args[0], args[1], int(args[2])
    shutil.copytree(src, out)
    m = json.load(open(os.path.join(out, "manifest.json")))
    e = next(e for e in m["files"] if e["checkpoint"] == "l_out" and e["layer"] == layer)
    path = os.path.join(out, e["file"])
    a = np.load(path)
    a = (a + np.random.default_rng(11).normal(0, 1e-2, a.shape)).astype(np.float32)
    np.save(path, a)
    e["crc32"] = zlib.crc32(a.tobytes())
    json.dump(m, open(os.path.join(out, "manifest.json"), "w"), indent=2)
    print(f"ok: {out}: l_out of layer {layer} perturbed by 1e-2 noise")


def norm_ref(x, reader, arch, layer):
    """The attention norm of `layer`, in float64, from llama.cpp's own GGUF reader."""
    fields = {f.name: f for f in reader.fields.values()}

    def scalar(key):
        f = fields[key]
        return float(f.parts[f.data[0]][0])

    tensors = {t.name: np.asarray(t.data, dtype=np.float64).reshape(-1) for t in reader.tensors}
    w = tensors[f"blk.{layer}.attn_norm.weight"]
    x = x.astype(np.float64)
    if arch == "gpt2":
        eps = scalar(f"{arch}.attention.layer_norm_epsilon")
        c = x - x.mean(axis=-1, keepdims=True)
        return c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + eps) * w + tensors[f"blk.{layer}.attn_norm.bias"]
    eps = scalar(f"{arch}.attention.layer_norm_rms_epsilon")
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def cmd_norm(args):
    from gguf import GGUFReader  # llama.cpp's gguf-py

    a, p, b = Dump(args[0]), Dump(args[1]), Dump(args[2])
    model, layer = args[3], int(args[4])
    check_fed(b, p, args[1], args[2])
    same = 0
    for ea, eb in zip(a.manifest["files"], b.manifest["files"]):
        check(ea["file"] == eb["file"], "the dumps list other tensors")
        if ea["layer"] <= layer:  # embd (-1) and every file of layers 0..LAYER
            check(a.array(ea).tobytes() == b.array(eb).tobytes(), f"{eb['file']} differs from the unfed dump")
            same += 1
    arch = a.manifest["model"]["architecture"]
    x = p.array(entry(p, "l_out", layer))
    ref = norm_ref(x, GGUFReader(model), arch, layer + 1)
    got = b.array(entry(b, "attn_norm", layer + 1)).astype(np.float64)
    unfed = a.array(entry(a, "attn_norm", layer + 1)).astype(np.float64)
    scale = np.abs(ref).max()
    err, moved = np.abs(got - ref).max() / scale, np.abs(unfed - ref).max() / scale
    check(err <= 1e-5, f"attn_norm of layer {layer + 1}: {err:.3g} relative from numpy's norm of the fed l_out")
    check(moved > 1e-3, f"attn_norm of layer {layer + 1} of the unfed dump is within {moved:.3g} of the fed one")
    print(f"ok: {same} files up to layer {layer} hold the unfed bits; attn_norm of layer {layer + 1} is "
          f"numpy's {'LayerNorm' if arch == 'gpt2' else 'RMSNorm'} of the fed l_out within {err:.2g} relative "
          f"(the unfed one is {moved:.2g} away)")


def main():
    cmds = {"same": cmd_same, "perturb": cmd_perturb, "norm": cmd_norm}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail(f"usage: feed_checks.py {'|'.join(cmds)} ...")
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The verdict on recurrent layers (docs/COMPARE.md, "Where a divergence
comes from"): a fault planted at one checkpoint of a Mamba-like or an
RWKV-like layer is named there, and nowhere earlier.

The dumps are synthetic: random tensors in the graph order llama.cpp's
models have (Mamba: attn_norm, cache_r, cache_s, attn_out_proj, l_out;
RWKV: attn_norm, cache_s, attn_out_proj, ffn_inp, ffn_out, l_out, cache_r).
A candidate is the reference with every tensor from the faulty one on (in
that order) perturbed by a relative 1e-4, below the f32 preset's
tolerance (rtol 1e-3), as a real fault carries on downstream.

  compare_recurrent.py --tool COMPARE --python-dir DIR --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

T, N_EMBD, N_LAYER, N_VOCAB = 5, 16, 2, 32
STATE = {"cache_r": 24, "cache_s": 64}
ORDER = {
    "mamba": ["attn_norm", "cache_r", "cache_s", "attn_out_proj", "l_out"],
    "rwkv7": ["attn_norm", "cache_s", "attn_out_proj", "ffn_inp", "ffn_out", "l_out", "cache_r"],
}


def rows(arch):
    """(checkpoint, layer) in graph order."""
    out = [("embd", -1)]
    for il in range(N_LAYER):
        out += [(k, il) for k in ORDER[arch]]
    return out + [("result_norm", -1), ("logits", -1)]


def write(path, arch, fault):
    from llorch_checkpoint import DumpWriter
    rng, noise = np.random.default_rng(7), np.random.default_rng(8)
    faulty = False
    with DumpWriter(path) as w:
        w.set_run(producer="compare_recurrent", architecture=arch, n_layer=N_LAYER, n_embd=N_EMBD, n_head=1,
                  n_head_kv=1, n_vocab=N_VOCAB, tokens=list(range(1, T + 1)))
        for kind, il in rows(arch):
            shape = (STATE[kind],) if kind in STATE else (T, N_VOCAB if kind == "logits" else N_EMBD)
            a = rng.standard_normal(shape)
            faulty |= (kind, il) == fault
            if faulty:
                a = a * (1 + 1e-4 * noise.standard_normal(shape))
            w.write(kind, a.astype(np.float32), layer=il, n_pos=T if kind in STATE else None)


def verdict(tool, ref, cand):
    p = subprocess.run([tool, ref, cand, "--json"], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"FAIL: compare exited {p.returncode}: {p.stderr.strip()}")
    j = json.loads(p.stdout)
    return p.returncode, j["first_divergence"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--python-dir", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.python_dir)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    cases = [("mamba", ("cache_r", 1)), ("mamba", ("cache_s", 1)), ("mamba", ("attn_out_proj", 0)),
             ("rwkv7", ("cache_s", 1)), ("rwkv7", ("attn_out_proj", 0)), ("rwkv7", ("ffn_out", 0)),
             ("rwkv7", ("cache_r", 1))]
    bad = 0
    for arch, fault in cases:
        ref, cand = (os.path.join(args.work, f"{arch}-{n}") for n in ("ref", f"{fault[0]}-{fault[1]}"))
        if not os.path.exists(ref):
            write(ref, arch, None)
            rc, first = verdict(args.tool, ref, ref)
            if rc != 0 or first:
                print(f"FAIL: {arch}: the reference against itself: exit {rc}, first divergence {first}")
                bad += 1
        write(cand, arch, fault)
        rc, first = verdict(args.tool, ref, cand)
        named = first is not None and (first["checkpoint"], first["layer"]) == fault
        origin = first.get("origin") if first else None
        ok = rc == 1 and named and origin == "introduced"
        bad += not ok
        got = f"{first['checkpoint']} layer {first['layer']} ({origin})" if first else "a pass"
        print(f"{'ok  ' if ok else 'FAIL'} {arch}: fault at {fault[0]} layer {fault[1]}: exit {rc}, first "
              f"divergence {got}")
    print("PASS" if bad == 0 else f"FAIL: {bad} case(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

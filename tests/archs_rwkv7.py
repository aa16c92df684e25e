#!/usr/bin/env python3
"""A trained RWKV-7 (../shared/models/tiny-rwkv7-834K-F32.gguf): the
recurrent layers' checkpoints, checked against llama.cpp and rwkv.cpp.

  archs_rwkv7.py EXTRACTOR MODELS_DIR WORKDIR

1. archs_check.py's checks, flash attention off and on: every captured
   tensor is, bit for bit, the node of llama.cpp's whole graph that the
   checker's own dataflow rules name; here every layer must have attn_norm
   (the norm before the time mix), attn_out_proj (the time mix's output),
   ffn_inp, ffn_out (the channel mix's output) and l_out.
2. On rwkv.cpp's test tokens (34, 105, 110: the bytes '"in', from a fresh
   state): the last token's logits equal rwkv.cpp's committed expected
   logits (tiny-rwkv7-834K-expected-logits.bin: 256 little-endian float32,
   tests/expected-logits-7v0-834K.bin in RWKV/rwkv.cpp) to within 1e-5;
   in every layer ffn_inp + ffn_out == l_out and, from layer 1 on,
   l_out of the layer before + attn_out_proj == ffn_inp, bit for bit.
Exit status 77 when MODELS_DIR lacks the model or the expected logits.
"""
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import archs_check  # noqa: E402
from dump_load import Dump  # noqa: E402

MODEL = "tiny-rwkv7-834K-F32.gguf"
EXPECTED = "tiny-rwkv7-834K-expected-logits.bin"
TOKENS = "34,105,110"
PER_LAYER = ("attn_norm", "attn_out_proj", "ffn_inp", "ffn_out", "l_out")
TOLERANCE = 1e-5


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    extractor, models, work = sys.argv[1:4]
    model, expected = os.path.join(models, MODEL), os.path.join(models, EXPECTED)
    if not (os.path.isfile(model) and os.path.isfile(expected)):
        print(f"skipped: {model} or {expected} is not present (../shared/models is optional)")
        return 77
    shutil.rmtree(work, ignore_errors=True)     # the extractor writes only into new directories
    problems = []

    for fa in ("off", "on"):
        res = archs_check.check(extractor, model, os.path.join(work, f"check-fa-{fa}"), fa)
        problems += [f"fa {fa}: {p}" for p in res["problems"]]
        got = {(r["checkpoint"], r["layer"]) for r in res.get("rows", []) if "missing" not in r}
        for layer in range(res.get("n_layer", 0)):
            problems += [f"fa {fa}: {k} layer {layer} is not captured" for k in PER_LAYER if (k, layer) not in got]
        print(f"fa {fa}: {res['verified']}/{res['tensors']} tensors verified against llama.cpp's graph")

    dump = os.path.join(work, "logits")
    rc, err = archs_check.run([extractor, "-m", model, "--tokens", TOKENS, "-t", "2", "--checkpoints", "all",
                               "-o", dump])
    if rc != 0:
        problems.append(f"extractor failed ({rc}): {err}")
    else:
        d = Dump(dump)
        a = {(f["checkpoint"], f["layer"]): d.array(f) for f in d.manifest["files"]}
        want = np.fromfile(expected, dtype="<f4")
        logits = a.get(("logits", -1))
        if logits is None or logits.shape != (3, want.size):
            problems.append(f"logits: expected shape (3, {want.size}), got "
                            f"{None if logits is None else logits.shape}")
        else:
            diff = float(np.abs(logits[-1].astype(np.float64) - want).max())
            print(f"last-token logits vs rwkv.cpp's expected logits: max abs diff {diff:.3g}")
            if not diff <= TOLERANCE:
                problems.append(f"logits differ from rwkv.cpp's expected logits by {diff:.3g} (> {TOLERANCE})")
        n_layer = d.manifest["model"]["n_layer"]
        for layer in range(n_layer):
            inp, out, l_out = a.get(("ffn_inp", layer)), a.get(("ffn_out", layer)), a.get(("l_out", layer))
            if inp is None or out is None or l_out is None or not np.array_equal(inp + out, l_out):
                problems.append(f"layer {layer}: ffn_inp + ffn_out != l_out")
            if layer > 0:
                prev, mix = a.get(("l_out", layer - 1)), a.get(("attn_out_proj", layer))
                if prev is None or mix is None or not np.array_equal(prev + mix, inp):
                    problems.append(f"layer {layer}: l_out of layer {layer - 1} + attn_out_proj != ffn_inp")
        print(f"{n_layer} layers: ffn_inp + ffn_out == l_out, l_out(L-1) + attn_out_proj(L) == ffn_inp(L)")

    for p in problems:
        print("  " + p)
    print("ok" if not problems else f"FAIL: {len(problems)} problems")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

"""Checks of llorch-ref-engine --feed (tests/engine_feed.sh).

    engine_feed_check.py same UNFED FED FROM
        every tensor file of FED is byte for byte UNFED's, and the manifests
        are equal but for "fed", which FED has (from FROM, every layer)
    engine_feed_check.py isolation FED.json UNFED.json LAYER N_LAYER
        compare --json of the reference with the fed engine: the first
        divergence is attn_norm of LAYER, and every row of every other layer
        (and the model-level rows) passes; with the unfed engine: the first
        divergence is the same and every layer from LAYER to the last fails
"""
import json
import os
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def tensor_files(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".npy") or f.endswith(".npz") or f.endswith(".safetensors"))


def same(unfed, fed, origin):
    a, b = tensor_files(unfed), tensor_files(fed)
    if a != b:
        fail("the fed dump has other files: %s" % sorted(set(a) ^ set(b))[:5])
    for f in a:
        if open(os.path.join(unfed, f), "rb").read() != open(os.path.join(fed, f), "rb").read():
            fail("%s differs between the unfed and the self-fed run" % f)
    ma, mb = (json.load(open(os.path.join(d, "manifest.json"))) for d in (unfed, fed))
    if "fed" in ma:
        fail("the unfed dump says fed")
    fed_obj = mb.pop("fed", None)
    if fed_obj is None:
        fail("the fed dump has no \"fed\" object")
    diff = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    if diff:
        fail("the manifests differ in %s" % diff)
    n_layer = ma["model"]["n_layer"]
    src = json.load(open(os.path.join(origin, "manifest.json")))
    want = {"from": origin, "producer": src["producer"], "fingerprint": src["model"].get("fingerprint"),
            "at": ["embd", "l_out", "ffn_inp"], "layers": list(range(n_layer))}
    if fed_obj != want:
        fail("fed is %s, expected %s" % (fed_obj, want))
    print("ok: %d files of the self-fed run are the unfed run's, byte for byte; fed = %s" % (len(a), fed_obj))


def isolation(fed_json, unfed_json, layer, n_layer):
    fed, unfed = (json.load(open(f)) for f in (fed_json, unfed_json))
    for name, rep in (("fed", fed), ("unfed", unfed)):
        fd = rep.get("first_divergence") or {}
        if (fd.get("checkpoint"), fd.get("layer")) != ("attn_norm", layer):
            fail("%s: the first divergence is %s, expected attn_norm of layer %d" % (name, fd, layer))
    others = [r for r in fed["rows"] if r["layer"] != layer]
    bad = [(r["checkpoint"], r["layer"], r["status"]) for r in others if r["status"] != "PASS"]
    if bad or not others:
        fail("fed: rows outside layer %d do not pass: %s" % (layer, bad[:8]))
    layers = {r["layer"] for r in others}
    if layers != set(range(n_layer)) - {layer} | {None}:
        fail("fed: the report covers layers %s" % sorted(layers, key=str))
    if not any(r["status"] == "FAIL" for r in fed["rows"] if r["layer"] == layer):
        fail("fed: nothing fails in layer %d" % layer)
    for l in range(n_layer):
        rows = [r for r in unfed["rows"] if r["layer"] == l]
        failed = [r for r in rows if r["status"] != "PASS"]
        if l < layer and failed:
            fail("unfed: layer %d fails before the fault: %s" % (l, [r["checkpoint"] for r in failed]))
        if l >= layer and not failed:
            fail("unfed: layer %d passes after the fault in layer %d" % (l, layer))
    print("ok: fed, only layer %d fails (%d other rows pass); unfed, layers %d-%d fail" % (layer, len(others), layer,
                                                                                        n_layer - 1))


def main():
    if sys.argv[1] == "same":
        same(*sys.argv[2:5])
    elif sys.argv[1] == "isolation":
        isolation(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        fail("unknown mode " + sys.argv[1])


if __name__ == "__main__":
    main()

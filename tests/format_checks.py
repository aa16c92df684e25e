#!/usr/bin/python3
"""numpy's view of the dump that test_format wrote (an independent reader)."""
import json
import os
import sys
import zlib

import numpy as np

d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


assert m["format"] == "llorch-checkpoint-dump" and m["format_version"] == 1 and m["complete"] is True
if m["prompt"] != 'quote " backslash \\ newline \n end':
    fail("prompt did not survive JSON escaping")
if m["settings"] != {"threads": 2} or m["missing"][0]["checkpoint"] != "Qcur_pre_rope":
    fail("settings or missing entries")
if np.load(os.path.join(d, "tokens.npy")).tolist() != [1, 15043, 2]:
    fail("tokens.npy")

files = {f["checkpoint"]: f for f in m["files"]}
ramp = np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.5) - np.float32(1.0)
ramp[1, 1] = np.float32(1.0) / np.float32(3.0)
a = np.load(os.path.join(d, files["attn_norm"]["file"]))
if a.dtype != np.float32 or a.shape != (3, 4) or not np.array_equal(a, ramp):
    fail("attn_norm values")
raw = open(os.path.join(d, files["attn_norm"]["file"]), "rb").read()
header_len = int.from_bytes(raw[8:10], "little")
if raw[:8] != b"\x93NUMPY\x01\x00" or (10 + header_len) % 64 != 0 or raw[10 + header_len - 1:10 + header_len] != b"\n":
    fail("npy v1.0 header layout")

h = np.load(os.path.join(d, files["cache_k"]["file"]))
if h.dtype != np.float16 or h.shape != (256, 16, 16) or not np.array_equal(h.view(np.uint16).ravel(), np.arange(65536)):
    fail("f16 tensor")
text = np.loadtxt(os.path.join(d, files["cache_k"]["text_file"]), dtype=np.float32)
want = h.astype(np.float32).ravel()
same = (text.view(np.uint32) == want.view(np.uint32)) | (np.isnan(text) & np.isnan(want))
if not same.all():
    bad = np.nonzero(~same)[0][:5]
    fail(f"text of f16 values differs at bit patterns {bad}: {text[bad]} vs {want[bad]}")
t = np.loadtxt(os.path.join(d, files["attn_norm"]["text_file"]), dtype=np.float32).reshape(3, 4)
if t.tobytes() != a.tobytes():
    fail("text of f32 values does not round-trip")
if np.load(os.path.join(d, files["logits"]["file"])).shape != (1, 1):
    fail("1-d shape")
for f in m["files"]:
    arr = np.load(os.path.join(d, f["file"]))
    if zlib.crc32(arr.tobytes()) != f["crc32"] or list(arr.shape) != f["shape"]:
        fail(f"crc32/shape of {f['file']}")
print("ok: numpy reads the writer's files: values, f16 (all 65536 patterns) and text round-trips, crc32, manifest")

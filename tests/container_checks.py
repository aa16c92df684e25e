#!/usr/bin/python3
"""Checks the container forms of a dump against the npy form of the same run.

    container_checks.py NPY_DIR NPZ_DIR SAFETENSORS_DIR

The three dumps come from the same command with --format npy, npz and
safetensors. Each container is read by code that is not ours:
  - .npz with numpy's own np.load (and zipfile's CRC check of every member);
  - safetensors with the reader below, written from the format's
    specification (huggingface/safetensors README and the reference crate's
    validation rules: header length, JSON, dtypes, data_offsets that cover
    the data section back to back).
Every tensor must hold the same bits as the .npy file of the npy dump, and
the manifests must describe the same tensors.
"""
import json
import os
import sys
import zipfile

import numpy as np

from dump_load import FormatError, read_safetensors

def manifest(d):
    return json.load(open(os.path.join(d, "manifest.json")))


def strip(entry):
    return {k: v for k, v in entry.items() if k not in ("file", "key", "offset")}


def check_manifests(m_npy, m, form):
    if m.get("format_version") != 2 or m.get("container", {}).get("format") != form:
        fail(f"{form}: manifest lacks format_version 2 or container.format {form}")
    if m_npy.get("format_version") != 1 or "container" in m_npy:
        fail("npy: manifest must stay format_version 1 without a container")
    a = [strip(e) for e in m_npy["files"]]
    b = [strip(e) for e in m["files"]]
    if a != b:
        fail(f"{form}: the manifest describes other tensors than the npy form's")
    if m["missing"] != m_npy["missing"] or m["complete"] is not True:
        fail(f"{form}: missing list or completeness differ")


def check_npz(npy_dir, npz_dir):
    m_npy, m = manifest(npy_dir), manifest(npz_dir)
    check_manifests(m_npy, m, "npz")
    path = os.path.join(npz_dir, m["container"]["file"])
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            fail(f"{path}: member {bad} fails its CRC check")
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                fail(f"{path}: {info.filename} is compressed")
    raw = open(path, "rb").read()
    npz = np.load(path)
    if sorted(npz.files) != sorted(e["key"] for e in m["files"]):
        fail(f"{path}: members differ from the manifest's keys")
    for e_npy, e in zip(m_npy["files"], m["files"]):
        want = np.load(os.path.join(npy_dir, e_npy["file"]))
        have = npz[e["key"]]
        if have.dtype != want.dtype or have.shape != want.shape or have.tobytes() != want.tobytes():
            fail(f"{path}: {e['key']} differs from {e_npy['file']}")
        if e["offset"] % 64 != 0 or raw[e["offset"]:e["offset"] + e["bytes"]] != want.tobytes():
            fail(f"{path}: {e['key']}: the manifest's offset does not point at its data")
    return len(m["files"])


def check_safetensors(npy_dir, st_dir):
    m_npy, m = manifest(npy_dir), manifest(st_dir)
    check_manifests(m_npy, m, "safetensors")
    path = os.path.join(st_dir, m["container"]["file"])
    try:
        tensors, metadata, offsets = read_safetensors(path)
    except FormatError as e:
        fail(str(e))
    if metadata.get("format") != m["format"]:
        fail(f"{path}: __metadata__.format is {metadata.get('format')!r}")
    if sorted(tensors) != sorted(e["key"] for e in m["files"]):
        fail(f"{path}: tensors differ from the manifest's keys")
    for e_npy, e in zip(m_npy["files"], m["files"]):
        want = np.load(os.path.join(npy_dir, e_npy["file"]))
        have = tensors[e["key"]]
        if have.dtype != want.dtype or have.shape != want.shape or have.tobytes() != want.tobytes():
            fail(f"{path}: {e['key']} differs from {e_npy['file']}")
        if offsets[e["key"]] != e["offset"]:
            fail(f"{path}: {e['key']}: manifest offset {e['offset']} != {offsets[e['key']]}")
    return len(m["files"])


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    npy_dir, npz_dir, st_dir = sys.argv[1:]
    n = check_npz(npy_dir, npz_dir)
    k = check_safetensors(npy_dir, st_dir)
    print(f"ok: {n} npz members and {k} safetensors tensors hold the npy form's bits")


if __name__ == "__main__":
    main()

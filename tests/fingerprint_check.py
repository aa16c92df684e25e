"""The model fingerprint (docs/FORMAT.md, "The model fingerprint"), run by
tests/fingerprint.cmake:

  fingerprint_check.py values WORK DATA    C, Python and Rust fingerprints of the same GGUF files equal
                                           each other and this file's own computation from FORMAT.md;
                                           different models differ; bad files are errors; a 7 GB model
                                           costs well under a second
  fingerprint_check.py compare WORK DATA   the extractor and the engine record it; compare refuses two
                                           dumps of different models (exit 2, one line), compares them
                                           with --allow-model-mismatch (a warning), warns for a dump
                                           without one; the reader refuses a malformed one

Programs and paths come from the environment: FP_C (tests/test_gguf_fingerprint.c), EXTRACTOR, ENGINE,
COMPARE, MAKER, CRATE (rust/; the Rust side is skipped without cargo), CARGO_TARGET_DIR, GGUF_PY (llama.cpp's
gguf-py), SHARED_MODELS (../shared/models, optional)."""

import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np

from llorch_checkpoint import Dump, DumpWriter, gguf_fingerprint

SCHEME = "sha256-sampled-v1"
TOKENS = "1,15043,3186,338,263"


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run(*cmd, ok=(0,), cwd=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, cwd=cwd)
    if p.returncode not in ok:
        fail(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


# ---- the definition, from FORMAT.md, on llama.cpp's own GGUF reader ---------------------------

def independent(path):
    """FORMAT.md's definition computed with gguf-py's GGUFReader (the layout)
    and numpy + hashlib (the extents and the samples)."""
    from gguf import GGUFReader  # llama.cpp's gguf-py, from GGUF_PY
    r = GGUFReader(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if not r.tensors:
        table = b""
    else:
        first, last = r.tensors[0].field, r.tensors[-1].field
        table_end = last.offset + sum(int(p.nbytes) for p in last.parts)
        table = raw[first.offset:table_end].tobytes()
        check(r.data_offset == -(-table_end // r.alignment) * r.alignment, f"{path}: data start")
    h = hashlib.sha256(table)
    rel = np.array([t.data_offset - r.data_offset for t in r.tensors], dtype=np.int64)
    starts = np.unique(rel)
    bounds = np.append(starts, len(raw) - r.data_offset)
    for off in rel:
        size = int(bounds[np.searchsorted(starts, off, side="right")] - off)
        begin = r.data_offset + int(off)
        if size <= 8 * 4096:
            h.update(raw[begin:begin + size].tobytes())
        else:
            for i in range(8):
                at = begin + (i * (size - 4096)) // 7
                h.update(raw[at:at + 4096].tobytes())
    return f"{SCHEME}:{h.hexdigest()}"


# ---- the three implementations ---------------------------------------------------------------

def c_values(paths):
    out = run(os.environ["FP_C"], *paths).stdout.splitlines()
    return [line.split("  ", 1)[0] for line in out]


def rust_values(paths):
    """None where cargo is absent."""
    if shutil.which("cargo") is None:
        print("note: no cargo: the Rust fingerprint is not checked")
        return None
    # in the crate's directory: its .cargo/config.toml builds from Debian's crates
    p = run("cargo", "run", "-q", "--offline", "--example", "gguf_fingerprint", "--",
            *[os.path.abspath(p) for p in paths], cwd=os.environ["CRATE"])
    return [line.split("  ", 1)[0] for line in p.stdout.splitlines()]


def make_tiny(path, *args):
    run(os.environ["MAKER"], "-o", path, *args)
    return path


def gguf_py_models(work):
    """Files that exercise the definition's corners, written by gguf-py: a
    custom alignment, string arrays and scalars in the metadata, tensors
    of exactly 32768 bytes (hashed whole) and of 32772 (sampled), a tensor
    whose data is smaller than the alignment, and no tensor at all."""
    from gguf import GGUFWriter
    out = []
    for name, alignment, tensors in (
            ("align64", 64, [("a", np.arange(8192, dtype=np.float32)),             # 32768 bytes: whole
                             ("b", np.arange(8193, dtype=np.float32) * 0.5),       # 32772: 8 samples
                             ("c", np.ones(3, dtype=np.float32)),                  # padded to 64
                             ("d", np.linspace(-1, 1, 300000, dtype=np.float32).reshape(600, 500))]),
            ("notensor", 32, [])):
        path = os.path.join(work, f"gguf-py-{name}.gguf")
        w = GGUFWriter(path, "llama")
        if alignment != 32:
            w.add_custom_alignment(alignment)
        w.add_array("tokenizer.ggml.tokens", ["a", "bb", "", "dddd"])
        w.add_array("test.floats", [1.0, 2.5])
        w.add_string("general.name", name)
        w.add_uint32("test.u32", 7)
        w.add_bool("test.bool", True)
        for tname, a in tensors:
            w.add_tensor(tname, a)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out.append(path)
    return out


def big_sparse_model(path):
    """A 7B-shaped Q8_0 GGUF (291 tensors, 7.2 GB) as a sparse file: its
    size is a 7 GB model's, its blocks cost no disk."""
    q8_row = lambda n: n // 32 * 34  # Q8_0: 34 bytes per 32 values
    shapes = [("token_embd.weight", (4096, 32000))]
    for il in range(32):
        for w, dims in (("attn_norm", (4096,)), ("attn_q", (4096, 4096)), ("attn_k", (4096, 4096)),
                        ("attn_v", (4096, 4096)), ("attn_output", (4096, 4096)), ("ffn_norm", (4096,)),
                        ("ffn_gate", (4096, 11008)), ("ffn_up", (4096, 11008)), ("ffn_down", (11008, 4096))):
            shapes.append((f"blk.{il}.{w}.weight", dims))
    shapes += [("output_norm.weight", (4096,)), ("output.weight", (4096, 32000))]
    infos, offset = b"", 0
    for name, dims in shapes:
        ggml_type = 0 if len(dims) == 1 else 8  # F32 norms, Q8_0 matrices
        nbytes = dims[0] * 4 if len(dims) == 1 else q8_row(dims[0]) * dims[1]
        infos += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ggml_type, offset)
        offset += -(-nbytes // 32) * 32
    key = b"general.architecture"
    head = b"GGUF" + struct.pack("<IQQ", 3, len(shapes), 1) + struct.pack("<Q", len(key)) + key
    head += struct.pack("<IQ", 8, 5) + b"llama"
    data_start = -(-(len(head) + len(infos)) // 32) * 32
    with open(path, "wb") as f:
        f.write(head + infos)
        f.truncate(data_start + offset)
    return path


def case_values(work, data):
    tiny = sorted(glob.glob(os.path.join(data, "tiny-*.gguf")))
    check(len(tiny) >= 6, f"the tiny_models fixture in {data}: {tiny}")
    shared = sorted(glob.glob(os.path.join(os.environ.get("SHARED_MODELS", ""), "*.gguf")))
    seeds = [make_tiny(os.path.join(work, f"llama-seed{s}.gguf"), "--arch", "llama", "--layers", "2", "--embd", "64",
                       "--heads", "4", "--heads-kv", "2", "--ff", "128", "--seed", str(s)) for s in (2, 3)]
    q8 = make_tiny(os.path.join(work, "llama-q8_0-seed3.gguf"), "--arch", "llama", "--layers", "2", "--embd", "256",
                   "--heads", "4", "--heads-kv", "2", "--ff", "512", "--seed", "3", "--type", "q8_0")
    big = big_sparse_model(os.path.join(work, "sparse-7b-q8_0.gguf"))
    paths = tiny + shared + seeds + [q8] + gguf_py_models(work) + [big]
    want = [independent(p) for p in paths]
    py = [gguf_fingerprint(p) for p in paths]
    c = c_values(paths)
    rs = rust_values(paths)
    for i, p in enumerate(paths):
        check(want[i].startswith(SCHEME + ":") and len(want[i]) == len(SCHEME) + 65, want[i])
        check(py[i] == want[i], f"{p}: Python {py[i]}, FORMAT.md {want[i]}")
        check(c[i] == want[i], f"{p}: C {c[i]}, FORMAT.md {want[i]}")
        check(rs is None or rs[i] == want[i], f"{p}: Rust {rs and rs[i]}, FORMAT.md {want[i]}")
    print(f"{len(paths)} GGUF files: C, Python{', Rust' if rs else ''} and FORMAT.md's definition agree")
    # different models, different fingerprints; the same model (the same bytes), the same one
    same = {seeds[0]: os.path.join(data, "tiny-llama-f32.gguf"), q8: os.path.join(data, "tiny-llama-q8_0.gguf")}
    for mine, fixture in same.items():
        check(want[paths.index(mine)] == want[paths.index(fixture)], f"{mine} and {fixture}: the same options")
    distinct = [w for p, w in zip(paths, want) if p not in same]
    check(len(set(distinct)) == len(distinct), f"two different files share a fingerprint: {list(zip(paths, want))}")
    print("seeds 2 and 3 of one shape differ; f32/f16/q8_0/q4_K differ; the same options give the same value")
    # bounded: a 7 GB Q8_0 file costs well under a second (its blocks are holes: no disk reads)
    t0 = time.perf_counter()
    c_values([big])
    c_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gguf_fingerprint(big)
    py_s = time.perf_counter() - t0
    check(os.path.getsize(big) > 7e9 and c_s < 1.0, f"C took {c_s:.3f} s on a 7 GB file")
    print(f"7.2 GB Q8_0 (291 tensors): C {c_s * 1e3:.0f} ms (process included), Python {py_s * 1e3:.0f} ms")
    # files that are not whole GGUF files: errors that name the file, in all three
    bad = os.path.join(work, "truncated.gguf")
    with open(q8, "rb") as f:
        head = f.read(os.path.getsize(q8) // 3)
    not_gguf = os.path.join(work, "not.gguf")
    with open(not_gguf, "wb") as f:
        f.write(b"GGML" + bytes(100))
    with open(bad, "wb") as f:
        f.write(head)
    stub = os.path.join(work, "header-only.gguf")  # claims tensors whose table is not there
    with open(stub, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 1000, 0))
    for p, what in ((bad, "not a whole GGUF file"), (not_gguf, "not a GGUF file"), (stub, "not a whole GGUF")):
        r = run(os.environ["FP_C"], p, ok=(1,))
        check(r.stderr.startswith("error: ") and p in r.stderr and what in r.stderr and r.stderr.count("\n") == 1,
              f"C on {p}: {r.stderr!r}")
        try:
            gguf_fingerprint(p)
            fail(f"Python took {p}")
        except ValueError as e:
            check(p in str(e) and what in str(e), f"Python on {p}: {e}")
    print("truncated, non-GGUF and lying files: one-line errors naming the file")


# ---- dumps and compare ---------------------------------------------------------------------------

def manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def compare(ref, cand, *args, expect):
    p = run(os.environ["COMPARE"], ref, cand, "-q", *args, ok=(expect,))
    return p


def case_compare(work, data):
    a = os.path.join(data, "tiny-llama-f32.gguf")
    b = make_tiny(os.path.join(work, "llama-seed9.gguf"), "--arch", "llama", "--layers", "2", "--embd", "64",
                  "--heads", "4", "--heads-kv", "2", "--ff", "128", "--seed", "9")
    fa, fb = c_values([a, b])
    check(fa != fb, "two seeds, one fingerprint")
    ext_a, eng_a, ext_b = (os.path.join(work, n) for n in ("ext-a", "eng-a", "ext-b"))
    run(os.environ["EXTRACTOR"], "-m", a, "--tokens", TOKENS, "-ctk", "f32", "-ctv", "f32", "-o", ext_a)
    run(os.environ["ENGINE"], "-m", a, "--tokens", TOKENS, "-o", eng_a)
    run(os.environ["EXTRACTOR"], "-m", b, "--tokens", TOKENS, "-ctk", "f32", "-ctv", "f32", "-o", ext_b)
    for d, want in ((ext_a, fa), (eng_a, fa), (ext_b, fb)):
        got = manifest(d)["model"].get("fingerprint")
        check(got == want, f"{d}: model.fingerprint {got}, the model's is {want}")
    print("extractor and engine dumps record the model's fingerprint")
    # the same model: no word about the model
    p = compare(ext_a, eng_a, expect=0)
    check("fingerprint" not in p.stderr and "model" not in p.stderr, f"same model: {p.stderr!r}")
    # different models of the same shape: refused, one line naming both dumps, both fingerprints and the fix
    p = compare(ext_a, ext_b, expect=2)
    lines = p.stderr.splitlines()
    check(len(lines) == 1 and lines[0].startswith("llorch-checkpoint-compare: error: "), f"one error line: {lines}")
    for s in (ext_a, ext_b, fa, fb, "--allow-model-mismatch", "different models"):
        check(s in lines[0], f"the error names {s}: {lines[0]}")
    check(p.stdout.strip() == "" or "error" not in p.stdout, f"stdout: {p.stdout!r}")
    j = run(os.environ["COMPARE"], ext_a, ext_b, "--json", ok=(2,))
    check(fb in json.loads(j.stdout).get("error", json.dumps(json.loads(j.stdout))), f"--json: {j.stdout[:300]}")
    print(f"different models: exit 2, {lines[0][:110]}...")
    # --allow-model-mismatch: compared (the numbers differ: exit 1), with the warning
    p = compare(ext_a, ext_b, "--allow-model-mismatch", expect=1)
    check("warning: the dumps are of different models (--allow-model-mismatch)" in p.stderr and fa in p.stderr
          and fb in p.stderr, f"the warning: {p.stderr!r}")
    print("--allow-model-mismatch: compared, exit 1, warned")
    # a dump without a fingerprint: a warning, compared as before
    old = os.path.join(work, "no-fp")
    shutil.copytree(eng_a, old)
    m = manifest(old)
    del m["model"]["fingerprint"]
    with open(os.path.join(old, "manifest.json"), "w") as f:
        json.dump(m, f)
    p = compare(ext_a, old, expect=0)
    check(f"warning: {old} has no model fingerprint (model.fingerprint): the model cannot be checked" in p.stderr,
          f"no fingerprint: {p.stderr!r}")
    p = compare(old, old, expect=0)
    check("warning: neither dump has a model fingerprint (model.fingerprint): the model cannot be checked"
          in p.stderr, p.stderr)
    # another scheme: cannot be checked, a warning
    m["model"]["fingerprint"] = "sha512-whole-v9:" + "ab" * 64
    other = os.path.join(work, "other-scheme")
    shutil.copytree(old, other)
    with open(os.path.join(other, "manifest.json"), "w") as f:
        json.dump(m, f)
    p = compare(ext_a, other, expect=0)
    check("different schemes" in p.stderr, f"other scheme: {p.stderr!r}")
    print("no fingerprint, or another scheme: compared, with a warning that the model cannot be checked")
    # hostile fingerprints: the reader refuses them with one line
    for value in ("sha256-sampled-v1:" + "A" * 64, "no colon", "x:\nrm -rf", 42, "s:" + "0" * 300, ":00"):
        m["model"]["fingerprint"] = value
        with open(os.path.join(other, "manifest.json"), "w") as f:
            json.dump(m, f)
        p = compare(ext_a, other, expect=2)
        lines = p.stderr.splitlines()
        check(len(lines) == 1 and "fingerprint" in lines[0] and "manifest.json" in lines[0],
              f"malformed fingerprint {value!r}: {p.stderr!r}")
    print("malformed fingerprints: refused by the reader, one line")
    # the Python writer takes one (and refuses a malformed one)
    py = os.path.join(work, "py")
    src = Dump(eng_a)
    with DumpWriter(py) as w:
        w.set_run(producer="fingerprint_check.py", architecture="llama", n_layer=2, n_embd=64, n_head=4,
                  n_head_kv=2, n_vocab=src.manifest["model"]["n_vocab"], tokens=src.tokens,
                  model_fingerprint=gguf_fingerprint(a))
        for e, arr in src:
            w.write(e["checkpoint"], arr, layer=e["layer"], step=e["step"], pos_start=e["pos_start"],
                    n_pos=e["n_pos"], n_key=e["n_key"])
    check(manifest(py)["model"]["fingerprint"] == fa, "the Python writer's model.fingerprint")
    p = compare(ext_b, py, expect=2)
    check("different models" in p.stderr, p.stderr)
    try:
        with DumpWriter(os.path.join(work, "py-bad")) as w:
            w.set_run(producer="t", architecture="llama", n_layer=1, n_embd=2, n_head=1, n_head_kv=1, n_vocab=3,
                      tokens=[1], model_fingerprint="not one")
        fail("the Python writer took a malformed fingerprint")
    except ValueError as e:
        check("not a fingerprint" in str(e), str(e))
    print("the Python writer records model_fingerprint; compare refuses it against another model")


if __name__ == "__main__":
    case, work, data = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"values": case_values, "compare": case_compare}[case](work, data)
    print("PASS")

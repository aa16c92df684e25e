#!/usr/bin/env bash
# The Rust crate's tests (tests/rust.cmake). Exits 77 (skipped) without cargo.
#   rust_cases.sh cargo-test
#   rust_cases.sh writer-vs-c npy|npz WORK
#   rust_cases.sh reader-vs-numpy npy|npz|safetensors WORK MODEL
#   rust_cases.sh reader-numpy-npz WORK
#   rust_cases.sh residual-vs-numpy CASE WORK MODEL   (read_residual.sh CASE, the C and Rust readers)
# Environment: CRATE (rust/), CARGO_TARGET_DIR, C_WRITER (test_rust_writer),
# EXTRACTOR, COMPARE, CHECK (rust_reader_check.py), PY; for residual-vs-numpy
# also READ_RESIDUAL (test_read_residual), RESIDUAL_SH, RESIDUAL_CHECK.
set -euo pipefail
case_name=$1
shift
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v cargo >/dev/null; then
    echo "SKIP: cargo not found (apt-get install cargo librust-serde-json-dev librust-sha2-dev librust-crc32fast-dev librust-half-dev librust-zip-dev)"
    exit 77
fi
fail() {
    echo "FAIL: $*"
    exit 1
}
# the crate's .cargo/config.toml (Debian's registry, offline) is found from the working directory
cd "$CRATE"
if [ "$case_name" = cargo-test ]; then
    cargo test --offline
    exit 0
fi
cargo build --offline --examples --quiet
ex="$CARGO_TARGET_DIR/debug/examples"

case "$case_name" in
writer-vs-c)
    form=$1 work=$2
    rm -rf "$work" && mkdir -p "$work"
    "$C_WRITER" "$work/c" "$form"
    "$ex/write_known" "$work/rust" "$form"
    set +e
    "$COMPARE" --preset exact "$work/c" "$work/rust" >"$work/compare.txt" 2>&1
    rc=$?
    set -e
    cat "$work/compare.txt"
    [ $rc -eq 0 ] || fail "compare --preset exact exited $rc"
    grep -q '^21 checkpoint rows: 21 passed, 0 failed, 0 could not be compared$' "$work/compare.txt" ||
        fail "compare did not pass all 21 checkpoints"
    # the same bytes: every .npy file (npy form) or the archive (npz), and tokens.npy
    if [ "$form" = npz ]; then
        cmp "$work/c/checkpoints.npz" "$work/rust/checkpoints.npz" || fail "checkpoints.npz differs"
        [ ! -e "$work/rust/checkpoints.npz.part" ] || fail "checkpoints.npz.part left behind"
    else
        n=0
        for f in "$work/c"/*.npy; do
            cmp "$f" "$work/rust/$(basename "$f")" || fail "$(basename "$f") differs"
            n=$((n + 1))
        done
        [ "$n" -eq 43 ] || fail "$n .npy files in the C dump, expected 42 tensors + tokens.npy"
        [ "$(ls "$work/rust" | wc -l)" -eq 44 ] || fail "the Rust dump has other files: $(ls "$work/rust")"
    fi
    cmp "$work/c/tokens.npy" "$work/rust/tokens.npy" || fail "tokens.npy differs"
    # the same manifest, but for the producer
    "$PY" -c '
import json, sys
a, b = (json.load(open(d + "/manifest.json")) for d in sys.argv[1:3])
assert a.pop("producer") != b.pop("producer")
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
assert not diff, "manifests differ in %s" % diff
assert a["format_version"] == (2 if sys.argv[3] == "npz" else 1) and len(a["files"]) == 42, a["format_version"]
print("manifests equal but for the producer")' "$work/c" "$work/rust" "$form"
    # the control: one value one ulp off must fail, at layer 1's ffn_out
    LLORCH_KNOWN_PERTURB=1 "$ex/write_known" "$work/perturbed" "$form"
    set +e
    "$COMPARE" --preset exact "$work/c" "$work/perturbed" >"$work/perturbed.txt" 2>&1
    rc=$?
    set -e
    [ $rc -eq 1 ] || fail "a value one ulp off: compare exited $rc, expected 1"
    grep -Eq '^=> +ffn_out +1 .* token=3 channel=7 .*FAIL' "$work/perturbed.txt" ||
        fail "the perturbed value (ffn_out, layer 1, token 3, channel 7) was not reported"
    grep -q '^first divergence: ffn_out, layer 1 ' "$work/perturbed.txt" || fail "the first divergence is not ffn_out layer 1"
    grep -q '^21 checkpoint rows: 20 passed, 1 failed' "$work/perturbed.txt" || fail "not exactly one checkpoint failed"
    echo "ok: the Rust writer's $form dump is the C writer's, byte for byte"
    ;;
reader-vs-numpy)
    form=$1 work=$2 model=$3
    rm -rf "$work" && mkdir -p "$work"
    args=(-m "$model" -p "Once upon a time" -t 1 -o "$work/dump")
    case "$form" in
    npy) args+=(--checkpoints all --format npy) ;;
    npz) args+=(-n 3 --format npz) ;;
    safetensors) args+=(-n 2 --format safetensors) ;;
    esac
    "$EXTRACTOR" "${args[@]}" >"$work/extractor.log" 2>&1 || {
        cat "$work/extractor.log"
        fail "the extractor failed"
    }
    "$ex/read_dump" "$work/dump" >"$work/rust.tsv"
    "$PY" "$CHECK" dump "$work/dump" "$work/rust.tsv" 20
    # a damaged dump is an error, not a panic or wrong values: one data byte of
    # the first tensor flipped, then a truncated manifest
    cp -r "$work/dump" "$work/bad"
    "$PY" -c '
import json, os, sys
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
e = m["files"][0]
c = m.get("container")
path = os.path.join(d, c["file"] if c else e["file"])
at = e["offset"] if c else os.path.getsize(path) - e["bytes"]
with open(path, "r+b") as f:
    f.seek(at)
    b = f.read(1)
    f.seek(at)
    f.write(bytes([b[0] ^ 0x40]))' "$work/bad"
    set +e
    "$ex/read_dump" "$work/bad" >/dev/null 2>"$work/bad.err"
    rc=$?
    set -e
    cat "$work/bad.err"
    [ $rc -eq 1 ] || fail "a flipped data byte: read_dump exited $rc, expected 1"
    grep -q 'CRC-32' "$work/bad.err" || fail "a flipped data byte was not reported as a CRC-32 mismatch"
    cp "$work/dump/manifest.json" "$work/bad/manifest.json"
    head -c 200 "$work/dump/manifest.json" >"$work/bad/manifest.json"
    set +e
    "$ex/read_dump" "$work/bad" >/dev/null 2>"$work/bad.err"
    rc=$?
    set -e
    cat "$work/bad.err"
    [ $rc -eq 1 ] || fail "a truncated manifest: read_dump exited $rc, expected 1"
    ;;
reader-numpy-npz)
    work=$1
    rm -rf "$work" && mkdir -p "$work"
    # what numpy itself writes: np.savez (zip64 local headers, unaligned data)
    "$PY" -c '
import numpy as np, sys
rng = np.random.default_rng(7)
np.savez(sys.argv[1], a=rng.standard_normal((3, 5)).astype(np.float32),
         h=rng.standard_normal(7).astype(np.float16), t=np.arange(-2, 9, dtype=np.int32),
         s=np.float32(3.25), e=np.zeros((0, 4), np.float32),
         big=rng.standard_normal((64, 33)).astype(np.float32))' "$work/numpy.npz"
    "$ex/read_dump" --npz "$work/numpy.npz" >"$work/rust.tsv"
    "$PY" "$CHECK" npz "$work/numpy.npz" "$work/rust.tsv"
    # np.savez_compressed is refused with a message
    "$PY" -c 'import numpy as np, sys; np.savez_compressed(sys.argv[1], a=np.ones(3, np.float32))' "$work/c.npz"
    set +e
    "$ex/read_dump" --npz "$work/c.npz" >/dev/null 2>"$work/c.err"
    rc=$?
    set -e
    cat "$work/c.err"
    [ $rc -eq 1 ] && grep -q 'compressed' "$work/c.err" || fail "a compressed .npz was not refused"
    ;;
residual-vs-numpy)
    # Dump::residual and llorch_ckpt_dump_residual on the same extractor dump, each against numpy
    rcase=$1 work=$2 model=$3
    RUST_RESIDUAL="$ex/residual_rows" bash "$RESIDUAL_SH" "$READ_RESIDUAL" "$EXTRACTOR" "$PY" "$RESIDUAL_CHECK" \
        "$work" "$rcase" "$model"
    ;;
*)
    fail "unknown case $case_name"
    ;;
esac

#!/usr/bin/env bash
# read_residual.sh - llorch_ckpt_dump_residual (and the Rust Dump::residual
# where RUST_RESIDUAL names its example) on real extractor dumps against
# numpy (tests/read.cmake, read_residual_check.py).
#
#   read_residual.sh TOOL EXTRACTOR PYTHON CHECK WORK CASE MODEL
#
# CASE: one (one step, npy), steps (-ub 2 -n 2, npy), npz (-ub 3 -n 2),
# safetensors (-ub 4 -n 1), f16 (the steps dump, residuals as float16),
# repeat (the steps dump with position 0 again in a later step),
# positions (--positions 2-6, -ub 3), parallel (--parallel 2 -n 1: seq 0
# and seq 1). Each also checks that rows the dump lacks are an error of
# one line naming the dump, the checkpoint, the layer and the positions.
set -euo pipefail

tool="$1" extractor="$2" py="$3" check="$4" work="$5" case_name="$6" model="$7"
tokens=1,450,1200,3000,12,7,99,2048
if [ ! -f "$model" ]; then
    echo "SKIP: model $model is absent"
    exit 77
fi
rm -rf "$work" && mkdir -p "$work"

extract() { # OUT ARGS...
    local out="$1"
    shift
    "$extractor" -m "$model" -ctk f32 -ctv f32 --checkpoints all -t 2 -o "$work/$out" "$@" >"$work/$out.log" 2>&1 ||
        { cat "$work/$out.log"; echo "FAIL: extractor"; exit 1; }
}

rows() { # DUMP [SEQ [START N]]: the C reader's rows (and the Rust one's), checked against numpy
    local dump="$1"
    shift
    rm -rf "$work/rows" && mkdir -p "$work/rows"
    "$tool" rows "$dump" "$work/rows" "$@"
    "$py" "$check" rows "$dump" "$work/rows" "$@"
    if [ -n "${RUST_RESIDUAL:-}" ]; then
        rm -rf "$work/rows" && mkdir -p "$work/rows"
        "$RUST_RESIDUAL" "$dump" "$work/rows" "$@"
        "$py" "$check" rows "$dump" "$work/rows" "$@"
    fi
}

case "$case_name" in
one)
    extract d --tokens "$tokens" --format npy
    rows "$work/d"
    "$tool" expect-error "$work/d" 1 layer_input -1 6 4 "$work/d: no l_out of layer 0 (the input of layer 1) at positions 8-9 (2 of the 4 positions 6-9 asked are missing); it holds positions 0-7"
    ;;
steps)
    extract d --tokens "$tokens" -ub 2 -n 2 --format npy
    rows "$work/d"
    "$tool" expect-error "$work/d" 0 ffn_input -1 9 2 "no ffn_inp of layer 0 (the FFN's input) at position 10"
    ;;
npz)
    extract d --tokens "$tokens" -ub 3 -n 2
    rows "$work/d"
    ;;
safetensors)
    extract d --tokens "$tokens" -ub 4 -n 1 --format safetensors
    rows "$work/d"
    ;;
f16)
    extract d --tokens "$tokens" -ub 2 -n 2 --format npy
    "$py" "$check" to-f16 "$work/d" "$work/h"
    grep -q '"float16"' "$work/h/manifest.json" || { echo "FAIL: no float16 file"; exit 1; }
    rows "$work/h"
    ;;
repeat)
    extract d --tokens "$tokens" -ub 2 --format npy
    "$py" "$check" add-repeat "$work/d" "$work/r"
    rows "$work/r"
    ;;
positions)
    extract d --tokens "$tokens" -ub 3 --positions 2-6 --format npy
    rows "$work/d" -1 2 5
    "$tool" expect-error "$work/d" 2 layer_input -1 0 4 "no l_out of layer 1 (the input of layer 2) at positions 0-1 (2 of the 4 positions 0-3 asked are missing); it holds positions 2-6"
    ;;
parallel)
    extract d --tokens "$tokens;1,7,99,2048,31999" --parallel 2 -n 1 -ub 4
    rows "$work/d" 0
    rows "$work/d" 1
    "$tool" expect-error "$work/d" 0 layer_input -1 0 1 "holds 2 sequences (format version 3); say which sequence's rows (seq)"
    "$tool" expect-error "$work/d" 1 layer_input 1 5 3 "no l_out of layer 0 of sequence 1 (the input of layer 1) at positions 6-7"
    "$tool" expect-error "$work/d" 1 layer_input 2 0 1 "has no sequence 2"
    ;;
*)
    echo "FAIL: unknown case $case_name"
    exit 1
    ;;
esac
echo "ok: $case_name"

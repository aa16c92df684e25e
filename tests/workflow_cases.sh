#!/usr/bin/env bash
# The engine author's workflow, end to end: extract with llama.cpp, emit the
# same checkpoints from a second, independent engine (llorch-ref-engine), and
# compare. The engine computes every layer from the model's weights in plain
# C, so agreement checks the extractor's files against an independent
# computation, and the injected faults check that compare names the first
# divergence exactly.
#
#   workflow_cases.sh CASE MODEL WORKDIR [PRESET]
# PRESET is compare's tolerance preset for the model's weights: f32 (default)
# or f16 (f16 weights: llama.cpp rounds activations to f16 before matmuls).
# Environment: EXTRACTOR, ENGINE, COMPARE (the programs), PY (python3 with numpy).
set -uo pipefail
case_name="$1"; model="$2"; work="$3"; preset="${4:-f32}"
if [ ! -f "$model" ]; then
  echo "skip: $model is not present on this machine"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

arch="$("$PY" - "$model" <<'PY'
import sys
# general.architecture is the first string value in every GGUF we read here
data = open(sys.argv[1], "rb").read(4096)
print("gpt2" if b"gpt2" in data else "llama")
PY
)"
engine_args=()
[ "$arch" = gpt2 ] && engine_args+=(--gelu f16-table)   # llama.cpp's CPU GELU reads an f16 table

# extract KV [EXTRACTOR ARGS...]: llama.cpp's dump of every checkpoint into ref/
extract() {
  local kv="$1"; shift
  "$EXTRACTOR" -m "$model" -ctk "$kv" -ctv "$kv" --checkpoints all -o ref "$@" 2>extract.log \
    || { cat extract.log; fail "extractor"; }
}

# emit KV DIR [ENGINE ARGS...]: the engine's dump of the same tokens
emit() {
  local kv="$1" dir="$2"; shift 2
  "$ENGINE" -m "$model" --tokens-file ref/tokens.npy --kv-type "$kv" -o "$dir" "${engine_args[@]}" "$@" \
    2>engine.log || { cat engine.log; fail "engine"; }
}

# first_divergence JSON -> "checkpoint layer origin"
first_divergence() {
  "$PY" - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r.get("first_divergence") or {}
print(f.get("checkpoint"), f.get("layer"), f.get("origin"))
PY
}

case "$case_name" in
  reference)     # every checkpoint of every layer agrees with the engine: f32 cache, then f16 cache
    extract f32 -p "Once upon a time, in a small town"
    emit f32 eng
    "$COMPARE" ref eng --preset "$preset" > compare.txt || { cat compare.txt; fail "llama.cpp and the engine differ"; }
    tail -n 2 compare.txt
    rm -rf ref eng
    extract f16 -p "Once upon a time, in a small town"
    emit f16 eng16
    "$COMPARE" ref eng16 --preset f16 > compare16.txt || { cat compare16.txt; fail "f16 cache: differ"; }
    tail -n 1 compare16.txt
    ;;
  quantized)     # Q8_0/Q4_K: llama.cpp quantizes activations to 8 bits before each matmul, the
                 # engine multiplies in f32 with the dequantized weights: Q8 rounding tolerance
    extract f32 -p "Once upon a time, in a small town"
    emit f32 eng
    "$COMPARE" ref eng --preset f16 --atol 0.05 --rtol 0.05 --nmse 2e-3 --within 0.999 > compare.txt \
      || { cat compare.txt; fail "llama.cpp and the engine differ beyond Q8 rounding"; }
    tail -n 2 compare.txt
    ;;
  faults)        # each injected fault is named exactly where it enters; everything before passes
    extract f32 -p "The quick brown fox jumps over the lazy dog"
    if [ "$arch" = gpt2 ]; then
      faults=("eps:1 attn_norm 1" "swap-heads:1 Qcur 1" "no-attn-bias:1 attn_out_proj 1")
    else
      faults=("eps:1 attn_norm 1" "swap-heads:1 Qcur_pre_rope 1" "rope-offset:1 Qcur 1")
    fi
    for spec in "${faults[@]}"; do
      read -r fault want_ckpt want_layer <<<"$spec"
      dir="eng-${fault/:/-}"
      emit f32 "$dir" --fault "$fault"
      "$COMPARE" ref "$dir" --json > "$dir.json"; rc=$?
      [ "$rc" = 1 ] || fail "$fault: compare exited $rc, expected 1"
      got="$(first_divergence "$dir.json")"
      [ "$got" = "$want_ckpt $want_layer introduced" ] || fail "$fault: first divergence '$got', expected '$want_ckpt $want_layer introduced'"
      "$PY" - "$dir.json" "$want_ckpt" "$want_layer" <<'PY' || fail "$fault: a row before the fault failed"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
first = next(i for i, r in enumerate(rows) if r["checkpoint"] == sys.argv[2] and r["layer"] == int(sys.argv[3]))
bad = [(r["checkpoint"], r["layer"]) for r in rows[:first] if r["status"] != "PASS"]
print(f"ok: {first} rows before it pass")
sys.exit(1 if bad or first == 0 else 0)
PY
      echo "ok: --fault $fault -> first divergence: $got"
    done
    ;;
  ubatch)        # -ub 16 over a 40-token prompt plus 4 generated tokens = one batch of the same 44 tokens
    prompt="$(printf 'word%d ' $(seq 1 60))"
    "$EXTRACTOR" -m "$model" -p "$prompt" -ctk f32 -ctv f32 --checkpoints all -o probe 2>/dev/null || fail probe
    ids="$("$PY" -c "import json; print(','.join(map(str, json.load(open('probe/manifest.json'))['tokens'][:40])))")"
    "$EXTRACTOR" -m "$model" --tokens "$ids" -n 4 -ub 16 -ctk f32 -ctv f32 --checkpoints all -o stepped \
      2>/dev/null || fail stepped
    all="$("$PY" -c "import json; print(','.join(map(str, json.load(open('stepped/manifest.json'))['tokens'])))")"
    [ "$(echo "$all" | tr ',' '\n' | wc -l)" = 44 ] || fail "expected 44 tokens, got $all"
    "$EXTRACTOR" -m "$model" --tokens "$all" -ctk f32 -ctv f32 --checkpoints all -o single 2>/dev/null || fail single
    steps="$("$PY" -c "import json; print(json.load(open('stepped/manifest.json'))['settings']['steps'])")"
    [ "$steps" = 7 ] || fail "-ub 16 over 40 tokens + 4 generated should be 7 steps, got $steps"
    "$COMPARE" single stepped > compare.txt || { cat compare.txt; fail "stepped and single dumps differ"; }
    echo "ok: $steps steps (-ub 16, 40 + 4 tokens) compare clean against one batch of 44: $(tail -n 2 compare.txt | head -n 1)"
    ;;
  *) fail "unknown case $case_name" ;;
esac

#!/usr/bin/env bash
# engine_sequences.sh - several sequences decoded together in one batch
# (tests/engine_sequences.cmake): llorch-ref-engine --tokens "a;b;c;d"
# against llorch-checkpoint-extractor --parallel 4 on the same token ids,
# and against the engine's own runs of each sequence alone.
#
#   engine_sequences.sh ENGINE EXTRACTOR PYTHON CHECKER WORKDIR MODE ARGS...
#
#   batched    MODEL UBATCH [ENGINE ARGS]  every per-sequence file of the engine matches llama.cpp's,
#                                          and is bit for bit the engine's run of its sequence alone
#   mask       MODEL UBATCH [ENGINE ARGS]  --fault mask:1: the first file that differs from llama.cpp's
#                                          is kq_soft_max of layer 1; layer 0 matches
#   bad-input  MODEL                       bad --tokens lists and mask on one sequence exit 2, one line
#
# UBATCH is -ub for both programs (0: their defaults, the whole prompt in one
# step). A model that is absent skips the test (exit 77).
set -euo pipefail

engine="$1" extractor="$2" python="$3" checker="$4" work="$5" mode="$6"
compare="${COMPARE:?COMPARE names llorch-checkpoint-compare}"
shift 6
rm -rf "$work"
mkdir -p "$work"

# Four prompts of different lengths (5, 9, 2 and 13 tokens), ids valid in
# every tiny model (vocab 32000 or 50257): with -ub 8 the steps cut across
# sequences (8 = 5 of seq 0 + 3 of seq 1, ...).
lists=("1,450,1200,3000,12" "1,7,99,2048,31999,5,450,1200,3000" "1,6324"
       "1,319,1472,931,8020,297,263,15400,29891,2215,2215,3448,727")
joined=$(IFS=';'; echo "${lists[*]}")
n_predict=3

require_model() {
  if [ ! -f "$1" ]; then
    echo "SKIP: model $1 is absent on this machine"
    exit 77
  fi
}

ub_args=()
set_ubatch() {  # UBATCH: -ub for both programs, none for 0
  ub_args=()
  if [ "$1" -gt 0 ]; then
    ub_args=(-ub "$1")
  fi
}

# extract MODEL: llama.cpp's dump of every checkpoint into ref/
extract() {
  "$extractor" -m "$1" --tokens "$joined" --parallel "${#lists[@]}" -n "$n_predict" "${ub_args[@]}" \
    -ctk f32 -ctv f32 --checkpoints all -t 2 -o "$work/ref" 2>"$work/extract.log" ||
    { cat "$work/extract.log"; echo "FAIL: extractor"; exit 1; }
}

# emit OUT TOKENS MODEL [ENGINE ARGS]: the engine's dump, with -ub as set
emit() {
  local out="$1" tokens="$2" model="$3"
  shift 3
  "$engine" -m "$model" --tokens "$tokens" -n "$n_predict" "${ub_args[@]}" -o "$work/$out" "$@" \
    2>"$work/engine.log" || { cat "$work/engine.log"; echo "FAIL: engine ($out)"; exit 1; }
}

batched() {
  local model="$1" ub="$2"
  shift 2
  require_model "$model"
  set_ubatch "$ub"
  extract "$model"
  emit batched "$joined" "$model" "$@"
  "$python" "$checker" match "$work/ref" "$work/batched"
  "$compare" "$work/ref" "$work/batched" -q ||
    { "$compare" "$work/ref" "$work/batched"; echo "FAIL: compare, every sequence"; exit 1; }
  echo "ok: llorch-checkpoint-compare: every sequence of the engine's batch matches llama.cpp's"
  # each sequence alone, its prompt in one step
  set_ubatch 0
  local alone=()
  for i in "${!lists[@]}"; do
    emit "alone$i" "${lists[$i]}" "$model" "$@"
    alone+=("$work/alone$i")
  done
  "$python" "$checker" singles "$work/batched" "${alone[@]}"
}

mask() {
  local model="$1" ub="$2"
  shift 2
  require_model "$model"
  set_ubatch "$ub"
  extract "$model"
  emit faulty "$joined" "$model" --fault mask:1 "$@"
  grep -Eq '"fault":[[:space:]]*"mask:1"' "$work/faulty/manifest.json" ||
    { echo "FAIL: the manifest's settings do not record the fault"; exit 1; }
  "$python" "$checker" first-divergence "$work/ref" "$work/faulty" kq_soft_max 1
  # llorch-checkpoint-compare names it too: every sequence, rows by (sequence,
  # position); the prompts only (-n 0), as the fault changes what is generated
  n_predict=0
  rm -rf "$work/ref"
  extract "$model"
  emit faulty0 "$joined" "$model" --fault mask:1 "$@"
  local rc=0
  "$compare" "$work/ref" "$work/faulty0" --json >"$work/compare.json" 2>"$work/compare.log" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$work/compare.log"; echo "FAIL: compare exited $rc, expected 1 (diverged)"; exit 1; }
  "$python" - "$work/compare.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
first = r["first_divergence"]
assert (first["checkpoint"], first["layer"]) == ("kq_soft_max", 1), first
print(f"ok: llorch-checkpoint-compare names kq_soft_max layer 1 as the first divergence ({first})")
PY
}

# ---- bad inputs ------------------------------------------------------------

failures=0

# refused TEXT ENGINE_ARGS...: the engine exits 2 with one line on stderr that
# holds TEXT, and writes no dump.
refused() {
  local text="$1" rc=0
  shift
  rm -rf "$work/refused"
  "$engine" -o "$work/refused" "$@" >/dev/null 2>"$work/stderr" || rc=$?
  if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/stderr")" -eq 1 ] && grep -qF -- "$text" "$work/stderr" &&
     [ ! -e "$work/refused/manifest.json" ]; then
    echo "ok: $(cat "$work/stderr")"
    return
  fi
  echo "FAIL: exit $rc for $*; expected 2 and one line with '$text':"
  cat "$work/stderr"
  failures=$((failures + 1))
}

bad_input() {
  local model="$1" many
  require_model "$model"
  many=$(printf '1;%.0s' $(seq 256))1   # 257 lists
  refused "list 2 of 3 (split by ';') is empty" -m "$model" --tokens "1,2;;3"
  refused "list 2 of 2 (split by ';') is empty" -m "$model" --tokens "1,2;"
  refused "list 1 of 2 (split by ';') is empty" -m "$model" --tokens ";1,2"
  refused "holds 257 lists split by ';'; give at most 256" -m "$model" --tokens "$many"
  refused "'x' is not a token id" -m "$model" --tokens "1,2;3,x"
  refused "--tokens list 2: token 99999999 (at index 1)" -m "$model" --tokens "1,2;3,99999999"
  refused "--fault mask:1 needs several sequences" -m "$model" --tokens 1,2,3 --fault mask:1
  refused "the model has layers 0-" -m "$model" --tokens "1;2" --fault mask:99
  [ "$failures" -eq 0 ] || { echo "$failures bad-input cases failed"; exit 1; }
}

case "$mode" in
  batched)   batched "$@" ;;
  mask)      mask "$@" ;;
  bad-input) bad_input "$@" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

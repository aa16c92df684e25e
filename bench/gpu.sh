#!/usr/bin/env bash
# The GPU check, in one run on a machine with an NVIDIA GPU and the CUDA
# toolkit (about 10 minutes on 16 cores, the build included):
#
#   bash bench/gpu.sh [BUILD_DIR] [ROUNDS]
#
# 1. build   the project with LLORCH_GPU=cuda (the pinned llama.cpp with its
#            CUDA backend, for this machine's GPU), and llama.cpp's
#            test-llama-archs;
# 2. bits    on the GPU (-ngl 99): the default capture against --split-each,
#            bit for bit (compare --preset exact), for the test models and a
#            dozen architecture variants (dense, MoE, MLA, hybrid, SSM); and
#            which path each run took (llama_cpp.capture in the manifest);
# 3. cross   the GPU dump against the CPU dump of the same model and tokens
#            with --preset backend, and with the CPU dump as --noise floor:
#            the plain-C engine passes, and its --fault eps:1 is named;
# 4. ratios  decode time (prompt and generation) on a TinyLlama-shaped Q8_0
#            model (22 layers, n_embd 2048, 32 heads, 4 KV heads, n_ff 5632),
#            128-token prompt plus 32 generated tokens, -ngl 99 -fa off:
#            nothing requested, six checkpoints to memory (after the graph),
#            the same at graph splits (--output-mb 0) and with --split-each,
#            and six to disk; the median over ROUNDS (default 3) of each
#            round's ratio to "none", configurations in rotating order.
#
# 5. hf     bench/transformers_vs_llama_cpp.py, where transformers is installed.
#
# Environment: LLORCH_CUDA_ARCHS (default: this machine's GPUs), MODELS
# (default ../shared/models, where the small test models are, if present),
# LLORCH_CARRY (a folder bench/gpu-carry.sh made: the pinned source and the
# build's libraries, for a machine that reaches no registry).
#
#   bash bench/gpu.sh --dry-run [BUILD_DIR]
# checks, on a machine without a GPU, that the carry folder is all the run
# needs: the same steps on the CPU (-ngl 0, 1 round), a fresh llama.cpp
# cache, and npm, apt-get, pip, curl and wget made to fail.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry=0
if [ "${1:-}" = --dry-run ]; then
  dry=1
  shift
fi
build="${1:-$repo/build-gpu}"
rounds="${2:-3}"
ngl=99
gpu=cuda
if [ -n "${LLORCH_CARRY:-}" ]; then
  case "$LLORCH_CARRY" in /*) carry="$LLORCH_CARRY" ;; *) carry="$repo/$LLORCH_CARRY" ;; esac
  [ -f "$carry/env.sh" ] || { echo "error: LLORCH_CARRY=$LLORCH_CARRY has no env.sh; make it with bash bench/gpu-carry.sh" >&2; exit 2; }
  # shellcheck disable=SC1091
  . "$carry/env.sh"
fi
if [ "$dry" = 1 ]; then
  [ -n "${LLORCH_CARRY:-}" ] || { echo "error: --dry-run checks a carry folder: set LLORCH_CARRY (bash bench/gpu-carry.sh makes one)" >&2; exit 2; }
  ngl=0 gpu="" rounds=1
  offline="$build/offline-bin"
  mkdir -p "$offline"
  for tool in npm apt-get apt pip pip3 curl wget; do
    printf '#!/bin/sh\necho "%s: no network in this dry run" >&2\nexit 1\n' "$tool" >"$offline/$tool"
    chmod +x "$offline/$tool"
  done
  export PATH="$offline:$PATH" NPM="$offline/npm" LLORCH_CACHE_DIR="$build/fresh-cache"
  echo "dry run: CPU only, a fresh cache in $LLORCH_CACHE_DIR, the network's tools fail"
fi
models="${MODELS:-$repo/../shared/models}"
scratch="$build/gpu-check"
x="$build/programs/llorch-checkpoint-extractor"
cmp="$build/programs/llorch-checkpoint-compare"
engine="$build/engine/llorch-ref-engine"
say() { printf '\n== %s\n' "$*"; }

say "build (LLORCH_GPU=${gpu:-none})"
start=$(date +%s)
mkdir -p "$build"
LLORCH_GPU=$gpu cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLORCH_GPU="$gpu" \
  -DLLORCH_CUDA_ARCHS="${LLORCH_CUDA_ARCHS:-}" >"$build.configure.log" 2>&1 \
  || { tail -n 20 "$build.configure.log"; exit 1; }
cmake --build "$build" --parallel "$(nproc)" >"$build.build.log" 2>&1 || { tail -n 20 "$build.build.log"; exit 1; }
LLORCH_ARCHS_TOOL=1 bash "$repo/scripts/llama-cpp.sh" "$build/archs-tool.env" 2>/dev/null
archs_tool="$(sed -n 's/^LLAMA_ARCHS_TOOL=//p' "$build/archs-tool.env")"
echo "built in $(( $(date +%s) - start )) s: $("$x" --version 2>&1 | head -n 1)"
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader || true

rm -rf "$scratch" && mkdir -p "$scratch/archs"
"$archs_tool" -o "$scratch/archs" -s 42 >"$scratch/archs.log" 2>&1 || { tail -n 5 "$scratch/archs.log"; exit 1; }
"$build/programs/llorch-make-tiny-model" --arch llama --layers 4 --embd 128 --heads 8 --heads-kv 4 --ff 256 \
  --seed 3 -o "$scratch/tiny-llama.gguf" >/dev/null

# --- 2. bits ------------------------------------------------------------------
say "bits: default capture against --split-each on the GPU (compare --preset exact)"
capture_path() { sed -n 's/.*"capture":[[:space:]]*"\([a-z+]*\)".*/\1/p' "$1/manifest.json" | head -n 1; }
bits() {  # name model
  local name="$1" m="$2" d="$scratch/bits/$1" rc=0
  local args=(-m "$m" --tokens 1,2,3,4,5,6,7,8 -n 2 -ngl "$ngl" -ctk f32 -ctv f32 --checkpoints all)
  "$x" "${args[@]}" -o "$d/default" >"$d.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] && { "$x" "${args[@]}" --split-each -o "$d/split" >>"$d.log" 2>&1 || rc=$?; }
  if [ "$rc" -ne 0 ]; then
    printf '  %-22s FAIL (extractor exit %d, %s)\n' "$name" "$rc" "$d.log"; failed=$((failed + 1)); return
  fi
  local line
  line="$("$cmp" "$d/split" "$d/default" --preset exact | grep -E '^[0-9]+ checkpoints' || true)"
  if "$cmp" "$d/split" "$d/default" --preset exact >/dev/null 2>&1; then
    printf '  %-22s identical   %-44s path %s\n' "$name" "$line" "$(capture_path "$d/default")"
  else
    printf '  %-22s DIFFERENT   %-44s path %s\n' "$name" "$line" "$(capture_path "$d/default")"; failed=$((failed + 1))
  fi
}
failed=0
mkdir -p "$scratch/bits"
for f in stories260K synthetic-random-gpt2 synthetic-random-qwen2; do
  [ -f "$models/$f.gguf" ] && bits "$f" "$models/$f.gguf"
done
bits tiny-llama "$scratch/tiny-llama.gguf"
for v in llama-dense qwen3-dense gemma3-dense phi3-dense qwen3moe-moe gpt-oss-moe deepseek2-moe glm4moe-moe \
         mamba-dense mamba2-dense jamba-dense falcon-h1-dense granitehybrid-dense qwen3next-moe grok-moe; do
  if [ -f "$scratch/archs/$v.gguf" ]; then bits "$v" "$scratch/archs/$v.gguf"; else printf '  %-22s (not written by test-llama-archs)\n' "$v"; fi
done
echo "bits: $failed failed"

# --- 3. cross -----------------------------------------------------------------
say "cross: the GPU against the CPU (stories260K if present, else the tiny llama)"
m="$models/stories260K.gguf"
[ -f "$m" ] || m="$scratch/tiny-llama.gguf"
c="$scratch/cross"
mkdir -p "$c"
common=(-m "$m" --tokens 1,400,2,300,45,67,89,12 -ctk f32 -ctv f32 --checkpoints all)
"$x" "${common[@]}" -ngl "$ngl" -o "$c/gpu" >/dev/null 2>&1
"$x" "${common[@]}" -ngl 0 -o "$c/cpu" >/dev/null 2>&1
"$engine" -m "$m" --tokens-file "$c/cpu/tokens.npy" -o "$c/engine" >/dev/null
"$engine" -m "$m" --tokens-file "$c/cpu/tokens.npy" -o "$c/engine-fault" --fault eps:1 >/dev/null
summary() { grep -E '^[0-9]+ checkpoints|^first divergence|^all ' || true; }
# (compare exits 1 on a divergence: that is a result here, not a failure of the script)
for preset in f32 backend; do
  echo "  gpu vs cpu, --preset $preset:"; { "$cmp" "$c/gpu" "$c/cpu" --preset "$preset" || true; } | summary | sed 's/^/    /'
done
echo "  engine vs gpu, --noise cpu:"; { "$cmp" "$c/gpu" "$c/engine" --noise "$c/cpu" || true; } | summary | sed 's/^/    /'
echo "  engine --fault eps:1 vs gpu, --noise cpu:"
{ "$cmp" "$c/gpu" "$c/engine-fault" --noise "$c/cpu" || true; } | summary | sed 's/^/    /'

# --- 4. ratios ----------------------------------------------------------------
say "ratios: TinyLlama-shaped Q8_0, 128-token prompt + 32 generated, -ngl $ngl -fa off, $rounds rounds"
tl="$scratch/tinyllama-shape-q8_0.gguf"
shape=(--layers 22 --embd 2048 --heads 32 --heads-kv 4 --ff 5632)
[ "$dry" = 1 ] && shape=(--layers 2 --embd 256 --heads 8 --heads-kv 4 --ff 704) # the steps, not the timings
"$build/programs/llorch-make-tiny-model" --arch llama "${shape[@]}" --ctx 512 --type q8_0 --seed 11 -o "$tl" >/dev/null
ids="$(seq 1 128 | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 211) % 31000 + 1}')"
confs=(none memory splits split-each disk)
results="$scratch/ratios.tsv"
: >"$results"
for r in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((${#confs[@]} - 1))); do
    conf="${confs[$(( (k + r) % ${#confs[@]} ))]}"
    args=(-v -m "$tl" --tokens "$ids" -n 32 -ngl "$ngl" -fa off) # -v: the decode and capture: lines
    [ "$dry" = 1 ] && args+=(--no-repack) # Q8_0 on this kind of CPU: see ../shared/models/README.md
    case "$conf" in
      none)       args+=(--checkpoints none --capture-to memory) ;;
      memory)     args+=(--capture-to memory) ;;
      splits)     args+=(--capture-to memory --output-mb 0) ;;
      split-each) args+=(--capture-to memory --split-each) ;;
      disk)       args+=(-o "$scratch/ratio-dump-$r") ;;
    esac
    out="$("$x" "${args[@]}" 2>&1)"
    decode="$(printf '%s\n' "$out" | sed -n 's/^ *decode \([0-9.]*\) s.*/\1/p' | head -n 1)"
    path="$(printf '%s\n' "$out" | sed -n 's/^ *capture: \([0-9]*\) steps read after the graph.*, \([0-9]*\) at graph splits; \([0-9]*\) splits added/outputs=\1 splits=\2 added=\3/p')"
    printf '%s\t%s\t%s\t%s\n' "$r" "$conf" "$decode" "$path" >>"$results"
  done
done
python3 - "$results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(dict)
paths = {}
for line in open(sys.argv[1]):
    r, conf, decode, path = (line.rstrip("\n").split("\t") + [""])[:4]
    rows[r][conf] = float(decode)
    paths[conf] = path
print(f"  {'configuration':<14} {'decode (median)':>16} {'ratio to none':>14}   path")
for conf in ["none", "memory", "splits", "split-each", "disk"]:
    d = [rows[r][conf] for r in rows if conf in rows[r]]
    q = [rows[r][conf] / rows[r]["none"] for r in rows if conf in rows[r] and "none" in rows[r]]
    print(f"  {conf:<14} {statistics.median(d):>14.3f} s {statistics.median(q):>14.3f}   {paths.get(conf, '')}")
PY

# --- 5. hf ------------------------------------------------------------------------
say "hf: a transformers Llama and Qwen2 against llama.cpp (bench/transformers_vs_llama_cpp.py)"
if python3 -c 'import transformers, torch' 2>/dev/null; then
  LLORCH_GGUF_PY=1 bash "$repo/scripts/llama-cpp.sh" "$build/gguf.env" >/dev/null 2>&1
  gguf_py="$(sed -n 's/^LLAMA_GGUF_PY=//p' "$build/gguf.env")"
  convert="$(sed -n 's/^LLAMA_CONVERT_HF=//p' "$build/gguf.env")"
  for arch in llama qwen2; do
    LLAMA_CONVERT_HF="$convert" PYTHONPATH="$repo/python:$gguf_py" python3 "$repo/bench/transformers_vs_llama_cpp.py" \
      --arch "$arch" --work "$scratch/hf-$arch" --extractor "$x" --compare "$cmp" 2>&1 | tail -n 5 | sed 's/^/  /' || true
  done
else
  echo "  (no transformers here: skipped)"
fi

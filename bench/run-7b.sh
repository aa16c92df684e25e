#!/usr/bin/env bash
# The scale the users run: a Llama-2-7B-shaped Q8_0 model (32 layers,
# n_embd 4096, 32 heads, n_ff 11008, vocab 32000), about 7 GB, made by the
# maker into a scratch folder (never committed, not part of the tests).
#
#   bash bench/run-7b.sh [BUILD_DIR] [SCRATCH_DIR]
#
# Runs, each timed with /usr/bin/time -v (wall time, peak RSS):
#   hello-none     "Hello" ([1, 15043]), nothing captured (no callback)
#   hello-six      "Hello", all six checkpoints of all 32 layers
#   p512-none      a 512-token prompt, nothing captured
#   p512-scores    the same prompt with the scores (kq_soft_max) of all layers
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
scratch="${2:-$repo/build/bench-7b}"
mkdir -p "$scratch"
model="$scratch/llama-7b-shape-q8_0.gguf"
x="$build/programs/llorch-checkpoint-extractor"
if [ ! -f "$model" ]; then
  "$build/programs/llorch-make-tiny-model" --arch llama --layers 32 --embd 4096 --heads 32 --ff 11008 \
    --ctx 4096 --type q8_0 --seed 7 -o "$model"
fi
# 512 token ids of the llama-spm vocabulary, BOS first
ids="1$(seq 2 512 | awk '{printf ",%d", 1000 + ($1 * 37) % 30000}')"

run() {  # name extractor-args...
  local name="$1"; shift
  rm -rf "$scratch/$name"
  /usr/bin/time -v "$x" -m "$model" -c 1024 -fa off -o "$scratch/$name" "$@" 2>"$scratch/$name.log" >/dev/null
  local wall rss
  wall="$(grep 'Elapsed (wall clock)' "$scratch/$name.log" | awk '{print $NF}')"
  rss="$(grep 'Maximum resident set size' "$scratch/$name.log" | awk '{print $NF}')"
  local bytes; bytes="$(du -sb "$scratch/$name" | cut -f1)"
  printf "%-12s wall %-9s peak RSS %6.2f GB  dump %8.1f MB\n" "$name" "$wall" "$(echo "$rss / 1048576" | bc -l)" \
    "$(echo "$bytes / 1000000" | bc -l)"
  grep -E "decode .* s, of which" "$scratch/$name.log" || true
}

echo "model: $model ($(du -b "$model" | cut -f1) bytes); $(nproc) cores"
run warm-up     --tokens 1,15043 --checkpoints none >/dev/null   # reads the model into the page cache
run hello-none  --tokens 1,15043 --checkpoints none
run hello-six   --tokens 1,15043
run p512-none   --tokens "$ids" --checkpoints none
run p512-scores --tokens "$ids" --checkpoints 4
rm -rf "$scratch"/warm-up "$scratch"/hello-* "$scratch"/p512-*   # the dumps; the model stays for the next run

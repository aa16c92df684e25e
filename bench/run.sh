#!/usr/bin/env bash
# Capture cost on a GPT-2-small-shaped F32 model (12 layers, n_embd 768,
# 12 heads, n_ff 3072), 128-token prompt, all six checkpoints of all layers,
# at 1 and 2 threads. Results go to BENCHMARKS.md by hand.
#
#   bash bench/run.sh [BUILD_DIR] [REPS]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
reps="${2:-9}"   # more reps write more: past ~20 the kernel starts writing back during the runs
scratch="$build/bench"
mkdir -p "$scratch"
model="$scratch/gpt2-small-f32.gguf"
if [ ! -f "$model" ]; then
  "$build/programs/llorch-make-tiny-model" --arch gpt2 --layers 12 --embd 768 --heads 12 --ff 3072 \
    --ctx 1024 --type f32 --seed 1 -o "$model"
fi
# A new folder, and nothing deleted before the runs: ext4 creates files
# slowly for minutes after many were deleted, which would time the last
# benchmark's clean-up. Delete old dump folders long before measuring.
dumps="$scratch/dumps-$(date +%s)"
mkdir -p "$dumps"
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$build/bench/bench_capture" "$model" "$dumps" --tokens 128 --reps "$reps" --threads 1,2
echo "dumps left in $dumps (about $(du -sh "$dumps" | cut -f1)); remove them when done"

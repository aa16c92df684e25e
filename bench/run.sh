#!/usr/bin/env bash
# What capture costs, measured as a user meets it: whole
# llorch-checkpoint-extractor runs on a GPT-2-small-shaped F32 model (12
# layers, n_embd 768, 12 heads, n_ff 3072), all six checkpoints of every
# layer, against the same run with --checkpoints none (no callback).
#
#   bash bench/run.sh [BUILD_DIR] [ROUNDS] [RUNS]
#
# Scenarios:
#   prompt-t1   128-token prompt, 1 thread
#   prompt-t2   128-token prompt, 2 threads
#   decode-t2   8-token prompt + 32 generated tokens (33 steps), 2 threads
# Configurations: none, memory (--capture-to memory), disk (the default
# form of that run), disk in the other form (npy or npz), and again (the
# same command as none, run again: its ratio is the harness's own noise,
# what a capture that cost nothing would measure). On the CPU
# the default reads at graph splits. BENCH_EXTRA adds configurations:
# nosync (disk with --no-sync: what fsync costs), marked (memory, the
# checkpoints marked graph outputs and read after the graph, --output-mb
# 512: the path a GPU takes by default), splits (memory, --output-mb 0: graph
# splits whatever the device, as with a llama.cpp without the patch; the
# same path as the default on the CPU).
#
# Each round runs every configuration of a scenario once, in an order that
# rotates from round to round; a ratio is the median over rounds of the
# per-round ratio to "none", for the decode time the extractor prints (-v) and
# for the process's wall time; after the runs, the decode ratios pooled over
# all runs' rounds, with a 95% bootstrap interval of their median. The CPU seconds (user, system) the process
# used are printed as medians: what the writer thread and the kernel cost. RUNS repeats the whole set back to back, with
# no clean-up in between: each run leaves its dumps where they are, as a
# user running the extractor again and again does.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
rounds="${2:-7}"
runs="${3:-3}"
x="$build/programs/llorch-checkpoint-extractor"
scratch="$build/bench"
mkdir -p "$scratch"
model="$scratch/gpt2-small-f32.gguf"
if [ ! -f "$model" ]; then
  "$build/programs/llorch-make-tiny-model" --arch gpt2 --layers 12 --embd 768 --heads 12 --ff 3072 \
    --ctx 1024 --type f32 --seed 1 -o "$model"
fi
ids128="$(seq 1 128 | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 7919) % 50000 + 1}')"
ids8="$(seq 1 8 | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 7919) % 50000 + 1}')"
dumps="$scratch/dumps-$(date +%s)"
mkdir -p "$dumps"
results="$dumps/results.tsv"
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u)"
echo "model: $model; $rounds rounds; $runs runs back to back"

one() {  # run scenario config round -> appends "run scenario config round decode wall"
  local run="$1" scen="$2" conf="$3" round="$4" args=() out
  case "$scen" in
    prompt-t1) args=(--tokens "$ids128" -t 1) ;;
    prompt-t2) args=(--tokens "$ids128" -t 2) ;;
    decode-t2) args=(--tokens "$ids8" -n 32 -t 2) ;;
  esac
  out="$dumps/r$run-$scen-$conf-$round"
  case "$conf" in
    none)   args+=(--checkpoints none --capture-to memory) ;;
    again)  args+=(--checkpoints none --capture-to memory) ;;
    memory) args+=(--capture-to memory) ;;
    disk)   args+=(-o "$out") ;;
    npy)    args+=(-o "$out" --format npy) ;;
    npz)    args+=(-o "$out" --format npz) ;;
    nosync) args+=(-o "$out" --no-sync) ;;
    splits) args+=(--capture-to memory --output-mb 0) ;;
    marked) args+=(--capture-to memory --output-mb 512) ;;
  esac
  local log decode times
  log="$(/usr/bin/time -f 'TIME %e %U %S' "$x" -v -m "$model" -fa off "${args[@]}" 2>&1 >/dev/null)" \
    || { echo "$log" >&2; exit 1; }
  decode="$(echo "$log" | sed -n 's/^ *decode \([0-9.]*\) s.*/\1/p')"
  times="$(echo "$log" | sed -n 's/^TIME //p' | tr ' ' '\t')"     # wall, user CPU, system CPU
  echo -e "$run\t$scen\t$conf\t$round\t$decode\t$times" >> "$results"
}

"$x" -m "$model" --tokens 1,2 --checkpoints none --capture-to memory >/dev/null 2>&1   # page cache
for run in $(seq 1 "$runs"); do
  for scen in prompt-t1 prompt-t2 decode-t2; do
    confs=(none memory disk "$( [ "$scen" = decode-t2 ] && echo npy || echo npz )" again ${BENCH_EXTRA:-})
    for round in $(seq 1 "$rounds"); do
      n=${#confs[@]}
      for k in $(seq 0 $((n - 1))); do
        one "$run" "$scen" "${confs[$(( (k + round) % n ))]}" "$round"
      done
    done
  done
done
/usr/bin/python3 "$repo/bench/ratios.py" "$results"
echo "dumps left in $dumps ($(du -sh "$dumps" | cut -f1)); delete them long before the next measurement"

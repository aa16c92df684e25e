#!/usr/bin/env bash
# Long context on the 7B-shaped Q8_0 model (bench/model-7b.sh makes it): a
# 4096-token prompt, decoded in micro-batches of 512, as whole extractor runs:
#   none    nothing captured (no callback)
#   six     checkpoints 1-6 of all 32 layers at --positions last:16: the
#           activations' last 16 rows, the whole cache, the last 16 rows of
#           the scores (over all 4096 keys)
#   scores  kq_soft_max of all 32 layers at --positions last:16
# Flash attention is off in all three (the scores need it off). Printed per
# configuration: decode and wall time and their ratio to none, peak RSS, the
# dump's size. The memory bound to meet: the model's size plus the KV cache
# and compute buffers of the run (what none uses) plus the writer queue.
#
#   bash bench/run-7b-long.sh [BUILD_DIR] [SCRATCH_DIR]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
scratch="${2:-$repo/build/bench-7b}"
source "$repo/bench/model-7b.sh"
model="$(model_7b "$build" "$scratch")"
x="$build/programs/llorch-checkpoint-extractor"
# 4096 token ids: BOS, then a fixed walk through the vocabulary
ids="$(/usr/bin/python3 -c "print(','.join(['1'] + [str(2 + (i * 7919) % 31990) for i in range(4095)]))")"
dumps="$scratch/long-$(date +%s)"
mkdir -p "$dumps"
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u)"
echo "model: $model ($(du -b "$model" | cut -f1) bytes); prompt 4096 tokens, -ub 512, -c 4096, -fa off"

declare -A decode wall rss size
one() {  # conf [label]
  local conf="$1" label="${2:-$1}" args=(-v --tokens "$ids" -c 4096 -ub 512 -fa off --progress)
  case "$conf" in
    none) args+=(--checkpoints none --capture-to memory) ;;
    six) args+=(--checkpoints 1-6 --positions last:16 -o "$dumps/six") ;;
    scores) args+=(--checkpoints kq_soft_max --positions last:16 -o "$dumps/scores") ;;
  esac
  local start end log held
  start="$(date +%s.%N)"
  log="$(/usr/bin/time -v "$x" -m "$model" "${args[@]}" 2>&1 >/dev/null)" || { echo "$log" >&2; exit 1; }
  end="$(date +%s.%N)"
  decode[$label]="$(echo "$log" | sed -n 's/^ *decode \([0-9.]*\) s.*/\1/p')"
  wall[$label]="$(echo "$end - $start" | bc -l)"
  rss[$label]="$(echo "$log" | sed -n 's/.*Maximum resident set size (kbytes): //p')"
  held="$(echo "$log" | sed -n 's/^ *copies held at most \([0-9.]*\) MiB.*/\1/p')"
  size[$label]="$( [ -d "$dumps/$conf" ] && du -sb "$dumps/$conf" | cut -f1 || echo 0)"
  printf '%-7s decode %8.1f s  wall %8.1f s  peak RSS %6.2f GiB  dump %6.2f GiB  copies held at most %s MiB\n' \
    "$label" "${decode[$label]}" "${wall[$label]}" "$(echo "${rss[$label]} / 1048576" | bc -l)" \
    "$(echo "${size[$label]} / 1073741824" | bc -l)" "${held:-0}"
}

"$x" -m "$model" --tokens 1,15043 --checkpoints none --capture-to memory >/dev/null 2>&1   # page cache
one none
one six
one scores
one none none2   # again: the baseline is the mean of the runs before and after
base_decode="$(echo "(${decode[none]} + ${decode[none2]}) / 2" | bc -l)"
base_wall="$(echo "(${wall[none]} + ${wall[none2]}) / 2" | bc -l)"
for conf in six scores; do
  printf '%-7s time ratio vs none: decode %.3f, wall %.3f; peak RSS %.2f GiB over none\n' "$conf" \
    "$(echo "${decode[$conf]} / $base_decode" | bc -l)" "$(echo "${wall[$conf]} / $base_wall" | bc -l)" \
    "$(echo "(${rss[$conf]} - ${rss[none]}) / 1048576" | bc -l)"
done
rm -rf "$dumps"    # the dumps (GBs); the model stays for the next run

#!/usr/bin/env bash
# The scale the users run: a Llama-2-7B-shaped Q8_0 model (32 layers,
# n_embd 4096, 32 heads, n_ff 11008, vocab 32000), about 7 GB, made by the
# maker into a scratch folder (never committed, not part of the tests).
#
#   bash bench/run-7b.sh [BUILD_DIR] [SCRATCH_DIR] [ROUNDS] [RUNS]
#
# "Hello" ([1, 15043], one step of two tokens) as whole extractor runs:
#   none   nothing captured (no callback)
#   six    all six checkpoints of all 32 layers, written to disk (npy form)
# Each round runs both, in an order that alternates; the ratio is the median
# over rounds of six/none for the decode time the extractor prints (-v) and for
# the wall time. RUNS repeats the set back to back without clean-up.
# Peak RSS of each configuration is printed from /usr/bin/time.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
scratch="${2:-$repo/build/bench-7b}"
rounds="${3:-3}"
runs="${4:-3}"
source "$repo/bench/model-7b.sh"
model="$(model_7b "$build" "$scratch")"
x="$build/programs/llorch-checkpoint-extractor"
dumps="$scratch/dumps-$(date +%s)"
mkdir -p "$dumps"
results="$dumps/results.tsv"
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u)"
echo "model: $model ($(du -b "$model" | cut -f1) bytes); $rounds rounds; $runs runs back to back"

one() {  # run conf round
  local run="$1" conf="$2" round="$3" args=(-v --tokens 1,15043 -c 1024 -fa off)
  local out="$dumps/r$run-$conf-$round"
  if [ "$conf" = none ]; then args+=(--checkpoints none --capture-to memory); else args+=(-o "$out"); fi
  local start end log
  start="$(date +%s.%N)"
  log="$(/usr/bin/time -v "$x" -m "$model" "${args[@]}" 2>&1 >/dev/null)" || { echo "$log" >&2; exit 1; }
  end="$(date +%s.%N)"
  local decode rss user sys
  decode="$(echo "$log" | sed -n 's/^ *decode \([0-9.]*\) s.*/\1/p')"
  rss="$(echo "$log" | sed -n 's/.*Maximum resident set size (kbytes): //p')"
  user="$(echo "$log" | sed -n 's/.*User time (seconds): //p')"
  sys="$(echo "$log" | sed -n 's/.*System time (seconds): //p')"
  echo -e "$run\thello\t$conf\t$round\t$decode\t$(echo "$end - $start" | bc -l)\t$user\t$sys" >> "$results"
  echo -e "$conf\t$rss" >> "$dumps/rss.tsv"
}

"$x" -m "$model" --tokens 1,15043 --checkpoints none --capture-to memory >/dev/null 2>&1   # page cache
for run in $(seq 1 "$runs"); do
  for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then one "$run" none "$round"; one "$run" six "$round";
    else one "$run" six "$round"; one "$run" none "$round"; fi
  done
done
/usr/bin/python3 "$repo/bench/ratios.py" "$results"
awk -F'\t' '{ if ($2 > max[$1]) max[$1] = $2 } END { for (c in max) printf "peak RSS %-5s %.2f GB\n", c, max[c] / 1048576 }' \
  "$dumps/rss.tsv"
echo "dump of one six run: $(du -sh "$dumps/r1-six-1" | cut -f1), $(ls "$dumps/r1-six-1" | wc -l) files"
rm -rf "$dumps"/r*-six-*    # the dumps; the model stays for the next run

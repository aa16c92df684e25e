#!/usr/bin/env bash
# An interrupted run leaves neither FILE nor FILE.part.
#   tiny_model_interrupt.sh MAKER DATA_DIR
set -euo pipefail
# Job control: without it bash starts background jobs with SIGINT ignored.
set -m
maker="$1"
dir="$2/interrupt"
rm -rf "$dir"
mkdir -p "$dir"
out="$dir/big.gguf"

for sig in INT TERM; do
  # About 1.2 GB of f32: many seconds of work, stopped once FILE.part exists.
  "$maker" --arch llama --layers 8 --embd 2048 --heads 16 --ff 8192 -o "$out" > /dev/null &
  pid=$!
  for _ in $(seq 100); do
    [ -s "$out.part" ] && break
    sleep 0.05
  done
  [ -s "$out.part" ] || { echo "FAIL: $out.part never appeared" >&2; kill "$pid"; exit 1; }
  kill -s "$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  # Killed by the signal: 128 + its number, not a normal exit.
  [ "$rc" -gt 128 ] || { echo "FAIL: SIG$sig: exit status $rc, expected death by signal" >&2; exit 1; }
  if [ -e "$out" ] || [ -e "$out.part" ]; then
    echo "FAIL: SIG$sig left $(ls "$dir")" >&2
    exit 1
  fi
done
rm -rf "$dir"
echo "interrupt: ok"

#!/usr/bin/env bash
# The same flags give the same bytes; another seed gives other values in
# every tensor; a tensor's values depend only on (seed, name), not on which
# other tensors the file holds or in what order they are written.
#   tiny_model_determinism.sh MAKER CHECKER DATA_DIR
# CHECKER is test_tiny_model_runs (its --same / --all-differ modes).
set -euo pipefail
maker="$1"
checker="$2"
dir="$3/determinism"
rm -rf "$dir"
mkdir -p "$dir"

fail() { echo "FAIL: $*" >&2; exit 1; }
mk() { "$maker" "$@" > /dev/null; }

for arch in gpt2 llama; do
  flags=(--arch "$arch" --layers 2 --embd 64 --heads 4 --type f16 --seed 7)
  mk "${flags[@]}" -o "$dir/$arch-a.gguf"
  mk "${flags[@]}" -o "$dir/$arch-b.gguf"
  cmp "$dir/$arch-a.gguf" "$dir/$arch-b.gguf" || fail "$arch: the same flags gave different files"

  mk "${flags[@]}" --seed 8 -o "$dir/$arch-seed8.gguf"
  if cmp -s "$dir/$arch-a.gguf" "$dir/$arch-seed8.gguf"; then
    fail "$arch: --seed 8 gave the same file as --seed 7"
  fi
  "$checker" --all-differ "$dir/$arch-a.gguf" "$dir/$arch-seed8.gguf" \
    || fail "$arch: some tensors did not change with the seed"

  # A third layer shifts every later tensor in the file; the shared ones keep their bytes.
  mk "${flags[@]}" --layers 3 -o "$dir/$arch-3layers.gguf"
  "$checker" --same "$dir/$arch-a.gguf" "$dir/$arch-3layers.gguf" \
    || fail "$arch: tensors changed when a layer was added (values depend on order)"
done

# q8_0: the quantizer is deterministic too.
qflags=(--arch llama --layers 1 --embd 64 --heads 2 --ff 64 --type q8_0 --seed 5)
mk "${qflags[@]}" -o "$dir/q-a.gguf"
mk "${qflags[@]}" -o "$dir/q-b.gguf"
cmp "$dir/q-a.gguf" "$dir/q-b.gguf" || fail "q8_0: the same flags gave different files"

rm -rf "$dir"
echo "determinism: ok"

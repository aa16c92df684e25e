#!/usr/bin/env bash
# Builds the libFuzzer targets of the dump readers and the comparison with
# clang in build-fuzz, and runs each for a bounded number of runs from the
# seed corpus in fuzz/corpus/. Exits non-zero if any target crashes; the
# crashing input is kept in build-fuzz/fuzz/artifacts/.
#
#   bash scripts/fuzz.sh [TARGET...]     default: npy manifest compare tolerance container
#
# Environment: FUZZ_RUNS (default 20000), FUZZ_SECONDS (time bound per
# target, default 60), LLORCH_FUZZ_BUILD (default build-fuzz), CC, CXX.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LLORCH_FUZZ_BUILD:-$repo/build-fuzz}"
runs="${FUZZ_RUNS:-20000}"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(npy manifest compare tolerance container)

say() { echo "== fuzz: $*" >&2; }
command -v "${CC:-clang}" >/dev/null || { echo "fuzz: clang not found (Debian: clang libclang-rt-dev)" >&2; exit 1; }

# The seeds are kept in the repository; a checkout without them makes them.
if [ ! -d "$repo/fuzz/corpus/compare" ]; then
  say "writing the seed corpus"
  /usr/bin/python3 "$repo/fuzz/make_corpus.py" "$repo/fuzz/corpus"
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
say "configuring $build"
CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$repo" -B "$build" "${generator[@]}" \
  -DLLORCH_FUZZ=ON -DLLORCH_FUZZ_RUNS="$runs" -DLLORCH_FUZZ_SECONDS="$seconds" >/dev/null
say "building ${targets[*]}"
cmake --build "$build" --target "${targets[@]/#/fuzz_}"

failed=()
for t in "${targets[@]}"; do
  say "fuzz_$t: $runs runs, at most ${seconds}s"
  work="$build/fuzz/corpus/$t"
  mkdir -p "$work" "$build/fuzz/artifacts"
  dict="$repo/fuzz/$t.dict"
  [ "$t" = compare ] && dict="$repo/fuzz/manifest.dict"
  if ! "$build/fuzz/fuzz_$t" -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -max_len=16384 -print_final_stats=1 -dict="$dict" -artifact_prefix="$build/fuzz/artifacts/$t-" \
       "$work" "$repo/fuzz/corpus/$t" 2>"$build/fuzz/$t.log"; then
    tail -n 40 "$build/fuzz/$t.log" >&2
    failed+=("$t")
  else
    grep -E "^stat::number_of_executed_units|^Done" "$build/fuzz/$t.log" >&2 || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build/fuzz/artifacts/)" >&2
  exit 1
fi
say "all targets ran clean"

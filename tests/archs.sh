#!/usr/bin/env bash
# The architecture tests: llama.cpp's own model of every architecture, run
# through the extractor and checked against llama.cpp's whole graph.
#
#   archs.sh models DATA                 build test-llama-archs (cached), write the
#                                        models to DATA/as-written, strip their
#                                        .scale tensors into DATA/no-scale
#   archs.sh check DATA SHARD N_SHARDS   check every N_SHARDS-th model (from
#                                        SHARD) as written, without .scale and
#                                        with flash attention; results in DATA/results
#   archs.sh table DATA                  write the table and compare it with
#                                        docs/ARCHITECTURES.md (LLORCH_UPDATE_DOCS=1
#                                        replaces the file instead)
#   archs.sh sanitizer DATA              archs_check.py fails a run whose extractor
#                                        reports a sanitizer error, whatever its exit
#                                        status (checked with a stand-in extractor)
#
# Environment: EXTRACTOR, GGUF_STRIP, PY (python3 with numpy), SEED.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
mode="$1"
data="$2"

case "$mode" in
  models)
    if [ -n "${LLORCH_LLAMA_FIND_PACKAGE_BUILD:-}" ]; then
      echo "skipped: an installed llama.cpp has no test-llama-archs"; exit 77
    fi
    env_file="$data/archs-tool.env"
    mkdir -p "$data"
    LLORCH_ARCHS_TOOL=1 bash "$repo/scripts/llama-cpp.sh" "$env_file"
    tool="$(sed -n 's/^LLAMA_ARCHS_TOOL=//p' "$env_file")"
    rm -rf "$data/as-written" "$data/no-scale"
    mkdir -p "$data/as-written" "$data/no-scale"
    "$tool" -o "$data/as-written" -s "${SEED:-42}" >"$data/models.log" 2>&1 \
      || { tail -n 5 "$data/models.log"; echo "test-llama-archs failed"; exit 1; }
    n=0
    for m in "$data/as-written"/*.gguf; do
      "$GGUF_STRIP" "$m" "$data/no-scale/$(basename "$m")" .scale >/dev/null
      n=$((n + 1))
    done
    echo "ok: $n architecture variants, as written and without .scale tensors"
    ;;
  check)
    shard="$3"; n_shards="$4"
    i=0; failed=0
    for m in "$data/as-written"/*.gguf; do
      if [ $((i % n_shards)) -eq "$shard" ]; then
        name="$(basename "$m" .gguf)"
        for run in as-written no-scale flash; do
          src="$data/as-written/$name.gguf"; fa=off
          [ "$run" = no-scale ] && src="$data/no-scale/$name.gguf"
          [ "$run" = flash ] && fa=on
          work="$data/results/$run/$name"
          rm -rf "$work"
          "$PY" "$here/archs_check.py" "$EXTRACTOR" "$src" "$work" --fa "$fa" || failed=$((failed + 1))
        done
      fi
      i=$((i + 1))
    done
    [ "$failed" -eq 0 ] || { echo "FAIL: $failed runs found a wrong tensor"; exit 1; }
    ;;
  table)
    out="$data/ARCHITECTURES.md"
    rc=0
    "$PY" "$here/archs_table.py" "$data/results" "$out" || rc=$?
    if [ "${LLORCH_UPDATE_DOCS:-0}" = 1 ]; then
      cp "$out" "$repo/docs/ARCHITECTURES.md"
      echo "wrote docs/ARCHITECTURES.md"
    elif ! diff -u "$repo/docs/ARCHITECTURES.md" "$out" >"$data/table.diff"; then
      head -n 40 "$data/table.diff"
      echo "FAIL: docs/ARCHITECTURES.md differs from what the tests find; run LLORCH_UPDATE_DOCS=1 ctest -R archs_table"
      exit 1
    fi
    exit "$rc"
    ;;
  sanitizer)
    dir="$data/sanitizer"
    rm -rf "$dir" && mkdir -p "$dir"
    : >"$dir/model.gguf"
    # as UBSan and ASan write them: a build that recovers (status 0), one that stops
    printf '#!/usr/bin/env bash\necho "lib/capture/plan.c:222:5: runtime error: null pointer passed as argument 1, which is declared to never be null" >&2\necho "SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior lib/capture/plan.c:222:5" >&2\nexit 0\n' >"$dir/recovers"
    printf '#!/usr/bin/env bash\necho "==1==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011" >&2\necho "==1==ABORTING" >&2\nexit 1\n' >"$dir/stops"
    chmod +x "$dir/recovers" "$dir/stops"
    for fake in recovers stops; do
      rc=0
      "$PY" "$here/archs_check.py" "$dir/$fake" "$dir/model.gguf" "$dir/$fake.work" >"$dir/$fake.out" 2>&1 || rc=$?
      cat "$dir/$fake.out"
      [ "$rc" -eq 1 ] && grep -q "extractor failed (1): sanitizer: " "$dir/$fake.out" \
        || { echo "FAIL: archs_check.py did not fail on a sanitizer report ($fake, exit $rc)"; exit 1; }
    done
    echo "ok: a sanitizer report fails the run, with exit status 0 or 1"
    ;;
  *)
    echo "usage: archs.sh models|check|table|sanitizer DATA ..." >&2
    exit 2
    ;;
esac

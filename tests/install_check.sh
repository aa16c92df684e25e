#!/usr/bin/env bash
# An install that stands alone (tests/install.cmake):
#   install_check.sh BUILD_DIR WORK
# installs BUILD_DIR into WORK/prefix, moves the prefix elsewhere, and with
# no path into the build tree or the llama.cpp cache runs the installed
# programs on a model the installed llorch-make-tiny-model makes; then builds a project that uses
# find_package(llorch-checkpoint) against the moved prefix and runs it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$1" work="$2"
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
mv "$work/prefix" "$work/moved"   # relocatable: nothing may point at where it was installed
p="$work/moved"
for f in llorch-checkpoint-extractor llorch-checkpoint-compare llorch-make-tiny-model llorch-ref-engine; do
  [ -x "$p/bin/$f" ] || fail "$f is not installed"
done
for f in libllorch-checkpoint.a libllorch-capture.a libllama.so.0 libggml.so.0 libggml-base.so.0 libggml-cpu.so.0 \
    cmake/llorch-checkpoint/llorch-checkpointConfig.cmake; do
  [ -e "$p/lib/$f" ] || fail "lib/$f is not installed"
done
for f in llorch_checkpoint.h llorch_capture.h llorch_compare.h llama.h ggml.h; do
  [ -e "$p/include/$f" ] || fail "include/$f is not installed"
done
# Every library the programs load comes from the prefix or the system, never
# from the build tree or the cache.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llorch-checkpoint-extractor"
for f in "$p"/bin/*; do
  env -u LD_LIBRARY_PATH ldd "$f" >"$work/ldd.txt" 2>&1 || fail "ldd $f"
  ! grep -q "not found" "$work/ldd.txt" || { cat "$work/ldd.txt"; fail "$f: a library is not found"; }
  # (the prefix itself may lie under the build tree: a test's work folder)
  ! grep -v "$p/" "$work/ldd.txt" | grep -qE "$(realpath "$build")|$cache" \
    || { cat "$work/ldd.txt"; fail "$f loads from the build or the cache"; }
  if readelf -d "$f" | grep -q "NEEDED.*libllama"; then
    at="$(sed -n 's/^[[:space:]]*libllama.so.0 => \([^ ]*\) .*/\1/p' "$work/ldd.txt")"
    [ "$(realpath "$at")" = "$(realpath "$p/lib/libllama.so.0")" ] \
      || { cat "$work/ldd.txt"; fail "$f does not load llama.cpp from the prefix"; }
  fi
done
echo "ok: the programs load llama.cpp and ggml from $p/lib"
# A run, with nothing but the prefix on PATH.
cd "$work"
model="$work/tiny.gguf"
env -u LD_LIBRARY_PATH PATH="$p/bin:/usr/bin:/bin" llorch-make-tiny-model --arch llama --layers 2 --embd 64 --heads 4 \
  --ff 128 --seed 3 -o "$model" >/dev/null || fail "the installed llorch-make-tiny-model"
env -u LD_LIBRARY_PATH PATH="$p/bin:/usr/bin:/bin" llorch-checkpoint-extractor -m "$model" --tokens 1,2,3,4 \
  -ctk f32 -ctv f32 -o dump >"$work/extract.log" 2>&1 || { cat "$work/extract.log"; fail "the installed extractor"; }
env -u LD_LIBRARY_PATH PATH="$p/bin:/usr/bin:/bin" llorch-ref-engine -m "$model" --tokens-file dump/tokens.npy \
  -o engine >/dev/null 2>&1 || fail "the installed engine"
env -u LD_LIBRARY_PATH PATH="$p/bin:/usr/bin:/bin" llorch-checkpoint-compare dump engine -q >"$work/compare.txt" 2>&1 \
  || { cat "$work/compare.txt"; fail "the installed compare"; }
echo "ok: installed extractor, engine and compare: $(cat "$work/compare.txt")"
# find_package from another project.
cmake -S "$here/install-consumer" -B consumer-build -G Ninja -DCMAKE_PREFIX_PATH="$p" \
  >"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; fail "find_package(llorch-checkpoint)"; }
cmake --build consumer-build >>"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; fail "building the consumer"; }
out="$(env -u LD_LIBRARY_PATH consumer-build/consumer dump)"
n="$(python3 -c 'import json,sys; print(len({(f["checkpoint"], f["layer"]) for f in json.load(open(sys.argv[1]))["files"]}))' dump/manifest.json)"
[ "$out" = "$n rows, exit status 0" ] || fail "consumer: '$out', expected '$n rows, exit status 0'"
env -u LD_LIBRARY_PATH consumer-build/consumer_capture >"$work/capture.txt" || fail "consumer_capture"
grep -q "^queue bound [0-9]* bytes; .*CPU" "$work/capture.txt" || { cat "$work/capture.txt"; fail "consumer_capture output"; }
echo "ok: find_package(llorch-checkpoint): llorch::checkpoint read the dump ($out); llorch::capture linked llama.cpp"

#!/usr/bin/env bash
# The two set-up commands of README.md:
#
#   bash scripts/build.sh demo   build everything, make a tiny model, extract its checkpoints
#   bash scripts/build.sh test   check the formatting, build everything, run the tests (normal
#                                build, the fuzz targets, then ASan+UBSan)
#
# On Debian, as root, it installs the system packages it needs first.
# Environment: LLAMA_CPP_DIR (your llama.cpp checkout), LLORCH_CACHE_DIR,
# LLORCH_BUILD_JOBS, CI (warnings become errors), LLORCH_GPU=cuda (build
# llama.cpp with its CUDA backend; LLORCH_CUDA_ARCHS=90 picks the GPU
# architecture, default: this machine's GPUs; the demo then runs on the GPU).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { echo "== $*" >&2; }

# What the build and the tests need: a check, and the Debian package that
# satisfies it. Checks look for the tool, not the package, so that a tool
# from elsewhere (say Node.js's own npm) counts.
requirements=(
  "command -v cc && command -v c++ && command -v make|build-essential"
  "command -v cmake|cmake"
  "command -v ninja|ninja-build"
  "command -v git|git"
  "command -v npm|npm"
  "test -f /etc/ssl/certs/ca-certificates.crt|ca-certificates"
  "/usr/bin/python3 -c 'import numpy'|python3-numpy"
  "/usr/bin/python3 -c 'import torch'|python3-torch"
  "/usr/bin/python3 -c 'import ensurepip, venv'|python3-venv"
  "command -v cargo|cargo"
  "ls -d /usr/share/cargo/registry/serde_json-1.*|librust-serde-json-dev"
  "ls -d /usr/share/cargo/registry/sha2-0.10.*|librust-sha2-dev"
  "ls -d /usr/share/cargo/registry/crc32fast-1.*|librust-crc32fast-dev"
  "ls -d /usr/share/cargo/registry/half-1.*|librust-half-dev"
  "ls -d /usr/share/cargo/registry/zip-0.6.*|librust-zip-dev"
  "test -f /usr/include/cjson/cJSON.h|libcjson-dev"
  "test -f /usr/include/libdeflate.h|libdeflate-dev"
  "test -f /usr/include/openssl/evp.h|libssl-dev"
  "command -v clang|clang"
  "command -v clang-format|clang-format"
  "command -v chromium|chromium"
  "ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a|libclang-rt-dev"
)

install_packages() {
  local missing=() r
  for r in "${requirements[@]}"; do
    bash -c "${r%|*}" >/dev/null 2>&1 || missing+=("${r#*|}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing packages: ${missing[*]}; install them first (Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

jobs="${LLORCH_BUILD_JOBS:-$(nproc)}"
werror=OFF
[ -n "${CI:-}" ] && werror=ON

build() {  # build DIR [cmake options...]
  local dir="$1"; shift
  say "configuring $dir"
  cmake -S . -B "$dir" -G Ninja -DLLORCH_WERROR="$werror" -DLLORCH_GPU="${LLORCH_GPU:-}" \
    -DLLORCH_CUDA_ARCHS="${LLORCH_CUDA_ARCHS:-}" "$@"
  say "building $dir"
  cmake --build "$dir" --parallel "$jobs"
}

demo() {
  build build
  local out=build/demo x=build/programs/llorch-checkpoint-extractor c=build/programs/llorch-checkpoint-compare
  local engine=build/engine/llorch-ref-engine
  rm -rf "$out" && mkdir -p "$out"
  say "making a tiny GPT-2 model"
  build/programs/llorch-make-tiny-model --arch gpt2 --layers 2 --embd 64 --heads 4 --ff 256 --seed 1 \
    -o "$out/tiny-gpt2.gguf"
  say "extracting its checkpoints with llama.cpp"
  local gpu=()
  [ -n "${LLORCH_GPU:-}" ] && gpu=(-ngl 99)
  "$x" "${gpu[@]}" "$out/tiny-gpt2.gguf" "Once upon a time" "$out/dump"
  ls "$out/dump"
  /usr/bin/python3 - "$out/dump" <<'PY'
import json, sys, numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
for f in m["files"]:
    a = np.load(f"{d}/{f['file']}")
    assert list(a.shape) == f["shape"], f["file"]
print(f"numpy loaded {len(m['files'])} files of {d}; e.g. attn_norm layer 0:",
      np.load(f"{d}/checkpoint_01_attn_norm_l00_s000.npy").shape)
PY
  say "the same tokens through llorch-ref-engine, a plain-C engine: it computes what llama.cpp computes"
  "$engine" -m "$out/tiny-gpt2.gguf" --tokens-file "$out/dump/tokens.npy" -o "$out/engine"
  "$c" "$out/dump" "$out/engine" -q
  say "an engine with a bug (layer 1's attention norm epsilon is wrong): compare names where"
  "$engine" -m "$out/tiny-gpt2.gguf" --tokens-file "$out/dump/tokens.npy" -o "$out/engine-bug" --fault eps:1
  local rc=0
  "$c" "$out/dump" "$out/engine-bug" -q --html "$out/report.html" || rc=$?
  [ "$rc" -eq 1 ] || { echo "demo: the faulty engine was not caught (exit $rc)" >&2; exit 1; }
  say "done: exit status 1 for the faulty engine; the report: $out/report.html"
  say "the programs: build/programs/llorch-checkpoint-extractor, llorch-checkpoint-compare,"
  say "  llorch-make-tiny-model, build/engine/llorch-ref-engine (cmake --install build --prefix DIR installs them)"
}

# Every C file as .clang-format says; a difference fails the tests.
check_format() {
  say "formatting (clang-format --dry-run --Werror)"
  local files
  files="$(git ls-files '*.c' '*.h' 2>/dev/null || find lib programs engine tests fuzz include -name '*.[ch]')"
  # shellcheck disable=SC2086
  clang-format --dry-run --Werror $files || {
    echo "format: the files above differ from .clang-format; run: clang-format -i \$(git ls-files '*.c' '*.h')" >&2
    exit 1
  }
}

run_tests() {
  check_format
  build build
  say "tests (normal build)"
  ctest --test-dir build --output-on-failure -j "$jobs"
  if [ -f scripts/fuzz.sh ]; then
    say "fuzzing the readers and the comparison (bounded)"
    bash scripts/fuzz.sh
  fi
  build build-asan -DLLORCH_SANITIZE=ON
  say "tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
}

case "${1:-}" in
  demo) install_packages; demo ;;
  test) install_packages; run_tests ;;
  *) echo "usage: bash scripts/build.sh demo|test" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Resolves the llama.cpp that this project builds against, builds it once per
# machine and prints where it is installed.
#
#   scripts/llama-cpp.sh OUT_FILE
#
# OUT_FILE receives shell-style KEY=VALUE lines:
#   LLAMA_PREFIX     install prefix (lib/, include/, lib/cmake/llama)
#   LLAMA_SOURCE     "npm:node-llama-cpp@3.21.1" or "dir:/path/to/llama.cpp"
#   LLAMA_COMMIT     the llama.cpp commit ("unknown" for a non-git user tree)
#   LLAMA_PATCHED    1 when the checkpoint-names patch is in the built source
#   LLAMA_VOCAB_DIR  folder holding ggml-vocab-gpt-2.gguf and ggml-vocab-llama-spm.gguf
#   LLAMA_TARBALL    the verified node-llama-cpp tarball (pinned source only)
#
# Order of resolution:
#   1. LLAMA_CPP_DIR=/path/to/llama.cpp : the user's source tree, built out of
#      tree into the cache, never modified; the patch is optional there.
#   2. LLORCH_VOCAB_ONLY=1 : the caller uses an installed llama.cpp
#      (find_package); only the vocab files of the pinned source are fetched.
#   3. Default: the pinned source from the npm registry, integrity-checked,
#      patched, built and installed into the cache.
#
# With LLORCH_GGUF_PY=1 it instead only provides llama.cpp's pure-Python
# gguf-py and convert_hf_to_gguf.py (the user's LLAMA_CPP_DIR, else the
# pinned source, copied once into the cache, keyed by commit; no build) and
# writes LLAMA_GGUF_PY=dir and LLAMA_CONVERT_HF=file to OUT_FILE.
#
# With LLORCH_ARCHS_TOOL=1 it instead builds llama.cpp's own
# tests/test-llama-archs (which writes a small random model of every
# architecture) from the pinned source, statically, cached the same way,
# and writes LLAMA_ARCHS_TOOL=path to OUT_FILE.
#
# Environment:
#   LLORCH_CACHE_DIR      cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/llorch-checkpoint-extractor)
#   LLORCH_LLAMA_TARBALL  use this node-llama-cpp tarball instead of `npm pack`
#   LLORCH_LLAMA_PATCH    use this patch file instead of the project's
#   LLORCH_BUILD_JOBS     parallel build jobs (default: nproc)
#   LLORCH_LLAMA_PORTABLE 1: build ggml for x86-64 with AVX2 instead of -march=native
#                         (for valgrind, which does not know AVX-512/AMX)
#   LLORCH_GPU            cuda: also build ggml's CUDA backend (needs nvcc; cached
#                         under its own key); empty (default): CPU and RPC only
#   LLORCH_CUDA_ARCHS     the CUDA architectures to build for, e.g. 90 or "86;90"
#                         (default: those of the GPUs nvidia-smi lists)
#   CUDACXX               the nvcc to use (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc)
#   NPM, GIT, CMAKE       the programs to use
set -euo pipefail

readonly NPM_PACKAGE="node-llama-cpp@3.21.1"
readonly NPM_INTEGRITY="sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg=="
readonly PINNED_COMMIT="80fb11ac73e66d89eae2c6a91d8a77428fa733ed"
readonly BUNDLE_PATH="package/llama/gitRelease.bundle"
readonly VOCAB_FILES="ggml-vocab-gpt-2.gguf ggml-vocab-llama-spm.gguf"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
NPM="${NPM:-npm}"
GIT="${GIT:-git}"
CMAKE="${CMAKE:-cmake}"
patch_file="${LLORCH_LLAMA_PATCH:-$repo/patches/llama-graph-checkpoint-names.patch}"
cache="${LLORCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llorch-checkpoint-extractor}"
jobs="${LLORCH_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

say()  { echo "llama.cpp: $*" >&2; }
die()  { echo "llama.cpp: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found; $2"; }

[ $# -eq 1 ] || die "usage: scripts/llama-cpp.sh OUT_FILE"
out_file="$1"

# The options that shape the build; they are part of the cache key.
build_options=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
  -DGGML_RPC=ON -DGGML_NATIVE=ON -DGGML_OPENMP=OFF
  # libllama finds libggml* beside itself, wherever the cache lives
  "-DCMAKE_INSTALL_RPATH=\$ORIGIN"
)

if [ "${LLORCH_LLAMA_PORTABLE:-0}" = 1 ]; then
  build_options=("${build_options[@]/-DGGML_NATIVE=ON/-DGGML_NATIVE=OFF}")
  build_options+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
fi

# The CUDA toolkit's compiler, or nothing.
find_nvcc() {
  local c
  for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null || true)" /usr/local/cuda/bin/nvcc; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return; fi
  done
}

# The compute capabilities of this machine's GPUs as CMake wants them ("90;86").
detect_cuda_archs() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | grep -E '^[0-9]+$' | sort -u | paste -sd';'
}

case "${LLORCH_GPU:-}" in
  "") ;;
  cuda)
    nvcc="$(find_nvcc)"
    [ -n "$nvcc" ] || die "LLORCH_GPU=cuda needs the CUDA toolkit, and no nvcc was found (PATH, /usr/local/cuda/bin, CUDACXX); install NVIDIA's CUDA toolkit or set CUDACXX=/path/to/nvcc"
    cuda_archs="${LLORCH_CUDA_ARCHS:-$(detect_cuda_archs)}"
    [ -n "$cuda_archs" ] || die "LLORCH_GPU=cuda: nvidia-smi lists no GPU to build for; set LLORCH_CUDA_ARCHS (for example 90 for an H100 or H200, 89 for an L4, 86 for an RTX 30xx)"
    build_options+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$cuda_archs" -DGGML_CUDA_NCCL=OFF
                    "-DCMAKE_CUDA_COMPILER=$nvcc")
    ;;
  *) die "LLORCH_GPU=${LLORCH_GPU} is not a GPU backend this build knows; use LLORCH_GPU=cuda, or leave it empty for CPU only" ;;
esac

# A failed or interrupted build leaves nothing that a later run would trust:
# its work folder is removed on any exit.
work_dir=""
cleanup() { if [ -n "$work_dir" ]; then rm -rf "$work_dir"; fi; }
trap cleanup EXIT

short_hash() { sha256sum | cut -c1-12; }

# A -march=native build only runs on CPUs with the same features.
host_key() {
  { uname -m; grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true; "$CMAKE" --version | head -n1; cc --version 2>/dev/null | head -n1; } | short_hash
}

write_result() {  # prefix source commit patched vocab_dir [tarball]
  local tmp="$out_file.tmp.$$"
  {
    echo "LLAMA_TARBALL=${6:-}"
    echo "LLAMA_PREFIX=$1"
    echo "LLAMA_SOURCE=$2"
    echo "LLAMA_COMMIT=$3"
    echo "LLAMA_PATCHED=$4"
    echo "LLAMA_VOCAB_DIR=$5"
  } > "$tmp"
  mv -f "$tmp" "$out_file"
}

# npm's integrity string is "sha512-" + base64 of the binary digest.
sri_sha512() {
  local hex
  hex="$(sha512sum "$1" | cut -c1-128)"
  printf "sha512-%s" "$(printf '%s' "$hex" | sed 's/../\\x&/g' | xargs -0 printf '%b' | base64 -w0)"
}

# Prints the path of a verified node-llama-cpp tarball.
fetch_tarball() {
  local tarball
  if [ -n "${LLORCH_LLAMA_TARBALL:-}" ]; then
    tarball="$LLORCH_LLAMA_TARBALL"
    [ -f "$tarball" ] || die "LLORCH_LLAMA_TARBALL=$tarball does not exist; unset it to fetch $NPM_PACKAGE with npm"
  else
    tarball="$cache/downloads/node-llama-cpp-3.21.1.tgz"
    if [ ! -f "$tarball" ]; then
      need "$NPM" "install npm (Debian: apt-get install npm) or set LLAMA_CPP_DIR to a llama.cpp checkout"
      mkdir -p "$cache/downloads"
      local dl
      dl="$(mktemp -d "$cache/downloads/.npm-pack.XXXXXX")"
      say "fetching $NPM_PACKAGE from the npm registry (35 MB)"
      if ! (cd "$dl" && "$NPM" pack "$NPM_PACKAGE" --loglevel=error >/dev/null 2>"$dl/npm.log"); then
        local why
        why="$(grep -m1 -iE 'ERR!|error' "$dl/npm.log" | sed -E 's/^npm (error|ERR!) *//' || true)"
        rm -rf "$dl"
        die "npm could not fetch $NPM_PACKAGE (${why:-no detail}); check the network and npm's registry setting, or set LLAMA_CPP_DIR to a llama.cpp checkout"
      fi
      mv -f "$dl"/node-llama-cpp-3.21.1.tgz "$tarball.part"
      rm -rf "$dl"
      check_integrity "$tarball.part"
      mv -f "$tarball.part" "$tarball"
      say "verified $NPM_PACKAGE ($NPM_INTEGRITY)"
      echo "$tarball"
      return
    fi
  fi
  check_integrity "$tarball"
  echo "$tarball"
}

check_integrity() {
  local got
  got="$(sri_sha512 "$1")"
  if [ "$got" != "$NPM_INTEGRITY" ]; then
    [ -z "${LLORCH_LLAMA_TARBALL:-}" ] && rm -f "$1"
    die "integrity mismatch for $1: expected $NPM_INTEGRITY, got $got; the download is corrupt or not $NPM_PACKAGE, delete it and run again"
  fi
}

# Clones the pinned commit out of the tarball's git bundle into $1.
clone_pinned_source() {
  local dest="$1" tarball tmp head
  need "$GIT" "install git (Debian: apt-get install git)"
  tarball="$(fetch_tarball)"
  tmp="$dest.bundle"
  mkdir -p "$tmp"
  tar -xzf "$tarball" -C "$tmp" "$BUNDLE_PATH" || die "$tarball has no $BUNDLE_PATH; it is not the expected $NPM_PACKAGE"
  "$GIT" clone --quiet "$tmp/$BUNDLE_PATH" "$dest" 2>/dev/null || die "git could not clone the llama.cpp bundle in $tarball"
  rm -rf "$tmp"
  "$GIT" -C "$dest" -c advice.detachedHead=false checkout --quiet "$PINNED_COMMIT" 2>/dev/null \
    || die "the bundle in $tarball does not hold commit $PINNED_COMMIT"
  head="$("$GIT" -C "$dest" rev-parse HEAD)"
  [ "$head" = "$PINNED_COMMIT" ] || die "the bundle's HEAD is $head, expected $PINNED_COMMIT"
}

apply_patch() {
  local src="$1"
  [ -f "$patch_file" ] || die "patch $patch_file not found; restore it from the repository"
  "$GIT" -C "$src" apply --check "$patch_file" 2>/dev/null \
    || die "patch $patch_file does not apply to llama.cpp $PINNED_COMMIT; regenerate it against that commit"
  "$GIT" -C "$src" apply "$patch_file"
}

# Configures, builds and installs $1 (source) into $3 using build dir $2.
build_and_install() {
  local src="$1" bld="$2" prefix="$3" log="$2.log"
  need "$CMAKE" "install cmake (Debian: apt-get install cmake)"
  local gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  say "configuring (log: $log)"
  "$CMAKE" -S "$src" -B "$bld" "${gen[@]}" "${build_options[@]}" -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "configuring llama.cpp failed; see $log"; }
  if [ -n "${cuda_archs:-}" ]; then
    say "building libllama and ggml with CUDA for $cuda_archs, $jobs jobs (about 4 minutes on 16 cores, an hour on 2)"
  else
    say "building libllama and ggml with $jobs jobs (3-6 minutes on 2 cores)"
  fi
  "$CMAKE" --build "$bld" --parallel "$jobs" 2>&1 | tee -a "$log" | progress \
    || { tail -n 20 "$log" >&2; die "building llama.cpp failed; see $log"; }
  "$CMAKE" --install "$bld" >>"$log" 2>&1 || die "installing llama.cpp failed; see $log"
}

# Turns the build's "[12/140]" lines into a progress line every 10%.
progress() {
  local last=-1 line pct
  while IFS= read -r line; do
    if [[ "$line" =~ ^\[([0-9]+)/([0-9]+)\] ]]; then
      pct=$(( BASH_REMATCH[1] * 100 / BASH_REMATCH[2] / 10 * 10 ))
    elif [[ "$line" =~ ^\[\ *([0-9]+)%\] ]]; then
      pct=$(( BASH_REMATCH[1] / 10 * 10 ))
    else
      continue
    fi
    if [ "$pct" -gt "$last" ]; then last=$pct; say "build ${pct}%"; fi
  done
}

copy_vocab() {  # from_dir to_dir
  mkdir -p "$2"
  local f
  for f in $VOCAB_FILES; do
    [ -f "$1/$f" ] || die "$1/$f not found; the llama.cpp source lacks its vocab files"
    cp -f "$1/$f" "$2/$f"
  done
}

with_lock() {  # runs "$@" holding the cache lock
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    say "waiting for another build to release $cache/.lock"
    flock 9
  fi
  "$@"
  exec 9>&-
}

# --- 3. the pinned, patched source --------------------------------------------
resolve_pinned() {
  local patch_hash opt_hash key prefix work
  [ -f "$patch_file" ] || die "patch $patch_file not found; restore it from the repository"
  patch_hash="$(short_hash < "$patch_file")"
  opt_hash="$(printf '%s\n' "${build_options[@]}" "$(host_key)" | short_hash)"
  key="${PINNED_COMMIT:0:12}-p${patch_hash}-o${opt_hash}"
  prefix="$cache/llama.cpp/$key"
  if [ ! -f "$prefix/.complete" ]; then
    with_lock build_pinned "$prefix"
  else
    say "using cached build $prefix"
  fi
  write_result "$prefix" "npm:$NPM_PACKAGE" "$PINNED_COMMIT" 1 "$prefix/share/llorch/vocab" \
    "${LLORCH_LLAMA_TARBALL:-$cache/downloads/node-llama-cpp-3.21.1.tgz}"
}

build_pinned() {
  local prefix="$1" work
  if [ -f "$prefix/.complete" ]; then say "another run built $prefix"; return; fi
  mkdir -p "$cache/llama.cpp"
  work="$(mktemp -d "$cache/llama.cpp/.work.XXXXXX")"
  work_dir="$work"
  say "building the pinned llama.cpp ${PINNED_COMMIT:0:12} into $prefix"
  clone_pinned_source "$work/src"
  apply_patch "$work/src"
  say "applied $(basename "$patch_file")"
  build_and_install "$work/src" "$work/build" "$work/prefix"
  copy_vocab "$work/src/models" "$work/prefix/share/llorch/vocab"
  touch "$work/prefix/.complete"
  rm -rf "$prefix"
  mv "$work/prefix" "$prefix"
  rm -rf "$work"
  work_dir=""
  say "installed into $prefix"
}

# --- 1. the user's own source tree --------------------------------------------
resolve_user_dir() {
  local src patched commit key bld prefix
  src="$(cd "$LLAMA_CPP_DIR" 2>/dev/null && pwd)" \
    || die "LLAMA_CPP_DIR=$LLAMA_CPP_DIR is not a directory; point it at a llama.cpp source checkout"
  [ -f "$src/CMakeLists.txt" ] && [ -f "$src/include/llama.h" ] && [ -f "$src/src/llama-graph.cpp" ] \
    || die "LLAMA_CPP_DIR=$src is not a llama.cpp source tree (no include/llama.h or src/llama-graph.cpp); point it at a llama.cpp checkout"
  commit="$("$GIT" -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)"
  patched=0
  grep -q '"attn_out_proj"' "$src/src/llama-graph.cpp" && patched=1
  if [ "$patched" = 1 ]; then
    say "using $src ($commit), which names cache_k/cache_v/attn_out_proj"
  else
    say "using $src ($commit) without the checkpoint-names patch; checkpoints are found by graph structure"
  fi
  key="user-$(printf '%s\n' "$src" "${build_options[@]}" "$(host_key)" | short_hash)"
  bld="$cache/llama.cpp/$key/build"
  prefix="$cache/llama.cpp/$key/prefix"
  mkdir -p "$cache/llama.cpp/$key"
  with_lock build_user_dir "$src" "$bld" "$prefix"
  write_result "$prefix" "dir:$src" "$commit" "$patched" "$prefix/share/llorch/vocab"
}

build_user_dir() {
  # Incremental: the user's tree changes, so rebuild every time (fast when nothing did).
  rm -f "$3/.complete"
  build_and_install "$1" "$2" "$3"
  copy_vocab "$1/models" "$3/share/llorch/vocab"
  touch "$3/.complete"
}

# --- 2. an installed llama.cpp: only the vocab files --------------------------
resolve_vocab_only() {
  local dir="$cache/vocab/${PINNED_COMMIT:0:12}"
  if [ ! -f "$dir/.complete" ]; then
    with_lock fetch_vocab "$dir"
  fi
  write_result "" "installed" "unknown" 0 "$dir"
}

fetch_vocab() {
  local dir="$1" work
  [ -f "$dir/.complete" ] && return
  mkdir -p "$cache/vocab"
  work="$(mktemp -d "$cache/vocab/.work.XXXXXX")"
  work_dir="$work"
  clone_pinned_source "$work/src"
  copy_vocab "$work/src/models" "$work/vocab"
  touch "$work/vocab/.complete"
  rm -rf "$dir"
  mv "$work/vocab" "$dir"
  rm -rf "$work"
  work_dir=""
}

# --- llama.cpp's architecture test models ------------------------------------
archs_options=(
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_TOOLS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_RPC=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=OFF
)

resolve_archs_tool() {
  local key dir
  key="${PINNED_COMMIT:0:12}-archs-$(printf '%s\n' "${archs_options[@]}" "$(host_key)" | short_hash)"
  dir="$cache/llama.cpp/$key"
  if [ ! -f "$dir/.complete" ]; then
    with_lock build_archs_tool "$dir"
  else
    say "using cached test-llama-archs $dir"
  fi
  echo "LLAMA_ARCHS_TOOL=$dir/bin/test-llama-archs" > "$out_file"
}

build_archs_tool() {
  local dir="$1" work log
  if [ -f "$dir/.complete" ]; then say "another run built $dir"; return; fi
  need "$CMAKE" "install cmake (Debian: apt-get install cmake)"
  mkdir -p "$cache/llama.cpp"
  work="$(mktemp -d "$cache/llama.cpp/.work.XXXXXX")"
  work_dir="$work"
  log="$work/build.log"
  say "building llama.cpp's test-llama-archs ${PINNED_COMMIT:0:12} into $dir (3-6 minutes on 2 cores)"
  clone_pinned_source "$work/src"
  local gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  "$CMAKE" -S "$work/src" -B "$work/build" "${gen[@]}" "${archs_options[@]}" >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "configuring test-llama-archs failed; see $log"; }
  "$CMAKE" --build "$work/build" --target test-llama-archs --parallel "$jobs" 2>&1 | tee -a "$log" | progress \
    || { tail -n 20 "$log" >&2; die "building test-llama-archs failed"; }
  mkdir -p "$work/prefix/bin"
  cp "$work/build/bin/test-llama-archs" "$work/prefix/bin/" || die "the build produced no test-llama-archs"
  touch "$work/prefix/.complete"
  rm -rf "$dir"
  mv "$work/prefix" "$dir"
  rm -rf "$work"
  work_dir=""
  say "installed test-llama-archs into $dir"
}

# --- llama.cpp's gguf-py, for the Python tests ---------------------------------
resolve_gguf_py() {
  local dir
  if [ -n "${LLAMA_CPP_DIR:-}" ]; then
    dir="$(cd "$LLAMA_CPP_DIR" 2>/dev/null && pwd)" || die "LLAMA_CPP_DIR=$LLAMA_CPP_DIR is not a directory"
    [ -d "$dir/gguf-py/gguf" ] || die "$dir has no gguf-py/gguf; point LLAMA_CPP_DIR at a llama.cpp checkout"
  else
    dir="$cache/gguf-py/${PINNED_COMMIT:0:12}"
    [ -f "$dir/.complete" ] || with_lock fetch_gguf_py "$dir"
  fi
  printf 'LLAMA_GGUF_PY=%s\nLLAMA_CONVERT_HF=%s\n' "$dir/gguf-py" "$dir/convert_hf_to_gguf.py" > "$out_file"
}

fetch_gguf_py() {
  local dir="$1" work
  [ -f "$dir/.complete" ] && return
  mkdir -p "$cache/gguf-py"
  work="$(mktemp -d "$cache/gguf-py/.work.XXXXXX")"
  work_dir="$work"
  clone_pinned_source "$work/src"
  mkdir -p "$work/out"
  cp -r "$work/src/gguf-py" "$work/src/convert_hf_to_gguf.py" "$work/out/"
  touch "$work/out/.complete"
  rm -rf "$dir"
  mv "$work/out" "$dir"
  rm -rf "$work"
  work_dir=""
  say "copied gguf-py of ${PINNED_COMMIT:0:12} into $dir"
}

if [ "${LLORCH_GGUF_PY:-0}" = 1 ]; then
  resolve_gguf_py
elif [ "${LLORCH_ARCHS_TOOL:-0}" = 1 ]; then
  resolve_archs_tool
elif [ -n "${LLAMA_CPP_DIR:-}" ]; then
  resolve_user_dir
elif [ "${LLORCH_VOCAB_ONLY:-0}" = 1 ]; then
  resolve_vocab_only
else
  resolve_pinned
fi

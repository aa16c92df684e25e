#!/usr/bin/env bash
# Assembles, on a machine that reaches the registries, everything that
# bench/gpu.sh needs on a GPU machine that reaches none:
#
#   bash bench/gpu-carry.sh [DIR]        (default: build-carry, under 64 MiB)
#
# DIR/node-llama-cpp-3.21.1.tgz  the pinned llama.cpp source, integrity-checked
#                                by scripts/llama-cpp.sh when it is used
# DIR/deps/                      Debian's libcjson, libdeflate and OpenSSL
#                                (headers and libraries), unpacked with dpkg -x
# DIR/env.sh                     sourced by bench/gpu.sh: points the build at
#                                both, so that it fetches nothing
#
# On the GPU machine, in the copy of the working tree that carries DIR:
#   LLORCH_CARRY=build-carry bash bench/gpu.sh
# (the device tool: carry ["build-carry"]). `bash bench/gpu.sh --dry-run`
# here runs the same steps on the CPU with the network's tools made to fail.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo/build-carry}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
packages=(libcjson1 libcjson-dev libdeflate0 libdeflate-dev libssl3 libssl-dev)
say() { echo "gpu-carry: $*" >&2; }

rm -rf "$dir" && mkdir -p "$dir/debs" "$dir/deps"
say "the pinned llama.cpp source (scripts/llama-cpp.sh verifies it)"
bash "$repo/scripts/llama-cpp.sh" "$dir/llama.env" >/dev/null 2>&1 || true
tarball="$(sed -n 's/^LLAMA_TARBALL=//p' "$dir/llama.env")"
[ -n "$tarball" ] && [ -f "$tarball" ] || { say "error: no verified node-llama-cpp tarball; run bash scripts/build.sh demo first"; exit 1; }
cp "$tarball" "$dir/node-llama-cpp-3.21.1.tgz"
rm -f "$dir/llama.env"

say "Debian packages: ${packages[*]}"
(cd "$dir/debs" && apt-get download "${packages[@]}" >/dev/null 2>&1) \
  || { say "error: apt-get download ${packages[*]} failed; run 'apt-get update' and try again"; exit 1; }
for deb in "$dir"/debs/*.deb; do
  dpkg -x "$deb" "$dir/deps"
done
rm -rf "$dir/debs" "$dir/deps/usr/share/doc" "$dir/deps/usr/share/man"
find "$dir/deps" -name "*.a" -delete # the build links the shared libraries

cat >"$dir/env.sh" <<'ENV'
# Sourced by bench/gpu.sh (LLORCH_CARRY): the build finds everything here.
carry="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LLORCH_LLAMA_TARBALL="$carry/node-llama-cpp-3.21.1.tgz"
export CMAKE_PREFIX_PATH="$carry/deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export OPENSSL_ROOT_DIR="$carry/deps/usr"
lib="$carry/deps/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$carry/deps/usr/include:$carry/deps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
ENV
size=$(du -sm "$dir" | cut -f1)
[ "$size" -lt 64 ] || { say "error: $dir holds $size MiB, over the 64 MiB a device call carries"; exit 1; }
say "$dir: $size MiB ($(ls "$dir" | tr '\n' ' '))"

#!/usr/bin/env bash
# One full extractor run under valgrind's leak checker. valgrind does not
# know AVX-512/AMX, so this uses a llama.cpp built for AVX2
# (LLORCH_LLAMA_PORTABLE, its own cache entry) in build-valgrind/.
#
#   bash scripts/valgrind.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cmake -S . -B build-valgrind -G Ninja -DLLORCH_LLAMA_PORTABLE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-valgrind --parallel "$(nproc)" >/dev/null
d=build-valgrind/valgrind-run
rm -rf "$d" && mkdir -p "$d"
build-valgrind/programs/llorch-make-tiny-model --arch llama --layers 2 --embd 64 --heads 4 --heads-kv 2 --ff 128 \
  --seed 2 -o "$d/tiny-llama.gguf" >/dev/null
valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=3 build-valgrind/programs/llorch-checkpoint-extractor -m "$d/tiny-llama.gguf" \
  -p "Once upon a time" -n 2 --checkpoints all --text -o "$d/dump" 2>&1 | tee "$d/valgrind.log" | tail -n 15
echo "valgrind: exit ${PIPESTATUS[0]} (0: no errors, no definite or indirect leaks); log in $d/valgrind.log"

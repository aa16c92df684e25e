#!/usr/bin/env bash
# Makes the tiny models of the tiny_models test fixture (tests/tiny-model.cmake).
# Other tests use these exact names and flags; test_tiny_model_runs.c lists them too.
#   tiny_model_make.sh MAKER DATA_DIR
set -euo pipefail
maker="$1"
dir="$2"
mkdir -p "$dir"

gpt2=(--arch gpt2 --layers 2 --embd 64 --heads 4 --ff 256 --seed 1)
llama=(--arch llama --layers 2 --embd 64 --heads 4 --heads-kv 2 --ff 128 --seed 2)
llama_q=(--arch llama --layers 2 --embd 256 --heads 4 --heads-kv 2 --ff 512 --seed 3)

# Two at a time: q4_K quantization is the slow one (about 1 s).
pids=()
"$maker" "${llama_q[@]}" --type q4_K -o "$dir/tiny-llama-q4_K.gguf" & pids+=($!)
"$maker" "${llama_q[@]}" --type q8_0 -o "$dir/tiny-llama-q8_0.gguf" & pids+=($!)
"$maker" "${gpt2[@]}"                -o "$dir/tiny-gpt2-f32.gguf"
"$maker" "${gpt2[@]}"    --type f16  -o "$dir/tiny-gpt2-f16.gguf"
"$maker" "${llama[@]}"               -o "$dir/tiny-llama-f32.gguf"
"$maker" "${llama[@]}"   --type f16  -o "$dir/tiny-llama-f16.gguf"
for pid in "${pids[@]}"; do
  wait "$pid"
done

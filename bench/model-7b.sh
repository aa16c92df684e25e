# model-7b.sh - sourced by the 7B benchmarks. model_7b BUILD_DIR SCRATCH_DIR
# prints the path of the Llama-2-7B-shaped Q8_0 model, written into the
# scratch folder by the maker the first time (about 2.5 minutes, 7.2 GB).
model_7b() {
  local build="$1" scratch="$2"
  local model="$scratch/llama-7b-shape-q8_0.gguf"
  mkdir -p "$scratch"
  if [ ! -f "$model" ]; then
    "$build/programs/llorch-make-tiny-model" --arch llama --layers 32 --embd 4096 --heads 32 --ff 11008 \
      --ctx 4096 --type q8_0 --seed 7 -o "$model" >&2
  fi
  echo "$model"
}

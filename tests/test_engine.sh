#!/usr/bin/env bash
# test_engine.sh - runs llorch-ref-engine for the engine tests (tests/engine.cmake).
#
#   test_engine.sh ENGINE TEST_LLAMA TEST_DUMP WORKDIR MODE ARGS...
#
#   vs-llama   MODEL TOLERANCE TOKENS [KV_TYPE [ENGINE ARGS]]
#                                          engine logits == llama.cpp logits (test 1)
#   stepwise   MODEL TOKENS [ENGINE ARGS]  -ub 3 -n 2 == one step, by position (test 2)
#   fault      MODEL TOKENS KIND LAYER     the fault changes exactly what is downstream (test 3)
#   bad-input  LLAMA_MODEL GPT2_MODEL      bad inputs exit 2 with one line (test 4)
#
# A model that is absent skips the test (exit 77) with a message.
set -euo pipefail

engine="$1" test_llama="$2" test_dump="$3" work="$4" mode="$5"
shift 5
rm -rf "$work"
mkdir -p "$work"

require_model() {
  if [ ! -f "$1" ]; then
    echo "SKIP: model $1 is absent on this machine"
    exit 77
  fi
}

run_engine() {  # OUT_DIR ARGS...
  local out="$1"
  shift
  "$engine" -o "$out" "$@"
}

vs_llama() {
  local model="$1" tolerance="$2" tokens="$3" kv_type="${4:-f32}"
  shift $(($# < 4 ? $# : 4))
  require_model "$model"
  run_engine "$work/engine" -m "$model" --tokens "$tokens" --checkpoints logits --kv-type "$kv_type" "$@"
  "$test_llama" "$model" "$work/engine" "$tolerance" "$kv_type"
}

stepwise() {
  local model="$1" tokens="$2"
  shift 2
  require_model "$model"
  run_engine "$work/steps" -m "$model" --tokens "$tokens" -ub 3 -n 2 "$@"
  # the same tokens, generated ones included, in one step
  run_engine "$work/one" -m "$model" --tokens-file "$work/steps/tokens.npy" "$@"
  "$test_dump" same-by-position "$work/one" "$work/steps"
}

fault() {
  local model="$1" tokens="$2" kind="$3" layer="$4"
  require_model "$model"
  run_engine "$work/base" -m "$model" --tokens "$tokens"
  run_engine "$work/faulty" -m "$model" --tokens "$tokens" --fault "$kind:$layer"
  grep -Eq "\"fault\":[[:space:]]*\"$kind:$layer\"" "$work/faulty/manifest.json" ||
    { echo "FAIL: the manifest's settings do not record the fault"; exit 1; }
  "$test_dump" fault "$work/base" "$work/faulty" "$kind" "$layer"
}

# ---- bad inputs ------------------------------------------------------------

failures=0

# expect_bad WHAT EXPECTED_TEXT ENGINE_ARGS...: exit status 2, one line on
# stderr that contains EXPECTED_TEXT, and no dump.
expect_bad() {
  local what="$1" text="$2" out="$work/out-$RANDOM"
  shift 2
  local rc=0
  "$engine" -o "$out" "$@" >"$work/stdout" 2>"$work/stderr" || rc=$?
  local lines
  lines=$(wc -l <"$work/stderr")
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$text" "$work/stderr" || [ -e "$out/manifest.json" ]; then
    echo "FAIL: $what: exit $rc, $lines stderr lines, expected exit 2 and one line with '$text':"
    cat "$work/stderr"
    failures=$((failures + 1))
  else
    echo "ok: $what: $(cat "$work/stderr")"
  fi
}

# A GGUF with only general.architecture = "mamba" (no tensors).
write_mamba_gguf() {
  {
    printf 'GGUF\x03\x00\x00\x00'                             # magic, version 3
    printf '\x00\x00\x00\x00\x00\x00\x00\x00'                 # 0 tensors
    printf '\x01\x00\x00\x00\x00\x00\x00\x00'                 # 1 key
    printf '\x14\x00\x00\x00\x00\x00\x00\x00general.architecture'
    printf '\x08\x00\x00\x00'                                 # type: string
    printf '\x05\x00\x00\x00\x00\x00\x00\x00mamba'
  } >"$1"
}

# A copy of an F32 model whose token_embd.weight claims type I32 (same size).
write_i32_tensor_gguf() {
  cp "$1" "$2"
  local offset
  offset=$(grep -obUaF "token_embd.weight" "$2" | head -n1 | cut -d: -f1)
  # tensor info: name (17 bytes), n_dims (u32), ne[2] (2 x u64), type (u32)
  printf '\x1a' | dd of="$2" bs=1 seek=$((offset + 17 + 4 + 16)) conv=notrunc status=none
}

bad_input() {
  local llama="$1" gpt2="$2"
  require_model "$llama"
  require_model "$gpt2"
  local ok=(-m "$llama" --tokens 1,2,3)
  printf 'not a model' >"$work/garbage.gguf"
  head -c 4000 "$llama" >"$work/truncated.gguf"
  write_mamba_gguf "$work/mamba.gguf"
  write_i32_tensor_gguf "$llama" "$work/i32.gguf"
  printf 'not npy' >"$work/tokens.txt"
  mkdir -p "$work/full" && touch "$work/full/something"

  expect_bad "missing model" "no such model file" -m "$work/absent.gguf" --tokens 1
  expect_bad "corrupt model" "not a valid GGUF" -m "$work/garbage.gguf" --tokens 1
  expect_bad "truncated model" "not a valid GGUF" -m "$work/truncated.gguf" --tokens 1
  expect_bad "unsupported architecture" "architecture 'mamba' is not supported" -m "$work/mamba.gguf" --tokens 1
  expect_bad "unsupported tensor type" "has type i32" -m "$work/i32.gguf" --tokens 1
  expect_bad "token id too large" "token 99999999 (at index 1) is not a valid id" -m "$llama" --tokens 1,99999999
  expect_bad "negative token id" "'-5' is not a token id" -m "$llama" --tokens 1,-5
  expect_bad "token with a plus sign" "'+5' is not a token id" -m "$llama" --tokens +5
  expect_bad "token with a space" "' 5' is not a token id" -m "$llama" --tokens " 5"
  expect_bad "unparsable token" "'abc' is not a token id" -m "$llama" --tokens 1,abc
  expect_bad "empty token list" "is not a token id" -m "$llama" --tokens ""
  expect_bad "trailing comma" "is not a token id" -m "$llama" --tokens 1,2,
  expect_bad "token file not npy" "not a .npy file" -m "$llama" --tokens-file "$work/tokens.txt"
  expect_bad "token file absent" "--tokens-file" -m "$llama" --tokens-file "$work/absent.npy"
  expect_bad "no tokens" "exactly one of --tokens" -m "$llama"
  expect_bad "both token inputs" "exactly one of --tokens" "${ok[@]}" --tokens-file "$work/tokens.txt"
  expect_bad "no model" "-m MODEL.gguf and -o DUMP_DIR are required" --tokens 1
  expect_bad "unknown option" "unknown option '--frobnicate'" "${ok[@]}" --frobnicate
  expect_bad "option without value" "-ub needs a value" "${ok[@]}" -ub
  expect_bad "zero ubatch" "-ub expects an integer from 1 to 1000000, got '0'" "${ok[@]}" -ub 0
  expect_bad "negative -n" "-n expects an integer from 0 to 1000000, got '-1'" "${ok[@]}" -n -1
  expect_bad "unknown option last" "unknown option '--frobnicate'" "${ok[@]}" -n 1 --frobnicate
  expect_bad "switch with a value" "--text takes no value" "${ok[@]}" --text=yes
  expect_bad "bad kv type" "--kv-type 'q8_0' is not supported" "${ok[@]}" --kv-type q8_0
  expect_bad "bad gelu" "--gelu 'erf' is not supported" "${ok[@]}" --gelu erf
  expect_bad "unknown fault" "--fault 'bogus:1' is not a fault" "${ok[@]}" --fault bogus:1
  expect_bad "fault without layer" "--fault 'eps' is not a fault" "${ok[@]}" --fault eps
  expect_bad "fault layer out of range" "the model has layers 0-" "${ok[@]}" --fault eps:99
  expect_bad "rope fault on gpt2" "applies no RoPE" -m "$gpt2" --tokens 1,2 --fault rope-offset:0
  expect_bad "bias fault without bias" "no attention output bias" "${ok[@]}" --fault no-attn-bias:0
  expect_bad "unknown checkpoint" "unknown checkpoint 'nope'" "${ok[@]}" --checkpoints nope
  expect_bad "layer out of range" "layer 99 is out of range" "${ok[@]}" --layers 99
  expect_bad "bad layer range" "bad layer range" "${ok[@]}" --layers 3-1
  expect_bad "too many positions for gpt2" "exceed the model's" -m "$gpt2" --tokens 1,2 -n 100000
  # the writer refuses a non-empty output directory (the last -o counts)
  expect_bad "non-empty output directory" "is not empty" "${ok[@]}" -o "$work/full"
  [ "$failures" -eq 0 ] || { echo "$failures bad-input cases failed"; exit 1; }
}

case "$mode" in
  vs-llama)  vs_llama "$@" ;;
  stepwise)  stepwise "$@" ;;
  fault)     fault "$@" ;;
  bad-input) bad_input "$@" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

#!/usr/bin/env bash
# engine_feed.sh - llorch-ref-engine --feed (tests/engine.cmake, checked by
# engine_feed_check.py).
#
#   engine_feed.sh ENGINE EXTRACTOR COMPARE PYTHON CHECK WORK MODE ARGS...
#
#   self       MODEL TOKENS [ENGINE ARGS]   the engine fed by its own dump (same args) writes the
#                                           same tensor files, byte for byte, and "fed" in its manifest
#   self-cross MODEL TOKENS [ENGINE ARGS]   a run of -ub 2 -n 2 fed by a one-step dump of all its
#                                           tokens equals the unfed -ub 2 -n 2 run, byte for byte
#   isolation  MODEL TOKENS LAYER [EXTRACTOR ARGS]
#                                           --fault eps:LAYER, fed by llama.cpp: only layer LAYER
#                                           fails; unfed: LAYER to the last fail (-n N in the
#                                           extractor args is given to the engine too)
#   bad-input  MODEL SAME_SHAPE GPT2 TOKENS references of another model (the same shape: the
#                                           fingerprint; another architecture), of other tokens,
#                                           without the rows: exit 2, one line, no dump
set -euo pipefail

engine="$1" extractor="$2" compare="$3" py="$4" check="$5" work="$6" mode="$7"
shift 7
rm -rf "$work" && mkdir -p "$work"

require_model() {
    if [ ! -f "$1" ]; then
        echo "SKIP: model $1 is absent on this machine"
        exit 77
    fi
}

run_engine() { # OUT ARGS...
    local out="$1"
    shift
    "$engine" -o "$work/$out" "$@" 2>"$work/$out.log" || { cat "$work/$out.log"; echo "FAIL: engine ($out)"; exit 1; }
}

extract() { # OUT MODEL TOKENS ARGS...
    local out="$1" model="$2" tokens="$3"
    shift 3
    "$extractor" -m "$model" --tokens "$tokens" -ctk f32 -ctv f32 --checkpoints all -t 2 -o "$work/$out" "$@" \
        >"$work/$out.log" 2>&1 || { cat "$work/$out.log"; echo "FAIL: extractor"; exit 1; }
}

self() {
    local model="$1" tokens="$2"
    shift 2
    require_model "$model"
    run_engine unfed -m "$model" --tokens "$tokens" "$@"
    run_engine fed -m "$model" --tokens "$tokens" "$@" --feed "$work/unfed"
    "$py" "$check" same "$work/unfed" "$work/fed" "$work/unfed"
}

self_cross() {
    local model="$1" tokens="$2"
    shift 2
    require_model "$model"
    run_engine unfed -m "$model" --tokens "$tokens" -ub 2 -n 2 "$@"
    run_engine one -m "$model" --tokens-file "$work/unfed/tokens.npy" "$@"
    run_engine fed -m "$model" --tokens "$tokens" -ub 2 -n 2 "$@" --feed "$work/one"
    "$py" "$check" same "$work/unfed" "$work/fed" "$work/one"
}

isolation() {
    local model="$1" tokens="$2" layer="$3"
    shift 3
    require_model "$model"
    local n_predict=0 args=("$@")
    for i in "${!args[@]}"; do
        if [ "${args[$i]}" = -n ]; then n_predict="${args[$((i + 1))]}"; fi
    done
    extract ref "$model" "$tokens" "$@"
    run_engine fed -m "$model" --tokens "$tokens" -n "$n_predict" --fault "eps:$layer" --feed "$work/ref"
    # unfed, its own generated tokens would differ: the reference's tokens, prompt and generated
    run_engine unfed -m "$model" --tokens-file "$work/ref/tokens.npy" --fault "eps:$layer"
    local n_layer
    n_layer=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["n_layer"])' "$work/ref/manifest.json")
    "$compare" "$work/ref" "$work/fed" --json >"$work/fed.json" || true
    "$compare" "$work/ref" "$work/unfed" --json >"$work/unfed.json" || true
    "$compare" "$work/ref" "$work/fed" >"$work/fed.txt" 2>&1 || true
    "$py" "$check" isolation "$work/fed.json" "$work/unfed.json" "$layer" "$n_layer" ||
        { cat "$work/fed.txt"; exit 1; }
}

failures=0
expect_bad() { # WHAT TEXT ENGINE ARGS...: exit 2, one stderr line with TEXT, no dump
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

bad_input() {
    local model="$1" other="$2" gpt2="$3" tokens="$4"
    require_model "$model"
    require_model "$other"
    require_model "$gpt2"
    # the same shape, other weights: only the fingerprint tells
    run_engine ref -m "$model" --tokens "$tokens" -n 1
    run_engine ref-other -m "$other" --tokens "$tokens"
    run_engine ref-attn -m "$model" --tokens "$tokens" --checkpoints attn_norm
    run_engine ref-short -m "$model" --tokens "$tokens" --layers 1
    run_engine ref-gpt2 -m "$gpt2" --tokens "$tokens"
    extract ref-cut "$model" "$tokens" -n 1 --positions 0-1
    local ok=(-m "$model" --tokens "$tokens")
    expect_bad "another model" "error: --feed $work/ref-other: the reference was made with another model" \
        "${ok[@]}" --feed "$work/ref-other"
    expect_bad "other tokens" "error: --feed $work/ref: token 2 at position 1 is not the reference's" \
        -m "$model" --tokens 1,2,3 --feed "$work/ref"
    expect_bad "more tokens than the reference" "2 generated tokens, but the reference has" \
        "${ok[@]}" -n 2 --feed "$work/ref"
    expect_bad "no residual rows" "holds no embd (the input of layer 0); make the reference with --checkpoints all" \
        "${ok[@]}" --feed "$work/ref-attn"
    expect_bad "rows of some layers only" "holds no ffn_inp of layer 0 (the FFN's input)" \
        "${ok[@]}" --feed "$work/ref-short"
    expect_bad "another architecture" "the reference's architecture is gpt2, this model's llama" \
        "${ok[@]}" --feed "$work/ref-gpt2"
    expect_bad "rows missing at the end" "no embd (the input of layer 0) at positions 2-" \
        "${ok[@]}" -n 1 --feed "$work/ref-cut"
    expect_bad "not a dump" "error: --feed: " "${ok[@]}" --feed "$work/absent"
    expect_bad "several sequences against one" "the reference decodes 1 sequence, this run 2" \
        -m "$model" --tokens "$tokens;1,2" --feed "$work/ref"
    [ "$failures" -eq 0 ] || { echo "$failures bad-input cases failed"; exit 1; }
}

case "$mode" in
self) self "$@" ;;
self-cross) self_cross "$@" ;;
isolation) isolation "$@" ;;
bad-input) bad_input "$@" ;;
*) echo "unknown mode $mode"; exit 2 ;;
esac

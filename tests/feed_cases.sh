#!/usr/bin/env bash
# Fed runs of llorch-checkpoint-extractor (--feed DUMP, docs/FORMAT.md "Fed runs").
#   feed_cases.sh CASE MODEL WORKDIR
# Environment: EXTRACTOR, PY (python3 with numpy), RPC_SERVER (case rpc).
# Exit 77: skipped (MODEL absent: ../shared/models is optional).
set -uo pipefail
case_name="$1"; model="$2"; work="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
x="$EXTRACTOR"
[ -f "$model" ] || { echo "skipped: $model is not present (../shared/models is optional)"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
cd "$work"

fail() { echo "FAIL: $*"; exit 1; }
checks() { "$PY" "$here/feed_checks.py" "$@" || exit 1; }
prompt="Once upon a time there was"
# an unfed dump and the dump fed by it, with the same settings
run() { "$x" -m "$model" -p "$prompt" --checkpoints all "$@" 2>err.txt || { cat err.txt; fail "$*"; }; }

# the gguf-py of the pinned llama.cpp (cached per commit) reads the norm weights
gguf_py() {
  LLORCH_GGUF_PY=1 bash "$repo/scripts/llama-cpp.sh" "$work/gguf.env" >/dev/null || fail "no gguf-py"
  sed -n 's/^LLAMA_GGUF_PY=//p' "$work/gguf.env"
}

# the layer whose l_out is perturbed: 1 where the model has 3 layers or more, else 0
perturbed_layer() {
  "$PY" -c "import json,sys; n=json.load(open(sys.argv[1]))['model']['n_layer']; print(1 if n >= 3 else 0)" "$1"
}

# expect_error REGEX ARGS... -o DIR: exit 2, one line naming the problem, DIR not created.
expect_error() {
  local pattern="$1"; shift
  "$x" "$@" >out.txt 2>err.txt
  local rc=$?
  [ "$rc" = 2 ] || { cat err.txt; fail "$* exited $rc, expected 2"; }
  grep -qE -- "error: .*$pattern" err.txt || { cat err.txt; fail "$*: message does not match /$pattern/"; }
  [ "$(wc -l <err.txt)" -le 1 ] || { cat err.txt; fail "$*: more than one line"; }
  [ ! -e "${*: -1}" ] || fail "$*: ${*: -1} was created"
  echo "ok: $(head -n1 err.txt)"
}

case "$case_name" in
  self)          # fed by its own dump, llama.cpp computes exactly that dump again: one step, decode steps,
                 # micro-batches, f32 and the default f16 KV cache
    for settings in "-ctk f32 -ctv f32" "-ctk f32 -ctv f32 -n 3" "-ctk f32 -ctv f32 -ub 2" "" "-n 3 -ub 2"; do
      rm -rf A B
      run $settings -o A
      run $settings --feed A -o B
      grep -q "fed from A: embd, l_out, ffn_inp replaced in every layer" err.txt || { cat err.txt; fail "summary"; }
      echo "[$settings]"; checks same A B --fed-from A
    done
    rm -rf B && "$x" -m "$model" --feed A --checkpoints all -n 3 -ub 2 -o B 2>err.txt || { cat err.txt; fail "tokens from A"; }
    "$PY" - <<'PY' || fail "the run without a prompt does not decode A's tokens"
import json
a, b = json.load(open("A/manifest.json")), json.load(open("B/manifest.json"))
assert a["tokens"] == b["tokens"] and "prompt" not in b, (a["tokens"], b["tokens"])
print(f"ok: --feed without a prompt decodes A's {len(a['tokens'])} tokens, the last 3 as generated steps")
PY
    ;;
  perturb)       # a perturbed l_out reaches the next layer's norm, and nothing before it changes
    run -ctk f32 -ctv f32 -o A
    layer="$(perturbed_layer A/manifest.json)"
    checks perturb A P "$layer"
    run -ctk f32 -ctv f32 --feed P -o B
    PYTHONPATH="$(gguf_py)" checks norm A P B "$model" "$layer"
    ;;
  rpc)           # over two RPC servers (-ngl 99: layers in remote buffers, written with ggml_backend_tensor_set):
                 # the CPU's bits, fed by the unfed dump and by a perturbed one
    start_server() {
      "$RPC_SERVER" "127.0.0.1:$1" >"rpc-$1.log" 2>&1 &
      servers="$servers $!"
      for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
    }
    servers=""
    trap 'kill $servers 2>/dev/null' EXIT
    port=$((20000 + RANDOM % 20000))
    start_server "$port"
    start_server "$((port + 1))"
    rpc=(--rpc "127.0.0.1:$port,127.0.0.1:$((port + 1))" -ngl 99)
    run -ctk f32 -ctv f32 -n 2 -o A
    run -ctk f32 -ctv f32 -n 2 --feed A "${rpc[@]}" -o B
    checks same A B --devices --fed-from A
    rm -rf A B && run -ctk f32 -ctv f32 -o A
    checks perturb A P "$(perturbed_layer A/manifest.json)"
    run -ctk f32 -ctv f32 --feed P -o Bcpu
    run -ctk f32 -ctv f32 --feed P "${rpc[@]}" -o Brpc
    "$PY" -c "import json; d={e.get('device') for e in json.load(open('Brpc/manifest.json'))['files']}; assert len(d - {None}) == 2, d" \
      || fail "the fed run over RPC read no tensor from the two servers"
    checks same Bcpu Brpc --devices --fed-from P
    ;;
  bad-input)     # each refusal: one line naming the input and the fix, exit 2, nothing written
    run -ctk f32 -ctv f32 -o A
    tokens="$("$PY" -c "import json; print(','.join(map(str, json.load(open('A/manifest.json'))['tokens'])))")"
    expect_error "does not go with --parallel" -m "$model" --feed A --parallel 2 -p "$prompt" -o o1
    other="$(dirname "$model")/tiny-llama-f32.gguf"
    [ "$model" != "$other" ] || other="$(dirname "$model")/tiny-gpt2-f32.gguf"
    expect_error "is a dump of another model \(" -m "$other" --feed A -o o2
    f16="${model%-f32.gguf}-f16.gguf"
    if [ -f "$f16" ]; then
      expect_error "another model file \(its model.fingerprint differs from that of" -m "$f16" --feed A -o o3
    fi
    changed="$("$PY" -c "import sys; t=sys.argv[1].split(','); t[1]=str(int(t[1]) + 1); print(','.join(t))" "$tokens")"
    expect_error "its token at position 1 is" -m "$model" --feed A --tokens "$changed" -o o4
    expect_error "holds [0-9]+ tokens, this run" -m "$model" --feed A --tokens "$tokens" -n 2 -o o5
    expect_error "-n 99: --feed A holds [0-9]+ tokens in all" -m "$model" --feed A -n 99 -o o5b
    "$x" -m "$model" -p "$prompt" -o bad-six 2>/dev/null || fail "the default selection"
    expect_error "holds no embd .*--checkpoints all" -m "$model" --feed bad-six -o o6
    "$x" -m "$model" -p "$prompt" --checkpoints all --layers 1 -o bad-layer 2>/dev/null || fail "--layers 1"
    expect_error "holds no l_out of layer 0" -m "$model" --feed bad-layer -o o7
    "$x" -m "$model" -p "$prompt" --checkpoints all --positions last -o bad-last 2>/dev/null || fail "--positions"
    expect_error "no embd .* at positions 0-" -m "$model" --feed bad-last -o o8
    "$PY" - <<'PY' || fail "making the bad dumps"
import json, os, shutil, zlib
import numpy as np
def edit(name, change):
    shutil.copytree("A", name)
    m = json.load(open(f"{name}/manifest.json"))
    e = next(e for e in m["files"] if e["checkpoint"] == "l_out" and e["layer"] == 0)
    a = change(np.load(f"{name}/{e['file']}"), e)
    np.save(f"{name}/{e['file']}", a)
    e.update(crc32=zlib.crc32(a.tobytes()), bytes=a.nbytes, shape=list(a.shape))
    json.dump(m, open(f"{name}/manifest.json", "w"))
def to_i32(a, e):
    e["dtype"] = "int32"
    return a.astype(np.int32)
edit("bad-i32", to_i32)
edit("bad-width", lambda a, e: np.ascontiguousarray(a[:, :-1]))
PY
    expect_error "dtype int32; the residual stream must be float32 or float16" -m "$model" --feed bad-i32 -o o9
    expect_error "channels, but the model's n_embd is" -m "$model" --feed bad-width -o o10
    expect_error "--feed: .*missing" -m "$model" --feed missing -o o11
    ;;
  *) fail "unknown case $case_name" ;;
esac

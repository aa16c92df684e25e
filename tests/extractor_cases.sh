#!/usr/bin/env bash
# End-to-end cases of llorch-checkpoint-extractor.
#   extractor_cases.sh CASE MODEL WORKDIR
# Environment: EXTRACTOR (the program), CHECKS (tests/dump_checks.py), PY (python3 with numpy).
set -uo pipefail
case_name="$1"; model="$2"; work="$3"
x="$EXTRACTOR"
rm -rf "$work" && mkdir -p "$work"
cd "$work"

fail() { echo "FAIL: $*"; exit 1; }
[ -f "$model" ] || { echo "skipped: $model is not present (../shared/models is optional)"; exit 77; }
checks() { "$PY" "$CHECKS" "$@" || exit 1; }

# expect_error EXPECTED_RC REGEX ARGS... : one line naming the problem, that exit code, no manifest.
expect_error() {
  local want="$1" pattern="$2"; shift 2
  "$x" "$@" >out.txt 2>err.txt
  local rc=$?
  [ "$rc" = "$want" ] || { cat err.txt; fail "$* exited $rc, expected $want"; }
  grep -qE -- "$pattern" err.txt || { cat err.txt; fail "$*: message does not match /$pattern/"; }
  [ "$(grep -cvE '^(usage: |  +llorch)' err.txt)" -le 1 ] || { cat err.txt; fail "$*: more than one error line"; }
  local out
  for out in "$@"; do
    if [ -f "$out/manifest.json" ]; then fail "$*: a manifest was written"; fi
  done
  echo "ok: $* -> exit $rc: $(grep -E -- "$pattern" err.txt | head -n1)"
}

case "$case_name" in
  dump)          # all six checkpoints + extras, f16 KV cache (llama.cpp's default), then f32
    "$x" -m "$model" -p "Once upon a time there was" --checkpoints all -o f16 2>log || { cat log; fail run; }
    checks structure f16 --kv f16 --extras
    "$x" -m "$model" -p "Once upon a time there was" -n 3 -ctk f32 -ctv f32 -o f32 2>log || { cat log; fail run; }
    checks structure f32 --kv f32
    ;;
  identify)      # the patch's names and the graph structure find the same tensors
    "$x" -m "$model" -p "The quick brown fox" -n 2 --checkpoints all --identify auto -o auto 2>/dev/null || fail auto
    "$x" -m "$model" -p "The quick brown fox" -n 2 --checkpoints all --identify structure -o structure 2>/dev/null \
      || fail structure
    checks same auto structure
    ;;
  steps)         # a prompt split over micro-batches plus generated tokens lines up with one batch
    prompt="One two three four five six seven eight nine ten eleven twelve thirteen"
    "$x" -m "$model" -p "$prompt" -n 3 -ub 4 -ctk f32 -ctv f32 --checkpoints all -o stepped 2>/dev/null \
      || fail stepped
    ids="$("$PY" -c "import json; print(','.join(map(str, json.load(open('stepped/manifest.json'))['tokens'])))")"
    "$x" -m "$model" --tokens "$ids" -ctk f32 -ctv f32 --checkpoints all -o single 2>/dev/null || fail single
    checks positions stepped single --atol 1e-4 --rtol 1e-3
    ;;
  positional)    # MODEL PROMPT DIR means exactly -m MODEL -p PROMPT -o DIR
    "$x" "$model" "Hello" pos 2>/dev/null || fail positional
    "$x" -m "$model" -p "Hello" -o flags 2>/dev/null || fail flags
    diff -r pos flags >/dev/null || fail "positional and flag dumps differ"
    echo "ok: positional and flag form give identical dumps ($(ls pos | wc -l) files)"
    printf 'Hello' > prompt.txt
    "$x" -m "$model" -f prompt.txt -o file 2>/dev/null || fail "-f"
    cmp -s pos/tokens.npy file/tokens.npy || fail "-f gives other tokens than -p"
    echo "ok: -f FILE gives the tokens of -p"
    expect_error 2 "expected MODEL PROMPT CHECKPOINT_DIR" "$model" "Hello"
    expect_error 2 "expected MODEL PROMPT CHECKPOINT_DIR" "$model" "Hello" d1 extra
    ;;
  text)          # --text: np.loadtxt gives the same float32 bits
    "$x" -m "$model" -p "Hello world" --text --layers 0 -o txt 2>/dev/null || fail text
    [ -f txt/checkpoint_01_attn_norm_l00_s000.txt ] || fail "no checkpoint_01_attn_norm_l00_s000.txt"
    checks text txt
    # an engine author's test finds layer 0 by the documented names alone, no manifest
    "$PY" - <<'PY' || exit 1
import numpy as np
names = ["01_attn_norm", "02_Qcur", "02_Kcur", "02_Vcur", "03_cache_k", "03_cache_v",
         "04_kq_soft_max", "05_attn_out_proj", "06_ffn_out"]
arrays = {}
for n in names:
    a = np.load(f"txt/checkpoint_{n}_l00_s000.npy")
    t = np.loadtxt(f"txt/checkpoint_{n}_l00_s000.txt", dtype=np.float32).reshape(a.shape)
    assert a.dtype == np.float32 and t.tobytes() == a.tobytes(), n
    arrays[n] = a
tokens = len(np.load("txt/tokens.npy"))
E = arrays["01_attn_norm"].shape[1]
H, D = arrays["02_Qcur"].shape[1:]
assert arrays["01_attn_norm"].shape == (tokens, E) and H * D == E
assert arrays["02_Qcur"].shape == (tokens, H, D) and arrays["02_Kcur"].shape[0] == tokens
assert arrays["03_cache_k"].shape == arrays["02_Kcur"].shape   # one step: K = T valid cells
assert arrays["04_kq_soft_max"].shape == (H, tokens, tokens)
assert arrays["05_attn_out_proj"].shape == arrays["06_ffn_out"].shape == (tokens, E)
print(f"ok: layer 0's six checkpoints load by their documented names (.npy and .txt, bit for bit), "
      f"{tokens} tokens, n_embd {E}, {H} heads")
PY
    ;;
  fa-default)    # flash attention does not depend on the selection: the rows of --checkpoints 1,6 are
                 # those of --checkpoints all bit for bit (flash attention off unless -fa on)
    args=(-m "$model" -p "Once upon a time there was" -n 2 -ub 4)
    "$x" "${args[@]}" --checkpoints 1,6 -o few 2>err.txt || { cat err.txt; fail "--checkpoints 1,6"; }
    "$x" "${args[@]}" --checkpoints all -o all 2>err.txt || { cat err.txt; fail "--checkpoints all"; }
    "$COMPARE" few all --preset exact >cmp.txt 2>&1 || { cat cmp.txt; fail "1,6 against all: compare exit $?"; }
    "$COMPARE" few all --preset exact --json >cmp.json 2>/dev/null || fail "compare --json"
    "$PY" - <<'PY' || exit 1
import json
r = json.load(open("cmp.json"))
rows = r["rows"]
few, every = (json.load(open(f"{d}/manifest.json")) for d in ("few", "all"))
n_layer = few["model"]["n_layer"]
assert len(rows) == 2 * n_layer, f"{len(rows)} rows compared, expected {2 * n_layer} (1 and 6 of each layer)"
bad = [(x["checkpoint"], x["layer"], x["status"], x["max_abs_err"]) for x in rows
       if x["status"] != "PASS" or x["max_abs_err"] != 0]
assert not bad, f"rows that differ between --checkpoints 1,6 and all: {bad}"
for m in (few, every):
    s = m["settings"]
    assert s["flash_attn"] is False, s["flash_attn"]
    assert s["flash_attn_reason"] == "off (the default, -fa off)", s["flash_attn_reason"]
assert few["tokens"] == every["tokens"], "the generated tokens differ"
print(f"ok: {len(rows)} rows of --checkpoints 1,6 identical to --checkpoints all (max_abs_err 0); flash attention off")
PY
    "$x" --help | tr -s ' \n' ' ' | grep -q "Flash attention is off unless -fa on: a checkpoint's numbers never depend on which checkpoints are selected" \
      || fail "--help does not say that flash attention is off unless -fa on"
    "$x" "${args[@]}" --checkpoints 1,6 -fa on -o on 2>err.txt || { cat err.txt; fail "-fa on"; }
    "$PY" -c "import json; s = json.load(open('on/manifest.json'))['settings']; assert s['flash_attn_reason'] == 'on (-fa on)', s" \
      || fail "-fa on is not recorded"
    echo "ok: --help says so; -fa on still runs (without kq_soft_max)"
    ;;
  stats)         # --stats prints one line per tensor and writes nothing
    "$x" -m "$model" -p "Hello world" --stats --layers 0 >stats.txt 2>err.txt || { cat err.txt; fail stats; }
    lines="$(grep -cE '^(attn_norm|Qcur|Kcur|Vcur|cache_k|cache_v|kq_soft_max|attn_out_proj|ffn_out) +0 +0 .* min .* max .* mean .* nan 0 inf 0$' stats.txt)"
    [ "$lines" = 9 ] || { cat stats.txt; fail "expected 9 stats lines for layer 0, got $lines"; }
    [ -z "$(ls -A .| grep -v -e stats.txt -e err.txt)" ] || fail "--stats wrote files"
    echo "ok: --stats: $lines lines, no files; e.g. $(head -n1 stats.txt | tr -s ' ')"
    ;;
  graph)         # --graph-regex: any llama.cpp tensor; repeated names get #1, #2, ...
    "$x" -m "$model" -p "Hello world" --graph-regex '^Qcur-0$' --graph-regex '^ffn_gate-1$' -o g 2>err.txt \
      || { cat err.txt; fail graph; }
    "$PY" - <<'PY' || exit 1
import json, numpy as np
m = json.load(open("g/manifest.json"))
names = [f["graph_name"] for f in m["files"]]
assert all(f["checkpoint"] == "graph" for f in m["files"]), names
assert names[0] == "Qcur-0" and "Qcur-0#1" in names and "ffn_gate-1" in names, names
ops = [f["graph_op"] for f in m["files"] if f["graph_name"].startswith("Qcur-0")]
for f in m["files"]:
    assert np.load("g/" + f["file"]).shape == tuple(f["shape"])
print(f"ok: --graph-regex wrote {names} (ops {ops})")
PY
    ;;
  repack)        # --repack is recorded as CPU-specific numerics; the default is portable
    "$x" -m "$model" -p "Hello there" --repack -o rp 2>/dev/null || fail repack
    "$x" -m "$model" -p "Hello there" -o np 2>/dev/null || fail no-repack
    "$PY" - <<'PY' || exit 1
import json, numpy as np
rp, np_ = (json.load(open(f"{d}/manifest.json")) for d in ("rp", "np"))
assert rp["settings"]["repack"] is True and rp["settings"]["numerics"].startswith("cpu-specific"), rp["settings"]
assert np_["settings"]["repack"] is False and np_["settings"]["numerics"].startswith("portable"), np_["settings"]
diff = max(float(np.abs(np.load(f"rp/{a['file']}") - np.load(f"np/{b['file']}")).max())
           for a, b in zip(rp["files"], np_["files"]))
print(f"ok: manifest marks --repack as cpu-specific numerics; on this CPU the largest difference is {diff:.3g}")
PY
    ;;
  rpc)           # tensors in remote buffers: one RPC server, then two splitting the layers; local bits
    start_server() {  # PORT -> a server on 127.0.0.1:PORT, its pid in $servers
      "$RPC_SERVER" "127.0.0.1:$1" >"rpc-$1.log" 2>&1 &
      servers="$servers $!"
      for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
    }
    servers=""
    trap 'kill $servers 2>/dev/null' EXIT
    port=$((20000 + RANDOM % 20000))
    start_server "$port"
    start_server "$((port + 1))"
    args=(-m "$model" -p "Once upon a time" -n 2 -ctk f32 -ctv f32 --checkpoints all)
    "$x" "${args[@]}" -ngl 0 -o local 2>/dev/null || fail "local extraction"
    "$x" "${args[@]}" --rpc "127.0.0.1:$port" -o remote 2>err.txt || { cat err.txt rpc-*.log; fail "over RPC"; }
    "$x" "${args[@]}" --rpc "127.0.0.1:$port,127.0.0.1:$((port + 1))" -ngl 99 -o split 2>err.txt \
      || { cat err.txt rpc-*.log; fail "over two RPC servers"; }
    checks structure remote --kv f32 --extras
    for d in remote split; do
      "$COMPARE" local "$d" --preset exact >compare.txt || { cat compare.txt; fail "$d and local dumps differ"; }
      ! grep -q "only in" compare.txt || { cat compare.txt; fail "$d lacks tensors the local dump has"; }
    done
    "$PY" - "$port" <<'PY' || exit 1
import sys
sys.path.insert(0, __import__("os").path.dirname(__import__("os").environ["CHECKS"]))
from dump_load import Dump
local, split = Dump("local"), Dump("split")
a, b = local.manifest["files"], split.manifest["files"]
assert [f["file"] for f in a] == [f["file"] for f in b], "the two dumps list other tensors"
for f, g in zip(a, b):
    assert local.array(f).tobytes() == split.array(g).tobytes(), f["file"]
devices = {g.get("device") for g in b}
port = sys.argv[1]
servers = {d for d in devices if d and port in d} | {d for d in devices if d and str(int(port) + 1) in d}
assert "device" not in a[0] and len(servers) == 2, devices
# on devices, the checkpoints are marked graph outputs and read after the graph, one round trip per
# device (the path a GPU takes); on the CPU alone, at graph splits
paths = {d: Dump(d).manifest["llama_cpp"] for d in ("local", "split")}
assert paths["split"]["capture"] == "outputs" and paths["split"]["capture_splits"] == 0, paths
assert paths["local"]["capture"] == "splits" and paths["local"]["capture_splits"] > 0, paths
print(f"ok: two RPC servers splitting the layers: {len(b)} tensors, read after the graph, equal the local "
      f"dump (read at {paths['local']['capture_splits']} splits) byte for byte; "
      f"read from {sorted(d for d in devices if d)}")
PY
    ;;
  bad-input)
    expect_error 2 "not found" -m missing.gguf -p hi -o o1
    head -c 100000 "$model" > truncated.gguf
    expect_error 2 "cannot load model" -m truncated.gguf -p hi -o o2
    printf 'not a model at all' > junk.gguf
    expect_error 2 "not a GGUF file" -m junk.gguf -p hi -o o3
    expect_error 2 "unknown checkpoint 'attn_nrom'" -m "$model" -p hi --checkpoints attn_nrom -o o4
    expect_error 2 "checkpoint number '7'" -m "$model" -p hi --checkpoints 7 -o o5
    expect_error 2 "layer 99 is out of range" -m "$model" -p hi --layers 0,99 -o o6
    expect_error 2 "bad layer range" -m "$model" -p hi --layers 3-1 -o o7
    mkdir -p nonempty && touch nonempty/keep
    expect_error 2 "is not empty" -m "$model" -p hi -o nonempty
    mkdir -p ro && chmod 555 ro
    if [ "$(id -u)" != 0 ]; then expect_error 2 "not writable|cannot create" -m "$model" -p hi -o ro/sub; fi
    touch afile
    expect_error 2 "cannot create output directory|not a directory" -m "$model" -p hi -o afile/sub
    expect_error 2 "exceed the context of 256" -m "$model" -p hi -n 300 -c 256 -o o8
    expect_error 2 "outside the vocabulary" -m "$model" --tokens 1,99999999 -o o9
    expect_error 2 "'x' is not a token id" -m "$model" --tokens 1,x -o o10
    expect_error 2 "'\\+5' is not a token id" -m "$model" --tokens +5 -o o10b
    expect_error 2 "' 5' is not a token id" -m "$model" --tokens " 5" -o o10c
    expect_error 2 "unknown option '--frobnicate'" -m "$model" -p hi --frobnicate 1 -o o11
    expect_error 2 "expects an integer" -m "$model" -p hi -t zero -o o12
    expect_error 2 "unknown option '--frobnicate'" -m "$model" -p hi -o o12b --frobnicate
    expect_error 2 "--seed expects an integer from 0 to 4294967295, got 'x'" -m "$model" -p hi --seed x -o o12c
    expect_error 2 "-t needs a value" -m "$model" -p hi -o o12d -t
    expect_error 2 "--raw takes no value" -m "$model" -p hi --raw=1 -o o12e
    expect_error 2 "-fa expects on, off or auto" -m "$model" -p hi -fa maybe -o o13
    expect_error 2 "kq_soft_max cannot be captured with -fa on" -m "$model" -p hi -fa on -o o14
    expect_error 2 "kq_soft_max cannot be captured with -fa auto" -m "$model" -p hi -fa auto -o o14b
    expect_error 2 "error: --stats writes nothing, so the output directory 'o19' would stay empty; drop --stats" \
      -m "$model" -p hi --stats -o o19
    [ ! -e o19 ] || fail "--stats -o o19 created o19"
    expect_error 2 "error: --stats writes nothing, so the output directory 'o19b'" --stats "$model" hi o19b
    mkdir -p adir
    expect_error 2 "error: model 'adir' is a directory; give the path of a .gguf file with -m" -m adir -p hi -o o20
    expect_error 2 "give exactly one of" -m "$model" -o o15
    expect_error 2 "cannot read prompt file 'missing.txt'" -m "$model" -f missing.txt -o o18
    expect_error 2 "unknown cache type" -m "$model" -p hi -ctk f8 -o o16
    expect_error 2 "cannot connect to RPC server '127.0.0.1:1'" -m "$model" -p hi --rpc 127.0.0.1:1 -o o17
    # a full disk: the file-size limit makes writes fail like ENOSPC does
    long="$(printf 'a full disk %.0s' $(seq 1 40))"
    ( ulimit -f 4; "$x" -m "$model" -p "$long" -o full >out.txt 2>err.txt ); rc=$?
    [ "$rc" = 1 ] || { cat err.txt; fail "full output: exit $rc, expected 1"; }
    [ "$(wc -l < err.txt)" -le 2 ] || { cat err.txt; fail "full output: more than one error line"; }
    grep -q "writing .* failed" err.txt || { cat err.txt; fail "full output: no write error"; }
    [ ! -e full/manifest.json ] || fail "full output: a manifest was written"
    ! ls full/*.part >/dev/null 2>&1 || fail "full output: .part files left"
    [ ! -e full ] || { ls -A full; fail "full output: the files written before the error were left"; }
    echo "ok: full output directory -> exit 1: $(head -n1 err.txt)"
    "$x" -m "$model" -p "$long" -o full 2>err.txt || { cat err.txt; fail "full output: the same run again failed"; }
    echo "ok: what the full run wrote was removed, and the same command then runs"
    ;;
  forms)         # npz and safetensors hold the npy form's bits, read by numpy and a spec reader; compare reads all
    args=(-m "$model" -p "Once upon a time" -n 3 --checkpoints all --dtype native)
    for form in npy npz safetensors; do
      "$x" "${args[@]}" --format "$form" -o "d-$form" 2>/dev/null || fail "--format $form"
    done
    "$PY" "$(dirname "$CHECKS")/container_checks.py" d-npy d-npz d-safetensors || exit 1
    for pair in "d-npy d-npz" "d-npz d-safetensors" "d-safetensors d-npy"; do
      # shellcheck disable=SC2086
      "$COMPARE" $pair --preset exact -q >cmp.txt 2>&1 || { cat cmp.txt; fail "compare $pair"; }
    done
    echo "ok: compare reads npy, npz and safetensors dumps of one run as bit-identical"
    # --format auto (the default): one step keeps its files, several go into one .npz
    "$x" -m "$model" -p "Once upon a time" -o auto1 2>/dev/null || fail "auto, one step"
    "$x" -m "$model" -p "Once upon a time" -n 2 -o auto3 2>/dev/null || fail "auto, three steps"
    [ -f auto1/checkpoint_01_attn_norm_l00_s000.npy ] && [ ! -e auto1/checkpoints.npz ] || fail "auto: one step is not npy"
    [ -f auto3/checkpoints.npz ] && [ ! -e auto3/checkpoint_01_attn_norm_l00_s000.npy ] || fail "auto: steps are not npz"
    "$x" -m "$model" -p "Once upon a time" -n 2 --text --layers 0 -o autotext 2>/dev/null || fail "auto --text"
    [ -f autotext/checkpoint_01_attn_norm_l00_s002.txt ] || fail "auto with --text is not the npy form"
    expect_error 2 "--text .* npz form" -m "$model" -p "Hi" --text --format npz -o t1
    expect_error 2 "--format expects auto, npy, npz or safetensors" -m "$model" -p "Hi" --format zip -o t2
    ;;
  split)         # the three capture paths give the same bytes: checkpoints marked graph outputs and
                 # read after the graph (--output-mb N with the patched llama.cpp; the default where a
                 # GPU or RPC device computes), merged graph splits (the CPU's default, --output-mb 0,
                 # and without the patch) and one split per tensor (--split-each)
    path_is() {  # DUMP PATH SPLITS: llama_cpp.capture is PATH; SPLITS: "none" or "some" splits added
      "$PY" - "$@" <<'PY' || exit 1
import json, sys
d, want, splits = sys.argv[1:4]
l = json.load(open(f"{d}/manifest.json"))["llama_cpp"]
assert l["capture"] == want, f"{d}: capture is {l['capture']}, expected {want}"
assert (l["capture_splits"] == 0) == (splits == "none"), f"{d}: {l['capture_splits']} splits added"
print(f"ok: {d}: capture {want}, {l['capture_splits']} splits added")
PY
    }
    for fa in off on; do
      sel="all"; [ "$fa" = on ] && sel="1-3,5,6,extras"
      args=(-m "$model" -p "One two three four five six seven" -n 3 -ub 4 --checkpoints "$sel" -fa "$fa"
            --graph-regex '^(kq|kqv_out|ffn_inp)-[0-9]+$')
      "$x" "${args[@]}" --output-mb 512 -o "outputs-$fa" 2>/dev/null || fail "--output-mb 512, -fa $fa"
      "$x" "${args[@]}" -o "merged-$fa" 2>/dev/null || fail "default, -fa $fa"
      "$x" "${args[@]}" --split-each -o "each-$fa" 2>/dev/null || fail "--split-each, -fa $fa"
      path_is "outputs-$fa" outputs none
      path_is "merged-$fa" splits some
      path_is "each-$fa" splits some
      checks same "outputs-$fa" "each-$fa"
      checks same "merged-$fa" "each-$fa"
    done
    # a budget too small for every checkpoint: the first ones after the graph, the rest at splits
    long="$(printf 'word %.0s' $(seq 1 120))"
    args=(-m "$model" -p "$long" -n 1 --checkpoints all -fa off)
    "$x" "${args[@]}" --output-mb 1 -o small 2>/dev/null || fail "--output-mb 1"
    "$x" "${args[@]}" --split-each -o small-each 2>/dev/null || fail "--split-each, long prompt"
    path_is small outputs some
    checks same small small-each
    ;;
  positions)     # --positions keeps some token rows: the same bits as the full dump's rows, compared on them
    ids="$(seq 1 40 | awk '{printf "%s%d", (NR > 1 ? "," : ""), $1 * 37 + 100}')"
    "$x" -m "$model" --tokens "$ids" -ctk f32 -ctv f32 --checkpoints all -o full 2>/dev/null || fail full
    "$x" -m "$model" --tokens "$ids" -ctk f32 -ctv f32 --checkpoints all --positions last:4 -o last4 2>/dev/null \
      || fail "--positions last:4"
    "$COMPARE" full last4 --preset exact --allow-missing >cmp.txt 2>&1 || { cat cmp.txt; fail "last:4 against the full dump"; }
    grep -q "36 only in the reference, 0 only in the candidate (not compared)" cmp.txt \
      || { cat cmp.txt; fail "the report does not say that 36 rows were not compared"; }
    "$PY" - <<'PY' || exit 1
import json, numpy as np
full, part = (json.load(open(f"{d}/manifest.json")) for d in ("full", "last4"))
by_key = {(f["checkpoint"], f["layer"], f["step"]): f for f in full["files"]}
n = 0
for f in part["files"]:
    g = by_key[(f["checkpoint"], f["layer"], f["step"])]
    a, b = np.load("last4/" + f["file"]), np.load("full/" + g["file"])
    if "token" in f["axes"] and not f.get("raw"):
        t = f["axes"].index("token")
        assert f["positions"] == [36, 37, 38, 39], f["positions"]
        b = np.take(b, f["positions"], axis=t)
    else:
        assert "positions" not in f, f["file"]      # key axes and the cache stay whole
    assert a.shape == b.shape and a.tobytes() == b.tobytes(), f["file"]
    n += 1
print(f"ok: {n} tensors of --positions last:4 hold the full dump's rows 36-39 bit for bit; caches whole")
PY
    # generation: only the steps that hold a kept position are captured
    "$x" -m "$model" -p "Once upon a time" -n 3 --positions last --format npy -o gen 2>/dev/null || fail "gen"
    steps="$("$PY" -c "import json; print(sorted({f['step'] for f in json.load(open('gen/manifest.json'))['files']}))")"
    [ "$steps" = "[3]" ] || fail "--positions last with -n 3 captured steps $steps, expected [3]"
    echo "ok: --positions last with -n 3 captures step 3 only"
    expect_error 2 "overlap" -m "$model" --tokens "$ids" --positions 0-5,4-8 -o p1
    expect_error 2 "outside the run's 40 tokens" -m "$model" --tokens "$ids" --positions 40 -o p2
    expect_error 2 "is not a position" -m "$model" --tokens "$ids" --positions "" -o p3
    expect_error 2 "only 40 tokens" -m "$model" --tokens "$ids" --positions last:41 -o p4
    ;;
  parallel)      # --parallel: 4 prompts of different lengths in one batch = 4 runs of one prompt each
    printf 'Once upon a time\nThe quick brown fox jumps over the lazy\nHi\nA long time ago in a galaxy far far away there was\n' \
      >prompts.txt
    for ub in 512 8; do   # one micro-batch for all prompts; then micro-batches that cut across sequences
      "$x" -m "$model" -f prompts.txt --parallel 4 -n 3 -ub "$ub" -ctk f32 -ctv f32 --checkpoints all \
        -o "batched-$ub" 2>/dev/null || fail "--parallel 4 -ub $ub"
      for s in 0 1 2 3; do
        prompt="$(sed -n "$((s + 1))p" prompts.txt)"
        [ -d "single-$s" ] || "$x" -m "$model" -p "$prompt" -n 3 -ctk f32 -ctv f32 --checkpoints all \
          -o "single-$s" 2>/dev/null || fail "single $s"
        "$COMPARE" "batched-$ub" "single-$s" --seq "$s" >"cmp-$ub-$s.txt" 2>&1 \
          || { cat "cmp-$ub-$s.txt"; fail "-ub $ub: sequence $s of the batch against its single run"; }
        grep -q "only in" "cmp-$ub-$s.txt" && { cat "cmp-$ub-$s.txt"; fail "-ub $ub: sequence $s: rows only in one"; }
      done
      echo "ok: --parallel 4 -n 3 -ub $ub: each sequence compares clean with its run alone"
    done
    "$COMPARE" batched-512 batched-8 >cmp-ub.txt 2>&1 || { cat cmp-ub.txt; fail "-ub 512 against -ub 8, all sequences"; }
    "$PY" - <<'PY' || exit 1
import json
m = json.load(open("batched-512/manifest.json"))
assert m["format_version"] == 3 and [s["seq"] for s in m["sequences"]] == [0, 1, 2, 3], m["sequences"]
n = {s["seq"]: len(s["tokens"]) for s in m["sequences"]}
owner = {}
for f in m["files"]:
    if f["checkpoint"] == "cache_k" and f["layer"] == 0:
        assert f["n_key"] == len(f["cells"]) == f["pos_start"] + f["n_pos"], f["file"]
        for c in f["cells"]:
            assert owner.setdefault(c, f["seq"]) == f["seq"], f"cell {c} in two sequences"
assert sorted(owner) == list(range(sum(n.values()))), "the cells are not the run's tokens"
assert m["settings"]["n_parallel"] == 4 and m["settings"]["kv_unified"] is True
print(f"ok: format 3, cells {len(owner)} = the run's tokens, each cell in one sequence")
PY
    expect_error 2 "fewer than --parallel 5" -m "$model" -f prompts.txt --parallel 5 -o p1
    expect_error 2 "4 lists split by ';' for --parallel 3" -m "$model" --tokens "1,2;3;4,5;6" --parallel 3 -o p2
    expect_error 2 "does not go with --parallel" -m "$model" -f prompts.txt --parallel 2 --positions last -o p3
    expect_error 2 "from 1 to 256" -m "$model" -f prompts.txt --parallel 257 -o p4
    ;;
  interrupt)     # Ctrl-C leaves whole files and a manifest that says incomplete, in each form
    for form in npy npz safetensors; do
      "$x" -m "$model" -p "Once" -n 4000 -c 4096 --checkpoints 1 --layers 0 --format "$form" --progress \
        -o "int-$form" 2>"err-$form.txt" &
      pid=$!
      for _ in $(seq 1 200); do grep -q '^step 20:' "err-$form.txt" && break; sleep 0.05; done
      kill -INT "$pid"
      wait "$pid"; rc=$?
      [ "$rc" = 130 ] || { cat "err-$form.txt"; fail "$form: interrupted run exited $rc, expected 130"; }
      checks incomplete "int-$form"
    done
    ;;
  full-disk)     # a full file system (a 64 KiB tmpfs; needs root): each form removes what it wrote, and
                 # the same command then runs into the same directory
    [ "$(id -u)" = 0 ] || { echo "skipped: mounting a small tmpfs needs root"; exit 77; }
    mkdir -p small
    mount -t tmpfs -o size=64k tmpfs small 2>/dev/null || { echo "skipped: cannot mount a tmpfs here"; exit 77; }
    trap 'umount "$work/small" 2>/dev/null' EXIT
    long="$(printf 'a full disk %.0s' $(seq 1 40))"
    mkdir small/kept
    for args in "--format npy" "--format npy --text --layers 0" "--format npz -n 2" "--format safetensors -n 2"; do
      for dir in small/new small/kept; do
        # shellcheck disable=SC2086
        "$x" -m "$model" -p "$long" $args -o "$dir" >out.txt 2>full.txt; rc=$?
        [ "$rc" = 1 ] || { cat full.txt; fail "$args -o $dir on a full disk: exit $rc, expected 1"; }
        grep -q "No space left on device; free space" full.txt || { cat full.txt; fail "$args: no ENOSPC message"; }
        [ -z "$(ls -A small | grep -v '^kept$')" ] && [ -z "$(ls -A small/kept)" ] \
          || { ls -AR small; fail "$args -o $dir: files were left"; }
      done
      # shellcheck disable=SC2086
      "$x" -m "$model" -p "a short prompt" $args --layers 0 --checkpoints 1 -o small/kept 2>err.txt \
        || { cat err.txt; fail "$args: a run that fits after the failed one"; }
      rm -rf small/kept/*
      echo "ok: full disk, $args: exit 1, nothing left, and the directory takes the next run: $(head -n1 full.txt)"
    done
    ;;
  output)        # what people read: the summary, -v's details, --progress, --help
    "$x" -m "$model" -p "Hello" -o one 2>err.txt || { cat err.txt; fail run; }
    cat err.txt
    grep -qE "^llorch-checkpoint-extractor: wrote [0-9]+ tensors \(.*\) of [0-9]+ tokens? in 1 step to one$" err.txt \
      || fail "the first summary line"
    grep -q "^  files: [0-9]* .npy, tokens.npy, manifest.json$" err.txt || fail "the files line"
    grep -q "^next: llorch-checkpoint-compare one YOUR_DUMP" err.txt || fail "the next step"
    ! grep -qE "^ *(decode|capture:|copies held)" err.txt || fail "internals without -v"
    [ "$(wc -l <err.txt)" = 3 ] || fail "more than three lines without -v"
    "$x" -m "$model" -p "Hello" -n 2 --text --progress -v -o text 2>err.txt || { cat err.txt; fail run; }
    grep -q "^  decode [0-9.]* s, of which" err.txt || fail "-v: no decode line"
    grep -q "^  capture: [0-9]* steps read after the graph" err.txt || fail "-v: no capture line"
    grep -q "^  copies held at most" err.txt || fail "-v: no memory line"
    grep -qE "of [0-9]+ tokens in 3 steps to text$" err.txt || fail "-v: the summary line"
    n="$(ls text/checkpoint_*.npy | wc -l)"
    grep -q "^  files: $n .npy and $n .txt ($((2 * n)) in all)" err.txt || fail "--text: the files line"
    # --progress numbers the steps as the files are: s000, s001, s002
    for step in 0 1 2; do
      grep -q "^step $step: " err.txt || fail "--progress: no step $step"
      ls text/*_s00$step.npy >/dev/null || fail "no files of step $step"
    done
    ! grep -q "^step 3: " err.txt || fail "--progress counts from 1"
    "$x" -m "$model" -p "Hello" --stats 2>err.txt >/dev/null || fail "--stats"
    grep -q "nothing written" err.txt && grep -q "^next: to write these tensors" err.txt || { cat err.txt; fail "--stats summary"; }
    "$x" --help >help.txt || fail "--help"
    grep -q "numbered .npy files for a run of one decode step, one .npz for a run" help.txt || fail "--help: the form"
    grep -q "auto (default): a run of one decode step" help.txt || fail "--help: --format auto"
    for flag in --seed --identify; do
      sed -n '/^Recorded in the manifest, and nothing else/,/^$/p' help.txt | grep -q -- "$flag" \
        || fail "--help: $flag is not among the options that change nothing"
    done
    echo "ok: the summary, -v, --progress, --text and --help say what was done"
    ;;
  *) fail "unknown case $case_name" ;;
esac

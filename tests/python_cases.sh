#!/usr/bin/env bash
# The Python package's tests (tests/python.cmake):
#   python_cases.sh roundtrip|torch|gpt2|fed|install|errors WORK [MODEL]
# MODEL: a GGUF; for torch, qwen2 (made here); for fed, an architecture (llama, qwen2, gpt2: a
# 6-layer model made here, so that a fault has layers after it).
# Environment: PY (a python3 with numpy), EXTRACTOR, ENGINE, COMPARE, MAKER,
# LLAMA_CPP_DIR (empty: the pinned source). Exit 77: skipped (no torch, no venv).
set -uo pipefail
case_name="$1" work="$2" model="${3:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
rm -rf "$work" && mkdir -p "$work"

case "$case_name" in
  roundtrip)
    PYTHONPATH="$repo/python" exec "$PY" "$here/python_checks.py" roundtrip "$work/run" "$model" ;;
  errors)
    PYTHONPATH="$repo/python" exec "$PY" "$here/python_checks.py" errors "$work/run" "" ;;
  torch|gpt2|fed)
    "$PY" -c 'import torch' 2>/dev/null || { echo "SKIP: no torch (Debian: apt-get install python3-torch)"; exit 77; }
    # llama.cpp's own gguf-py reads the GGUF: from the pinned source, cached per commit
    LLORCH_GGUF_PY=1 bash "$repo/scripts/llama-cpp.sh" "$work/gguf.env" || exit 1
    gguf_py="$(sed -n 's/^LLAMA_GGUF_PY=//p' "$work/gguf.env")"
    if [ "$case_name" = fed ]; then  # 6 layers: a fault in layer 3 has layers after it
      arch="$model" model="$work/fed-$model-f32.gguf"
      case "$arch" in
        gpt2) "$MAKER" --arch gpt2 --layers 6 --embd 64 --heads 4 --ff 256 --seed 9 -o "$model" || exit 1 ;;
        *) "$MAKER" --arch "$arch" --layers 6 --embd 64 --heads 4 --heads-kv 2 --ff 128 --seed 7 -o "$model" || exit 1 ;;
      esac
    elif [ "$model" = qwen2 ]; then  # made here: the tiny_models fixture has no qwen2
      model="$work/tiny-qwen2-f32.gguf"
      "$MAKER" --arch qwen2 --layers 2 --embd 64 --heads 4 --heads-kv 2 --ff 128 --seed 5 -o "$model" || exit 1
    fi
    PYTHONPATH="$repo/python:$here:$gguf_py" exec "$PY" "$here/python_checks.py" "$case_name" "$work/run" "$model" ;;
  install)  # pip install ./python offline, in a fresh venv, from a copy of the source
    "$PY" -m venv --system-site-packages "$work/venv" >/dev/null 2>&1 \
      || { echo "SKIP: no venv module (Debian: apt-get install python3-venv)"; exit 77; }
    cp -r "$repo/python" "$work/src"
    "$work/venv/bin/pip" install --no-build-isolation --no-index "$work/src" >"$work/pip.log" 2>&1 \
      || { cat "$work/pip.log"; echo "FAIL: pip install"; exit 1; }
    cd "$work" && "$work/venv/bin/python" -c '
import llorch_checkpoint, numpy as np, sys
assert llorch_checkpoint.__file__.startswith(sys.prefix), llorch_checkpoint.__file__
from llorch_checkpoint import Dump, DumpWriter
with DumpWriter("d") as w:
    w.set_run(producer="t", architecture="llama", n_layer=1, n_embd=2, n_head=1, n_head_kv=1, n_vocab=9, tokens=[1, 2])
    w.write("attn_norm", np.arange(4, dtype=np.float32).reshape(2, 2), layer=0)
assert (Dump("d").get("attn_norm", 0) == np.load("d/checkpoint_01_attn_norm_l00_s000.npy")).all()
print("installed", llorch_checkpoint.__version__, "at", llorch_checkpoint.__file__)' || exit 1
    echo PASS ;;
  *) echo "unknown case $case_name"; exit 2 ;;
esac

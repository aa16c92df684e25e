#!/usr/bin/env bash
# The recurrent-layer references (tests/recurrent.cmake, docs/RECURRENT.md):
#   recurrent_cases.sh SOURCE WORK MODEL [recurrent_reference.py options]
# runs the extractor on MODEL and checks its tensors (SOURCE graph: llama.cpp's
# graph tensors and recurrent state; checkpoints: the extractor's per-layer
# checkpoints) against tests/recurrent_reference.py's numpy forward pass.
# Environment: PY (python3 with numpy), EXTRACTOR, LLAMA_CPP_DIR (empty: the
# pinned source). Exit 77: skipped (no model).
set -uo pipefail
source="$1" work="$2" model="$3"
shift 3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
[ -f "$model" ] || { echo "SKIP: no model $model"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
# llama.cpp's own gguf-py reads the GGUF: from the pinned source, cached per commit
LLORCH_GGUF_PY=1 bash "$repo/scripts/llama-cpp.sh" "$work/gguf.env" >"$work/gguf.log" 2>&1 \
  || { cat "$work/gguf.log"; echo "FAIL: no gguf-py"; exit 1; }
gguf_py="$(sed -n 's/^LLAMA_GGUF_PY=//p' "$work/gguf.env")"
exec "$PY" "$here/recurrent_reference.py" "$model" --source "$source" --extractor "$EXTRACTOR" \
  --work "$work" --gguf-py "$gguf_py" "$@"

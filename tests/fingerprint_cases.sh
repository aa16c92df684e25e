#!/usr/bin/env bash
# tests/fingerprint.cmake: fingerprint_cases.sh values|compare WORK DATA
# llama.cpp's gguf-py (the test's independent GGUF reader) comes from the
# pinned source, cached per commit, as in tests/python_cases.sh.
set -uo pipefail
case_name="$1" work="$2" data="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
mkdir -p "$work"
LLORCH_GGUF_PY=1 bash "$repo/scripts/llama-cpp.sh" "$work/../gguf-$case_name.env" || exit 1
gguf_py="$(sed -n 's/^LLAMA_GGUF_PY=//p' "$work/../gguf-$case_name.env")"
PYTHONPATH="$repo/python:$gguf_py" exec "$PY" "$here/fingerprint_check.py" "$case_name" "$work" "$data"

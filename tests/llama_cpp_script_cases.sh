#!/usr/bin/env bash
# Bad input to scripts/llama-cpp.sh: each is one clear error line, a
# non-zero exit, and no cache entry that a later run would trust.
#   llama_cpp_script_cases.sh SCRIPT WORKDIR [VERIFIED_TARBALL]
set -uo pipefail
script="$1"; work="$2"; tarball="${3:-}"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

# expect_failure NAME REGEX ENV... : runs the script with a fresh cache.
expect_failure() {
  local name="$1" pattern="$2"; shift 2
  local cache="$work/cache-$name"
  env LLORCH_CACHE_DIR="$cache" "$@" bash "$script" "$work/$name.env" >/dev/null 2>"$name.err"
  local rc=$?
  [ "$rc" != 0 ] || fail "$name: exit 0"
  grep -qE -- "error: .*$pattern" "$name.err" || { cat "$name.err"; fail "$name: no error matching /$pattern/"; }
  [ "$(grep -c 'error:' "$name.err")" = 1 ] || { cat "$name.err"; fail "$name: not exactly one error line"; }
  [ ! -e "$work/$name.env" ] || fail "$name: a result file was written"
  if [ -d "$cache/llama.cpp" ] && find "$cache/llama.cpp" -mindepth 1 -maxdepth 1 ! -name '.lock' | grep -q .; then
    find "$cache/llama.cpp" -maxdepth 2; fail "$name: a cache entry was left behind"
  fi
  echo "ok: $name -> exit $rc: $(grep 'error:' "$name.err")"
}

expect_failure no-npm "'npm-missing' not found" NPM=npm-missing LLAMA_CPP_DIR=
expect_failure no-network "npm could not fetch" LLAMA_CPP_DIR= npm_config_registry=http://127.0.0.1:9/ \
  npm_config_cache="$work/npm-cache" npm_config_fetch_retries=0 npm_config_fetch_timeout=5000
printf 'not the package' | gzip > fake.tgz
expect_failure integrity "integrity mismatch" LLAMA_CPP_DIR= LLORCH_LLAMA_TARBALL="$work/fake.tgz"
[ -f fake.tgz ] || fail "integrity: the user's tarball was deleted"
expect_failure no-dir "is not a directory" LLAMA_CPP_DIR="$work/nowhere"
mkdir -p not-llama && touch not-llama/CMakeLists.txt
expect_failure not-llama "is not a llama.cpp source tree" LLAMA_CPP_DIR="$work/not-llama"
if [ -n "$tarball" ] && [ -f "$tarball" ]; then
  expect_failure no-git "'git-missing' not found" GIT=git-missing LLAMA_CPP_DIR= LLORCH_LLAMA_TARBALL="$tarball"
  printf 'diff --git a/src/llama-graph.cpp b/src/llama-graph.cpp\n--- a/src/llama-graph.cpp\n+++ b/src/llama-graph.cpp\n@@ -1,1 +1,1 @@\n-no such line\n+still none\n' > bad.patch
  expect_failure bad-patch "does not apply" LLAMA_CPP_DIR= LLORCH_LLAMA_TARBALL="$tarball" LLORCH_LLAMA_PATCH="$work/bad.patch"
else
  echo "skip: no verified tarball (llama.cpp not from the pinned source): no-git and bad-patch not run"
fi

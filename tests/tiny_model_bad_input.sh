#!/usr/bin/env bash
# Every impossible input is refused with exit status 2, one line on stderr
# that names the problem, and no output file (nor FILE.part) left behind.
#   tiny_model_bad_input.sh MAKER DATA_DIR
set -euo pipefail
maker="$1"
dir="$2/bad-input"
rm -rf "$dir"
mkdir -p "$dir"
out="$dir/out.gguf"
failed=0

# refused REGEX ARGS... : runs the maker with ARGS and -o $out (unless ARGS has -o).
refused() {
  local regex="$1"; shift
  local args=("$@")
  [[ " ${args[*]} " == *" -o "* || " ${args[*]} " == *" --help "* ]] || args+=(-o "$out")
  local rc=0
  "$maker" "${args[@]}" > "$dir/stdout" 2> "$dir/stderr" || rc=$?
  local why=""
  if [ "$rc" -ne 2 ]; then why="exit status $rc, expected 2"
  elif ! grep -Eq -- "$regex" "$dir/stderr"; then why="stderr does not match /$regex/"
  elif [ "$(wc -l < "$dir/stderr")" -ne 1 ]; then why="stderr is not one line"
  elif [ -e "$out" ] || [ -e "$out.part" ]; then why="an output file was left behind"
  fi
  if [ -n "$why" ]; then
    echo "FAIL: ${args[*]}: $why; stderr was:" >&2
    cat "$dir/stderr" >&2
    failed=1
  fi
  rm -f "$out" "$out.part"
}

echo "not a gguf" > "$dir/text.txt"
printf 'GGUF\003\000\000\000garbage' > "$dir/damaged.gguf"

refused '--embd 65 is not divisible by --heads 4'   --arch gpt2 --embd 65 --heads 4
refused '--heads 4 is not divisible by --heads-kv 3' --arch llama --heads 4 --heads-kv 3
refused '--heads 2 is not divisible by --heads-kv 4' --arch llama --heads 2 --heads-kv 4
refused '--layers 0 is out of range'                --arch gpt2 --layers 0
refused '--heads 0 is out of range'                 --arch llama --heads 0
refused '--embd 0 is out of range'                  --arch gpt2 --embd 0
refused '--heads-kv 0 is out of range'              --arch llama --heads-kv 0
refused '--ctx 0 is out of range'                   --arch gpt2 --ctx 0
refused '--ff -5 is out of range'                   --arch gpt2 --ff -5
refused "--layers expects an integer"                --arch gpt2 --layers two
refused "--seed '-1' is not a number"               --arch gpt2 --seed -1
refused "--rope-base 'zero' is not a positive"      --arch llama --rope-base zero
refused 'q8_0 needs rows that are a multiple of 32 values, but --embd is 48' --arch llama --embd 48 --heads 4 --type q8_0
refused 'q8_0 needs rows that are a multiple of 32 values, but --ff is 100'  --arch llama --embd 64 --ff 100 --type q8_0
refused 'q4_K needs rows that are a multiple of 256 values, but --embd is 128' --arch llama --embd 128 --type q4_K
refused 'q4_K needs rows that are a multiple of 256 values, but --ff is 300'  --arch gpt2 --embd 256 --ff 300 --type q4_K
refused 'head size --embd/--heads = 5 is odd'       --arch llama --embd 20 --heads 4
refused "--vocab $dir/missing.gguf: cannot open"    --arch gpt2 --vocab "$dir/missing.gguf"
refused "--vocab $dir/text.txt is not a GGUF file"  --arch gpt2 --vocab "$dir/text.txt"
refused "--vocab $dir/damaged.gguf is a damaged GGUF" --arch gpt2 --vocab "$dir/damaged.gguf"
refused "--arch 'bert' is not supported"            --arch bert
refused "--type 'q5_0' is not supported"            --arch gpt2 --type q5_0
refused 'missing --arch'                            --layers 2
refused 'missing -o FILE'                           --arch gpt2 -o ""
refused "-o $dir/no/such/dir/x.gguf: cannot create" --arch gpt2 -o "$dir/no/such/dir/x.gguf"
refused "-o $dir is a directory"                    --arch gpt2 -o "$dir"
refused "unknown option '--bogus'"                  --arch gpt2 --bogus
refused "unexpected argument 'extra'"               --arch gpt2 extra
refused "--ctx needs a value"                       --arch gpt2 -o "$out" --ctx
refused '--layers needs a value'                    --arch gpt2 -o "$out" --layers
refused '--heads-kv is for --arch llama'            --arch gpt2 --heads 4 --heads-kv 2
refused '--rope-base is for --arch llama'           --arch gpt2 --rope-base 500000

# A read-only directory (skipped as root, who can write anyway).
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$dir/ro" && chmod a-w "$dir/ro"
  refused "-o $dir/ro/x.gguf: cannot create" --arch gpt2 -o "$dir/ro/x.gguf"
  chmod u+w "$dir/ro"
fi

# --help is not an error: exit 0, examples on stdout.
"$maker" --help > "$dir/help" || { echo "FAIL: --help exit status $?" >&2; failed=1; }
grep -q 'examples:' "$dir/help" && grep -q -- '--arch llama --layers 32 --embd 4096' "$dir/help" \
  || { echo "FAIL: --help has no examples" >&2; failed=1; }

[ "$failed" -eq 0 ] || exit 1
rm -rf "$dir"
echo "bad input: ok"

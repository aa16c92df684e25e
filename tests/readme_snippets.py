"""The README's shell and Python snippets run as written (tests/workflow.cmake):

  readme_snippets.py REPO EXTRACTOR COMPARE ENGINE MAKER WORK

Runs every fenced ```sh block of README.md and every ```python block of
README.md and python/README.md, against the programs given (on PATH under
their installed names) and the files the snippets name, made in WORK first
(fixtures):
  model.gguf       the demo's tiny GPT-2 (scripts/build.sh demo)
  long.txt         a prompt of a few hundred tokens; prompts.txt, six short prompts
  engine-dump/     llorch-ref-engine's dump of model.gguf ("your engine")
  cpu-dump/, cuda-dump/, my-engine-dump/
                   two llama.cpp dumps of the same tokens in different settings
                   (-ub 2 stands in for CUDA) and the engine's, for --noise
A shell block is cut into examples at its comment lines; each example runs
in a directory of its own, with `bash -e -o pipefail`, and must exit 0.
A Python block that reads dump/ says which dump in a comment,
"# dump/ from: COMMAND", and COMMAND makes it first: so each snippet is run
against the form (.npy files or one .npz or .safetensors) it claims.

SKIP lists what a test cannot run, with the reason; an entry that matches
nothing fails the test (the list stays minimal). Exit 0 passed, 1 failed."""

import os
import re
import shutil
import subprocess
import sys

# substring of an example or a Python block -> why it is not run
SKIP = {
    "bash scripts/build.sh": "builds this repository and installs Debian packages; the test runs on a build",
    "--rpc 127.0.0.1:50052": "needs two ggml RPC servers listening at these fixed ports",
    "use_with_transformers(model)": "needs torch and a Hugging Face transformers model",
}

LONG_TEXT = " ".join(["Once upon a time, a small robot lived in a quiet town by the sea."] * 20) + "\n"
PROMPTS = "".join(f"{p}\n" for p in ["Hello", "Once upon a time", "The cat sat on", "In the beginning",
                                     "One, two, three,", "It was a dark and stormy night"])

failures = []
skips_used = set()


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def blocks(path, langs):
    """(language, first line number, text) of every fenced block in langs."""
    out, lang, start, body = [], None, 0, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r'^\s*```\s*(\S*)\s*$', line)
            if m and lang is None:
                lang, start, body = m.group(1), n, []
            elif m:
                if lang in langs:
                    out.append((lang, start, "".join(body)))
                lang = None
            elif lang is not None:
                body.append(line)
    return out


def examples(text):
    """A shell block cut at its comment lines: each run of commands after a
    comment (a continued line stays with its command) is one example."""
    out, cur, seen_command = [], [], False
    for line in text.splitlines():
        if line.strip().startswith("#") and seen_command and not (cur and cur[-1].endswith("\\")):
            out.append("\n".join(cur))
            cur, seen_command = [], False
        cur.append(line)
        if line.strip() and not line.strip().startswith("#"):
            seen_command = True
    if seen_command:
        out.append("\n".join(cur))
    return out


def skipped(text):
    for key, why in SKIP.items():
        if key in text:
            skips_used.add(key)
            return why
    return None


def sh(cmd, cwd, env, label):
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if p.returncode != 0:
        fail(f"{label} exited {p.returncode}:\n{cmd}\n--- output:\n{p.stdout[-3000:]}")
        return False
    return True


def scratch(work, name, fixtures):
    """A new directory holding links to the fixtures."""
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in os.listdir(fixtures):
        os.symlink(os.path.join(fixtures, f), os.path.join(d, f))
    return d


def main():
    repo, extractor, compare, engine, maker, work = (os.path.abspath(a) for a in sys.argv[1:7])
    shutil.rmtree(work, ignore_errors=True)
    bindir, fixtures = os.path.join(work, "bin"), os.path.join(work, "fixtures")
    os.makedirs(bindir)
    os.makedirs(fixtures)
    # the programs under their installed names (wrappers: each finds its libraries where it was built)
    for name, path in [("llorch-checkpoint-extractor", extractor), ("llorch-checkpoint-compare", compare),
                       ("llorch-ref-engine", engine), ("llorch-make-tiny-model", maker)]:
        with open(os.path.join(bindir, name), "w") as f:
            f.write(f'#!/bin/sh\nexec "{path}" "$@"\n')
        os.chmod(os.path.join(bindir, name), 0o755)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=os.path.join(repo, "python"))

    with open(os.path.join(fixtures, "long.txt"), "w") as f:
        f.write(LONG_TEXT)
    with open(os.path.join(fixtures, "prompts.txt"), "w") as f:
        f.write(PROMPTS)
    made = sh("""
llorch-make-tiny-model --arch gpt2 --layers 2 --embd 64 --heads 4 --ff 256 --seed 1 -o model.gguf >/dev/null
llorch-checkpoint-extractor -m model.gguf -p "Once upon a time" -o cpu-dump 2>/dev/null
llorch-checkpoint-extractor -m model.gguf -p "Once upon a time" -ub 2 -o cuda-dump 2>/dev/null
# llama.cpp's CPU GELU reads an f16 table; an f16 KV cache as the extractor's default
llorch-ref-engine -m model.gguf --tokens-file cpu-dump/tokens.npy --gelu f16-table --kv-type f16 -o my-engine-dump
llorch-ref-engine -m model.gguf --tokens-file cpu-dump/tokens.npy --gelu f16-table -o engine-dump
""", fixtures, env, "making the fixtures")
    if not made:
        return 1

    ran = 0
    docs = [("README.md", {"sh", "python"}), ("python/README.md", {"python"})]
    for rel, langs in docs:
        for lang, line, text in blocks(os.path.join(repo, rel), langs):
            parts = examples(text) if lang == "sh" else [text]
            for k, part in enumerate(parts):
                label = f"{rel}:{line} ({lang}{f', example {k + 1}' if len(parts) > 1 else ''})"
                why = skipped(part)
                if why:
                    print(f"skip {label}: {why}")
                    continue
                d = scratch(work, f"run-{rel.replace('/', '_')}-{line}-{k}", fixtures)
                if lang == "sh":
                    ok = sh(part, d, env, label)
                else:
                    made_by = re.findall(r'#\s*dump/ from:\s*(.+)$', part, re.M)
                    if "dump/" in part and not made_by:
                        fail(f"{label} reads dump/ but does not say which (a '# dump/ from: COMMAND' line)")
                        continue
                    ok = all(sh(c, d, env, f"{label}, making its dump/") for c in made_by)
                    with open(os.path.join(d, "snippet.py"), "w") as f:
                        f.write(part)
                    ok = ok and sh(f'"{sys.executable}" snippet.py', d, env, label)
                ran += 1
                print(f"{'ok  ' if ok else 'FAIL'} {label}: {part.strip().splitlines()[-1][:90]}")

    for key in sorted(set(SKIP) - skips_used):
        fail(f"SKIP entry {key!r} matches no snippet any more: remove it")
    if ran == 0:
        fail("no snippet ran")
    if failures:
        print(f"{len(failures)} problem(s)")
        return 1
    print(f"PASS: {ran} snippets ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())

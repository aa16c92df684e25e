#!/usr/bin/env python3
"""A second, independent measurement of what capture costs, beside
bench/run.sh: its own model (written by llama.cpp's gguf-py, not by this
project's maker), its own token ids, its own order of configurations
(shuffled in each round, not rotated) and its own parsing.

  /usr/bin/python3 bench/second_harness.py [--build DIR] [--rounds 15] [--runs 3]

Each round runs every configuration of a scenario once, as a whole
llorch-checkpoint-extractor process, all six checkpoints of all 12 layers:

  none     --checkpoints none (no callback installed)
  memory   --capture-to memory
  disk     -o DIR (the run's default form; the dump is deleted after the run)
  marked   --capture-to memory --output-mb 512 (checkpoints marked graph outputs)
  again    none's command run again: the harness's own noise

Scenarios: decode-t2 (8-token prompt + 32 generated, -t 2) and prompt-t2
(128-token prompt, -t 2). A ratio is the median over rounds of the
configuration's decode time (as the extractor prints it with -v) divided by
none's in the same round; the interquartile range of those per-round
ratios follows it. The goals (decode 1.05 to memory, 1.10 to disk;
prompts 1.02 and 1.05) are printed beside them. This is a benchmark: it
prints, it asserts nothing about time.

Needs the build (BUILD, default build/) and llama.cpp's gguf-py, which
`LLORCH_GGUF_PY=1 bash scripts/llama-cpp.sh FILE` provides offline from
the cached source.
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_LAYER, N_EMBD, N_HEAD, N_FF, N_CTX = 12, 768, 12, 3072, 1024
CONFIGS = {
    "none": ["--checkpoints", "none", "--capture-to", "memory"],
    "memory": ["--capture-to", "memory"],
    "disk": ["-o", "{out}"],
    "marked": ["--capture-to", "memory", "--output-mb", "512"],
    "again": ["--checkpoints", "none", "--capture-to", "memory"],
}
GOALS = {("decode-t2", "memory"): 1.05, ("decode-t2", "disk"): 1.10,
         ("prompt-t2", "memory"): 1.02, ("prompt-t2", "disk"): 1.05}


def gguf_py_dir(build):
    """llama.cpp's gguf-py, from the project's cache (offline)."""
    env_file = os.path.join(build, "bench", "gguf-py.env")
    os.makedirs(os.path.dirname(env_file), exist_ok=True)
    subprocess.run(["bash", os.path.join(REPO, "scripts", "llama-cpp.sh"), env_file],
                   env=dict(os.environ, LLORCH_GGUF_PY="1"), check=True, stdout=subprocess.DEVNULL)
    for line in open(env_file):
        if line.startswith("LLAMA_GGUF_PY="):
            return line.split("=", 1)[1].strip()
    sys.exit(f"error: {env_file} names no LLAMA_GGUF_PY; rerun scripts/llama-cpp.sh")


def vocab_path(build):
    for line in open(os.path.join(build, "llama-cpp.env")):
        if line.startswith("LLAMA_VOCAB_DIR="):
            return os.path.join(line.split("=", 1)[1].strip(), "ggml-vocab-gpt-2.gguf")
    sys.exit(f"error: {build}/llama-cpp.env names no LLAMA_VOCAB_DIR; build first (bash scripts/build.sh)")


def write_model(path, build):
    """A GPT-2-small-shaped F32 model with random weights, written by gguf-py,
    its tokenizer copied from llama.cpp's GPT-2 vocab file; the output
    projection is tied to the token embedding, as in GPT-2."""
    import gguf
    vocab = gguf.GGUFReader(vocab_path(build))

    def strings(key):
        f = vocab.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    rng = np.random.default_rng(20261208)
    w = gguf.GGUFWriter(path + ".part", "gpt2")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_block_count(N_LAYER)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([int(vocab.fields["tokenizer.ggml.token_type"].parts[i][0])
                       for i in vocab.fields["tokenizer.ggml.token_type"].data])
    w.add_token_merges(strings("tokenizer.ggml.merges"))

    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def ones(n):
        return np.ones(n, dtype=np.float32)

    def zeros(n):
        return np.zeros(n, dtype=np.float32)

    n_vocab = len(tokens)
    w.add_tensor("token_embd.weight", normal(n_vocab, N_EMBD))
    w.add_tensor("position_embd.weight", normal(N_CTX, N_EMBD, std=0.01))
    for i in range(N_LAYER):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(N_EMBD))
        w.add_tensor(b + "attn_norm.bias", zeros(N_EMBD))
        w.add_tensor(b + "attn_qkv.weight", normal(3 * N_EMBD, N_EMBD))
        w.add_tensor(b + "attn_qkv.bias", zeros(3 * N_EMBD))
        w.add_tensor(b + "attn_output.weight", normal(N_EMBD, N_EMBD))
        w.add_tensor(b + "attn_output.bias", zeros(N_EMBD))
        w.add_tensor(b + "ffn_norm.weight", ones(N_EMBD))
        w.add_tensor(b + "ffn_norm.bias", zeros(N_EMBD))
        w.add_tensor(b + "ffn_up.weight", normal(N_FF, N_EMBD))
        w.add_tensor(b + "ffn_up.bias", zeros(N_FF))
        w.add_tensor(b + "ffn_down.weight", normal(N_EMBD, N_FF))
        w.add_tensor(b + "ffn_down.bias", zeros(N_EMBD))
    w.add_tensor("output_norm.weight", ones(N_EMBD))
    w.add_tensor("output_norm.bias", zeros(N_EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".part", path)


def decode_seconds(extractor, model, scenario, config, ids, out):
    args = [a.format(out=out) for a in CONFIGS[config]]
    cmd = [extractor, "-v", "-m", model, "-fa", "off", "-t", "2", "--tokens", ",".join(map(str, ids))]
    if scenario == "decode-t2":
        cmd += ["-n", "32"]
    p = subprocess.run(cmd + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shutil.rmtree(out, ignore_errors=True)
    m = re.search(r"^\s*decode ([0-9.]+) s", p.stderr, re.M)
    if p.returncode != 0 or m is None:
        sys.exit(f"error: {' '.join(cmd + args)} failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return float(m.group(1))


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    extractor = os.path.join(build, "programs", "llorch-checkpoint-extractor")
    if not os.access(extractor, os.X_OK):
        sys.exit(f"error: no extractor at {extractor}; build first (bash scripts/build.sh) or pass --build")
    sys.path.insert(0, gguf_py_dir(build))
    model = os.path.join(build, "bench", "gpt2-small-f32-gguf-py.gguf")
    if not os.path.exists(model):
        print(f"writing {model} with gguf-py ...", flush=True)
        write_model(model, build)
    rng = random.Random(7)
    ids = {"decode-t2": [rng.randrange(1, 50000) for _ in range(8)],
           "prompt-t2": [rng.randrange(1, 50000) for _ in range(128)]}
    scratch = tempfile.mkdtemp(prefix="second-harness-", dir=os.path.join(build, "bench"))
    print(f"model: {model}; {a.rounds} rounds; {a.runs} run{'s' if a.runs != 1 else ''} back to back; "
          "-fa off, -t 2")
    decode_seconds(extractor, model, "prompt-t2", "none", ids["decode-t2"], scratch + "/warm")  # page cache
    print(f"{'run':>3} {'scenario':10} {'none s':>7}   {'config':7} {'ratio':>6} {'IQR':>13} {'goal':>5}")
    for run in range(1, a.runs + 1):
        for scenario in ("decode-t2", "prompt-t2"):
            times = {c: [] for c in CONFIGS}
            for rnd in range(a.rounds):
                order = list(CONFIGS)
                random.Random(1000 * run + rnd).shuffle(order)
                for c in order:
                    times[c].append(decode_seconds(extractor, model, scenario, c, ids[scenario],
                                                   os.path.join(scratch, f"{scenario}-{c}")))
            base = times["none"]
            lead = f"{run:>3} {scenario:10} {statistics.median(base):7.3f}"
            for c in ("memory", "disk", "marked", "again"):
                r = [t / b for t, b in zip(times[c], base)]
                lo, hi = quartiles(r)
                goal = GOALS.get((scenario, c))
                verdict = "" if goal is None else f"{goal:5.2f} {'met' if statistics.median(r) <= goal else 'NOT met'}"
                print(f"{lead}   {c:7} {statistics.median(r):6.3f} {lo:6.3f}-{hi:6.3f} {verdict}", flush=True)
                lead = " " * len(lead)
    os.rmdir(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())

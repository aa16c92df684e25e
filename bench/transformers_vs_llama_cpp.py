#!/usr/bin/env python3
"""A real transformers Llama or Qwen2 (random weights from a config) against
llama.cpp, checkpoint by checkpoint: saves it, converts it with the pinned
llama.cpp's convert_hf_to_gguf.py (f32), extracts llama.cpp's dump of some
token ids, runs the transformers model with llorch_checkpoint's hooks on the
same ids, and compares.

Needs: torch, transformers (with AttentionInterface, >= 4.48), tokenizers,
numpy and convert_hf_to_gguf.py's imports. convert_hf_to_gguf.py needs a
tokenizer, so a small byte-level BPE one is saved with the model. The model
runs on the GPU when there is one (--device); llama.cpp on the CPU.
Not run in this repository's CI (no transformers there).

  LLAMA_CONVERT_HF=.../convert_hf_to_gguf.py PYTHONPATH=python:.../gguf-py \\
  python3 bench/transformers_vs_llama_cpp.py --arch llama --work /tmp/hf-llama \\
      --extractor build/programs/llorch-checkpoint-extractor --compare build/programs/llorch-checkpoint-compare

(scripts/llama-cpp.sh with LLORCH_GGUF_PY=1 prints both paths.)"""

import argparse
import os
import subprocess
import sys


def build_model(arch, device):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5,
                  tie_word_embeddings=False, torch_dtype="float32")
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(rope_theta=10000.0, **common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(rope_theta=1000000.0, **common))
    return model.to(device).eval()


def save_with_tokenizer(model, work):
    """convert_hf_to_gguf.py needs a tokenizer: a llama SentencePiece one for
    llama, a byte-level BPE one (built here) for qwen2."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model.save_pretrained(work, safe_serialization=True)
    vocab = {bytes([b]).decode("latin1"): i for i, b in enumerate(range(256))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="\u0100", eos_token="\u0101").save_pretrained(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("llama", "qwen2"), default="llama")
    ap.add_argument("--work", required=True)
    ap.add_argument("--extractor", required=True)
    ap.add_argument("--compare", required=True)
    ap.add_argument("--device", default="cuda" if os.path.exists("/dev/nvidia0") else "cpu")
    ap.add_argument("--tokens", default="1,450,1200,7,99,2048,6324,13")
    a = ap.parse_args()

    import torch

    from llorch_checkpoint.torch_hooks import Capture, use_with_transformers

    os.makedirs(a.work, exist_ok=True)
    hf_dir, gguf = os.path.join(a.work, "hf"), os.path.join(a.work, "model-f32.gguf")
    model = build_model(a.arch, a.device)
    save_with_tokenizer(model, hf_dir)
    convert = os.environ.get("LLAMA_CONVERT_HF", "convert_hf_to_gguf.py")
    subprocess.run([sys.executable, convert, hf_dir, "--outtype", "f32", "--outfile", gguf], check=True)

    ref = os.path.join(a.work, "llama.cpp")
    subprocess.run([a.extractor, "-m", gguf, "--tokens", a.tokens, "-ctk", "f32", "-ctv", "f32", "--checkpoints",
                    "all", "-o", ref], check=True)

    use_with_transformers(model)  # eager attention that reports post-RoPE Q/K, the cache, the softmax
    cfg = model.config
    ids = torch.tensor([[int(t) for t in a.tokens.split(",")]], device=a.device)
    cand = os.path.join(a.work, "transformers")
    with Capture(model, cand, architecture=a.arch, n_head=cfg.num_attention_heads,
                 n_head_kv=cfg.num_key_value_heads, model_path=hf_dir,
                 settings={"device": a.device, "transformers_attn": cfg._attn_implementation}), torch.no_grad():
        model(input_ids=ids, use_cache=True)
    rc = subprocess.run([a.compare, ref, cand]).returncode
    sys.exit(rc)


if __name__ == "__main__":
    main()

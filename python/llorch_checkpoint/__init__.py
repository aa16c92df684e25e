"""llorch_checkpoint: write and read llorch checkpoint dumps (docs/FORMAT.md)
from Python, and capture them from PyTorch models (torch_hooks).

    from llorch_checkpoint import DumpWriter, Dump
    with DumpWriter("dump", form="npz") as w:
        w.set_run(producer="my-engine 1.0", architecture="llama", n_layer=2, n_embd=64,
                  n_head=4, n_head_kv=2, n_vocab=32000, tokens=[1, 15043])
        w.write("attn_norm", x, layer=0, step=0, pos_start=0)   # x: (T, n_embd)
    Dump("dump").get("attn_norm", layer=0)
    reference_input("llama.cpp-dump", layer=3)     # what llama.cpp fed into layer 3: (T, n_embd)

PyTorch: llorch_checkpoint.torch_hooks.Capture (imports torch on use).
RWKV-7 in plain numpy from a GGUF: python3 -m llorch_checkpoint.rwkv7 (GGUFTensors reads the weights).
"""

from .gguf import gguf_fingerprint
from .gguf_tensors import GGUFTensors
from .reader import Dump, reference_input
from .writer import KINDS, DumpWriter, file_name

__version__ = "0.1.0"
__all__ = ["Dump", "DumpWriter", "GGUFTensors", "KINDS", "file_name", "gguf_fingerprint", "reference_input",
           "__version__"]

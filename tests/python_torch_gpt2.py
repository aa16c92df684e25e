"""GPT-2 in plain PyTorch with Hugging Face's module names and layout
(transformer.wte/wpe, transformer.h.N.{ln_1, attn.{c_attn, c_proj}, ln_2,
mlp.{c_fc, c_proj}}, transformer.ln_f, lm_head; Conv1D weights [in, out]),
its weights loaded from a gpt2 GGUF with llama.cpp's own gguf-py. The tests
run it under llorch_checkpoint.torch_hooks and compare with llama.cpp.

llama.cpp's GGUF holds every matrix as [out, in] rows (attn_qkv.weight
[3*n_embd, n_embd]: Q's rows, then K's, then V's): Conv1D's weight is its
transpose. GELU is the exact tanh approximation (HF's gelu_new).

fault="ffn-eps:L*FACTOR" (or "ffn-eps:L=EPS"): layer L's ln_2 uses the
model's epsilon times FACTOR (or EPS): ffn_out of layer L must be named."""

import math

import torch
from torch import nn

from llorch_checkpoint.torch_hooks import eager_attention


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a linear layer whose weight is [in, out]."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


def gelu_new(x):  # HF's NewGELUActivation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        e = cfg["n_embd"]
        self.n_head, self.hd, self.split_size = cfg["n_head"], e // cfg["n_head"], e
        self.c_attn, self.c_proj = Conv1D(3 * e, e), Conv1D(e, e)
        self.attn_dropout, self.resid_dropout = nn.Dropout(0.0), nn.Dropout(0.0)
        self.scale_attn_weights, self.scale_attn_by_inverse_layer_idx, self.layer_idx = True, False, layer_idx
        self.cache = None

    def forward(self, x, pos):
        b, t, _ = x.shape
        q, k, v = self.c_attn(x).split(self.split_size, dim=2)
        q, k, v = (y.view(b, t, self.n_head, self.hd).transpose(1, 2) for y in (q, k, v))
        if self.cache is not None:  # the KV cache: earlier steps' keys first
            k, v = torch.cat((self.cache[0], k), 2), torch.cat((self.cache[1], v), 2)
        self.cache = (k, v)
        allowed = torch.arange(k.shape[2])[None, :] <= pos[:, None]
        mask = torch.zeros(t, k.shape[2]).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]
        # as transformers calls GPT-2's attention function: no scaling (it scales by 1/sqrt(head_dim) itself)
        out, probs = eager_attention(self, q, k, v, mask, head_mask=None, dropout=0.0)
        out = self.resid_dropout(self.c_proj(out.reshape(b, t, -1)))
        return out, probs


class GPT2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc, self.c_proj = Conv1D(cfg["n_ff"], cfg["n_embd"]), Conv1D(cfg["n_embd"], cfg["n_ff"])
        self.act = gelu_new
        self.dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg["n_embd"], eps=cfg["eps"])
        self.attn = GPT2Attention(cfg, layer_idx)
        self.ln_2 = nn.LayerNorm(cfg["n_embd"], eps=cfg["eps"])
        self.mlp = GPT2MLP(cfg)

    def forward(self, hidden_states, pos):  # transformers' GPT2Block, its adds in the same order
        residual = hidden_states
        attn_output, _ = self.attn(self.ln_1(hidden_states), pos)
        hidden_states = attn_output + residual
        residual = hidden_states
        feed_forward_hidden_states = self.mlp(self.ln_2(hidden_states))
        hidden_states = residual + feed_forward_hidden_states
        return (hidden_states,)


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["n_vocab"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_ctx"], cfg["n_embd"])
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList(GPT2Block(cfg, i) for i in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg["eps"])


class GPT2LMHeadModel(nn.Module):
    """transformers' GPT2LMHeadModel's module tree."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg["n_embd"], cfg["n_vocab"], bias=False)
        self.n_past = 0

    @torch.no_grad()
    def forward(self, input_ids, logits_to_keep=0, num_logits_to_keep=None):
        pos = torch.arange(self.n_past, self.n_past + input_ids.shape[1])
        self.n_past += input_ids.shape[1]
        tr = self.transformer
        x = tr.drop(tr.wte(input_ids) + tr.wpe(pos)[None])
        for block in tr.h:
            x = block(x, pos)[0]
        keep = num_logits_to_keep if num_logits_to_keep is not None else logits_to_keep
        rows = slice(-keep, None) if isinstance(keep, int) else keep
        return self.lm_head(tr.ln_f(x)[:, rows, :])


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0]


def load_gguf(path, fault=None):
    """The model of a gpt2 GGUF (f32 or f16 weights, computed in f32)."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    if arch != "gpt2":
        raise ValueError(f"{path}: architecture {arch}, not gpt2")
    cfg = {"arch": arch, "fault": fault}
    for k, key in (("n_layer", "block_count"), ("n_embd", "embedding_length"), ("n_ff", "feed_forward_length"),
                   ("n_head", "attention.head_count"), ("n_head_kv", "attention.head_count_kv"),
                   ("eps", "attention.layer_norm_epsilon"), ("n_ctx", "context_length")):
        cfg[k] = field(r, f"gpt2.{key}")
    tensors = {t.name: torch.from_numpy(t.data.copy()).float() for t in r.tensors}
    cfg["n_vocab"] = tensors["token_embd.weight"].shape[0]
    cfg["n_ctx"] = tensors["position_embd.weight"].shape[0]
    model = GPT2LMHeadModel(cfg)
    sd = {"transformer.wte.weight": tensors["token_embd.weight"],
          "transformer.wpe.weight": tensors["position_embd.weight"],
          "transformer.ln_f.weight": tensors["output_norm.weight"],
          "transformer.ln_f.bias": tensors["output_norm.bias"],
          "lm_head.weight": tensors.get("output.weight", tensors["token_embd.weight"])}
    names = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
             "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
    for i in range(cfg["n_layer"]):
        for g, h in names.items():
            w, b = tensors[f"blk.{i}.{g}.weight"], tensors[f"blk.{i}.{g}.bias"]
            conv = h not in ("ln_1", "ln_2")
            sd[f"transformer.h.{i}.{h}.weight"] = w.t().contiguous() if conv else w  # [out, in] -> Conv1D's [in, out]
            sd[f"transformer.h.{i}.{h}.bias"] = b
    model.load_state_dict(sd, strict=True)
    if fault and fault.startswith("ffn-eps:"):
        spec = fault[len("ffn-eps:"):]
        layer, value = spec.split("*" if "*" in spec else "=")
        model.transformer.h[int(layer)].ln_2.eps = cfg["eps"] * float(value) if "*" in spec else float(value)
    elif fault:
        raise ValueError(f"fault {fault!r}: gpt2 knows ffn-eps:L*FACTOR and ffn-eps:L=EPS")
    return model.eval()

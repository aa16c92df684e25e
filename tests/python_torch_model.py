"""A llama / qwen2 decoder in plain PyTorch with Hugging Face's module names
(model.layers.N.self_attn.{q,k,v,o}_proj, input_layernorm, ...), its
weights loaded from a GGUF with llama.cpp's own gguf-py. The tests run it
under llorch_checkpoint.torch_hooks and compare with llama.cpp.

fault="rope-halves": RoPE rotates adjacent pairs instead of HF's halves
(llama.cpp's rotation applied to HF-layout weights): Qcur of layer 0 must
be named by compare.
fault="ffn-eps:L=EPS" or "ffn-eps:L*FACTOR": layer L's post-attention
RMSNorm uses EPS, or the model's epsilon times FACTOR: a bug far below any
fixed tolerance: ffn_out of layer L must be named."""

import torch
from torch import nn

from llorch_checkpoint.torch_hooks import eager_attention, unpermute_gguf_qk


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rotate_pairs(x):  # the fault: adjacent pairs, as llama.cpp's norm mode
    y = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1)
    return y.reshape(x.shape)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e, hd, bias = cfg["n_embd"], cfg["head_dim"], cfg["bias"]
        self.n_head, self.n_kv, self.hd, self.cfg = cfg["n_head"], cfg["n_head_kv"], hd, cfg
        self.q_proj = nn.Linear(e, self.n_head * hd, bias=bias)
        self.k_proj = nn.Linear(e, self.n_kv * hd, bias=bias)
        self.v_proj = nn.Linear(e, self.n_kv * hd, bias=bias)
        self.o_proj = nn.Linear(self.n_head * hd, e, bias=False)
        self.scaling = hd**-0.5
        self.cache = None

    def rope(self, x, pos):
        hd = self.hd
        inv = 1.0 / (self.cfg["rope_base"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = pos[:, None].float() * inv[None, :]
        if self.cfg["fault"] == "rope-halves":
            cos, sin = ang.cos().repeat_interleave(2, -1), ang.sin().repeat_interleave(2, -1)
            return x * cos + rotate_pairs(x) * sin
        cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
        return x * cos + rotate_half(x) * sin

    def forward(self, x, pos):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_head, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        q, k = self.rope(q, pos), self.rope(k, pos)
        if self.cache is not None:  # the KV cache: earlier steps' keys first
            k, v = torch.cat((self.cache[0], k), 2), torch.cat((self.cache[1], v), 2)
        self.cache = (k, v)
        n_key = k.shape[2]
        allowed = torch.arange(n_key)[None, :] <= pos[:, None]
        mask = torch.zeros(t, n_key).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]
        out, _ = eager_attention(self, q, k, v, mask, self.scaling)
        return self.o_proj(out.reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, e, f):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(e, f, bias=False), nn.Linear(e, f, bias=False)
        self.down_proj = nn.Linear(f, e, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["n_embd"], cfg["eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["n_embd"], cfg["eps"])
        self.mlp = MLP(cfg["n_embd"], cfg["n_ff"])

    def forward(self, x, pos):
        x = x + self.self_attn(self.input_layernorm(x), pos)
        return (x + self.mlp(self.post_attention_layernorm(x)),)


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["n_vocab"], cfg["n_embd"])
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["n_layer"]))
        self.norm = RMSNorm(cfg["n_embd"], cfg["eps"])


class CausalLM(nn.Module):
    """LlamaForCausalLM's / Qwen2ForCausalLM's module tree."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg["n_embd"], cfg["n_vocab"], bias=False)
        self.n_past = 0

    @torch.no_grad()
    def forward(self, input_ids, logits_to_keep=0, num_logits_to_keep=None):
        """logits_to_keep as LlamaForCausalLM's (num_logits_to_keep: its older
        name): generate() passes 1, and lm_head reads the last row only; an int
        keeps the last rows (0: all), a tensor of indices those rows."""
        pos = torch.arange(self.n_past, self.n_past + input_ids.shape[1])
        self.n_past += input_ids.shape[1]
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x, pos)[0]
        keep = num_logits_to_keep if num_logits_to_keep is not None else logits_to_keep
        rows = slice(-keep, None) if isinstance(keep, int) else keep
        return self.lm_head(self.model.norm(x)[:, rows, :])


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0]


def load_gguf(path, fault=None):
    """The model of a llama or qwen2 GGUF (f32 weights), Q/K rows back in
    HF's order for llama (the inverse of convert_hf_to_gguf's permute)."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    cfg = {"arch": arch, "fault": fault, "bias": arch == "qwen2"}
    for k, key in (("n_layer", "block_count"), ("n_embd", "embedding_length"), ("n_ff", "feed_forward_length"),
                   ("n_head", "attention.head_count"), ("n_head_kv", "attention.head_count_kv"),
                   ("eps", "attention.layer_norm_rms_epsilon"), ("rope_base", "rope.freq_base")):
        cfg[k] = field(r, f"{arch}.{key}")
    tensors = {t.name: torch.from_numpy(t.data.copy()).float() for t in r.tensors}
    cfg["n_vocab"] = tensors["token_embd.weight"].shape[0]
    cfg["head_dim"] = cfg["n_embd"] // cfg["n_head"]
    model = CausalLM(cfg)
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"], "model.norm.weight": tensors["output_norm.weight"],
          "lm_head.weight": tensors.get("output.weight", tensors["token_embd.weight"])}
    names = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for i in range(cfg["n_layer"]):
        for g, h in names.items():
            for kind in ("weight", "bias"):
                t = tensors.get(f"blk.{i}.{g}.{kind}")
                if t is None:
                    continue
                if arch == "llama" and g in ("attn_q", "attn_k"):
                    t = unpermute_gguf_qk(t, cfg["n_head"] if g == "attn_q" else cfg["n_head_kv"])
                sd[f"model.layers.{i}.{h}.{kind}"] = t
    model.load_state_dict(sd, strict=True)
    if fault and fault.startswith("ffn-eps:"):
        spec = fault[len("ffn-eps:"):]
        layer, value = spec.split("*" if "*" in spec else "=")
        eps = cfg["eps"] * float(value) if "*" in spec else float(value)
        model.model.layers[int(layer)].post_attention_layernorm.eps = eps
    return model.eval()

"""Captures checkpoints from a PyTorch model with Hugging Face module names
and writes them as a dump (docs/FORMAT.md, "PyTorch and Hugging Face
models"), so that llorch-checkpoint-compare holds it against llama.cpp.

Forward hooks on the Linear modules see attn_norm (q_proj's input), the
pre-RoPE Q/K, V, attn_out_proj (o_proj's output) and ffn_out (mlp's
output). Post-RoPE Q/K, the cache and the softmax are inside the attention
function: the model must run its attention through eager_attention() below
(registered for transformers by use_with_transformers()), or call
report_attention() from its own.

Q and K are written in llama.cpp's layout: for llama-family models (whose
Q/K weights convert_hf_to_gguf.py permutes) each head's channels are
reordered from HF's two halves to llama.cpp's adjacent pairs."""

import os

import torch

from .gguf import gguf_fingerprint
from .writer import DumpWriter

# Architectures whose Q/K weights convert_hf_to_gguf.py permutes
# (LlamaModel.permute): llama.cpp's RoPE rotates adjacent pairs there.
PERMUTED_ARCHS = {"llama", "mistral", "granite", "granitemoe", "smollm3"}

DEFAULT_CHECKPOINTS = ("attn_norm", "Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max", "attn_out_proj",
                       "ffn_out")
ALL_CHECKPOINTS = DEFAULT_CHECKPOINTS + ("Qcur_pre_rope", "Kcur_pre_rope", "embd", "ffn_inp", "l_out",
                                         "result_norm", "logits")

_ATTENTION = {}  # id(attention module) -> (capture, layer)


def halves_to_pairs(x):
    """HF's within-head order (two halves) to llama.cpp's (adjacent pairs),
    on the last axis: channel 2i+s of the result is channel s*hd/2+i."""
    hd = x.shape[-1]
    return x.reshape(*x.shape[:-1], 2, hd // 2).transpose(-1, -2).reshape(x.shape)


def pairs_to_halves(x):
    """The inverse of halves_to_pairs."""
    hd = x.shape[-1]
    return x.reshape(*x.shape[:-1], hd // 2, 2).transpose(-1, -2).reshape(x.shape)


def unpermute_gguf_qk(w, n_head):
    """A llama-family GGUF Q or K weight (rows permuted by convert_hf_to_gguf's
    LlamaModel.permute) back in HF's row order; n_head: its heads (n_head_kv for K)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def report_attention(module, query, key, value, probs):
    """Called by an attention function with the tensors llama.cpp's Qcur,
    cache and kq_soft_max are: query (1, n_head, T, hd) after RoPE, key and
    value (1, n_head_kv, K, hd) the whole cache after this step's write,
    probs (1, n_head, T, K) or None (flash/sdpa attention)."""
    hit = _ATTENTION.get(id(module))
    if hit is not None:
        capture, layer = hit
        capture._on_attention(layer, query, key, value, probs)


def _additive_mask(attention_mask, query, key):
    t, k = query.shape[-2], key.shape[-2]
    if attention_mask is None:  # a causal mask: the step's tokens are the last T keys
        q_pos = torch.arange(k - t, k, device=query.device)[:, None]
        allowed = torch.arange(k, device=query.device)[None, :] <= q_pos
        attention_mask = allowed[None, None]
    if attention_mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=query.dtype, device=query.device)
        return torch.where(attention_mask, zero, torch.finfo(query.dtype).min)
    return attention_mask[:, :, :, :k]


def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' eager_attention_forward (same arguments, same result),
    reporting its tensors to an active capture."""
    n_rep = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(n_rep, dim=1)
    v = value.repeat_interleave(n_rep, dim=1)
    scores = torch.matmul(query, k.transpose(2, 3)) * scaling + _additive_mask(attention_mask, query, key)
    probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, v).transpose(1, 2).contiguous()
    report_attention(module, query, key, value, probs)
    return out, probs


def use_with_transformers(model, name="llorch_eager"):
    """Makes a transformers model run its attention through eager_attention."""
    from transformers import AttentionInterface

    AttentionInterface.register(name, eager_attention)
    try:  # the mask of eager attention, where this transformers has the registry
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

        ALL_MASK_ATTENTION_FUNCTIONS.register(name, eager_mask)
    except ImportError:
        pass
    model.config._attn_implementation = name


def _rows(x):
    """(1, T, ...) or (T, ...) -> a float32 numpy array (T, ...)."""
    x = x.detach()
    if x.dim() >= 3:
        if x.shape[0] != 1:
            raise ValueError(f"batch size {x.shape[0]}: capture one sequence (batch size 1)")
        x = x[0]
    return x.float().cpu().numpy()


def _gguf_fingerprint_of(model_path):
    """The fingerprint of model_path when it is a GGUF file (the model the
    weights were loaded from, or converted to), else None."""
    if model_path is None or not os.path.isfile(model_path):
        return None
    with open(model_path, "rb") as f:
        if f.read(4) != b"GGUF":
            return None
    return gguf_fingerprint(model_path)


def _dtype_name(model):
    """The precision the model multiplies its weights in, as docs/FORMAT.md's
    settings.weight_type names it ("f32", "f16", "bf16")."""
    p = next(model.parameters(), None)
    names = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
    return names.get(p.dtype, str(p.dtype)) if p is not None else "f32"


class Capture:
    """Hooks on a model whose modules are named as Hugging Face's llama/qwen2:
    ...embed_tokens, ...layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
    post_attention_layernorm, mlp}, ...norm, lm_head.

    with Capture(model, "dump", architecture="llama", n_head=4, n_head_kv=2) as cap:
        model(input_ids)            # one step per forward call
    """

    def __init__(self, model, directory, *, architecture, n_head, n_head_kv, head_dim=None, form="npy",
                 checkpoints="all", qk_layout=None, producer=None, settings=None, model_path=None,
                 model_fingerprint=None):
        self.model = model
        self.writer = DumpWriter(directory, form=form)
        self.arch, self.n_head, self.n_head_kv = architecture, n_head, n_head_kv
        self.wanted = set(ALL_CHECKPOINTS if checkpoints == "all" else
                          DEFAULT_CHECKPOINTS if checkpoints == "default" else checkpoints)
        layout = qk_layout or ("pairs" if architecture in PERMUTED_ARCHS else "halves")
        if layout not in ("pairs", "halves"):
            raise ValueError(f"qk_layout {layout!r}: use 'pairs' (llama.cpp's llama) or 'halves' (NEOX)")
        self.permute = layout == "pairs"
        self.producer = producer or f"llorch_checkpoint.torch_hooks (torch {torch.__version__})"
        self.settings = {"type_k": "f32", "type_v": "f32", "qk_layout": layout, "torch": torch.__version__,
                         "weight_type": _dtype_name(model), **(settings or {})}
        self.model_path = model_path
        self.model_fingerprint = model_fingerprint or _gguf_fingerprint_of(model_path)
        self.modules = self._find_modules(model)
        self.n_layer = len(self.modules["layers"])
        self.head_dim = head_dim or self.modules["layers"][0]["self_attn.q_proj"].out_features // n_head
        self.tokens, self.step, self.pos_start, self.n_tok, self.max_tok = [], -1, 0, 0, 0
        self.norm_out = None  # (step, the final norm's output): the rows lm_head may read a part of
        self.seen_attention = set()
        self.handles = []
        self._register()

    # --- finding the modules ------------------------------------------------
    @staticmethod
    def _find_modules(model):
        found = {"layers": {}}
        for name, mod in model.named_modules():
            parts = name.split(".")
            if "layers" in parts:
                i = parts.index("layers")
                if i + 1 < len(parts) and parts[i + 1].isdigit():
                    layer = found["layers"].setdefault(int(parts[i + 1]), {})
                    rest = ".".join(parts[i + 2:])
                    layer[rest or "block"] = mod
                    continue
            if parts[-1] in ("embed_tokens", "norm", "lm_head") and parts[-1] not in found:
                found[parts[-1]] = mod
        layers = [found["layers"][i] for i in sorted(found["layers"])]
        for i, l in enumerate(layers):
            for need in ("self_attn", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                         "mlp", "post_attention_layernorm"):
                if need not in l:
                    raise ValueError(f"layer {i} has no module '{need}': the model does not follow HF llama naming")
        if "embed_tokens" not in found:
            raise ValueError("the model has no embed_tokens module: the token ids cannot be seen")
        found["layers"] = layers
        return found

    # --- hooks --------------------------------------------------------------
    def _hook(self, module, fn, pre=False):
        h = module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn)
        self.handles.append(h)

    def _register(self):
        m = self.modules
        self._hook(m["embed_tokens"], self._on_tokens, pre=True)
        self._hook(m["embed_tokens"], lambda mod, i, o: self._write("embd", -1, _rows(o)))
        for il, l in enumerate(m["layers"]):
            self._register_layer(il, l)
        if "norm" in m:
            self._hook(m["norm"], self._on_norm)
        if "lm_head" in m:
            self._hook(m["lm_head"], self._on_logits)

    def _register_layer(self, il, l):
        def heads(x, n):
            return x.reshape(x.shape[0], n, self.head_dim)

        _ATTENTION[id(l["self_attn"])] = (self, il)
        self._hook(l["self_attn.q_proj"], lambda mod, i: self._write("attn_norm", il, _rows(i[0])), pre=True)
        self._hook(l["self_attn.q_proj"],
                   lambda mod, i, o: self._write("Qcur_pre_rope", il, self._qk(heads(_rows(o), self.n_head))))
        self._hook(l["self_attn.k_proj"],
                   lambda mod, i, o: self._write("Kcur_pre_rope", il, self._qk(heads(_rows(o), self.n_head_kv))))
        self._hook(l["self_attn.v_proj"], lambda mod, i, o: self._write("Vcur", il, heads(_rows(o), self.n_head_kv)))
        self._hook(l["self_attn.o_proj"], lambda mod, i, o: self._write("attn_out_proj", il, _rows(o)))
        self._hook(l["post_attention_layernorm"], lambda mod, i: self._write("ffn_inp", il, _rows(i[0])), pre=True)
        self._hook(l["mlp"], lambda mod, i, o: self._write("ffn_out", il, _rows(o)))
        if "block" in l:
            self._hook(l["block"], lambda mod, i, o: self._write("l_out", il, _rows(o[0] if isinstance(o, tuple)
                                                                                   else o)))

    def _qk(self, x):
        """(rows, heads, hd) numpy in llama.cpp's within-head order."""
        if not self.permute:
            return x
        hd = x.shape[-1]
        return x.reshape(*x.shape[:-1], 2, hd // 2).swapaxes(-1, -2).reshape(x.shape)

    def _on_tokens(self, module, inputs):
        ids = inputs[0].detach().reshape(-1).cpu().tolist()
        if inputs[0].dim() == 2 and inputs[0].shape[0] != 1:
            raise ValueError("batch size > 1: capture one sequence (batch size 1)")
        self.step += 1
        self.pos_start += self.n_tok
        self.n_tok = len(ids)
        self.max_tok = max(self.max_tok, self.n_tok)
        self.tokens.extend(ids)

    def _on_attention(self, il, query, key, value, probs):
        t, k = query.shape[-2], key.shape[-2]
        self.seen_attention.add(il)
        q = self._qk(_rows(query.transpose(1, 2)))            # (T, n_head, hd)
        ck = self._qk(_rows(key.transpose(1, 2)))             # (K, n_head_kv, hd)
        cv = _rows(value.transpose(1, 2))
        self._write("Qcur", il, q)
        self._write("Kcur", il, ck[k - t:])
        self._write("cache_k", il, ck, n_key=k)
        self._write("cache_v", il, cv, n_key=k)
        if probs is not None:
            self._write("kq_soft_max", il, probs.detach()[0].float().cpu().numpy(), n_key=k)

    def _on_norm(self, module, inputs, output):
        self.norm_out = (self.step, output.detach())
        self._write("result_norm", -1, _rows(output))

    def _on_logits(self, module, inputs, output):
        """generate() passes logits_to_keep=1 (num_logits_to_keep in older
        transformers): lm_head then reads the last rows only (or the rows a
        tensor of indices picks). They are written at their positions."""
        rows = _rows(output)
        if rows.shape[0] == self.n_tok:
            self._write("logits", -1, rows)
            return
        picked = self._rows_read(inputs[0].detach(), rows.shape[0])
        self._write("logits", -1, rows, positions=[self.pos_start + r for r in picked])

    def _rows_read(self, x, n):
        """Which of the step's rows lm_head's input x (n of them) is: the rows
        of the final norm's output it equals, else the last n rows."""
        last = list(range(self.n_tok - n, self.n_tok))
        if self.norm_out is None or self.norm_out[0] != self.step or x.dim() != 3:
            return last
        norm = self.norm_out[1].reshape(-1, x.shape[-1])
        if norm.shape[0] != self.n_tok:
            return last
        same = (x[0][:, None, :] == norm[None, :, :]).all(-1)  # (n, T)
        if torch.equal(x[0], norm[-n:]) or not bool(same.any(-1).all()):
            return last
        picked = [int(torch.nonzero(same[i])[-1]) for i in range(n)]
        return picked if picked == sorted(set(picked)) else last

    def _write(self, checkpoint, layer, array, n_key=None, positions=None):
        if checkpoint not in self.wanted or self.step < 0:
            return
        n_pos = self.n_tok if positions is None else len(positions)
        self.writer.write(checkpoint, array, layer=layer, step=self.step, pos_start=self.pos_start, n_pos=n_pos,
                          n_key=n_key if n_key is not None else 0, positions=positions)

    # --- the end ------------------------------------------------------------
    def close(self, status="ok"):
        for h in self.handles:
            h.remove()
        for l in self.modules["layers"]:
            _ATTENTION.pop(id(l["self_attn"]), None)
        self.handles = []
        self._note_missing()
        m = self.modules
        emb = m["embed_tokens"].weight
        self.writer.set_run(producer=self.producer, architecture=self.arch, n_layer=self.n_layer,
                            n_embd=emb.shape[1], n_head=self.n_head, n_head_kv=self.n_head_kv, n_vocab=emb.shape[0],
                            tokens=self.tokens, settings={**self.settings, "n_ubatch": self.max_tok},
                            model_path=self.model_path, model_fingerprint=self.model_fingerprint)
        self.writer.close(status)

    def _note_missing(self):
        why = ("the attention function did not report its tensors: run attention through "
               "llorch_checkpoint.torch_hooks.eager_attention or call report_attention()")
        for il in range(self.n_layer):
            if il in self.seen_attention:
                continue
            for c in ("Qcur", "Kcur", "cache_k", "cache_v", "kq_soft_max"):
                if c in self.wanted:
                    self.writer.note_missing(c, il, why)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close("ok" if exc_type is None else f"error: {exc}"[:200])
        return False

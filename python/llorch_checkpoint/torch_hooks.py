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
reordered from HF's two halves to llama.cpp's adjacent pairs.

Two module layouts: llama/qwen2 (model.layers.N.self_attn.{q,k,v,o}_proj,
post_attention_layernorm, mlp, model.embed_tokens, model.norm, lm_head) and
GPT-2 (transformer.wte/wpe, transformer.h.N.{ln_1, attn.c_attn, attn.c_proj,
ln_2, mlp}, transformer.ln_f, lm_head; c_attn's fused output is split into Q,
K, V as llama.cpp's gpt2 graph views its attn_qkv product).

feed=DUMP: each layer computed from DUMP's residual stream (docs/FORMAT.md,
"Fed runs"): the layer's input and the FFN's residual input are recorded as
the model computed them, then replaced by DUMP's rows at the same token
positions (docs/PYTORCH.md, "Fed by llama.cpp")."""

import os

import torch

from .gguf import gguf_fingerprint
from .reader import Dump
from .writer import DumpWriter

# Architectures whose Q/K weights convert_hf_to_gguf.py permutes
# (LlamaModel.permute): llama.cpp's RoPE rotates adjacent pairs there.
PERMUTED_ARCHS = {"llama", "mistral", "granite", "granitemoe", "smollm3"}

DEFAULT_CHECKPOINTS = ("attn_norm", "Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max", "attn_out_proj",
                       "ffn_out")
ALL_CHECKPOINTS = DEFAULT_CHECKPOINTS + ("Qcur_pre_rope", "Kcur_pre_rope", "embd", "ffn_inp", "l_out",
                                         "result_norm", "logits")

_ATTENTION = {}  # id(attention module) -> (capture, layer)

# Each family's modules: per layer (relative to the layer), and the model's
# own. llama covers every HF model laid out as LlamaForCausalLM (qwen2, mistral, ...).
LAYER_MODULES = {
    "llama": {"attn": "self_attn", "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
              "o": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm", "mlp": "mlp"},
    "gpt2": {"attn": "attn", "qkv": "attn.c_attn", "o": "attn.c_proj", "ffn_norm": "ln_2", "mlp": "mlp"},
}
MODEL_MODULES = {
    "llama": {"embed": "embed_tokens", "norm": "norm", "lm_head": "lm_head"},
    "gpt2": {"embed": "wte", "pos": "wpe", "norm": "ln_f", "lm_head": "lm_head"},
}
LAYER_LISTS = ("layers", "h")  # model.layers.N, transformer.h.N
FED_AT = ("embd", "l_out", "ffn_inp")


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


def _gpt2_scaling(module, value):
    """The scale GPT-2's eager attention applies itself (transformers passes
    its attention function no scaling for GPT-2)."""
    scaling = value.shape[-1] ** -0.5 if getattr(module, "scale_attn_weights", True) else 1.0
    if getattr(module, "scale_attn_by_inverse_layer_idx", False):
        scaling /= float(module.layer_idx + 1)
    return scaling


def eager_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager_attention_forward (same arguments, same result),
    reporting its tensors to an active capture. scaling None: GPT-2's (its
    attention function gets none and scales by 1/sqrt(head_dim) itself)."""
    if scaling is None:
        scaling = _gpt2_scaling(module, value)
    n_rep = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(n_rep, dim=1)
    v = value.repeat_interleave(n_rep, dim=1)
    scores = torch.matmul(query, k.transpose(2, 3)) * scaling + _additive_mask(attention_mask, query, key)
    probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    if kwargs.get("head_mask") is not None:
        probs = probs * kwargs["head_mask"]
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


def _out_features(linear):
    """A projection's output width: nn.Linear's out_features, GPT-2's Conv1D's nf."""
    for attr in ("out_features", "nf"):
        if isinstance(getattr(linear, attr, None), int):
            return getattr(linear, attr)
    return linear.weight.shape[0]


class Capture:
    """Hooks on a model whose modules are named as Hugging Face's llama/qwen2
    (...embed_tokens, ...layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
    post_attention_layernorm, mlp}, ...norm, lm_head) or GPT-2's
    (transformer.{wte, wpe, h.N.{ln_1, attn.{c_attn, c_proj}, ln_2, mlp}, ln_f},
    lm_head).

    with Capture(model, "dump", architecture="llama", n_head=4, n_head_kv=2) as cap:
        model(input_ids)            # one step per forward call

    feed="llama.cpp-dump": every layer computed from that dump's residual
    stream (docs/FORMAT.md, "Fed runs"); feed_at: which of "embd", "l_out",
    "ffn_inp" to replace (default: all the dump holds); feed_seq: the
    sequence of a batched dump.
    """

    def __init__(self, model, directory, *, architecture, n_head, n_head_kv, head_dim=None, form="npy",
                 checkpoints="all", qk_layout=None, producer=None, settings=None, model_path=None,
                 model_fingerprint=None, feed=None, feed_at=None, feed_seq=None):
        self.model = model
        self.modules = self._find_modules(model)
        self.family = self.modules["family"]
        self.n_layer = len(self.modules["layers"])
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
        emb = self.modules["embed"].weight
        self.n_embd, self.n_vocab = emb.shape[1], emb.shape[0]
        first = self.modules["layers"][0]
        width = _out_features(first["q"]) if self.family == "llama" else _out_features(first["qkv"]) // 3
        self.head_dim = head_dim or width // n_head
        self.feed, self.feed_spec, self.feed_seq = None, feed, feed_seq
        self.feed_at = self._open_feed(feed, feed_at) if feed is not None else set()
        self.fed_at, self.fed_layers = set(), set()
        self.fed_ffn = {}  # layer -> [the model's ffn_inp, the fed one, the mlp's output] of this call
        self.writer = DumpWriter(directory, form=form)
        self.tokens, self.step, self.pos_start, self.n_tok, self.max_tok = [], -1, 0, 0, 0
        self.norm_out = None  # (step, the final norm's output): the rows lm_head may read a part of
        self.seen_attention = set()
        self.handles = []
        self._register()

    # --- finding the modules ------------------------------------------------
    @staticmethod
    def _find_modules(model):
        layers, top, container = {}, {}, None
        names = {n for family in MODEL_MODULES.values() for n in family.values()}
        for name, mod in model.named_modules():
            parts = name.split(".")
            hit = [i for i, p in enumerate(parts[:-1]) if p in LAYER_LISTS and parts[i + 1].isdigit()
                   and container in (None, ".".join(parts[:i + 1]))]
            if hit:
                i = hit[0]
                container = ".".join(parts[:i + 1])
                layer = layers.setdefault(int(parts[i + 1]), {})
                layer[".".join(parts[i + 2:]) or "block"] = mod
                continue
            if parts[-1] in names and parts[-1] not in top:
                top[parts[-1]] = mod
        if not layers:
            raise ValueError("the model has no decoder layers named ...layers.N (llama, qwen2) or ...h.N (GPT-2)")
        layers = [layers[i] for i in sorted(layers)]
        family = next((f for f, need in LAYER_MODULES.items() if all(n in layers[0] for n in need.values())), None)
        if family is None:
            want = "; ".join(f"{f}: {', '.join(need.values())}" for f, need in LAYER_MODULES.items())
            raise ValueError(f"layer 0 has neither module layout ({want}): the model does not follow HF naming")
        for i, l in enumerate(layers):
            for role, need in LAYER_MODULES[family].items():
                if need not in l:
                    raise ValueError(f"layer {i} has no module '{need}': the model does not follow HF {family} naming")
                l[role] = l[need]
        found = {"family": family, "layers": layers}
        for role, name in MODEL_MODULES[family].items():
            if name in top:
                found[role] = top[name]
        if "embed" not in found:
            raise ValueError(f"the model has no {MODEL_MODULES[family]['embed']} module: the token ids cannot be seen")
        return found

    # --- the feed -----------------------------------------------------------
    def _open_feed(self, feed, feed_at):
        """Checks the dump to feed from against the model; the residuals to replace."""
        d = feed if isinstance(feed, Dump) else Dump(str(feed))
        mm = d.manifest["model"]
        if mm.get("n_layer") != self.n_layer or mm.get("n_embd") != self.n_embd:
            raise ValueError(f"feed {d.dir}: a model of {mm.get('n_layer')} layers, n_embd {mm.get('n_embd')}; "
                             f"this one has {self.n_layer} layers, n_embd {self.n_embd}")
        theirs, ours = mm.get("fingerprint"), self.model_fingerprint
        if theirs and ours and theirs != ours:
            raise ValueError(f"feed {d.dir}: its model's fingerprint {theirs} is not this model's {ours}: feeding "
                             f"another model's residual stream proves nothing")
        held = {c for c in FED_AT if d.entries(c, None, seq=self.feed_seq)}
        at = set(FED_AT if feed_at is None else feed_at)
        unknown = at - set(FED_AT)
        if unknown:
            raise ValueError(f"feed_at {sorted(unknown)}: replace some of {list(FED_AT)}")
        need = {"embd"} | ({"l_out"} if self.n_layer > 1 else set())
        if not need <= held:
            raise ValueError(f"feed {d.dir} holds no {' or '.join(sorted(need - held))}: the layers' inputs cannot "
                             f"be fed (extract it with --checkpoints all)")
        if not need <= at:
            raise ValueError(f"feed_at {sorted(at)}: a fed run replaces at least each layer's input ({sorted(need)})")
        if feed_at is not None and "ffn_inp" in at and "ffn_inp" not in held:
            raise ValueError(f"feed {d.dir} holds no ffn_inp to feed")
        self.feed = d
        return at & held

    def _fed_rows(self, checkpoint, layer, like):
        """The feed's rows of this call's positions, shaped and typed as like."""
        rows = self.feed.rows(checkpoint, layer, range(self.pos_start, self.pos_start + self.n_tok),
                              seq=self.feed_seq)
        if rows.size != like.numel():
            raise ValueError(f"feed: {checkpoint} layer {layer} has {rows.shape} at positions {self.pos_start}.."
                             f"{self.pos_start + self.n_tok - 1}; the model's tensor is {tuple(like.shape)}")
        return torch.from_numpy(rows.astype("float32", copy=False)).to(like.dtype).to(like.device).reshape(like.shape)

    # --- hooks --------------------------------------------------------------
    def _hook(self, module, fn, pre=False):
        h = module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn)
        self.handles.append(h)

    def _hook_input(self, module, fn):
        """fn(x) on the module's hidden states (its first argument, or the
        keyword hidden_states where torch passes keywords to hooks, >= 2.0);
        a tensor fn returns replaces them."""
        def pick(args, kwargs):
            if args:
                return args[0], lambda y: ((y,) + tuple(args[1:]), kwargs)
            if kwargs and "hidden_states" in kwargs:
                return kwargs["hidden_states"], lambda y: (args, {**kwargs, "hidden_states": y})
            raise ValueError(f"{type(module).__name__} was called without hidden states as its first argument"
                             + ("" if kwargs is not None else " (torch < 2.0 shows hooks no keyword arguments)"))

        def with_kwargs(mod, args, kwargs):
            x, put = pick(args, kwargs)
            y = fn(x)
            return None if y is None else put(y)

        def positional(mod, args):
            x, put = pick(args, None)
            y = fn(x)
            return None if y is None else put(y)[0]

        try:
            h = module.register_forward_pre_hook(with_kwargs, with_kwargs=True)
        except TypeError:  # torch < 2.0
            h = module.register_forward_pre_hook(positional)
        self.handles.append(h)

    def _register(self):
        m = self.modules
        self._hook(m["embed"], self._on_tokens, pre=True)
        if self.family == "llama":  # layer 0's input is embed_tokens' output; GPT-2's is wte + wpe
            self._hook(m["embed"], lambda mod, i, o: self._write("embd", -1, _rows(o)))
        for il, l in enumerate(m["layers"]):
            self._register_layer(il, l)
        if "norm" in m:
            self._hook(m["norm"], self._on_norm)
        if "lm_head" in m:
            self._hook(m["lm_head"], self._on_logits)

    def _register_layer(self, il, l):
        def heads(x, n):
            return x.reshape(x.shape[0], n, self.head_dim)

        _ATTENTION[id(l["attn"])] = (self, il)
        self._hook_input(l["block"], lambda x: self._on_layer_input(il, x))
        if self.family == "llama":
            self._hook_input(l["q"], lambda x: self._write("attn_norm", il, _rows(x)))
            self._hook(l["q"],
                       lambda mod, i, o: self._write("Qcur_pre_rope", il, self._qk(heads(_rows(o), self.n_head))))
            self._hook(l["k"],
                       lambda mod, i, o: self._write("Kcur_pre_rope", il, self._qk(heads(_rows(o), self.n_head_kv))))
            self._hook(l["v"], lambda mod, i, o: self._write("Vcur", il, heads(_rows(o), self.n_head_kv)))
        else:  # GPT-2: c_attn's output is Q, K, V side by side (llama.cpp views attn_qkv's product the same way)
            self._hook_input(l["qkv"], lambda x: self._write("attn_norm", il, _rows(x)))
            self._hook(l["qkv"], lambda mod, i, o: self._write(
                "Vcur", il, heads(_rows(o)[..., 2 * self.n_head * self.head_dim:], self.n_head_kv)))
        self._hook(l["o"], lambda mod, i, o: self._write("attn_out_proj", il, _rows(o)))
        self._hook_input(l["ffn_norm"], lambda x: self._on_ffn_input(il, x))
        self._hook(l["mlp"], lambda mod, i, o: self._on_ffn_output(il, o))
        self._hook(l["block"], lambda mod, i, o: self._on_layer_output(il, o))

    def _on_layer_input(self, il, x):
        """The hidden states entering layer il: recorded (GPT-2's embd), then
        fed (llama.cpp's embd for layer 0, l_out of il - 1 after)."""
        if il == 0 and self.family != "llama":
            self._write("embd", -1, _rows(x))
        want = "embd" if il == 0 else "l_out"
        if want not in self.feed_at:
            return None
        self.fed_at.add(want)
        self.fed_layers.add(il)
        return self._fed_rows(want, il - 1, x)

    def _on_ffn_input(self, il, x):
        """The residual the FFN's norm reads (ffn_inp): recorded, then fed.
        The layer's last add (residual + mlp) still reads the model's own;
        _on_layer_output redoes it with the fed one."""
        self._write("ffn_inp", il, _rows(x))
        if "ffn_inp" not in self.feed_at:
            return None
        fed = self._fed_rows("ffn_inp", il, x)
        self.fed_ffn[il] = [x, fed, None]
        self.fed_at.add("ffn_inp")
        self.fed_layers.add(il)
        return fed

    def _on_ffn_output(self, il, o):
        self._write("ffn_out", il, _rows(o[0] if isinstance(o, tuple) else o))
        if il in self.fed_ffn:
            self.fed_ffn[il][2] = o[0] if isinstance(o, tuple) else o

    def _on_layer_output(self, il, o):
        out = o[0] if isinstance(o, tuple) else o
        fed = self.fed_ffn.pop(il, None)
        if fed is not None:
            own, ffn_inp, mlp = fed
            if mlp is None or not torch.equal(out, own + mlp):
                raise ValueError(f"layer {il}: its output is not its residual after attention plus its mlp's output: "
                                 f"ffn_inp cannot be fed into this layer (give feed_at=('embd', 'l_out'))")
            out = ffn_inp + mlp  # the layer's own add, on the fed residual: the same operation, bit for bit
        self._write("l_out", il, _rows(out))
        if fed is None:
            return None
        return (out,) + tuple(o[1:]) if isinstance(o, tuple) else out

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
            _ATTENTION.pop(id(l["attn"]), None)
        self.handles = []
        self._note_missing()
        extra = None
        if self.feed is not None:
            fm = self.feed.manifest
            extra = {"fed": {"from": str(self.feed_spec if isinstance(self.feed_spec, (str, os.PathLike))
                                         else self.feed.dir),
                             "producer": fm.get("producer"), "fingerprint": fm["model"].get("fingerprint"),
                             "at": [a for a in FED_AT if a in self.fed_at], "layers": sorted(self.fed_layers)}}
        self.writer.set_run(producer=self.producer, architecture=self.arch, n_layer=self.n_layer,
                            n_embd=self.n_embd, n_head=self.n_head, n_head_kv=self.n_head_kv, n_vocab=self.n_vocab,
                            tokens=self.tokens, settings={**self.settings, "n_ubatch": self.max_tok},
                            model_path=self.model_path, model_fingerprint=self.model_fingerprint, extra=extra)
        self.writer.close(status)

    def _note_missing(self):
        why = ("the attention function did not report its tensors: run attention through "
               "llorch_checkpoint.torch_hooks.eager_attention or call report_attention()")
        for il in range(self.n_layer):
            if self.family == "gpt2":
                for c in ("Qcur_pre_rope", "Kcur_pre_rope"):
                    if c in self.wanted:
                        self.writer.note_missing(c, il, f"{self.arch} applies no RoPE (learned position embeddings): "
                                                        f"Qcur/Kcur are the values entering attention")
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

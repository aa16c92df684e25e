"""RWKV-7 "Goose" in plain numpy, writing llama.cpp's checkpoints of it
(docs/FORMAT.md), so that llorch-checkpoint-compare holds it against
llorch-checkpoint-extractor's dump of the same GGUF: a recurrent model in
the compare workflow, fed runs included.

    python3 -m llorch_checkpoint.rwkv7 MODEL.gguf --tokens 34,105,110 -o DUMP
            [-n N] [-ub N] [--feed DUMP] [--fault SPEC] [--checkpoints LIST]
            [--format auto|npy|npz]

The forward pass is written from the RWKV-7 paper's equations (Peng et al.,
2025) and llama.cpp's GGUF layout (the numpy shape is ggml's ne reversed,
so ggml_mul_mat(W, x) is x @ W.T); it computes in float64 and writes
float32. Per step (a micro-batch of the prompt, or one generated token) it
writes what the extractor captures of an RWKV-7 model, in llama.cpp's
graph order, with the same names, shapes, steps and positions:

  embd           the token embedding (ln0, token_embd_norm, is applied after it)
  attn_norm      LayerNorm before the time mix (the mixer's input)
  cache_s        the layer's WKV state after the step: S[head][value][key], flat
  attn_out_proj  the time mix's output, added to the residual stream
  ffn_inp        the residual stream after the time mix
  cache_r        the layer's token shift after the step: the step's last attn_norm
                 row, then its last channel-mix norm row (2 n_embd), flat
  ffn_out        the channel mix's output
  l_out          the residual stream leaving the layer
  result_norm, logits

(cache_r and cache_s where writer.KINDS has them.) Generation (-n N) is
greedy, as the extractor's: each chosen token is decoded in a step of its
own, the last one too.

Time mix: token shift x + (x_prev - x) mu (mu fused in the order r, w, k, v,
a, g; x_prev the previous token's attn_norm, from the state at a step's
first token); decay w = exp(-e^-1/2 sigmoid(w0 + tanh(x_w W1) W2));
in-context rate a = sigmoid(a0 + x_a A1 A2); value residual from layer 0's
v; gate g = sigmoid(x_g G1) G2; k^ = normalize(k k_k) per head, k~ =
k (1 + (a - 1) k_a); the generalized delta rule S <- S diag(w) - (S k^)(a
k^)^T + v k~^T, y = S r; per-head group norm (eps 64e-5), the bonus
(sum r k~ rho) v, times g, the output projection. Channel mix:
W_v relu(W_k x_k)^2 with its own token shift.

The recurrent state (per layer: the token shift and the WKV state) carries
from step to step, as llama.cpp's cache_r_lN / cache_s_lN.

--feed DUMP: every layer computed from DUMP's residual stream
(docs/FORMAT.md, "Fed runs"): embd, l_out of the layer before and ffn_inp
are written as computed here, then replaced by DUMP's rows at the same
positions; the tokens are DUMP's (its generated ones decoded as generated
steps, not chosen again). The manifest says "fed".

--fault SPEC, one deliberate bug (as llorch-ref-engine's --fault):
  eps:L[=EPS]      layer L's time-mix LayerNorm (attn_norm) uses epsilon EPS (default 0.1)
  ffn-eps:L[=EPS]  layer L's channel-mix LayerNorm (attn_norm_2) uses EPS: seen at ffn_out
  decay:L[=F]      layer L's decay rate e^-1/2 sigmoid(...) times F (default 0.5): seen at
                   the WKV state cache_s, then attn_out_proj, from the step's second token
                   on (a fresh state has nothing to decay at the first)
"""

import argparse
import os
import sys

import numpy as np

from . import __version__
from .gguf import gguf_fingerprint
from .gguf_tensors import GGUFTensors
from .reader import Dump
from .writer import KINDS, DumpWriter

PRODUCER = f"llorch_checkpoint.rwkv7 {__version__}"
FED_AT = ("embd", "l_out", "ffn_inp")
# llama.cpp's recurrent state after the step, one row per sequence, flat in its
# memory order: cache_r the token shift [attn_norm row, ffn_norm row] (2 n_embd),
# cache_s the WKV state [head][value][key] (head_size^2 n_head). Written where
# the writer knows these kinds (writer.KINDS), in llama.cpp's graph order: the
# WKV state's copy comes before the time mix's output projection, the token
# shift's after the channel-mix norm.
STATE_KINDS = tuple(k for k in ("cache_r", "cache_s") if k in KINDS)


def _state(kind):
    return (kind,) if kind in STATE_KINDS else ()


# What one step writes, in llama.cpp's graph order
MODEL_IN = ("embd",)
PER_LAYER = ("attn_norm",) + _state("cache_s") + ("attn_out_proj", "ffn_inp") + _state("cache_r") + ("ffn_out",
                                                                                                      "l_out")
MODEL_OUT = ("result_norm", "logits")
ALL_CHECKPOINTS = MODEL_IN + PER_LAYER + MODEL_OUT
EXTRAS = ("embd", "ffn_inp", "l_out", "result_norm", "logits")
# The attention checkpoints an RWKV-7 layer does not have (its mixer is RWKV_WKV7)
ATTENTION = ("Qcur", "Kcur", "Vcur", "Qcur_pre_rope", "Kcur_pre_rope", "cache_k", "cache_v", "kq_soft_max")
NO_ATTENTION = "layer {il} of rwkv7 has no attention: its mixer is RWKV_WKV7 (a recurrent or linear-attention layer)"
GROUP_NORM_EPS = 64e-5
FAULTS = {"eps": 0.1, "ffn-eps": 0.1, "decay": 0.5}  # name -> default value
EXIT_BAD_INPUT = 2


class BadInput(ValueError):
    """Bad command-line input: exit status 2, one line."""


# ---------------------------------------------------------------- the model

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _mm(x, w):
    """ggml_mul_mat(w, x): x (T, n_in), w (n_out, n_in)."""
    return x @ w.T


class Model:
    """An RWKV-7 GGUF's hyperparameters and weights (float64)."""

    def __init__(self, path):
        g = GGUFTensors(path)
        if g.architecture != "rwkv7":
            raise BadInput(f"{path}: architecture {g.architecture!r}; this engine runs rwkv7 models")
        self.path, self.size = os.fspath(path), g.size
        self.n_layer = int(g.hp("block_count"))
        self.n_embd = int(g.hp("embedding_length"))
        self.head_size = int(g.hp("wkv.head_size"))
        self.n_head = self.n_embd // self.head_size
        self.eps = float(g.hp("attention.layer_norm_epsilon", 1e-5))
        self.weight_types = sorted({g.file_type_name(n) for n in g.infos})
        self.t = {}
        for name in g.infos:
            self.t[name] = g.tensor(name)
        self.n_vocab = self.t["token_embd.weight"].shape[0]

    def w(self, name):
        return self.t[name]


class Fault:
    """--fault KIND:L[=VALUE] (None: no fault)."""

    def __init__(self, spec, n_layer):
        self.kind, self.layer, self.value = None, -1, None
        if spec in (None, "none"):
            return
        kind, _, rest = spec.partition(":")
        layer, _, value = rest.partition("=")
        if kind not in FAULTS or not layer.isdigit():
            raise BadInput(f"--fault {spec!r} is not a fault; use eps:L, ffn-eps:L (each with =EPSILON if wished, "
                           f"default 0.1) or decay:L (=FACTOR, default 0.5) with L a layer number")
        self.kind, self.layer = kind, int(layer)
        try:
            self.value = float(value) if value else FAULTS[kind]
        except ValueError:
            raise BadInput(f"--fault {spec!r}: {value!r} is not a number") from None
        if self.layer >= n_layer:
            raise BadInput(f"--fault {spec}: the model has layers 0-{n_layer - 1}; choose one of them")

    def at(self, kind, layer):
        return self.kind == kind and self.layer == layer

    def spec(self):
        return "none" if self.kind is None else f"{self.kind}:{self.layer}"


class State:
    """One sequence's recurrent state, as llama.cpp's memory holds it."""

    def __init__(self, m):
        self.shift = np.zeros((m.n_layer, 2, m.n_embd))                        # cache_r: attn_norm, ffn_norm
        self.wkv = np.zeros((m.n_layer, m.n_head, m.head_size, m.head_size))   # cache_s: [head][value][key]


class Engine:
    """Runs steps of tokens through the model, writing every checkpoint;
    feed: a Dump whose residual stream replaces this engine's own."""

    def __init__(self, model, writer, fault=None, feed=None, feed_at=FED_AT, checkpoints=ALL_CHECKPOINTS):
        self.m, self.w, self.fault = model, writer, fault or Fault(None, model.n_layer)
        self.wanted = set(checkpoints)
        self.state = State(model)
        self.feed, self.feed_at = feed, set(feed_at) if feed is not None else set()
        self.fed_at, self.fed_layers = set(), set()
        self.step = 0

    def _write(self, checkpoint, layer, a, pos_start, n_pos=None):
        if checkpoint in self.wanted:
            self.w.write(checkpoint, np.asarray(a, dtype=np.float32), layer=layer, step=self.step,
                         pos_start=pos_start, n_pos=n_pos)

    def _fed(self, checkpoint, layer, own, pos_start, fed_layer):
        """own, or the feed's rows of the same positions (recording that it was fed)."""
        if checkpoint not in self.feed_at:
            return own
        rows = self.feed.rows(checkpoint, layer, range(pos_start, pos_start + own.shape[0]))
        if rows.shape != own.shape:
            raise BadInput(f"--feed {self.feed.dir}: {checkpoint} layer {layer} has rows of shape {rows.shape[1:]}; "
                           f"this model's are ({own.shape[1]},)")
        self.fed_at.add(checkpoint)
        self.fed_layers.add(fed_layer)
        return rows.astype(np.float64)

    def _write_state(self, kind, il):
        """cache_r / cache_s of layer il after the step: the one sequence's
        row, flat in llama.cpp's memory order, for the step's positions
        (pos_start, n_pos); only where the writer knows the kind."""
        if kind in STATE_KINDS:
            a = self.state.shift[il] if kind == "cache_r" else self.state.wkv[il]
            self._write(kind, il, a.reshape(-1), self.pos_start, n_pos=self.n_pos)

    def time_mix(self, il, x, v_first):
        """x: attn_norm rows (T, C). Returns (output, v_first); updates the state."""
        m, p, st = self.m, f"blk.{il}.", self.state
        W = lambda n: m.w(p + n)  # noqa: E731
        T, C, H, N = x.shape[0], m.n_embd, m.n_head, m.head_size
        prev = np.vstack([st.shift[il, 0][None, :], x[:-1]])                    # token shift
        mu = W("time_mix_lerp_fused.weight").reshape(-1, C)                     # r, w, k, v, a, g
        xr, xw, xk, xv, xa, xg = (x + (prev - x) * mu[i] for i in range(6))
        r = _mm(xr, W("time_mix_receptance.weight"))
        k = _mm(xk, W("time_mix_key.weight"))
        v = _mm(xv, W("time_mix_value.weight"))
        rate = np.exp(-0.5) * _sigmoid(W("time_mix_w0.weight")
                                       + _mm(np.tanh(_mm(xw, W("time_mix_w1.weight"))), W("time_mix_w2.weight")))
        if self.fault.at("decay", il):
            rate = rate * self.fault.value
        w = np.exp(-rate)                                                       # decay in (e^-e^-1/2, 1)
        a = _sigmoid(W("time_mix_a0.weight") + _mm(_mm(xa, W("time_mix_a1.weight")), W("time_mix_a2.weight")))
        if v_first is None:
            v_first = v
        else:                                                                   # value residual
            nu = _sigmoid(W("time_mix_v0.weight") + _mm(_mm(xv, W("time_mix_v1.weight")), W("time_mix_v2.weight")))
            v = v + (v_first - v) * nu
        g = _mm(_sigmoid(_mm(xg, W("time_mix_g1.weight"))), W("time_mix_g2.weight"))
        kk = (k * W("time_mix_k_k.weight")).reshape(T, H, N)
        kk = kk / np.maximum(np.linalg.norm(kk, axis=-1, keepdims=True), 1e-12)
        k = k * (1.0 + (a - 1.0) * W("time_mix_k_a.weight"))                    # k~
        rh, wh, kh, vh, ah = (t.reshape(T, H, N) for t in (r, w, k, v, a))
        S = st.wkv[il]                                                          # S[h, value i, key j]
        y = np.empty((T, H, N))
        for t in range(T):  # S <- S diag(w) - (S k^)(a k^)^T + v k~^T ;  y = S r
            Sk = np.einsum("hij,hj->hi", S, kk[t])
            S = S * wh[t][:, None, :] - Sk[:, :, None] * (ah[t] * kk[t])[:, None, :] \
                + vh[t][:, :, None] * kh[t][:, None, :]
            y[t] = np.einsum("hij,hj->hi", S, rh[t])
        st.wkv[il] = S
        st.shift[il, 0] = x[-1]
        self._write_state("cache_s", il)
        mean = y.mean(-1, keepdims=True)                                        # group norm, one group per head
        var = ((y - mean) ** 2).mean(-1, keepdims=True)
        o = ((y - mean) / np.sqrt(var + GROUP_NORM_EPS)).reshape(T, C) * W("time_mix_ln.weight") \
            + W("time_mix_ln.bias")
        bonus = (rh * kh * W("time_mix_r_k.weight").reshape(H, N)).sum(-1, keepdims=True) * vh
        o = (o + bonus.reshape(T, C)) * g
        return _mm(o, W("time_mix_output.weight")), v_first

    def channel_mix(self, il, x):
        """x: the channel mix's norm rows (T, C); updates the token shift."""
        m, p, st = self.m, f"blk.{il}.", self.state
        prev = np.vstack([st.shift[il, 1][None, :], x[:-1]])
        st.shift[il, 1] = x[-1]
        self._write_state("cache_r", il)
        xk = x + (prev - x) * m.w(p + "channel_mix_lerp_k.weight").reshape(-1)
        k = np.maximum(_mm(xk, m.w(p + "channel_mix_key.weight")), 0.0) ** 2
        return _mm(k, m.w(p + "channel_mix_value.weight"))

    def run_step(self, tokens, pos_start):
        """One step (a graph evaluation in llama.cpp) of tokens at pos_start..;
        returns its logits (T, n_vocab)."""
        m, f = self.m, self.fault
        self.pos_start, self.n_pos = pos_start, len(tokens)
        emb = m.w("token_embd.weight")[np.asarray(tokens)]
        self._write("embd", -1, emb, pos_start)
        emb = self._fed("embd", -1, emb, pos_start, 0)
        x = _layer_norm(emb, m.w("token_embd_norm.weight"), m.w("token_embd_norm.bias"), m.eps)   # ln0
        v_first = None
        for il in range(m.n_layer):
            p = f"blk.{il}."
            if il > 0:
                x = self._fed("l_out", il - 1, x, pos_start, il)
            eps = f.value if f.at("eps", il) else m.eps
            xa = _layer_norm(x, m.w(p + "attn_norm.weight"), m.w(p + "attn_norm.bias"), eps)
            self._write("attn_norm", il, xa, pos_start)
            att, v_first = self.time_mix(il, xa, v_first)
            self._write("attn_out_proj", il, att, pos_start)
            x = x + att
            self._write("ffn_inp", il, x, pos_start)
            x = self._fed("ffn_inp", il, x, pos_start, il)
            eps = f.value if f.at("ffn-eps", il) else m.eps
            xf = _layer_norm(x, m.w(p + "attn_norm_2.weight"), m.w(p + "attn_norm_2.bias"), eps)
            ffn = self.channel_mix(il, xf)
            self._write("ffn_out", il, ffn, pos_start)
            x = x + ffn
            self._write("l_out", il, x, pos_start)
        x = _layer_norm(x, m.w("output_norm.weight"), m.w("output_norm.bias"), m.eps)
        self._write("result_norm", -1, x, pos_start)
        logits = _mm(x, m.w("output.weight"))
        if "output.scale" in m.t:
            logits = logits * m.w("output.scale").reshape(-1)
        self._write("logits", -1, logits, pos_start)
        self.step += 1
        return logits

    def fed_field(self, feed_spec):
        fm = self.feed.manifest
        return {"from": str(feed_spec), "producer": fm.get("producer"), "fingerprint": fm["model"].get("fingerprint"),
                "at": [a for a in FED_AT if a in self.fed_at], "layers": sorted(self.fed_layers)}


# ---------------------------------------------------------------- running it

def open_feed(path, m, fingerprint):
    """The dump to feed from, checked against the model; the residuals it holds."""
    try:
        d = Dump(path)
    except (OSError, ValueError) as e:
        raise BadInput(f"--feed {path}: {e}") from None
    mm = d.manifest["model"]
    if mm.get("architecture") != "rwkv7" or mm.get("n_layer") != m.n_layer or mm.get("n_embd") != m.n_embd:
        raise BadInput(f"--feed {path}: a {mm.get('architecture')} model of {mm.get('n_layer')} layers, n_embd "
                       f"{mm.get('n_embd')}; this one is rwkv7 with {m.n_layer} layers, n_embd {m.n_embd}")
    theirs = mm.get("fingerprint")
    if theirs and fingerprint and theirs != fingerprint:
        raise BadInput(f"--feed {path}: its model's fingerprint {theirs} is not this model's {fingerprint}: feeding "
                       f"another model's residual stream proves nothing")
    if any("seq" in e for e in d.files):
        raise BadInput(f"--feed {path}: a dump of several sequences; feed from a dump of one")
    held = {c for c in FED_AT if d.entries(c, None)}
    need = {"embd"} | ({"l_out"} if m.n_layer > 1 else set())
    if not need <= held:
        raise BadInput(f"--feed {path} holds no {' or '.join(sorted(need - held))}: the layers' inputs cannot be fed "
                       f"(extract it with --checkpoints all)")
    return d, held


def plan_steps(n_prompt, n_total, ubatch):
    """(start, end) of each step: the prompt in micro-batches of ubatch
    tokens (0: one step), then one step per generated token."""
    ub = ubatch or n_prompt
    steps = [(s, min(s + ub, n_prompt)) for s in range(0, n_prompt, ub)]
    return steps + [(p, p + 1) for p in range(n_prompt, n_total)]


def parse_checkpoints(text):
    """--checkpoints: names, numbers 1-6 and ranges of them, 'extras', 'all'.
    Returns (what to write, in graph order; the attention checkpoints asked
    for, which an RWKV-7 layer does not have)."""
    want = set()
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            want |= set(ALL_CHECKPOINTS) | set(ATTENTION)
        elif part == "extras":
            want |= set(EXTRAS)
        elif part.replace("-", "").isdigit() and part.count("-") <= 1 and not part.startswith("-"):
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi or lo)
            if not 1 <= lo <= hi <= 6:
                raise BadInput(f"--checkpoints {text!r}: checkpoint numbers are 1 to 6")
            for n in range(lo, hi + 1):
                want |= {k for k in ALL_CHECKPOINTS + ATTENTION if KINDS[k][0] == n}
        elif part in KINDS:
            want.add(part)
        else:
            raise BadInput(f"--checkpoints {text!r}: {part!r} is not a checkpoint; use names "
                           f"({', '.join(ALL_CHECKPOINTS)}), numbers 1-6, 'extras' or 'all'")
    return [k for k in ALL_CHECKPOINTS if k in want], [k for k in ATTENTION if k in want]


def parse_tokens(text):
    try:
        tokens = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise BadInput(f"--tokens {text!r}: give token ids separated by commas, e.g. 34,105,110") from None
    if not tokens:
        raise BadInput("--tokens: no token ids")
    return tokens


def run(args):
    if not os.path.isfile(args.model):
        raise BadInput(f"{args.model}: no such model file")
    try:
        m = Model(args.model)
        fingerprint = gguf_fingerprint(args.model)
    except (ValueError, KeyError, TypeError) as e:   # not a GGUF, or not one this engine reads
        raise BadInput(str(e).strip("'\"")) from None
    fault = Fault(args.fault, m.n_layer)
    checkpoints, absent = parse_checkpoints(args.checkpoints)
    feed, feed_at = None, ()
    if args.feed:
        feed, feed_at = open_feed(args.feed, m, fingerprint)
        fed_tokens = [int(t) for t in feed.tokens.reshape(-1)]
        if args.tokens is not None and parse_tokens(args.tokens) != fed_tokens:
            raise BadInput(f"--tokens {args.tokens} are not the tokens of --feed {args.feed} ({fed_tokens}); "
                           f"leave --tokens out to run on them")
        dump_predict = int(feed.manifest.get("settings", {}).get("n_predict", 0) or 0)
        if args.n_predict is not None and args.n_predict != dump_predict:
            raise BadInput(f"-n {args.n_predict}: --feed {args.feed} generated {dump_predict} tokens; a fed run "
                           f"decodes those (leave -n out)")
        n_predict = dump_predict
        prompt, forced = fed_tokens[:len(fed_tokens) - n_predict], fed_tokens[len(fed_tokens) - n_predict:]
    else:
        if args.tokens is None:
            raise BadInput("give --tokens IDS (or --feed DUMP to run on its tokens)")
        prompt, forced, n_predict = parse_tokens(args.tokens), None, args.n_predict or 0
    bad = [t for t in prompt + (forced or []) if not 0 <= t < m.n_vocab]
    if bad:
        raise BadInput(f"token id {bad[0]} is out of the vocabulary (0-{m.n_vocab - 1})")
    if n_predict < 0 or (args.ubatch is not None and args.ubatch < 1):
        raise BadInput("-n must be 0 or more and -ub 1 or more")
    steps = plan_steps(len(prompt), len(prompt) + n_predict, args.ubatch or 0)
    form = args.format if args.format != "auto" else ("npy" if len(steps) == 1 else "npz")
    settings = {"type_k": "f32", "type_v": "f32", "type_r": "f32", "type_s": "f32", "weight_type": "f32",
                "compute_dtype": "f32", "dtype": "f32", "flash_attn": False, "backend": "cpu",
                "accumulation": "float64", "n_ubatch": max(e - s for s, e in steps), "n_predict": n_predict,
                "steps": len(steps), "fault": fault.spec(), "numpy": np.__version__,
                "gguf_tensor_types": m.weight_types}
    if fault.kind is not None:
        settings["fault_value"] = fault.value
    try:
        w = DumpWriter(args.output, form=form)
    except (OSError, ValueError) as e:
        raise BadInput(f"-o {args.output}: {e}") from None
    tokens = list(prompt)
    engine = Engine(m, w, fault, feed, feed_at, checkpoints)
    for il in range(m.n_layer):
        for k in absent:
            w.note_missing(k, il, NO_ATTENTION.format(il=il))

    def set_run():
        extra = {"fed": engine.fed_field(args.feed)} if feed is not None else None
        w.set_run(producer=PRODUCER, architecture="rwkv7", n_layer=m.n_layer, n_embd=m.n_embd, n_head=0,
                  n_head_kv=0, n_vocab=m.n_vocab, tokens=tokens, settings=settings, model_path=args.model,
                  model_size=m.size, model_fingerprint=fingerprint, extra=extra)

    set_run()
    with w:
        for i, (start, end) in enumerate(steps):
            logits = engine.run_step(tokens[start:end], start)
            if end == len(tokens) and len(tokens) < len(prompt) + n_predict:   # greedy: the first largest logit
                tokens.append(forced[len(tokens) - len(prompt)] if forced is not None else int(np.argmax(logits[-1])))
        set_run()
    print(f"llorch_checkpoint.rwkv7: {len(tokens)} tokens in {len(steps)} steps, written to {args.output}"
          + (f" (fed by {args.feed}: {', '.join(engine.fed_field(args.feed)['at'])})" if feed is not None else "")
          + (f"; fault {fault.spec()}={fault.value:g}" if fault.kind else ""))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m llorch_checkpoint.rwkv7", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an RWKV-7 GGUF (F32, F16 or BF16 tensors)")
    ap.add_argument("--tokens", help="token ids, comma separated (with --feed: default the dump's)")
    ap.add_argument("-o", "--output", required=True, help="new or empty directory for the dump")
    ap.add_argument("-n", "--n-predict", type=int, default=None,
                    help="generate N more tokens greedily, one step each (default 0)")
    ap.add_argument("-ub", "--ubatch-size", dest="ubatch", type=int, default=None,
                    help="the prompt in steps of at most N tokens (default: one step)")
    ap.add_argument("--feed", help="compute each layer from this dump's input to it (docs/FORMAT.md, \"Fed runs\")")
    ap.add_argument("--fault", default=None, help="one deliberate bug: eps:L[=EPS], ffn-eps:L[=EPS], decay:L[=F]")
    ap.add_argument("--checkpoints", default="all",
                    help="names, numbers 1-6 (1 attn_norm, 3 cache_r/cache_s, 5 attn_out_proj, 6 ffn_out), "
                         "'extras' (embd ffn_inp l_out result_norm logits), 'all' (default)")
    ap.add_argument("--format", choices=("auto", "npy", "npz"), default="auto",
                    help="npy (a file per tensor), npz (one file); auto: npy for one step, npz for more")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except BadInput as e:
        print(f"llorch_checkpoint.rwkv7: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

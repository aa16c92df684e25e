#!/usr/bin/env python3
"""An independent numpy reference for llama.cpp's recurrent layers.

A plain float64 numpy forward pass, written from the papers' equations and
llama.cpp's GGUF tensor layout (not from this project's capture code), of

  rwkv7  RWKV-7 "Goose" (Peng et al., 2025): time mix with the generalized
         delta rule, S_t = S_{t-1} (diag(w_t) - k^_t^T (a_t * k^_t)) + v_t^T k~_t,
         y_t = S_t r_t, per-head group norm, bonus (r.k~.rho) v, gate g and
         output projection; value residual from layer 0's v; channel mix
         W_v relu(W_k x_k)^2; token shift (lerp with the previous token)
         into both; LayerNorm before each and after the embedding (ln0).
  mamba  Mamba (Gu and Dao, 2023): RMSNorm, in-projection to x and z, causal
         depthwise conv1d (kernel d_conv) + bias + SiLU, x_proj to (dt, B, C),
         dt = softplus(W_dt dt + b), h_t = exp(dt A) h_{t-1} + dt B x_t,
         y = C h_t + D x, y * SiLU(z), out-projection, residual.

It checks llama.cpp's own tensors, captured by llorch-checkpoint-extractor,
layer by layer, together with the recurrent state each layer leaves behind
(graph source), and the whole model's logits; for the RWKV-7 test model also
rwkv.cpp's committed expected logits (docs/RECURRENT.md).

  recurrent_reference.py MODEL (--extractor EXE --work DIR | --dump DIR)
                         [--source graph|checkpoints] [--tokens IDS] [--ubatch N]
                         [--expected-logits FILE] [--rtol 1e-5]

--source graph (the default) reads tensors by llama.cpp's graph names
(--graph-regex) and finds the unnamed ones (mixer and channel-mix outputs, the
WKV7/SSM scan and the state copies) in the --dump-graph file by the weight or
state they read. --source checkpoints reads the extractor's own per-layer
checkpoints: attn_norm, mixer_out (or attn_out_proj), ffn_inp, ffn_out
(rwkv7), l_out, and the model-level logits.

GGUF is read with llama.cpp's gguf-py: --gguf-py DIR or $LLAMA_GGUF_PY.
Exit status: 0 all match, 1 a mismatch or an error, 77 skipped (no model).
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np

SKIP = 77


# ---------------------------------------------------------------- GGUF

class Model:
    def __init__(self, path, gguf_py):
        if gguf_py:
            sys.path.insert(0, gguf_py)
        import gguf  # llama.cpp's gguf-py
        r = gguf.GGUFReader(path)
        self.kv = {}
        for k, f in r.fields.items():
            if k.startswith("tokenizer."):
                continue
            try:
                self.kv[k] = f.contents()
            except Exception:  # noqa: BLE001  (a field gguf-py cannot decode: unused here)
                pass
        self.arch = self.kv["general.architecture"]
        self.t = {}
        for t in r.tensors:
            if t.tensor_type.name not in ("F32", "F16", "BF16"):
                raise SystemExit(f"{t.name}: {t.tensor_type.name} weights: this reference reads F32/F16 only")
            # gguf-py gives numpy shape = reversed ggml ne: a matrix with
            # ne = [n_in, n_out] is (n_out, n_in), so y = x @ W.T (ggml_mul_mat)
            a = np.asarray(t.data)
            if t.tensor_type.name == "BF16":
                a = (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            self.t[t.name] = a.astype(np.float64).reshape([int(n) for n in reversed(t.shape)])

    def hp(self, key, default=None):
        return self.kv.get(f"{self.arch}.{key}", default)

    def w(self, name):
        return self.t[name]

    def n_layer(self):
        return int(self.hp("block_count"))

    def lin(self, x, base, scaled=False):
        """x @ W.T for BASE.weight; with scaled (where llama.cpp's
        build_lora_mm is given the tensor) times the per-output BASE.scale
        that some GGUFs carry (llama.cpp's test models among them)."""
        y = mm(x, self.t[base + ".weight"])
        if scaled and base + ".scale" in self.t:
            y = y * self.t[base + ".scale"].reshape(-1)
        return y


def mm(x, w):
    """ggml_mul_mat(w, x) for x of shape (T, n_in)."""
    return x @ w.T


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x * sigmoid(x)


# ---------------------------------------------------------------- RWKV-7

def rwkv7_forward(m, tokens):
    """Every layer's tensors for the tokens from a fresh state: out[il][name]
    is (T, ...); out['logits'] is (T, n_vocab)."""
    eps = float(m.hp("attention.layer_norm_epsilon"))
    C = int(m.hp("embedding_length"))
    N = int(m.hp("wkv.head_size"))
    H = C // N
    T = len(tokens)
    x = m.w("token_embd.weight")[tokens]                       # (T, C)
    x = layer_norm(x, m.w("token_embd_norm.weight"), m.w("token_embd_norm.bias"), eps)   # ln0
    out = {"embd": m.w("token_embd.weight")[tokens]}
    v_first = None
    for il in range(m.n_layer()):
        p = f"blk.{il}."
        W = lambda n: m.w(p + n)  # noqa: E731
        res = {"inp": x}
        # ---- time mix
        xa_norm = layer_norm(x, W("attn_norm.weight"), W("attn_norm.bias"), eps)
        res["attn_norm"] = xa_norm
        prev = np.vstack([np.zeros((1, C)), xa_norm[:-1]])    # token shift, fresh state = 0
        mu = W("time_mix_lerp_fused.weight").reshape(6, C)     # r, w, k, v, a, g
        xr, xw, xk, xv, xa, xg = (xa_norm + (prev - xa_norm) * mu[i] for i in range(6))
        r = mm(xr, W("time_mix_receptance.weight"))
        k = mm(xk, W("time_mix_key.weight"))
        v = mm(xv, W("time_mix_value.weight"))
        d = W("time_mix_w0.weight") + mm(np.tanh(mm(xw, W("time_mix_w1.weight"))), W("time_mix_w2.weight"))
        w = np.exp(-np.exp(-0.5) * sigmoid(d))                 # decay in (exp(-e^-1/2), 1)
        a = sigmoid(W("time_mix_a0.weight") + mm(mm(xa, W("time_mix_a1.weight")), W("time_mix_a2.weight")))
        if v_first is None:
            v_first = v
        else:                                                  # value residual
            nu = sigmoid(W("time_mix_v0.weight") + mm(mm(xv, W("time_mix_v1.weight")), W("time_mix_v2.weight")))
            v = v + (v_first - v) * nu
        g = mm(sigmoid(mm(xg, W("time_mix_g1.weight"))), W("time_mix_g2.weight"))
        kk = (k * W("time_mix_k_k.weight")).reshape(T, H, N)
        kk = kk / np.maximum(np.linalg.norm(kk, axis=-1, keepdims=True), 1e-12)
        k = k * (1.0 + (a - 1.0) * W("time_mix_k_a.weight"))  # k~
        rh, wh, kh, vh, ah = (t.reshape(T, H, N) for t in (r, w, k, v, a))
        S = np.zeros((H, N, N))                                # S[h, value i, key j]
        y = np.zeros((T, H, N))
        for t in range(T):
            # S <- S diag(w) - (S k^) (a k^)^T + v k~^T ;  y = S r
            Sk = np.einsum("hij,hj->hi", S, kk[t])
            S = S * wh[t][:, None, :] - Sk[:, :, None] * (ah[t] * kk[t])[:, None, :] \
                + vh[t][:, :, None] * kh[t][:, None, :]
            y[t] = np.einsum("hij,hj->hi", S, rh[t])
        res["wkv"] = y.reshape(T, C)
        res["wkv_state"] = S.copy()                            # (H, N, N): value, key
        mu_y = y.mean(-1, keepdims=True)                       # group norm per head
        var_y = ((y - mu_y) ** 2).mean(-1, keepdims=True)
        o = ((y - mu_y) / np.sqrt(var_y + 64e-5)).reshape(T, C) * W("time_mix_ln.weight") + W("time_mix_ln.bias")
        bonus = (rh * kh * W("time_mix_r_k.weight").reshape(H, N)).sum(-1, keepdims=True) * vh
        o = (o + bonus.reshape(T, C)) * g
        att = mm(o, W("time_mix_output.weight"))
        res["mixer_out"] = att
        x = x + att
        res["ffn_inp"] = x
        # ---- channel mix
        xf_norm = layer_norm(x, W("attn_norm_2.weight"), W("attn_norm_2.bias"), eps)
        res["ffn_norm"] = xf_norm
        prev = np.vstack([np.zeros((1, C)), xf_norm[:-1]])
        xk = xf_norm + (prev - xf_norm) * W("channel_mix_lerp_k.weight").reshape(C)
        kf = np.maximum(mm(xk, W("channel_mix_key.weight")), 0.0) ** 2
        ffn = mm(kf, W("channel_mix_value.weight"))
        res["ffn_out"] = ffn
        x = x + ffn
        res["l_out"] = x
        res["shift_state"] = np.concatenate([xa_norm[-1], xf_norm[-1]])   # (2C,)
        out[il] = res
    x = layer_norm(x, m.w("output_norm.weight"), m.w("output_norm.bias"), eps)
    out["result_norm"] = x
    out["logits"] = m.lin(x, "output", scaled=True)
    return out


# ---------------------------------------------------------------- Mamba

def mamba_forward(m, tokens):
    eps = float(m.hp("attention.layer_norm_rms_epsilon"))
    d_inner = int(m.hp("ssm.inner_size"))
    d_state = int(m.hp("ssm.state_size"))
    d_conv = int(m.hp("ssm.conv_kernel"))
    dt_rank = int(m.hp("ssm.time_step_rank"))
    T = len(tokens)
    x = m.w("token_embd.weight")[tokens]
    out = {"embd": x}
    for il in range(m.n_layer()):
        p = f"blk.{il}."
        W = lambda n: m.w(p + n)  # noqa: E731
        res = {"inp": x}
        h = rms_norm(x, W("attn_norm.weight"), eps)
        res["attn_norm"] = h
        xz = m.lin(h, p + "ssm_in", scaled=True)                        # (T, 2 d_inner): x, then z
        xi, z = xz[:, :d_inner], xz[:, d_inner:]
        # causal depthwise conv1d over time, zero history: kernel (d_inner, d_conv),
        # tap d_conv-1 on the current token
        cw = W("ssm_conv1d.weight").reshape(d_inner, d_conv)
        xpad = np.vstack([np.zeros((d_conv - 1, d_inner)), xi])
        conv = np.stack([(xpad[t:t + d_conv].T * cw).sum(-1) for t in range(T)])
        res["conv_state"] = xpad[-(d_conv - 1):].T.copy()      # (d_inner, d_conv-1): last inputs
        xc = silu(conv + W("ssm_conv1d.bias"))
        res["conv_out"] = xc
        dbc = mm(xc, W("ssm_x.weight"))
        dt, B, Cm = dbc[:, :dt_rank], dbc[:, dt_rank:dt_rank + d_state], dbc[:, dt_rank + d_state:]
        dt = np.logaddexp(0.0, mm(dt, W("ssm_dt.weight")) + W("ssm_dt.bias"))   # softplus, (T, d_inner)
        A = W("ssm_a").reshape(d_inner, d_state)             # stored as A = -exp(A_log)
        Dp = W("ssm_d").reshape(d_inner)
        hs = np.zeros((d_inner, d_state))
        y = np.zeros((T, d_inner))
        for t in range(T):
            hs = np.exp(dt[t][:, None] * A) * hs + (dt[t] * xc[t])[:, None] * B[t][None, :]
            y[t] = hs @ Cm[t]
        res["ssm_y"] = y                                       # before the D skip
        res["ssm_state"] = hs.copy()                           # (d_inner, d_state)
        y = (y + xc * Dp) * silu(z)
        o = m.lin(y, p + "ssm_out", scaled=True)
        res["mixer_out"] = o
        x = x + o
        res["l_out"] = x
        out[il] = res
    x = rms_norm(x, m.w("output_norm.weight"), eps)
    out["result_norm"] = x
    logits = mm(x, m.t.get("output.weight", m.w("token_embd.weight")))   # tied where no output.weight
    if "output.scale" in m.t:
        logits = logits * m.t["output.scale"].reshape(-1)
    out["logits"] = logits
    return out


FORWARD = {"rwkv7": rwkv7_forward, "mamba": mamba_forward}


# ---------------------------------------------------------------- dumps

class Dump:
    def __init__(self, d):
        self.dir = d
        with open(os.path.join(d, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.files = self.manifest["files"]
        self._npz = None

    def load(self, entry):
        path = os.path.join(self.dir, entry["file"])
        if os.path.exists(path):
            return np.load(path)
        if self._npz is None:   # npz or safetensors forms: npz only here
            z = glob.glob(os.path.join(self.dir, "*.npz"))
            if not z:
                raise SystemExit(f"{entry['file']}: not in {self.dir} (use --format npy or npz)")
            self._npz = np.load(z[0])
        key = entry["file"]
        return self._npz[key if key in self._npz.files else key[:-4]]


def read_graph_dump(path):
    """--dump-graph FILE: {n_tokens: [node dict]} per step size."""
    graphs, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            mt = re.match(r"# graph of a step of (\d+) tokens", line)
            if mt:
                cur = graphs.setdefault(int(mt.group(1)), [])
                continue
            if line.startswith("#") or not line or cur is None:
                continue
            c = line.split("\t")
            cur.append({"idx": int(c[0]), "op": c[1], "name": c[3],
                        "ne": [int(n) for n in c[4].split(",")], "view_src": c[5],
                        "inputs": [s.strip() for s in c[6].split("|")]})
    return graphs


def graph_names(arch, nodes, n_layer, model):
    """For one step's graph: {(layer, quantity): llama.cpp tensor name}.
    Named tensors by their cb() names; unnamed ones by what they read."""
    names = {}

    def reading(weight):
        scale = weight[:-len(".weight")] + ".scale"
        if scale in model.t and any("weight:" + scale in n["inputs"] for n in nodes):
            weight = scale        # the projection's output is the scale's MUL
        hit = [n for n in nodes if "weight:" + weight in n["inputs"]]
        return hit[0]["name"] if hit else None

    def state_copy(kind, il):   # the CPY that writes a layer's state back (non-empty)
        hit = [n for n in nodes if n["op"] == "CPY" and n["view_src"] == f"state:cache_{kind}_l{il}"
               and np.prod(n["ne"]) > 0]
        return hit[-1]["name"] if hit else None

    scan_op = {"rwkv7": "RWKV_WKV7", "mamba": "SSM_SCAN"}[arch]
    scans = [n["name"] for n in nodes if n["op"] == scan_op]
    for il in range(n_layer):
        names[(il, "attn_norm")] = f"attn_norm-{il}"
        names[(il, "l_out")] = f"l_out-{il}"
        names[(il, "state_s")] = state_copy("s", il)
        names[(il, "state_r")] = state_copy("r", il)
        names[(il, "scan")] = scans[il] if il < len(scans) else None
        if arch == "rwkv7":
            names[(il, "ffn_inp")] = f"ffn_inp-{il}"
            names[(il, "ffn_norm")] = f"ffn_norm-{il}"
            names[(il, "mixer_out")] = reading(f"blk.{il}.time_mix_output.weight")
            names[(il, "ffn_out")] = reading(f"blk.{il}.channel_mix_value.weight")
        else:
            names[(il, "mixer_out")] = reading(f"blk.{il}.ssm_out.weight")
    names[(-1, "embd")] = "embd"
    names[(-1, "logits")] = "result_output"
    names[(-1, "result_norm")] = "result_norm"
    return names


# ---------------------------------------------------------------- checks

class Checker:
    def __init__(self, rtol):
        self.rtol = rtol
        self.rows = []
        self.failed = 0

    def check(self, what, got, ref):
        got = np.asarray(got, dtype=np.float64)
        if got.shape != ref.shape:
            if got.size == ref.size:
                got = got.reshape(ref.shape)
            else:
                self.failed += 1
                self.rows.append((what, None, f"shape {got.shape} != reference {ref.shape}"))
                return
        scale = max(float(np.abs(ref).max()), 1e-30)
        err = float(np.abs(got - ref).max()) / scale
        ok = bool(np.isfinite(got).all()) and err <= self.rtol
        self.failed += not ok
        self.rows.append((what, err, "ok" if ok else "MISMATCH"))

    def note(self, what, msg, fail=False):
        self.failed += fail
        self.rows.append((what, None, msg))

    def report(self):
        for what, err, msg in self.rows:
            e = "" if err is None else f"{err:.3e}"
            print(f"  {what:<44} {e:>10}  {msg}")
        errs = [e for _, e, _ in self.rows if e is not None]
        print(f"{len(errs)} tensors compared, max relative error {max(errs) if errs else float('nan'):.3e}"
              f" (tolerance {self.rtol:g}); {self.failed} failed")


def rows_of(entry, arr, ref_all):
    """The reference rows a captured (T_step, ...) tensor holds: the step's
    positions, or its last rows where llama.cpp kept only output rows."""
    start, n = entry["pos_start"], entry["n_pos"]
    ref = ref_all[start:start + n]
    if arr.shape[0] < n:
        ref = ref[n - arr.shape[0]:]
    return ref


def check_graph(arch, dump, graph_file, ref, n_layer, chk):
    graphs = read_graph_dump(graph_file)
    by_name = {}
    for e in dump.files:
        if e["checkpoint"] == "graph":
            by_name.setdefault((e["step"], e["graph_name"]), e)
    steps = sorted({e["step"]: e for e in dump.files}.items())
    last_step = steps[-1][0]
    for s, any_e in steps:
        n_tok = any_e["n_pos"]
        start = any_e["pos_start"]
        names = graph_names(arch, graphs[n_tok], n_layer, MODEL)

        def get(il, q):
            name = names.get((il, q))
            e = by_name.get((s, name)) if name else None
            if e is None:
                chk.note(f"s{s} L{il} {q}", f"not captured (graph name {name!r})", fail=True)
                return None, None
            return e, dump.load(e)

        for il in range(n_layer):
            r = ref[il]
            qs = ["attn_norm", "mixer_out", "ffn_inp", "ffn_norm", "ffn_out", "l_out"] if arch == "rwkv7" \
                else ["attn_norm", "mixer_out", "l_out"]
            for q in qs:
                e, a = get(il, q)
                if e is not None:
                    chk.check(f"s{s} L{il} {q} [{e['graph_name']}]", a, rows_of(e, a, r[q]))
            # the state after this step's last token: the reference's run up to there
            part = prefix_forward(arch, start + n_tok)[il]
            # the scan op (RWKV_WKV7, SSM_SCAN): this step's outputs, then the state
            e, a = get(il, "scan")
            if e is not None:
                a = a.reshape(-1)
                y_ref = (r["wkv"] if arch == "rwkv7" else r["ssm_y"])[start:start + n_tok]
                chk.check(f"s{s} L{il} scan output [{e['graph_name']}]", a[:y_ref.size], y_ref)
                st = (part["wkv_state"] if arch == "rwkv7" else part["ssm_state"]).reshape(-1)
                chk.check(f"s{s} L{il} scan state [{e['graph_name']}]", a[y_ref.size:], st)
            for kind in ("s", "r"):
                e, a = get(il, "state_" + kind)
                if e is None:
                    continue
                if arch == "rwkv7":
                    want = part["wkv_state"] if kind == "s" else part["shift_state"]
                else:
                    want = part["ssm_state"] if kind == "s" else part["conv_state"]
                chk.check(f"s{s} L{il} state cache_{kind}_l{il}", a.reshape(-1), want.reshape(-1))
        for q in ("embd", "result_norm", "logits"):
            e = by_name.get((s, names[(-1, q)]))
            if e is not None:
                a = dump.load(e)
                chk.check(f"s{s} {q} [{e['graph_name']}]", a, rows_of(e, a, ref[q]))
            elif s == last_step:
                chk.note(f"s{s} {q}", "not captured", fail=True)


_PREFIX = {}


def prefix_forward(arch, end):
    """The reference after TOKENS[:end]: the state a step ending there leaves."""
    if end not in _PREFIX:
        _PREFIX[end] = FORWARD[arch](MODEL, TOKENS[:end])
    return _PREFIX[end]


# checkpoint names per quantity: the first present is used
CHECKPOINT_NAMES = {
    "attn_norm": ["attn_norm"],
    "mixer_out": ["mixer_out", "attn_out_proj"],
    "ffn_inp": ["ffn_inp"],
    "ffn_out": ["ffn_out"],
    "l_out": ["l_out"],
}


# the recurrent state checkpoints and the reference's state they hold
# (llama.cpp's memory order, docs/FORMAT.md "The recurrent state")
STATE_OF = {
    "rwkv7": {"cache_s": "wkv_state", "cache_r": "shift_state"},
    "mamba": {"cache_s": "ssm_state", "cache_r": "conv_state"},
}


def check_checkpoints(arch, dump, ref, n_layer, chk, skip_if_absent=False):
    have = {}
    for e in dump.files:
        if e["checkpoint"] != "graph":
            have.setdefault((e["checkpoint"], e["layer"]), []).append(e)
    qs = ["attn_norm", "mixer_out", "ffn_inp", "ffn_out", "l_out"] if arch == "rwkv7" \
        else ["attn_norm", "mixer_out", "l_out"]
    if skip_if_absent and not any(layer >= 0 for _, layer in have):
        return False   # the extractor writes no per-layer checkpoint of this architecture
    for il in range(n_layer):
        for q in qs:
            found = [c for c in CHECKPOINT_NAMES[q] if (c, il) in have]
            if not found:
                why = [x["reason"] for x in dump.manifest.get("missing", [])
                       if x["checkpoint"] in CHECKPOINT_NAMES[q] and x["layer"] == il]
                chk.note(f"L{il} {q}", f"no checkpoint {'/'.join(CHECKPOINT_NAMES[q])}"
                         + (f" ({why[0]})" if why else ""), fail=True)
                continue
            for e in sorted(have[(found[0], il)], key=lambda e: e["step"]):
                a = dump.load(e)
                chk.check(f"s{e['step']} L{il} {q} [{found[0]}]", a, rows_of(e, a, ref[il][q]))
    for il in range(n_layer):
        # the state each step leaves: the reference's run up to its last token
        for kind, q in STATE_OF[arch].items():
            if (kind, il) not in have:
                chk.note(f"L{il} {kind}", "no checkpoint", fail=True)
                continue
            for e in sorted(have[(kind, il)], key=lambda e: e["step"]):
                part = prefix_forward(arch, e["pos_start"] + e["n_pos"])[il]
                chk.check(f"s{e['step']} L{il} {kind}", dump.load(e).reshape(-1), part[q].reshape(-1))
    for q in ("embd", "result_norm", "logits"):
        for e in sorted(have.get((q, -1), []), key=lambda e: e["step"]):
            a = dump.load(e)
            chk.check(f"s{e['step']} {q}", a, rows_of(e, a, ref[q]))
    return True


# ---------------------------------------------------------------- main

MODEL = None
TOKENS = None


def main():
    global MODEL, TOKENS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--extractor", help="run this llorch-checkpoint-extractor into --work")
    ap.add_argument("--work", help="directory for the extractor's dump (emptied)")
    ap.add_argument("--dump", help="check this existing dump instead (graph source: also --graph-file)")
    ap.add_argument("--graph-file", help="its --dump-graph file (default DUMP/../graph.tsv)")
    ap.add_argument("--source", choices=["graph", "checkpoints"], default="graph")
    ap.add_argument("--tokens", default=None, help="token ids (default: 34,105,110 for rwkv7, 1,2,3,4,5 else)")
    ap.add_argument("--ubatch", type=int, default=0, help="-ub N: several steps, the state carried between them")
    ap.add_argument("--expected-logits", help="raw float32 logits of the last token (rwkv.cpp's file)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="max |got-ref| / max |ref| per tensor")
    ap.add_argument("--gguf-py", default=os.environ.get("LLAMA_GGUF_PY"))
    ap.add_argument("--skip-if-absent", action="store_true",
                    help="checkpoints source: exit 77 where the dump has no per-layer checkpoint at all")
    ap.add_argument("--extra", action="append", default=[], help="one more extractor argument")
    args = ap.parse_args()

    if not os.path.exists(args.model):
        print(f"SKIP: no model {args.model}")
        return SKIP
    m = MODEL = Model(args.model, args.gguf_py)
    if m.arch not in FORWARD:
        print(f"FAIL: architecture {m.arch}: this reference has rwkv7 and mamba")
        return 1
    tokens = args.tokens or ("34,105,110" if m.arch == "rwkv7" else "1,2,3,4,5")
    TOKENS = [int(t) for t in tokens.split(",")]
    n_layer = m.n_layer()

    if args.dump:
        dump_dir = args.dump
        graph_file = args.graph_file or os.path.join(os.path.dirname(os.path.abspath(dump_dir)), "graph.tsv")
    else:
        if not (args.extractor and args.work):
            ap.error("give --extractor and --work, or --dump")
        os.makedirs(args.work, exist_ok=True)
        dump_dir = os.path.join(args.work, "dump")
        graph_file = os.path.join(args.work, "graph.tsv")
        if os.path.exists(dump_dir):
            import shutil
            shutil.rmtree(dump_dir)
        cmd = [args.extractor, "-m", args.model, "--tokens", tokens, "-t", "2", "-ctk", "f32", "-ctv", "f32",
               "--format", "npy", "--no-sync", "-o", dump_dir]
        if args.ubatch:
            cmd += ["-b", str(args.ubatch), "-ub", str(args.ubatch)]
        if args.source == "graph":
            cmd += ["--checkpoints", "none", "--graph-regex", ".*", "--dump-graph", graph_file]
        else:
            cmd += ["--checkpoints", "all"]
        cmd += args.extra
        print("+", " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout[-2000:], p.stderr[-4000:])
            print(f"FAIL: extractor exited {p.returncode}")
            return 1

    dump = Dump(dump_dir)
    if dump.manifest.get("tokens") and [int(t) for t in dump.manifest["tokens"]] != TOKENS:
        print(f"FAIL: the dump's tokens {dump.manifest['tokens']} are not {TOKENS} (--tokens)")
        return 1
    ref = _PREFIX[len(TOKENS)] = FORWARD[m.arch](m, TOKENS)
    chk = Checker(args.rtol)
    print(f"{m.arch}: {n_layer} layers, tokens {TOKENS}, {len({e['step'] for e in dump.files})} step(s), "
          f"source {args.source}")
    if args.source == "graph":
        check_graph(m.arch, dump, graph_file, ref, n_layer, chk)
    else:
        if not check_checkpoints(m.arch, dump, ref, n_layer, chk, args.skip_if_absent):
            print(f"SKIP: the extractor wrote no per-layer checkpoint of {m.arch} (--skip-if-absent)")
            return SKIP
    if args.expected_logits:
        exp = np.fromfile(args.expected_logits, dtype="<f4").astype(np.float64)
        chk.check("numpy logits vs expected-logits file", ref["logits"][-1], exp)
    chk.report()
    print("PASS" if chk.failed == 0 else "FAIL")
    return 0 if chk.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks that every captured checkpoint is the tensor its dataflow rule names.

For one model it runs the extractor three times on the same tokens (four
with flash attention off):
  1. the checkpoints (--checkpoints all, f32 KV cache), with --dump-graph,
     marked graph outputs and read after the graph (--output-mb 512: the
     path a GPU takes; nothing may have been overwritten or fused away);
  2. the same checkpoints with --split-each: each copied at a split of its
     own right after it is computed; every tensor must equal run 1's bit
     for bit;
  3. every node of the graph (--graph-regex '.*', --split-each), as
     llama.cpp computed it;
  4. (flash attention off) the default selection, as a user runs it on the
     CPU (gathered at as few graph splits as liveness allows): its tensors
     must be run 1's, bit for bit. In a model whose layers have
     neither attention nor FFN (mamba) it selects only the mixers' input
     and output (attn_norm, attn_out_proj).
A run that exits non-zero, or whose stderr holds a sanitizer's report
(AddressSanitizer, LeakSanitizer, UBSan; the build-asan extractor), is a
problem whatever else it wrote.
It then finds, with rules written here independently of the library (other
code, other direction of search where possible), the node each checkpoint
must come from, and asserts that the captured data equal that node's data
bit for bit, after the documented layout changes (heads split, key cells
trimmed, V un-transposed). Absent checkpoints must carry a specific reason
that agrees with what the rules see (no attention core in the layer, ...;
a layer whose mixer is not attention must capture the mixer's input and
output where the rules find them). In such layers, where l_out is the
addition of ffn_inp and ffn_out, the captured tensors must add up bit for
bit.

  archs_check.py EXTRACTOR MODEL WORKDIR [--fa on|off]   -> WORKDIR/result.json

The result lists every finding; exit status 1 when anything is wrong.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np

from dump_load import Dump

TOKENS = "1,2,3,4,5"
T = 5

LAYOUT_OPS = {"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE", "CONT"}


# --- the graph ------------------------------------------------------------------

class Graph:
    """The --dump-graph file: nodes with their inputs (its last column, the
    library's own identification, is not read)."""

    def __init__(self, path):
        self.nodes = []
        for line in open(path):
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            n = {"i": int(f[0]), "op": f[1], "type": f[2], "name": f[3],
                 "ne": [int(x) for x in f[4].split(",")],
                 "view": self.ref(f[5]),
                 "src": [self.ref(x) for x in f[6].split(" | ") if x != ""]}
            self.nodes.append(n)
        self.memo_norm, self.memo_add, self.memo_ffn = {}, {}, {}
        self.attention_layers = set()       # set by check() from cores()
        self.cons = [[] for _ in self.nodes]
        for n in self.nodes:
            for s in n["src"]:
                if isinstance(s, int) and n["i"] not in self.cons[s]:
                    self.cons[s].append(n["i"])

    @staticmethod
    def ref(text):
        if text == "-":
            return None
        if re.fullmatch(r"\d+", text):
            return int(text)
        kind, name = text.split(":", 1)
        return (kind, name)

    def weight(self, i):
        n = self.nodes[i]
        if n["op"] in ("MUL_MAT", "MUL_MAT_ID") and isinstance(n["src"][0], tuple) and n["src"][0][0] == "weight":
            return n["src"][0][1]
        return None

    def weight_layer(self, i):
        w = self.weight(i)
        m = re.match(r"blk\.(\d+)\.", w) if w else None
        return int(m.group(1)) if m else None

    def ancestors(self, i):
        seen, stack = set(), [i]
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            stack.extend(s for s in self.nodes[x]["src"] if isinstance(s, int))
        return seen

    def elements(self, i):
        ne = self.nodes[i]["ne"]
        return ne[0] * ne[1] * ne[2] * ne[3]

    def state_leaf(self, i):
        """The state leaf a chain of views reads (by name), or None."""
        while isinstance(i, int):
            n = self.nodes[i]
            if isinstance(n["view"], tuple) and n["view"][0] == "state":
                return n["view"][1]
            if n["op"] not in LAYOUT_OPS | {"CPY", "CONCAT"}:
                return None
            i = n["src"][0]
        if isinstance(i, tuple) and i[0] == "state":
            return i[1]
        return None


# --- attention cores, searched forward from every activation product -------------

def cores(g):
    found = []
    for n in g.nodes:
        if n["op"] == "FLASH_ATTN_EXT":
            found.append({"fa": n["i"], "q": n["src"][0], "k": n["src"][1], "v": n["src"][2], "softmax": None})
            continue
        if n["op"] != "MUL_MAT" or g.weight(n["i"]) or not all(isinstance(s, int) for s in n["src"][:2]):
            continue
        # forward: scaling, capping, then a softmax whose output another product reads
        x = n["i"]
        while len(g.cons[x]) == 1 and g.nodes[g.cons[x][0]]["op"] in ("SCALE", "UNARY", "TANH"):
            x = g.cons[x][0]
        sm = [c for c in g.cons[x] if g.nodes[c]["op"] == "SOFT_MAX" and g.nodes[c]["src"][0] == x]
        if not sm:
            continue
        frontier, kqv = [sm[0]], None
        while frontier and kqv is None:
            y = frontier.pop()
            for c in g.cons[y]:
                cn = g.nodes[c]
                if cn["op"] == "MUL_MAT" and cn["src"][1] == y and not g.weight(c):
                    kqv = c
                elif cn["op"] in LAYOUT_OPS | {"CPY"} and cn["src"][0] == y:
                    frontier.append(c)
        if kqv is not None:
            found.append({"fa": None, "kq": n["i"], "softmax": sm[0], "kqv": kqv,
                          "q": n["src"][1], "k": n["src"][0], "v": g.nodes[kqv]["src"][0]})
    for c in found:
        leaf = g.state_leaf(c["k"])
        m = re.search(r"_l(\d+)$", leaf) if leaf else None
        if m:
            c["layer"] = int(m.group(1))
        else:
            layers = [g.weight_layer(a) for a in sorted(g.ancestors(c["q"]), reverse=True) if g.weight_layer(a) is not None]
            c["layer"] = layers[0] if layers else None
        c["k_state"], c["v_state"] = leaf, g.state_leaf(c["v"])
    by_layer = {}
    for c in found:
        by_layer.setdefault(c["layer"], c)      # the first core of a layer is its attention
    return by_layer


# --- the data ----------------------------------------------------------------------

class Full:
    """The full-graph dump: node i's data as llama.cpp held it right after
    computing node i (numpy shape: ne reversed)."""

    def __init__(self, d, g):
        self.dump = Dump(d)
        self.files = {}
        for i, f in enumerate(self.dump.manifest["files"]):
            name = f["graph_name"].split("#")[0]
            if i < len(g.nodes) and name == g.nodes[i]["name"]:
                self.files[i] = f
        self.g = g

    def data(self, i):
        if i not in self.files:
            return None
        a = self.dump.array(self.files[i])
        ne = self.g.nodes[i]["ne"]
        return a.reshape(ne[3], ne[2], ne[1], ne[0])


def same(a, b):
    return a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# --- the expectations ----------------------------------------------------------------

def chain(g, i):
    """i and the nodes it is a view or copy of, nearest first."""
    out = [i]
    while g.nodes[i]["op"] in LAYOUT_OPS | {"CPY"} and isinstance(g.nodes[i]["src"][0], int):
        i = g.nodes[i]["src"][0]
        out.append(i)
    return out


def heads_candidates(g, full, i):
    """The [head_dim, heads, tokens] tensors behind what attention reads:
    numpy (T, H, d), the dump's layout."""
    out = []
    for x in chain(g, i):
        ne = g.nodes[x]["ne"]
        if ne[2] == T and ne[3] == 1:
            d = full.data(x)
            if d is not None:
                out.append(d[0])
    return out


def cache_candidates(g, full, i, K, d):
    """The cache views behind what attention reads: numpy (K, H, d)."""
    out = []
    for x in chain(g, i):
        n = g.nodes[x]
        if not (isinstance(n["view"], tuple) and n["view"][0] == "state" and n["op"] == "VIEW" and n["ne"][3] == 1):
            continue
        a = full.data(x)
        if a is None:
            continue
        a = a[0]                                         # (ne2, ne1, ne0)
        out.append(a[:K] if n["ne"][0] == d else a.transpose(2, 1, 0)[:K])
    return out


def expectations(g, full, core, K, d):
    """kind -> (list of acceptable arrays, description) for one layer's
    attention. Arrays are in the dump's layout; flat ones compare flat."""
    exp = {}
    exp["Qcur"] = (heads_candidates(g, full, core["q"]), "what attention reads as Q")
    if core["fa"] is None:
        sm = full.data(core["softmax"])
        exp["kq_soft_max"] = ([] if sm is None else [sm[0][:, :, :K]], f"softmax node {core['softmax']}")
    if core["k_state"] is None:
        exp["Kcur"] = (heads_candidates(g, full, core["k"]), "what attention reads as K (no cache)")
        exp["Vcur"] = (heads_candidates(g, full, core["v"]) +
                       [x.transpose(2, 0, 1) for x in (full.data(core["v"])[0],) if core["fa"] is None],
                       "what attention reads as V (no cache)")
        return exp
    exp["cache_k"] = (cache_candidates(g, full, core["k"], K, d), "the cache view attention reads as K")
    for kind, state in (("Kcur", core["k_state"]), ("Vcur", core["v_state"])):
        if state is None or (kind == "Vcur" and state == core["k_state"]):
            continue
        writes = [n["i"] for n in g.nodes if n["op"] in ("SET_ROWS", "CPY") and n["view"] == ("state", state)]
        if writes:
            w = full.data(g.nodes[writes[-1]]["src"][0])
            exp[kind] = ([] if w is None else [w.reshape(-1)], f"what SET_ROWS {writes[-1]} writes into {state}")
    if core["v_state"] and core["v_state"] != core["k_state"]:
        exp["cache_v"] = (cache_candidates(g, full, core["v"], K, d), "the cache view attention reads as V")
    return exp


def attention_input(g, core, layer):
    q_anc = g.ancestors(core["q"])
    kv_anc = set()
    for x in (core["k"], core["v"]):
        kv_anc |= g.ancestors(x)
    for n in g.nodes:          # what is written into the caches descends from the K/V projections
        if n["op"] in ("SET_ROWS", "CPY") and isinstance(n["view"], tuple) and \
                n["view"][1] in (core["k_state"], core["v_state"]):
            kv_anc |= g.ancestors(n["src"][0])
    best = None
    for p in q_anc:
        if g.weight_layer(p) != layer or not isinstance(g.nodes[p]["src"][1], int):
            continue
        x = g.nodes[p]["src"][1]
        while g.nodes[x]["op"] in ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE") and isinstance(g.nodes[x]["src"][0], int):
            x = g.nodes[x]["src"][0]
        if x in kv_anc and (best is None or x > best):
            best = x
    return best


def output_projection(g, core, layer):
    """Forward from the attention result: the first product with the layer's
    attn_output weight, then on through bias and scale (and a second stage
    of the output projection)."""
    start = core["fa"] if core["fa"] is not None else core["kqv"]
    frontier, seen, proj = [start], set(), None
    while frontier and proj is None:
        x = frontier.pop(0)
        for c in g.cons[x]:
            w = g.weight(c)
            if w and re.match(rf"blk\.{layer}\.attn_out", w):
                proj = c
                break
            if c not in seen:
                seen.add(c)
                frontier.append(c)
    if proj is None:
        return None
    while True:
        cons = g.cons[proj]
        if len(cons) != 1:
            return proj
        c = g.nodes[cons[0]]
        other = [s for s in c["src"] if s != proj]
        if c["op"] in ("ADD", "MUL") and other and isinstance(other[0], tuple) and other[0][0] == "weight" \
                and re.match(rf"blk\.{layer}\.attn_out", other[0][1]):
            proj = cons[0]
            continue
        # a second stage: layout ops, then another attn_output product
        y, hops = cons[0], 0
        while g.nodes[y]["op"] in LAYOUT_OPS and len(g.cons[y]) == 1 and hops < 4:
            y, hops = g.cons[y][0], hops + 1
        w = g.weight(y)
        if w and re.match(rf"blk\.{layer}\.attn_out", w) and y != proj:
            proj = y
            continue
        return proj


# --- layers whose mixer is not attention (SSM, linear attention, RWKV) -----------------

def is_norm_output(g, i):
    """A norm's output: NORM / RMS_NORM, with its weight (MUL) and bias (ADD)."""
    n = g.nodes[i]
    if n["op"] in ("NORM", "RMS_NORM"):
        return True
    w = n["src"][1] if len(n["src"]) > 1 else None
    if n["op"] in ("MUL", "ADD") and isinstance(w, tuple) and w[0] == "weight" and isinstance(n["src"][0], int):
        return is_norm_output(g, n["src"][0])
    return False


def strip_layout(g, i):
    while isinstance(i, int) and g.nodes[i]["op"] in LAYOUT_OPS and isinstance(g.nodes[i]["src"][0], int):
        i = g.nodes[i]["src"][0]
    return i


def mixer_norm(g, layer):
    """The norm before a mixer without attention: the latest norm output that
    the layer's first weight product is computed from (searched backwards
    from that product; the library searches forward, from every in-projection)."""
    if layer not in g.memo_norm:
        prods = [n["i"] for n in g.nodes if g.weight_layer(n["i"]) == layer]
        g.memo_norm[layer] = None
        if prods:
            norms = [a for a in g.ancestors(min(prods)) if is_norm_output(g, a)]
            g.memo_norm[layer] = max(norms) if norms else None
    return g.memo_norm[layer]


def token_derived(g, i):
    """i is computed from the token embedding (not from weights, state and
    per-step inputs alone)."""
    return any(g.nodes[a]["op"] == "GET_ROWS" and g.nodes[a]["src"][0] == ("weight", "token_embd.weight")
               for a in g.ancestors(i))


def mixer_residual_add(g, layer):
    """(the ADD that puts the mixer's output into the residual stream, that
    operand): the first ADD after the norm before the mixer of something
    computed with the layer's weight products and of a token activation
    computed without them (the stream; minimax-01 adds the scaled norm)."""
    if layer in g.memo_add:
        return g.memo_add[layer]
    g.memo_add[layer] = (None, None)
    norm = mixer_norm(g, layer)
    if norm is None:
        return g.memo_add[layer]
    for n in g.nodes:
        if n["op"] != "ADD" or n["i"] <= norm or not all(isinstance(s, int) for s in n["src"][:2]):
            continue
        a, b = n["src"][0], n["src"][1]
        for x, y in ((a, b), (b, a)):
            if layer_weights(g, x, layer) and not layer_weights(g, y, layer) and token_derived(g, y):
                g.memo_add[layer] = (n["i"], x)
                return g.memo_add[layer]
    return g.memo_add[layer]


def strip_rows(g, i):
    """i without layout ops and the last layer's row selection."""
    while True:
        i = strip_layout(g, i)
        n = g.nodes[i]
        if n["op"] == "GET_ROWS" and isinstance(n["src"][1], tuple) and n["src"][1][0] == "input":
            i = n["src"][0]
        else:
            return i


def mixer_output(g, layer):
    """The mixer's output: the operand of its residual add, with row
    selection, residual multiplier and post-norm peeled off its end."""
    _, x = mixer_residual_add(g, layer)
    while x is not None:
        x = strip_rows(g, x)
        n = g.nodes[x]
        if n["op"] == "SCALE":
            x = n["src"][0]
        elif is_norm_output(g, x):                  # a post-norm: what it normed
            while g.nodes[x]["op"] in ("MUL", "ADD"):
                x = g.nodes[x]["src"][0]
            x = g.nodes[x]["src"][0]
        else:
            return x
    return None


def has_mixer_weights(g, layer):
    """The layer uses weights outside its blk.N.ffn_* ones (a mixer)."""
    return any(g.weight_layer(n["i"]) == layer and not re.match(rf"blk\.{layer}\.ffn_", g.weight(n["i"]))
               for n in g.nodes)


def ffn_ancestry(g, layer):
    """The FFN's weight products: blk.N.ffn_*, and in a layer whose mixer is
    not attention every product of the layer computed from the mixer's
    residual add (RWKV's channel mix), whatever its weights are called."""
    if layer in g.memo_ffn:
        return g.memo_ffn[layer]
    starts = {n["i"] for n in g.nodes if g.weight(n["i"]) and re.match(rf"blk\.{layer}\.ffn_", g.weight(n["i"]))}
    if layer not in g.attention_layers:
        add, _ = mixer_residual_add(g, layer)
        if add is not None:
            starts |= {n["i"] for n in g.nodes if n["i"] > add and g.weight_layer(n["i"]) == layer
                       and add in g.ancestors(n["i"])}
    g.memo_ffn[layer] = starts
    return starts


def is_post_op(g, i):
    n = g.nodes[i]
    if n["op"] in ("SCALE", "RMS_NORM", "NORM", "REPEAT"):
        return True
    if n["op"] == "GET_ROWS" and isinstance(n["src"][1], tuple):
        return True
    if n["op"] == "MUL" and isinstance(n["src"][0], int) and g.nodes[n["src"][0]]["op"] in ("RMS_NORM", "NORM"):
        return True
    if n["op"] == "ADD" and isinstance(n["src"][1], tuple) and n["src"][1][0] == "weight" and \
            isinstance(n["src"][0], int) and g.nodes[n["src"][0]]["op"] == "MUL":
        m = g.nodes[n["src"][0]]
        return isinstance(m["src"][0], int) and g.nodes[m["src"][0]]["op"] in ("RMS_NORM", "NORM")
    if n["op"] in ("RESHAPE", "VIEW") and len(g.cons[i]) == 1 and g.nodes[g.cons[i][0]]["op"] == "REPEAT":
        return True
    return False


def check_ffn_out(g, node, layer):
    """ffn_out comes from the layer's FFN products and reaches through
    post-ops only the first node that mixes in something with no FFN
    ancestry (the residual, another branch). It is not itself a post-op,
    except for a SCALE that a norm reads on that way: a multiplier before
    the post-norm is the branch's own (grok: (dense + experts) * sqrt(1/2),
    then the post-norm), so on the way no SCALE may come before a norm."""
    starts = ffn_ancestry(g, layer)
    if not (g.ancestors(node) & starts):
        return False
    x, way = node, []
    while True:
        cons = g.cons[x]
        if len(cons) != 1:
            return False
        c = cons[0]
        others = [s for s in g.nodes[c]["src"] if isinstance(s, int) and s != x]
        foreign = [s for s in others if not (g.ancestors(s) & starts) and
                   not all(isinstance(z, tuple) and z[0] == "weight" for z in g.nodes[s]["src"])]
        if foreign:
            break
        if not is_post_op(g, c) and others:
            return False        # the FFN continues: node was not its end
        way.append(g.nodes[c]["op"])
        x = c
    last_norm = max((k for k, op in enumerate(way) if op in ("RMS_NORM", "NORM")), default=-1)
    if "SCALE" in way[:max(last_norm, 0)]:
        return False            # a later multiplier, still before the post-norm, ends the branch
    if is_post_op(g, node):
        return g.nodes[node]["op"] == "SCALE" and last_norm >= 0
    return True


# --- one model ----------------------------------------------------------------------

GENERIC = "not found in the"


# What AddressSanitizer, LeakSanitizer and UBSan write when they find
# something (the build-asan extractor stops at the first; a build that
# recovers would go on with exit status 0: the report alone must fail).
SANITIZER = re.compile(r"runtime error:|ERROR: (Address|Leak|Memory|Thread)Sanitizer|SUMMARY: \w+Sanitizer")


def run(cmd):
    """Exit status and the line that says why it failed: a sanitizer's
    report wherever it stands in stderr (0 becomes 1 with one), else the
    last line."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    report = [x for x in lines if SANITIZER.search(x)]
    if report:
        return p.returncode or 1, "sanitizer: " + report[0].strip()
    return p.returncode, lines[-1] if lines else ""


def same_as_split_each(merged, each):
    """Problems where the merged plan's data differ from --split-each's."""
    a, b = merged.manifest["files"], each.manifest["files"]
    if [(f["file"], f["shape"]) for f in a] != [(f["file"], f["shape"]) for f in b]:
        return ["the merged plan and --split-each list different tensors"]
    return [f"{f['file']}: merged plan differs from --split-each"
            for f, e in zip(a, b) if merged.array(f).tobytes() != each.array(e).tobytes()]


def default_within_all(default, everything):
    """Problems where the default selection's dump is not part of --checkpoints
    all's: the same tensors, bit for bit, and the same reasons for the absent."""
    key = lambda f: (f["checkpoint"], f["layer"], f["step"])
    known = {key(f): f for f in everything.manifest["files"]}
    out = []
    for f in default.manifest["files"]:
        e = known.get(key(f))
        if e is None or default.array(f).tobytes() != everything.array(e).tobytes():
            out.append(f"{f['file']}: the default selection's tensor is not --checkpoints all's")
    reasons = {(a["checkpoint"], a["layer"]): a["reason"] for a in everything.manifest["missing"]}
    out += [f"{a['checkpoint']} layer {a['layer']}: missing by default, not with --checkpoints all"
            for a in default.manifest["missing"] if reasons.get((a["checkpoint"], a["layer"])) != a["reason"]]
    return out


def check(extractor, model, work, fa):
    os.makedirs(work, exist_ok=True)
    dump, fulld, graph = os.path.join(work, "dump"), os.path.join(work, "full"), os.path.join(work, "graph.tsv")
    common = ["-m", model, "--tokens", TOKENS, "-t", "2", "-ctk", "f32", "-ctv", "f32", "-fa", fa]
    res = {"model": os.path.basename(model), "fa": fa, "problems": [], "tensors": 0, "verified": 0}
    kinds = "all" if fa == "off" else "1-3,5,6,Qcur_pre_rope,Kcur_pre_rope,extras"   # no scores with FA
    # read after the graph (marked graph outputs), the path a GPU takes; the
    # default run below reads at merged graph splits, --split-each at one each
    rc, err = run([extractor] + common + ["--checkpoints", kinds, "--output-mb", "512", "-o", dump,
                                          "--dump-graph", graph])
    if rc != 0:
        res["problems"].append(f"extractor failed ({rc}): {err}")
        return res
    llama_cpp = Dump(dump).manifest["llama_cpp"]
    if llama_cpp.get("patched") is True and llama_cpp.get("capture") not in ("outputs", "none"):
        res["problems"].append(f"--output-mb 512 read at graph splits ({llama_cpp.get('capture')})")
    eachd = os.path.join(work, "split-each")
    rc, err = run([extractor] + common + ["--checkpoints", kinds, "-o", eachd, "--split-each"])
    if rc != 0:
        res["problems"].append(f"--split-each run failed ({rc}): {err}")
        return res
    rc, err = run([extractor] + common + ["--checkpoints", "none", "--graph-regex", ".*", "--split-each", "-o", fulld])
    if rc != 0:
        res["problems"].append(f"full-graph dump failed ({rc}): {err}")
        return res
    if fa == "off":
        # a text prompt: a model without a tokenizer (these random models) is
        # a one-line error that points to --tokens, never llama.cpp's abort
        rc, err = run([extractor, "-m", model, "-p", "hi", "-o", os.path.join(work, "text-prompt")])
        if rc not in (0, 2) or (rc == 2 and "--tokens" not in err):
            res["problems"].append(f"-p on this model: exit {rc}: {err}")
        # the default selection, as a user runs it: in layers without attention
        # or FFN (mamba) it selects only attn_norm and attn_out_proj
        defd = os.path.join(work, "default")
        rc, err = run([extractor] + common + ["-o", defd])
        if rc != 0:
            res["problems"].append(f"default-selection run failed ({rc}): {err}")
            return res
        res["problems"] += default_within_all(Dump(defd), Dump(dump))
    res["problems"] += same_as_split_each(Dump(dump), Dump(eachd))
    res["split_each_equal"] = len(Dump(dump).manifest["files"])
    g = Graph(graph)
    full = Full(fulld, g)
    captured_dump = Dump(dump)
    m = captured_dump.manifest
    n_layer, n_embd = m["model"]["n_layer"], m["model"]["n_embd"]
    arch = m["model"]["architecture"]
    by_layer = cores(g)
    g.attention_layers = set(by_layer)
    K = T
    res.update({"arch": arch, "n_layer": n_layer, "rows": []})
    for f in m["files"]:
        kind, layer, node_name, op = f["checkpoint"], f["layer"], f.get("graph_name", ""), f.get("graph_op", "")
        res["tensors"] += 1
        res["rows"].append({"checkpoint": kind, "layer": layer, "tensor": node_name, "op": op})
        captured = captured_dump.array(f)
        ok, why = verify(g, full, by_layer, kind, layer, captured, f, n_embd, K)
        if ok:
            res["verified"] += 1
        else:
            res["problems"].append(f"{kind} layer {layer} ({node_name}, {op}): {why}")
    res["problems"] += residual_sums(g, captured_dump, by_layer)
    for a in m["missing"]:
        res["rows"].append({"checkpoint": a["checkpoint"], "layer": a["layer"], "missing": a["reason"]})
        problem = check_absence(g, by_layer, a)
        if problem:
            res["problems"].append(f"{a['checkpoint']} layer {a['layer']} missing: {problem}")
    return res


def residual_sums(g, dump, by_layer):
    """In layers whose mixer is not attention: where l_out is the ADD of
    the captured ffn_out and ffn_inp (no post-norm or multiplier between),
    the captured tensors must add up, bit for bit: ffn_inp + ffn_out ==
    l_out."""
    files = {(f["checkpoint"], f["layer"]): f for f in dump.manifest["files"]}
    out = []
    for (kind, layer), f in files.items():
        if kind != "l_out" or layer in by_layer or ("ffn_out_final", layer) in files:
            continue
        inp, ffn = files.get(("ffn_inp", layer)), files.get(("ffn_out", layer))
        if inp is None or ffn is None:
            continue
        nodes = {k: node_of(g, x.get("graph_name", ""), x.get("graph_op", ""), None) for k, x in
                 (("l_out", f), ("ffn_inp", inp), ("ffn_out", ffn))}
        adds = [i for i in nodes["l_out"] if g.nodes[i]["op"] == "ADD"]
        if not any({strip_rows(g, s) for s in g.nodes[i]["src"][:2] if isinstance(s, int)} &
                   set(nodes["ffn_inp"]) and
                   {strip_rows(g, s) for s in g.nodes[i]["src"][:2] if isinstance(s, int)} & set(nodes["ffn_out"])
                   for i in adds):
            continue
        a, b, c = dump.array(inp), dump.array(ffn), dump.array(f)
        if a.shape != c.shape or b.shape != c.shape or not np.array_equal(a + b, c):
            out.append(f"layer {layer}: ffn_inp + ffn_out != l_out")
    return out


def node_of(g, name, op, captured_shape):
    """Candidates for the captured tensor among the graph's nodes (by name
    and op, as the manifest records them)."""
    return [n["i"] for n in g.nodes if n["name"] == name and n["op"] == op]


def verify(g, full, by_layer, kind, layer, captured, f, n_embd, K):
    core = by_layer.get(layer)
    if kind in ("Qcur", "Kcur", "Vcur", "cache_k", "cache_v", "kq_soft_max"):
        if core is None:
            return False, "captured, but the layer has no attention core"
        exp = expectations(g, full, core, K, captured.shape[-1]).get(kind)
        if exp is None or not exp[0]:
            return False, "no expectation (the rules find no such tensor)"
        wants, what = exp
        ok = any(same(captured.reshape(-1) if w.ndim == 1 else captured, w) for w in wants)
        return (True, "") if ok else (False, f"data differ from {what}")
    if kind in ("cache_r", "cache_s"):
        return verify_state(g, full, kind, layer, captured)
    cands = node_of(g, f.get("graph_name", ""), f.get("graph_op", ""), captured.shape)
    datas = {i: full.data(i) for i in cands}

    def equal_to(i):
        d = full.data(i)
        return d is not None and captured.size == d.size and np.array_equal(captured.reshape(-1), d.reshape(-1), equal_nan=True)

    if kind == "attn_norm":
        want = attention_input(g, core, layer) if core else mixer_norm(g, layer)
        return (True, "") if want is not None and equal_to(want) else (False, f"expected the shared input of the Q/K projections, node {want}")
    if kind == "attn_out_proj":
        want = output_projection(g, core, layer) if core else mixer_output(g, layer)
        return (True, "") if want is not None and equal_to(want) else (False, f"expected the end of the output projection, node {want}")
    if kind == "ffn_out":
        hits = [i for i in cands if equal_to(i) and check_ffn_out(g, i, layer)]
        return (True, "") if hits else (False, "not the FFN branch's end (before post-norm/multiplier)")
    if kind in ("Qcur_pre_rope", "Kcur_pre_rope"):
        if core is None:
            return False, "no attention core"
        target = core["q"] if kind == "Qcur_pre_rope" else core["k"]
        if kind == "Kcur_pre_rope" and core["k_state"]:
            w = [n for n in g.nodes if n["op"] in ("SET_ROWS", "CPY") and n["view"] == ("state", core["k_state"])]
            target = w[-1]["src"][0] if w else target
        ropes = [a for a in g.ancestors(target) if g.nodes[a]["op"] == "ROPE"]
        ropes = [r for r in ropes if g.elements(r) == g.elements(target)]
        if not ropes:
            return False, "captured, but no RoPE precedes what attention reads"
        r = max(ropes)
        return (True, "") if equal_to(g.nodes[r]["src"][0]) else (False, f"not the input of RoPE node {r}")
    hits = [i for i in cands if equal_to(i)]
    if not hits:
        return False, "data equal no node of that name and op"
    rule = SEMANTIC.get(kind)
    if rule is None:
        return True, ""
    ok = [i for i in hits if rule(g, i, layer, core)]
    return (True, "") if ok else (False, f"the node does not satisfy the rule for {kind}")


def layer_weights(g, i, layer, ffn=None):
    """True when node i is computed from weights of `layer` (ffn: only the
    FFN's, or only the others')."""
    ffn_set = ffn_ancestry(g, layer) if ffn is not None else set()
    for a in g.ancestors(i):
        w = g.weight(a)
        if w and w.startswith(f"blk.{layer}.") and (ffn is None or (a in ffn_set) == ffn):
            return True
    return False


def is_l_out(g, i, layer, core):
    """An ADD of the layer's FFN branch to a stream without it (the layer's
    last addition); in a layer without an FFN, of its mixer to a stream
    without the layer's weights."""
    n = g.nodes[i]
    if n["op"] != "ADD" or not all(isinstance(s, int) for s in n["src"][:2]):
        return False
    a, b = n["src"][0], n["src"][1]
    has_ffn = bool(ffn_ancestry(g, layer))
    if has_ffn:
        return any(layer_weights(g, x, layer, True) and not layer_weights(g, y, layer, True) for x, y in ((a, b), (b, a)))
    return any(layer_weights(g, x, layer) and not layer_weights(g, y, layer) for x, y in ((a, b), (b, a)))


def is_ffn_inp(g, i, layer, core):
    """An ADD of the layer's mixer to a stream without the layer's weights,
    which the layer's FFN reads."""
    n = g.nodes[i]
    if n["op"] != "ADD" or not all(isinstance(s, int) for s in n["src"][:2]):
        return False
    a, b = n["src"][0], n["src"][1]
    mixer = any(layer_weights(g, x, layer, False) and not layer_weights(g, x, layer, True) and
                not layer_weights(g, y, layer) for x, y in ((a, b), (b, a)))
    read = any(c >= i and i in g.ancestors(c) for c in ffn_ancestry(g, layer))
    return mixer and read


def is_embedding(g, i, layer, core):
    anc = g.ancestors(i)
    lookups = [a for a in anc if g.nodes[a]["op"] == "GET_ROWS" and g.nodes[a]["src"][0] == ("weight", "token_embd.weight")]
    return bool(lookups) and not any(g.weight(a) for a in anc) and g.nodes[i]["op"] in ("GET_ROWS", "ADD", "SCALE")


def is_logits(g, i, layer, core):
    vocab = [n["i"] for n in g.nodes if n["ne"][0] == g.nodes[i]["ne"][0]]
    return i == max(vocab)


def is_result_norm(g, i, layer, core):
    return any(g.weight(c) and g.nodes[c]["src"][1] == i and is_logits(g, max(n["i"] for n in g.nodes
               if n["ne"][0] == g.nodes[c]["ne"][0]), c, None) for c in g.cons[i])


def is_head_norm(g, i, layer, core):
    n = g.nodes[i]
    norm = n["op"] in ("RMS_NORM", "NORM", "L2_NORM") or (
        n["op"] == "MUL" and isinstance(n["src"][0], int) and g.nodes[n["src"][0]]["op"] in ("RMS_NORM", "NORM", "L2_NORM"))
    return norm and core is not None


def is_unscaled(g, i, layer, core):
    q = core["q"] if core else None
    while q is not None and g.nodes[q]["op"] in LAYOUT_OPS:
        q = g.nodes[q]["src"][0]
    return q is not None and g.nodes[q]["op"] == "SCALE" and i in g.ancestors(q) and i != q


def is_merged_operand(g, i, layer, core):
    return any(is_l_out(g, c, layer, core) or is_ffn_inp(g, c, layer, core) or g.nodes[c]["op"] != "ADD"
               for c in g.cons[i])


def expert_family(g, i, layer, want):
    fams = set()
    for a in g.ancestors(i):
        w = g.weight(a)
        if w and w.startswith(f"blk.{layer}.ffn_"):
            fams.add("shared" if "shexp" in w else "experts" if ("exps" in w or "gate_inp." in w) else "dense")
    return fams == {want}


# which input of a recurrence op is its state (ggml.c)
STATE_OPERAND = {"SSM_SCAN": 0, "RWKV_WKV6": 5, "RWKV_WKV7": 6, "GATED_LINEAR_ATTN": 4, "GATED_DELTA_NET": 5}


def recurrence_state_leaves(g):
    """The state leaves that recurrence ops read as their state: each op's
    state operand, traced back through row selection and layout ops."""
    leaves = set()
    for n in g.nodes:
        k = STATE_OPERAND.get(n["op"])
        todo = [n["src"][k]] if k is not None and k < len(n["src"]) else []
        while todo:
            s = todo.pop()
            if isinstance(s, tuple):
                leaves |= {s[1]} if s[0] == "state" else set()
                continue
            m = g.nodes[s]
            if isinstance(m["view"], tuple) and m["view"][0] == "state":
                leaves.add(m["view"][1])
            elif m["op"] in LAYOUT_OPS | {"GET_ROWS"}:
                todo.append(m["src"][0])
    return leaves


def state_leaf_layer(name):
    """The layer llama.cpp's recurrent memory names a state tensor after:
    cache_r_lN, or NAME-N where the model renamed it (kimi, plamo2)."""
    m = re.search(r"(?:_l|-)(\d+)$", name)
    return int(m.group(1)) if m else None


def state_writes(g, kind, layer):
    """The copies, in graph order, of values computed from the layer's
    weights into the layer's state leaf: cache_s is the leaf that a
    recurrence op reads as its state (in a model without a mixer op: a leaf
    whose new value is computed from its old one, as linear attention's
    state matrix), cache_r another one that a mixer op is computed from."""
    out = []
    for n in g.nodes:
        view = n["view"]
        if n["op"] != "CPY" or not (isinstance(view, tuple) and view[0] == "state") or g.elements(n["i"]) == 0:
            continue
        if state_leaf_layer(view[1]) != layer or not isinstance(n["src"][0], int):
            continue
        s_leaf = view[1] in recurrence_state_leaves(g) or (
            not any(m["op"] in MIXER_OPS for m in g.nodes) and any(isinstance(g.nodes[a]["view"], tuple) and
                                                   g.nodes[a]["view"] == view for a in g.ancestors(n["src"][0])))
        if layer_weights(g, n["src"][0], layer) and s_leaf == (kind == "cache_s") and (s_leaf or view[1] in mixer_leaves(g)):
            out.append(n["i"])
    return out


MIXER_OPS = set(STATE_OPERAND) | {"SSM_CONV"}


def mixer_leaves(g):
    """The state leaves that some mixer op (a recurrence or a short
    convolution) is computed from."""
    above = set()
    for n in g.nodes:
        if n["op"] in MIXER_OPS:
            above |= g.ancestors(n["i"])
    return {g.nodes[i]["view"][1] for i in above
            if isinstance(g.nodes[i]["view"], tuple) and g.nodes[i]["view"][0] == "state"}


def verify_state(g, full, kind, layer, captured):
    """The state row after the step: the layer's copies into it, in graph
    order, one after the other (one copy, or one per part of the row)."""
    writes = state_writes(g, kind, layer)
    parts = [full.data(i) for i in writes]
    if not writes or any(p is None for p in parts):
        return False, f"the rules find no copy into the layer's {kind} state ({writes})"
    data = np.concatenate([p.reshape(-1) for p in parts])
    if data.size == captured.size and np.array_equal(data, captured.reshape(-1), equal_nan=True):
        return True, ""
    return False, f"data differ from the copies {writes} into the state"


SEMANTIC = {
    "l_out": is_l_out,
    "ffn_inp": is_ffn_inp,
    "embd": is_embedding,
    "logits": is_logits,
    "result_norm": is_result_norm,
    "q_norm": is_head_norm,
    "k_norm": is_head_norm,
    "Qcur_unscaled": is_unscaled,
    "attn_out_final": is_merged_operand,
    "ffn_out_final": is_merged_operand,
    "ffn_moe_out": lambda g, i, layer, core: expert_family(g, i, layer, "experts"),
    "ffn_shexp_out": lambda g, i, layer, core: expert_family(g, i, layer, "shared"),
    "ffn_dense_out": lambda g, i, layer, core: expert_family(g, i, layer, "dense"),
}


ATTENTION = {"attn_norm", "Qcur", "Kcur", "Vcur", "Qcur_pre_rope", "Kcur_pre_rope", "cache_k", "cache_v",
             "kq_soft_max", "attn_out_proj"}


def check_absence(g, by_layer, a):
    reason = a["reason"]
    if GENERIC in reason:
        return "the reason is not specific: " + reason
    if a["checkpoint"] in ATTENTION and "has no attention" in reason and a["layer"] in by_layer:
        return "the layer has an attention core: " + reason
    layer = a["layer"]
    if layer is not None and layer >= 0 and layer not in by_layer and has_mixer_weights(g, layer):
        # a mixer without attention: its input and output are there to capture
        want = {"attn_norm": mixer_norm, "attn_out_proj": mixer_output}.get(a["checkpoint"])
        node = want(g, layer) if want else None
        if node is not None:
            return f"the rules find node {node} ({g.nodes[node]['name']}, {g.nodes[node]['op']}): " + reason
    return None


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    extractor, model, work = sys.argv[1:4]
    fa = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--fa" else "off"
    res = check(extractor, model, work, fa)
    json.dump(res, open(os.path.join(work, "result.json"), "w"), indent=1)
    status = "ok" if not res["problems"] else "WRONG"
    print(f"{status} {res['model']} (fa {fa}): {res['verified']}/{res['tensors']} tensors verified, "
          f"{len(res['problems'])} problems")
    for p in res["problems"]:
        print("  " + p)
    return 0 if not res["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())

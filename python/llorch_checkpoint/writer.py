"""Writes a checkpoint dump (docs/FORMAT.md): one .npy file per tensor
(format version 1) or one checkpoints.npz (version 2), tokens.npy, and
manifest.json last, atomically. Single-sequence dumps only."""

import json
import os

import numpy as np

from . import npyfile
from .gguf import fingerprint_valid
from .npzfile import NpzStream

FORMAT_NAME = "llorch-checkpoint-dump"

# name -> (number, per layer, axes): lib/common/kinds.c
KINDS = {
    "attn_norm": (1, True, ("token", "channel")),
    "Qcur": (2, True, ("token", "head", "channel")),
    "Kcur": (2, True, ("token", "head", "channel")),
    "Vcur": (2, True, ("token", "head", "channel")),
    "Qcur_pre_rope": (2, True, ("token", "head", "channel")),
    "Kcur_pre_rope": (2, True, ("token", "head", "channel")),
    "cache_k": (3, True, ("key", "head", "channel")),
    "cache_v": (3, True, ("key", "head", "channel")),
    "kq_soft_max": (4, True, ("head", "token", "key")),
    "attn_out_proj": (5, True, ("token", "channel")),
    "ffn_out": (6, True, ("token", "channel")),
    "embd": (0, False, ("token", "channel")),
    "ffn_inp": (0, True, ("token", "channel")),
    "l_out": (0, True, ("token", "channel")),
    "result_norm": (0, False, ("token", "channel")),
    "logits": (0, False, ("token", "vocab")),
    "q_norm": (0, True, ("token", "head", "channel")),
    "k_norm": (0, True, ("token", "head", "channel")),
    "Qcur_unscaled": (0, True, ("token", "head", "channel")),
    "attn_out_final": (0, True, ("token", "channel")),
    "ffn_out_final": (0, True, ("token", "channel")),
    "ffn_moe_out": (0, True, ("token", "channel")),
    "ffn_shexp_out": (0, True, ("token", "channel")),
    "ffn_dense_out": (0, True, ("token", "channel")),
    "cache_r": (3, True, ("state",)),
    "cache_s": (3, True, ("state",)),
}


def file_name(checkpoint, layer, step):
    """checkpoint_NN_NAME_lLL_sSSS.npy (layer -1: no _lLL)."""
    number = KINDS[checkpoint][0]
    where = f"_l{layer:02d}" if layer >= 0 else ""
    return f"checkpoint_{number:02d}_{checkpoint}{where}_s{step:03d}.npy"


def _check_against_model(checkpoint, layer, shape, axes, model):
    """The layer within n_layer; a (token, channel) checkpoint n_embd wide (docs/FORMAT.md)."""
    n_layer, n_embd = model["n_layer"], model["n_embd"]
    if layer >= n_layer:
        raise ValueError(f"{checkpoint}: layer {layer} is past the model's layers; expected a layer from 0 to "
                         f"{n_layer - 1} (n_layer {n_layer})")
    if KINDS[checkpoint][2] == ("token", "channel") and tuple(axes) == ("token", "channel") and shape[1] != n_embd:
        raise ValueError(f"{checkpoint}: array width {shape[1]} (shape {tuple(shape)}) does not match the model; "
                         f"expected n_embd {n_embd} channels")


def _fingerprint_field(fingerprint):
    """{"fingerprint": ...} for the model block, {} for None."""
    if fingerprint is None:
        return {}
    if not fingerprint_valid(fingerprint):
        raise ValueError(f"model_fingerprint {fingerprint!r} is not a fingerprint (SCHEME:HEX); "
                         f"compute it with llorch_checkpoint.gguf_fingerprint(path)")
    return {"fingerprint": fingerprint}


class DumpWriter:
    """A dump being written into DIR (new or empty).

    form: "npy" (one file per tensor) or "npz" (one checkpoints.npz).
    Call set_run() once (again at the end if the tokens changed), write()
    for every tensor in graph order, steps in order, then close().
    """

    def __init__(self, directory, form="npy", text=False):
        if form not in ("npy", "npz"):
            raise ValueError(f"form {form!r}: use 'npy' or 'npz'")
        if text and form != "npy":
            raise ValueError("text files come with the npy form only")
        os.makedirs(directory, exist_ok=True)
        if os.listdir(directory):
            raise FileExistsError(f"{directory} is not empty; give a new or empty directory")
        self.dir, self.form, self.text = directory, form, text
        self.files, self.missing, self.names = [], [], set()
        self.run, self.last_step, self.closed = None, 0, False
        self.npz = NpzStream(os.path.join(directory, "checkpoints.npz.part")) if form == "npz" else None

    def set_run(self, *, producer, architecture, n_layer, n_embd, n_head, n_head_kv, n_vocab, tokens,
                settings=None, model_path=None, model_size=-1, prompt=None, extra=None, model_fingerprint=None):
        """The run: model, token ids (written to tokens.npy), settings.
        model_fingerprint: the model's fingerprint (gguf_fingerprint(path) of
        its GGUF file), written as model.fingerprint so that compare can
        tell dumps of different models apart."""
        tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
        model = {"size": int(model_size), "architecture": architecture,
                 **_fingerprint_field(model_fingerprint), "n_layer": int(n_layer),
                 "n_embd": int(n_embd), "n_head": int(n_head), "n_head_kv": int(n_head_kv), "n_vocab": int(n_vocab)}
        if model_path is not None:
            model = {"path": str(model_path), **model}
        run = {"producer": producer, "model": model}
        if prompt is not None:
            run["prompt"] = prompt
        run.update({"tokens": tokens, "tokens_file": "tokens.npy", "settings": dict(settings or {})})
        run.update(extra or {})
        for e in self.files:  # tensors written before the model was known
            _check_against_model(e["checkpoint"], e["layer"], e["shape"], e["axes"], model)
        self.run = run
        npyfile.write_npy(os.path.join(self.dir, "tokens.npy"), np.asarray(tokens, dtype="<i4"))

    def write(self, checkpoint, array, *, layer=-1, step=0, pos_start=0, n_pos=None, n_key=None, positions=None,
              axes=None, extra=None):
        """Writes one tensor. n_pos defaults to the length of its token
        axis, n_key to that of its key axis (0 without one)."""
        if checkpoint not in KINDS:
            raise ValueError(f"unknown checkpoint {checkpoint!r}; see docs/FORMAT.md")
        number, per_layer, default_axes = KINDS[checkpoint]
        if per_layer != (layer >= 0):
            raise ValueError(f"{checkpoint}: layer {layer} (per-layer checkpoints need a layer, model-level -1)")
        if step < self.last_step:
            raise ValueError(f"step {step} written after step {self.last_step}: write the steps in order")
        a, dtype = npyfile.as_dump_array(array)
        axes = tuple(axes or default_axes)
        if len(axes) != a.ndim:
            raise ValueError(f"{checkpoint}: {len(axes)} axis names {axes} for shape {a.shape}")
        if self.run is not None:
            _check_against_model(checkpoint, layer, a.shape, axes, self.run["model"])
        name = file_name(checkpoint, layer, step)
        if name in self.names:
            raise ValueError(f"{name}: this checkpoint of layer {layer}, step {step} was already written")
        if n_pos is None:
            n_pos = a.shape[axes.index("token")] if "token" in axes else 0
        if n_key is None:
            n_key = a.shape[axes.index("key")] if "key" in axes else 0
        entry = {"file": name}
        if self.text:
            entry["text_file"] = name[:-4] + ".txt"
        entry.update({"checkpoint": checkpoint, "number": number, "layer": int(layer), "step": int(step),
                      "pos_start": int(pos_start), "n_pos": int(n_pos), "n_key": int(n_key),
                      "shape": [int(n) for n in a.shape], "dtype": dtype, "axes": list(axes)})
        if positions is not None:
            entry["positions"] = [int(p) for p in positions]
        entry.update(extra or {})
        data = memoryview(a).cast("B") if a.size else b""
        entry["crc32"], entry["bytes"] = npyfile.crc32(data), len(data)
        if self.npz is None:
            npyfile.write_npy(os.path.join(self.dir, name), a)
            if self.text:
                npyfile.write_text(os.path.join(self.dir, entry["text_file"]), a)
        else:
            offset = self.npz.add(name, npyfile.header(dtype, a.shape), data)
            entry.update({"key": name[:-4], "offset": offset})
        self.names.add(name)
        self.files.append(entry)
        self.last_step = step

    def note_missing(self, checkpoint, layer, reason):
        """A requested checkpoint this model does not have, and why."""
        self.missing.append({"checkpoint": checkpoint, "layer": int(layer), "reason": reason})

    def close(self, status="ok"):
        """Completes the container, then writes manifest.json atomically."""
        if self.closed:
            return
        if self.run is None:
            raise ValueError("set_run() was never called: the manifest needs the model and tokens")
        complete = status == "ok"
        root = {"format": FORMAT_NAME, "format_version": 2 if self.npz else 1, "complete": complete,
                "status": status}
        if self.npz is not None:
            self.npz.finish()
            os.replace(self.npz.path, os.path.join(self.dir, "checkpoints.npz"))
            root["container"] = {"format": "npz", "file": "checkpoints.npz"}
        root.update(self.run)
        root.update({"files": self.files, "missing": self.missing})
        text = json.dumps(root, indent="\t", ensure_ascii=False) + "\n"
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # every file the manifest names is on disk first
        finally:
            os.close(dir_fd)
        npyfile.write_atomic(os.path.join(self.dir, "manifest.json"), [text.encode("utf-8")])
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.closed:
            return False
        if exc_type is None:
            self.close()
        elif self.run is not None:
            self.close(status=f"error: {exc}"[:200])
        return False

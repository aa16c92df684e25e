"""Reads a checkpoint dump (docs/FORMAT.md) of any version (1 to 3) in any
form (npy, npz or safetensors): numpy arrays by (checkpoint, layer, step,
sequence)."""

import json
import os

import numpy as np

from . import npyfile, safetensorsfile

KNOWN_VERSIONS = (1, 2, 3)


class Dump:
    """An opened dump directory.

    >>> d = Dump("dump")
    >>> q = d.get("Qcur", layer=0)              # the latest step, (T, n_head, head_dim)
    >>> d.get("cache_k", layer=1, step=3, seq=0)
    """

    def __init__(self, directory, verify=True):
        self.dir = directory
        path = os.path.join(directory, "manifest.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{directory} has no manifest.json: it is not a dump (or is still being written)")
        with open(path, encoding="utf-8") as f:
            self.manifest = json.load(f)
        m = self.manifest
        if m.get("format") != "llorch-checkpoint-dump" or m.get("format_version") not in KNOWN_VERSIONS:
            raise ValueError(f"{path}: format {m.get('format')!r} version {m.get('format_version')!r} is not known")
        self.verify = verify
        self.container = m.get("container")
        if self.container and self.container.get("format") not in ("npz", "safetensors"):
            raise ValueError(f"container {self.container.get('format')!r}: this reader reads npy, npz and "
                             f"safetensors dumps")
        self._blob = None
        self._tensors = None  # a safetensors container's header, parsed on first use

    @property
    def files(self):
        return self.manifest["files"]

    @property
    def tokens(self):
        return np.load(os.path.join(self.dir, self.manifest.get("tokens_file", "tokens.npy")))

    def entries(self, checkpoint=None, layer=None, step=None, seq=None):
        """Manifest entries that match every given field, in manifest order."""
        out = []
        for e in self.manifest["files"]:
            if checkpoint is not None and e["checkpoint"] != checkpoint:
                continue
            if layer is not None and e["layer"] != layer:
                continue
            if step is not None and e["step"] != step:
                continue
            if seq is not None and e.get("seq") != seq:
                continue
            out.append(e)
        return out

    def entry(self, checkpoint, layer=-1, step=None, seq=None):
        """The one entry of (checkpoint, layer, step, seq); step None: the latest."""
        found = self.entries(checkpoint, layer, step, seq)
        if not found:
            raise KeyError(f"{checkpoint} layer {layer} step {step} seq {seq} is not in {self.dir}")
        return max(found, key=lambda e: e["step"]) if step is None else found[-1]

    def get(self, checkpoint, layer=-1, step=None, seq=None):
        """The tensor as a numpy array (float32, float16 or int32)."""
        return self.load(self.entry(checkpoint, layer, step, seq))

    def rows(self, checkpoint, layer=-1, positions=None, seq=None):
        """The rows of a (token, ...) checkpoint at absolute token positions,
        gathered across steps (each entry's rows are pos_start .. pos_start +
        n_pos - 1, or its "positions"), as one array (len(positions), ...).
        positions None: every position the dump holds, ascending. Raises
        KeyError naming the positions it does not hold."""
        where = {}  # position -> (entry, row)
        found = self.entries(checkpoint, layer, seq=seq)
        if seq is None and any("seq" in e for e in found):
            raise ValueError(f"{self.dir} holds several sequences: give seq")
        for e in found:
            if "token" not in e["axes"] or e.get("raw"):
                raise ValueError(f"{checkpoint}: its files have no token axis: rows() reads (token, ...) tensors")
            pos = e.get("positions") or range(e["pos_start"], e["pos_start"] + e["n_pos"])
            for r, p in enumerate(pos):
                where[int(p)] = (e, r)
        if positions is None:
            positions = sorted(where)
        positions = [int(p) for p in positions]
        lacking = [p for p in positions if p not in where]
        if lacking or not positions:
            held = sorted(where)
            span = f"{held[0]}..{held[-1]}" if held else "none"
            raise KeyError(f"{self.dir}: {checkpoint} layer {layer}{'' if seq is None else f' seq {seq}'} holds no "
                           f"rows at positions {lacking[:8] or positions[:8]}{'...' if len(lacking) > 8 else ''} "
                           f"(it holds positions {span})")
        loaded, out = {}, []
        for p in positions:
            e, r = where[p]
            key = id(e)
            if key not in loaded:
                loaded[key] = self.load(e)
            a = loaded[key]
            out.append(a[r] if e["axes"][0] == "token" else np.take(a, r, axis=e["axes"].index("token")))
        return np.stack(out)

    def load(self, e):
        """The tensor of one manifest entry, checked against its crc32."""
        if self.container and self.container["format"] == "safetensors":
            a = self._safetensor(e)
        elif self.container:
            blob = self._container()
            dtype = npyfile.DTYPES[e["dtype"]]
            n = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
            if e["offset"] + n * dtype.itemsize > len(blob):
                raise ValueError(f"{os.path.join(self.dir, self.container['file'])}: truncated: {len(blob)} bytes, "
                                 f"{e['key']} needs up to byte {e['offset'] + n * dtype.itemsize}; the dump is "
                                 f"damaged, re-create it")
            a = np.frombuffer(blob, dtype=dtype, count=n, offset=e["offset"]).reshape(e["shape"])
        else:
            path = os.path.join(self.dir, e["file"])
            with open(path, "rb") as f:
                raw = f.read()
            try:
                dtype, shape, at = npyfile.parse_header(raw)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if len(raw) - at < need:
                raise ValueError(f"{path}: truncated: {len(raw) - at} data bytes after the header, its shape "
                                 f"{shape} needs {need}; the dump is damaged, re-create it")
            a = np.frombuffer(raw, dtype=dtype, offset=at).reshape(shape)
            if list(shape) != list(e["shape"]):
                raise ValueError(f"{e['file']}: shape {shape}, the manifest says {e['shape']}")
        if self.verify and npyfile.crc32(a.tobytes()) != e["crc32"]:
            raise ValueError(f"{e['file']}: crc32 does not match the manifest; the dump is damaged")
        return a

    def _container(self):
        if self._blob is None:
            path = os.path.join(self.dir, self.container["file"])
            # np.memmap cannot map an empty file; such a container is read as no bytes (and is truncated)
            self._blob = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) else b""
        return self._blob

    def _safetensor(self, e):
        """Entry e's tensor in checkpoints.safetensors, by the container's own
        header (its member is the entry's key), checked against the manifest:
        dtype, shape and offset. F16 stays float16, as in a .npy file."""
        path = os.path.join(self.dir, self.container["file"])
        blob = self._container()
        try:
            if self._tensors is None:
                self._tensors = safetensorsfile.parse_header(blob)[0]
            key = e.get("key", e["file"])
            t = self._tensors.get(key)
            if t is None:
                raise ValueError(f"no tensor {key!r}, which the manifest lists; the dump is damaged, re-create it")
            a = safetensorsfile.array(blob, t, e["dtype"])
        except ValueError as err:
            msg = str(err)
            if msg.startswith("truncated"):
                msg += "; the dump is damaged, re-create it"
            raise ValueError(f"{path}: {msg}") from None
        if list(a.shape) != list(e["shape"]):
            raise ValueError(f"{path}: tensor {key!r} has shape {list(a.shape)}, the manifest says {e['shape']}")
        if "offset" in e and e["offset"] != t.begin:
            raise ValueError(f"{path}: tensor {key!r} starts at byte {t.begin}, the manifest says {e['offset']}")
        return a

    def __iter__(self):
        """(entry, array) for every file, in manifest order."""
        for e in self.manifest["files"]:
            yield e, self.load(e)


WHERE = ("layer", "ffn")


def reference_input(dump, layer, step=None, where="layer", positions=None, seq=None):
    """What the dump's engine fed into layer `layer`, as a numpy array of
    token rows (the rows of a step, or of the given absolute positions):

      where="layer": the residual stream entering the layer: `embd` for
                     layer 0, `l_out` of layer - 1 after;
      where="ffn":   the residual the layer's FFN reads (`ffn_inp`).

    step: the dump's step (None: the latest); positions: absolute token
    positions instead, gathered across the dump's steps (an engine whose
    steps are not the dump's). seq: the sequence of a batched dump.
    For an engine in plain Python that proves each layer on its own:
    compute layer L from reference_input(llama_cpp_dump, L) and compare
    its output with the dump's."""
    d = dump if isinstance(dump, Dump) else Dump(dump)
    if where not in WHERE:
        raise ValueError(f"where={where!r}: use 'layer' (the layer's input) or 'ffn' (the FFN's residual input)")
    n_layer = d.manifest["model"]["n_layer"]
    if not 0 <= layer < n_layer:
        raise ValueError(f"layer {layer}: the model has layers 0 to {n_layer - 1}")
    checkpoint, at = (("embd", -1) if layer == 0 else ("l_out", layer - 1)) if where == "layer" else ("ffn_inp", layer)
    if not d.entries(checkpoint, at, seq=seq):
        raise KeyError(f"{d.dir} holds no {checkpoint}{'' if at < 0 else f' of layer {at}'}: extract it with "
                       f"--checkpoints all (or name {checkpoint})")
    if positions is not None:
        if step is not None:
            raise ValueError("give step or positions, not both")
        return d.rows(checkpoint, at, positions, seq=seq)
    return d.get(checkpoint, at, step, seq)

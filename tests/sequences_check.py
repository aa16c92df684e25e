"""Checks dumps of several sequences decoded in one batch (docs/FORMAT.md,
"Several sequences"): llorch-ref-engine --tokens "a;b;c" against
llorch-checkpoint-extractor --parallel, and against the engine's own runs of
each sequence alone.

    sequences_check.py match REF CAND
        every per-sequence file of CAND matches REF's: the same files (keyed by
        checkpoint, layer, step, seq), the same shape, rows and cells, values
        within TOLERANCE; prints the largest differences per checkpoint
    sequences_check.py first-divergence REF CAND CHECKPOINT LAYER
        the first file of CAND (in its manifest's order) that does not match
        REF's is CHECKPOINT of LAYER, and every layer-0 file matches wherever
        its sequence's tokens are the same in both dumps
    sequences_check.py singles BATCHED SINGLE_0 SINGLE_1 ...
        each sequence s of BATCHED is, bit for bit, SINGLE_s (a run of that
        sequence alone): the same tokens, and every row of every file the same
        as the row at that position in SINGLE_s (keys likewise)

Exit status 0 when the check holds, 1 with the reason otherwise.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_load import Dump  # noqa: E402

# llorch-checkpoint-compare's "f32" preset, which every checkpoint of the
# tiny f32 models passes engine against llama.cpp in the single-sequence
# workflow tests (tests/workflow.cmake, "reference"): per value
# |cand - ref| <= ATOL + RTOL * |ref|, per tensor nmse <= NMSE. Both programs
# sum in float32, in different orders: what they differ by is float32
# rounding (seen: 1e-6 absolute at most, see engine/README.md), a hundred
# times below these bounds; a wrong row, cell or mask is far above them.
ATOL, RTOL, NMSE = 1e-4, 1e-3, 1e-6


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def key_of(entry):
    return (entry["checkpoint"], entry["layer"], entry["step"], entry["seq"])


def name_of(key):
    checkpoint, layer, step, seq = key
    where = f"layer {layer}" if layer >= 0 else "model"
    return f"{checkpoint} ({where}, step {step}, seq {seq})"


def per_sequence_files(dump):
    """{key: entry} of a dump whose every file belongs to one sequence."""
    files = {}
    for entry in dump.manifest["files"]:
        if "seq" not in entry:
            fail(f"{dump.dir}: {entry['file']} has no 'seq': not a dump of several sequences")
        files[key_of(entry)] = entry
    return files


def layout(entry):
    return (tuple(entry["shape"]), entry["pos_start"], entry["n_pos"], entry["n_key"], entry.get("cells"))


def difference(ref, cand):
    """(why the two differ or None, max |cand - ref|, worst ratio to the bound)."""
    r = ref.astype(np.float64)
    c = cand.astype(np.float64)
    err = np.abs(c - r)
    bound = ATOL + RTOL * np.abs(r)
    worst = float((err / bound).max()) if err.size else 0.0
    max_abs = float(err.max()) if err.size else 0.0
    energy = float((r * r).sum())
    nmse = float((err * err).sum()) / energy if energy > 0 else float((err * err).sum())
    if not np.isfinite(c).all():
        return "non-finite values", max_abs, worst
    if worst > 1.0:
        return f"max |diff| {max_abs:.3e} beyond {ATOL:g} + {RTOL:g}|ref|", max_abs, worst
    if nmse > NMSE:
        return f"nmse {nmse:.3e} beyond {NMSE:g}", max_abs, worst
    return None, max_abs, worst


def compare_file(ref_dump, cand_dump, ref_entry, cand_entry):
    """(why it does not match or None, max abs, worst ratio)."""
    if layout(ref_entry) != layout(cand_entry):
        return f"layout {layout(cand_entry)} where the reference has {layout(ref_entry)}", 0.0, 0.0
    return difference(ref_dump.array(ref_entry), cand_dump.array(cand_entry))


def sequence_tokens(dump):
    return {s["seq"]: s["tokens"] for s in dump.manifest.get("sequences", [])}


def same_keys(ref_files, cand_files):
    only_ref = sorted(set(ref_files) - set(cand_files))
    only_cand = sorted(set(cand_files) - set(ref_files))
    if only_ref or only_cand:
        fail(f"the dumps hold different files: only in the reference {[name_of(k) for k in only_ref[:3]]}, "
             f"only in the candidate {[name_of(k) for k in only_cand[:3]]} "
             f"({len(only_ref)} and {len(only_cand)} in all)")


def match(ref_dir, cand_dir):
    ref, cand = Dump(ref_dir), Dump(cand_dir)
    if sequence_tokens(ref) != sequence_tokens(cand) or not sequence_tokens(ref):
        fail("the sequences' tokens differ (or there are none): the runs decoded different tokens")
    ref_files, cand_files = per_sequence_files(ref), per_sequence_files(cand)
    same_keys(ref_files, cand_files)
    worst = {}
    for key, entry in cand_files.items():
        why, max_abs, ratio = compare_file(ref, cand, ref_files[key], entry)
        if why is not None:
            fail(f"{name_of(key)}: {why}")
        old = worst.get(key[0], (0.0, 0.0))
        worst[key[0]] = (max(old[0], max_abs), max(old[1], ratio))
    print(f"{'checkpoint':<15} {'max |diff|':>11} {'of bound':>9}")
    for checkpoint, (max_abs, ratio) in worst.items():
        print(f"{checkpoint:<15} {max_abs:11.3e} {ratio:9.2%}")
    print(f"ok: {len(cand_files)} per-sequence files match within {ATOL:g} + {RTOL:g}|ref|, nmse {NMSE:g}")


def tokens_agree(ref_tokens, cand_tokens, entry):
    """Whether the entry's sequence has the same tokens up to its last row."""
    last = entry["pos_start"] + entry["n_pos"]
    seq = entry["seq"]
    return ref_tokens[seq][:last] == cand_tokens[seq][:last]


def first_divergence(ref_dir, cand_dir, checkpoint, layer):
    ref, cand = Dump(ref_dir), Dump(cand_dir)
    ref_files, cand_files = per_sequence_files(ref), per_sequence_files(cand)
    same_keys(ref_files, cand_files)
    ref_tokens, cand_tokens = sequence_tokens(ref), sequence_tokens(cand)
    first, layer0_checked = None, 0
    for entry in cand.manifest["files"]:
        key = key_of(entry)
        why, _, _ = compare_file(ref, cand, ref_files[key], entry)
        if why is not None and first is None:
            first = (key, why)
        if entry["layer"] == 0 and tokens_agree(ref_tokens, cand_tokens, entry):
            layer0_checked += 1
            if why is not None:
                fail(f"{name_of(key)} differs although layer 0 has no fault: {why}")
    if first is None:
        fail("every file matches: the fault changed nothing")
    key, why = first
    print(f"first divergence: {name_of(key)}: {why}")
    if (key[0], key[1]) != (checkpoint, layer):
        fail(f"the first divergence is {name_of(key)}, expected {checkpoint} of layer {layer}")
    if layer0_checked == 0:
        fail("no layer-0 file was compared")
    print(f"ok: the first divergence is {checkpoint} of layer {layer}; {layer0_checked} layer-0 files match")


# ---- batched == alone ------------------------------------------------------

def bits(a):
    """The array's bytes, so that equality is bit for bit (-0.0, NaN)."""
    return np.ascontiguousarray(a).view(np.uint32)


class Alone:
    """A run of one sequence, looked up by position: the step whose rows
    hold a position, or one whose key axis reaches far enough."""

    def __init__(self, d):
        self.dump = Dump(d)
        self.by_kind = {}
        for entry in self.dump.manifest["files"]:
            if "seq" in entry:
                fail(f"{d}: {entry['file']} is per sequence: not a run of one sequence")
            self.by_kind.setdefault((entry["checkpoint"], entry["layer"]), []).append(entry)

    def row(self, kind, pos):
        for entry in self.by_kind.get(kind, []):
            if entry["pos_start"] <= pos < entry["pos_start"] + entry["n_pos"]:
                a = self.dump.array(entry)
                i = pos - entry["pos_start"]
                return a[:, i, :] if entry["axes"][0] == "head" else a[i]
        fail(f"{self.dump.dir}: no {kind[0]} of layer {kind[1]} holds position {pos}")

    def keys(self, kind, n_key):
        for entry in self.by_kind.get(kind, []):
            if entry["n_key"] >= n_key:
                return self.dump.array(entry)[:n_key]
        fail(f"{self.dump.dir}: no {kind[0]} of layer {kind[1]} has {n_key} keys")

    def rows(self):
        """Every (checkpoint, layer, position) row the run holds."""
        return {(kind[0], kind[1], e["pos_start"] + i) for kind, entries in self.by_kind.items() for e in entries
                for i in range(e["n_pos"])}


def same_scores_row(batched_row, alone_row):
    """(head, key) rows of probabilities: equal on the keys both have, and
    the further keys of the longer one masked (exactly 0)."""
    k = min(batched_row.shape[1], alone_row.shape[1])
    return (np.array_equal(bits(batched_row[:, :k]), bits(alone_row[:, :k])) and
            not batched_row[:, k:].any() and not alone_row[:, k:].any())


def same_as_alone(batched, entry, alone):
    """Whether every row (or key) of a batched file is the alone run's."""
    a = batched.array(entry)
    kind = (entry["checkpoint"], entry["layer"])
    if entry["axes"][0] == "key":
        cells = entry["cells"]
        if len(cells) != entry["n_key"] or cells != sorted(cells):
            fail(f"{entry['file']}: cells {cells} are not n_key ascending cells")
        return np.array_equal(bits(a), bits(alone.keys(kind, entry["n_key"])))
    for i in range(entry["n_pos"]):
        pos = entry["pos_start"] + i
        if entry["axes"][0] == "head":
            if not same_scores_row(a[:, i, :], alone.row(kind, pos)):
                return False
        elif not np.array_equal(bits(a[i]), bits(alone.row(kind, pos))):
            return False
    return True


def singles(batched_dir, alone_dirs):
    batched = Dump(batched_dir)
    tokens = sequence_tokens(batched)
    if sorted(tokens) != list(range(len(alone_dirs))):
        fail(f"the batched run has sequences {sorted(tokens)}, {len(alone_dirs)} runs alone were given")
    alone = [Alone(d) for d in alone_dirs]
    rows = [set() for _ in alone]
    for s, run in enumerate(alone):
        if run.dump.manifest["tokens"] != tokens[s]:
            fail(f"sequence {s}: tokens {tokens[s]} batched, {run.dump.manifest['tokens']} alone")
    for entry in batched.manifest["files"]:
        s = entry["seq"]
        if not same_as_alone(batched, entry, alone[s]):
            fail(f"{entry['file']}: differs from the run of sequence {s} alone")
        rows[s] |= {(entry["checkpoint"], entry["layer"], entry["pos_start"] + i) for i in range(entry["n_pos"])}
    for s, run in enumerate(alone):
        if rows[s] != run.rows():
            fail(f"sequence {s}: the batched files hold {len(rows[s])} rows, the run alone {len(run.rows())}")
    print(f"ok: {len(batched.manifest['files'])} batched files are bit for bit the runs of each sequence alone")


def main(argv):
    if len(argv) == 4 and argv[1] == "match":
        match(argv[2], argv[3])
    elif len(argv) == 6 and argv[1] == "first-divergence":
        first_divergence(argv[2], argv[3], argv[4], int(argv[5]))
    elif len(argv) >= 4 and argv[1] == "singles":
        singles(argv[2], argv[3:])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)

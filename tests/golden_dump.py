#!/usr/bin/env python3
"""The structure of a dump, one line per file and per missing checkpoint:
file, checkpoint, layer, step, llama.cpp tensor name and op, shape. What a
golden file pins is which tensor each checkpoint is, not the numbers (those
depend on the CPU's kernels).

  golden_dump.py DUMP_DIR            print it
  golden_dump.py DUMP_DIR GOLDEN     compare with GOLDEN; exit 1 and a diff if they differ
"""
import difflib
import json
import sys


def describe(d):
    m = json.load(open(f"{d}/manifest.json"))
    lines = [f"{f['file']} {f['checkpoint']} {f['layer']} {f['step']} {f.get('graph_name', '')!r} "
             f"{f.get('graph_op', '')} {f['shape']}" for f in m["files"]]
    lines += [f"missing {a['checkpoint']} {a['layer']}: {a['reason']}" for a in m["missing"]]
    return [line + "\n" for line in lines]


def main():
    got = describe(sys.argv[1])
    if len(sys.argv) == 2:
        sys.stdout.writelines(got)
        return 0
    want = open(sys.argv[2]).readlines()
    if got == want:
        print(f"ok: {len(got)} entries as in {sys.argv[2]}")
        return 0
    sys.stdout.writelines(list(difflib.unified_diff(want, got, sys.argv[2], sys.argv[1]))[:60])
    print(f"FAIL: the dump's tensors differ from {sys.argv[2]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())

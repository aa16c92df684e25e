#!/usr/bin/python3
"""The house rules of lib/, programs/ and engine/ (README.md, "Layout"):
every part is a one-way stack of files, and no file is over 600 lines.

A file "calls" another when it uses a function that the other defines
(an extern function: defined at file scope without `static`). The calls
between files must form no circle: a file never calls, directly or
through others, the file that calls it. Header-only inline helpers do not
count (they are not defined in a .c file).

  layering_check.py REPO          exit 1 and the circles found, else 0
  layering_check.py REPO --graph  also print every file's callees
"""
import os
import re
import sys

DIRS = ("lib", "programs", "engine")
MAX_LINES = 600

DEF = re.compile(r"^(?!static\b)(?:[A-Za-z_][\w \t\*]*?)\b([A-Za-z_]\w*)\s*\([^;]*?\)\s*\{", re.M)
STATIC_DEF = re.compile(r"^static\b(?:[\w \t\*]*?)\b([A-Za-z_]\w*)\s*\([^;]*?\)\s*\{", re.M)
CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def strip(text):
    """C source without comments, strings and character constants."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"'(?:\\.|[^'\\\n])*'", "''", text)


def sources(repo):
    for d in DIRS:
        for root, _, files in os.walk(os.path.join(repo, d)):
            for f in sorted(files):
                if f.endswith(".c"):
                    yield os.path.relpath(os.path.join(root, f), repo)


def main():
    repo = sys.argv[1]
    show = "--graph" in sys.argv[2:]
    texts = {f: strip(open(os.path.join(repo, f), encoding="utf-8").read()) for f in sources(repo)}
    problems = []
    for f in texts:
        n = sum(1 for _ in open(os.path.join(repo, f), encoding="utf-8"))
        if n > MAX_LINES:
            problems.append(f"{f}: {n} lines (at most {MAX_LINES})")
    owner = {}
    for f, t in texts.items():
        for name in DEF.findall(t):
            if name in owner and owner[name] != f and name != "main":
                problems.append(f"{name} is defined in both {owner[name]} and {f}")
            owner.setdefault(name, f)
    local = {f: set(STATIC_DEF.findall(t)) for f, t in texts.items()}   # a static of the same name wins
    calls = {f: sorted({owner[n] for n in CALL.findall(t) if n in owner and owner[n] != f and n not in local[f]})
             for f, t in texts.items()}
    if show:
        for f in sorted(calls):
            print(f"{f} -> {', '.join(calls[f]) or '-'}")
    # circles: strongly connected components of more than one file (Tarjan)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in calls[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(calls):
        if v not in index:
            visit(v)
    for comp in sccs:
        edges = [f"{a} -> {b}" for a in comp for b in calls[a] if b in comp]
        problems.append("files that call each other: " + "; ".join(edges))
    for p in problems:
        print("FAIL: " + p)
    print(f"{len(texts)} files, {sum(len(v) for v in calls.values())} calls between files, "
          f"{len(sccs)} circle(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every option of every program is in its --help and in the docs, and every
option its --help names is one it accepts (tests/workflow.cmake):

  options_check.py REPO EXTRACTOR COMPARE ENGINE MAKER

What a program accepts is read from its source: the option table cli.c
parses (each entry "--long", "-s|--long", "--long=" for one with a value:
cli.h), found as every array initializer whose string literals are
such entries, however the table's rows are laid out; plus -h, --help and
--version, which cli.c handles for every program. Each option found there
is then given to the program itself (before --help, so that nothing runs):
it must not be refused as unknown, which proves the parse.

Checks, per program:
  1. each spelling of each option (short and long) is named in its --help;
  2. each option (one of its spellings) is named in the docs that describe
     that program: a section (from one heading to the next) of README.md,
     docs/*.md or engine/README.md that names the program, or a file about
     it alone (docs/COMPARE.md, engine/README.md);
  3. each option its --help lists (the left column of an option line) is
     one it accepts, and so is every other --option its --help names,
     unless that is another of these programs' (a cross-reference, printed);
     the program itself given each of them does not say "unknown option".

KNOWN_HELP_GAPS lists spellings missing from a --help that this test knows
about (fixing them is the program's source's business); one that is no
longer missing is printed, to be removed from the list.
Exit status 0 passed, 1 failed."""

import glob
import os
import re
import subprocess
import sys
import tempfile

# (program, spelling): why it is allowed to be missing from --help for now.
KNOWN_HELP_GAPS = {}

# Options cli.c handles for every program (cli_next).
BUILTIN = [("-h", "--help", False), (None, "--version", False)]

SPEC = re.compile(r'^(?:(-[A-Za-z][A-Za-z0-9]*)\|)?(--[A-Za-z0-9][A-Za-z0-9-]*)(=?)$')
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
LONG_TOKEN = re.compile(r'(?<![\w-])--[A-Za-z][A-Za-z0-9-]*')
ANY_TOKEN = re.compile(r'(?<![\w./-])-{1,2}[A-Za-z][A-Za-z0-9-]*')

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def strip_comments(src):
    """C source without comments, string literals kept."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def initializers(src):
    """The text of every array initializer: NAME[...] = { ... } (balanced)."""
    for m in re.finditer(r'\[[^\]\n]*\]\s*=\s*\{', src):
        depth, i = 0, m.end() - 1
        while i < len(src):
            ch = src[i]
            if ch == '"':
                j = i + 1
                while j < len(src) and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                i = j
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    yield src[m.end():i]
                    break
            i += 1


SHORT = re.compile(r'^-[A-Za-z][A-Za-z0-9]*$')


def rows(body):
    """The innermost {...} groups of an initializer (its rows), or the whole
    body where it has none (a flat list)."""
    found = re.findall(r'\{([^{}]*)\}', body)
    return found or [body]


def specs_in(text):
    """(short, long, takes_value) of the option entries among text's string
    literals: "-s|--long=" entries, and a row's lone "-s" beside its "--long"."""
    lits = LITERAL.findall(text)
    specs = [m for m in (SPEC.match(s) for s in lits) if m]
    shorts = [s for s in lits if SHORT.match(s)]
    out = []
    for m in specs:
        short = m.group(1) or (shorts[0] if len(specs) == 1 and len(shorts) == 1 else None)
        out.append((short, m.group(2), m.group(3) == "="))
    return out


def source_options(paths):
    """{long: (short or None, takes_value)} from the option tables in paths:
    every array initializer holding option entries (one string per option,
    or rows with a field each); where there is none (a table made by a
    macro), every option-shaped string literal of the files."""
    found, texts = {}, []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts.append((path, strip_comments(f.read())))

    def add(path, short, long, val):
        if long in found and found[long] != (short, val) and found[long][0] is not None and short is not None:
            fail(f"{path}: {long} is defined twice, differently")
        if long not in found or found[long][0] is None:
            found[long] = (short, val)

    for path, src in texts:
        for body in initializers(src):
            entries = [e for row in rows(body) for e in specs_in(row)]
            if len(entries) >= 2:  # an option table
                for short, long, val in entries:
                    add(path, short, long, val)
    if len(found) < 3:
        print("  no option table found as an array initializer: reading every option-shaped literal")
        for path, src in texts:
            for row in re.findall(r'\w+\s*\(([^()]*)\)', src) + [src]:
                for short, long, val in specs_in(row):
                    add(path, short, long, val)
    return found


def help_text(prog):
    p = subprocess.run([prog, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        fail(f"{prog} --help exited {p.returncode}")
    return p.stdout


def help_definitions(text):
    """The spellings in the left column of --help's option lines."""
    spellings = set()
    for line in text.splitlines():
        m = re.match(r'^\s+((?:-{1,2}[A-Za-z][A-Za-z0-9-]*,?\s+)*-{1,2}[A-Za-z][A-Za-z0-9-]*,?)(?:\s|$)', line)
        if m and re.match(r'^\s+-', line):
            spellings.update(t.rstrip(",") for t in m.group(1).split())
    return spellings


def doc_sections(repo):
    """(file, heading, text) of every markdown section of the docs; headings in
    fenced blocks are not headings."""
    files = ["README.md", "engine/README.md"]
    files += sorted("docs/" + f for f in os.listdir(os.path.join(repo, "docs")) if f.endswith(".md"))
    sections = []
    for rel in files:
        with open(os.path.join(repo, rel), encoding="utf-8") as f:
            lines = f.read().splitlines()
        fenced, heading, body = False, "", []
        for line in lines:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if not fenced and re.match(r'^#{1,6} ', line):
                sections.append((rel, heading, "\n".join(body)))
                heading, body = line, []
            body.append(line)
        sections.append((rel, heading, "\n".join(body)))
    return sections


def mentions(text, spelling):
    return re.search(r'(?<![\w-])' + re.escape(spelling) + r'(?![\w-])', text) is not None


def accepted(prog, spelling, takes_value, cwd):
    """The program's own answer: does it refuse spelling as unknown? --help
    after it stops the run once the option is taken."""
    args = [prog, spelling] + (["1"] if takes_value else []) + ["--help"]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, timeout=60)
    return "unknown option" not in p.stdout, p.stdout


def main():
    repo, extractor, compare, engine, maker = (os.path.abspath(a) for a in sys.argv[1:6])
    programs = [
        ("llorch-checkpoint-extractor", extractor, ["programs/extractor*"], ["extractor"]),
        ("llorch-checkpoint-compare", compare, ["programs/compare_main.c"], ["docs/COMPARE.md"]),
        ("llorch-ref-engine", engine, ["engine/ref_engine.c"], ["engine/README.md"]),
        ("llorch-make-tiny-model", maker, ["programs/make-tiny-model.c", "programs/tiny_model*"], []),
    ]
    sections = doc_sections(repo)
    tables = {}
    for name, prog, sources, _ in programs:
        paths = sorted(p for pat in sources for p in glob.glob(os.path.join(repo, pat))
                       if p.endswith((".c", ".h")))
        opts = source_options(paths)
        if len(opts) < 3:
            fail(f"{name}: found only {len(opts)} options in {', '.join(paths)}; is the option table still "
                 "one string per option (\"-s|--long=\")?")
        for short, long, val in BUILTIN:
            opts.setdefault(long, (short, val))
        tables[name] = opts
    all_own = {name: {s for long, (short, _) in opts.items() for s in (long, short) if s}
               for name, opts in tables.items()}

    gaps_seen = set()
    with tempfile.TemporaryDirectory() as cwd:
        for name, prog, _, dedicated in programs:
            opts = tables[name]
            text = help_text(prog)
            defs = help_definitions(text)
            print(f"{name}: {len(opts)} options in the source; {len(defs)} spellings listed by --help")

            # the parse of the source, proved by the program
            for long, (short, val) in sorted(opts.items()):
                for s in (long, short):
                    if s is None:
                        continue
                    ok, out = accepted(prog, s, val, cwd)
                    if not ok:
                        fail(f"{name}: {s} is in its option table but refused as unknown:\n{out}")

            # 1. every spelling in --help
            for long, (short, _) in sorted(opts.items()):
                for s in (long, short):
                    if s is None or mentions(text, s):
                        continue
                    if (name, s) in KNOWN_HELP_GAPS:
                        gaps_seen.add((name, s))
                        print(f"  known gap: {s} is not in --help ({KNOWN_HELP_GAPS[(name, s)]})")
                    else:
                        fail(f"{name}: option {s} is accepted but not named in --help")

            # 2. every option in the docs about the program
            scope = [t for rel, _, t in sections
                     if rel in dedicated or mentions(t, name)
                     or any(d == "extractor" and mentions(t, "extractor") for d in dedicated)]
            for long, (short, _) in sorted(opts.items()):
                spellings = [s for s in (long, short) if s]
                if not any(mentions(t, s) for t in scope for s in spellings):
                    fail(f"{name}: option {'/'.join(spellings)} is not in README.md, docs/*.md or "
                         f"engine/README.md where they describe {name}")

            # 3. what --help names is accepted
            named = {t for t in LONG_TOKEN.findall(text)} | defs
            for s in sorted(named):
                if s in all_own[name]:
                    continue
                others = [n for n, own in all_own.items() if s in own and n != name]
                if others and s not in defs:
                    print(f"  cross-reference: --help names {s}, an option of {', '.join(others)}")
                    continue
                ok, out = accepted(prog, s, False, cwd)
                fail(f"{name}: --help names {s}, which is not in its option table"
                     + ("" if ok else " and is refused as unknown option"))

    for key in sorted(set(KNOWN_HELP_GAPS) - gaps_seen):
        print(f"NOTE: {key[0]} --help now names {key[1]}: remove it from KNOWN_HELP_GAPS")
    if failures:
        print(f"{len(failures)} problem(s)")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

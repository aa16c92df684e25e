#!/usr/bin/python3
"""Tests of llorch-checkpoint-compare --html and --heatmap (docs/COMPARE.md), on
dumps written with numpy by test_compare_cli.py's writer.

The page is checked as a browser shows it: headless Chromium, JavaScript off,
loads the file from disk, dumps its DOM and takes a screenshot. The DOM's
numbers are checked against --json of the same comparison and against numpy;
the screenshot is decoded here (zlib and struct, no imaging library).

  test_compare_html.py --tool PATH --work DIR CASE

Cases: render numbers hostile missing nonfinite size heatmap bad_output
"""
import argparse
import html.parser
import json
import math
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_compare_cli as cli  # noqa: E402  (the writer and the runner)

check, fail, path = cli.check, cli.fail, cli.path
MAGENTA = (0xd6, 0x00, 0x6f)  # the first divergence's frame
WINDOW = (1100, 1200)
RUNS = 0


# ---- the browser ---------------------------------------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    fail("chromium is not installed: the HTML report is checked in headless Chromium. "
         "Install it (Debian: apt-get install chromium); `bash scripts/build.sh test` does.")


def browser_args(name):
    """A fresh profile in the work directory with JavaScript blocked.

    Chromium's --blink-settings=scriptEnabled=false makes the headless mode of
    current Chromium (156) return nothing for --dump-dom and --screenshot:
    they run through the page's script engine. The profile's content setting
    blocks the page's scripts and leaves those alone; check_javascript_off
    proves that it does."""
    global RUNS
    RUNS += 1  # a profile per run: one that a closing browser still holds would hand the page to it
    profile = path(f"chromium-{name}-{RUNS}")
    os.makedirs(os.path.join(profile, "Default"))
    with open(os.path.join(profile, "Default", "Preferences"), "w") as f:
        json.dump({"profile": {"default_content_setting_values": {"javascript": 2}}}, f)
    return [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
            "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}"]


def run_browser(args, what):
    home = path("chromium-home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home, XDG_CACHE_HOME=home)
    p = subprocess.run(args, capture_output=True, env=env, timeout=180)
    check(p.returncode == 0, f"chromium ({what}) exited {p.returncode}:\n{p.stderr.decode(errors='replace')[-2000:]}")
    return p


def dump_dom(page):
    p = run_browser(browser_args("dom") + ["--dump-dom", "file://" + os.path.abspath(page)], "--dump-dom")
    check(p.stdout.strip(), f"chromium dumped no DOM for {page}")
    return Dom(p.stdout.decode("utf-8"))


def screenshot(page, png):
    if os.path.exists(png):
        os.remove(png)
    run_browser(browser_args("shot") + [f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={png}",
                                        "file://" + os.path.abspath(page)], "--screenshot")
    check(os.path.exists(png), f"chromium wrote no screenshot {png}")
    return decode_png(open(png, "rb").read())


def check_javascript_off():
    """A page whose script would change it comes back unchanged."""
    page = path("script.html")
    with open(page, "w") as f:
        f.write("<!DOCTYPE html><html><body><p id=\"x\">static</p>"
                "<script>document.getElementById('x').textContent = 'ran';</script></body></html>")
    dom = dump_dom(page)
    check(dom.one(id="x").text() == "static", "JavaScript is not off in the test's browser")


# ---- the DOM, as Chromium serialized it ------------------------------------------------------------

class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.parts = [], []

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(self.parts)

    def get(self, name):
        return self.attrs.get(name)


class Dom(html.parser.HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack = [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        el = Element(tag, attrs, self.stack[-1] if self.stack else None)
        if el.parent:
            el.parent.children.append(el)
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        for el in self.stack:
            el.parts.append(data)

    def all(self, tag=None, cls=None, id=None, within=None, **attrs):
        out = []
        for el in (self.descendants(within) if within else self.elements):
            if tag and el.tag != tag or id and el.get("id") != id or cls and cls not in el.classes():
                continue
            if all(el.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(el)
        return out

    def one(self, **kw):
        found = self.all(**kw)
        check(len(found) == 1, f"expected one element {kw}, found {len(found)}")
        return found[0]

    @staticmethod
    def descendants(el):
        out, todo = [], list(el.children)
        while todo:
            e = todo.pop(0)
            out.append(e)
            todo.extend(e.children)
        return out


# ---- the screenshot ------------------------------------------------------------------------------

def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def unfilter(kind, line, prev, bpp):
    if kind == 0:
        return line
    if kind == 2:
        return ((line.astype(np.int32) + prev) & 255).astype(np.uint8)
    if kind == 1:  # each byte adds the one bpp before it: a running sum per channel
        return (np.cumsum(line.reshape(-1, bpp).astype(np.int64), axis=0) & 255).astype(np.uint8).ravel()
    out = bytearray(line.tobytes())
    up = prev.tobytes()
    for x in range(len(out)):
        left = out[x - bpp] if x >= bpp else 0
        if kind == 3:
            out[x] = (out[x] + ((left + up[x]) >> 1)) & 255
        else:
            out[x] = (out[x] + paeth(left, up[x], up[x - bpp] if x >= bpp else 0)) & 255
    return np.frombuffer(bytes(out), dtype=np.uint8)


def decode_png(data):
    """(width, height, pixels as an (h, w, 3) uint8 array) of an 8-bit RGB(A) PNG."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is no PNG")
    pos, idat, head = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    w, h, depth, ctype, _, _, interlace = head
    check(depth == 8 and ctype in (2, 6) and interlace == 0, f"unexpected PNG format {head}")
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = w * bpp
    check(raw.size == h * (stride + 1), "PNG data size")
    rows, prev = [], np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        start = y * (stride + 1)
        prev = unfilter(int(raw[start]), raw[start + 1:start + 1 + stride], prev, bpp)
        rows.append(prev)
    return w, h, np.stack(rows).reshape(h, w, bpp)[:, :, :3]


def check_screenshot(page, png):
    w, h, pixels = screenshot(page, png)
    check((w, h) == WINDOW, f"screenshot size {w}x{h}, window {WINDOW}")
    packed = (pixels[:, :, 0].astype(np.int64) << 16) | (pixels[:, :, 1].astype(np.int64) << 8) | pixels[:, :, 2]
    colors = np.unique(packed)
    check(len(colors) > 50, f"the screenshot looks blank: {len(colors)} distinct colors")
    magenta = (MAGENTA[0] << 16) | (MAGENTA[1] << 8) | MAGENTA[2]
    check(magenta in set(colors.tolist()), "the first divergence's frame is not in the screenshot")
    return len(colors)


# ---- the tool ----------------------------------------------------------------------------------------

def make_report(ref, cand, *extra, expect=None):
    """--json and --html of the same comparison: (report, page path, DOM)."""
    report = cli.run_json(ref, cand, *extra, expect=expect)
    page = path("report.html")
    p = cli.run(ref, cand, *extra, "--html", page, "-q", expect=report["exit_code"])
    check(p.stdout.strip() == report["message"], f"-q with --html: {p.stdout!r}")
    check(not os.path.exists(page + ".part"), "the .part file is left")
    check_self_contained(page)
    return report, page, dump_dom(page)


def check_self_contained(page):
    """Nothing is loaded from elsewhere: no script, no link, no source, no
    import (every < of a dump's text is escaped, so each tag is the page's)."""
    text = open(page, encoding="utf-8").read()
    for tag in re.findall(r"<([a-zA-Z][^>]*)>", text):
        name = tag.split()[0].lower()
        check(name not in ("script", "link", "img", "iframe", "object", "embed", "base"), f"the page holds <{tag}>")
        check(not re.search(r"\s(src|href)=\"(?!#)", tag), f"the page loads something: <{tag}>")
    check("@import" not in text and "@font-face" not in text, "the style sheet loads something")
    for url in re.findall(r"https?://[^\"' )]+", text):
        check(url == "http://www.w3.org/2000/svg", f"the page names {url}")
    for ref in re.findall(r"url\(([^)]*)\)", text):
        check(ref.startswith("#"), f"the page loads url({ref})")


def same(json_value, attr):
    """A data- attribute holds --json's number (null: not finite)."""
    if attr is None:
        return False
    if json_value is None:
        return not math.isfinite(float(attr))
    return float(attr) == json_value


def json_layer(layer):
    return "null" if layer is None else str(layer)


# ---- checks of the page against --json -------------------------------------------------------

METRICS = ["n", "n_within", "n_nonfinite", "max_abs_err", "max_rel_err", "mean_abs_err", "rmse", "nmse",
           "cosine", "within", "ref_only", "cand_only"]


def check_table(dom, report):
    rows = dom.all(tag="tr", cls="row")
    check(len(rows) == len(report["rows"]), f"table rows {len(rows)} vs JSON {len(report['rows'])}")
    for tr, r in zip(rows, report["rows"]):
        check(tr.get("data-checkpoint") == r["checkpoint"] and tr.get("data-layer") == json_layer(r["layer"]),
              f"table row {tr.attrs} vs {r['checkpoint']} {r['layer']}")
        check(tr.get("data-status") == r["status"], f"status {tr.attrs}")
        for k in METRICS if r["status"] != "ERROR" else ["ref_only", "cand_only"]:
            attr = tr.get("data-" + k.replace("_", "-"))
            check(same(r[k], attr), f"{r['checkpoint']} {r['layer']} {k}: page {attr} vs JSON {r[k]}")


def heatmap_cells(dom):
    svg = dom.one(tag="svg", id="heatmap")
    cells = dom.all(tag="rect", cls="cell", within=svg)
    lines, cols = int(svg.get("data-lines")), int(svg.get("data-columns"))
    check(len(cells) == lines * cols, f"{len(cells)} cells for {lines} lines x {cols} columns")
    by_line = {}
    for c in cells:
        by_line.setdefault(c.get("y"), []).append(c)
    check(len(by_line) == lines and all(len(v) == cols for v in by_line.values()), "every line has every column")
    return svg, cells


def check_heatmap(dom, report):
    svg, cells = heatmap_cells(dom)
    with_rows = [c for c in cells if c.get("data-row") is not None]
    check(sorted(int(c.get("data-row")) for c in with_rows) == list(range(len(report["rows"]))),
          "one cell per row of --json")
    for c in with_rows:
        r = report["rows"][int(c.get("data-row"))]
        check(c.get("data-checkpoint") == r["checkpoint"] and c.get("data-layer") == json_layer(r["layer"]),
              f"cell {c.attrs} vs {r['checkpoint']} {r['layer']}")
        check(c.get("data-status") == r["status"], f"cell status {c.attrs}")
        if r["status"] != "ERROR":
            check(same(r["nmse"], c.get("data-nmse")), f"cell nmse {c.get('data-nmse')} vs {r['nmse']}")
            check(same(r["max_rel_err"], c.get("data-max-rel-err")), f"cell max_rel_err {c.attrs}")
        titles = [e for e in c.children if e.tag == "title"]
        check(len(titles) == 1 and (r.get("graph_name") or r["checkpoint"]) in titles[0].text(), f"title {c.attrs}")
        if r["status"] == "FAIL":
            check(r["origin"] in c.classes(), f"origin {r['origin']} not drawn: {c.classes()}")
    check_first(dom, svg, cells, report)
    return svg, cells


def check_first(dom, svg, cells, report):
    first = report["first_divergence"]
    marked = [c for c in cells if "first" in c.classes()]
    if first is None:
        check(not marked and not dom.all(id="first-divergence"), "no first divergence is marked")
        return
    check(svg.get("data-first-row") == str(first["row"]), f"data-first-row {svg.get('data-first-row')}")
    check(len(marked) == 1 and marked[0].get("data-row") == str(first["row"]), "one cell marked first")
    g = dom.one(id="first-divergence")
    check((g.get("data-checkpoint"), g.get("data-layer"), g.get("data-row")) ==
          (first["checkpoint"], json_layer(first["layer"]), str(first["row"])), f"first divergence {g.attrs}")
    check(dom.all(tag="rect", cls="first-marker", within=g), "the frame")
    check(first["checkpoint"] in g.text() or first.get("graph_name", "") in g.text(), "the label names it")
    check(dom.one(id="verdict").text() == report["message"], "the verdict sentence")


# ---- cases -------------------------------------------------------------------------------------------

def fault_pair(split=None):
    """attn_norm layer 1 off (introduced), everything after it a little
    (inherited), like the engine's --fault eps:1."""
    t = cli.make_model()
    cli.write_dump(path("ref"), t, edit=lambda m: m["settings"].update(threads=2, type_k="f32"))
    c = cli.copy_model(t)
    cli.perturb(c, [("attn_norm", 1)], 0.05)
    cli.perturb(c, cli.keys_from(c, ("attn_norm", 1))[1:], 0.01, seed=9)
    cli.write_dump(path("cand"), c, steps=split, edit=lambda m: m["settings"].update(threads=4, type_k="f32"))
    return t, c


def case_render():
    check_javascript_off()
    fault_pair(cli.STEP_SPLITS[0])
    report, page, dom = make_report(path("ref"), path("cand"), expect=1)
    check_heatmap(dom, report)
    check_table(dom, report)
    check(dom.all(tag="pattern", id="hatch") and dom.all(tag="rect", cls="hatch"), "inherited cells are hatched")
    check(dom.one(id="heatmap-legend").text().count("inherited") == 1, "the legend")
    pos = dom.one(tag="figure", id="chart-position")
    bars = dom.all(tag="rect", cls="bar", within=pos)
    check(len(bars) == cli.N_TOK and [b.get("data-coord") for b in bars] == [str(i) for i in range(cli.N_TOK)],
          f"one bar per token: {[b.get('data-coord') for b in bars]}")
    steps = dom.all(tag="rect", cls="bar", within=dom.one(tag="figure", id="chart-step"))
    check([b.get("data-coord") for b in steps] == ["0", "1", "2"], "one bar per step of the candidate")
    check(not dom.all(id="chart-head"), "attn_norm has no heads")
    settings = dom.one(tag="table", id="settings")
    differs = {tr.get("data-key") for tr in dom.all(tag="tr", cls="differs", within=settings)}
    check({"settings.threads", "settings.n_ubatch", "dump"} <= differs, f"differences: {differs}")
    check("settings.type_k" not in differs and dom.all(tag="tr", data_key="settings.type_k"), "equal settings")
    colors = check_screenshot(page, path("report.png"))
    print(f"screenshot: {colors} colors")


def per(axis_sum, r, c):
    """NMSE and max |d| of r vs c per index of the kept axis (numpy, float64)."""
    r, c = r.astype(np.float64), c.astype(np.float64)
    d = c - r
    return (np.mean(d * d, axis=axis_sum) / np.var(r, axis=axis_sum), np.max(np.abs(d), axis=axis_sum))


def check_bars(dom, fig_id, coords, nmse, max_abs, failing):
    bars = dom.all(tag="rect", cls="bar", within=dom.one(tag="figure", id=fig_id))
    check([int(b.get("data-coord")) for b in bars] == list(coords), f"{fig_id} coordinates")
    for b, want, mx in zip(bars, nmse, max_abs):
        got = float(b.get("data-nmse"))
        check(got == want if want == 0 else cli.close(got, want, 1e-9), f"{fig_id} {b.attrs}: numpy {want}")
        check(float(b.get("data-max-abs-err")) == mx, f"{fig_id} max abs {b.attrs}: numpy {mx}")
    got = [int(b.get("data-coord")) for b in bars if b.get("data-status") == "FAIL"]
    check(got == failing, f"{fig_id}: failing {got}, expected {failing}")


def case_numbers():
    """A RoPE-like bug: one head at one position. The charts say which."""
    t = cli.make_model(seed=4)
    cli.write_dump(path("ref"), t)
    c = cli.copy_model(t)
    q = c[("Qcur", 1)]
    q[3, 1, :] += (0.3 * np.std(q) * np.random.default_rng(2).standard_normal(cli.HEAD_DIM)).astype(np.float32)
    cli.perturb(c, cli.keys_from(c, ("Kcur", 1)), 0.01)
    split = cli.STEP_SPLITS[0]
    cli.write_dump(path("cand"), c, steps=split)
    report, page, dom = make_report(path("ref"), path("cand"), expect=1)
    check(report["first_divergence"]["checkpoint"] == "Qcur" and report["first_divergence"]["layer"] == 1,
          str(report["first_divergence"]))
    check_heatmap(dom, report)
    check_table(dom, report)
    r, cd = t[("Qcur", 1)], c[("Qcur", 1)]
    nm, mx = per((1, 2), r, cd)
    check_bars(dom, "chart-position", range(cli.N_TOK), nm, mx, [3])
    nm, mx = per((0, 2), r, cd)
    check_bars(dom, "chart-head", range(cli.N_HEAD), nm, mx, [1])
    by_step = [per(None, r[s:s + n], cd[s:s + n]) for s, n in split]
    check_bars(dom, "chart-step", range(len(split)), [b[0] for b in by_step], [b[1] for b in by_step], [1])


EVIL = "<script>alert(1)</script></svg><img src=x onerror=\"alert(2)\">\"q\" & 'x' <b>bold</b>"


def evil_edit(m):
    m["prompt"] = EVIL
    m["producer"] = "engine " + EVIL
    m["model"]["path"] = "/models/" + EVIL
    m["settings"]["fault"] = EVIL
    m["settings"][EVIL] = 1
    m["settings"]["nested"] = {"deep": EVIL}
    for f in m["files"]:
        if f["checkpoint"] == "graph":
            f["graph_name"] = EVIL


def case_hostile():
    t = cli.make_model()
    graph = {"evil": np.ones((cli.N_TOK, cli.N_EMBD), dtype=np.float32)}
    ref, cand = path("ref <b>&\"'"), path("cand <i>x</i>")
    cli.write_dump(ref, t, graph=graph, edit=evil_edit)
    cli.write_dump(cand, t, graph={"evil": graph["evil"] + 1}, edit=evil_edit)
    report, page, dom = make_report(ref, cand, expect=1)
    check(report["first_divergence"]["graph_name"] == EVIL, str(report["first_divergence"]))
    for tag in ("script", "img", "b", "i"):
        check(not dom.all(tag=tag), f"an injected <{tag}> exists")
    check(not [e for e in dom.elements if any(a.startswith("on") for a in e.attrs)], "an injected handler exists")
    rows = {tr.get("data-key"): tr for tr in dom.all(tag="tr", cls="setting")}
    for key, want in (("prompt", EVIL), ("producer", "engine " + EVIL), ("model.path", "/models/" + EVIL),
                      ("settings.fault", EVIL), ("settings.nested.deep", EVIL), ("dump", cand)):
        cells = [td.text() for td in rows[key].children if td.tag == "td"]
        check(cells[-1] == want, f"{key}: {cells[-1]!r}, expected {want!r}")
    check("settings." + EVIL in rows, "a key from the manifest, escaped")
    first = dom.one(tag="g", id="first-divergence")
    check(dom.one(tag="title", within=first).text() == "graph " + EVIL, "the first divergence's label")
    check(dom.all(tag="rect", cls="cell", data_graph_name=EVIL), "the graph tensor's cell")
    check(dom.one(tag="code", within=dom.one(id="reference")).text() == ref, "the reference's path")
    check(cand in dom.one(tag="title", within=dom.one(tag="head")).text(), "the page's title")
    check_heatmap(dom, report)


def case_missing():
    """Checkpoints only one dump has: every cell is drawn; those are 'missing'."""
    cli.AXES["Kcur_pre_rope"] = cli.AXES["Kcur"]
    t = cli.make_model()
    ref = {k: v for k, v in t.items() if k != ("Vcur", 1)}
    cand = {}
    for k, v in t.items():
        if k[0] == "Kcur":
            cand[("Kcur_pre_rope", k[1])] = v + 1
        if k[0] != "Qcur":
            cand[k] = v
    cli.write_dump(path("ref"), ref)
    cli.write_dump(path("cand"), cand)
    report, page, dom = make_report(path("ref"), path("cand"), expect=3)  # the candidate lacks Qcur
    check(dom.one(id="verdict").get("data-exit-code") == "3", "the page says incomplete")
    report, page, dom = make_report(path("ref"), path("cand"), "--allow-missing", expect=0)
    svg, cells = check_heatmap(dom, report)
    missing = {(c.get("data-checkpoint"), c.get("data-layer"), c.get("data-only"))
               for c in cells if "missing" in c.classes()}
    want = {(o["checkpoint"], json_layer(o["layer"]), "reference") for o in report["only_in_reference"]}
    want |= {(o["checkpoint"], json_layer(o["layer"]), "candidate") for o in report["only_in_candidate"]}
    check(missing == want and len(want) == 2 * cli.N_LAYER + 1, f"missing cells {sorted(missing)} vs {sorted(want)}")
    check(all(c.get("data-status") == "MISSING" for c in cells if "missing" in c.classes()), "MISSING status")
    labels = [dom.one(tag="title", within=t).text() for t in dom.all(tag="text", cls="col-label", within=svg)]
    at = labels.index("attn_norm")
    check(labels[at + 1:at + 3] == ["Kcur_pre_rope", "Qcur"], f"a candidate-only column by its neighbours: {labels}")


def case_nonfinite():
    t = cli.make_model()
    ref = cli.copy_model(t)
    ref[("attn_norm", 2)][1, 3] = np.nan  # the same NaN in both: within tolerance
    cli.write_dump(path("ref"), ref)
    c = cli.copy_model(ref)
    c[("Qcur", 0)][2, 1, 3] = np.nan
    c[("Kcur", 1)][4, 0, 0] = np.inf
    c[("ffn_out", 2)][0, 0] = -np.inf
    cli.write_dump(path("cand"), c)
    report, page, dom = make_report(path("ref"), path("cand"), expect=1)
    svg, cells = check_heatmap(dom, report)
    check_table(dom, report)
    bad = {(c.get("data-checkpoint"), c.get("data-layer")) for c in cells if "nonfinite" in c.classes()}
    check(bad == {("Qcur", "0"), ("Kcur", "1"), ("ffn_out", "2")}, f"non-finite cells {bad}")
    same_nan = dom.one(tag="rect", cls="cell", data_checkpoint="attn_norm", data_layer="2")
    check("pass" in same_nan.classes(), f"the same NaN in both passes: {same_nan.classes()}")
    check(dom.one(tag="tr", cls="row", data_checkpoint="Qcur", data_layer="0").get("data-max-abs-err") == "inf",
          "max_abs_err is infinite (JSON: null)")


def case_size():
    """32 layers, 40 steps: the page stays small."""
    cli.N_LAYER, cli.N_EMBD, cli.N_HEAD, cli.HEAD_DIM, cli.N_VOCAB = 32, 8, 2, 4, 16
    n = 40
    tokens = list(range(1, n + 1))
    t = cli.make_model(T=n)
    steps = [(i, 1) for i in range(n)]
    cli.write_dump(path("ref"), t, steps=steps, tokens=tokens)
    c = cli.copy_model(t)
    cli.perturb(c, cli.keys_from(c, ("ffn_out", 20)), 0.05)
    cli.write_dump(path("cand"), c, steps=steps, tokens=tokens)
    report, page, dom = make_report(path("ref"), path("cand"), expect=1)
    size = os.path.getsize(page)
    print(f"report of 32 layers x 40 steps: {size} bytes, {len(report['rows'])} rows")
    check(size < 2 * 1024 * 1024, f"the page is {size} bytes")
    svg, cells = check_heatmap(dom, report)
    check(svg.get("data-lines") == str(cli.N_LAYER + 2), "in, 32 layers, out")
    check(len(dom.all(tag="rect", cls="bar", within=dom.one(tag="figure", id="chart-step"))) == n, "40 steps")
    check_table(dom, report)


def heatmap_lines(out):
    """The header, {column name: its key's index in it}, {line label: (line, marked =>)}."""
    lines = out.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("layer"))
    header = lines[at]
    index = {ch: i for i, ch in enumerate(header) if i >= 5 and ch != " "}
    key = []
    for x in lines[lines.index(next(x for x in lines if x.startswith("columns:"))):]:
        if x.startswith("legend:"):
            break
        key.append(x[8:])
    pairs = [part.split() for part in " ".join(key).split(",")]
    columns = {name: index[k] for k, name in pairs}
    grid = {}
    for x in lines[at + 1:]:
        m = re.match(r"(=>)?\s*(in|out|\d+) ", x)
        if not m:
            break
        check(m.group(2) not in grid, f"line {m.group(2)} twice")
        grid[m.group(2)] = (x, bool(m.group(1)))
    return header, columns, grid


def expected_cell(report, i):
    """lead, digit, mark of row i, from --json."""
    r = report["rows"][i]
    digit = "=" if r["max_abs_err"] == 0 else str(min(9, max(0, math.floor(-math.log10(r["nmse"])))))
    mark = " " if r["status"] == "PASS" else {"introduced": "!", "inherited": "^", "unknown": "?"}[r["origin"]]
    return (">" if report["first_divergence"]["row"] == i else " ") + digit + mark


def case_heatmap():
    fault_pair()
    report = cli.run_json(path("ref"), path("cand"), expect=1)
    p = cli.run(path("ref"), path("cand"), "--heatmap", expect=1)
    check("\x1b" not in p.stdout, "no escape codes when stdout is no terminal")
    header, columns, grid = heatmap_lines(p.stdout)
    check([k for k in grid if k.isdigit()] == [str(i) for i in range(cli.N_LAYER)], f"one line per layer: {grid}")
    check([k for k, v in grid.items() if v[1]] == ["1"], "the first divergence's line is marked =>")
    check(any(x.startswith("legend:") for x in p.stdout.splitlines()), "a legend")
    check(p.stdout.rstrip().endswith(report["message"]), "the closing sentence")
    for i, r in enumerate(report["rows"]):
        label = str(r["layer"]) if r["layer"] is not None else "in" if r["checkpoint"] == "embd" else "out"
        line, x = grid[label][0].ljust(len(header) + 2), columns[r["checkpoint"]]  # trailing blanks are cut
        check(line[x - 1:x + 2] == expected_cell(report, i),
              f"{r['checkpoint']} {label}: {line[x - 1:x + 2]!r}, expected {expected_cell(report, i)!r}\n{line}")
    colored = run_in_terminal(path("ref"), path("cand"), "--heatmap")
    check("\x1b[" in colored and "48;5;" in colored, "colors on a terminal")
    plain = [x.rstrip() for x in re.sub(r"\x1b\[[0-9;]*m", "", colored).replace("\r\n", "\n").splitlines()]
    check(plain[:len(grid) + 2] == p.stdout.splitlines()[:len(grid) + 2], "the same grid, colored")
    check("\x1b" not in run_in_terminal(path("ref"), path("cand"), "--heatmap", env={"NO_COLOR": "1"}),
          "NO_COLOR turns colors off")


def run_in_terminal(*args, env=None):
    master, slave = pty.openpty()
    p = subprocess.Popen([cli.TOOL, *args], stdout=slave, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, TERM="xterm-256color", **(env or {})))
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    p.wait(timeout=60)
    return out.decode("utf-8", errors="replace")


def case_bad_output():
    fault_pair()
    ref, cand = path("ref"), path("cand")
    open(path("a-file"), "w").close()
    os.makedirs(path("a-dir"), exist_ok=True)
    for target in (path("no-such-dir/REPORT.html"), path("a-file/REPORT.html"), path("a-dir"), path("a-dir") + "/"):
        p = cli.run(ref, cand, "--html", target, expect=2)
        lines = p.stderr.splitlines()
        check(len(lines) == 1 and "--html" in lines[0] and target.rstrip("/") in lines[0],
              f"{target}: one line naming it: {p.stderr!r}")
        check(p.stdout == "", f"{target}: nothing on stdout: {p.stdout!r}")
    left = [os.path.join(d, f) for d, _, fs in os.walk(cli.WORK) for f in fs if "REPORT" in f or ".part" in f]
    check(not left, f"files left: {left}")
    page = path("out/REPORT.html")
    os.makedirs(path("out"))
    cli.run(ref, path("no-such-dump"), "--html", page, expect=2)
    check(os.listdir(path("out")) == [], f"a dump that cannot be read leaves no page: {os.listdir(path('out'))}")
    cli.run(ref, cand, "--html", page, expect=1)
    check(os.listdir(path("out")) == ["REPORT.html"], f"the page, and only it: {os.listdir(path('out'))}")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    cli.TOOL = args.tool
    cli.WORK = os.path.join(args.work, args.case)
    shutil.rmtree(cli.WORK, ignore_errors=True)
    os.makedirs(cli.WORK)
    CASES[args.case]()
    print(f"ok: {args.case}")


if __name__ == "__main__":
    main()

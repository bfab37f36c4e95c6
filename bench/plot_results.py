#!/usr/bin/env python3
"""Figures of the measured results: bench/results/*.tsv (transcribed from the README's
tables, one protocol per row) -> PNG files in docs/figures/.

  ppl_vs_bits_smollm2.png           PTQ, every method and rotation, W2-W4 (full, ctx 2048, 16 windows)
  ppl_vs_bits_smollm2_2bit.png      2-bit PTQ and QAT files (full, ctx 2048, 40 windows)
  ppl_vs_bits_smollm2_llamacpp.png  4-bit rotquant files and exports against llama.cpp's types
                                    (llama.cpp protocol, ctx 512, 16 chunks, rotquant's PPL)
  export_vs_llamacpp.png            rotquant export against llama.cpp's own quantization, by
                                    llama-perplexity (SmolLM2 and Gemma-3)
  qat_progress.png                  QAT runs: GPTQ start -> block-wise -> end-to-end
  qat_validation.png                QAT end-to-end validation KL and held-out perplexity by step
  qat_loss_curve.png                with --qat-log: the curves of `rotquant qat` logs
  gptq_layer_loss.png               with --loss-report: GPTQ loss per layer and per linear kind (quantize --loss-report)

Points measured under different protocols (windows, context, scorer) never share a plot:
each figure takes one protocol and says which in its title.

usage:
  python3 bench/plot_results.py [--results DIR] [--out DIR]
                                [--qat-log [NAME=]FILE]... [--loss-report NAME=FILE]...
  python3 bench/plot_results.py --check     # validate the TSV files only (no matplotlib needed)

Plotting needs matplotlib, which the build and CI do not: `python3 -m pip install matplotlib`.
Without it the script says so and exits with status 2.

Inputs besides the TSVs: `rotquant qat ... 2> qat.log` (its progress, validation and
block-wise lines are on stderr; '\\r'-separated redraws and terminal escapes are handled)
and `rotquant quantize ... --loss-report gsr.tsv` (one line per quantized linear)."""
import argparse
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
FIGURES = os.path.join(HERE, os.pardir, "docs", "figures")
DPI = 110

# ---------------------------------------------------------------------------------------
# The TSV files and what each column must hold.
#   text: non-empty; text?: may be blank; int+: a positive integer; int0: an integer >= 0;
#   num+: a positive number; num+?: blank or a positive number; num0?: blank or a number
#   >= 0; int+|-: a positive integer or "-" (float rows); a set: one of its values.
PROTOCOLS = {"full", "llamacpp"}
SCHEMAS = {
    "ptq_smollm2.tsv": [
        ("model", "text"), ("session", "text"), ("protocol", PROTOCOLS), ("ctx", "int+"),
        ("windows", "int+"), ("weights", {"float", "W2", "W3", "W4"}),
        ("quantizer", {"float", "uniform", "lut"}), ("fit", "text"), ("method", {"-", "gptq", "rtn"}),
        ("rotation", {"-", "none", "hadamard", "walsh", "gh", "gsr", "gsr-b32"}), ("group", "int+|-"),
        ("bpw", "num+"), ("ppl", "num+"), ("ppl_err", "num+?"), ("err", {"", "sd-seeds", "se"}),
        ("note", "text?"),
    ],
    "export_llamacpp.tsv": [
        ("model", "text"), ("session", "text"), ("protocol", PROTOCOLS), ("ctx", "int+"), ("chunks", "int+"),
        ("producer", {"float", "rotquant", "llama.cpp"}), ("type", "text"), ("variant", "text"),
        ("bpw", "num+"), ("mib", "num+?"), ("ppl_rotquant", "num+?"), ("ppl_llamacpp", "num+?"),
        ("ppl_llamacpp_f32", "num+?"), ("ppl_llamacpp_whole", "num+?"), ("seconds", "num0?"),
        ("llamacpp_build", "text"),
    ],
    "qat_smollm2.tsv": [
        ("session", "text"), ("run", "text"), ("seed", "int0"), ("config", {"W2A16", "W2A4KV4"}),
        ("quantizer", {"ldp", "uniform", "seq"}), ("rotation", {"none", "hadamard", "walsh", "gsr"}),
        ("bpw", "num+"), ("stage", {"start", "block", "e2e"}), ("block_steps", "int0"), ("e2e_steps", "int0"),
        ("protocol", PROTOCOLS), ("ctx", "int+"), ("windows", "int+"), ("ppl", "num+"), ("ppl_se", "num+?"),
        ("heldout", "num+?"), ("note", "text?"),
    ],
    "qat_validation.tsv": [
        ("session", "text"), ("run", "text"), ("config", {"W2A16", "W2A4KV4"}), ("step", "int0"),
        ("val_kl", "num+"), ("heldout", "num+?"),
    ],
}


def number(s):
    """float of a cell, or None when it is not a finite number."""
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def cell_error(kind, s):
    """Why cell text s does not fit kind, or None."""
    if isinstance(kind, set):
        return None if s in kind else f"{s!r} is not one of {sorted(kind)}"
    if kind == "text":
        return None if s else "empty"
    if kind == "text?":
        return None
    if kind.endswith("?") and s == "":
        return None
    if kind == "int+|-" and s == "-":
        return None
    v = number(s)
    if v is None:
        return f"{s!r} is not a number"
    if kind.startswith("int") and v != int(v):
        return f"{s!r} is not an integer"
    if kind.startswith(("num+", "int+")) and v <= 0:
        return f"{s!r} is not positive"
    if kind.startswith(("num0", "int0")) and v < 0:
        return f"{s!r} is negative"
    return None


def read_tsv(path):
    """(source comment lines, header, rows as dicts, problems) of one results file."""
    problems, sources, header, rows = [], [], None, []
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as e:
        return sources, header, rows, [f"cannot read: {e}"]
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("# source:"):
                sources.append(line)
            continue
        fields = line.split("\t")
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            problems.append(f"line {n}: {len(fields)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, fields))
        row["_line"] = n
        rows.append(row)
    if not sources:
        problems.append('no "# source: README section ..." comment line')
    if header is None:
        problems.append("no header line")
    return sources, header, rows, problems


def check_file(path, schema):
    """Problems of one results file against its schema (empty when it is sound)."""
    sources, header, rows, problems = read_tsv(path)
    if header is None:
        return problems
    want = [c for c, _ in schema]
    if header != want:
        missing = [c for c in want if c not in header]
        extra = [c for c in header if c not in want]
        problems.append(f"columns {header} != expected {want}" +
                        (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else ""))
        return problems
    if not rows:
        problems.append("no data rows")
    for r in rows:
        for col, kind in schema:
            why = cell_error(kind, r[col])
            if why:
                problems.append(f"line {r['_line']}, column {col}: {why}")
    return problems


def check(results):
    """--check: every expected file present and sound, and no unknown .tsv beside them."""
    bad = 0
    present = sorted(f for f in os.listdir(results) if f.endswith(".tsv")) if os.path.isdir(results) else []
    for name in sorted(set(SCHEMAS) | set(present)):
        path = os.path.join(results, name)
        if name not in SCHEMAS:
            problems = ["no schema for this file in plot_results.py (add one to SCHEMAS)"]
        elif not os.path.exists(path):
            problems = ["missing"]
        else:
            problems = check_file(path, SCHEMAS[name])
        if problems:
            bad += 1
            for p in problems:
                print(f"{path}: {p}", file=sys.stderr)
        else:
            print(f"ok  {path} ({len(read_tsv(path)[2])} rows)")
    # cross-file: every protocol the figures draw has its float reference
    if not bad:
        ptq = load(results, "ptq_smollm2.tsv")
        refs = {(r["protocol"], r["ctx"], r["windows"]) for r in ptq if r["weights"] == "float"}
        for key in [("full", "2048", "16"), ("full", "2048", "40"), ("llamacpp", "512", "16")]:
            if key not in refs:
                bad += 1
                print(f"ptq_smollm2.tsv: no float row for protocol {key[0]}, ctx {key[1]}, "
                      f"{key[2]} windows", file=sys.stderr)
    if bad:
        print(f"plot_results.py --check: {bad} problem file(s)", file=sys.stderr)
        return 1
    print("plot_results.py --check: all results files parse")
    return 0


def load(results, name):
    sources, header, rows, problems = read_tsv(os.path.join(results, name))
    problems = problems or check_file(os.path.join(results, name), SCHEMAS[name])
    if problems:
        sys.exit(f"plot_results.py: {name}: {problems[0]} (run with --check for all problems)")
    return rows


def pick(rows, **eq):
    return [r for r in rows if all(r[k] == v for k, v in eq.items())]


# ---------------------------------------------------------------------------------------
# Logs

NUM = r"(-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def log_lines(path):
    """The lines of a log, split at '\\n' and '\\r' (progress redraws), escapes removed."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError as e:
        sys.exit(f"plot_results.py: cannot read {path}: {e}")
    return [ln.strip() for ln in re.split(r"[\r\n]+", ANSI.sub("", text)) if ln.strip()]


def named(spec, need_name):
    """'NAME=FILE' -> (NAME, FILE); 'FILE' -> (its base name, FILE) unless a name is needed."""
    name, eq, path = spec.partition("=")
    if not eq:
        if need_name:
            sys.exit(f"plot_results.py: --loss-report wants NAME=FILE, got {spec!r}")
        return os.path.splitext(os.path.basename(spec))[0], spec
    return name, path


def parse_qat_log(path):
    """What `rotquant qat` printed: training loss per step, validation per step, block-wise
    MSE per block, and the held-out perplexity at the start and after the block-wise phase.
    A step printed twice (a resumed run logging into the same file) keeps its last line."""
    step_re = re.compile(r"(?:^|\s)step (\d+)/(\d+) loss " + NUM + r" \|g\| " + NUM)
    val_re = re.compile(r"qat: step (\d+): (?:train loss " + NUM + r", )?validation KL " + NUM +
                        r", held-out perplexity " + NUM)
    block_re = re.compile(r"(?:^|\s)block (\d+)/(\d+): MSE " + NUM + r" -> " + NUM + r" \(last batch " + NUM + r"\)")
    start_re = re.compile(r"qat: start \(.*?\): held-out perplexity " + NUM)
    bdone_re = re.compile(r"qat: block-wise phase done in " + NUM + r" s: MSE " + NUM + r" -> " + NUM +
                          r" \(mean over blocks\); held-out perplexity " + NUM)
    out = {"train": {}, "val": {}, "block": {}, "start_ppl": None, "block_ppl": None, "steps": None}
    for ln in log_lines(path):
        m = val_re.search(ln)
        if m:
            out["val"][int(m.group(1))] = (number(m.group(3)), number(m.group(4)))
            continue
        m = step_re.search(ln)
        if m:
            out["train"][int(m.group(1))] = number(m.group(3))
            out["steps"] = int(m.group(2))
            continue
        m = block_re.search(ln)
        if m:
            out["block"][int(m.group(1))] = (number(m.group(3)), number(m.group(4)))
            continue
        m = bdone_re.search(ln)
        if m:
            out["block_ppl"] = number(m.group(4))
            continue
        m = start_re.search(ln)
        if m:
            out["start_ppl"] = number(m.group(1))
    return out


def parse_loss_report(path):
    """{layer: summed loss} and {linear kind: {layer: loss}} from `rotquant quantize
    --loss-report FILE` (a TSV: tensor, layer, n_out, n_in, group, loss)."""
    per_layer, per_kind = {}, {}
    header = None
    with open(path) as f:
        for ln in f:
            if ln.startswith("#") or not ln.strip():
                continue
            cols = ln.rstrip("\n").split("\t")
            if header is None:
                header = cols
                if header[:1] != ["tensor"] or "loss" not in header or "layer" not in header:
                    sys.exit(f"plot_results.py: {path}: not a --loss-report TSV (header {header})")
                continue
            row = dict(zip(header, cols))
            layer, loss = int(row["layer"]), float(row["loss"])
            kind = row["tensor"].split(".")[2] if row["tensor"].count(".") >= 3 else row["tensor"]
            per_layer[layer] = per_layer.get(layer, 0.0) + loss
            per_kind.setdefault(kind, {})[layer] = loss
    if not per_layer:
        sys.exit(f"plot_results.py: {path}: no rows")
    return per_layer, per_kind


# ---------------------------------------------------------------------------------------
# Figures

ROT_COLOR = {"none": "#444444", "hadamard": "#e6842a", "walsh": "#3a9e4a", "gh": "#8e5cc2", "gsr": "#1f6fc0",
             "gsr-b32": "#7fb6ea"}
ROT_NAME = {"none": "no rotation", "hadamard": "random Hadamard", "walsh": "Walsh", "gh": "GH (Hadamard blocks)",
            "gsr": "GSR (Walsh blocks)", "gsr-b32": "GSR, blocks of 32"}
ROT_SHORT = {"none": "none", "hadamard": "Hadamard", "walsh": "Walsh", "gh": "GH", "gsr": "GSR",
             "gsr-b32": "GSR, blocks of 32"}
ROT_ORDER = ["none", "hadamard", "walsh", "gh", "gsr", "gsr-b32"]
TYPE_COLOR = {"q4_0": "#1f6fc0", "iq4_nl": "#d2492a", "q4_1": "#3a9e4a"}
TYPE_NAME = {"q4_0": "Q4_0", "iq4_nl": "IQ4_NL", "q4_1": "Q4_1"}
OWN_COLOR = "#8e5cc2"  # rotquant's own W4 g64 files
RUN_COLOR = ["#1f6fc0", "#d2492a", "#3a9e4a", "#8e5cc2", "#e6a72a", "#444444", "#17a2b8", "#c2185b"]
GREY = "#666666"


def setup_matplotlib():
    try:
        import matplotlib
    except ImportError:
        print("plot_results.py: matplotlib is not installed (python3 -m pip install matplotlib); "
              "--check works without it", file=sys.stderr)
        sys.exit(2)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9, "axes.titlesize": 9.5, "legend.fontsize": 7.5, "axes.grid": True,
                         "grid.alpha": 0.3, "grid.linewidth": 0.6, "savefig.dpi": DPI})
    return plt


def log_axis(ax, lo=None, hi=None):
    """Log y axis over [lo, hi] (default: the data's), ticked at round numbers: decades over a
    wide range, 1-2-5 or finer steps over a narrow one, labelled as plain numbers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator
    ax.set_yscale("log")
    if lo is not None or hi is not None:
        ax.set_ylim(lo, hi)
    lo, hi = ax.get_ylim()
    ticks = []
    for mant in ((1,), (1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in mant if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 4:
            break
    if len(ticks) < 4:  # less than a factor of about 2: evenly spaced round numbers
        ticks = [t for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 and v == int(v) else f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


def place_labels(ax, items, fontsize=7, avoid=()):
    """Text beside points without overlaps. items: (x, y, text, colour) in data coordinates.
    Each label starts 6 pt right of its point (left of it near the right edge); going up from
    the lowest, a label that meets an earlier label or a marker (the items' and `avoid`'s
    points) is pushed up past it, and then gets a thin leader line to its point. Call after
    the limits and the layout are final."""
    fig = ax.figure
    fig.canvas.draw()
    rend = fig.canvas.get_renderer()
    px = ax.transData.transform
    right = ax.get_window_extent().x1
    k = fig.dpi / 72.0
    r = 4.5 * k  # a marker's half width, px
    boxes = [(cx - r, cy - r, cx + r, cy + r) for cx, cy in
             (px((x, y)) for x, y in [(it[0], it[1]) for it in items] + list(avoid))]
    for x, y, text, color in sorted(items, key=lambda it: px((it[0], it[1]))[1]):
        if not text:
            continue
        cx, cy = px((x, y))
        probe = ax.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(rend)
        probe.remove()
        w, h = ext.width + 2, ext.height + 1
        x0 = cx + 6 * k
        if x0 + w > right:
            x0 = cx - 6 * k - w
        y0 = cy - h / 2
        hit = True
        while hit:
            hit = False
            for b in boxes:
                if x0 < b[2] and x0 + w > b[0] and y0 < b[3] and y0 + h > b[1]:
                    y0, hit = b[3] + 0.5, True
        boxes.append((x0, y0, x0 + w, y0 + h))
        moved = y0 + h / 2 - cy > 0.6 * h
        ax.annotate(text, (x, y), xytext=((x0 - cx) / k, (y0 + h / 2 - cy) / k), textcoords="offset points",
                    ha="left", va="center", fontsize=fontsize, color=color,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color=color, shrinkA=0, shrinkB=4,
                                    relpos=(0 if x0 > cx else 1, 0.5)) if moved else None)


def save(fig, out, name):
    """PNG at DPI; then, where Pillow is there (it comes with matplotlib), re-encoded with a
    256-colour palette, which keeps these flat-colour figures legible at a third of the size."""
    import matplotlib.pyplot as plt
    path = os.path.join(out, name)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    try:
        from PIL import Image
        with Image.open(path) as im:
            pal = im.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        pal.save(path, optimize=True)
    except (ImportError, AttributeError, OSError):
        pass
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KiB)")


def err_bar(ax, x, r, color):
    """ppl ± the seed spread (the bottom clipped to stay on a log axis)."""
    if r["err"] != "sd-seeds":
        return
    y, sd = float(r["ppl"]), float(r["ppl_err"])
    ax.errorbar([x], [y], yerr=[[min(sd, 0.9 * y)], [sd]], fmt="none", ecolor=color, elinewidth=0.9,
                capsize=2.5, zorder=2)


def float_line(ax, y, label):
    ax.axhline(y, color="#999999", ls=":", lw=1.2, zorder=1)
    ax.annotate(f"{label} {y:g}", xy=(0.01, y), xycoords=("axes fraction", "data"), xytext=(0, 3),
                textcoords="offset points", fontsize=7.5, color=GREY)


def footnote(fig, text):
    fig.text(0.99, 0.008, text, ha="right", va="bottom", fontsize=7, color=GREY)


def columns(ax, groups):
    """A dot plot in columns on a log axis. groups: [(title, [(column title, marker, points)])],
    each point a dict with y, color, label and optionally row (for a seed-spread bar).
    Points of one column within 3 % of each other's height are spread sideways. Returns the
    label items for place_labels."""
    x, ticks, names, items, spans = 0.0, [], [], [], []
    for title, cols in groups:
        first = x
        for ctitle, marker, pts in cols:
            pts = sorted(pts, key=lambda p: p["y"])
            clusters = []
            for p in pts:
                if clusters and math.log(p["y"] / clusters[-1][-1]["y"]) < 0.03:
                    clusters[-1].append(p)
                else:
                    clusters.append([p])
            for cl in clusters:
                for i, p in enumerate(cl):
                    px = x + (i - (len(cl) - 1) / 2) * 0.16
                    if p.get("row"):
                        err_bar(ax, px, p["row"], p["color"])
                    ax.scatter([px], [p["y"]], marker=marker, s=90 if marker == "*" else 44, color=p["color"],
                               zorder=3)
                    items.append((px, p["y"], p["label"], p["color"]))
            ticks.append(x)
            names.append(ctitle)
            x += 1
        spans.append((first, x - 1, title))
        x += 0.5
    ax.set_xticks(ticks)
    ax.set_xticklabels(names, fontsize=7.5)
    ax.set_xlim(-0.5, x - 0.5)
    ax.grid(axis="x", visible=False)
    for i, (a, b, title) in enumerate(spans):
        ax.annotate(title, ((a + b) / 2, 0), xycoords=("data", "axes fraction"), xytext=(0, -30),
                    textcoords="offset points", ha="center", va="top", fontsize=8.5, fontweight="bold")
        if i:
            ax.axvline(a - 0.75, color="#bbbbbb", lw=0.8)
    return items


def fig_ppl_vs_bits(plt, ptq, out):
    """Every PTQ method and rotation of the sessions 1-3 table (16 windows): PPL vs bits."""
    from matplotlib.lines import Line2D
    rows = pick(ptq, model="SmolLM2-135M", protocol="full", ctx="2048", windows="16")
    fl = float(next(r for r in rows if r["weights"] == "float")["ppl"])
    rows = [r for r in rows if r["weights"] != "float"]
    style = {  # (method, quantizer, fit, group) -> marker, filled, legend
        ("gptq", "uniform", "minmax", "64"): ("o", True, "GPTQ, uniform"),
        ("gptq", "uniform", "minmax", "32"): ("h", False, "GPTQ, uniform, groups of 32 (3.0 bits)"),
        ("gptq", "uniform", "minmax", "128"): ("p", False, "GPTQ, uniform, groups of 128 (2.4375 bits)"),
        ("rtn", "uniform", "minmax", "64"): ("X", True, "RTN, uniform"),
        ("gptq", "lut", "lloyd", "64"): ("s", False, "GPTQ, LUT (Lloyd-Max levels)"),
        ("gptq", "lut", "lloyd-imp", "64"): ("D", True, "GPTQ, LUT, H_ii-weighted levels"),
        ("rtn", "lut", "lloyd", "64"): ("^", False, "RTN, LUT"),
    }
    fig, ax = plt.subplots(figsize=(9.6, 6.2))
    dx = {rot: (i - 2) * 0.035 for i, rot in enumerate(ROT_ORDER)}
    for method, ls in (("gptq", "-"), ("rtn", "--")):  # the g64 uniform series of each rotation
        for rot in ROT_ORDER:
            ser = sorted((float(r["bpw"]), float(r["ppl"])) for r in rows
                         if r["method"] == method and r["rotation"] == rot and r["quantizer"] == "uniform"
                         and r["group"] == "64")
            if len(ser) > 1:
                ax.plot([b + dx[rot] for b, _ in ser], [p for _, p in ser], ls=ls, lw=0.9,
                        color=ROT_COLOR[rot], alpha=0.5, zorder=2)
    for r in rows:
        mk, filled, _ = style[(r["method"], r["quantizer"], r["fit"], r["group"])]
        # groups of 128 sit 0.0625 bits left of 64's: spread them the other way
        x = float(r["bpw"]) + (dx[r["rotation"]] if r["group"] != "128" else -dx[r["rotation"]])
        y, c = float(r["ppl"]), ROT_COLOR[r["rotation"]]
        err_bar(ax, x, r, c)
        ax.scatter([x], [y], marker=mk, s=48, color=c if filled else "white", edgecolors=c, linewidths=1.4,
                   zorder=3)
    float_line(ax, fl, "float")
    log_axis(ax, fl * 0.8, 4e7)
    ax.set_xticks([2.5, 3.0, 3.5, 4.5])
    ax.set_xlim(2.25, 4.75)
    ax.set_xlabel("bits per weight on the linear layers (codes + fp16 group parameters)")
    ax.set_ylabel("WikiText-2 perplexity (log scale)")
    ax.set_title("SmolLM2-135M PTQ, sessions 1-3 (min/max group fit): WikiText-2, full protocol, ctx 2048, "
                 "first 16 windows")
    rot_h = [Line2D([], [], ls="", marker="o", color=ROT_COLOR[k], label=ROT_NAME[k])
             for k in ROT_ORDER if any(r["rotation"] == k for r in rows)]
    met_h = [Line2D([], [], ls="", marker=m, markerfacecolor="#555555" if f else "white", markeredgewidth=1.3,
                    markeredgecolor="#555555", color="#555555", label=lab) for m, f, lab in style.values()]
    met_h += [Line2D([], [], color="#777777", lw=0.9, label="groups of 64, GPTQ: one line per rotation"),
              Line2D([], [], color="#777777", lw=0.9, ls="--", label="groups of 64, RTN: one line per rotation")]
    leg = ax.legend(handles=rot_h, title="R1 rotation (colour)", loc="upper right", frameon=True)
    ax.add_artist(leg)
    ax.legend(handles=met_h, title="method, quantizer (marker)", loc="center right", frameon=True,
              bbox_to_anchor=(1.0, 0.47))
    footnote(fig, "groups of 64 unless marked; random Hadamard: mean of seeds 1-3, bar = sd (clipped at the "
             "bottom); points at equal bits spread sideways by rotation")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save(fig, out, "ppl_vs_bits_smollm2.png")


def fig_ppl_vs_bits_2bit(plt, ptq, qat, out):
    """The 2-bit files on the 40 windows: PTQ (session 4/7 defaults) and QAT W2A16, in
    columns by bits per weight and kind of file."""
    rows = pick(ptq, model="SmolLM2-135M", protocol="full", ctx="2048", windows="40")
    fl = float(next(r for r in rows if r["weights"] == "float")["ppl"])
    minmax = [r for r in rows if r["weights"] == "W2" and r["fit"] == "minmax"]
    # session 11's LUT rows supersede the partial ones of sessions 9-10 (same setting, own calibration)
    ptq_rows = [r for r in rows if r["weights"] == "W2" and r["fit"] != "minmax" and r["session"] != "9-10"]
    qrows = pick(qat, config="W2A16", protocol="full", ctx="2048", windows="40")

    def ptq_point(r):
        lab = ROT_SHORT[r["rotation"]] + (" (5 seeds)" if r["err"] == "sd-seeds" else "")
        if r["session"] != "4":
            lab += f" (s{r['session']})"
        return {"y": float(r["ppl"]), "color": ROT_COLOR[r["rotation"]], "label": lab, "row": r}

    def qat_point(r):
        if r["run"] == "quickstart":
            lab = f"quickstart ({ROT_SHORT[r['rotation']]})"
        else:
            lab = {"ldp": "", "uniform": "uniform, ", "seq": "SEQ, "}[r["quantizer"]] + ROT_SHORT[r["rotation"]]
            lab += f", seed {r['seed']}" if r["seed"] != "0" else ""
        return {"y": float(r["ppl"]), "color": ROT_COLOR[r["rotation"]], "label": lab}

    block10 = [r for r in qrows if r["stage"] == "block" and r["block_steps"] == "10"]
    last = {}
    for r in qrows:  # the last file of each full run
        if r["stage"] == "e2e" and int(r["e2e_steps"]) >= int(last.get(r["run"], {"e2e_steps": "0"})["e2e_steps"]):
            last[r["run"]] = r
    e2e = [{"y": float(r["ppl"]), "color": ROT_COLOR[r["rotation"]],
            "label": f"session {r['session']}, {r['e2e_steps']} steps"} for r in last.values()]
    groups = [
        ("2.5 bits/weight (uniform or SEQ, groups of 64)", [
            ("PTQ: GPTQ,\nuniform", "o", [ptq_point(r) for r in ptq_rows if r["quantizer"] == "uniform"]),
            ("QAT: block-wise\nonly (10 steps)", "s",
             [qat_point(r) for r in block10 if r["quantizer"] != "ldp"]),
        ]),
        ("3.0 bits/weight (LUT / LDP: 4 fp16 levels per group of 64)", [
            ("PTQ: GPTQ,\nLUT", "o", [ptq_point(r) for r in ptq_rows if r["quantizer"] == "lut"]),
            ("QAT LDP: block-wise\nonly (10 steps)", "s",
             [qat_point(r) for r in block10 if r["quantizer"] == "ldp"]),
            ("QAT LDP: block-wise (40)\n+ end-to-end", "*", e2e),
        ]),
    ]
    fig, ax = plt.subplots(figsize=(9.6, 6.0))
    items = columns(ax, groups)
    log_axis(ax, 68, 250)
    ax.set_ylabel("WikiText-2 perplexity (log scale)")
    ax.set_title(f"SmolLM2-135M, 2-bit weights, A16: WikiText-2, full protocol, ctx 2048, first 40 windows "
                 f"(float: {fl:g})")
    note = ("colour: R1 rotation; PTQ: session 4 unless marked (sN: session N, its own calibration text); "
            "QAT: seed 0 unless marked\nrandom Hadamard PTQ: seeds 1-5, bar = sd")
    if minmax:
        note += f"; not drawn: PTQ with the sessions 1-3 min/max fit, {float(minmax[0]['ppl']):,.0f}"
    footnote(fig, note)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    place_labels(ax, items)
    save(fig, out, "ppl_vs_bits_smollm2_2bit.png")


def variant_name(r):
    """'R1 gsr', 'R1 none, R2 gsr', 'R1 none, shrink 0.5', 'imatrix', 'no imatrix'."""
    if r["producer"] == "llama.cpp":
        return "imatrix" if r["variant"] == "imatrix" else "no imatrix"
    rot, _, tag = r["variant"].partition("+")
    r1, _, r2 = rot.partition(",")
    s = f"R1 {r1}" + (f", R2 {r2}" if r2 else "")
    return s + (", shrink 0.5" if tag == "s05" else "")


def fig_ppl_vs_bits_llamacpp(plt, ptq, exp, out):
    """llama.cpp's protocol (ctx 512, 16 chunks) scored by rotquant: rotquant's own W4 g64 files
    (session 4), rotquant's exports and llama.cpp's types (session 9), in columns by bits."""
    own = pick(ptq, model="SmolLM2-135M", protocol="llamacpp", ctx="512", windows="16")
    fl = float(next(r for r in own if r["weights"] == "float")["ppl"])
    own = [r for r in own if r["weights"] != "float"]
    ex = [r for r in pick(exp, model="SmolLM2-135M", session="9", protocol="llamacpp", ctx="512", chunks="16")
          if r["producer"] != "float" and r["ppl_rotquant"]]

    def own_point(r):
        lab = f"{ROT_SHORT[r['rotation']]}, " + ("defaults" if r["fit"] == "ls-imp" else "no act-order")
        return {"y": float(r["ppl"]), "color": OWN_COLOR, "label": lab}

    def ex_point(r):
        if r["producer"] == "llama.cpp":
            lab = f"{TYPE_NAME[r['type']]}" + (f" ({float(r['bpw']):g} bpw)" if float(r["bpw"]) % 0.5 else "")
        else:
            lab = f"{TYPE_NAME[r['type']]}, {variant_name(r)}"
        return {"y": float(r["ppl_rotquant"]), "color": TYPE_COLOR[r["type"]], "label": lab}

    def col(bits, producer, variant=None):
        return [ex_point(r) for r in ex if round(float(r["bpw"]) * 2) / 2 == bits and r["producer"] == producer
                and (variant is None or r["variant"] == variant)]

    groups = [("4.5 bits/weight (llama.cpp's files 4.5-4.525)", [
                  ("rotquant W4 g64\n(own format, session 4)", "D", [own_point(r) for r in own]),
                  ("rotquant export\n(session 9)", "o", col(4.5, "rotquant")),
                  ("llama.cpp\nimatrix", "s", col(4.5, "llama.cpp", "imatrix")),
                  ("llama.cpp\nno imatrix", "X", col(4.5, "llama.cpp", "plain"))]),
              ("5.0 bits/weight (Q4_1)", [
                  ("rotquant\nexport", "o", col(5.0, "rotquant")),
                  ("llama.cpp\nimatrix", "s", col(5.0, "llama.cpp", "imatrix")),
                  ("llama.cpp\nno imatrix", "X", col(5.0, "llama.cpp", "plain"))])]
    fig, ax = plt.subplots(figsize=(9.6, 6.0))
    items = columns(ax, groups)
    float_line(ax, fl, "float (source weights)")
    log_axis(ax, fl * 0.97, 37)
    ax.set_ylabel("WikiText-2 perplexity by rotquant ppl (log scale)")
    ax.set_title("SmolLM2-135M at 4-5 bits: WikiText-2, llama.cpp's protocol, ctx 512, first 16 chunks, "
                 "scored by rotquant")
    footnote(fig, "colour: the llama.cpp type (purple: rotquant's own uniform g64 format); the source file is "
             "Q4_1, so unrotated Q4_1 files recover the float model exactly")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    place_labels(ax, items)
    save(fig, out, "ppl_vs_bits_smollm2_llamacpp.png")


def fig_export(plt, exp, out):
    """Dot plots of llama.cpp's own perplexity of each file: SmolLM2 on 16 chunks and on the
    whole file, Gemma-3 on 16 chunks; the rotquant rows carry their difference to llama.cpp's
    imatrix file of the same type."""
    from matplotlib.lines import Line2D
    panels = [("SmolLM2-135M", "ppl_llamacpp", "SmolLM2-135M-Instruct: first 16 chunks"),
              ("SmolLM2-135M", "ppl_llamacpp_whole", "SmolLM2-135M-Instruct: whole file (589 chunks)"),
              ("Gemma-3-270M", "ppl_llamacpp", "Gemma-3-270M: first 16 chunks")]
    prod_style = {"rotquant": ("o", "#1f6fc0"), "imatrix": ("s", "#d2492a"), "plain": ("X", "#8a8a8a")}
    order = {"q4_0": 0, "iq4_nl": 1, "q4_1": 2}
    data = []
    for model, col, title in panels:
        rows = [r for r in pick(exp, model=model, session="9", protocol="llamacpp", ctx="512", chunks="16") if r[col]]
        fl = next((float(r[col]) for r in rows if r["producer"] == "float"), None)
        rows = sorted((r for r in rows if r["producer"] != "float"),
                      key=lambda r: (order.get(r["type"], 9), r["producer"] != "llama.cpp", r["variant"] != "plain",
                                     r["variant"]))
        data.append((rows, fl, col, title))
    heights = [len(rows) + 1.5 for rows, *_ in data]
    fig, axes = plt.subplots(len(data), 1, figsize=(9.6, 0.25 * sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights})
    for ax, (rows, fl, col, title) in zip(axes, data):
        imat = {r["type"]: float(r[col]) for r in rows if r["producer"] == "llama.cpp" and r["variant"] == "imatrix"}
        ys = list(range(len(rows)))[::-1]
        for y, r in zip(ys, rows):
            m, c = prod_style["rotquant" if r["producer"] == "rotquant" else r["variant"]]
            v = float(r[col])
            ax.scatter([v], [y], marker=m, color=c, s=40, zorder=3)
            ax.hlines(y, fl if fl else v, v, color=c, lw=0.8, alpha=0.5, zorder=2)
            note = f"{v:.2f}"
            if r["producer"] == "rotquant" and r["type"] in imat:
                note += f"  ({100 * (v / imat[r['type']] - 1):+.1f} % vs imatrix)"
            ax.annotate(note, (v, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=7, color=c)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{TYPE_NAME[r['type']]} {r['producer']}, {variant_name(r)} ({float(r['bpw']):g} bpw)"
                            for r in rows], fontsize=7.5)
        for t, r in zip(ax.get_yticklabels(), rows):
            t.set_color(prod_style["rotquant" if r["producer"] == "rotquant" else r["variant"]][1])
        ax.set_ylim(-0.8, len(rows) - 0.2)
        for i in range(1, len(rows)):  # a rule between types
            if rows[i]["type"] != rows[i - 1]["type"]:
                ax.axhline(ys[i] + 0.5, color="#cccccc", lw=0.8)
        if fl:
            ax.axvline(fl, color="#999999", ls=":", lw=1.2)
            ax.annotate(f"float {fl:.2f}", (fl, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -9),
                        textcoords="offset points", fontsize=7.5, color=GREY)
        vals = [float(r[col]) for r in rows] + ([fl] if fl else [])
        span = max(vals) - min(vals)
        ax.set_xlim(min(vals) - 0.04 * span, max(vals) + 0.36 * span)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel("WikiText-2 perplexity by llama-perplexity (ctx 512) of the quantized file")
    fig.suptitle("rotquant export (R1 GSR or none, GPTQ onto llama.cpp's blocks) against llama.cpp's own "
                 "quantization (session 9)", fontsize=10)
    h = [Line2D([], [], ls="", marker=m, color=c, label=lab) for (m, c), lab in
         zip(prod_style.values(), ["rotquant export", "llama.cpp, imatrix", "llama.cpp, no imatrix"])]
    fig.legend(handles=h, loc="upper right", ncol=3, frameon=False, fontsize=7.5, bbox_to_anchor=(0.99, 0.962))
    footnote(fig, "SmolLM2's source file is Q4_1: unrotated Q4_1 files recover its float weights exactly")
    fig.subplots_adjust(left=0.3, right=0.98, top=0.9, bottom=0.075, hspace=0.42)
    save(fig, out, "export_vs_llamacpp.png")


def run_colors(qat):
    """One colour per full QAT run (the order of qat_smollm2.tsv), shared by the QAT figures."""
    count = {}
    for r in qat:
        if not r["run"].startswith("quick"):
            count[r["run"]] = count.get(r["run"], 0) + 1
    names = [n for n, k in count.items() if k > 1]  # a run with more than a start
    return {n: RUN_COLOR[i % len(RUN_COLOR)] for i, n in enumerate(names)}


def stage_x(r):
    """start 0, block-wise 1, end-to-end 1 + steps/100."""
    return {"start": 0.0, "block": 1.0}.get(r["stage"], 1.0 + int(r["e2e_steps"]) / 100)


def fig_qat_progress(plt, ptq, qat, out):
    rows = pick(qat, protocol="full", ctx="2048", windows="40")
    fl = float(next(r for r in pick(ptq, model="SmolLM2-135M", protocol="full", ctx="2048", windows="40")
                    if r["weights"] == "float")["ppl"])
    colors = run_colors(qat)
    full = [r for r in rows if r["run"] in colors]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.0, 5.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ends = []
    for run in colors:
        pts = sorted((stage_x(r), float(r["ppl"]), r) for r in full if r["run"] == run)
        a4 = pts[0][2]["config"] == "W2A4KV4"
        a1.plot([p[0] for p in pts], [p[1] for p in pts], ls="--" if a4 else "-", marker="s" if a4 else "o",
                ms=4.5, lw=1.3, color=colors[run], label=run)
        ends.append((pts[-1][0], pts[-1][1], f"{pts[-1][1]:.1f}", colors[run]))
    lone = [r for r in rows if r["run"] not in colors and not r["run"].startswith("quick")]
    for r in lone:  # a start without a run (session 6's data at temperature 0.7)
        a1.scatter([stage_x(r)], [float(r["ppl"])], marker="o", facecolors="white", edgecolors=GREY, zorder=3)
        ends.append((stage_x(r), float(r["ppl"]), f"{float(r['ppl']):.1f}: s6 start, data at T 0.7", GREY))
    float_line(a1, fl, "float")
    log_axis(a1, fl * 0.85, 2000)
    a1.set_xticks([0, 1, 1.3, 1.6, 2.0, 2.5])
    a1.set_xticklabels(["GPTQ\nstart", "block-wise\n(40-50 steps/block)", "+30", "+60", "+100", "+150"])
    a1.set_xlabel("stage; then end-to-end steps (a resumed run's last point)")
    a1.set_ylabel("WikiText-2 perplexity (log scale)")
    a1.set_xlim(-0.15, 2.85)
    a1.legend(loc="upper right", fontsize=7, frameon=True)
    a1.set_title("QAT runs (LDP, 3.0 bits/weight): W2A16 solid, W2A4KV4 dashed")
    # quick ablations: start -> 10 block-wise steps per block, labelled at their ends
    quick, qends = [r for r in rows if r["run"].startswith("quick:")], []
    for run in dict.fromkeys(r["run"] for r in quick):
        pts = sorted((stage_x(r), float(r["ppl"]), r) for r in quick if r["run"] == run)
        r0 = pts[0][2]
        c = ROT_COLOR[r0["rotation"]]
        a2.plot([p[0] for p in pts], [p[1] for p in pts], ls={"ldp": "-", "uniform": "--", "seq": ":"}[r0["quantizer"]],
                marker="o" if r0["seed"] == "0" else "^", ms=4.5, lw=1.3, color=c)
        qends.append((pts[-1][0], pts[-1][1], run.replace("quick: ", "").replace("(learnable clip)", "LC"), c))
    for r in (r for r in rows if r["run"] == "quickstart"):
        a2.scatter([1], [float(r["ppl"])], marker="*", s=90, color=ROT_COLOR[r["rotation"]], zorder=3)
        qends.append((1, float(r["ppl"]), "quickstart (LDP, GSR)", ROT_COLOR[r["rotation"]]))
    log_axis(a2, 100, 200)
    a2.set_xticks([0, 1])
    a2.set_xticklabels(["GPTQ start", "block-wise\n(10 steps/block)"])
    a2.set_xlim(-0.2, 2.05)
    a2.set_ylabel("WikiText-2 perplexity (log scale)")
    a2.set_title("Session 10 ablations, quick profile (no end-to-end)")
    fig.suptitle("SmolLM2-135M QAT: WikiText-2, full protocol, ctx 2048, first 40 windows", fontsize=10)
    footnote(fig, "right: colour = R1 rotation; line: solid LDP (3.0 bits), dashed uniform with learnable "
             "clipping (2.5), dotted SEQ (2.5); triangles: seed 1")
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    place_labels(a1, ends)
    place_labels(a2, qends, avoid=[(0, float(r["ppl"])) for r in quick if r["stage"] == "start"])
    save(fig, out, "qat_progress.png")


def fig_qat_validation(plt, qat, val, out):
    colors = run_colors(qat)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.0, 4.8))
    for run in dict.fromkeys(r["run"] for r in val):
        pts = sorted((int(r["step"]), float(r["val_kl"]), r["heldout"], r["config"]) for r in val if r["run"] == run)
        ls = "--" if pts[0][3] == "W2A4KV4" else "-"
        c = colors.get(run, GREY)
        a1.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker="o", ms=3.5, lw=1.2, color=c, label=run)
        hp = [(p[0], float(p[2])) for p in pts if p[2]]
        a2.plot([p[0] for p in hp], [p[1] for p in hp], ls=ls, marker="o", ms=3.5, lw=1.2, color=c)
    a1.set_xlabel("end-to-end step (0 = after the block-wise phase)")
    a1.set_ylabel("validation loss (CAKLD)")
    a1.set_title("validation loss on the run's held-out windows")
    a1.legend(fontsize=7, frameon=True)
    log_axis(a2)
    a2.set_xlabel("end-to-end step")
    a2.set_ylabel("held-out perplexity (log scale)")
    a2.set_title("held-out perplexity (each run its own generated windows)")
    fig.suptitle("SmolLM2-135M QAT, end-to-end phase: the validation lines (compare the curves' shapes; "
                 "each run has its own held-out text)", fontsize=10)
    footnote(fig, "s8 W2A4KV4: held-out perplexity given only at steps 0 and 30; s6 W2A16 step 100: KL only")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    save(fig, out, "qat_validation.png")


def log_colors(names):
    return {n: RUN_COLOR[i % len(RUN_COLOR)] for i, n in enumerate(names)}


def fig_qat_log(plt, specs, out):
    """The curves of one or more `rotquant qat` logs: block-wise MSE per block, training loss
    and validation KL per end-to-end step, held-out perplexity from the start on."""
    logs = [(name, parse_qat_log(path)) for name, path in (named(s, False) for s in specs)]
    for name, lg in logs:
        if not (lg["train"] or lg["val"] or lg["block"]):
            sys.exit(f"plot_results.py: --qat-log {name}: no step, validation or block lines found "
                     "(give the stderr of rotquant qat, without -q)")
        print(f"{name}: {len(lg['block'])} block-wise lines, {len(lg['train'])} training steps, "
              f"{len(lg['val'])} validations")
    have_block = any(lg["block"] for _, lg in logs)
    have_e2e = any(lg["train"] or lg["val"] for _, lg in logs)
    n = 1 + have_block + have_e2e
    fig, axes = plt.subplots(1, n, figsize=(3.9 * n + 0.8, 4.6))
    axes = list(axes) if n > 1 else [axes]
    colors = log_colors([name for name, _ in logs])
    ax_iter = iter(axes)
    if have_block:
        ax = next(ax_iter)
        for name, lg in logs:
            b = sorted(lg["block"].items())
            if b:
                ax.plot([k for k, _ in b], [v[0] for _, v in b], ls=":", marker=".", color=colors[name],
                        label=f"{name}: before")
                ax.plot([k for k, _ in b], [v[1] for _, v in b], ls="-", marker=".", color=colors[name],
                        label=f"{name}: after")
        log_axis(ax)
        ax.set_xlabel("block (layer), 1-based")
        ax.set_ylabel("block output MSE to the float teacher (log scale)")
        ax.set_title("block-wise phase")
        ax.legend(fontsize=7)
    last_step = max([0] + [k for _, lg in logs for k in list(lg["train"]) + list(lg["val"])])
    if have_e2e:
        ax = next(ax_iter)
        for name, lg in logs:
            t = sorted((k, v) for k, v in lg["train"].items() if v is not None)
            if t:
                ax.plot([k for k, _ in t], [v for _, v in t], lw=0.9, alpha=0.75, color=colors[name],
                        label=f"{name}: training loss")
            v = sorted((k, x[0]) for k, x in lg["val"].items() if x[0] is not None)
            if v:
                ax.plot([k for k, _ in v], [x for _, x in v], ls="--", marker="o", ms=4, color=colors[name],
                        label=f"{name}: validation KL")
        ax.set_xlabel("end-to-end step")
        ax.set_ylabel("loss (CAKLD)")
        ax.set_title("end-to-end phase")
        ax.legend(fontsize=7)
    # held-out perplexity: the GPTQ start left of step 0 (step 0 = after the block-wise phase)
    ax = next(ax_iter)
    x_start = -max(1.0, 0.12 * last_step)
    for name, lg in logs:
        pts = []
        if lg["start_ppl"] is not None:
            pts.append((x_start, lg["start_ppl"]))
        if lg["block_ppl"] is not None and 0 not in lg["val"]:
            pts.append((0, lg["block_ppl"]))
        pts += [(k, x[1]) for k, x in sorted(lg["val"].items()) if x[1] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, color=colors[name], label=name)
    log_axis(ax)
    ticks = [t for t in ax.get_xticks() if 0 <= t <= max(last_step, 0)] or [0]
    ax.set_xticks([x_start] + ticks)
    ax.set_xticklabels(["GPTQ\nstart"] + [f"{t:g}" for t in ticks])
    ax.set_xlim(x_start - 0.6 * abs(x_start), max(last_step, 0) + 0.6 * abs(x_start))
    ax.set_xlabel("end-to-end step (0: after the block-wise phase)")
    ax.set_ylabel("held-out perplexity (log scale)")
    ax.set_title("held-out generated windows")
    ax.legend(fontsize=7)
    fig.suptitle("rotquant qat: " + ", ".join(name for name, _ in logs), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save(fig, out, "qat_loss_curve.png")


def fig_loss_report(plt, specs, out):
    """GPTQ loss per layer (sum over its linears) and per linear kind, one line per report
    (a rotation's name as NAME takes its colour)."""
    reps = []
    for sp in specs:
        name, path = named(sp, True)
        per_layer, per_kind = parse_loss_report(path)
        reps.append((name, per_layer, per_kind))
    kinds = sorted({k for _, _, pk in reps for k in pk})
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.8))
    colors = log_colors([n for n, *_ in reps])
    for name, per_layer, _ in reps:
        pts = sorted(per_layer.items())
        c = ROT_COLOR.get(name.lower(), colors[name])
        axes[0].plot([k for k, _ in pts], [v for _, v in pts], marker="o", ms=3.0, lw=1.1, color=c,
                     label=ROT_NAME.get(name.lower(), name))
    log_axis(axes[0])
    axes[0].set_xlabel("layer (0-based)")
    axes[0].set_ylabel("loss of the layer's linears (log scale)")
    axes[0].set_title("Per layer: sum over the layer's linears", fontsize=9)
    axes[0].legend(fontsize=7.5)
    width = 0.8 / max(1, len(reps))
    for i, (name, _, per_kind) in enumerate(reps):
        c = ROT_COLOR.get(name.lower(), colors[name])
        xs = [j + (i - (len(reps) - 1) / 2) * width for j in range(len(kinds))]
        axes[1].bar(xs, [sum(per_kind.get(k, {}).values()) for k in kinds], width=width, color=c,
                    label=ROT_SHORT.get(name.lower(), name))
    axes[1].set_yscale("log")
    axes[1].set_xticks(range(len(kinds)))
    axes[1].set_xticklabels(kinds, fontsize=8)
    axes[1].set_ylabel("loss summed over the layers (log scale)")
    axes[1].set_title("Per linear kind: summed over the layers", fontsize=9)
    fig.suptitle("GPTQ loss (Σ e²/2 weighted by H) from rotquant quantize --loss-report", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save(fig, out, "gptq_layer_loss.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--check", action="store_true", help="validate the TSV files and exit (no plotting)")
    ap.add_argument("--results", default=RESULTS, help="folder of the TSV files (default bench/results)")
    ap.add_argument("--out", default=FIGURES, help="folder for the PNG files (default docs/figures)")
    ap.add_argument("--qat-log", action="append", default=[], metavar="[NAME=]FILE",
                    help="a rotquant qat log (its stderr); repeat to overlay runs -> qat_loss_curve.png")
    ap.add_argument("--loss-report", action="append", default=[], metavar="NAME=FILE",
                    help="a TSV of rotquant quantize --loss-report; NAME a rotation (none, hadamard, walsh, gh, "
                         "gsr) or any label; repeat per run -> gptq_layer_loss.png")
    a = ap.parse_args()
    if a.check:
        return check(a.results)
    plt = setup_matplotlib()
    ptq = load(a.results, "ptq_smollm2.tsv")
    exp = load(a.results, "export_llamacpp.tsv")
    qat = load(a.results, "qat_smollm2.tsv")
    val = load(a.results, "qat_validation.tsv")
    os.makedirs(a.out, exist_ok=True)
    fig_ppl_vs_bits(plt, ptq, a.out)
    fig_ppl_vs_bits_2bit(plt, ptq, qat, a.out)
    fig_ppl_vs_bits_llamacpp(plt, ptq, exp, a.out)
    fig_export(plt, exp, a.out)
    fig_qat_progress(plt, ptq, qat, a.out)
    fig_qat_validation(plt, qat, val, a.out)
    if a.qat_log:
        fig_qat_log(plt, a.qat_log, a.out)
    if a.loss_report:
        fig_loss_report(plt, a.loss_report, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

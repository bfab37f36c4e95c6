"""Format bench/rotlearn_table.sh's results.tsv as the README's learned-rotation table:
rotations as rows, settings as columns; the random Hadamard seeds merged into mean ± sd,
each learned row with its learning time."""
import statistics
import sys
from collections import OrderedDict

# row name -> (setting, label, ppl, se, quantize s, learn s)
cells = OrderedDict()  # label -> setting -> [ppl]
times = {}  # label -> setting -> (quantize s, learn s)
settings = []
float_ppl = None
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 7 or not f[3]:
        continue
    name, setting, label = f[0], f[1], f[2]
    if name == "float":
        float_ppl = float(f[3])
        continue
    if label.startswith("hadamard s"):
        label = "hadamard (seeds)"
    if setting not in settings:
        settings.append(setting)
    cells.setdefault(label, {}).setdefault(setting, []).append(float(f[3]))
    times.setdefault(label, {})[setting] = (int(f[5]), int(f[6] or 0))


def fmt(v):
    return f"{v:,.0f}" if v >= 1000 else f"{v:.2f}"


chunks = sys.argv[2] if len(sys.argv) > 2 else "?"
head = f"| R1/R2 (WikiText-2 PPL, full protocol, ctx 2048, {chunks} windows"
head += f"; float {float_ppl:.2f})" if float_ppl else ")"
print(head + " | " + " | ".join(settings) + " | learning time (each rotation, without data) |")
print("|---|" + "---|" * (len(settings) + 1))
order = ["hadamard (seeds)", "walsh", "gsr", "start: hadamard, R2 hadamard", "start: gsr, R2 hadamard",
         "learned from hadamard", "learned from gsr", "learned from block", "learned from hadamard + gsr"]
labels = [l for l in order if l in cells] + [l for l in cells if l not in order]
for label in labels:
    row = cells[label]
    out = []
    for s in settings:
        p = row.get(s)
        if not p:
            out.append("")
        elif len(p) == 1:
            out.append(fmt(p[0]))
        else:
            out.append(f"{fmt(statistics.mean(p))} ± {fmt(statistics.stdev(p))} (n={len(p)})")
    learn = []
    for s_ in settings:  # one time per rotation file, in the settings' order (W2A16 and W3A16 share one)
        t = times[label].get(s_, (0, 0))[1]
        if t and t not in learn:
            learn.append(t)
    print(f"| {label} | " + " | ".join(out) + " | " + (", ".join(f"{t} s" for t in learn) or "–") + " |")

"""Format bench/a4kv4_table.sh's results.tsv as the README's W/A/KV table: configurations
as rows, rotations as columns; the random Hadamard seeds merged into mean ± sd."""
import statistics
import sys
from collections import OrderedDict

cells = OrderedDict()  # config -> rotation -> [ppl]
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 6:
        continue
    config, rot, ppl = f[1], f[2], float(f[3])
    cells.setdefault(config, OrderedDict()).setdefault(rot, []).append(ppl)

rots = ["none", "hadamard", "walsh", "gh", "gsr"]


def fmt(v):
    return f"{v:,.0f}" if v >= 1000 else f"{v:.2f}"


chunks = sys.argv[2] if len(sys.argv) > 2 else "?"
print(f"| W/A/KV (WikiText-2 PPL, full protocol, ctx 2048, {chunks} windows) | " + " | ".join(rots) + " |")
print("|---|" + "---|" * len(rots))
for config, row in cells.items():
    out = []
    for r in rots:
        p = row.get(r)
        if not p:
            out.append("")
        elif len(p) == 1:
            out.append(fmt(p[0]))
        else:
            out.append(f"{fmt(statistics.mean(p))} ± {fmt(statistics.stdev(p))}")
    print(f"| {config} | " + " | ".join(out) + " |")

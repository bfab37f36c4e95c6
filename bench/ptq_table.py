"""Format bench/ptq_table.sh's results.tsv as the README's markdown table: one row per
configuration, random-seed rows (hadamard) merged into mean ± sd over their seeds."""
import statistics
import sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 9:
        continue
    name, wbits, method, rot, seed, group, bpw, ppl, _se, secs = f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[-1]
    key = (wbits, method, rot, group)
    rows.setdefault(key, {"bpw": bpw, "ppl": [], "secs": []})
    rows[key]["ppl"].append(float(ppl))
    rows[key]["secs"].append(float(secs))

print("| weights | method | rotation | group | bits/weight (linear layers) | WikiText-2 PPL | seeds |")
print("|---|---|---|---|---|---|---|")
for (wbits, method, rot, group), r in rows.items():
    p = r["ppl"]
    val = f"{p[0]:.2f}" if len(p) == 1 else f"{statistics.mean(p):.2f} ± {statistics.stdev(p):.2f}"
    w = "float (Q4_1 dequantized)" if wbits == "16" else f"W{wbits}A16"
    print(f"| {w} | {method} | {rot} | {group} | {r['bpw']} | {val} | {len(p)} |")

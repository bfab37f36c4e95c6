"""Format bench/ptq_table.sh's results.tsv as the README's markdown table: one row per
configuration, random-seed rows (hadamard) merged into mean ± sd over their seeds, with
the windows scored and the mean quantize / perplexity seconds per row."""
import statistics
import sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 12 or not f[7]:
        continue
    name, wbits, method, rot, seed, group, bpw, ppl, _se, windows, qs, ps = f[:12]
    key = (wbits, method, rot, group, windows)
    r = rows.setdefault(key, {"bpw": bpw, "ppl": [], "q": [], "p": []})
    r["ppl"].append(float(ppl))
    r["q"].append(float(qs))
    r["p"].append(float(ps))

print("| weights | method / fit | rotation | group | bits/weight (linears) | WikiText-2 PPL | seeds | windows | quantize s | ppl s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (wbits, method, rot, group, windows), r in rows.items():
    p = r["ppl"]
    val = f"{p[0]:.2f}" if len(p) == 1 else f"{statistics.mean(p):.2f} ± {statistics.stdev(p):.2f}"
    w = "float (Q4_1 dequantized)" if wbits == "16" else f"W{wbits}A16"
    win = "all" if windows == "0" else windows
    print(f"| {w} | {method} | {rot} | {group} | {r['bpw']} | {val} | {len(p)} | {win} | "
          f"{statistics.mean(r['q']):.0f} | {statistics.mean(r['p']):.0f} |")

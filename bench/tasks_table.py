"""Format bench/tasks_table.sh's JSON results as the README's zero-shot table: one row per
model, acc (acc_norm where the harness reports it, LAMBADA acc) per task, and the mean of
the six (acc_norm for ARC and PIQA, acc otherwise)."""
import json
import os
import sys

out = sys.argv[1]
order = ["float"] + sorted(f[:-5] for f in os.listdir(out) if f.startswith("float_limit") and f.endswith(".json")) + ["w2a16_gptq_none", "w2a16_gptq_hadamard_s1", "w2a16_gptq_gsr", "w2a16_lut-gptq_gsr",
         "w2a16_lut-gptq_none", "w2a4kv4_gptq_gsr"]
names = [n for n in order if os.path.exists(os.path.join(out, n + ".json"))]
names += sorted(f[:-5] for f in os.listdir(out) if f.endswith(".json") and f[:-5] not in order)
tasks = ["arc_easy", "arc_challenge", "piqa", "winogrande", "lambada", "boolq"]
norm = {"arc_easy", "arc_challenge", "piqa"}
print("| model | items/task | " + " | ".join(tasks) + " | mean | suite time |")
print("|---|---|" + "---|" * (len(tasks) + 2))
for n in names:
    r = json.load(open(os.path.join(out, n + ".json")))
    cells, vals = [], []
    for t in tasks:
        x = r["tasks"].get(t)
        if not x:
            cells.append("")
            continue
        if t in norm:
            cells.append(f"{x['acc']:.4f} / {x['acc_norm']:.4f}")
            vals.append(x["acc_norm"])
        elif t == "lambada":
            cells.append(f"{x['acc']:.4f} (ppl {x['perplexity']:.1f})")
            vals.append(x["acc"])
        else:
            cells.append(f"{x['acc']:.4f}")
            vals.append(x["acc"])
    mean = f"{sum(vals) / len(vals):.4f}" if len(vals) == len(tasks) else ""
    limit = r.get("limit") or "full"
    print(f"| {n} | {limit} | " + " | ".join(cells) + f" | {mean} | {r['total_seconds']:.0f} s ({r['threads']} threads) |")

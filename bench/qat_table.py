"""Format bench/qat_table.sh's results (OUT directory) as the README's markdown table: one
row per run and file (GPTQ start, block-wise, block-wise + end-to-end), with the
WikiText-2 perplexity of the windows scored, the tokens trained on, the run's wall time and
peak RSS (from `rotquant qat`'s summary and /usr/bin/time), and the zero-shot mean where
the tasks were evaluated.

usage: python3 bench/qat_table.py OUT_DIR"""
import glob
import json
import os
import re
import sys


def ppl_of(base):
    """PPL ± standard error and the windows scored, from NAME.ppl.txt (or None)."""
    try:
        text = open(base + ".ppl.txt").read()
    except OSError:
        return None
    m = re.search(r"^PPL = ([0-9.]+) \+/- ([0-9.]+)", text, re.M)
    if not m:
        return None
    w = re.search(r"(\d+) chunks", text)
    return m.group(1), m.group(2), w.group(1) if w else "?"


def tasks_mean(base):
    try:
        j = json.load(open(base + ".tasks.json"))
    except (OSError, ValueError):
        return ""
    accs = [t["acc"] for t in j.get("tasks", {}).values() if "acc" in t]
    return f"{sum(accs) / len(accs):.4f}" if accs else ""


def qat_summary(name, out):
    """Tokens and seconds per phase, total time, peak RSS from NAME.qat.txt / .qat.log."""
    s = {"tok_block": 0, "tok_e2e": 0, "t_block": 0, "t_e2e": 0, "t_total": None, "rss": None}
    try:
        text = open(os.path.join(out, name + ".qat.txt")).read()
    except OSError:
        return s
    m = re.search(r"block-wise MSE \S+ -> \S+ \((\d+) tokens, (\d+) s\)", text)
    if m:
        s["tok_block"], s["t_block"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"end-to-end KL .*?, (\d+) tokens, (\d+) s\)", text)
    if m:
        s["tok_e2e"], s["t_e2e"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"qat: time (\d+) s \(data (\d+) s, GPTQ start (\d+) s\); peak RSS (\d+) MiB", text)
    if m:
        s["t_total"], s["t_data"], s["t_ptq"], s["rss"] = (int(g) for g in m.groups())
    return s


def main():
    out = sys.argv[1]
    print("| run | file | WikiText-2 PPL | windows | tokens (block-wise / end-to-end) | time s (data, GPTQ, "
          "block-wise, end-to-end) | peak RSS MiB | zero-shot mean |")
    print("|---|---|---|---|---|---|---|---|")
    for log in sorted(glob.glob(os.path.join(out, "*.qat.txt")), key=os.path.getmtime):
        name = os.path.basename(log)[: -len(".qat.txt")]
        q = qat_summary(name, out)
        files = [("GPTQ start", name + ".start"), ("block-wise", name + ".block"), ("final", name)]
        for label, base in files:
            p = ppl_of(os.path.join(out, base))
            if p is None:
                continue
            val = f"{float(p[0]):.2f} ± {float(p[1]):.2f}"
            if label == "GPTQ start":
                tok, tm = "0", f"{q.get('t_data', '?')}, {q.get('t_ptq', '?')}"
            elif label == "block-wise" or q["tok_e2e"] == 0:
                tok, tm = f"{q['tok_block']} / 0", f"+ {q['t_block']}"
            else:
                tok, tm = f"{q['tok_block']} / {q['tok_e2e']}", f"+ {q['t_e2e']} (all {q['t_total']})"
            print(f"| {name} | {label} | {val} | {p[2]} | {tok} | {tm} | {q['rss'] or ''} | "
                  f"{tasks_mean(os.path.join(out, base))} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown table of bench/export_table.sh's results.tsv (argument: its path).

One row per file: who made it (rotquant export with its R1[,R2] rotation and extra options,
or llama.cpp's own quantization, plain or with an importance matrix), bits per weight on the
block linears, size, both engines' perplexity on the first chunks, llama.cpp's perplexity of
our export converted to F32 by llama.cpp (the decode check), and the whole-file figure where
it was measured. Each type's best 16-chunk llama.cpp PPL is in bold."""
import csv
import sys


def label(r):
    if r["engine"] == "float":
        return "float (source weights, F32)"
    if r["engine"] == "llama.cpp":
        return f"llama.cpp {r['type'].upper()}, " + ("imatrix" if r["variant"] == "imatrix" else "no imatrix")
    rot, _, tag = r["variant"].partition("+")
    r1, _, r2 = rot.partition(",")
    s = f"rotquant export {r['type'].upper()}, R1 {r1}" + (f", R2 {r2}" if r2 else "")
    if tag:
        s += f" ({tag})"
    return s


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    best = {}
    for r in rows:
        try:
            v = float(r["llamacpp_ppl"])
        except ValueError:
            continue
        if r["engine"] != "float":
            best[r["type"]] = min(best.get(r["type"], v), v)
    print("| file | linears bpw | MiB | rotquant PPL | llama.cpp PPL | llama.cpp, F32 of the file | llama.cpp, whole file | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lp = r["llamacpp_ppl"]
        if r["engine"] != "float" and lp not in ("", "-") and float(lp) == best.get(r["type"]):
            lp = f"**{lp}**"
        print(f"| {label(r)} | {r['linear_bpw']} | {int(r['bytes']) / 1048576:.1f} | {r['rotquant_ppl']} | {lp} | "
              f"{r['f32_check_ppl']} | {r['llamacpp_whole_ppl']} | {r['quantize_s']} |")


if __name__ == "__main__":
    main()

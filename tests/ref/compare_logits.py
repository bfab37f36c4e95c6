"""Compares rotquant's logits and greedy ids with the reference forward's (the last step
of tests/sh_reference*.sh). Exit 0 when every logits file is within the relative L2
tolerance of DIR/ref.f32 and the greedy ids of the 3 prompts are equal.

  compare_logits.py DIR TOL NAME[,NAME...] [--rows a:b,c:d --n-tok N]

NAME: raw float32 logits files in DIR ([n_tok, n_vocab]); with --rows only those rows of
each (out of N tokens) are compared, as llama_ref.py --rows wrote them. DIR also holds
ref_greedy.txt and our_greedy.txt (one line of ids per prompt)."""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("tol", type=float)
ap.add_argument("names")
ap.add_argument("--rows")
ap.add_argument("--n-tok", type=int)
a = ap.parse_args()
ref = np.fromfile(f"{a.dir}/ref.f32", dtype="<f4").astype(np.float64)
fail = 0
for name in a.names.split(","):
    ours = np.fromfile(f"{a.dir}/{name}", dtype="<f4").astype(np.float64)
    if a.rows:
        n_vocab = ours.size // a.n_tok
        sel = np.concatenate([np.arange(a.n_tok)[slice(*[int(v) for v in r.split(":")])] for r in a.rows.split(",")])
        ours = ours.reshape(a.n_tok, n_vocab)[sel].ravel()
    if ours.shape != ref.shape:
        print(f"FAIL {name}: {ours.size} logits vs reference {ref.size}")
        fail = 1
        continue
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    ok = rel <= a.tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: relative L2 error {rel:.3g} (tol {a.tol:g})")
    fail |= not ok
ref_g = open(f"{a.dir}/ref_greedy.txt").read().split("\n")
our_g = open(f"{a.dir}/our_greedy.txt").read().split("\n")
for i in range(3):
    ok = ref_g[i].split() == our_g[i].split() and len(ref_g[i].split()) > 0
    print(f"{'ok  ' if ok else 'FAIL'} greedy prompt {i}: ours [{our_g[i]}] reference [{ref_g[i]}]")
    fail |= not ok
raise SystemExit(1 if fail else 0)

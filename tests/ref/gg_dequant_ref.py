#!/usr/bin/env python3
"""Independent oracle for rotquant's llama.cpp block encodings (tests/test_ggquant.c).

Reads a GGUF in which every tensor "q.NAME" (a llama.cpp block type rotquant wrote) has a
twin "r.NAME" (F32: what rotquant's own dequantizer made of it), dequantizes q.NAME with
the gguf package's dequantizer (gguf.quants.dequantize) and checks that it equals r.NAME
bit for bit. Prints one line per tensor; exit status 1 on any mismatch, 2 on bad input."""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main(path):
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    bad = 0
    n = 0
    for name, t in tensors.items():
        if not name.startswith("q."):
            continue
        ref = tensors.get("r." + name[2:])
        if ref is None:
            print(f"FAIL {name}: no r.{name[2:]}")
            return 2
        got = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32, copy=False)
        want = np.asarray(ref.data, dtype=np.float32)
        got = got.reshape(-1)
        want = want.reshape(-1)
        n += 1
        if got.shape != want.shape:
            print(f"FAIL {name} ({t.tensor_type.name}): {got.shape} values, expected {want.shape}")
            bad += 1
            continue
        diff = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
        if diff.size:
            i = diff[0]
            print(f"FAIL {name} ({t.tensor_type.name}): {diff.size} of {got.size} values differ, "
                  f"first at {i}: gguf {got[i]!r}, rotquant {want[i]!r}")
            bad += 1
        else:
            print(f"ok   {name} ({t.tensor_type.name}): {got.size} values bit-identical")
    if n == 0:
        print("FAIL: no q.* tensors")
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

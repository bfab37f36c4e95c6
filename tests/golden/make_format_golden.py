#!/usr/bin/env python3
"""Golden data for tests/test_format.c, made with an independent implementation: the
`gguf` Python package (gguf.quants, numpy). Development only; the outputs are
committed and the tests never run this script.

    python3 -m venv /tmp/gg && /tmp/gg/bin/pip install gguf numpy
    /tmp/gg/bin/python tests/golden/make_format_golden.py      # from the repo root

Files (all little-endian), N = n_blocks * block_size elements:

  format_<type>.bin        dequantization of random blocks
    0   char[4]  "RQFG"
    4   uint32   version (1)
    8   uint32   ggml type id
    12  uint32   n_blocks
    16  uint32   block_size   (elements per block; 1 for F32/F16/BF16)
    20  uint32   type_size    (bytes per block)
    24  uint8    blocks[n_blocks * type_size]   random bytes, sane fp16 scales
    ..  float32  expected[N] = gguf.quants.dequantize(blocks)

  format_quant_<type>.bin  round-to-nearest quantization of random floats
    0   char[4]  "RQFQ"
    4..23        as above
    24  float32  input[N]
    ..  uint8    expected[n_blocks * type_size] = gguf.quants.quantize(input)

Block bytes are seeded uniform random, except the fp16 scale/min fields, which are
replaced by finite fp16 values (no NaN/inf), including one subnormal per file.
"""
import os
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = os.path.dirname(os.path.abspath(__file__))
N_BLOCKS = 4

# byte offsets of the fp16 fields (scales and mins) inside each block
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def sane_halves(rng, n):
    """n finite fp16 values, |v| in [2^-12, 4), random sign; the first one subnormal."""
    mag = np.exp2(rng.uniform(-12, 2, size=n)).astype(np.float16)
    v = np.where(rng.integers(0, 2, size=n) == 1, -mag, mag).astype(np.float16)
    v[0] = np.uint16(rng.integers(1, 0x400)).view(np.float16)  # subnormal
    return v


def header(magic, qtype, block_size, type_size):
    return magic + np.array([1, int(qtype), N_BLOCKS, block_size, type_size], dtype="<u4").tobytes()


def write(name, data):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


def dequant_golden(qtype):
    rng = np.random.default_rng(1000 + int(qtype))
    if qtype in (T.F32, T.F16, T.BF16):
        block_size, type_size = 1, {T.F32: 4, T.F16: 2, T.BF16: 2}[qtype]
        n_blocks = 256                      # one "block" per element
        # random bit patterns; an all-ones exponent (inf/NaN) loses its top bit
        if qtype == T.F32:
            bits = rng.integers(0, 2**32, size=n_blocks, dtype=np.uint64).astype(np.uint32)
            bits = np.where((bits & 0x7F800000) == 0x7F800000, bits & 0xBFFFFFFF, bits).astype("<u4")
        else:
            emask = 0x7C00 if qtype == T.F16 else 0x7F80
            bits = rng.integers(0, 2**16, size=n_blocks, dtype=np.uint32)
            bits = np.where((bits & emask) == emask, bits & 0xBFFF, bits).astype("<u2")
        raw = np.frombuffer(bits.tobytes(), dtype=np.uint8)
        expected = np.asarray(dequantize(raw, qtype), dtype="<f4").reshape(-1)
        assert np.all(np.isfinite(expected))
        hdr = header(b"RQFG", qtype, block_size, type_size)
        hdr = hdr[:12] + np.array([n_blocks], dtype="<u4").tobytes() + hdr[16:]
        write(f"format_{qtype.name.lower()}.bin", hdr + raw.tobytes() + expected.tobytes())
        return
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    fields = HALF_FIELDS[qtype]
    halves = sane_halves(rng, N_BLOCKS * len(fields)).reshape(N_BLOCKS, len(fields))
    for b in range(N_BLOCKS):
        for k, off in enumerate(fields):
            blocks[b, off:off + 2] = np.frombuffer(halves[b, k].tobytes(), dtype=np.uint8)
    raw = blocks.reshape(-1)
    expected = np.asarray(dequantize(raw, qtype), dtype="<f4").reshape(-1)
    assert expected.size == N_BLOCKS * block_size and np.all(np.isfinite(expected))
    write(f"format_{qtype.name.lower()}.bin",
          header(b"RQFG", qtype, block_size, type_size) + raw.tobytes() + expected.tobytes())


def quant_golden(qtype):
    rng = np.random.default_rng(2000 + int(qtype))
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    x = rng.standard_normal((N_BLOCKS, block_size)).astype(np.float32)
    x[0] *= np.float32(1e-3)                 # small block
    x[1] = 0.0                               # all-zero block: d = 0 path
    x[2] += np.float32(3.0)                  # offset block (all positive)
    x[3, 5] = np.float32(-40.0)              # one outlier with negative sign
    x = x.reshape(-1).astype("<f4")
    expected = np.asarray(quantize(x, qtype), dtype=np.uint8).reshape(-1)
    assert expected.size == N_BLOCKS * type_size
    write(f"format_quant_{qtype.name.lower()}.bin",
          header(b"RQFQ", qtype, block_size, type_size) + x.tobytes() + expected.tobytes())


def main():
    if sys.byteorder != "little":
        sys.exit("run on a little-endian machine")
    for t in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
              T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        dequant_golden(t)
    for t in (T.Q8_0, T.Q4_0, T.Q4_1):
        quant_golden(t)


if __name__ == "__main__":
    main()

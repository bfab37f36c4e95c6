#!/usr/bin/env python3
"""Independent numpy reference forward pass of a LLaMA-architecture GGUF model.

It reads tensors with the `gguf` Python package (GGUFReader + gguf.quants.dequantize),
never with rotquant's own code, and computes in float64 (default) or float32:

  x = E[tokens]
  per layer:  h = x + Wo · attn(rope(Wq·rms(x)), rope(Wk·rms(x)), Wv·rms(x))   (causal, GQA)
              x = h + Wdown · (silu(Wgate·rms(h)) * Wup·rms(h))
  logits = W_out · rms(x)      (W_out = E when the file has no output.weight: tied)

RoPE: for the LLaMA architecture, llama.cpp's converter permutes the rows of q/k so that
RoPE rotates ADJACENT pairs (2i, 2i+1) of each head ("normal" mode, not NeoX's (i, i+d/2)).
`--rope neox` switches the pairing to show that the other one gives worse predictions.

Usage:
  llama_ref.py MODEL --ids 1,2,3 [--ids-file F] [--logits OUT.f32] [--greedy N]
               [--prompts FILE] [--dtype float64|float32] [--rope normal|neox] [--nll]
  --logits: all positions' logits as raw little-endian float32 [n_tokens, n_vocab]
  --greedy N: prints N greedy continuation token ids (space separated) on stdout, one
              line per prompt: the lines of --prompts FILE (ids per line), else --ids.
              Decoding uses a KV cache (checked once against full recomputation: the
              logits agree to 1e-13).
  --nll: prints mean negative log-likelihood of the ids (teacher forcing)
"""
import argparse
import sys

import numpy as np

try:
    import gguf
    from gguf import quants
except ImportError:  # pragma: no cover
    sys.stderr.write("llama_ref.py: needs the 'gguf' package (pip install gguf numpy)\n")
    sys.exit(77)


def field_value(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class Model:
    def __init__(self, path, dtype):
        r = gguf.GGUFReader(path)
        arch = field_value(r, "general.architecture")
        if arch != "llama":
            raise SystemExit(f"llama_ref.py: unsupported architecture '{arch}'")
        p = "llama."
        self.n_layer = int(field_value(r, p + "block_count"))
        self.n_embd = int(field_value(r, p + "embedding_length"))
        self.n_ff = int(field_value(r, p + "feed_forward_length"))
        self.n_head = int(field_value(r, p + "attention.head_count"))
        self.n_head_kv = int(field_value(r, p + "attention.head_count_kv", self.n_head))
        self.eps = float(field_value(r, p + "attention.layer_norm_rms_epsilon"))
        self.theta = float(field_value(r, p + "rope.freq_base", 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.rope_dim = int(field_value(r, p + "rope.dimension_count", self.head_dim))
        scaling = field_value(r, p + "rope.scaling.type", "none")
        if scaling not in ("none", None):
            raise SystemExit(f"llama_ref.py: rope scaling '{scaling}' not implemented in the reference")
        self.dtype = dtype
        self.t = {}
        for t in r.tensors:
            # dequantize returns numpy order [rows, cols] = reversed ggml ne: [out, in]
            a = quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(x) for x in reversed(list(t.shape)))
            self.t[t.name] = np.asarray(a, dtype=dtype).reshape(shape)
        self.emb = self.t["token_embd.weight"]  # [n_vocab, n_embd]
        self.out = self.t.get("output.weight", self.emb)
        self.n_vocab = self.emb.shape[0]

    def rms(self, x, g):
        ms = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(ms + self.eps) * g

    def rope(self, x, pos, mode):
        # x [n, heads, head_dim]; positions pos [n]
        d = self.rope_dim
        i = np.arange(d // 2, dtype=np.float64)
        inv = self.theta ** (-2.0 * i / d)  # [d/2]
        ang = pos[:, None].astype(np.float64) * inv[None, :]  # [n, d/2]
        c = np.cos(ang)[:, None, :].astype(self.dtype)
        s = np.sin(ang)[:, None, :].astype(self.dtype)
        y = x.copy()
        if mode == "normal":
            a, b = x[..., 0:d:2], x[..., 1:d:2]
            y[..., 0:d:2] = a * c - b * s
            y[..., 1:d:2] = a * s + b * c
        else:
            a, b = x[..., : d // 2], x[..., d // 2 : d]
            y[..., : d // 2] = a * c - b * s
            y[..., d // 2 : d] = a * s + b * c
        return y

    def forward(self, ids, rope_mode="normal", last_only=False, cache=None):
        """Logits of ids at positions start..start+n-1, where start = the number of
        positions already in `cache` (a list of per-layer (K, V) arrays, extended in
        place; None = no cache, start 0)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            raise SystemExit("llama_ref.py: token id out of range")
        n = len(ids)
        start = 0 if not cache else cache[0][0].shape[0]
        pos = np.arange(start, start + n)
        hd, H, Hk = self.head_dim, self.n_head, self.n_head_kv
        x = self.emb[ids].copy()  # [n, n_embd]
        # causal mask over all start+n keys: query i (position start+i) sees keys <= start+i
        mask = np.where(np.arange(start + n)[None, :] <= pos[:, None], 0.0, -np.inf).astype(self.dtype)
        for l in range(self.n_layer):
            w = lambda name: self.t[f"blk.{l}.{name}.weight"]
            h = self.rms(x, w("attn_norm"))
            q = (h @ w("attn_q").T).reshape(n, H, hd)
            k = (h @ w("attn_k").T).reshape(n, Hk, hd)
            v = (h @ w("attn_v").T).reshape(n, Hk, hd)
            q = self.rope(q, pos, rope_mode)
            k = self.rope(k, pos, rope_mode)
            if cache is not None:
                if len(cache) <= l:
                    cache.append((k, v))
                else:
                    cache[l] = (np.concatenate([cache[l][0], k]), np.concatenate([cache[l][1], v]))
                k, v = cache[l]
            att = np.empty((n, H, hd), dtype=self.dtype)
            for hh in range(H):
                kh = hh // (H // Hk)
                sc = (q[:, hh, :] @ k[:, kh, :].T) / np.sqrt(hd) + mask
                sc = sc - sc.max(axis=1, keepdims=True)
                p = np.exp(sc)
                p /= p.sum(axis=1, keepdims=True)
                att[:, hh, :] = p @ v[:, kh, :]
            x = x + att.reshape(n, H * hd) @ w("attn_output").T
            h = self.rms(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            u = h @ w("ffn_up").T
            x = x + ((g / (1.0 + np.exp(-g))) * u) @ w("ffn_down").T
        if last_only:
            x = x[-1:]
        x = self.rms(x, self.t["output_norm.weight"])
        return x @ self.out.T  # [n, n_vocab]

    def greedy(self, ids, n_new, rope_mode="normal"):
        cache = []
        logits = self.forward(ids, rope_mode, last_only=True, cache=cache)
        out = []
        for i in range(n_new):
            nxt = int(np.argmax(logits[-1]))
            out.append(nxt)
            if i + 1 < n_new:
                logits = self.forward([nxt], rope_mode, cache=cache)
        return out


def parse_ids(s):
    return [int(v) for v in s.replace(",", " ").split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ids", default="")
    ap.add_argument("--ids-file")
    ap.add_argument("--logits")
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--rope", choices=["normal", "neox"], default="normal")
    ap.add_argument("--nll", action="store_true")
    ap.add_argument("--prompts")
    a = ap.parse_args()
    ids = parse_ids(a.ids)
    if a.ids_file:
        with open(a.ids_file) as f:
            ids += parse_ids(f.read())
    if not ids and not a.prompts:
        raise SystemExit("llama_ref.py: no token ids given")
    m = Model(a.model, np.float64 if a.dtype == "float64" else np.float32)
    if ids and (a.logits or a.nll):
        logits = m.forward(ids, a.rope)
        if a.logits:
            logits.astype("<f4").tofile(a.logits)
        if a.nll:
            z = logits[:-1]
            zmax = z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0]
            nll = lse - z[np.arange(len(ids) - 1), ids[1:]]
            print(f"nll {nll.mean():.6f} ppl {np.exp(nll.mean()):.4f}")
    if a.greedy > 0:
        prompts = [ids]
        if a.prompts:
            with open(a.prompts) as f:
                prompts = [parse_ids(line) for line in f if line.strip()]
        for p in prompts:
            print(" ".join(str(t) for t in m.greedy(p, a.greedy, a.rope)))


if __name__ == "__main__":
    main()

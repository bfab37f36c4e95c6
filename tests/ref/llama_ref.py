#!/usr/bin/env python3
"""Independent numpy reference forward pass of a LLaMA- or Gemma-3-architecture GGUF model.

It reads tensors with the `gguf` Python package (GGUFReader + gguf.quants.dequantize),
never with rotquant's own code, and computes in float64 (default) or float32:

  x = E[tokens]
  per layer:  h = x + Wo · attn(rope(Wq·rms(x)), rope(Wk·rms(x)), Wv·rms(x))   (causal, GQA)
              x = h + Wdown · (silu(Wgate·rms(h)) * Wup·rms(h))
  logits = W_out · rms(x)      (W_out = E when the file has no output.weight: tied)

Gemma-3 (general.architecture "gemma3"), from the published architecture as llama.cpp
implements it (src/models/gemma3.cpp):

  x = E[tokens] * sqrt(n_embd)
  per layer l:  q, k, v = Wq·rms(x), Wk·rms(x), Wv·rms(x)   (rms with attn_norm)
                q, k = rope_neox(rms_head(q, q_norm)), rope_neox(rms_head(k, k_norm))
                attention with scale 1/sqrt(head_dim); on local layers (l % 6 < 5 when the
                file has attention.sliding_window W) a query at position p sees keys in
                (p - W, p] and RoPE uses base 10000 (rope.freq_base on global layers)
                h = x + rms(Wo·att, post_attention_norm)
                x = h + rms(Wdown·(gelu_tanh(Wgate·rms(h)) * Wup·rms(h)), post_ffw_norm)
  logits = E · rms(x)
The GGUF's norm vectors already hold Gemma's (1 + w) (the converter adds 1): used as stored.
The embedding (the big matrix: 262144 x 640) is kept in float32, which holds the
dequantized Q8_0 values exactly, and multiplied in float64 in slices.
`--window W` overrides the file's sliding window (a test can use a short one).

RoPE: for the LLaMA architecture, llama.cpp's converter permutes the rows of q/k so that
RoPE rotates ADJACENT pairs (2i, 2i+1) of each head ("normal" mode, not NeoX's (i, i+d/2)).
`--rope neox` switches the pairing to show that the other one gives worse predictions.

Usage:
  llama_ref.py MODEL --ids 1,2,3 [--ids-file F] [--logits OUT.f32] [--greedy N]
               [--prompts FILE] [--dtype float64|float32] [--rope normal|neox] [--nll]
  --logits: all positions' logits as raw little-endian float32 [n_tokens, n_vocab]
  --rows 0:64,592:600: only those positions' logits (rows in that order; not with --nll)
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
        if arch not in ("llama", "gemma3"):
            raise SystemExit(f"llama_ref.py: unsupported architecture '{arch}'")
        self.gemma = arch == "gemma3"
        p = arch + "."
        self.n_layer = int(field_value(r, p + "block_count"))
        self.n_embd = int(field_value(r, p + "embedding_length"))
        self.n_ff = int(field_value(r, p + "feed_forward_length"))
        self.n_head = int(field_value(r, p + "attention.head_count"))
        self.n_head_kv = int(field_value(r, p + "attention.head_count_kv", self.n_head))
        self.eps = float(field_value(r, p + "attention.layer_norm_rms_epsilon"))
        self.theta = float(field_value(r, p + "rope.freq_base", 10000.0))
        self.head_dim = int(field_value(r, p + "attention.key_length", self.n_embd // self.n_head))
        self.window = int(field_value(r, p + "attention.sliding_window", 0)) if self.gemma else 0
        self.swa_pattern = int(field_value(r, p + "attention.sliding_window_pattern", 6))
        self.theta_swa = float(field_value(r, p + "rope.freq_base_swa", 10000.0))
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
            keep = np.float32 if t.name == "token_embd.weight" else dtype
            self.t[t.name] = np.asarray(a, dtype=keep).reshape(shape)
        self.emb = self.t["token_embd.weight"]  # [n_vocab, n_embd]
        self.out = self.t.get("output.weight", self.emb)
        self.n_vocab = self.emb.shape[0]

    def rms(self, x, g):
        ms = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(ms + self.eps) * g

    def is_swa(self, l):
        return self.window > 0 and l % self.swa_pattern < self.swa_pattern - 1

    def logits(self, x):
        out = np.empty((x.shape[0], self.out.shape[0]), dtype=self.dtype)
        step = 16384
        for r0 in range(0, self.out.shape[0], step):
            out[:, r0 : r0 + step] = x @ self.out[r0 : r0 + step].astype(self.dtype).T
        return out

    def rope(self, x, pos, mode, theta=None):
        # x [n, heads, head_dim]; positions pos [n]
        d = self.rope_dim
        i = np.arange(d // 2, dtype=np.float64)
        inv = (self.theta if theta is None else theta) ** (-2.0 * i / d)  # [d/2]
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

    def forward(self, ids, rope_mode="normal", last_only=False, cache=None, rows=None, hidden=False):
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
        x = self.emb[ids].astype(self.dtype)  # [n, n_embd]
        if self.gemma:
            x = x * np.sqrt(float(self.n_embd))
        # causal mask over all start+n keys: query i (position start+i) sees keys <= start+i
        keys = np.arange(start + n)[None, :]
        mask = np.where(keys <= pos[:, None], 0.0, -np.inf).astype(self.dtype)
        # sliding window: also keys > position - window
        mask_swa = np.where((keys <= pos[:, None]) & (keys > pos[:, None] - self.window), 0.0, -np.inf)
        mask_swa = mask_swa.astype(self.dtype)
        for l in range(self.n_layer):
            w = lambda name: self.t[f"blk.{l}.{name}.weight"]
            h = self.rms(x, w("attn_norm"))
            q = (h @ w("attn_q").T).reshape(n, H, hd)
            k = (h @ w("attn_k").T).reshape(n, Hk, hd)
            v = (h @ w("attn_v").T).reshape(n, Hk, hd)
            swa = self.is_swa(l)
            theta = self.theta_swa if swa else self.theta
            if self.gemma:
                q = self.rms(q, w("attn_q_norm"))
                k = self.rms(k, w("attn_k_norm"))
            q = self.rope(q, pos, rope_mode, theta)
            k = self.rope(k, pos, rope_mode, theta)
            if cache is not None:
                if len(cache) <= l:
                    cache.append((k, v))
                else:
                    cache[l] = (np.concatenate([cache[l][0], k]), np.concatenate([cache[l][1], v]))
                k, v = cache[l]
            att = np.empty((n, H, hd), dtype=self.dtype)
            for hh in range(H):
                kh = hh // (H // Hk)
                sc = (q[:, hh, :] @ k[:, kh, :].T) / np.sqrt(hd) + (mask_swa if swa else mask)
                sc = sc - sc.max(axis=1, keepdims=True)
                p = np.exp(sc)
                p /= p.sum(axis=1, keepdims=True)
                att[:, hh, :] = p @ v[:, kh, :]
            o = att.reshape(n, H * hd) @ w("attn_output").T
            x = x + (self.rms(o, w("post_attention_norm")) if self.gemma else o)
            h = self.rms(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            u = h @ w("ffn_up").T
            if self.gemma:  # GELU, tanh approximation
                act = 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g**3)))
            else:
                act = g / (1.0 + np.exp(-g))
            d = (act * u) @ w("ffn_down").T
            x = x + (self.rms(d, w("post_ffw_norm")) if self.gemma else d)
        if last_only:
            x = x[-1:]
        elif rows is not None:
            x = x[rows]
        x = self.rms(x, self.t["output_norm.weight"])
        if hidden:
            return x  # [n, n_embd] the final normed hidden states
        return self.logits(x)  # [n, n_vocab]

    def argmax_last(self, x):
        """argmax of the logits of the final hidden row x [n_embd] (already normed): a
        float32 pass picks the 16 largest candidates, which are then recomputed in the
        model's dtype (exact in float64; the float32 pass only saves converting the
        262144-row embedding of Gemma on every step)."""
        if self.out.dtype == self.dtype or self.out.shape[0] <= 16:
            return int(np.argmax(x @ self.out.astype(self.dtype).T))
        approx = x.astype(np.float32) @ self.out.T
        cand = np.argpartition(approx, -16)[-16:]
        exact = self.out[cand].astype(self.dtype) @ x
        return int(cand[np.argmax(exact)])

    def greedy(self, ids, n_new, rope_mode="normal"):
        cache = []
        hid = self.forward(ids, rope_mode, last_only=True, cache=cache, hidden=True)
        out = []
        for i in range(n_new):
            nxt = self.argmax_last(hid[-1])
            out.append(nxt)
            if i + 1 < n_new:
                hid = self.forward([nxt], rope_mode, cache=cache, hidden=True)
        return out


def parse_ids(s):
    return [int(v) for v in s.replace(",", " ").split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ids", default="")
    ap.add_argument("--ids-file")
    ap.add_argument("--logits")
    ap.add_argument("--rows", help="only these positions' logits, e.g. 0:64,592:600 (Python slices)")
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--rope", choices=["normal", "neox"], default=None, help="default: normal (llama), neox (gemma3)")
    ap.add_argument("--window", type=int, default=None, help="override a gemma3 file's sliding window")
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
    if a.rope is None:
        a.rope = "neox" if m.gemma else "normal"
    if a.window is not None:
        m.window = a.window
    if ids and (a.logits or a.nll):
        rows = None
        if a.rows:
            rows = np.concatenate([np.arange(len(ids))[slice(*[int(v) for v in r.split(":")])] for r in a.rows.split(",")])
        logits = m.forward(ids, a.rope, rows=rows)
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

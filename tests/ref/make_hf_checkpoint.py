#!/usr/bin/env python3
"""Make a Hugging Face checkpoint directory from a LLaMA or Gemma-3 GGUF (test helper).

Reads the GGUF with the `gguf` Python package (not rotquant's code), dequantizes every
tensor to float32 (gguf.quants.dequantize), and writes what a Hugging Face LLaMA
checkpoint holds:

  config.json             LlamaConfig keys from the GGUF metadata
  model*.safetensors      HF tensor names (model.layers.N.self_attn.q_proj.weight, ...),
                          written with the `safetensors` package; --shards N > 1 splits
                          them over N files with model.safetensors.index.json
  tokenizer.json          built with the `tokenizers` package: byte-level BPE from the
                          GGUF's tokens and merges, pre-tokenizer Digits(individual) +
                          ByteLevel (tokenizer.ggml.pre "smollm") or ByteLevel ("gpt-2"),
                          CONTROL tokens as special added tokens
  tokenizer_config.json   bos/eos/unk/pad tokens, add_bos_token, chat_template

LLaMA: q_proj/k_proj rows are put back in Hugging Face's order: llama.cpp's converter
permutes HF rows with w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2) (d = head_dim); its
inverse is w.reshape(n_head, d/2, 2, cols).swapaxes(1, 2).
Gemma-3 (config model_type "gemma3_text"): no permutation; llama.cpp's converter stores
every norm scale as 1 + w, so w = stored - 1; the tokenizer is SentencePiece-style BPE
(byte fallback, spaces as U+2581), its merges made from the GGUF's scores: every split of
a NORMAL piece into two pieces of the vocabulary, in the order of the piece's score
(highest first), as Hugging Face's SentencePiece converter does.

--ids FILE TEXT: also write the ids of TEXT as tokenized by the `tokenizers` package
(no special tokens added), one per line, an oracle independent of rotquant.

The output directory gets a stamp file last (.rq_stamp: a hash of this script, the GGUF's
size and time, and the arguments); when it matches, nothing is redone (tests call this
on every run).
"""
import argparse
import hashlib
import json
import os

import numpy as np
import gguf
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def unpermute(w, n_head):
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--ids", nargs=2, metavar=("FILE", "TEXT"))
    a = ap.parse_args()
    st = os.stat(a.gguf)
    digest = hashlib.sha256(open(__file__, "rb").read())
    digest.update(repr((st.st_size, st.st_mtime_ns, a.shards, a.dtype, a.ids)).encode())
    stamp_key = digest.hexdigest()
    stamp_path = os.path.join(a.out, ".rq_stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp_key and \
            (not a.ids or os.path.exists(a.ids[0])):
        print(f"{a.out}: up to date")
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    r = gguf.GGUFReader(a.gguf)
    arch = field(r, "general.architecture")
    assert arch in ("llama", "gemma3"), "LLaMA or Gemma-3 GGUF expected"
    gemma = arch == "gemma3"
    n_layer = int(field(r, arch + ".block_count"))
    n_head = int(field(r, arch + ".attention.head_count"))
    n_head_kv = int(field(r, arch + ".attention.head_count_kv") or n_head)
    n_embd = int(field(r, arch + ".embedding_length"))
    tensors = {t.name: t for t in r.tensors}
    tied = "output.weight" not in tensors

    def get(name):
        t = tensors[name]
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(s) for s in reversed(t.shape)] if len(t.shape) > 1 else [int(t.shape[0])]
        return x.reshape(shape)

    def norm(name):  # Gemma's GGUF holds 1 + w
        x = get(name)
        return x - np.float32(1) if gemma else x

    out = {"model.embed_tokens.weight": get("token_embd.weight"), "model.norm.weight": norm("output_norm.weight")}
    if not tied:
        out["lm_head.weight"] = get("output.weight")
    if gemma:
        names = [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"),
                 ("post_attention_norm", "post_attention_layernorm"), ("ffn_norm", "pre_feedforward_layernorm"),
                 ("post_ffw_norm", "post_feedforward_layernorm"), ("ffn_gate", "mlp.gate_proj"),
                 ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]
    else:
        names = [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("ffn_norm", "post_attention_layernorm"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                 ("ffn_down", "mlp.down_proj")]
    for l in range(n_layer):
        for g, h in names:
            if g.endswith("norm"):
                x = norm(f"blk.{l}.{g}.weight")
            else:
                x = get(f"blk.{l}.{g}.weight")
            if g == "attn_q" and not gemma:
                x = unpermute(x, n_head)
            elif g == "attn_k" and not gemma:
                x = unpermute(x, n_head_kv)
            out[f"model.layers.{l}.{h}.weight"] = x
    out = {k: np.ascontiguousarray(v.astype(a.dtype)) for k, v in out.items()}

    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(a.out, f))
    keys = list(out)
    if a.shards <= 1:
        save_file(out, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        per = (len(keys) + a.shards - 1) // a.shards
        for s in range(a.shards):
            fname = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            part = {k: out[k] for k in keys[s * per:(s + 1) * per]}
            save_file(part, os.path.join(a.out, fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in part})
        total = sum(v.nbytes for v in out.values())
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    head_dim = n_embd // n_head
    kl = field(r, arch + ".attention.key_length")
    head_dim = int(kl) if kl is not None else head_dim
    config = {
        "hidden_size": n_embd, "intermediate_size": int(field(r, arch + ".feed_forward_length")),
        "num_hidden_layers": n_layer, "num_attention_heads": n_head, "num_key_value_heads": n_head_kv,
        "head_dim": head_dim,
        "rms_norm_eps": float(np.float32(field(r, arch + ".attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(np.float32(field(r, arch + ".rope.freq_base") or 10000.0)),
        "max_position_embeddings": int(field(r, arch + ".context_length") or 2048),
        "vocab_size": int(field(r, arch + ".vocab_size") or len(field(r, "tokenizer.ggml.tokens"))),
        "tie_word_embeddings": tied, "rope_scaling": None, "attention_bias": False,
        "torch_dtype": a.dtype,
    }
    if gemma:
        window = int(field(r, "gemma3.attention.sliding_window") or 0)
        config.update({
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": head_dim,
            "sliding_window": window, "rope_local_base_freq": 10000.0,
            "layer_types": ["full_attention" if l % 6 == 5 else "sliding_attention" for l in range(n_layer)],
            "final_logit_softcapping": None, "attn_logit_softcapping": None,
        })
    else:
        config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                       "mlp_bias": False})
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    # tokenizer
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    if field(r, "tokenizer.ggml.model") == "gpt2":
        merges = [tuple(m.split(" ")) for m in field(r, "tokenizer.ggml.merges")]
        tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        pre = field(r, "tokenizer.ggml.pre")
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if pre == "smollm":
            tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        else:
            tk.pre_tokenizer = byte_level
        tk.decoder = decoders.ByteLevel()
    else:
        assert field(r, "tokenizer.ggml.model") == "llama", "BPE or SentencePiece expected"
        scores = field(r, "tokenizer.ggml.scores")
        order = sorted((i for i in range(len(tokens)) if types[i] == 1), key=lambda i: (-scores[i], i))
        merges = []
        for i in order:
            piece = tokens[i]
            for k in range(1, len(piece)):
                left, right = piece[:k], piece[k:]
                if left in vocab and right in vocab:
                    merges.append((left, right))
        tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=tokens[int(field(r, "tokenizer.ggml.unknown_token_id"))],
                                  fuse_unk=True, byte_fallback=True))
        space = [normalizers.Replace(" ", "\u2581")]
        if field(r, "tokenizer.ggml.add_space_prefix"):
            space = [normalizers.Prepend("\u2581")] + space
        tk.normalizer = space[0] if len(space) == 1 else normalizers.Sequence(space)
        tk.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    added = [AddedToken(tokens[i], special=True, normalized=False) for i in range(len(tokens)) if types[i] == 3]
    added += [AddedToken(tokens[i], special=False, normalized=False) for i in range(len(tokens)) if types[i] == 4]
    tk.add_special_tokens([t for t in added if t.special])
    tk.add_tokens([t for t in added if not t.special])
    tk.save(os.path.join(a.out, "tokenizer.json"))
    tcfg = {"tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False}
    for key, gk in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id"),
                    ("pad_token", "padding_token_id")]:
        v = field(r, "tokenizer.ggml." + gk)
        if v is not None:
            tcfg[key] = tokens[int(v)]
    ab = field(r, "tokenizer.ggml.add_bos_token")
    if ab is not None:
        tcfg["add_bos_token"] = bool(ab)
    ct = field(r, "tokenizer.chat_template")
    if ct is not None:
        tcfg["chat_template"] = ct
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2)

    if a.ids:
        with open(a.ids[1], "rb") as f:
            text = f.read().decode("utf-8")
        ids = tk.encode(text, add_special_tokens=False).ids
        with open(a.ids[0], "w") as f:
            f.write("\n".join(str(i) for i in ids) + "\n")
    with open(stamp_path, "w") as f:
        f.write(stamp_key)


if __name__ == "__main__":
    main()

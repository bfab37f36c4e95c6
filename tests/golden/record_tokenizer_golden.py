#!/usr/bin/env python3
"""Record llama.cpp's tokenizations used by tests/test_tokenizer.c (see README.md).

    python3 tests/golden/record_tokenizer_golden.py LLAMA_TOKENIZE SMOLLM2.gguf GEMMA3.gguf WIKI.raw

LLAMA_TOKENIZE is llama.cpp's llama-tokenize binary. Writes, next to this script:
  tokenizer_extra.txt            tricky inputs, both models, parse_special off and on
  gemma3_wiki_tokens_sample.txt  Gemma 3 on the wiki text (with BOS): count + 400 ids
and checks that tokenizer_small_strings*.txt and wiki_tokens_sample.txt (recorded
earlier for SmolLM2) are what this llama-tokenize gives.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

INPUTS = [
    b"Hello world", b"  multiple   spaces\n\nand newlines", b"\t\t x \t", b"trailing \n", b" \n \n", b"a\r\n\r\nb",
    b"DON'T it's I'M we'LL they're 've 'd", b"x''s", b"12345 6.78 9,000", "٣٤ ①② ½ ⅷ".encode(),
    "naïve café 日本語 Привет мир".encode(), "e\u0301 a\u0308".encode(), "🙂👍🏽🇫🇷".encode(),
    "a\u00a0b\u2003c\u3000d\u0085e\u180ef\u1680g\u2028h".encode(),
    "\U00011F04\U00011F05 \U00031350 \U00011F50\U00011F51 \U0001E4F0".encode(),
    "\u0378\u0379 \ue000 \U0010FFFF \ufeff \u00ad".encode(),
    b"\x80", b"\xff\xfe", b"ab\xc3", b"\xc0\x80x", b"\xed\xa0\x80\xed\xbf\xbf", b"\xe2\x82 \xe2\x82\xac", b"\xf0\x80\x80\x80!",
    b"\xf0\x9f\x99", b"\x00\x01\x1f\x7f", b"<|im_start|>user\nHi<|im_end|>\n", b"<|im_end|><|endoftext|><reponame>",
    b"<|im_<|im_end|>|>", b"<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", b"<bos><eos><unused7><mask>[multimodal]",
    b"\n\n\n\n   \t\t\t    x", "▁x ▁▁y Ġz".encode(), b"<0x41><0x0A>", b"a</s>b <s> </s>\n<pad><unk>", "\u2581\u2581\u2581".encode(),
    b"@-@ = = Heading = =\n", b"",
]


def tokenize(tool, model, data, parse_special, bos):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
        path = f.name
    args = [tool, "-m", model, "-f", path, "--ids", "--log-disable", "--no-escape"]
    if not bos:
        args.append("--no-bos")
    if not parse_special:
        args.append("--no-parse-special")
    out = subprocess.run(args, capture_output=True, check=True).stdout.decode().strip()
    os.unlink(path)
    last = out.splitlines()[-1] if out else "[]"
    return [int(x) for x in last.strip("[]").replace(",", " ").split()]


def sample(ids):
    n = len(ids)
    idx = list(range(100)) + [100 + (n - 200) * k // 201 for k in range(1, 201)] + list(range(n - 100, n))
    assert len(set(idx)) == 400
    return [f"{n}"] + [f"{i} {ids[i]}" for i in idx]


def main():
    tool, smollm, gemma, wiki = sys.argv[1:5]
    with open(os.path.join(HERE, "tokenizer_extra.txt"), "w") as out:
        out.write("# model\tparse_special\tadd_bos\tinput (hex)\tids (llama.cpp)\n")
        for name, model in (("smollm2", smollm), ("gemma3", gemma)):
            for ps in (0, 1):
                for s in INPUTS:
                    ids = tokenize(tool, model, s, ps, False)
                    out.write(f"{name}\t{ps}\t0\t{s.hex()}\t{' '.join(map(str, ids))}\n")
    text = open(wiki, "rb").read()
    with open(os.path.join(HERE, "gemma3_wiki_tokens_sample.txt"), "w") as out:
        out.write("\n".join(sample(tokenize(tool, gemma, text, True, True))) + "\n")
    # check the files recorded earlier for SmolLM2
    ids = tokenize(tool, smollm, text, True, False)
    ref = open(os.path.join(HERE, "wiki_tokens_sample.txt")).read().split("\n")
    assert int(ref[0]) == len(ids), "wiki count differs"
    for line in ref[1:]:
        if line:
            i, t = map(int, line.split())
            assert ids[i] == t, f"wiki token {i} differs"
    for fn, ps in (("tokenizer_small_strings.txt", 0), ("tokenizer_small_strings_parse_special.txt", 1)):
        for line in open(os.path.join(HERE, fn), encoding="utf-8"):
            if line.startswith('"'):
                q, want = line.rstrip("\n").split("\t")
                got = tokenize(tool, smollm, json.loads(q).encode(), ps, False)
                assert got == [int(x) for x in want.split()], f"{fn}: {q}"
    print("recorded; earlier SmolLM2 files confirmed")


if __name__ == "__main__":
    main()

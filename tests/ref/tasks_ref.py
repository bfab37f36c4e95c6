#!/usr/bin/env python3
"""Independent check of `rotquant eval` on the first items of each task.

Input: the --dump file of `rotquant eval` (one line per request: task, item, request,
log-likelihood, greedy flag, context token ids, continuation token ids).

1. Prompts. From the task files, with Python's json module and the prompt templates of
   lm-evaluation-harness written out here (not our C code), it builds each request's
   (context, continuation) strings, applies the harness's _encode_pair whitespace move
   (context.rstrip(); the stripped tail goes to the continuation), and checks that our
   token ids decode to exactly those strings: decode(context ids) == context and
   decode(context ids + continuation ids) == context + continuation. Decoding maps each
   token string of the GGUF vocabulary through GPT-2's byte<->unicode table (read here
   with the `gguf` package).
2. Log-likelihoods. With the numpy reference forward tests/ref/llama_ref.py (float64, its
   own KV cache), for each item the context is run once, then each continuation from a
   copy of the context's cache; ll = sum of log_softmax(logits)[next token] over the
   continuation, greedy = every continuation token is the argmax. Every ll must equal ours
   within --tol (absolute); a greedy flag may differ only where the reference's top two
   logits are within --tie of each other.
3. Metrics (with --json, the results file of the same run). From OUR log-likelihoods and
   greedy flags, with the gold answers and acc_norm lengths taken from the task files
   here, the harness's metrics (acc = argmax(ll) == gold, first maximum; acc_norm =
   argmax(ll / len(choice)); LAMBADA acc = greedy, perplexity = exp(-mean ll); stderr
   = sqrt(p (1 - p) / (n - 1))) must equal the reported ones to 1e-6. The same metrics
   from the reference's log-likelihoods are printed beside them.

Exit status 0 when everything agrees, 1 otherwise. Prints one summary line per task.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import gguf  # noqa: F401
    from llama_ref import Model, field_value
except ImportError:  # pragma: no cover
    sys.stderr.write("tasks_ref.py: needs numpy and gguf\n")
    sys.exit(77)


# ---- prompts, as lm-evaluation-harness v0.4 builds them ------------------------------------

def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def task_requests(task, data, n):
    """[(gold, [(context, continuation), ...])] for the first n items."""
    out = []
    if task in ("arc_easy", "arc_challenge"):
        name = "arc_easy/ARC-Easy-Test.jsonl" if task == "arc_easy" else "arc_challenge/ARC-Challenge-Test.jsonl"
        for d in read_jsonl(os.path.join(data, name))[:n]:
            q = d["question"]
            ctx = "Question: " + q["stem"] + "\nAnswer:"
            labels = [c["label"] for c in q["choices"]]
            out.append((labels.index(d["answerKey"]), [(ctx, " " + c["text"]) for c in q["choices"]]))
    elif task == "piqa":
        docs = read_jsonl(os.path.join(data, "piqa/valid.jsonl"))[:n]
        labels = read_lines(os.path.join(data, "piqa/valid-labels.lst"))[:n]
        for d, lab in zip(docs, labels):
            ctx = "Question: " + d["goal"] + "\nAnswer:"
            out.append((int(lab), [(ctx, " " + d["sol1"]), (ctx, " " + d["sol2"])]))
    elif task == "winogrande":
        for d in read_jsonl(os.path.join(data, "winogrande/dev.jsonl"))[:n]:
            i = d["sentence"].index("_")
            target = d["sentence"][i + 1:].strip()
            reqs = [(d["sentence"][:i] + opt, " " + target) for opt in (d["option1"], d["option2"])]
            out.append(({"1": 0, "2": 1}[d["answer"]], reqs))
    elif task == "lambada":
        for d in read_jsonl(os.path.join(data, "lambada/lambada_test.jsonl"))[:n]:
            words = d["text"].split(" ")
            out.append((0, [(" ".join(words[:-1]), " " + words[-1])]))
    elif task == "boolq":
        for d in read_jsonl(os.path.join(data, "boolq/dev.jsonl"))[:n]:
            ctx = d["passage"] + "\nQuestion: " + d["question"] + "?\nAnswer:"
            out.append((1 if d["answer"] else 0, [(ctx, " no"), (ctx, " yes")]))
    else:
        raise SystemExit(f"tasks_ref.py: unknown task {task}")
    return out


def encode_pair_strings(context, continuation):
    """The strings _encode_pair tokenizes: trailing whitespace moved to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, continuation


def byte_decoder():
    """Inverse of GPT-2's bytes_to_unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Decoder:
    def __init__(self, reader):
        self.tokens = field_value(reader, "tokenizer.ggml.tokens")
        self.types = field_value(reader, "tokenizer.ggml.token_type")
        self.bd = byte_decoder()

    def __call__(self, ids):
        out = bytearray()
        for t in ids:
            if self.types[t] != 1:  # NORMAL only: no control/special tokens in prompts
                raise ValueError(f"token {t} ({self.tokens[t]!r}) is not a normal token")
            out += bytes(self.bd[ch] for ch in self.tokens[t])
        return out.decode("utf-8", errors="strict")


# ---- log-likelihoods with the numpy forward --------------------------------------------------

def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - (np.log(np.exp(z - m).sum(axis=-1, keepdims=True)) + m)


def score_item(model, reqs):
    """reqs: [(ctx_ids, cont_ids)] -> [(ll, greedy, min top-2 gap where greedy is decided)]."""
    out = []
    cache_by_ctx = {}
    for ctx, cont in reqs:
        key = tuple(ctx)
        if key not in cache_by_ctx:
            cache = []
            last = model.forward(ctx, last_only=True, cache=cache)[-1]
            cache_by_ctx[key] = (cache, last)
        cache, last = cache_by_ctx[key]
        if not cont:
            out.append((0.0, True, np.inf))
            continue
        rows = [last]
        if len(cont) > 1:
            c2 = list(cache)  # forward replaces the per-layer entries, never mutates them
            rows += list(model.forward(cont[:-1], cache=c2))
        z = np.stack(rows)  # [len(cont), n_vocab]; row t predicts cont[t]
        lp = log_softmax(z)
        ll = float(sum(lp[t, cont[t]] for t in range(len(cont))))
        greedy = all(int(np.argmax(z[t])) == cont[t] for t in range(len(cont)))
        srt = np.sort(z, axis=-1)
        gap = float((srt[:, -1] - srt[:, -2]).min())
        out.append((ll, greedy, gap))
    return out


def metrics(task, items):
    """The harness's metrics from [(gold, norm_lens, lls, greedy flags)]."""
    n = len(items)
    se = lambda p: (p * (1 - p) / (n - 1)) ** 0.5 if n > 1 else 0.0
    if task == "lambada":
        acc = sum(g[0] for _, _, _, g in items) / n
        return {"acc": acc, "acc_stderr": se(acc), "perplexity": float(np.exp(-np.mean([ll[0] for _, _, ll, _ in items])))}
    acc = sum(int(np.argmax(ll)) == gold for gold, _, ll, _ in items) / n
    out = {"acc": acc, "acc_stderr": se(acc)}
    if task in ("arc_easy", "arc_challenge", "piqa"):
        accn = sum(int(np.argmax(np.array(ll) / np.array(nl, dtype=float))) == gold for gold, nl, ll, _ in items) / n
        out.update({"acc_norm": accn, "acc_norm_stderr": se(accn)})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("dump")
    ap.add_argument("--data", default="../shared/data/tasks")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--tie", type=float, default=1e-3)
    ap.add_argument("--json", help="results file of the same run (checks the metrics)")
    a = ap.parse_args()

    ours = {}  # (task, item) -> {req: (ll, greedy, ctx, cont)}
    with open(a.dump) as f:
        for line in f:
            task, item, req, ll, greedy, ctx, cont = line.rstrip("\n").split("\t")
            ours.setdefault((task, int(item)), {})[int(req)] = (
                float(ll), greedy == "1", [int(t) for t in ctx.split()], [int(t) for t in cont.split()])
    if not ours:
        raise SystemExit("tasks_ref.py: empty dump")

    model = Model(a.model, np.float64)
    dec = Decoder(gguf.GGUFReader(a.model))
    tasks = list(dict.fromkeys(t for t, _ in ours))
    reported = json.load(open(a.json))["tasks"] if a.json else {}
    fail = 0
    for task in tasks:
        n = 1 + max(i for t, i in ours if t == task)
        expect = task_requests(task, a.data, n)
        worst, n_req, n_prompt_bad, n_greedy_bad = 0.0, 0, 0, 0
        per_item_ours, per_item_ref = [], []
        for item in range(n):
            mine = ours.get((task, item))
            gold, reqs = expect[item]
            if mine is None or sorted(mine) != list(range(len(reqs))):
                print(f"FAIL {task} item {item}: requests {sorted(mine or [])}, expected {len(reqs)}")
                fail = 1
                continue
            for k, (context, continuation) in enumerate(reqs):
                ctx_ids, cont_ids = mine[k][2], mine[k][3]
                c, w = encode_pair_strings(context, continuation)
                try:
                    got_c, got_w = dec(ctx_ids), dec(ctx_ids + cont_ids)
                except (ValueError, UnicodeDecodeError) as e:
                    got_c, got_w = f"<{e}>", ""
                if got_c != c or got_w != c + w:
                    if n_prompt_bad < 3:
                        print(f"FAIL {task} item {item} request {k}: tokens decode to {got_c!r} + ..., "
                              f"expected context {c!r} and continuation {w!r}")
                    n_prompt_bad += 1
            scored = score_item(model, [(mine[k][2], mine[k][3]) for k in range(len(reqs))])
            norm = [len(w[1:]) if task != "winogrande" else len(c) for c, w in reqs]
            per_item_ours.append((gold, norm, [mine[k][0] for k in range(len(reqs))], [mine[k][1] for k in range(len(reqs))]))
            per_item_ref.append((gold, norm, [s_[0] for s_ in scored], [s_[1] for s_ in scored]))
            for k, (ll, greedy, gap) in enumerate(scored):
                our_ll, our_greedy = mine[k][0], mine[k][1]
                d = abs(ll - our_ll)
                worst = max(worst, d)
                n_req += 1
                if d > a.tol:
                    print(f"FAIL {task} item {item} request {k}: ll {our_ll:.6f}, reference {ll:.6f} (|diff| {d:.2e})")
                    fail = 1
                if greedy != our_greedy and gap > a.tie:
                    print(f"FAIL {task} item {item} request {k}: greedy {our_greedy}, reference {greedy} "
                          f"(top-2 gap {gap:.2e})")
                    n_greedy_bad += 1
        fail |= n_prompt_bad > 0 or n_greedy_bad > 0
        status = "ok  " if not (n_prompt_bad or n_greedy_bad or worst > a.tol) else "FAIL"
        print(f"{status} {task}: {n} items, {n_req} requests, max |ll diff| {worst:.2e} (tol {a.tol:g}), "
              f"prompt mismatches {n_prompt_bad}, greedy mismatches {n_greedy_bad}")
        if a.json:
            mo, mr = metrics(task, per_item_ours), metrics(task, per_item_ref)
            rep = reported.get(task)
            bad = rep is None or any(not abs(rep.get(k, float("nan")) - v) <= 1e-6 for k, v in mo.items())
            fail |= bad
            show = lambda m: ", ".join(f"{k} {v:.4f}" for k, v in m.items())
            print(f"{'FAIL' if bad else 'ok  '} {task} metrics: reported {show({k: rep.get(k, float('nan')) for k in mo}) if rep else None}\n"
                  f"     from our ll here: {show(mo)}\n     from reference ll: {show(mr)}")
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# CLI commands of the model: `ppl`, `run`, `logits`. Bad arguments and inputs give
# "rotquant: error: ..." and a non-zero exit; with the default model present, a short
# perplexity run and a greedy generation work (their numbers are checked elsewhere:
# tests/test_eval.c, tests/sh_reference.sh).
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"

expect_error "-m MODEL is required" "$RQ_CLI" ppl -f x.txt
expect_error "exactly one of -f TEXT and --tokens-file" "$RQ_CLI" ppl -m "$MODEL"
expect_error "'banana' is not llamacpp or full" "$RQ_CLI" ppl -m "$MODEL" -f x --protocol banana
expect_error "--ctx: '3' is not an integer" "$RQ_CLI" ppl -m "$MODEL" -f x --ctx 3
expect_error "--chunks: 'x' is not an integer" "$RQ_CLI" ppl -m "$MODEL" -f x --chunks x
expect_error "unknown argument '--bogus'" "$RQ_CLI" ppl --bogus
expect_error "exactly one of -p PROMPT and -f FILE" "$RQ_CLI" run -m "$MODEL"
expect_error "--temp: '-1' is not a number" "$RQ_CLI" run -m "$MODEL" -p hi --temp -1
expect_error "--top-p: '1.5' is not a number" "$RQ_CLI" run -m "$MODEL" -p hi --top-p 1.5
expect_error "--system needs --chat" "$RQ_CLI" run -m "$MODEL" -p hi --system x
expect_error "-n: 'many'" "$RQ_CLI" run -m "$MODEL" -p hi -n many
expect_error "'1,x' is not a token id\|'x' is not a token id" "$RQ_CLI" logits -m "$MODEL" --ids 1,x
expect_error "cannot open\|No such file" "$RQ_CLI" ppl -m "$TMP/missing.gguf" -f x
echo "not a gguf file at all" > "$TMP/bad.gguf"
expect_error "bad.gguf" "$RQ_CLI" run -m "$TMP/bad.gguf" -p hi

# every command takes --help (exit 0), and its help lists -q/--quiet and -t N
for c in info detok logits ppl eval quantize export run train qat rotlearn; do
    if "$RQ_CLI" "$c" --help > "$TMP/help" 2>&1 && grep -q -- "-q\b" "$TMP/help" && grep -q -- "-t N" "$TMP/help"; then
        echo "ok   $c --help lists -q and -t N"
    else
        echo "FAIL: $c --help: $(head -c 300 "$TMP/help")"; fail=1
    fi
done
expect_error "-t: 'x' is not an integer" "$RQ_CLI" info -t x models/none.gguf

# OpenBLAS kernel choice (model/blas.h): a pin in the environment is kept, RQ_BLAS_CORE
# overrides it, and without either a CPU with AVX2 never runs OpenBLAS's pre-AVX2 kernels
blas() { env -u OPENBLAS_CORETYPE -u RQ_BLAS_CORE "$@" "$RQ_CLI" version | sed -n 's/.*OpenBLAS: \([A-Za-z0-9]*\).*/\1/p'; }
if [[ $(blas OPENBLAS_CORETYPE=Nehalem) != Nehalem ]]; then echo "FAIL: OPENBLAS_CORETYPE pin not kept"; fail=1; fi
if [[ $(blas OPENBLAS_CORETYPE=Nehalem RQ_BLAS_CORE=Haswell) != Haswell ]]; then echo "FAIL: RQ_BLAS_CORE ignored"; fail=1; fi
if grep -q avx2 /proc/cpuinfo; then
    core=$(blas)
    case ${core,,} in
        haswell|skylakex|cooperlake|sapphirerapids|zen) echo "ok   OpenBLAS kernels without a pin: $core" ;;
        *) echo "FAIL: OpenBLAS kernels '$core' on a CPU with AVX2"; fail=1 ;;
    esac
fi

if [[ -f "$MODEL" ]]; then
    expect_error "out of range" "$RQ_CLI" logits -m "$MODEL" --ids 1,49152
    echo "Just a few words." > "$TMP/short.txt"
    expect_error "needs at least 1024" "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/short.txt"
    expect_error "cannot open '$TMP/none.txt'" "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/none.txt"
    # a small run of each protocol on the first 1.5k tokens of the default data, if present
    DATA=../shared/data/wikitext-2-raw/wiki.test.raw
    [[ -f $DATA ]] || DATA=/work/shared/data/wikitext-2-raw/wiki.test.raw
    if [[ -f $DATA ]]; then
        head -c 8000 "$DATA" > "$TMP/wiki.txt"
        if "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/wiki.txt" --ctx 128 --chunks 3 --quiet > "$TMP/ppl.txt" &&
            grep -q "^PPL = [0-9.]* +/- [0-9.]*$" "$TMP/ppl.txt" && grep -q "3 chunks, 189 tokens scored" "$TMP/ppl.txt"; then
            echo "ok   ppl llamacpp: $(grep PPL "$TMP/ppl.txt")"
        else
            echo "FAIL: ppl llamacpp: $(cat "$TMP/ppl.txt")"; fail=1
        fi
        if "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/wiki.txt" --protocol full --ctx 128 --chunks 2 --quiet > "$TMP/ppl.txt" &&
            grep -q "2 chunks, 254 tokens scored" "$TMP/ppl.txt"; then
            echo "ok   ppl full: $(grep PPL "$TMP/ppl.txt")"
        else
            echo "FAIL: ppl full: $(cat "$TMP/ppl.txt")"; fail=1
        fi
    fi
    # greedy run: deterministic, and the same text twice; the timing lines go to stderr
    if "$RQ_CLI" run -m "$MODEL" -p "Once upon a time, there was a little" -n 12 --temp 0 > "$TMP/a.txt" 2> "$TMP/a.err" &&
        "$RQ_CLI" run -m "$MODEL" -p "Once upon a time, there was a little" -n 12 --temp 0 > "$TMP/b.txt" 2>/dev/null &&
        cmp -s "$TMP/a.txt" "$TMP/b.txt" && grep -q "girl" "$TMP/a.txt" && grep -q "tokens/s" "$TMP/a.err"; then
        echo "ok   run greedy: $(head -c 100 "$TMP/a.txt")"
    else
        echo "FAIL: run greedy: $(cat "$TMP/a.txt" "$TMP/a.err")"; fail=1
    fi
    # -q: the generated text alone, nothing on stderr
    if "$RQ_CLI" run -m "$MODEL" -p "Once upon a time, there was a little" -n 12 --temp 0 -q > "$TMP/q.txt" 2> "$TMP/q.err" &&
        cmp -s "$TMP/a.txt" "$TMP/q.txt" && [[ ! -s "$TMP/q.err" ]]; then
        echo "ok   run -q: same text, stderr empty"
    else
        echo "FAIL: run -q: $(head -c 300 "$TMP/q.err")"; fail=1
    fi
    # sampling with a seed is reproducible
    "$RQ_CLI" run -m "$MODEL" -p "The weather today" -n 12 --seed 7 > "$TMP/s1.txt" 2>/dev/null
    "$RQ_CLI" run -m "$MODEL" -p "The weather today" -n 12 --seed 7 > "$TMP/s2.txt" 2>/dev/null
    if cmp -s "$TMP/s1.txt" "$TMP/s2.txt" && [[ -s "$TMP/s1.txt" ]]; then echo "ok   run seeded sampling reproducible"
    else echo "FAIL: seeded sampling differs"; fail=1; fi
    # chat: the template is applied and generation stops at <|im_end|>
    if "$RQ_CLI" run -m "$MODEL" -p "What is the capital of France?" --chat -n 40 --temp 0 > "$TMP/c.txt" 2>/dev/null &&
        grep -q "Paris" "$TMP/c.txt"; then
        echo "ok   run --chat: $(head -c 100 "$TMP/c.txt")"
    else
        echo "FAIL: run --chat: $(cat "$TMP/c.txt")"; fail=1
    fi
else
    echo "(model $MODEL missing: only argument checks ran)"
fi
exit $fail

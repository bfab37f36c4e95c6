#!/usr/bin/env bash
# CLI of the W/A/KV configuration: `quantize` refuses unsupported combinations with a
# clear message before any long work; with the default model present, a W16A4KV4 file
# (float weights, 4-bit activations and KV cache, R3/R4) is written and `info`, `ppl` and
# `run` state its configuration; a W16 file with R1/R3/R4 and nothing quantized gives
# the float model's perplexity exactly (online rotations are invariant).
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"
check() { # check "label" command... (succeeds)
    local label=$1
    shift
    if "$@"; then echo "ok   $label"; else echo "FAIL: $label"; fail=1; fi
}

Q=("$RQ_CLI" quantize -m "$MODEL" -o "$TMP/x.gguf")
expect_error "--abits: 3 is not one of 4, 8, 16" "${Q[@]}" --abits 3
expect_error "--kvbits: 8 is not 4 or 16" "${Q[@]}" --kvbits 8
expect_error "--kv-group/--kvclip need --kvbits 4" "${Q[@]}" --kv-group 32
expect_error "--asym/--aclip need --abits 4 or 8" "${Q[@]}" --asym
expect_error "--fit-importance needs --method gptq" "${Q[@]}" --method rtn --fit-importance
expect_error "--fit: 'best' is not ls, clip or minmax" "${Q[@]}" --fit best
expect_error "--act-order needs --method gptq" "${Q[@]}" --method rtn --act-order

if [[ -f "$MODEL" ]]; then
    expect_error "R3: .*block" "${Q[@]}" --wbits 16 --kvbits 4 --rotate3 gsr --block3 48
    expect_error "KV group 12" "${Q[@]}" --wbits 16 --kvbits 4 --kv-group 12
    expect_error "orthogonal" "${Q[@]}" --wbits 16 --abits 4 --rotate orthogonal
    expect_error "R4 has size\|R4: " "${Q[@]}" --wbits 16 --abits 4 --rotate4 gsr --block4 1000
    [[ -f "$TMP/x.gguf" ]] && { echo "FAIL: a refused quantize wrote its output"; fail=1; }

    # GPTQ with importance-weighted group fits: recorded in the file
    "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/fi.gguf" --quantizer lut --rotate none --fit-importance --calib-n 2 \
        --calib-len 64 2> "$TMP/q.err" || { echo "FAIL: quantize --fit-importance: $(cat "$TMP/q.err")"; fail=1; }
    check "--fit-importance stated and recorded" grep -q "gptq lut act-order fit-importance" "$TMP/q.err"
    "$RQ_CLI" info "$TMP/fi.gguf" > "$TMP/fi.txt"
    check "info lists rotquant.fit_importance true" grep -q "rotquant.fit_importance *bool *true" "$TMP/fi.txt"
    rm -f "$TMP/fi.gguf"

    # the defaults: uniform groups fitted by least squares, weighted by H_ii; both recorded,
    # and switched off by --fit minmax --no-fit-importance
    "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/d.gguf" --calib-n 2 --calib-len 64 2> "$TMP/q.err" ||
        { echo "FAIL: quantize with the defaults: $(cat "$TMP/q.err")"; fail=1; }
    check "defaults stated" grep -q "W2 g64 gptq uniform act-order fit-importance" "$TMP/q.err"
    "$RQ_CLI" info --no-tensors "$TMP/d.gguf" > "$TMP/d.txt"
    check "defaults recorded: fit ls" grep -q "rotquant.weight_fit *str *\"ls\"" "$TMP/d.txt"
    check "defaults recorded: importance" grep -q "rotquant.fit_importance *bool *true" "$TMP/d.txt"
    check "defaults recorded: act-order" grep -q "rotquant.act_order *bool *true" "$TMP/d.txt"
    "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/d.gguf" --calib-n 2 --calib-len 64 --fit minmax --no-fit-importance --no-act-order \
        2> "$TMP/q.err" || { echo "FAIL: quantize --fit minmax: $(cat "$TMP/q.err")"; fail=1; }
    "$RQ_CLI" info --no-tensors "$TMP/d.gguf" > "$TMP/d.txt"
    check "--fit minmax recorded" grep -q "rotquant.weight_fit *str *\"minmax\"" "$TMP/d.txt"
    check "--no-fit-importance: not recorded" bash -c "! grep -q fit_importance '$TMP/d.txt'"
    check "--no-act-order recorded" grep -q "rotquant.act_order *bool *false" "$TMP/d.txt"
    rm -f "$TMP/d.gguf"

    "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/a4.gguf" --wbits 16 --abits 4 --aclip 0.9 --asym --kvbits 4 \
        --rotate hadamard 2> "$TMP/q.err" || { echo "FAIL: quantize W16A4KV4: $(cat "$TMP/q.err")"; fail=1; }
    "$RQ_CLI" info --no-tensors "$TMP/a4.gguf" > "$TMP/info.txt"
    check "info shows W16A4KV4" grep -q "rotquant W16A4KV4 (format 2): W16 (float linears), A4 asym clip 0.90, KV4 asym g64 clip 1.00, R3 hadamard(n=64, signs, seed=2), R4 hadamard(n=1536, signs, seed=3)" "$TMP/info.txt"
    "$RQ_CLI" run -m "$TMP/a4.gguf" -p "Once upon a time" -n 4 --temp 0 > "$TMP/run.txt" 2> "$TMP/run.err"
    check "run states the KV cache size" grep -q "KV cache 6480 bytes/token (float32: 46080)" "$TMP/run.err"
    DATA=../shared/data/wikitext-2-raw/wiki.test.raw
    [[ -f $DATA ]] || DATA=/work/shared/data/wikitext-2-raw/wiki.test.raw
    if [[ -f $DATA ]]; then
        head -c 8000 "$DATA" > "$TMP/wiki.txt"
        "$RQ_CLI" ppl -m "$TMP/a4.gguf" -f "$TMP/wiki.txt" --protocol full --ctx 128 --chunks 2 --quiet > "$TMP/ppl.txt"
        check "ppl states W16A4KV4" grep -q "protocol full, ctx 128, W16A4KV4: 2 chunks" "$TMP/ppl.txt"
        rm -f "$TMP/a4.gguf"
        "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/r.gguf" --wbits 16 --rotate gsr --rotate3 gsr --rotate4 gsr \
            --embd-type f32 2> "$TMP/q.err" || { echo "FAIL: quantize W16 rotated: $(cat "$TMP/q.err")"; fail=1; }
        "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/wiki.txt" --protocol full --ctx 128 --chunks 2 --quiet > "$TMP/p0.txt"
        "$RQ_CLI" ppl -m "$TMP/r.gguf" -f "$TMP/wiki.txt" --protocol full --ctx 128 --chunks 2 --quiet > "$TMP/p1.txt"
        a=$(grep "^PPL" "$TMP/p0.txt" | cut -d' ' -f3) b=$(grep "^PPL" "$TMP/p1.txt" | cut -d' ' -f3)
        check "W16 with R1/R3/R4 gsr: PPL $b = float $a" [ -n "$a" -a "$a" = "$b" ]
    fi
else
    echo "(model $MODEL missing: only argument checks ran)"
fi
exit $fail

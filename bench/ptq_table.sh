#!/usr/bin/env bash
# Regenerates the README's post-training quantization table (GSR and its baselines) on
# SmolLM2-135M: for each configuration, `rotquant quantize` then `rotquant ppl
# --protocol full --ctx 2048` on the shared WikiText-2 test file; results are appended
# to $OUT/results.tsv (an interrupted run resumes: finished rows are skipped) and the
# markdown table is printed by bench/ptq_table.py.
# Environment: CHUNKS (windows of 2048 tokens scored; 0 = the whole file; default 16),
#   CALIB_N x CALIB_LEN (self-generated calibration, default 16 x 512), T (threads),
#   OUT (default out/ptq), ONLY (a regex on row names, to run a subset).
set -euo pipefail
cd "$(dirname "$0")/.."
rq=build/rotquant
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
CHUNKS=${CHUNKS:-16}
CALIB_N=${CALIB_N:-16}
CALIB_LEN=${CALIB_LEN:-512}
T=${T:-$(nproc)}
out=${OUT:-out/ptq}
mkdir -p "$out"
res=$out/results.tsv
calib=$out/calib_${CALIB_N}x${CALIB_LEN}.ids
[ -f "$calib" ] || $rq quantize -m $model --calib-n "$CALIB_N" --calib-len "$CALIB_LEN" --seed 0 \
    --calib-save "$calib" -t "$T"

ppl() {
    local args=(-m "$1" -f "$wiki" --protocol full --ctx 2048 -t "$T")
    [ "$CHUNKS" = 0 ] || args+=(--chunks "$CHUNKS")
    $rq ppl "${args[@]}" 2>/dev/null | sed -n 's/^PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1\t\2/p'
}

# row NAME WBITS METHOD ROT SEED GROUP [extra quantize options]
row() {
    local name=$1 wbits=$2 method=$3 rot=$4 seed=$5 group=$6
    shift 6
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    grep -q "^$name	" "$res" 2>/dev/null && return 0
    local f=$out/$name.gguf t0 t1 p bpw
    t0=$(date +%s)
    $rq quantize -m $model -o "$f" --wbits "$wbits" --method "$method" --rotate "$rot" --seed "$seed" \
        --group "$group" --calib-ids "$calib" -t "$T" "$@" 2> "$out/$name.log"
    t1=$(date +%s)
    bpw=$(sed -n 's/.*, \([0-9.]*\) bits\/weight.*/\1/p' "$out/$name.log")
    p=$(ppl "$f")
    [[ " $* " == *" --quantizer lut "* ]] && method="lut-$method"
    [[ " $* " == *" --fit-importance "* ]] && method="$method-imp"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wbits" "$method" "$rot" "$seed" "$group" "$bpw" "$p" \
        "$((t1 - t0))" >> "$res"
    echo "$name: bpw $bpw, PPL $p, quantize $((t1 - t0)) s"
    rm -f "$f"
}

if ! grep -q "^float	" "$res" 2>/dev/null; then
    printf 'float\t16\t-\tnone\t0\t-\t-\t%s\t0\n' "$(ppl $model)" >> "$res"
fi
for wbits in 2 3; do
    for method in gptq rtn; do
        for rot in none walsh gh gsr; do row "w${wbits}_${method}_${rot}" $wbits $method $rot 0 64; done
        for seed in 1 2 3; do row "w${wbits}_${method}_hadamard_s$seed" $wbits $method hadamard $seed 64; done
    done
done
# non-uniform 2-bit (4 Lloyd-Max levels per group), with and without GPTQ's error feedback
for method in rtn gptq; do
    for rot in none gsr; do row "w2_lut-${method}_$rot" 2 $method $rot 0 64 --quantizer lut; done
done
# the same with GPTQ fitting each group's levels by Lloyd-Max weighted with the Hessian
# diagonal of the group's columns (--fit-importance)
for rot in none walsh gsr; do row "w2_lut-gptq-imp_$rot" 2 gptq $rot 0 64 --quantizer lut --fit-importance; done
for seed in 1 2 3; do row "w2_lut-gptq-imp_hadamard_s$seed" 2 gptq hadamard $seed 64 --quantizer lut --fit-importance; done
row w4_gptq_none 4 gptq none 0 64
row w4_gptq_gsr 4 gptq gsr 0 64
for g in 32 128; do
    # GSR's block follows the group where it divides the hidden size (576 = 9 x 64: g128 -> block 64)
    b=$g; [ $((576 % g)) = 0 ] || b=64
    row "w2_gptq_gsr_g$g" 2 gptq gsr 0 $g --block $b
    for seed in 1 2 3; do row "w2_gptq_hadamard_s${seed}_g$g" 2 gptq hadamard $seed $g; done
done
python3 bench/ptq_table.py "$res"

#!/usr/bin/env bash
# Regenerates the README's post-training quantization tables (GSR and its baselines) on
# SmolLM2-135M: for each configuration, `rotquant quantize` then `rotquant ppl
# --protocol full --ctx 2048` on the shared WikiText-2 test file. Results are appended to
# $OUT/results.tsv (an interrupted run resumes: finished rows are skipped; delete a row
# to rerun it) and the markdown tables are printed by bench/ptq_table.py.
#
# Every row uses quantize's defaults for the group fit unless its name says otherwise:
# uniform groups fitted by clip ratios refined by weighted least squares (--fit ls), and
# with GPTQ every group's fit weighted by the Hessian diagonal (--fit-importance; RTN has
# no Hessian). Rows named *_oldfit use the fit of sessions 1-3 (--fit minmax
# --no-fit-importance), rows named *_clipimp the clip grid alone (--fit clip).
#
# Row sets (SETS, space-separated; default "main"):
#   main    W2 g64 uniform GPTQ: none, Walsh, GH, GSR, Hadamard (SEEDS seeds); the old fit
#   rtn     the same rotations with RTN
#   lut     W2 g64 LUT (4 levels) GPTQ: the same rotations
#   groups  W2 GPTQ g32 and g128 (GSR, Hadamard seeds), GSR blocks != group (g64 b32, g64 b16, g32 b64)
#   w34     W3 and W4 g64 GPTQ and RTN: the same rotations
#   calib   the paper's calibration (128 x 2048) for the main W2 rows (GSR, Walsh, none; LUT GSR)
#   r2      R2 (head_dim 64, folded into v and o) on top of GSR: Hadamard and Walsh, uniform and LUT
#   gemma   for MODEL=models/gemma-3-270m-q4_k_m.gguf: W4 g64 GPTQ and W2 g64 LUT GPTQ with
#           none, Hadamard (seed 1), Walsh, GSR by route (b) (per-linear input rotations, the
#           default --r1-route auto on this model) and GSR by route (a) (--r1-route residual)
# Each row also keeps quantize's per-linear losses in $OUT/NAME.loss.tsv (--loss-report), for
# `bench/plot_results.py --loss-report ROT=FILE` (GPTQ loss per layer, rotation against rotation).
# Environment: MODEL (default SmolLM2-135M), CHUNKS (windows of 2048 tokens; 0 = the whole file; default 40),
#   CALIB_N x CALIB_LEN (self-generated calibration, default 16 x 512), SEEDS (Hadamard
#   seeds, default "1 2 3 4 5"), T (threads), OUT (default out/ptq), ONLY (a regex on row
#   names, to run a subset).
CHUNKS=${CHUNKS:-40}
source "$(dirname "$0")/common.sh"
CALIB_N=${CALIB_N:-16}
CALIB_LEN=${CALIB_LEN:-512}
SEEDS=${SEEDS:-"1 2 3 4 5"}
SETS=${SETS:-main}
out=${OUT:-out/ptq}
mkdir -p "$out"
res=$out/results.tsv

calib_file() { # N LEN -> path of the self-generated ids (made once, seed 0; the time in FILE.time)
    calib_ids "$1" "$2" "$out/calib_$1x$2.ids"
    echo "$out/calib_$1x$2.ids"
}
calib=$(calib_file "$CALIB_N" "$CALIB_LEN")

ppl() { # FILE -> "PPL<TAB>SE<TAB>seconds"
    local t0=$(date +%s) p
    p=$(ppl_full "$1")
    printf '%s\t%s' "$p" "$(($(date +%s) - t0))"
}

# row NAME WBITS METHOD ROT SEED GROUP [extra quantize options]
# results.tsv: name wbits method rot seed group bpw ppl se windows quantize_s ppl_s
row() {
    local name=$1 wbits=$2 method=$3 rot=$4 seed=$5 group=$6
    shift 6
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    grep -q "^$name	" "$res" 2>/dev/null && return 0
    local f=$out/$name.gguf t0 t1 p bpw ids=$calib label=$method
    [[ " $* " == *" --calib-ids "* ]] && ids=""
    t0=$(date +%s)
    $rq quantize -m $model -o "$f" --wbits "$wbits" --method "$method" --rotate "$rot" --seed "$seed" \
        --group "$group" ${ids:+--calib-ids "$ids"} --loss-report "$out/$name.loss.tsv" -t "$T" $(r2_default "$@") "$@" \
        2> "$out/$name.log"
    t1=$(date +%s)
    bpw=$(sed -n 's/.*, \([0-9.]*\) bits\/weight.*/\1/p' "$out/$name.log")
    p=$(ppl "$f")
    [[ " $* " == *" --quantizer lut "* ]] && label="lut-$label"
    [[ " $* " == *" --fit minmax "* ]] && label="$label-oldfit"
    [[ " $* " == *" --fit clip "* ]] && label="$label-clip"
    [[ " $* " == *" --block "* ]] && rot="$rot-b$(sed 's/.*--block \([0-9]*\).*/\1/' <<< " $* ")"
    [[ " $* " == *" --r1-route linear "* ]] && rot="$rot-linear"
    [[ " $* " == *" --r1-route residual "* ]] && rot="$rot-residual"
    [[ " $* " == *" --rotate2 "* ]] && rot="$rot+r2$(sed 's/.*--rotate2 \([a-z]*\).*/\1/' <<< " $* ")"
    [[ " $* " == *" --calib-ids "* ]] && label="$label-calib$(sed 's/.*calib_\([0-9x]*\)\.ids.*/\1/' <<< " $* ")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wbits" "$label" "$rot" "$seed" "$group" "$bpw" \
        "$(cut -f1-2 <<< "$p")" "$CHUNKS" "$((t1 - t0))	$(cut -f3 <<< "$p")" >> "$res"
    echo "$name: bpw $bpw, PPL $(cut -f1 <<< "$p"), quantize $((t1 - t0)) s, ppl $(cut -f3 <<< "$p") s"
    rm -f "$f"
}
rotations() { # PREFIX WBITS METHOD GROUP [extra]: none, walsh, gh, gsr, hadamard seeds
    local pre=$1 wbits=$2 method=$3 group=$4 rot seed
    shift 4
    for rot in none walsh gh gsr; do row "${pre}_$rot" "$wbits" "$method" "$rot" 0 "$group" "$@"; done
    for seed in $SEEDS; do row "${pre}_hadamard_s$seed" "$wbits" "$method" hadamard "$seed" "$group" "$@"; done
}

if ! grep -q "^float	" "$res" 2>/dev/null; then
    p=$(ppl $model)
    printf 'float\t16\t-\tnone\t0\t-\t-\t%s\t%s\t0\t%s\n' "$(cut -f1-2 <<< "$p")" "$CHUNKS" "$(cut -f3 <<< "$p")" >> "$res"
fi
for set in $SETS; do
    case $set in
        main)
            rotations w2_gptq 2 gptq 64
            for rot in none gsr; do row "w2_gptq_${rot}_oldfit" 2 gptq $rot 0 64 --fit minmax --no-fit-importance; done
            for rot in none gsr; do row "w2_gptq_${rot}_clipimp" 2 gptq $rot 0 64 --fit clip; done ;;
        rtn) rotations w2_rtn 2 rtn 64 ;;
        lut) rotations w2_lut_gptq 2 gptq 64 --quantizer lut ;;
        groups)
            for g in 32 128; do
                # GSR's block follows the group where it divides the hidden size (576 = 9 x 64: g128 -> block 64)
                b=$g; [ $((576 % g)) = 0 ] || b=64
                row "w2_gptq_gsr_g$g" 2 gptq gsr 0 $g --block $b
                for seed in $SEEDS; do row "w2_gptq_hadamard_s${seed}_g$g" 2 gptq hadamard $seed $g; done
            done
            row w2_gptq_gsr_g64_b32 2 gptq gsr 0 64 --block 32
            row w2_gptq_gsr_g64_b16 2 gptq gsr 0 64 --block 16
            row w2_gptq_gsr_g32_b64 2 gptq gsr 0 32 --block 64 ;;
        w34)
            for wb in 3 4; do
                rotations "w${wb}_gptq" $wb gptq 64
                rotations "w${wb}_rtn" $wb rtn 64
            done ;;
        calib)
            big=$(calib_file 128 2048)
            for rot in gsr walsh none; do row "w2_gptq_${rot}_calib128x2048" 2 gptq $rot 0 64 --calib-ids "$big"; done
            row w2_lut_gptq_gsr_calib128x2048 2 gptq gsr 0 64 --quantizer lut --calib-ids "$big" ;;
        r2)
            for r2 in hadamard walsh; do
                row "w2_gptq_gsr_r2$r2" 2 gptq gsr 0 64 --rotate2 $r2
                row "w2_lut_gptq_gsr_r2$r2" 2 gptq gsr 0 64 --quantizer lut --rotate2 $r2
            done ;;
        gemma)
            # most telling rows first: none and GSR by either route, then Walsh and Hadamard
            lut=(--quantizer lut)
            row g_w4_gptq_none 4 gptq none 0 64
            row g_w4_gptq_gsr 4 gptq gsr 0 64 --r1-route residual
            row g_w4_gptq_gsr_linear 4 gptq gsr 0 64 --r1-route linear
            row g_w2_lut_gptq_none 2 gptq none 0 64 "${lut[@]}"
            row g_w2_lut_gptq_gsr 2 gptq gsr 0 64 "${lut[@]}" --r1-route residual
            row g_w2_lut_gptq_gsr_linear 2 gptq gsr 0 64 "${lut[@]}" --r1-route linear
            for q in w4_gptq w2_lut_gptq; do
                wb=4 extra=()
                [ $q = w4_gptq ] || wb=2 extra=("${lut[@]}")
                row "g_${q}_walsh" $wb gptq walsh 0 64 "${extra[@]}"
                row "g_${q}_hadamard_s1" $wb gptq hadamard 1 64 "${extra[@]}"
            done ;;
        *) echo "ptq_table.sh: unknown set '$set'" >&2; exit 1 ;;
    esac
done
python3 bench/ptq_table.py "$res"

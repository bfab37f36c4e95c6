#!/usr/bin/env bash
# Zero-shot task table (README "Zero-shot tasks"): `rotquant eval` on the six tasks for the
# float SmolLM2-135M-Instruct and for quantized models made here with the settings of the
# PTQ and W/A/KV tables (GPTQ, group 64, R1 = the rotation named, block 64, calibration
# ids from bench/ptq_table.sh). Each model's results go to $OUT/NAME.json; the table is
# printed by bench/tasks_table.py. An interrupted run resumes (finished models are skipped).
# Environment: LIMIT (items per task for the quantized models; 0 = full splits, default 0),
#   FLOAT_LIMIT (the same for the float model, default 0), T (threads), OUT (default
#   out/tasks), CALIB (default out/ptq/calib_16x512.ids), ONLY (regex on model names).
source "$(dirname "$0")/common.sh"
LIMIT=${LIMIT:-0}
FLOAT_LIMIT=${FLOAT_LIMIT:-0}
out=${OUT:-out/tasks}
calib=${CALIB:-out/ptq/calib_16x512.ids}
mkdir -p "$out"

evaluate() { # NAME FILE LIMIT
    local name=$1 f=$2 limit=$3 args=()
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    [ -f "$out/$name.json" ] && return 0
    [ "$limit" = 0 ] || args+=(--limit "$limit")
    $rq eval -m "$f" --tasks all -t "$T" --json "$out/$name.json.tmp" "${args[@]}" > "$out/$name.txt" 2> "$out/$name.log"
    mv "$out/$name.json.tmp" "$out/$name.json"
    echo "$name: $(tail -1 "$out/$name.txt")"
}

# quantized NAME [quantize options]: quantize once (kept in $OUT), then evaluate
quantized() {
    local name=$1
    shift
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    [ -f "$out/$name.json" ] && return 0
    [ -f "$calib" ] || { echo "missing $calib (run bench/ptq_table.sh first, or set CALIB)"; exit 1; }
    local f=$out/$name.gguf
    [ -f "$f" ] || $rq quantize -m $model -o "$f" --method gptq --group 64 --calib-ids "$calib" -t "$T" $(r2_default "$@") "$@" \
        2> "$out/$name.quantize.log"
    evaluate "$name" "$f" "$LIMIT"
}

evaluate float $model "$FLOAT_LIMIT"
# the float model on the quantized rows' items too, when those are limited
[ "$LIMIT" = 0 ] || [ "$LIMIT" = "$FLOAT_LIMIT" ] || evaluate "float_limit$LIMIT" $model "$LIMIT"
quantized w2a16_gptq_none --wbits 2 --rotate none
quantized w2a16_gptq_hadamard_s1 --wbits 2 --rotate hadamard --seed 1
quantized w2a16_gptq_gsr --wbits 2 --rotate gsr
quantized w2a16_lut-gptq_gsr --wbits 2 --quantizer lut --rotate gsr
quantized w2a16_lut-gptq_none --wbits 2 --quantizer lut --rotate none
quantized w2a4kv4_gptq_gsr --wbits 2 --abits 4 --aclip 0.9 --kvbits 4 --rotate gsr
python3 bench/tasks_table.py "$out"

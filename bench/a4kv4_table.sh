#!/usr/bin/env bash
# W/A/KV quantization table (QuaRot-style 4-bit activations and 4-bit KV cache) on
# SmolLM2-135M: for each configuration `rotquant quantize` (GPTQ, group 64, activation
# clip 0.9, R3/R4 of the same kind as R1) then `rotquant ppl --protocol full --ctx 2048`
# on the shared WikiText-2 test file. Rows are appended to $OUT/results.tsv (an
# interrupted run resumes; finished rows are skipped).
# Environment: CHUNKS (default 16), CALIB (calibration ids, default out/ptq/calib_16x512.ids,
#   made by bench/ptq_table.sh), T (threads), OUT (default out/a4kv4), ONLY (regex on row
#   names), AQ (activation quantizer options, default "--aclip 0.9": symmetric), R2 (the R2
#   kind, default none, as the table was measured; quantize's own default is hadamard).
CHUNKS=${CHUNKS:-16}
source "$(dirname "$0")/common.sh"
out=${OUT:-out/a4kv4}
calib=${CALIB:-out/ptq/calib_16x512.ids}
AQ=${AQ:---aclip 0.9}
mkdir -p "$out"
res=$out/results.tsv
[ -f "$calib" ] || { echo "missing $calib (run bench/ptq_table.sh first, or set CALIB)"; exit 1; }

# row NAME WBITS ABITS KVBITS ROT [SEED]
row() {
    local name=$1 wbits=$2 abits=$3 kvbits=$4 rot=$5 seed=${6:-0} extra=()
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    grep -q "^$name	" "$res" 2>/dev/null && return 0
    [ "$abits" = 16 ] || extra+=($AQ)
    local f=$out/$name.gguf t0 t1 p
    t0=$(date +%s)
    $rq quantize -m $model -o "$f" --wbits "$wbits" --abits "$abits" --kvbits "$kvbits" --method gptq \
        --group 64 --rotate "$rot" --rotate3 "$rot" --rotate4 "$rot" --seed "$seed" --calib-ids "$calib" -t "$T" \
        "${extra[@]}" --rotate2 "${R2:-none}" 2> "$out/$name.log"
    t1=$(date +%s)
    p=$(ppl_full "$f")
    printf '%s\tW%sA%sKV%s\t%s\t%s\t%s\t%s\n' "$name" "$wbits" "$abits" "$kvbits" "$rot" "$p" "$((t1 - t0))" "$seed" \
        >> "$res"
    echo "$name: W${wbits}A${abits}KV${kvbits} $rot: PPL $p, quantize $((t1 - t0)) s"
    rm -f "$f"
}

if ! grep -q "^float	" "$res" 2>/dev/null; then
    printf 'float\tW16A16KV16\tnone\t%s\t0\n' "$(ppl_full $model)" >> "$res"
fi
# one configuration for every rotation: none, Walsh, GH, GSR (block 64), random Hadamard x 3 seeds
config() {
    local tag=$1
    shift
    for rot in none walsh gh gsr; do row "${tag}_$rot" "$@" $rot; done
    for seed in 1 2 3; do row "${tag}_hadamard_s$seed" "$@" hadamard $seed; done
}
config w16a16kv4 16 16 4
config w16a4kv4 16 4 4
config w4a4kv4 4 4 4
config w3a4kv4 3 4 4
config w2a4kv4 2 4 4
config w2a16kv4 2 16 4
python3 bench/a4kv4_table.py "$res" "$CHUNKS"

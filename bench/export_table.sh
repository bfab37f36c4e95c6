#!/usr/bin/env bash
# `rotquant export` against llama.cpp's own quantization of the same float weights (issue 18).
# For each TYPES × ROTATIONS an export (GPTQ onto llama.cpp's block encoding; calibration
# CALIB_N × CALIB_LEN self-generated token ids, generated once and shared), and, when
# LLAMA_CPP_BIN names a llama.cpp build (its bin directory: llama-quantize, llama-imatrix,
# llama-perplexity), llama.cpp's own quantization of the same float weights to each type
# (`llama-quantize --allow-requantize` from the source file, which is those float weights'
# own encoding), without and with an importance matrix (`llama-imatrix` on the detokenized
# calibration ids: self-generated text, never the evaluation file).
#
# Every file gets: its size, bits per weight on the block linears (from `rotquant info`),
# rotquant's perplexity (`rotquant ppl --protocol llamacpp --ctx 512 --chunks CHUNKS`) and
# llama.cpp's (`llama-perplexity -c 512 --chunks CHUNKS`); types in WHOLE_TYPES also
# llama.cpp's over the whole file. Our exports also get "f32 check": llama.cpp's perplexity
# of the export converted by llama.cpp itself to F32 (`llama-quantize --allow-requantize
# FILE F32`): llama.cpp decodes our encoding and computes in float as rotquant does, so it
# must equal rotquant's figure to about 4 digits; llama.cpp's own figure on the quantized
# file differs a little more because its CPU dot products quantize the activations (Q8_0 or
# Q8_K) first.
#
# Environment: MODEL (default the SmolLM2 Q4_1 file), TYPES (default "q4_0 iq4_nl q4_1
#   q4_k q6_k"), ROTATIONS (default "gsr none"; "R1,R2" names both, e.g. "none,gsr" for
#   post-norm models whose R1 cannot be folded), CALIB_N (16), CALIB_LEN (512), CHUNKS (16),
#   WHOLE_TYPES (default "q4_0 iq4_nl"; "" = none) and WHOLE_VARIANTS (the rows of those
#   types measured on the whole file too: default "gsr none,gsr imatrix", our GSR export
#   and llama.cpp's imatrix file; the float row always), T (threads, default nproc), OUT (default
#   out/export), LLAMA_CPP_BIN, EXPORT_ARGS (more `rotquant export` options for our rows, e.g.
#   "--hessian-shrink 0.5"; their variant is then named ROTATION+TAG, TAG default "x"). Finished rows are kept (an interrupted run resumes; delete
#   a row of results.tsv to redo it).
# Output: $OUT/results.tsv, the files and logs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
rq=build/rotquant
model=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
TYPES=${TYPES:-"q4_0 iq4_nl q4_1 q4_k q6_k"}
ROTATIONS=${ROTATIONS:-"gsr none"}
CALIB_N=${CALIB_N:-16}
CALIB_LEN=${CALIB_LEN:-512}
CHUNKS=${CHUNKS:-16}
WHOLE_TYPES=${WHOLE_TYPES-"q4_0 iq4_nl"}
WHOLE_VARIANTS=${WHOLE_VARIANTS:-"gsr none,gsr imatrix"}
T=${T:-$(nproc)}
OUT=${OUT:-out/export}
LB=${LLAMA_CPP_BIN:-}
mkdir -p "$OUT"
[[ -x $rq ]] || { echo "build first: $rq missing" >&2; exit 1; }
[[ -f $wiki ]] || { echo "missing $wiki" >&2; exit 1; }
[[ -f $model ]] || { echo "missing $model (scripts/fetch-model.sh)" >&2; exit 1; }
if [[ -n $LB ]]; then
    for b in llama-quantize llama-imatrix llama-perplexity; do
        [[ -x $LB/$b ]] || { echo "LLAMA_CPP_BIN: $LB/$b missing" >&2; exit 1; }
    done
fi
base=$(basename "$model" .gguf)
res=$OUT/results.tsv
[[ -s $res ]] || printf 'engine\ttype\tvariant\tbytes\tlinear_bpw\trotquant_ppl\tllamacpp_ppl\tf32_check_ppl\tllamacpp_whole_ppl\tquantize_s\n' > "$res"

ids=$OUT/${base}.calib_${CALIB_N}x${CALIB_LEN}.ids
if [[ ! -s $ids ]]; then
    t0=$(date +%s)
    "$rq" quantize -m "$model" --calib-n "$CALIB_N" --calib-len "$CALIB_LEN" --seed 0 --calib-save "$ids" -t "$T" 2> "$OUT/calib.log"
    echo "calibration ids: $ids ($(($(date +%s) - t0)) s)"
fi

# weights of the block linears in the source, for bits per weight
LIN_W=$("$rq" info "$model" | awk '/^  blk\.[0-9]+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.weight / { gsub(/[\[\],]/, " "); lin += $3 * $4 } END { print lin }')
linear_bpw() {
    "$rq" info "$1" | awk -v lw="$LIN_W" '/^  blk\.[0-9]+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.weight/ { lin += $NF } END { printf "%.3f", 8 * lin / lw }'
}
ppl_ours() { "$rq" ppl -m "$1" -f "$wiki" --protocol llamacpp --ctx 512 --chunks "$CHUNKS" -t "$T" -q | sed -n 's/^PPL = \([0-9.]*\).*/\1/p'; }
ppl_llama() { # FILE LOG [CHUNKS|whole]
    local args=(-m "$1" -f "$wiki" -c 512 -t "$T")
    [[ ${3:-$CHUNKS} = whole ]] || args+=(--chunks "${3:-$CHUNKS}")
    "$LB/llama-perplexity" "${args[@]}" > "$2" 2>&1 || { echo "llama-perplexity failed on $1 (see $2)" >&2; echo "-"; return; }
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$2"
}
has_row() { grep -q "^$1	$2	$3	" "$res"; }
row() { # ENGINE TYPE VARIANT FILE SECONDS [f32check]
    local engine=$1 type=$2 variant=$3 f=$4 secs=$5 ours theirs=- check=- whole=- tag=$OUT/$1.$2.$3
    ours=$(ppl_ours "$f")
    if [[ -n $LB ]]; then
        theirs=$(ppl_llama "$f" "$tag.ppl.log")
        if [[ ${6:-} = f32check ]]; then
            "$LB/llama-quantize" --allow-requantize "$f" "$tag.f32.gguf" F32 > "$tag.f32.log" 2>&1
            check=$(ppl_llama "$tag.f32.gguf" "$tag.f32.ppl.log")
            rm -f "$tag.f32.gguf"
        fi
        if [[ ( " $WHOLE_TYPES " == *" $type "* && " $WHOLE_VARIANTS " == *" $variant "* ) ||
              ( $type = f32 && -n ${WHOLE_TYPES// /} ) ]]; then whole=$(ppl_llama "$f" "$tag.whole.log" whole); fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$type" "$variant" "$(stat -c %s "$f")" \
        "$(linear_bpw "$f")" "$ours" "$theirs" "$check" "$whole" "$secs" | tee -a "$res"
}

# the float model (the source's weights as float): the reference row
if ! has_row float f32 -; then
    if [[ -n $LB ]]; then
        ff=$OUT/$base.f32.gguf
        "$LB/llama-quantize" --allow-requantize "$model" "$ff" F32 > "$OUT/float.f32.log" 2>&1
        row float f32 - "$ff" 0
        rm -f "$ff"
    fi
fi

# llama.cpp's importance matrix from the calibration text
if [[ -n $LB && ! -s $OUT/$base.imatrix.gguf ]]; then
    "$rq" detok -m "$model" --ids-file "$ids" > "$OUT/$base.calib.txt"
    "$LB/llama-imatrix" -m "$model" -f "$OUT/$base.calib.txt" -o "$OUT/$base.imatrix.gguf" -c "$CALIB_LEN" -t "$T" \
        > "$OUT/imatrix.log" 2>&1
fi

for type in $TYPES; do
    for rot in $ROTATIONS; do
        r1=${rot%%,*} r2=none
        [[ $rot == *,* ]] && r2=${rot#*,}
        variant=$rot
        [[ -z ${EXPORT_ARGS:-} ]] || variant=$rot+${TAG:-x}
        has_row rotquant "$type" "$variant" && continue
        f=$OUT/$base.$type.${variant/,/-}.gguf
        t0=$(date +%s)
        "$rq" export -m "$model" -o "$f" --type "$type" --rotate "$r1" --rotate2 "$r2" --calib-ids "$ids" -t "$T" \
            ${EXPORT_ARGS:-} 2> "$OUT/export.$type.${variant/,/-}.log"
        row rotquant "$type" "$variant" "$f" "$(($(date +%s) - t0))" f32check
    done
    if [[ -n $LB ]]; then
        up=${type^^}
        for v in plain imatrix; do
            has_row llama.cpp "$type" "$v" && continue
            f=$OUT/$base.llama.$type.$v.gguf extra=()
            [[ $v = imatrix ]] && extra=(--imatrix "$OUT/$base.imatrix.gguf")
            t0=$(date +%s)
            "$LB/llama-quantize" --allow-requantize "${extra[@]}" "$model" "$f" "$up" "$T" > "$OUT/llama.$type.$v.quantize.log" 2>&1
            row llama.cpp "$type" "$v" "$f" "$(($(date +%s) - t0))"
        done
    fi
done
column -t -s $'\t' "$res"

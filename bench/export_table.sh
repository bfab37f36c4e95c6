#!/usr/bin/env bash
# `rotquant export` against llama.cpp's own quantization on SmolLM2-135M: for each TYPES ×
# ROTATIONS an export (GPTQ, calibration CALIB_N × CALIB_LEN self-generated token ids,
# generated once and shared through --calib-save/--calib-ids), its size and bits per
# weight, and its perplexity by rotquant (`rotquant ppl --protocol llamacpp --ctx 512
# --chunks CHUNKS`) and, when LLAMA_CPP_BIN names a llama.cpp build (its bin directory,
# with llama-perplexity), by llama.cpp on the same file (`llama-perplexity -c 512
# --chunks CHUNKS`): the two must agree to about 3 digits.
#
# Environment: MODEL (default the SmolLM2 Q4_1 file), TYPES (default "q4_0 iq4_nl"),
# ROTATIONS (default "gsr none"), CALIB_N (16), CALIB_LEN (512), CHUNKS (16), T (threads,
# default nproc), OUT (default out/export), LLAMA_CPP_BIN.
# Output: $OUT/results.tsv (type, rotation, file bytes, rotquant PPL, llama.cpp PPL or -),
# the files and logs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
rq=build/rotquant
model=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
TYPES=${TYPES:-"q4_0 iq4_nl"}
ROTATIONS=${ROTATIONS:-"gsr none"}
CALIB_N=${CALIB_N:-16}
CALIB_LEN=${CALIB_LEN:-512}
CHUNKS=${CHUNKS:-16}
T=${T:-$(nproc)}
OUT=${OUT:-out/export}
mkdir -p "$OUT"
ids=$OUT/calib_${CALIB_N}x${CALIB_LEN}.ids
[[ -x $rq ]] || { echo "build first: $rq missing"; exit 1; }
[[ -f $wiki ]] || { echo "missing $wiki"; exit 1; }
printf "type\trotation\tbytes\trotquant_ppl\tllamacpp_ppl\n" > "$OUT/results.tsv"
for type in $TYPES; do
  for rot in $ROTATIONS; do
    f=$OUT/$(basename "$model" .gguf).$type.$rot.gguf
    if [[ -f $ids ]]; then cal=(--calib-ids "$ids"); else cal=(--calib-n "$CALIB_N" --calib-len "$CALIB_LEN" --calib-save "$ids"); fi
    "$rq" export -m "$model" -o "$f" --type "$type" --rotate "$rot" "${cal[@]}" -t "$T" 2> "$OUT/export.$type.$rot.log"
    ours=$("$rq" ppl -m "$f" -f "$wiki" --protocol llamacpp --ctx 512 --chunks "$CHUNKS" -t "$T" -q | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
    theirs=-
    if [[ -n ${LLAMA_CPP_BIN:-} ]]; then
      "$LLAMA_CPP_BIN/llama-perplexity" -m "$f" -f "$wiki" -c 512 --chunks "$CHUNKS" -t "$T" > "$OUT/llama.$type.$rot.log" 2>&1
      theirs=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/llama.$type.$rot.log")
    fi
    printf "%s\t%s\t%s\t%s\t%s\n" "$type" "$rot" "$(stat -c %s "$f")" "$ours" "$theirs" | tee -a "$OUT/results.tsv"
  done
done

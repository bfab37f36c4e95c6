#!/usr/bin/env bash
# QAT table (README "Quantization-aware training (RCP)"): `rotquant qat` on SmolLM2-135M
# with the settings of the table, then WikiText-2 perplexity (full protocol, ctx 2048, the
# first $CHUNKS windows) and the zero-shot suite (first $LIMIT items per task) of every file
# it writes: the GPTQ start (--save-start), block-wise only (--save-block) and block-wise +
# end-to-end (-o). Results in $OUT (NAME.qat.log, NAME*.ppl.txt, NAME*.tasks.txt); an
# interrupted run resumes (finished steps are skipped).
# Environment: T (threads, default nproc), OUT (default out/qat), CHUNKS (default 40),
#   LIMIT (default 300; 0 = no task evaluation), ONLY (regex on run names), BLOCK_STEPS,
#   STEPS (the two phases, defaults 40 and 60; with STEPS=0 the block-wise file is OUT itself),
#   GEN (generated windows of 512 tokens, default 60), SEED (default 1).
# The quick ablation profile of the README (the quickstart's budget per row):
#   OUT=out/qat_quick GEN=20 BLOCK_STEPS=10 STEPS=0 LIMIT=0 SEED=0 ONLY=w2a16 bash bench/qat_table.sh
CHUNKS=${CHUNKS:-40}
source "$(dirname "$0")/common.sh"
out=${OUT:-out/qat}
LIMIT=${LIMIT:-300}
mkdir -p "$out"
GEN=${GEN:-60}
STEPS=${STEPS:-60}
data=$out/data${GEN}x512_t1.ids
common=(--seed "${SEED:-1}" -t "$T" --group 64 --seq-len 512 --batch 4 --calib-n 16 --block-steps "${BLOCK_STEPS:-40}"
        --steps "$STEPS" --lr 5e-5 --lr-quant 5e-4 --schedule cosine --eval-every 20)

evaluate() { # FILE: perplexity and tasks, once
    local f=$1 b=${1%.gguf}
    [ -f "$b.ppl.txt" ] || { $rq ppl -m "$f" -f "$wiki" --protocol full --ctx 2048 --chunks "$CHUNKS" -t "$T" \
        > "$b.ppl.tmp" 2> "$b.ppl.log" && mv "$b.ppl.tmp" "$b.ppl.txt"; }
    echo "$(basename "$b"): $(grep '^PPL' "$b.ppl.txt")"
    [ "$LIMIT" = 0 ] || [ -f "$b.tasks.txt" ] || { $rq eval -m "$f" --tasks all --limit "$LIMIT" -t "$T" -q \
        --json "$b.tasks.json" > "$b.tasks.tmp" 2> "$b.tasks.log" && mv "$b.tasks.tmp" "$b.tasks.txt"; }
}

# run NAME [qat options]: train once (the first run generates the data, temperature 1), evaluate its files
run() {
    local name=$1
    shift
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    local d=(--data-ids "$data")
    local blk=(--save-block "$out/$name.block.gguf") blkf=("$out/$name.block.gguf")
    [ "$STEPS" != 0 ] || blk=() blkf=()
    [ -f "$data" ] || d=(--gen-seqs "$GEN" --gen-temp 1.0 --data-save "$data")
    [ -f "$out/$name.gguf" ] || /usr/bin/time -v $rq qat -m $model -o "$out/$name.gguf" "${common[@]}" "${d[@]}" \
        --save-start "$out/$name.start.gguf" "${blk[@]}" "$@" > "$out/$name.qat.txt" 2> "$out/$name.qat.log"
    for f in "$out/$name.start.gguf" "${blkf[@]}" "$out/$name.gguf"; do evaluate "$f"; done
}

run w2a16_ldp_gsr --quantizer ldp --rotate gsr
run w2a4kv4_ldp_gsr --quantizer ldp --rotate gsr --abits 4 --kvbits 4
# ablations at W2A16 (quantizer, rotation)
run w2a16_uniform_gsr --quantizer uniform --rotate gsr
run w2a16_seq_gsr --quantizer seq --rotate gsr          # groups of 64 (2.5 bits), GPTQ on SEQ's grid
run w2a16_seqpc_gsr --quantizer seq --group 0 --rotate gsr # ParetoQ's per-channel scale
run w2a16_ldp_none --quantizer ldp --rotate none
run w2a16_ldp_walsh --quantizer ldp --rotate walsh
run w2a16_ldp_hadamard --quantizer ldp --rotate hadamard

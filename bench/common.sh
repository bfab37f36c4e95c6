# Sourced by the bench/*_table.sh scripts: strict mode, the repository root as the working
# directory, the binary, model, text and thread settings they share, and the two steps every
# table repeats (self-generated calibration ids, the papers' perplexity protocol).
# Environment: RQ (the rotquant binary), MODEL, T (threads, default nproc), CHUNKS (windows of
# 2048 tokens for ppl_full; 0 = the whole file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
rq=${RQ:-build/rotquant}
model=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
T=${T:-$(nproc)}

# calib_ids N LEN FILE: the model's own text (seed 0), N sequences of LEN tokens, generated
# once into FILE (its log beside it); the generation time goes to stderr and FILE.time
calib_ids() {
    [ -f "$3" ] && return 0
    local t0=$(date +%s)
    $rq quantize -m "$model" --calib-n "$1" --calib-len "$2" --seed 0 --calib-save "$3" -t "$T" 2> "${3%.ids}.log"
    echo "calibration $1 x $2: generated in $(($(date +%s) - t0)) s" | tee "$3.time" >&2
}

# r2_default QUANTIZE-ARGS...: "--rotate2 none" unless the args name an R2. The tables were
# measured without R2; quantize's default is a Hadamard per head since session 15, so a row
# keeps its meaning by saying so (learned files still bring their own R2).
r2_default() { [[ " $* " == *" --rotate2 "* ]] || echo "--rotate2 none"; }

# ppl_full FILE [ppl options] -> "PPL<TAB>SE": WikiText-2, full windows of 2048 tokens
ppl_full() {
    local args=(-m "$1" -f "$wiki" --protocol full --ctx 2048 -t "$T")
    shift
    [ "${CHUNKS:-0}" = 0 ] || args+=(--chunks "$CHUNKS")
    $rq ppl "${args[@]}" "$@" 2>/dev/null | sed -n 's/^PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1\t\2/p'
}

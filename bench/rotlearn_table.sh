#!/usr/bin/env bash
# Learned rotations (SpinQuant's Cayley SGD, `rotquant rotlearn`) against the fixed ones on
# SmolLM2-135M, issue 16's table (MODEL=models/gemma-3-270m-q4_k_m.gguf: the same table for
# Gemma-3, whose R1 is learned and applied as Ri, route (b), the default on post-norm models). Every row folds its R1/R2, quantizes with GPTQ (group 64,
# quantize's default fits) on the same self-generated calibration ids, and is measured with
# `rotquant ppl --protocol full --ctx 2048` on the same WikiText-2 windows.
#
# Learned rotations (one learning run each, on the same self-generated training windows):
#   a4   learned at W4A4KV4 (weights RTN 4-bit g64, activations and KV 4-bit, R3/R4 Hadamard)
#        -> the W4A4KV4 rows
#   w3   learned at W3A16 (weights RTN 3-bit g64) -> the W3A16 and W2A16 (LUT) rows; 2-bit RTN
#        leaves the model near uniform output, too flat a loss to learn a rotation from
# and for each: from a random Hadamard (SpinQuant), from GSR (dense), block-diagonal from GSR
# (`--block 64`: each 64-block learned, GSR's structure kept), and the one from Hadamard with
# GSR composed on top before GPTQ (`quantize --compose gsr`).
# Fixed rows: random Hadamard (seeds 1-3: the spread), Walsh, GSR (R2 none, quantize's
# default); the starts of the learned ones (R1 Hadamard seed 0 or GSR, R2 Hadamard seed 1:
# what rotlearn begins from, before any step). R3/R4 online are Hadamard for every W4A4KV4
# row (the learned rotations were trained with them), so only R1/R2 differ.
#
# Environment: CHUNKS (windows, default 16), T (threads), OUT (default out/rotlearn),
#   STEPS/BATCH/SEQ/LR (learning: default 20 steps of 4 x 512 tokens at lr 0.02, cosine;
#   SpinQuant's lr 1.5 makes every step the bound η = 1/‖A‖ here and the held-out loss
#   doubles, see the README), GEN (training windows
#   generated, default 64, plus 4 held out), SETS (default "a4 w2 w3": which tables), ONLY
#   (regex on row names). Rows go to $OUT/results.tsv; a rerun skips finished rows and
#   reuses finished rotation files.
CHUNKS=${CHUNKS:-16}
source "$(dirname "$0")/common.sh"
out=${OUT:-out/rotlearn}
STEPS=${STEPS:-20}
BATCH=${BATCH:-4}
SEQ=${SEQ:-512}
LR=${LR:-0.02}
GEN=${GEN:-64}
SETS=${SETS:-a4 w2 w3}
mkdir -p "$out"
res=$out/results.tsv
calib=$out/calib_16x512.ids
data=$out/train_${GEN}x${SEQ}.ids

calib_ids 16 512 "$calib"

# learn NAME ARGS... -> $out/NAME.gguf (skipped when present); the log keeps the losses
learn() {
    local name=$1 f=$out/$1.gguf
    shift
    [ -f "$f" ] && return 0
    local src=(--data-ids "$data")
    [ -f "$data" ] || src=(--gen-seqs $((GEN + 4)) --val-seqs 4 --data-save "$data")
    local t0=$(date +%s)
    $rq rotlearn -m $model -o "$f" --steps "$STEPS" --batch "$BATCH" --seq-len "$SEQ" --lr "$LR" --seed 0 \
        "${src[@]}" -t "$T" "$@" > "$out/$name.log" 2>&1
    echo "$name: learned in $(($(date +%s) - t0)) s ($(grep -o 'loss [^;]*' "$out/$name.log" | tail -1))"
}

# row NAME SETTING ROTATION-LABEL LEARN-SECONDS QUANTIZE-ARGS...
row() {
    local name=$1 setting=$2 label=$3 lt=$4
    shift 4
    [ -z "${ONLY:-}" ] || [[ $name =~ $ONLY ]] || return 0
    grep -q "^$name	" "$res" 2>/dev/null && return 0
    local f=$out/$name.gguf t0 t1 p
    t0=$(date +%s)
    $rq quantize -m $model -o "$f" --method gptq --group 64 --calib-ids "$calib" -t "$T" $(r2_default "$@") "$@" \
        2> "$out/$name.log"
    t1=$(date +%s)
    p=$(ppl_full "$f")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$setting" "$label" "$p" "$((t1 - t0))" "$lt" >> "$res"
    echo "$name: $setting $label: PPL $p, quantize $((t1 - t0)) s"
    rm -f "$f"
}

learn_seconds() { # NAME -> the learning run's training time (without the data generation)
    sed -n 's/.*training \([0-9]*\) s).*/\1/p' "$out/$1.log" | tail -1
}

if ! grep -q "^float	" "$res" 2>/dev/null; then
    printf 'float\tW16A16KV16\tnone\t%s\t0\t0\n' "$(ppl_full $model)" >> "$res"
fi

# table SETTING-TAG LEARNED-TAG QUANTIZE-ARGS...
table() {
    local tag=$1 lt=$2 setting
    shift 2
    setting=$(sed 's/^w\([0-9]\)a\([0-9]*\)kv\([0-9]*\).*/W\1A\2KV\3/; s/^w\([0-9]\)a16$/W\1A16/' <<< "$tag")
    for s in 1 2 3; do row "${tag}_hadamard_s$s" "$setting" "hadamard s$s" 0 --rotate hadamard --seed $s "$@"; done
    for rot in walsh gsr; do row "${tag}_$rot" "$setting" $rot 0 --rotate $rot "$@"; done
    for init in hadamard gsr; do
        row "${tag}_start_$init" "$setting" "start: $init, R2 hadamard" 0 --rotate $init --rotate2 hadamard --seed 0 "$@"
    done
    for init in hadamard gsr block; do
        row "${tag}_learned_$init" "$setting" "learned from $init" "$(learn_seconds rot_${lt}_$init)" \
            --rotate learned --rotation-file "$out/rot_${lt}_$init.gguf" "$@"
    done
    row "${tag}_learned_hadamard+gsr" "$setting" "learned from hadamard + gsr" "$(learn_seconds rot_${lt}_hadamard)" \
        --rotate learned --rotation-file "$out/rot_${lt}_hadamard.gguf" --compose gsr --block 64 "$@"
}

learn_set() { # TAG ROTLEARN-ARGS...
    local tag=$1
    shift
    learn "rot_${tag}_hadamard" --init hadamard "$@"
    learn "rot_${tag}_gsr" --init gsr --init-block 64 "$@"
    learn "rot_${tag}_block" --init gsr --block 64 "$@"
}

a4=(--wbits 4 --abits 4 --kvbits 4 --aclip 0.9)
for set in $SETS; do
    case $set in
        a4)
            learn_set a4 "${a4[@]}" --rotate3 hadamard --rotate4 hadamard
            table w4a4kv4 a4 "${a4[@]}" --rotate3 hadamard --rotate4 hadamard ;;
        w2)
            learn_set w3 --wbits 3
            table w2a16 w3 --wbits 2 --quantizer lut ;;
        w3)
            learn_set w3 --wbits 3
            table w3a16 w3 --wbits 3 ;;
        *) echo "unknown set '$set' (a4, w2, w3)" >&2; exit 1 ;;
    esac
done
column -t -s $'\t' "$res"

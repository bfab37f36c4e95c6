#!/usr/bin/env bash
# Speed of the MPI build (-DRQ_MPI=ON, build-mpi/) at 1 and 2 ranks on this machine, each
# figure beside its one-process baseline from the same run:
#   ppl:      WikiText-2 windows (ctx 512), one process -t 1, one process -t 2, 2 ranks × -t 1
#   quantize: GPTQ W2 of the default model on CALIB_N × CALIB_LEN calibration tokens from a
#             text file, one process -t 1 vs 2 ranks × -t 1 (the files compared with cmp)
#   train:    TRAIN_STEPS fine-tune steps of 4 windows × 128 tokens (random ids: the timing
#             does not depend on them, and no evaluation text is trained on), one process
#             -t 1, one process -t 2, 2 ranks × -t 1; the loss lines compared
# The communication per step is printed from the model's shapes (base/mpi.h: exact Hessian
# pairs 8·d(d+1) bytes per site and layer; each linear broadcast from the rank that solved
# it: 1 byte code + 4 bytes dequantized weight per weight, plus its group parameters) and,
# for training, by `train` itself (16 bytes per trainable parameter: train/dp.h).
#   usage: bench/mpi_scale.sh [CHUNKS (8)] [CALIB_N (4)] [CALIB_LEN (64)] [TRAIN_STEPS (3)]
#          bench/mpi_scale.sh train [TRAIN_STEPS (3)]     the training row only
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=build-mpi/rotquant
M=${RQ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
W=../shared/data/wikitext-2-raw/wiki.test.raw
only=
if [[ ${1:-} == train ]]; then only=train; shift; set -- 8 4 64 "${1:-3}"; fi
chunks=${1:-8} cn=${2:-4} cl=${3:-64} ts=${4:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI=(mpirun --bind-to none -np 2)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
secs() { local t0=$(date +%s.%N); "$@" > "$tmp/out" 2>&1; awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{print a / b}'; }
grep_ppl() { grep -o "PPL = [0-9.]* +/- [0-9.]*" "$tmp/out"; }

echo "== train, $ts steps of 4 × 128 tokens (fine-tune, SmolLM2: embedding frozen)"
awk -v n=$((24 * 128)) 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%d ", int(rand() * 49152); print "" }' > "$tmp/ids.txt"
TR=(train -m "$M" --data-ids "$tmp/ids.txt" --seq-len 128 --batch 4 --steps "$ts" --val-frac 0 --lr 1e-5)
losses() { grep -o "^step [0-9]*/[0-9]* loss [0-9.]*" "$tmp/out" | tr '\n' ' '; }
t1=$(secs $CLI "${TR[@]}" -t 1); l1=$(losses)
t2=$(secs $CLI "${TR[@]}" -t 2); l2=$(losses)
tm=$(secs "${MPI[@]}" $CLI "${TR[@]}" -t 1); lm=$(losses); comm=$(grep -o "gradient all-reduce .*" "$tmp/out" || true)
printf "1 process -t 1:  %6.1f s  %s\n1 process -t 2:  %6.1f s  %s\n2 ranks × -t 1:  %6.1f s  %s\n   speed-up vs -t 1: %.2f×, vs -t 2: %.2f×; losses vs -t 1: %s\n   %s\n" \
    "$t1" "$l1" "$t2" "$l2" "$tm" "$lm" "$(ratio "$t1" "$tm")" "$(ratio "$t2" "$tm")" \
    "$([[ -n $l1 && $l1 == "$lm" ]] && echo identical || echo DIFFERENT)" "$comm"
[[ $only == train ]] && exit 0

echo "== ppl, $chunks windows of 512 ($(nproc) cores)"
t1=$(secs $CLI ppl -m "$M" -f "$W" --chunks "$chunks" -t 1 -q); p1=$(grep_ppl)
t2=$(secs $CLI ppl -m "$M" -f "$W" --chunks "$chunks" -t 2 -q); p2=$(grep_ppl)
tm=$(secs "${MPI[@]}" $CLI ppl -m "$M" -f "$W" --chunks "$chunks" -t 1 -q); pm=$(grep_ppl)
printf "1 process -t 1:  %6.1f s  %s\n1 process -t 2:  %6.1f s  %s\n2 ranks × -t 1:  %6.1f s  %s   speed-up vs -t 1: %.2f×, vs -t 2: %.2f×\n" \
    "$t1" "$p1" "$t2" "$p2" "$tm" "$pm" "$(ratio "$t1" "$tm")" "$(ratio "$t2" "$tm")"
echo "   communication: 16 bytes per window (Σ NLL, Σ NLL²) gathered, + the model/ids hash check"

echo "== quantize W2 GPTQ, $cn × $cl calibration tokens"
head -c 400000 "$W" > "$tmp/calib.txt"
Q=(quantize -m "$M" --calib "$tmp/calib.txt" --calib-n "$cn" --calib-len "$cl" -t 1)
t1=$(secs $CLI "${Q[@]}" -o "$tmp/q1.gguf"); l1=$(grep "quantize: time" "$tmp/out")
tm=$(secs "${MPI[@]}" $CLI "${Q[@]}" -o "$tmp/q2.gguf"); lm=$(grep "quantize: time" "$tmp/out")
printf "1 process -t 1: %6.1f s  %s\n2 ranks × -t 1: %6.1f s  %s\n   speed-up %.2f×; files %s\n" "$t1" "$l1" "$tm" "$lm" \
    "$(ratio "$t1" "$tm")" "$(cmp -s "$tmp/q1.gguf" "$tmp/q2.gguf" && echo byte-identical || echo DIFFERENT)"
python3 - "$M" <<'PY'
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
f = lambda k: int(r.fields[k].parts[-1][0])
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
E, FF, NL = f(f"{arch}.embedding_length"), f(f"{arch}.feed_forward_length"), f(f"{arch}.block_count")
H, HK = f(f"{arch}.attention.head_count"), f(f"{arch}.attention.head_count_kv")
HD = E // H if f"{arch}.attention.key_length" not in r.fields else f(f"{arch}.attention.key_length")
q = H * HD
sites = [E, q, E, FF]  # attn_in, attn_out, ffn_in, ffn_down
hess = sum(8 * d * (d + 1) for d in sites)
w = E * q * 2 + E * HK * HD * 2 + 3 * E * FF
print(f"   communication per layer and rank: Hessian pairs {hess/1e6:.1f} MB into the exact all-reduce, "
      f"{w*5/1e6:.1f} MB of quantized linears broadcast (+ group parameters); {NL} layers")
PY

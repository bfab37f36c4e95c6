#!/usr/bin/env bash
# Speed of the MPI build (-DRQ_MPI=ON, build-mpi/) at 1 and 2 ranks on this machine, each
# figure beside its one-process baseline from the same run:
#   ppl:      WikiText-2 windows (ctx 512), one process -t 1, one process -t 2, 2 ranks × -t 1
#   quantize: GPTQ W2 of the default model on CALIB_N × CALIB_LEN calibration tokens from a
#             text file, one process -t 1 vs 2 ranks × -t 1 (the files compared with cmp)
# The communication per step is printed from the model's shapes (base/mpi.h: exact Hessian
# pairs 8·d(d+1) bytes per site and layer; each linear broadcast from the rank that solved
# it: 1 byte code + 4 bytes dequantized weight per weight, plus its group parameters).
#   usage: bench/mpi_scale.sh [CHUNKS (8)] [CALIB_N (4)] [CALIB_LEN (64)]
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=build-mpi/rotquant
M=${RQ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
W=../shared/data/wikitext-2-raw/wiki.test.raw
chunks=${1:-8} cn=${2:-4} cl=${3:-64}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI=(mpirun --bind-to none -np 2)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
secs() { local t0=$(date +%s.%N); "$@" > "$tmp/out" 2>&1; awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{print a / b}'; }
grep_ppl() { grep -o "PPL = [0-9.]* +/- [0-9.]*" "$tmp/out"; }

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

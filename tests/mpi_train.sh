#!/usr/bin/env bash
# Data-parallel training under mpirun (-DRQ_MPI=ON; registered by tests/CMakeLists.txt with
# the Open MPI environment for a root container without network). The claim (train/dp.h):
# a run at any rank count computes bit for bit what one process computes at the same -t.
#   - tests/mpi_train.c (the tiny LLaMA, batches of 5 windows): the fine-tune, block-wise
#     QAT and end-to-end QAT distillation at 1, 2 and 4 ranks write byte-identical loss
#     traces (17 digits) and parameters; a checkpoint written at 2 ranks after 2 of 4
#     steps resumes at 1 rank to the uninterrupted run's parameters and final loss;
#   - the CLI on the same model: `train` (fine-tune and --wbits QAT) and `rotlearn` print
#     the same losses and write byte-identical files at 1, 2 and 4 ranks (-t 1 everywhere);
#     `train --checkpoint` at 2 ranks resumed at 1 rank writes the uninterrupted run's file.
set -uo pipefail
source "$(dirname "$0")/cli_common.sh"
MPI=("${MPIEXEC:-mpirun}" --oversubscribe --bind-to none)
[[ -x "${RQ_MPI_TRAIN:-}" ]] || { echo "RQ_MPI_TRAIN (${RQ_MPI_TRAIN:-unset}) is not an executable: build the mpi_train target"; exit 1; }

# 1. the library loops
"$RQ_MPI_TRAIN" "$TMP" np1 full > "$TMP/l1" 2>&1 || { echo "FAIL: mpi_train alone: $(tail -5 "$TMP/l1")"; fail=1; }
for np in 2 4; do
    timeout 300 "${MPI[@]}" -np $np "$RQ_MPI_TRAIN" "$TMP" np$np full > "$TMP/l$np" 2>&1 ||
        { echo "FAIL: mpi_train -np $np: $(tail -5 "$TMP/l$np")"; fail=1; continue; }
    for run in train block qat; do
        for f in txt bin; do
            if [[ -s "$TMP/np1.$run.$f" ]] && cmp -s "$TMP/np1.$run.$f" "$TMP/np$np.$run.$f"; then
                echo "ok   $run.$f: -np $np identical to one process ($(tail -1 "$TMP/np$np.$run.txt"))"
            else echo "FAIL: $run.$f: -np $np differs from one process"; fail=1; fi
        done
    done
done
# the losses must move (a trace of constants would compare equal too)
first=$(awk '/^step 0 /{print $6}' "$TMP/np1.train.txt"); last=$(awk '/^end/{print $4}' "$TMP/np1.train.txt")
if awk -v a="$first" -v b="$last" 'BEGIN{exit !(a > 0 && b > 0 && b < a)}'; then echo "ok   fine-tune validation loss $first -> $last"
else echo "FAIL: fine-tune validation loss $first -> $last (expected a decrease)"; fail=1; fi
timeout 300 "${MPI[@]}" -np 2 "$RQ_MPI_TRAIN" "$TMP" half2 half > "$TMP/h" 2>&1 || { echo "FAIL: mpi_train half: $(tail -5 "$TMP/h")"; fail=1; }
"$RQ_MPI_TRAIN" "$TMP" res1 resume "$TMP/half2.ckpt" > "$TMP/r" 2>&1 || { echo "FAIL: mpi_train resume: $(tail -5 "$TMP/r")"; fail=1; }
if [[ -s "$TMP/np1.train.bin" ]] && cmp -s "$TMP/np1.train.bin" "$TMP/res1.train.bin" &&
   [[ "$(tail -1 "$TMP/np1.train.txt")" == "$(tail -1 "$TMP/res1.train.txt")" ]]; then
    echo "ok   a checkpoint of -np 2 resumed by one process: the uninterrupted run ($(tail -1 "$TMP/res1.train.txt"))"
else echo "FAIL: -np 2 checkpoint resumed by one process differs from the uninterrupted run"; fail=1; fi

# 2. the CLI on the tiny model (written by mpi_train above); 20 windows of 12 ids
M="$TMP/tiny.gguf"
awk 'BEGIN { srand(5); for (i = 0; i < 240; i++) printf "%d ", int(rand() * 67); print "" }' > "$TMP/ids.txt"
TR=(train -m "$M" --data-ids "$TMP/ids.txt" --seq-len 12 --batch 3 --val-frac 0.25 --eval-every 2 --lr 3e-3 --seed 1 -t 1 -q)
run_cli() { # np name args...: stdout's loss lines into $TMP/NAME.np.out
    local np=$1 name=$2
    shift 2
    if [[ $np == 1 ]]; then "$RQ_CLI" "$@" > "$TMP/$name.$np.raw" 2> "$TMP/$name.$np.err"
    else timeout 300 "${MPI[@]}" -np "$np" "$RQ_CLI" "$@" > "$TMP/$name.$np.raw" 2> "$TMP/$name.$np.err"; fi
    local rc=$?
    grep -E "^step |training loss" "$TMP/$name.$np.raw" | sed 's/wrote [^;]*;//' > "$TMP/$name.$np.out"
    [[ $rc -eq 0 ]] || { echo "FAIL: $name -np $np: rc $rc, $(tail -3 "$TMP/$name.$np.err")"; fail=1; }
}
for np in 1 2 4; do
    run_cli $np ft "${TR[@]}" --steps 4 -o "$TMP/ft$np.gguf"
    run_cli $np qt "${TR[@]}" --steps 3 --wbits 4 --group 16 -o "$TMP/qt$np.gguf"
    run_cli $np rl rotlearn -m "$M" --data-ids "$TMP/ids.txt" --seq-len 12 --batch 3 --val-seqs 3 --steps 3 \
        --init none --init2 none --wbits 4 --group 16 --lr 0.5 -t 1 -q -o "$TMP/rl$np.gguf"
done
# the rotation file records its training time: compare its tensors (R1 48×48 and two R2
# 8×8 float32 at its end) rather than the whole file
same_file() { # name np
    if [[ $1 == rl ]]; then local k=$((48 * 48 * 4 + 2 * 8 * 8 * 4)); cmp -s <(tail -c $k "$TMP/${1}1.gguf") <(tail -c $k "$TMP/$1$2.gguf")
    else cmp -s "$TMP/${1}1.gguf" "$TMP/$1$2.gguf"; fi
}
for name in ft qt rl; do
    [[ $(wc -l < "$TMP/$name.1.out") -ge 1 ]] || { echo "FAIL: $name: no loss lines: $(head -c 300 "$TMP/$name.1.raw")"; fail=1; }
    for np in 2 4; do
        if cmp -s "$TMP/$name.1.out" "$TMP/$name.$np.out" && [[ -s "$TMP/${name}1.gguf" ]] && same_file $name $np; then
            echo "ok   $name -np $np: the same losses and file as one process ($(tail -1 "$TMP/$name.$np.out"))"
        else echo "FAIL: $name -np $np: '$(cat "$TMP/$name.$np.out")' vs one process '$(cat "$TMP/$name.1.out")', or the files differ"; fail=1; fi
    done
done
run_cli 2 ck "${TR[@]}" --steps 2 --checkpoint "$TMP/ck.gguf"
run_cli 1 rs "${TR[@]}" --steps 4 --resume "$TMP/ck.gguf" -o "$TMP/rs.gguf"
if [[ -s "$TMP/rs.gguf" ]] && cmp -s "$TMP/ft1.gguf" "$TMP/rs.gguf" && [[ "$(tail -1 "$TMP/ft.1.out")" == "$(tail -1 "$TMP/rs.1.out")" ]]; then
    echo "ok   train --checkpoint at -np 2 resumed by one process writes the uninterrupted file"
else echo "FAIL: train resumed from a -np 2 checkpoint: '$(cat "$TMP/rs.1.out")' vs '$(cat "$TMP/ft.1.out")'"; fail=1; fi
exit $fail

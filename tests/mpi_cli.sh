#!/usr/bin/env bash
# The MPI build under mpirun (-DRQ_MPI=ON; registered by tests/CMakeLists.txt with the
# Open MPI environment for a root container without network):
#   - a rank that dies while the others wait in a collective ends the job, mpirun naming it;
#   - a rank that opened another model file ends the job with an error naming the rank;
#   - quantize (tests/mpi_quant.c, the tiny LLaMA): 2 and 4 ranks write byte-identical files
#     to one process;
#   - with the default model: ppl and eval under 2 and 4 ranks print the same figures as one
#     process (every process with -t 1: the thread count itself moves last digits).
set -uo pipefail
source "$(dirname "$0")/cli_common.sh"
MPI=("${MPIEXEC:-mpirun}" --oversubscribe --bind-to none)
[[ -x "${RQ_TEST_MPI:-}" && -x "${RQ_MPI_QUANT:-}" ]] || { echo "RQ_TEST_MPI / RQ_MPI_QUANT not set"; exit 1; }

# 1. a rank that dies: the job ends (no hang: timeout), non-zero, mpirun names rank 1
timeout 120 "${MPI[@]}" -np 2 "$RQ_TEST_MPI" --die 1 > "$TMP/die" 2>&1
rc=$?
if [[ $rc -eq 0 || $rc -eq 124 ]] || ! grep -q "Process name: \[\[[0-9]*,1\],1\]" "$TMP/die"; then
    echo "FAIL: a dying rank: rc $rc, $(head -c 600 "$TMP/die")"; fail=1
else
    echo "ok   a dying rank ends the job (rc $rc), mpirun names rank 1"
fi

# 2. quantize: byte-identical files for 1, 2 and 4 ranks
"$RQ_MPI_QUANT" "$TMP" np1 > "$TMP/q1" 2>&1 || { echo "FAIL: mpi_quant alone: $(tail -5 "$TMP/q1")"; fail=1; }
for np in 2 4; do
    timeout 600 "${MPI[@]}" -np $np "$RQ_MPI_QUANT" "$TMP" np$np > "$TMP/q$np" 2>&1 ||
        { echo "FAIL: mpi_quant -np $np: $(tail -5 "$TMP/q$np")"; fail=1; continue; }
    for c in w2 a4; do
        if cmp -s "$TMP/np1.$c.gguf" "$TMP/np$np.$c.gguf"; then echo "ok   quantize $c: -np $np writes the file one process writes"
        else echo "FAIL: quantize $c: -np $np differs from one process"; fail=1; fi
    done
done

if [[ ! -f "$MODEL" ]]; then
    echo "default model absent: ppl/eval checks skipped"
    exit $(( fail ? 1 : 77 ))
fi

# 3. another model file on rank 1 (same name on another machine): a copy with one byte of
# its last tensor changed; an error naming rank 1, no hang
cp "$MODEL" "$TMP/other.gguf"
size=$(stat -c %s "$TMP/other.gguf")
printf '\x5a' | dd of="$TMP/other.gguf" bs=1 seek=$((size - 3)) conv=notrunc status=none
cmp -s "$MODEL" "$TMP/other.gguf" && { echo "FAIL: the copy did not change"; fail=1; }
printf 'The quick brown fox jumps over the lazy dog. %.0s' {1..60} > "$TMP/text.txt"
timeout 300 "${MPI[@]}" -np 2 bash -c 'm=$1; [[ $OMPI_COMM_WORLD_RANK == 1 ]] && m=$2; exec "$3" ppl -m "$m" -f "$4" --ctx 64 -t 1 -q' \
    _ "$MODEL" "$TMP/other.gguf" "$RQ_CLI" "$TMP/text.txt" > "$TMP/mm" 2>&1
rc=$?
if [[ $rc -eq 0 || $rc -eq 124 ]] || ! grep -q "rotquant: error: rank [01]: the model .* on rank 1 differs from rank 0's" "$TMP/mm"; then
    echo "FAIL: another model on rank 1: rc $rc, $(head -c 600 "$TMP/mm")"; fail=1
else
    echo "ok   another model on rank 1: $(grep -m1 'rotquant: error' "$TMP/mm")"
fi

# 4. ppl: the same lines (chunks, PPL ± stderr) for 1, 2, 4 ranks
W=../shared/data/wikitext-2-raw/wiki.test.raw
if [[ -f $W ]]; then head -c 60000 "$W" > "$TMP/ppl.txt"; else cp "$TMP/text.txt" "$TMP/ppl.txt"; fi
PPL=(ppl -m "$MODEL" -f "$TMP/ppl.txt" --ctx 64 --chunks 7 -t 1 -q)
"$RQ_CLI" "${PPL[@]}" 2>&1 | grep -E "chunks|PPL" > "$TMP/p1"
for np in 2 4; do
    timeout 600 "${MPI[@]}" -np $np "$RQ_CLI" "${PPL[@]}" 2>&1 | grep -E "chunks|PPL" > "$TMP/p$np"
    if [[ -s "$TMP/p1" ]] && cmp -s "$TMP/p1" "$TMP/p$np"; then echo "ok   ppl -np $np: $(tail -1 "$TMP/p$np")"
    else echo "FAIL: ppl -np $np: '$(cat "$TMP/p$np")' vs one process '$(cat "$TMP/p1")'"; fail=1; fi
done

# 5. eval: the same accuracies (every column but items/s and time) and the same per-request
# log-likelihoods (--dump, 9 decimals) for 1, 2, 4 ranks
D=../shared/data/tasks
if [[ -d $D ]]; then
    EV=(eval -m "$MODEL" --tasks arc_easy,piqa,lambada --data "$D" --limit 9 --batch 128 -t 1 -q)
    "$RQ_CLI" "${EV[@]}" --dump "$TMP/d1" 2>&1 | awk '$1 != "suite:" && $2 ~ /^[0-9]+$/ {print $1, $2, $3, $4, $5, $6, $7}' > "$TMP/e1"
    for np in 2 4; do
        timeout 600 "${MPI[@]}" -np $np "$RQ_CLI" "${EV[@]}" --dump "$TMP/d$np" 2>&1 | awk '$1 != "suite:" && $2 ~ /^[0-9]+$/ {print $1, $2, $3, $4, $5, $6, $7}' > "$TMP/e$np"
        if [[ $(wc -l < "$TMP/e1") -eq 3 ]] && cmp -s "$TMP/e1" "$TMP/e$np" && [[ -s "$TMP/d1" ]] && cmp -s "$TMP/d1" "$TMP/d$np"; then echo "ok   eval -np $np: $(tr '\n' ';' < "$TMP/e$np")"
        else echo "FAIL: eval -np $np: '$(cat "$TMP/e$np")' vs one process '$(cat "$TMP/e1")'"; fail=1; fi
    done
else
    echo "tasks data absent: eval check skipped"
fi
exit $fail

#!/usr/bin/env bash
# `rotquant eval` against independent oracles (tests/ref/tasks_ref.py) on the first
# N_ITEMS items of each of the six tasks, evaluated in tree batches as in a full run:
#  - prompts: the token ids we score decode (GGUF vocabulary, GPT-2 byte table, in
#    Python) to exactly the (context, continuation) strings that the harness's templates,
#    written again in Python from the task files, give;
#  - log-likelihoods: every request's ll equals the numpy float64 reference forward
#    (tests/ref/llama_ref.py) within LL_TOL absolute; greedy flags agree (except ties);
#  - metrics: acc / acc_norm / stderr / perplexity recomputed in Python from our lls.
# Skips (exit 77) when python3 lacks numpy/gguf, or the model or the task files are
# missing. About 2 minutes on 2 busy cores (the reference forward is the slow part).
set -euo pipefail

MODEL=${RQ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${RQ_TASK_DATA:-../shared/data/tasks}
PY=${RQ_PYTHON:-python3}
N_ITEMS=20
# float32 (ours) vs float64 (reference): observed <= 7e-5 on these items; the brief's
# bound is 1e-3 (a wrong token, position or mask moves an ll by far more than that).
LL_TOL=1e-3

if [[ -z "${RQ_CLI:-}" || ! -x "$RQ_CLI" ]]; then echo "RQ_CLI not set"; exit 1; fi
if [[ ! -f "$MODEL" ]]; then echo "SKIPPED: model $MODEL missing"; exit 77; fi
if [[ ! -f "$DATA/boolq/dev.jsonl" ]]; then echo "SKIPPED: task files missing under $DATA"; exit 77; fi
if ! "$PY" -c "import numpy, gguf" 2>/dev/null; then echo "SKIPPED: $PY lacks numpy/gguf"; exit 77; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# batches of 384 tokens: several whole items per batch (BoolQ items, ~150 tokens each,
# fill them unevenly), as in a full run
"$RQ_CLI" eval -m "$MODEL" --tasks all --limit $N_ITEMS --data "$DATA" --batch 384 -q \
    --json "$TMP/results.json" --dump "$TMP/dump.tsv"
# numpy's own OpenBLAS threads spin against other work on a shared machine: one thread
# is several times faster there
OPENBLAS_NUM_THREADS=1 "$PY" tests/ref/tasks_ref.py "$MODEL" "$TMP/dump.tsv" --data "$DATA" --tol $LL_TOL \
    --json "$TMP/results.json"

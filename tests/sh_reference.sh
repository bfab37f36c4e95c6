#!/usr/bin/env bash
# Our forward pass against the independent numpy reference (tests/ref/llama_ref.py, which
# reads the GGUF with the `gguf` Python package, not our code) on the default model:
#  1. logits of a fixed 64-token input (the first 64 tokens of wiki.test.raw as tokenized
#     by llama.cpp's llama-tokenize), in one batch and fed 5 tokens at a time:
#     relative L2 error <= REL_L2_TOL;
#  2. greedy generation of 16 tokens from three fixed prompts (ids from llama-tokenize):
#     the same ids as the reference.
# Skips (exit 77) when python3 lacks numpy/gguf or the model is missing.
# Uses the hidden test command `rotquant logits` (tools/cmd_logits.c).
set -euo pipefail

MODEL=${RQ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
PY=${RQ_PYTHON:-python3}
# float32 (ours) vs float64 (reference) through 30 layers: observed ~1e-6; 1e-3 leaves
# room for summation-order differences while catching any real mistake (a wrong RoPE
# pairing or norm gives errors of order 1).
REL_L2_TOL=1e-3
N_GREEDY=16

if [[ -z "${RQ_CLI:-}" || ! -x "$RQ_CLI" ]]; then echo "RQ_CLI not set"; exit 1; fi
if [[ ! -f "$MODEL" ]]; then echo "SKIPPED: model $MODEL missing"; exit 77; fi
if ! "$PY" -c "import numpy, gguf" 2>/dev/null; then echo "SKIPPED: $PY lacks numpy/gguf"; exit 77; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

IDS64="446 6356 389 9226 352 446 3717 6356 389 9226 352 314 354 2321 4771 3297 8552 284 16984 17523 \
1673 909 761 253 16204 3394 29 48 45608 1791 335 260 8552 3086 378 8593 281 216 34 32 32 32 1673 669 436 \
3922 411 253 45608 1791 281 260 1238 3488 707 2855 411 15399 5970 3139 3297 527 436 4940"
echo "$IDS64" > "$TMP/ids64.txt"
# "Once upon a time, there was a little"
# "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
# "def fibonacci(n):"
cat > "$TMP/prompts.txt" <<EOF
6403 1980 253 655 28 665 436 253 1838
1 4093 198 1780 314 260 3575 282 4649 47 2 198 1 520 9531 198
1604 3987 46477 24 94 727
EOF

# one BLAS thread: ~5 s of CPU, and no oversubscription when the machine is shared
OPENBLAS_NUM_THREADS=${RQ_REF_THREADS:-1} "$PY" tests/ref/llama_ref.py "$MODEL" --ids-file "$TMP/ids64.txt" --logits "$TMP/ref.f32" \
    --prompts "$TMP/prompts.txt" --greedy $N_GREEDY > "$TMP/ref_greedy.txt"

"$RQ_CLI" logits -m "$MODEL" --ids-file "$TMP/ids64.txt" -o "$TMP/ours.f32"
"$RQ_CLI" logits -m "$MODEL" --ids-file "$TMP/ids64.txt" -o "$TMP/ours_b5.f32" --batch 5
"$RQ_CLI" logits -m "$MODEL" --prompts "$TMP/prompts.txt" --greedy $N_GREEDY > "$TMP/our_greedy.txt"

"$PY" tests/ref/compare_logits.py "$TMP" "$REL_L2_TOL" ours.f32,ours_b5.f32

#!/usr/bin/env bash
# Our forward pass on Gemma-3 (gemma-3-270m, general.architecture "gemma3") against the
# independent numpy reference (tests/ref/llama_ref.py, gemma3 branch: reads the GGUF with
# the `gguf` Python package, float64), as sh_reference.sh does for SmolLM2:
#  1. logits of a fixed 600-token input (the first 600 tokens of wiki.test.raw as tokenized
#     by llama.cpp's llama-tokenize, BOS first): longer than the model's sliding window of
#     512, so the local layers' queries at positions 512..599 drop their oldest keys; rows
#     0..31 and 560..599 compared (the reference computes only those rows of the 262144-wide
#     lm_head), our logits in one batch and fed 77 tokens at a time through the KV cache:
#     relative L2 error <= REL_L2_TOL;
#  2. greedy generation of 16 tokens from three fixed prompts (ids from llama-tokenize; one
#     in Gemma's chat template): the same ids as the reference.
# The window's logic on every batch shape (one-token decode, segments, trees) is checked
# on a tiny model with a window of 5 in tests/test_gemma.c.
# Skips (exit 77) when python3 lacks numpy/gguf or the model is missing. ~25 s on 2 cores.
set -euo pipefail

MODEL=${RQ_GEMMA_MODEL:-models/gemma-3-270m-q4_k_m.gguf}
PY=${RQ_PYTHON:-python3}
# float32 (ours) vs float64 (reference) through 18 layers: observed ~1e-6; 1e-3 catches
# any real mistake (a wrong window, RoPE base or pairing, a missing norm give >= 1e-2).
REL_L2_TOL=1e-3
N_GREEDY=16
ROWS=0:32,560:600

if [[ -z "${RQ_CLI:-}" || ! -x "$RQ_CLI" ]]; then echo "RQ_CLI not set"; exit 1; fi
if [[ ! -f "$MODEL" ]]; then echo "SKIPPED: model $MODEL missing"; exit 77; fi
if ! "$PY" -c "import numpy, gguf" 2>/dev/null; then echo "SKIPPED: $PY lacks numpy/gguf"; exit 77; fi
WIKI=$(dirname "$0")/golden/gemma3_wiki600_ids.txt

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# "Once upon a time, there was a little"
# "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
# "def fibonacci(n):"
cat > "$TMP/prompts.txt" <<EOF
2 14946 3324 496 990 236764 993 691 496 2268
2 105 2364 107 3689 563 506 5279 529 7001 236881 106 107 105 4368 107
2 2063 10779 78113 236769 236749 1473
EOF

# ours on one thread beside the reference on the other (most of the reference's time is
# GGUFReader parsing the 262144-entry vocabulary)
(
    "$RQ_CLI" logits -m "$MODEL" --ids-file "$WIKI" -o "$TMP/ours.f32" -t 1
    "$RQ_CLI" logits -m "$MODEL" --ids-file "$WIKI" -o "$TMP/ours_b77.f32" --batch 77 -t 1
    "$RQ_CLI" logits -m "$MODEL" --prompts "$TMP/prompts.txt" --greedy $N_GREEDY -t 1 > "$TMP/our_greedy.txt"
) &
OURS=$!
OPENBLAS_NUM_THREADS=${RQ_REF_THREADS:-1} "$PY" tests/ref/llama_ref.py "$MODEL" --ids-file "$WIKI" --rows "$ROWS" \
    --logits "$TMP/ref.f32" --prompts "$TMP/prompts.txt" --greedy $N_GREEDY > "$TMP/ref_greedy.txt"
wait $OURS

"$PY" tests/ref/compare_logits.py "$TMP" "$REL_L2_TOL" ours.f32,ours_b77.f32 --rows "$ROWS" --n-tok 600

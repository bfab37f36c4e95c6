#!/usr/bin/env bash
# `run` caps its default context at the model's training context (issue 15, defect 3): a
# prompt longer than it (from a file, or a chat system message) is refused with a message
# naming the limit, instead of asking for a cache of the prompt's length; a prompt that
# fits runs with a context of prompt + N.
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"
[[ -f "$MODEL" ]] || { echo "skip: $MODEL absent"; exit 77; }

# SmolLM2-135M: context_length 8192; " a" is one token
for _ in $(seq 9000); do printf ' a'; done > "$TMP/long.txt"
expect_error "the prompt has [0-9]* tokens, the model's context is 8192 (--ctx N to go beyond it)" \
    "$RQ_CLI" run -m "$MODEL" -f "$TMP/long.txt" -n 4 --temp 0
# a chat system message as long: checked without echoing the 18 KB argument
if "$RQ_CLI" run -m "$MODEL" -p hi --chat --system "$(cat "$TMP/long.txt")" -n 4 --temp 0 > "$TMP/out" 2> "$TMP/err"; then
    echo "FAIL: --chat with a 9000-token system message ran"; fail=1
elif grep -q "rotquant: error: run: the prompt has [0-9]* tokens, the model's context is 8192" "$TMP/err"; then
    echo "ok   --chat --system (9000 tokens) -> $(cut -c 1-100 "$TMP/err")"
else
    echo "FAIL: --chat --system: $(head -c 300 "$TMP/err")"; fail=1
fi
# a short prompt: the context is prompt + N (5 + 3 here), not the model's 8192
if "$RQ_CLI" run -m "$MODEL" -p "Once upon a time" -n 3 --temp 0 > "$TMP/out" 2> "$TMP/err" &&
    grep -q "for [0-9] positions" "$TMP/err"; then
    echo "ok   short prompt: $(grep -o 'for [0-9]* positions' "$TMP/err")"
else
    echo "FAIL: short run: $(tail -c 300 "$TMP/err")"
    fail=1
fi
exit $fail

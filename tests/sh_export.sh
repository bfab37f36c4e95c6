#!/usr/bin/env bash
# `rotquant export` (quant/ggexport.h) on bad arguments: a clear "rotquant: error: ..." and a
# non-zero exit before any work, and no output file. The export itself (files, bit-exact
# read-back, the gguf package's dequantizer) is tests/test_ggquant.c.
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"

expect_error "-m IN and -o OUT.gguf are required" "$RQ_CLI" export -m "$MODEL"
expect_error "--type: 'q4_9' is not one of q4_0, q4_1" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --type q4_9
expect_error "--type: 'f16' is not one of" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --type f16
expect_error "--embd-type: 'q7' is not one of" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --embd-type q7
expect_error "unknown option '--wbits'" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --wbits 2
expect_error "--method: 'x' is not rtn or gptq" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --method x
expect_error "rotation kind\|rotation" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --rotate spiral
expect_error "--calib-ids sets" "$RQ_CLI" export -m "$MODEL" -o "$TMP/x.gguf" --calib-ids x --calib-n 4
expect_error "no/such" "$RQ_CLI" export -m "$MODEL" -o "$TMP/no/such/x.gguf"
expect_error "cannot open\|No such file" "$RQ_CLI" export -m "$TMP/missing.gguf" -o "$TMP/x.gguf"
if [[ -e "$TMP/x.gguf" ]]; then echo "FAIL: an output file was written"; fail=1; fi
help=$("$RQ_CLI" export --help)
if grep -q -- "--type T" <<<"$help"; then echo "ok   export --help lists --type"; else echo "FAIL: export --help"; fail=1; fi
exit $fail

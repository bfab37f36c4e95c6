#!/usr/bin/env bash
# kill -9 during a write (issue 15, defect 6): a quantize stopped while its output is half
# written (RQ_DEBUG_WRITE_STOP makes it stop itself with SIGSTOP once the temporary holds
# 1 MB, so the kill lands mid-write without depending on timing) and then killed with
# SIGKILL leaves the previous output intact and its temporary OUT.tmp.PID behind; the next
# run removes that stale temporary and writes a complete file.
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"
[[ -f "$MODEL" ]] || { echo "skip: $MODEL absent"; exit 77; }

OUT=$TMP/out.gguf
echo "the previous output" > "$OUT"
QUANT=(quantize -m "$MODEL" -o "$OUT" --method rtn --rotate none --wbits 4 -t 2)
RQ_DEBUG_WRITE_STOP=1000000 "$RQ_CLI" "${QUANT[@]}" > "$TMP/q1.out" 2> "$TMP/q1.err" &
pid=$!
# wait until it has stopped itself (state T in /proc/PID/stat), or has exited
state=
while kill -0 "$pid" 2> /dev/null; do
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2> /dev/null)
    [[ $state == T ]] && break
    sleep 0.2
done
if [[ $state != T ]]; then
    echo "FAIL: quantize did not stop mid-write: $(tail -c 300 "$TMP/q1.err")"
    exit 1
fi
tmpfile=$OUT.tmp.$pid
size=$(stat -c %s "$tmpfile" 2> /dev/null || echo 0)
kill -9 "$pid"
wait "$pid" 2> /dev/null
check() { # check "what" condition...
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL: $what"; fail=1; fi
}
check "the temporary held >= 1 MB when killed ($size bytes)" test "$size" -ge 1000000
check "the previous output is intact" bash -c "[[ \$(cat '$OUT') == 'the previous output' ]]"
check "the killed run's temporary is left behind" test -f "$tmpfile"

"$RQ_CLI" "${QUANT[@]}" > "$TMP/q2.out" 2> "$TMP/q2.err"
check "the rerun succeeds" test $? -eq 0
check "the rerun removed the stale temporary" test ! -e "$tmpfile"
check "no temporary is left" bash -c "! ls '$TMP' | grep -q 'out.gguf.tmp'"
check "the new output is a complete rotquant file" bash -c "'$RQ_CLI' info --no-tensors '$OUT' | grep -q 'rotquant W4'"
exit $fail

#!/usr/bin/env bash
# Output and input paths (io/atomic_file.h, io/file.h): outputs are written only where
# the path is absent or a regular file (a symlink, device or FIFO is refused, not
# replaced), every write and the close are checked (a full disk is simulated with
# `ulimit -f`: writes past the limit fail with EFBIG), an existing output survives a
# failed write, stale temporaries of killed runs are removed, outputs are checked before
# any long work, and a FIFO or device given as an input is refused instead of blocking or
# reading forever.
set -uo pipefail

source "$(dirname "$0")/cli_common.sh"

# expect_fast_error "substring" command...: as expect_error, and it must not hang (a
# FIFO opened for reading blocks until a writer comes; 124 = timeout)
expect_fast_error() {
    local want=$1
    shift
    timeout "${RQ_HANG_TIMEOUT:-120}" "$@" > "$TMP/out" 2> "$TMP/err"
    local rc=$?
    if [[ $rc -eq 0 || $rc -eq 124 ]] || ! grep -q "rotquant: error: .*$want" "$TMP/err"; then
        echo "FAIL: '$*' -> rc $rc, stderr: $(head -c 300 "$TMP/err")"
        fail=1
    else
        echo "ok   $* -> $(grep 'rotquant: error' "$TMP/err" | head -n 1)"
    fi
}
check() { # check "what" condition...
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL: $what"; fail=1; fi
}

# --- defect 1: only regular files are replaced -------------------------------------------
echo "target" > "$TMP/target"
ln -s "$TMP/target" "$TMP/link"
expect_error "is a symbolic link" "$RQ_CLI" logits -m "$MODEL" --ids 1,2 -o "$TMP/link"
expect_error "is a symbolic link" "$RQ_CLI" eval -m "$MODEL" --tasks arc_easy --limit 1 --json "$TMP/link"
check "the symlink is still a symlink to the untouched target" \
    bash -c "[[ -L '$TMP/link' && \$(cat '$TMP/target') == target ]]"
# a character device of our own (never /dev/null: a regression run as root would replace
# it); creating one needs CAP_MKNOD, so the case is skipped without it
if mknod "$TMP/chardev" c 1 3 2> /dev/null; then
    expect_error "is a character device" "$RQ_CLI" logits -m "$MODEL" --ids 1,2 -o "$TMP/chardev"
    check "the device node is still a character device" test -c "$TMP/chardev"
    rm -f "$TMP/chardev"
else
    echo "skip character device output: mknod not permitted"
fi
mkfifo "$TMP/fifo"
expect_fast_error "is a FIFO" "$RQ_CLI" logits -m "$MODEL" --ids 1,2 -o "$TMP/fifo"
check "the FIFO is still a FIFO" test -p "$TMP/fifo"
mkdir "$TMP/dir"
expect_error "is a directory" "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/dir" --method rtn
expect_error "given as two outputs" "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/x" --calib-save "$TMP/x"

# --- defect 7: outputs are checked before any work (no model load, no quantization) -----
expect_error "/nonexistent/dir/out.gguf: cannot create" "$RQ_CLI" quantize -m "$MODEL" -o /nonexistent/dir/out.gguf --method rtn
check "quantize stopped before loading the model" bash -c "! grep -q '^quantize:' '$TMP/err'"
expect_error "/nonexistent/dir/c.txt: cannot create" "$RQ_CLI" quantize -m "$MODEL" --calib-save /nonexistent/dir/c.txt
expect_error "/nonexistent/x.json: cannot create" "$RQ_CLI" eval -m "$MODEL" --tasks arc_easy --json /nonexistent/x.json
expect_error "/nonexistent/x.tsv: cannot create" "$RQ_CLI" eval -m "$MODEL" --tasks arc_easy --dump /nonexistent/x.tsv

# --- defects 8 and 5: inputs must be regular files ---------------------------------------
expect_fast_error "is not a regular file (a FIFO)" "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/fifo"
expect_fast_error "not a regular file (a FIFO)" "$RQ_CLI" ppl -m "$TMP/fifo" -f "$TMP/target"
expect_fast_error "not a regular file (a FIFO)" "$RQ_CLI" info "$TMP/fifo"
expect_fast_error "not a regular file (a FIFO)" "$RQ_CLI" quantize -m "$MODEL" -o "$TMP/q.gguf" --calib-ids "$TMP/fifo" --method gptq
expect_fast_error "is not a regular file (a character device)" "$RQ_CLI" ppl -m "$MODEL" -f /dev/zero
expect_fast_error "is not a regular file (a character device)" "$RQ_CLI" run -m "$MODEL" -f /dev/zero
truncate -s 2G "$TMP/huge.txt" # sparse: no disk used
expect_fast_error "more than the limit of 1073741824" "$RQ_CLI" ppl -m "$MODEL" -f "$TMP/huge.txt"
rm -f "$TMP/huge.txt"

# --- defect 6: stale temporaries of dead processes are removed ---------------------------
dead=$(bash -c 'echo $$') # a process that has exited
touch "$TMP/stale.gguf.tmp.$dead" "$TMP/stale.gguf.tmp.1x"
expect_error "cannot open" "$RQ_CLI" quantize -m "$TMP/missing.gguf" -o "$TMP/stale.gguf" --method rtn
check "the dead process's temporary is removed" test ! -e "$TMP/stale.gguf.tmp.$dead"
check "a name that is not a temporary is kept" test -e "$TMP/stale.gguf.tmp.1x"
touch "$TMP/alive.gguf.tmp.$$" # this shell is alive: kept
expect_error "cannot open" "$RQ_CLI" quantize -m "$TMP/missing.gguf" -o "$TMP/alive.gguf" --method rtn
check "a live process's temporary is kept" test -e "$TMP/alive.gguf.tmp.$$"

# --- defect 2: write errors (ulimit -f: EFBIG past 20 KiB) fail, old outputs survive ----
limited() { (trap '' XFSZ; ulimit -f 20; "$@"); }
if [[ -f "$MODEL" ]]; then
    echo "old logits" > "$TMP/logits.f32"
    expect_error "logits.f32.tmp.[0-9]*: write failed: File too large" limited "$RQ_CLI" logits -m "$MODEL" --ids 1,2,3 -o "$TMP/logits.f32"
    check "the old logits file is intact" bash -c "[[ \$(cat '$TMP/logits.f32') == 'old logits' ]]"
    DATA=../shared/data/wikitext-2-raw/wiki.test.raw
    [[ -f $DATA ]] || DATA=/work/shared/data/wikitext-2-raw/wiki.test.raw
    if [[ -f $DATA ]]; then
        head -c 300000 "$DATA" > "$TMP/calib.txt"
        echo "old ids" > "$TMP/ids.txt"
        expect_error "ids.txt.tmp.[0-9]*: write failed: File too large" limited "$RQ_CLI" quantize -m "$MODEL" --calib "$TMP/calib.txt" --calib-n 20 --calib-len 512 --calib-save "$TMP/ids.txt"
        check "quantize did not claim to have written the ids" bash -c "! grep -q 'wrote' '$TMP/err'"
        check "the old calibration ids are intact" bash -c "[[ \$(cat '$TMP/ids.txt') == 'old ids' ]]"
        # and without the limit the same command writes them, atomically, no temporary left
        "$RQ_CLI" quantize -m "$MODEL" --calib "$TMP/calib.txt" --calib-n 2 --calib-len 16 --calib-save "$TMP/ids.txt" 2> "$TMP/err"
        check "--calib-save writes 2 lines of 16 ids" bash -c "[[ \$(wc -l < '$TMP/ids.txt') == 2 && \$(head -n 1 '$TMP/ids.txt' | wc -w) == 16 ]]"
    fi
    TASKS=../shared/data/tasks
    [[ -d $TASKS ]] || TASKS=/work/shared/data/tasks
    if [[ -d $TASKS ]]; then
        echo "old dump" > "$TMP/dump.tsv"
        expect_error "dump.tsv.tmp.[0-9]*: write failed: File too large" limited "$RQ_CLI" eval -m "$MODEL" --data "$TASKS" --tasks arc_easy --limit 40 --dump "$TMP/dump.tsv" -q
        check "the old dump is intact" bash -c "[[ \$(cat '$TMP/dump.tsv') == 'old dump' ]]"
    fi
fi
rm -f "$TMP/alive.gguf.tmp.$$"
check "no temporary is left behind" bash -c "! ls '$TMP' | grep -q '\.tmp\.[0-9]*$'"
exit $fail

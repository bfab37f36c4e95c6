# Shared by the CLI shell tests (sourced, not run): checks RQ_CLI, sets MODEL, a temporary
# directory TMP removed on exit, fail=0, and expect_error.
if [[ -z "${RQ_CLI:-}" || ! -x "$RQ_CLI" ]]; then echo "RQ_CLI not set"; exit 1; fi
MODEL=${RQ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0

# expect_error "substring" command...: non-zero exit and "rotquant: error: ...substring"
# on stderr
expect_error() {
    local want=$1
    shift
    "$@" > "$TMP/out" 2> "$TMP/err"
    local rc=$?
    if [[ $rc -eq 0 ]] || ! grep -q "rotquant: error: .*$want" "$TMP/err"; then
        echo "FAIL: '$*' -> rc $rc, stderr: $(head -c 300 "$TMP/err")"
        fail=1
    else
        echo "ok   $* -> $(grep 'rotquant: error' "$TMP/err" | head -n 1)"
    fi
}

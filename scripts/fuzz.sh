#!/usr/bin/env bash
# Fuzz campaign: each libFuzzer harness of tests/fuzz/ (built in build-asan with ASan and
# UBSan), one after the other, single process, for SECONDS each from its seed corpus
# (tests/fuzz/corpus/NAME; the inputs it finds go to out/fuzz/NAME, kept between runs).
# Prints per harness: executions, executions/s, coverage (libFuzzer's cov: edges, ft:
# features), corpus size and crashes (artifacts in out/fuzz/NAME-crash-*, -leak-*, ...).
#   usage: scripts/fuzz.sh SECONDS [HARNESS...]   (default: every tests/fuzz/fuzz_*.c)
#   RQ_FUZZ_RUNS=N also stops each harness after N inputs.
# CI does not run this: scripts/test.sh runs each harness for a bounded number of inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: scripts/fuzz.sh SECONDS [HARNESS...]}
shift
if [[ $# -gt 0 ]]; then names=("$@"); else
    names=()
    for f in tests/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c)"); done
fi
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRQ_SANITIZE=ON -DRQ_FUZZ=ON >/dev/null
cmake --build build-asan -j"${JOBS:-2}" --target "${names[@]}" >/dev/null
mkdir -p out/fuzz
printf '%-16s %12s %9s %8s %8s %8s %8s %8s\n' harness inputs exec/s cov ft corpus crashes seconds
total_crashes=0
for name in "${names[@]}"; do
    bin=build-asan/tests/$name
    corpus=tests/fuzz/corpus/${name#fuzz_}
    work=out/fuzz/${name#fuzz_}
    mkdir -p "$work"
    log=out/fuzz/$name.log
    runs=()
    [[ -n "${RQ_FUZZ_RUNS:-}" ]] && runs=(-runs="$RQ_FUZZ_RUNS")
    marker=$(mktemp)
    t0=$(date +%s)
    set +e
    "$bin" -max_total_time="$secs" "${runs[@]}" -max_len=4096 -seed=1 -print_final_stats=1 \
        -artifact_prefix="out/fuzz/$name-" "$work" "$corpus" > "$log" 2>&1
    set -e
    t1=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' <<< "$last" | grep -o '[0-9]*' || echo ?)
    ft=$(grep -o 'ft: [0-9]*' <<< "$last" | grep -o '[0-9]*' || echo ?)
    ncorp=$(find "$work" -type f | wc -l)
    crashes=$(find out/fuzz -maxdepth 1 -type f -newer "$marker" -name "$name-*" ! -name '*.log' | wc -l)
    rm -f "$marker"
    [[ $crashes -gt 0 ]] && grep -m 3 -E 'ERROR|SUMMARY' "$log" >&2 || true
    total_crashes=$(( total_crashes + crashes ))
    printf '%-16s %12s %9s %8s %8s %8s %8s %8s\n' "$name" "$execs" "$rate" "$cov" "$ft" "$ncorp" "$crashes" $(( t1 - t0 ))
done
[[ $total_crashes -eq 0 ]]

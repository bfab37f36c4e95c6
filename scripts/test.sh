#!/usr/bin/env bash
# The test command (README, .ci/run): build, run every ctest test; then an ASan+UBSan
# build of the parsers' tests (and the allocation-failure sweep) and a bounded libFuzzer
# run of each harness (scripts/fuzz.sh runs the long campaign).
#   RQ_FUZZ_RUNS (default 20000) bounds each fuzzer; RQ_SKIP_ASAN=1 skips the second build.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# The CUDA kernels are compiled whenever nvcc is there (test_cuda then skips without a GPU;
# bench/cuda/device_check.sh runs them on a machine that has one).
cuda=OFF
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
if command -v nvcc >/dev/null; then cuda=ON; else echo "test.sh: nvcc not found, CUDA kernels not built"; fi
mkdir -p build
if ! cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRQ_CUDA=$cuda >/dev/null 2>build/configure.err; then
    [ "$cuda" = ON ] || { cat build/configure.err >&2; exit 1; }
    echo "test.sh: configuring with CUDA failed (build/configure.err); building without it"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRQ_CUDA=OFF >/dev/null
fi
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

# The MPI build (-DRQ_MPI=ON, Open MPI) and its tests (label "mpi": test_mpi under mpirun
# -np 2/4, tests/mpi_cli.sh); the default build above has no MPI in it.
if command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
    cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DRQ_MPI=ON >/dev/null
    cmake --build build-mpi -j"$jobs" --target rotquant-cli test_mpi mpi_quant mpi_train
    (cd build-mpi && ctest --output-on-failure -L mpi)
else
    echo "test.sh: Open MPI (mpicc, mpirun) not found, MPI build not tested"
fi

if [ "${RQ_SKIP_ASAN:-0}" != 1 ]; then
    CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRQ_SANITIZE=ON -DRQ_FUZZ=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && ctest --output-on-failure -j"$jobs" -R 'test_(base|gguf|safetensors|format|tokenizer|json|tasks|allocfail|limits|capi)$')
    for f in build-asan/tests/fuzz_*; do
        name=$(basename "$f"); corpus=tests/fuzz/corpus/${name#fuzz_}
        work=$(mktemp -d)
        echo "fuzz: $name, ${RQ_FUZZ_RUNS:-50000} runs from $corpus"
        "$f" -runs="${RQ_FUZZ_RUNS:-50000}" -max_len=4096 -seed=1 "$work" "$corpus" 2>&1 | tail -n 2
        rm -rf "$work"
    done
fi

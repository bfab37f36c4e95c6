#!/usr/bin/env bash
# The CUDA checks for a machine with a GPU: builds test_cuda and bench_cuda from the
# modules they need (base, format, kernels: no BLAS, PCRE2 or CMake needed, so a bare
# CUDA image will do), then runs the test, compute-sanitizer's memcheck on the test (when
# installed), and the benchmark for groups 64 and 128. Output under $OUT (default
# out/cuda) as test.log, memcheck.log, bench_g64.log, bench_g128.log.
#   bash bench/cuda/device_check.sh            (from the repository root)
# CUDA_ARCH (default 90a: H100/H200) picks the GPU code nvcc generates. testing.c is
# linked with --gc-sections: its model helpers, which the CUDA test does not call, drop out.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-out/cuda}
arch=${CUDA_ARCH:-90a}
mkdir -p "$out"
bld=$(mktemp -d)
nvcc --version | tail -n 2
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true

cflags=(-O2 -ffunction-sections -std=c11 -D_GNU_SOURCE -march=x86-64-v3 -Isrc -Itests)
objs=()
for f in src/base/*.c src/format/*.c src/kernels/*.c src/kernels/ref/*.c src/kernels/x86/*.c tests/testing.c; do
    o=$bld/$(echo "$f" | tr / _).o
    extra=()
    case $f in *_avx512.c) extra=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni) ;; esac
    gcc "${cflags[@]}" "${extra[@]}" -c "$f" -o "$o" &
    objs+=("$o")
done
for f in src/kernels/cuda/*.cu; do
    o=$bld/$(basename "$f").o
    nvcc -O3 -lineinfo -std=c++17 -arch=sm_$arch -Isrc -c "$f" -o "$o" &
    objs+=("$o")
done
wait
gcc "${cflags[@]}" -c tests/cuda/test_cuda.c -o "$bld/test_main.o"
gcc "${cflags[@]}" -c bench/cuda/bench_cuda.c -o "$bld/bench_main.o"
lib=("${objs[@]}")
nvcc -arch=sm_$arch -o "$bld/test_cuda" "$bld/test_main.o" "${lib[@]}" -lpthread -lm -Xlinker --gc-sections
nvcc -arch=sm_$arch -o "$bld/bench_cuda" "$bld/bench_main.o" "${lib[@]}" -lpthread -lm -Xlinker --gc-sections

rc=0
"$bld/test_cuda" 2>&1 | tee "$out/test.log" || rc=${PIPESTATUS[0]}
if [ "$rc" = 77 ]; then rm -rf "$bld"; exit 77; fi
if command -v compute-sanitizer >/dev/null; then
    compute-sanitizer --tool memcheck --leak-check full "$bld/test_cuda" >"$out/memcheck.log" 2>&1 || rc=1
    tail -n 3 "$out/memcheck.log"
fi
for g in 64 128; do "$bld/bench_cuda" -g "$g" 2>&1 | tee "$out/bench_g$g.log"; done
rm -rf "$bld"
exit $rc

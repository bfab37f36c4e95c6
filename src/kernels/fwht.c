/* The dispatching entries of kernels/fwht.h: the fastest level rq_cpu_level_get() allows
 * (x86/fwht_avx2.c, x86/fwht_avx512.c), else the scalar references of ref/fwht_ref.c. */
#include "kernels/fwht.h"

#include "base/cpu.h"

void rq_fwht(float *x, int64_t rows, int64_t n, float scale) {
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: rq_fwht_avx512(x, rows, n, scale); return;
    case RQ_CPU_AVX2: rq_fwht_avx2(x, rows, n, scale); return;
    default: rq_fwht_ref(x, rows, n, scale); return;
    }
}

void rq_fwht_mix(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp) {
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: rq_fwht_mix_avx512(c, m, p, x, rows, scale, tmp); return;
    case RQ_CPU_AVX2: rq_fwht_mix_avx2(c, m, p, x, rows, scale, tmp); return;
    default: rq_fwht_mix_ref(c, m, p, x, rows, scale, tmp); return;
    }
}

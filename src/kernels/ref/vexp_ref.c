#include "kernels/vexp.h"

#include "base/cpu.h"

#include <math.h>
#include <stddef.h>

double rq_vexp_sum_ref(float *y, const float *x, int64_t n, float shift) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - shift);
        if (y) y[i] = e;
        s += e;
    }
    return s;
}

rq_vexp_sum_fn rq_vexp_sum_pick(void) {
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: return rq_vexp_sum_avx512;
    case RQ_CPU_AVX2: return rq_vexp_sum_avx2;
    default: return rq_vexp_sum_ref;
    }
}

double rq_vexp_sum(float *y, const float *x, int64_t n, float shift) { return rq_vexp_sum_pick()(y, x, n, shift); }

/* Dispatch of the Q8_0 GEMV (qgemv.h). */
#include "kernels/qgemv.h"

#include "base/cpu.h"
#include "base/status.h"
#include "format/format.h"

void rq_q8_0_gemv(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    RQ_ASSERT(out >= 0 && in >= 0 && in % RQ_QK8_0 == 0);
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: rq_q8_0_gemv_avx512(w, out, in, x, y); return;
    case RQ_CPU_AVX2: rq_q8_0_gemv_avx2(w, out, in, x, y); return;
    case RQ_CPU_SCALAR: break;
    }
    rq_q8_0_gemv_ref(w, out, in, x, y);
}

void rq_q8_0_gemv_q8(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y) {
    RQ_ASSERT(out >= 0 && in >= 0 && in % RQ_QK8_0 == 0);
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512:
        if (rq_cpu_features_get()->avx512vnni) {
            rq_q8_0_gemv_q8_avx512(w, out, in, xq, xd, y);
            return;
        }
        rq_q8_0_gemv_q8_avx2(w, out, in, xq, xd, y);
        return;
    case RQ_CPU_AVX2: rq_q8_0_gemv_q8_avx2(w, out, in, xq, xd, y); return;
    case RQ_CPU_SCALAR: break;
    }
    rq_q8_0_gemv_q8_ref(w, out, in, xq, xd, y);
}

void rq_q8_0_r16_gemv_q8(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                         const int32_t *xs, float *y) {
    RQ_ASSERT(out >= 0 && out % RQ_Q8R16_ROWS == 0 && in >= 0 && in % RQ_QK8_0 == 0);
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512:
        if (rq_cpu_features_get()->avx512vnni) {
            rq_q8_0_r16_gemv_q8_avx512(wr, out, in, xq, xd, xs, y);
            return;
        }
        rq_q8_0_r16_gemv_q8_avx2(wr, out, in, xq, xd, xs, y);
        return;
    case RQ_CPU_AVX2: rq_q8_0_r16_gemv_q8_avx2(wr, out, in, xq, xd, xs, y); return;
    case RQ_CPU_SCALAR: break;
    }
    rq_q8_0_r16_gemv_q8_ref(wr, out, in, xq, xd, xs, y);
}

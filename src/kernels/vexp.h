/* Vectorized exponentials for softmax and log-softmax.
 *
 * rq_vexp_sum: y[i] = exp(x[i] − shift) for i < n (y may be NULL: only the sum, or y == x:
 * in place) and returns Σ exp(x[i] − shift) accumulated in double. Meant for shift =
 * max(x), so every argument is <= 0; arguments below −87.3 give a value of about 1e−38
 * instead of a denormal or 0 in the SIMD versions (harmless in a sum dominated by
 * exp(0) = 1).
 *
 * The scalar reference uses expf; the AVX2/AVX-512 versions a Cody-Waite range reduction
 * and a degree-6 polynomial (Cephes' expf coefficients), relative error < 2e-7 against
 * expf (tested in tests/test_model.c). The dispatching entry picks the level allowed by
 * rq_cpu_level_get(); rq_vexp_sum_pick returns that function once, for hot loops. */
#ifndef RQ_KERNELS_VEXP_H
#define RQ_KERNELS_VEXP_H

#include <stdint.h>

typedef double (*rq_vexp_sum_fn)(float *y, const float *x, int64_t n, float shift);

double rq_vexp_sum(float *y, const float *x, int64_t n, float shift);
double rq_vexp_sum_ref(float *y, const float *x, int64_t n, float shift);
double rq_vexp_sum_avx2(float *y, const float *x, int64_t n, float shift);
double rq_vexp_sum_avx512(float *y, const float *x, int64_t n, float shift);
rq_vexp_sum_fn rq_vexp_sum_pick(void);

#endif

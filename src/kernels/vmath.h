/* Vector math for the row operations of the forward pass and of the log-softmax:
 * exponential sums (softmax), maximum, scaling, SwiGLU, RMSNorm.
 *
 * One table per CPU level (scalar reference, AVX2, AVX-512); rq_vmath_get() returns the
 * table for the level rq_cpu_level_get() allows, to be fetched once per hot loop.
 *
 *   exp_sum(y, x, n, shift): y[i] = exp(x[i] − shift) (y may be NULL: only the sum; or
 *       y == x: in place); returns Σ exp(x[i] − shift) accumulated in double. Meant for
 *       shift = max(x) (arguments <= 0). The SIMD versions use a Cody-Waite reduction and
 *       Cephes' degree-6 polynomial: relative error < 2.5e-7 against exp of the float
 *       argument; arguments below −87.3 give ~1e-38 instead of a denormal or 0.
 *   max(x, n): largest element (n >= 1; no NaN handling).
 *   scale(x, n, s): x[i] *= s.
 *   swiglu(g, u, n): g[i] = g[i] / (1 + exp(−g[i])) · u[i]  (silu(g)·u).
 *   rmsnorm(x, w, n, eps, y): y[i] = x[i] · r · w[i], r = 1/sqrt(Σx²/n + eps), the sum
 *       of squares accumulated in double; y may equal x.
 * All levels agree to float rounding (tests/test_vmath.c). */
#ifndef RQ_KERNELS_VMATH_H
#define RQ_KERNELS_VMATH_H

#include <stdint.h>

typedef struct rq_vmath {
    const char *name;
    double (*exp_sum)(float *y, const float *x, int64_t n, float shift);
    float (*max)(const float *x, int64_t n);
    void (*scale)(float *x, int64_t n, float s);
    void (*swiglu)(float *g, const float *u, int64_t n);
    void (*rmsnorm)(const float *x, const float *w, int64_t n, float eps, float *y);
} rq_vmath;

extern const rq_vmath rq_vmath_ref;
extern const rq_vmath rq_vmath_avx2;   /* only where rq_cpu_max_level() >= RQ_CPU_AVX2 */
extern const rq_vmath rq_vmath_avx512; /* only where rq_cpu_max_level() >= RQ_CPU_AVX512 */

const rq_vmath *rq_vmath_get(void);

#endif

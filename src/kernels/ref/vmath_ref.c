/* Scalar reference vector math (kernels/vmath.h), the oracle for the SIMD tables; the
 * table for the CPU is picked in kernels/vmath.c. */
#include "kernels/vmath.h"

#include <math.h>
#include <stddef.h>

static double exp_sum_ref(float *y, const float *x, int64_t n, float shift) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - shift);
        if (y) y[i] = e;
        s += e;
    }
    return s;
}

static float max_ref(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static void scale_ref(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static void swiglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void rmsnorm_ref(const float *x, const float *w, int64_t n, float eps, float *y) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

const rq_vmath rq_vmath_ref = {"ref", exp_sum_ref, max_ref, scale_ref, swiglu_ref, rmsnorm_ref};

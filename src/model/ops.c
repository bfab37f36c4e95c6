#include "model/ops.h"

#include "kernels/vexp.h"

#include <math.h>

void rq_rmsnorm(const float *x, const float *g, int64_t n, float eps, float *y) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * g[i];
}

void rq_rope_apply(float *x, const float *cos_, const float *sin_, int64_t rope_dim) {
    for (int64_t i = 0; i < rope_dim / 2; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_[i], s = sin_[i];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

void rq_rope_table(int64_t n_pos, int64_t rope_dim, double base, double scale, const float *freq_div,
                   float *cos_, float *sin_) {
    int64_t half = rope_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        double f = pow(base, -2.0 * (double)i / (double)rope_dim) * scale;
        if (freq_div) f /= (double)freq_div[i];
        for (int64_t p = 0; p < n_pos; p++) {
            double a = (double)p * f;
            cos_[p * half + i] = (float)cos(a);
            sin_[p * half + i] = (float)sin(a);
        }
    }
}

void rq_softmax_with(float *x, int64_t n, rq_vexp_sum_fn vexp) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float inv = (float)(1.0 / vexp(x, x, n, mx));
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void rq_softmax(float *x, int64_t n) { rq_softmax_with(x, n, rq_vexp_sum_pick()); }

void rq_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

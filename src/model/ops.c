#include "model/ops.h"

#include <math.h>

void rq_rope_apply(float *x, const float *cos_, const float *sin_, int64_t rope_dim) {
    for (int64_t i = 0; i < rope_dim / 2; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_[i], s = sin_[i];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

void rq_rope_apply_neox(float *x, const float *cos_, const float *sin_, int64_t rope_dim) {
    int64_t h = rope_dim / 2;
    for (int64_t i = 0; i < h; i++) {
        float a = x[i], b = x[i + h], c = cos_[i], s = sin_[i];
        x[i] = a * c - b * s;
        x[i + h] = a * s + b * c;
    }
}

void rq_geglu(float *g, const float *u, int64_t n) {
    const float k = 0.7978845608028654f; /* √(2/π) */
    for (int64_t i = 0; i < n; i++) {
        float x = g[i], t = 2.0f * k * (x + 0.044715f * x * x * x);
        g[i] = x / (1.0f + expf(-t)) * u[i];
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

void rq_softmax(float *x, int64_t n, const rq_vmath *vm) {
    float mx = vm->max(x, n);
    vm->scale(x, n, (float)(1.0 / vm->exp_sum(x, x, n, mx)));
}

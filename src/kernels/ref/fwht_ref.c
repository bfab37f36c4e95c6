/* Scalar reference FWHT and Kronecker mix (the oracle for the SIMD versions; the
 * dispatching entries are in kernels/fwht.c). */
#include "kernels/fwht.h"

#include "base/status.h"

#include <string.h>

void rq_fwht_ref(float *x, int64_t rows, int64_t n, float scale) {
    RQ_ASSERT(n >= 1 && (n & (n - 1)) == 0 && rows >= 0);
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        for (int64_t h = 1; h < n; h *= 2)
            for (int64_t i = 0; i < n; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    float a = v[j], b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
        if (scale != 1.0f)
            for (int64_t j = 0; j < n; j++) v[j] *= scale;
    }
}

void rq_fwht_mix_ref(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp) {
    RQ_ASSERT(m >= 1 && p >= 1 && rows >= 0);
    int64_t len = m * p;
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * len;
        for (int64_t j = 0; j < m; j++) {
            float *y = tmp + j * p;
            for (int64_t k = 0; k < p; k++) y[k] = 0.0f;
            for (int64_t i = 0; i < m; i++) {
                float cij = c[i * m + j];
                const float *xi = v + i * p;
                for (int64_t k = 0; k < p; k++) y[k] += cij * xi[k];
            }
        }
        for (int64_t k = 0; k < len; k++) v[k] = tmp[k] * scale;
    }
}

/* AVX2 FWHT and Kronecker mix. The first three butterfly stages (h = 1, 2, 4) run inside
 * one 8-float register: partner = permute(v), v ← v·sign + partner, which performs
 * exactly the reference's a + b / a - b. Later stages go two at a time (radix 4) across
 * registers; the scale is folded into the last pass. */
#include "kernels/fwht.h"

#include "base/status.h"

#include <immintrin.h>
#include <string.h>

static inline __m256 inreg8(__m256 v) {
    const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
    const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
    const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
    v = _mm256_fmadd_ps(v, s1, _mm256_permute_ps(v, 0xB1));
    v = _mm256_fmadd_ps(v, s2, _mm256_permute_ps(v, 0x4E));
    v = _mm256_fmadd_ps(v, s4, _mm256_permute2f128_ps(v, v, 0x01));
    return v;
}

static void row_avx2(float *v, int64_t n, float scale) {
    const __m256 sc = _mm256_set1_ps(scale);
    const int scale_now = n == 8 && scale != 1.0f;
    for (int64_t i = 0; i < n; i += 8) {
        __m256 a = inreg8(_mm256_loadu_ps(v + i));
        if (scale_now) a = _mm256_mul_ps(a, sc);
        _mm256_storeu_ps(v + i, a);
    }
    int64_t h = 8;
    while (h < n) {
        if (4 * h <= n) {
            const int last = 4 * h == n && scale != 1.0f;
            for (int64_t i = 0; i < n; i += 4 * h)
                for (int64_t j = i; j < i + h; j += 8) {
                    __m256 a0 = _mm256_loadu_ps(v + j), a1 = _mm256_loadu_ps(v + j + h);
                    __m256 a2 = _mm256_loadu_ps(v + j + 2 * h), a3 = _mm256_loadu_ps(v + j + 3 * h);
                    __m256 b0 = _mm256_add_ps(a0, a1), b1 = _mm256_sub_ps(a0, a1);
                    __m256 b2 = _mm256_add_ps(a2, a3), b3 = _mm256_sub_ps(a2, a3);
                    __m256 c0 = _mm256_add_ps(b0, b2), c2 = _mm256_sub_ps(b0, b2);
                    __m256 c1 = _mm256_add_ps(b1, b3), c3 = _mm256_sub_ps(b1, b3);
                    if (last) {
                        c0 = _mm256_mul_ps(c0, sc), c1 = _mm256_mul_ps(c1, sc);
                        c2 = _mm256_mul_ps(c2, sc), c3 = _mm256_mul_ps(c3, sc);
                    }
                    _mm256_storeu_ps(v + j, c0);
                    _mm256_storeu_ps(v + j + h, c1);
                    _mm256_storeu_ps(v + j + 2 * h, c2);
                    _mm256_storeu_ps(v + j + 3 * h, c3);
                }
            h *= 4;
        } else { /* one stage left: h = n/2 */
            const int last = scale != 1.0f;
            for (int64_t j = 0; j < h; j += 8) {
                __m256 a0 = _mm256_loadu_ps(v + j), a1 = _mm256_loadu_ps(v + j + h);
                __m256 c0 = _mm256_add_ps(a0, a1), c1 = _mm256_sub_ps(a0, a1);
                if (last) c0 = _mm256_mul_ps(c0, sc), c1 = _mm256_mul_ps(c1, sc);
                _mm256_storeu_ps(v + j, c0);
                _mm256_storeu_ps(v + j + h, c1);
            }
            h *= 2;
        }
    }
}

void rq_fwht_avx2(float *x, int64_t rows, int64_t n, float scale) {
    RQ_ASSERT(n >= 1 && (n & (n - 1)) == 0 && rows >= 0);
    if (n < 8) {
        rq_fwht_ref(x, rows, n, scale);
        return;
    }
    for (int64_t r = 0; r < rows; r++) row_avx2(x + r * n, n, scale);
}

/* ---- mix: Y = scale · cᵀ X per row, X [m, p] ---- */

void rq_fwht_mix_avx2(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp) {
    RQ_ASSERT(m >= 1 && p >= 1 && rows >= 0);
    if (p % 8 != 0) {
        rq_fwht_mix_ref(c, m, p, x, rows, scale, tmp);
        return;
    }
    const int64_t len = m * p;
    const __m256 sc = _mm256_set1_ps(scale);
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * len;
        int64_t k = 0;
        /* two vector columns × four outputs per inner loop: 8 accumulators */
        for (; k + 16 <= p; k += 16) {
            int64_t j = 0;
            for (; j + 4 <= m; j += 4) {
                __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
                __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int64_t i = 0; i < m; i++) {
                    __m256 x0 = _mm256_loadu_ps(v + i * p + k), x1 = _mm256_loadu_ps(v + i * p + k + 8);
                    const float *ci = c + i * m + j;
                    __m256 c0 = _mm256_broadcast_ss(ci), c1 = _mm256_broadcast_ss(ci + 1);
                    __m256 c2 = _mm256_broadcast_ss(ci + 2), c3 = _mm256_broadcast_ss(ci + 3);
                    a00 = _mm256_fmadd_ps(c0, x0, a00), a01 = _mm256_fmadd_ps(c0, x1, a01);
                    a10 = _mm256_fmadd_ps(c1, x0, a10), a11 = _mm256_fmadd_ps(c1, x1, a11);
                    a20 = _mm256_fmadd_ps(c2, x0, a20), a21 = _mm256_fmadd_ps(c2, x1, a21);
                    a30 = _mm256_fmadd_ps(c3, x0, a30), a31 = _mm256_fmadd_ps(c3, x1, a31);
                }
                float *y = tmp + j * p + k;
                _mm256_storeu_ps(y, _mm256_mul_ps(a00, sc)), _mm256_storeu_ps(y + 8, _mm256_mul_ps(a01, sc));
                y += p;
                _mm256_storeu_ps(y, _mm256_mul_ps(a10, sc)), _mm256_storeu_ps(y + 8, _mm256_mul_ps(a11, sc));
                y += p;
                _mm256_storeu_ps(y, _mm256_mul_ps(a20, sc)), _mm256_storeu_ps(y + 8, _mm256_mul_ps(a21, sc));
                y += p;
                _mm256_storeu_ps(y, _mm256_mul_ps(a30, sc)), _mm256_storeu_ps(y + 8, _mm256_mul_ps(a31, sc));
            }
            for (; j < m; j++) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0;
                for (int64_t i = 0; i < m; i++) {
                    __m256 cj = _mm256_broadcast_ss(c + i * m + j);
                    a0 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(v + i * p + k), a0);
                    a1 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(v + i * p + k + 8), a1);
                }
                _mm256_storeu_ps(tmp + j * p + k, _mm256_mul_ps(a0, sc));
                _mm256_storeu_ps(tmp + j * p + k + 8, _mm256_mul_ps(a1, sc));
            }
        }
        for (; k < p; k += 8) { /* p == 8 */
            for (int64_t j = 0; j < m; j++) {
                __m256 a0 = _mm256_setzero_ps();
                for (int64_t i = 0; i < m; i++)
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(c + i * m + j), _mm256_loadu_ps(v + i * p + k), a0);
                _mm256_storeu_ps(tmp + j * p + k, _mm256_mul_ps(a0, sc));
            }
        }
        memcpy(x + r * len, tmp, (size_t)len * sizeof *tmp);
    }
}

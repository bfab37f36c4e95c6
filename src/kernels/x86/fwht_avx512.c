/* AVX-512 FWHT and Kronecker mix: as fwht_avx2.c with 16-float registers; the first four
 * stages (h = 1, 2, 4, 8) run inside one register. Shorter rows use the AVX2 code. */
#include "kernels/fwht.h"

#include "base/status.h"

#include <immintrin.h>
#include <string.h>

static inline __m512 inreg16(__m512 v) {
    const __m512 s1 = _mm512_setr_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    const __m512 s2 = _mm512_setr_ps(1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1);
    const __m512 s4 = _mm512_setr_ps(1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1);
    const __m512 s8 = _mm512_setr_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm512_fmadd_ps(v, s1, _mm512_permute_ps(v, 0xB1));
    v = _mm512_fmadd_ps(v, s2, _mm512_permute_ps(v, 0x4E));
    v = _mm512_fmadd_ps(v, s4, _mm512_shuffle_f32x4(v, v, 0xB1));
    v = _mm512_fmadd_ps(v, s8, _mm512_shuffle_f32x4(v, v, 0x4E));
    return v;
}

static void row_avx512(float *v, int64_t n, float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    const int scale_now = n == 16 && scale != 1.0f;
    for (int64_t i = 0; i < n; i += 16) {
        __m512 a = inreg16(_mm512_loadu_ps(v + i));
        if (scale_now) a = _mm512_mul_ps(a, sc);
        _mm512_storeu_ps(v + i, a);
    }
    int64_t h = 16;
    while (h < n) {
        if (4 * h <= n) {
            const int last = 4 * h == n && scale != 1.0f;
            for (int64_t i = 0; i < n; i += 4 * h)
                for (int64_t j = i; j < i + h; j += 16) {
                    __m512 a0 = _mm512_loadu_ps(v + j), a1 = _mm512_loadu_ps(v + j + h);
                    __m512 a2 = _mm512_loadu_ps(v + j + 2 * h), a3 = _mm512_loadu_ps(v + j + 3 * h);
                    __m512 b0 = _mm512_add_ps(a0, a1), b1 = _mm512_sub_ps(a0, a1);
                    __m512 b2 = _mm512_add_ps(a2, a3), b3 = _mm512_sub_ps(a2, a3);
                    __m512 c0 = _mm512_add_ps(b0, b2), c2 = _mm512_sub_ps(b0, b2);
                    __m512 c1 = _mm512_add_ps(b1, b3), c3 = _mm512_sub_ps(b1, b3);
                    if (last) {
                        c0 = _mm512_mul_ps(c0, sc), c1 = _mm512_mul_ps(c1, sc);
                        c2 = _mm512_mul_ps(c2, sc), c3 = _mm512_mul_ps(c3, sc);
                    }
                    _mm512_storeu_ps(v + j, c0);
                    _mm512_storeu_ps(v + j + h, c1);
                    _mm512_storeu_ps(v + j + 2 * h, c2);
                    _mm512_storeu_ps(v + j + 3 * h, c3);
                }
            h *= 4;
        } else {
            const int last = scale != 1.0f;
            for (int64_t j = 0; j < h; j += 16) {
                __m512 a0 = _mm512_loadu_ps(v + j), a1 = _mm512_loadu_ps(v + j + h);
                __m512 c0 = _mm512_add_ps(a0, a1), c1 = _mm512_sub_ps(a0, a1);
                if (last) c0 = _mm512_mul_ps(c0, sc), c1 = _mm512_mul_ps(c1, sc);
                _mm512_storeu_ps(v + j, c0);
                _mm512_storeu_ps(v + j + h, c1);
            }
            h *= 2;
        }
    }
}

void rq_fwht_avx512(float *x, int64_t rows, int64_t n, float scale) {
    RQ_ASSERT(n >= 1 && (n & (n - 1)) == 0 && rows >= 0);
    if (n < 16) {
        rq_fwht_avx2(x, rows, n, scale);
        return;
    }
    for (int64_t r = 0; r < rows; r++) row_avx512(x + r * n, n, scale);
}

void rq_fwht_mix_avx512(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp) {
    RQ_ASSERT(m >= 1 && p >= 1 && rows >= 0);
    if (p % 16 != 0) {
        rq_fwht_mix_avx2(c, m, p, x, rows, scale, tmp);
        return;
    }
    const int64_t len = m * p;
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * len;
        int64_t k = 0;
        for (; k + 32 <= p; k += 32) {
            int64_t j = 0;
            for (; j + 4 <= m; j += 4) {
                __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
                __m512 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int64_t i = 0; i < m; i++) {
                    __m512 x0 = _mm512_loadu_ps(v + i * p + k), x1 = _mm512_loadu_ps(v + i * p + k + 16);
                    const float *ci = c + i * m + j;
                    __m512 c0 = _mm512_set1_ps(ci[0]), c1 = _mm512_set1_ps(ci[1]);
                    __m512 c2 = _mm512_set1_ps(ci[2]), c3 = _mm512_set1_ps(ci[3]);
                    a00 = _mm512_fmadd_ps(c0, x0, a00), a01 = _mm512_fmadd_ps(c0, x1, a01);
                    a10 = _mm512_fmadd_ps(c1, x0, a10), a11 = _mm512_fmadd_ps(c1, x1, a11);
                    a20 = _mm512_fmadd_ps(c2, x0, a20), a21 = _mm512_fmadd_ps(c2, x1, a21);
                    a30 = _mm512_fmadd_ps(c3, x0, a30), a31 = _mm512_fmadd_ps(c3, x1, a31);
                }
                float *y = tmp + j * p + k;
                _mm512_storeu_ps(y, _mm512_mul_ps(a00, sc)), _mm512_storeu_ps(y + 16, _mm512_mul_ps(a01, sc));
                y += p;
                _mm512_storeu_ps(y, _mm512_mul_ps(a10, sc)), _mm512_storeu_ps(y + 16, _mm512_mul_ps(a11, sc));
                y += p;
                _mm512_storeu_ps(y, _mm512_mul_ps(a20, sc)), _mm512_storeu_ps(y + 16, _mm512_mul_ps(a21, sc));
                y += p;
                _mm512_storeu_ps(y, _mm512_mul_ps(a30, sc)), _mm512_storeu_ps(y + 16, _mm512_mul_ps(a31, sc));
            }
            for (; j < m; j++) {
                __m512 a0 = _mm512_setzero_ps(), a1 = a0;
                for (int64_t i = 0; i < m; i++) {
                    __m512 cj = _mm512_set1_ps(c[i * m + j]);
                    a0 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(v + i * p + k), a0);
                    a1 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(v + i * p + k + 16), a1);
                }
                _mm512_storeu_ps(tmp + j * p + k, _mm512_mul_ps(a0, sc));
                _mm512_storeu_ps(tmp + j * p + k + 16, _mm512_mul_ps(a1, sc));
            }
        }
        for (; k < p; k += 16) { /* p == 16 */
            int64_t j = 0;
            for (; j + 4 <= m; j += 4) {
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t i = 0; i < m; i++) {
                    __m512 x0 = _mm512_loadu_ps(v + i * p + k);
                    const float *ci = c + i * m + j;
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(ci[0]), x0, a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(ci[1]), x0, a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(ci[2]), x0, a2);
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(ci[3]), x0, a3);
                }
                float *y = tmp + j * p + k;
                _mm512_storeu_ps(y, _mm512_mul_ps(a0, sc));
                _mm512_storeu_ps(y + p, _mm512_mul_ps(a1, sc));
                _mm512_storeu_ps(y + 2 * p, _mm512_mul_ps(a2, sc));
                _mm512_storeu_ps(y + 3 * p, _mm512_mul_ps(a3, sc));
            }
            for (; j < m; j++) {
                __m512 a0 = _mm512_setzero_ps();
                for (int64_t i = 0; i < m; i++)
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(c[i * m + j]), _mm512_loadu_ps(v + i * p + k), a0);
                _mm512_storeu_ps(tmp + j * p + k, _mm512_mul_ps(a0, sc));
            }
        }
        memcpy(x + r * len, tmp, (size_t)len * sizeof *tmp);
    }
}

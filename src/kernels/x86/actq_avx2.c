/* AVX2 per-token activation fake quantization and 4-bit KV row dequantization: the same
 * float operations as the scalar references (kernels/ref/actq_ref.c, format/kv.c), eight
 * lanes at a time, so the results are bit-identical. */
#include "kernels/actq.h"

#include "base/status.h"
#include "format/format.h"
#include "format/kv.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hmin8(__m256 v) {
    __m128 a = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_min_ps(a, _mm_movehl_ps(a, a));
    a = _mm_min_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

static inline float hmax8(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

void rq_actq_row_avx2(const rq_actq *q, float *x, int64_t n) {
    RQ_ASSERT((q->bits == 4 || q->bits == 8) && n >= 0);
    __m256 vmn = _mm256_setzero_ps(), vmx = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vmn = _mm256_min_ps(vmn, v);
        vmx = _mm256_max_ps(vmx, v);
    }
    float mn = hmin8(vmn), mx = hmax8(vmx);
    for (; i < n; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    float s, r, z, qlo, qhi;
    rq_actq_params(q, mn, mx, &s, &r, &z, &qlo, &qhi);
    if (!(s > 0.0f)) return;
    const __m256 vs = _mm256_set1_ps(s), vr = _mm256_set1_ps(r), vz = _mm256_set1_ps(z), vlo = _mm256_set1_ps(qlo),
                 vhi = _mm256_set1_ps(qhi);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 c = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vr), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        c = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(c, vz), vlo), vhi);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(vs, _mm256_sub_ps(c, vz)));
    }
    for (; i < n; i++) {
        float c = rintf(x[i] * r) + z;
        c = fminf(fmaxf(c, qlo), qhi);
        x[i] = s * (c - z);
    }
}

void rq_kv4_dequant_rows_avx2(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy) {
    RQ_ASSERT(group >= RQ_KV4_GROUP_ALIGN && group % RQ_KV4_GROUP_ALIGN == 0 && n % group == 0);
    const int64_t gb = rq_kv4_group_bytes(group), ng = n / group;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *b = src + r * ng * gb;
        float *yr = y + r * ldy;
        for (int64_t g = 0; g < ng; g++, b += gb) {
            rq_kv4_hdr h;
            memcpy(&h, b, sizeof h);
            const __m256 vs = _mm256_set1_ps(rq_fp16_to_fp32(h.d)), vz = _mm256_set1_ps((float)h.z);
            const uint8_t *qs = b + sizeof h;
            float *yg = yr + g * group;
            for (int64_t j = 0; j < group; j += 8) {
                uint32_t w;
                memcpy(&w, qs + j / 2, 4);
                __m128i v = _mm_cvtsi32_si128((int)w);
                __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
                __m128i codes = _mm_unpacklo_epi8(lo, hi); /* channels j .. j+7 in order */
                __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes));
                _mm256_storeu_ps(yg + j, _mm256_mul_ps(vs, _mm256_sub_ps(c, vz)));
            }
        }
    }
}

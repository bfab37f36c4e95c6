/* AVX2 dequantization of low-bit rows (W2U, W2L, W4U) (kernels/gemv.h rq_lowbit_dequant): as the AVX-512
 * version with an 8-float table T[i] = lv[i & 3] and vpermps on 8 codes at a time (8
 * code bytes widened, shifted by 2k). W4U: 8 code bytes widened, masked (low nibbles) or
 * shifted by 4 (high nibbles), converted to float, d·(c − z) as the reference computes it.
 * Equal to rq_dequant_lowbit bit for bit. */
#include "kernels/gemv.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 table(const uint8_t *blk, const bool LUT) {
    __m128 lv;
    if (LUT) {
        lv = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)blk));
    } else {
        uint32_t u;
        memcpy(&u, blk, 4);
        const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u)); /* d, z, 0, 0 */
        const __m128 d = _mm_shuffle_ps(h, h, 0x00), z = _mm_shuffle_ps(h, h, 0x55);
        lv = _mm_mul_ps(d, _mm_sub_ps(_mm_setr_ps(0, 1, 2, 3), z));
    }
    return _mm256_set_m128(lv, lv);
}

INLINE void dequant(const uint8_t *src, int64_t n_blocks, float *y, const int G, const bool LUT) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L;
    for (int64_t b = 0; b < n_blocks; b++, src += bb, y += G) {
        const __m256 T = table(src, LUT);
        const uint8_t *qs = src + head;
#pragma GCC unroll 4
        for (int h = 0; h < L / 8; h++) {
            uint64_t u;
            memcpy(&u, qs + 8 * h, 8);
            const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)u));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                _mm256_storeu_ps(y + k * L + 8 * h, _mm256_permutevar8x32_ps(T, _mm256_srli_epi32(v, 2 * k)));
        }
    }
}

INLINE void dequant4(const uint8_t *src, int64_t n_blocks, float *y, const int G) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L;
    const __m256i m15 = _mm256_set1_epi32(15);
    for (int64_t b = 0; b < n_blocks; b++, src += bb, y += G) {
        uint32_t u;
        memcpy(&u, src, 4);
        const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u)); /* d, z, 0, 0 */
        const __m256 d = _mm256_broadcastss_ps(h), z = _mm256_broadcastss_ps(_mm_movehdup_ps(h));
        const uint8_t *qs = src + RQ_W4U_HEAD;
#pragma GCC unroll 8
        for (int j = 0; j < L / 8; j++) {
            uint64_t c8;
            memcpy(&c8, qs + 8 * j, 8);
            const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)c8));
            const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, m15));
            const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
            _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(d, _mm256_sub_ps(lo, z)));
            _mm256_storeu_ps(y + L + 8 * j, _mm256_mul_ps(d, _mm256_sub_ps(hi, z)));
        }
    }
}

void rq_lowbit_dequant_avx2(int type, const void *src, float *y, int64_t n) {
    const int64_t g = rq_lowbit_group(type), nb = n / g;
    const bool lut = rq_lowbit_is_lut(type);
    if (rq_lowbit_kind_of(type) == RQ_LOWBIT_KIND_W4U) {
        if (g == 32) dequant4(src, nb, y, 32);
        else if (g == 64) dequant4(src, nb, y, 64);
        else dequant4(src, nb, y, 128);
        return;
    }
    if (g == 32) lut ? dequant(src, nb, y, 32, true) : dequant(src, nb, y, 32, false);
    else if (g == 64) lut ? dequant(src, nb, y, 64, true) : dequant(src, nb, y, 64, false);
    else lut ? dequant(src, nb, y, 128, true) : dequant(src, nb, y, 128, false);
}

/* AVX-512 dequantization of low-bit rows (W2U, W2L, W4U) (kernels/gemv.h rq_lowbit_dequant): per group, the 4
 * levels (W2L: v_k; W2U: d·(k − z), computed as the reference does) broadcast to a
 * 16-float table T[i] = lv[i & 3], and vpermps picks lv[code] for 16 codes at a time from
 * the shifted code bytes (the layout of format/lowbit.h puts 16 consecutive codes in one
 * 16-byte load shifted by 2k). W4U: the 16 values d·(c − z) fill the table and 16 code
 * bytes, widened, index it by their low nibbles and, shifted by 4, by their high ones.
 * The values equal rq_dequant_lowbit's bit for bit. */
#include "kernels/gemv.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

INLINE __m512 table(const uint8_t *blk, const bool LUT) {
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
    return _mm512_broadcast_f32x4(lv);
}

INLINE void dequant(const uint8_t *src, int64_t n_blocks, float *y, const int G, const bool LUT) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L;
    for (int64_t b = 0; b < n_blocks; b++, src += bb, y += G) {
        const __m512 T = table(src, LUT);
        const uint8_t *qs = src + head;
        if (G == 32) {
            uint64_t u;
            memcpy(&u, qs, 8);
            const __m512i v = _mm512_cvtepu8_epi32(_mm_set1_epi64x((long long)u));
            const __m512i i0 = _mm512_srlv_epi32(v, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2));
            const __m512i i1 = _mm512_srlv_epi32(v, _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6));
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(i0, T));
            _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(i1, T));
        } else {
#pragma GCC unroll 2
            for (int h = 0; h < L / 16; h++) {
                const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * h)));
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    _mm512_storeu_ps(y + k * L + 16 * h, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 2 * k), T));
            }
        }
    }
}

INLINE void dequant4(const uint8_t *src, int64_t n_blocks, float *y, const int G) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L;
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t b = 0; b < n_blocks; b++, src += bb, y += G) {
        uint32_t u;
        memcpy(&u, src, 4);
        const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u)); /* d, z, 0, 0 */
        const __m512 d = _mm512_broadcastss_ps(h), z = _mm512_broadcastss_ps(_mm_movehdup_ps(h));
        const __m512 T = _mm512_mul_ps(d, _mm512_sub_ps(iota, z));
        const uint8_t *qs = src + RQ_W4U_HEAD;
#pragma GCC unroll 4
        for (int j = 0; j < L / 16; j++) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * j)));
            _mm512_storeu_ps(y + 16 * j, _mm512_permutexvar_ps(v, T));
            _mm512_storeu_ps(y + L + 16 * j, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), T));
        }
    }
}

void rq_lowbit_dequant_avx512(int type, const void *src, float *y, int64_t n) {
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

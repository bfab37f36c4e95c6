/* AVX2 Q8_0 GEMV (kernels/qgemv.h): per block, the 32 int8 weights widened to floats in
 * four 8-lane vectors, multiplied with x (FMA into a block sum), and the block sum added
 * to the row's accumulator scaled by d (one more FMA). One row at a time, in memory order
 * (see x86/q8_0_avx512.c for why). */
#include "kernels/qgemv.h"

#include "format/format.h"
#include "kernels/x86/dot_x86.h"

#include <immintrin.h>
#include <string.h>

static inline __m256 block_sum(const rq_block_q8_0 *b, const float *x) {
    const __m128i q0 = _mm_loadu_si128((const __m128i *)b->qs);
    const __m128i q1 = _mm_loadu_si128((const __m128i *)(b->qs + 16));
    __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))), _mm256_loadu_ps(x + 24), s);
    return s;
}

void rq_q8_0_gemv_avx2(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *a = w;
    for (int64_t r = 0; r < out; r++, a += nb) {
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[b].d)), block_sum(a + b, x + b * RQ_QK8_0), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[b + 1].d)), block_sum(a + b + 1, x + (b + 1) * RQ_QK8_0),
                                   acc1);
        }
        if (b < nb) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[b].d)), block_sum(a + b, x + b * RQ_QK8_0), acc0);
        y[r] = hsum256(_mm256_add_ps(acc0, acc1));
    }
}

void rq_q8_0_gemv_q8_avx2(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y) {
    q8_0_gemv_q8_rows(w, out, in, xq, xd, y, false);
}

/* R16 layout (qgemv.h) without VNNI: per step, each half of the 16 rows (8 lanes) gets its
 * signed weights back (code ^ 0x80) and the products by s8_dot256 (dot_x86.h). */
void rq_q8_0_r16_gemv_q8_avx2(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                              const int32_t *xs, float *y) {
    (void)xs;
    const int64_t nb = in / RQ_QK8_0;
    const uint8_t *blk = wr;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t g = 0; g < out / RQ_Q8R16_ROWS; g++) {
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++, blk += RQ_Q8R16_BLOCK_BYTES) {
            const uint8_t *c = blk + 2 * RQ_Q8R16_ROWS;
            const int8_t *xb = xq + b * RQ_QK8_0;
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                int32_t xv;
                memcpy(&xv, xb + 4 * k, 4);
                const __m256i x = _mm256_set1_epi32(xv);
                const __m256i w0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(c + 64 * k)), bias);
                const __m256i w1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(c + 64 * k + 32)), bias);
                s0 = _mm256_add_epi32(s0, s8_dot256(w0, x, false));
                s1 = _mm256_add_epi32(s1, s8_dot256(w1, x, false));
            }
            const __m256 d0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), _mm256_set1_ps(xd[b]));
            const __m256 d1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))), _mm256_set1_ps(xd[b]));
            acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(s0), acc0);
            acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(s1), acc1);
        }
        _mm256_storeu_ps(y + g * RQ_Q8R16_ROWS, acc0);
        _mm256_storeu_ps(y + g * RQ_Q8R16_ROWS + 8, acc1);
    }
}

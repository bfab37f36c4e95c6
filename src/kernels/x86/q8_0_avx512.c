/* AVX-512 Q8_0 GEMV (kernels/qgemv.h): as the AVX2 version, 16 lanes wide: a block's 32
 * int8 weights are two 16-float vectors (vpmovsxbd + vcvtdq2ps), FMA'd with x into a
 * block sum that is added to the row accumulator scaled by d.
 * One row at a time, in memory order: measured on the Zen 5 dev VM (1 thread, 49152 x 576,
 * weights cold), one sequential stream runs at 30 GB/s, while interleaving 2, 4 or 8 rows
 * (to share the x loads) drops to 9-10 GB/s with or without software prefetch: the
 * hardware prefetcher follows one stream, not several 612-byte-strided ones. With the
 * weights in L2 all variants reach ~44 GB/s (about 41 G weights/s). */
#include "kernels/qgemv.h"

#include "format/format.h"
#include "kernels/x86/dot_x86.h"

#include <immintrin.h>
#include <string.h>

static inline __m512 block_sum(const rq_block_q8_0 *b, const float *x) {
    const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs)));
    const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16))));
    return _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(x)));
}

void rq_q8_0_gemv_avx512(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *a = w;
    for (int64_t r = 0; r < out; r++, a += nb) {
        /* two accumulators: consecutive blocks do not wait on each other's FMA */
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            acc0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(a[b].d)), block_sum(a + b, x + b * RQ_QK8_0), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(a[b + 1].d)), block_sum(a + b + 1, x + (b + 1) * RQ_QK8_0),
                                   acc1);
        }
        if (b < nb) acc0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(a[b].d)), block_sum(a + b, x + b * RQ_QK8_0), acc0);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
}

void rq_q8_0_gemv_q8_avx512(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y) {
    q8_0_gemv_q8_rows(w, out, in, xq, xd, y, true);
}

/* R16 layout (qgemv.h): per block, 8 vpdpbusd of 64 code bytes against x's 4 codes
 * broadcast (two chains), the 128·xs bias taken off, then one FMA of the 16 rows' scales. */
void rq_q8_0_r16_gemv_q8_avx512(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                                const int32_t *xs, float *y) {
    const int64_t nb = in / RQ_QK8_0;
    const uint8_t *blk = wr;
    for (int64_t g = 0; g < out / RQ_Q8R16_ROWS; g++) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++, blk += RQ_Q8R16_BLOCK_BYTES) {
            const uint8_t *c = blk + 2 * RQ_Q8R16_ROWS;
            const int8_t *xb = xq + b * RQ_QK8_0;
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
            for (int k = 0; k < 8; k += 2) {
                int32_t x0, x1;
                memcpy(&x0, xb + 4 * k, 4);
                memcpy(&x1, xb + 4 * k + 4, 4);
                s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(c + 64 * k), _mm512_set1_epi32(x0));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(c + 64 * k + 64), _mm512_set1_epi32(x1));
            }
            const __m512i s = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(128 * xs[b]));
            const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)), _mm512_set1_ps(xd[b]));
            acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc);
        }
        _mm512_storeu_ps(y + g * RQ_Q8R16_ROWS, acc);
    }
}

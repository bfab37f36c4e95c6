/* AVX2 (+FMA, F16C) W4U dot kernels (4-bit uniform, format/lowbit.h), used by the AVX2 kernel
 * set of x86/lowbit_w2_avx2.c; the baseline flags (x86-64-v3) compile this file.
 *
 * Float activations: AVX2's vpermps has only 8 table entries, so the codes are converted
 * instead: 8 code bytes widened to 32-bit lanes (masked with 15 for the low nibbles,
 * shifted by 4 for the high ones) and converted to float, once per group for all tokens;
 * per token Σ c·x by lane (one FMA per 8 weights), then d·(Σ c·x − z·X_l) per lane with
 * the activations' lane sums X_l (rq_lowbit_act.xlane) and one FMA into the row's sum. The
 * first version computed ŵ = d·(c − z) per weight (convert, subtract, multiply, FMA):
 * 4096×4096 GEMV, 1 thread, 930 µs; this one: see bench_kernels (RQ_CPU=avx2).
 * Integer activations: 32 consecutive codes per register (g = 32: the 16 code bytes in
 * both 128-bit lanes, the upper shifted by 4; g = 64, 128: 32 code bytes masked, or
 * shifted by 4 and masked), vpmaddubsw(codes, q) then vpmaddwd(·, 1) give exact int32
 * partial sums of Σ code·q (per int16: at most 4 parts · 2 · 15 · 127 = 15240, no
 * saturation); per group: convert, subtract z·Q_l per lane (the lane sums of q,
 * kernels/lowbit_impl.h), FMA with the scale, as for W2U in x86/lowbit_w2_avx2.c. */
#include "kernels/x86/dot_x86.h"

/* ------------------------------------------------------------ float activations */

INLINE void dot_f32(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                    const int NT, const int G) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L, NC = L / 8;
    const int64_t in = a->in, ng = in / G;
    const __m256i m15 = _mm256_set1_epi32(15);
    const float *x[RQ_LOWBIT_TILE], *xl[RQ_LOWBIT_TILE];
    __m256 acc[RQ_LOWBIT_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        x[t] = a->xf + (t0 + t) * in;
        xl[t] = a->xlane + (t0 + t) * ng * 8;
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + RQ_W4U_HEAD;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        __m256 d, z;
        scale_zero256(blk, &d, &z);
        /* the codes as floats, vector k·NC + c = elements k·L + 8c .. +7 */
        __m256 cf[16];
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) {
            const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)load_u64(qs + 8 * c)));
            cf[c] = _mm256_cvtepi32_ps(_mm256_and_si256(v, m15));
            cf[NC + c] = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
        }
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *xb = x[t] + b * G;
            __m256 s0 = _mm256_mul_ps(cf[0], _mm256_loadu_ps(xb)), s1 = _mm256_mul_ps(cf[NC], _mm256_loadu_ps(xb + L));
#pragma GCC unroll 8
            for (int c = 1; c < NC; c++) {
                s0 = _mm256_fmadd_ps(cf[c], _mm256_loadu_ps(xb + 8 * c), s0);
                s1 = _mm256_fmadd_ps(cf[NC + c], _mm256_loadu_ps(xb + L + 8 * c), s1);
            }
            /* per lane d·(Σ c·x − z·X_l) (lowbit_impl.h, xlane) */
            const __m256 D = _mm256_fnmadd_ps(z, _mm256_loadu_ps(xl[t] + b * 8), _mm256_add_ps(s0, s1));
            acc[t] = _mm256_fmadd_ps(d, D, acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum256(acc[t]);
}

/* ------------------------------------------------------------ integer activations */

/* Codes of 32 consecutive elements, part p (elements 32p .. 32p+31) of a group of G. */
INLINE __m256i codes32(const uint8_t *qs, const int G, const int p) {
    const __m256i m15 = _mm256_set1_epi8(15);
    if (G == 32) { /* 16 bytes in both lanes; the upper lane shifted by 4 */
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
        return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), m15);
    }
    /* G = 64: part p is nibble p of the 32 bytes; G = 128: part p is nibble p / 2 of
     * bytes 32·(p % 2) .. +31 */
    const int half = G == 64 ? 0 : p % 2, nib = G == 64 ? p : p / 2;
    const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * half));
    return _mm256_and_si256(nib ? _mm256_srli_epi32(v, 4) : v, m15);
}

INLINE void dot_i8(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L, NV = G / 32;
    const int64_t in = a->in, ng = in / G;
    const int8_t *q[RQ_LOWBIT_TILE];
    const float *ql[RQ_LOWBIT_TILE]; /* lane sums of q, 8 per group (lowbit_impl.h) */
    __m256 acc[RQ_LOWBIT_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        q[t] = a->q + (t0 + t) * in;
        ql[t] = a->qlane + (t0 + t) * ng * 8;
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + RQ_W4U_HEAD;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        __m256i c[4];
#pragma GCC unroll 4
        for (int p = 0; p < NV; p++) c[p] = codes32(qs, G, p);
        __m256 d, z;
        scale_zero256(blk, &d, &z);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) /* int16 sums <= 4·2·15·127 */
            acc[t] = uniform_i8_step256(c, NV, q[t] + b * G, ql[t] + b * 8, d, z, acc[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum256(acc[t]);
}

/* ------------------------------------------------------------ instantiations */

#define RQ_DOT_NT(fn, G)                                                                         \
    static void fn##_##G(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        switch (nt) {                                                                            \
        case 1: fn(r, a, t0, b0, b1, o, 1, G); break;                                            \
        case 2: fn(r, a, t0, b0, b1, o, 2, G); break;                                            \
        case 3: fn(r, a, t0, b0, b1, o, 3, G); break;                                            \
        default: fn(r, a, t0, b0, b1, o, 4, G); break;                                           \
        }                                                                                        \
    }
RQ_DOT_NT(dot_f32, 32) RQ_DOT_NT(dot_f32, 64) RQ_DOT_NT(dot_f32, 128)
RQ_DOT_NT(dot_i8, 32) RQ_DOT_NT(dot_i8, 64) RQ_DOT_NT(dot_i8, 128)

const rq_lowbit_dot_fn rq_w4_f32_avx2[3] = {dot_f32_32, dot_f32_64, dot_f32_128};
const rq_lowbit_dot_fn rq_w4_i8_avx2[3] = {dot_i8_32, dot_i8_64, dot_i8_128};

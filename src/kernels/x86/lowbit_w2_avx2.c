/* AVX2 (+FMA, F16C) W2U/W2L dot kernels and the AVX2 low-bit kernel set (its W4U entries come
 * from x86/lowbit_w4_avx2.c); the baseline flags (x86-64-v3) compile this file.
 *
 * Float activations (W2U and W2L alike): the group's 4 dequantized values lv[0..3] are
 * put twice into an 8-float table T (T[i] = lv[i & 3]); the code bytes are widened to
 * 32-bit lanes once per group and shifted right by 2k; vpermps uses the low 3 bits of a
 * lane, i.e. code_k + 4·(bit 0 of code_k+1), so T[that] = lv[code_k]: one shift, one
 * permute and one FMA per 8 weights, and ŵ equals the reference dequantization exactly.
 *
 * Integer activations, W2U: codes unpacked to bytes (broadcast, vpsrlvd by 2k, and 3),
 * vpmaddubsw(codes, q) then vpmaddwd(·, 1) give exact int32 partial sums of Σ code·q;
 * per group: convert, subtract z·Q_l per lane (Q_l: the lane's Σq, precomputed per
 * token, lowbit_impl.h), FMA with the scale, so that no lane sums the uncentred d·D.
 * Integer activations, W2L (bit-plane method): three dot products per group with the
 * planes code, code & 2 and (code + 1) & 4 (= 4·[code == 3]); see dot_i8 below for how
 * they give Σ_k v_k·S_k, combined per lane with v0·Q_l before the accumulation. */
#include "kernels/x86/dot_x86.h"

#include <math.h>

/* The group's 4 dequantized values (the same float operations as the reference). */
INLINE __m128 levels(const uint8_t *blk, const bool LUT) {
    if (LUT) return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)blk));
    const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)load_u32(blk))); /* d, z, 0, 0 */
    const __m128 d = _mm_shuffle_ps(h, h, 0x00), z = _mm_shuffle_ps(h, h, 0x55);
    return _mm_mul_ps(d, _mm_sub_ps(_mm_setr_ps(0, 1, 2, 3), z));
}

/* ------------------------------------------------------------ float activations */

INLINE void dot_f32(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                    const int NT, const int G, const bool LUT) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L, NC = L / 8;
    const float *x[RQ_LOWBIT_TILE];
    __m256 acc[RQ_LOWBIT_TILE][4];
    tile_start256(a, t0, NT, x, acc);
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + head;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        const __m128 lv = levels(blk, LUT);
        const __m256 T = _mm256_insertf128_ps(_mm256_castps128_ps256(lv), lv, 1);
        __m256i idx[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) idx[c] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * c)));
        int s = 0;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++, s++) {
                const __m256 w = _mm256_permutevar8x32_ps(T, _mm256_srli_epi32(idx[c], 2 * k));
                tile_fma256(w, x, b * G + k * L + 8 * c, s, NT, acc);
            }
        }
    }
    tile_finish256(acc, NT, out);
}

/* ------------------------------------------------------------ integer activations */

/* Codes of 32 consecutive elements, part p (elements 32p .. 32p+31) of a group of G. */
INLINE __m256i codes32(const uint8_t *qs, const int G, const int p) {
    const __m256i m3 = _mm256_set1_epi8(3);
    if (G == 32) { /* 8 bytes; qword k shifted by 2k gives elements 8k .. 8k+7 */
        const __m256i v = _mm256_set1_epi64x((long long)load_u64(qs));
        return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6)), m3);
    }
    if (G == 64) { /* 16 bytes in both lanes; lane h shifted by 2(2p + h) */
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
        const int s0 = 4 * p, s1 = 4 * p + 2;
        return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(s0, s0, s0, s0, s1, s1, s1, s1)), m3);
    }
    /* G == 128: 32 bytes shifted by 2p give elements 32p .. 32p+31 */
    return _mm256_and_si256(_mm256_srli_epi32(_mm256_loadu_si256((const __m256i *)qs), 2 * p), m3);
}

INLINE void dot_i8(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G, const bool LUT) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L, NV = G / 32;
    const int64_t in = a->in, ng = in / G;
    const __m256i ones = _mm256_set1_epi16(1);
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
        const uint8_t *blk = row + b * bb, *qs = blk + head;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        __m256i c[4];
#pragma GCC unroll 4
        for (int p = 0; p < NV; p++) c[p] = codes32(qs, G, p);
        if (!LUT) {
            __m256 d, z;
            scale_zero256(blk, &d, &z);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) /* int16 sums <= 4·2·3·127 */
                acc[t] = uniform_i8_step256(c, NV, q[t] + b * G, ql[t] + b * 8, d, z, acc[t]);
        } else {
            /* With D1 = Σ code·q, D2 = Σ (code & 2)·q = 2(S2 + S3), D3 = Σ 4[code = 3]·q = 4·S3
             * and Q = Σ q:  Σ_k v_k S_k = v0·Q + c1·D1 + c2·D2 + c3·D3 with
             * c1 = v1 − v0, c2 = (v2 − 2v1 + v0)/2, c3 = (v3 − v2 − v1 + v0)/4
             * (check per code k: v0 + k·c1 + 2[k>=2]·c2 + 4[k=3]·c3 = v_k). */
            const __m128 lv = levels(blk, true);
            float v[4];
            _mm_storeu_ps(v, lv);
            const __m256 v0 = _mm256_set1_ps(v[0]);
            const __m256 c1 = _mm256_set1_ps(v[1] - v[0]);
            const __m256 c2 = _mm256_set1_ps(0.5f * (v[2] - 2 * v[1] + v[0]));
            const __m256 c3 = _mm256_set1_ps(0.25f * (v[3] - v[2] - v[1] + v[0]));
            const __m256i two = _mm256_set1_epi8(2), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
            __m256i p2[4], p3[4];
#pragma GCC unroll 4
            for (int p = 0; p < NV; p++) {
                p2[p] = _mm256_and_si256(c[p], two);
                p3[p] = _mm256_and_si256(_mm256_add_epi8(c[p], one), four);
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m256i s1 = _mm256_setzero_si256(), s2 = s1, s3 = s1;
#pragma GCC unroll 4
                for (int p = 0; p < NV; p++) {
                    const __m256i qv = _mm256_loadu_si256((const __m256i *)(q[t] + b * G + 32 * p));
                    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c[p], qv));
                    s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(p2[p], qv));
                    s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(p3[p], qv));
                }
                /* the group's value per lane, Σ_lane v_code·q, then into the accumulator */
                __m256 s = _mm256_mul_ps(v0, _mm256_loadu_ps(ql[t] + b * 8));
                s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s1, ones)), c1, s);
                s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s2, ones)), c2, s);
                s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s3, ones)), c3, s);
                acc[t] = _mm256_add_ps(acc[t], s);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum256(acc[t]);
}

/* ------------------------------------------------------------ instantiations */

#define RQ_DOT_NT(fn, G, LUT)                                                            \
    static void fn##_##LUT##_##G(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, \
                                 int64_t b0, int64_t b1, float *o) {                     \
        switch (nt) {                                                                    \
        case 1: fn(r, a, t0, b0, b1, o, 1, G, LUT); break;                               \
        case 2: fn(r, a, t0, b0, b1, o, 2, G, LUT); break;                               \
        case 3: fn(r, a, t0, b0, b1, o, 3, G, LUT); break;                               \
        default: fn(r, a, t0, b0, b1, o, 4, G, LUT); break;                              \
        }                                                                                \
    }
#define RQ_DOT_ALL(fn)                                                                   \
    RQ_DOT_NT(fn, 32, false) RQ_DOT_NT(fn, 64, false) RQ_DOT_NT(fn, 128, false)          \
    RQ_DOT_NT(fn, 32, true) RQ_DOT_NT(fn, 64, true) RQ_DOT_NT(fn, 128, true)
RQ_DOT_ALL(dot_f32)
RQ_DOT_ALL(dot_i8)

/* ------------------------------------------------------------ activation quantization */

static float act_quant(const float *x, int64_t n, int qmax, int8_t *q) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), absmask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (amax == 0) {
        memset(q, 0, (size_t)n);
        return 0;
    }
    const float inv = (float)qmax / amax;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i hi = _mm256_set1_epi32(qmax), lo = _mm256_set1_epi32(-qmax);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            /* cvtps rounds to nearest even, like nearbyintf in the reference */
            v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vinv));
            v[k] = _mm256_max_epi32(_mm256_min_epi32(v[k], hi), lo);
        }
        /* packs work per 128-bit lane; the permute restores element order */
        const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(w, perm));
    }
    for (; i < n; i++) {
        float r = nearbyintf(x[i] * inv);
        q[i] = (int8_t)fminf(fmaxf(r, (float)-qmax), (float)qmax);
    }
    return amax / (float)qmax;
}

static const rq_lowbit_dot_fn f32_tab[2][3] = {{dot_f32_false_32, dot_f32_false_64, dot_f32_false_128},
                                            {dot_f32_true_32, dot_f32_true_64, dot_f32_true_128}};
static const rq_lowbit_dot_fn i8_tab[2][3] = {{dot_i8_false_32, dot_i8_false_64, dot_i8_false_128},
                                           {dot_i8_true_32, dot_i8_true_64, dot_i8_true_128}};

const rq_lowbit_kernel_set rq_lowbit_kernels_avx2 = {
    .name = "avx2",
    .f32 = {f32_tab[0], f32_tab[1], rq_w4_f32_avx2},
    .f32_xlane = {false, false, true},
    .i8 = {i8_tab[0], i8_tab[1], rq_w4_i8_avx2},
    .act_quant = act_quant,
    .lanes = 8,
    .sc = {rq_w2sc_avx2[0], rq_w2sc_avx2[1]},
    .sc4 = {rq_w2sc4_avx2[0], rq_w2sc4_avx2[1]},
};

/* AVX-512 (F/BW/VL/DQ) W2 dot kernels, two sets: with AVX512-VNNI (vpdpbusd) and
 * without (vpmaddubsw + vpmaddwd). Same methods as x86/lowbit_w2_avx2.c, 16 lanes wide:
 *
 * Float activations: the 4 dequantized values broadcast to a 16-float table
 * (T[i] = lv[i & 3]); vpermps uses the low 4 bits of a lane, code_k + 4·code_k+1, so one
 * shift + one permute + one FMA per 16 weights.
 * Integer activations: the g/4 code bytes broadcast to the 128-bit lanes and shifted by
 * 2k per lane (vpsrlvd) give 64 consecutive codes in one register (g = 64: one register
 * per group; g = 128: two; g = 32: one 256-bit register), then vpdpbusd(codes, q);
 * the zero point (W2U) or the lowest level (W2L bit planes) enters per lane through the
 * lane sums of q (lowbit_impl.h), before the lanes are accumulated over the groups. */
#include "kernels/x86/dot_x86.h"

#include <math.h>

INLINE __m128 levels(const uint8_t *blk, const bool LUT) {
    if (LUT) return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)blk));
    const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)load_u32(blk))); /* d, z, 0, 0 */
    const __m128 d = _mm_shuffle_ps(h, h, 0x00), z = _mm_shuffle_ps(h, h, 0x55);
    return _mm_mul_ps(d, _mm_sub_ps(_mm_setr_ps(0, 1, 2, 3), z));
}

/* ------------------------------------------------------------ float activations */

INLINE void dot_f32(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                    const int NT, const int G, const bool LUT) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L;
    const float *x[RQ_LOWBIT_TILE];
    __m512 acc[RQ_LOWBIT_TILE][4];
    tile_start512(a, t0, NT, x, acc);
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + head;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        const __m512 T = _mm512_broadcast_f32x4(levels(blk, LUT));
        /* NW vectors of 16 weights per group, in element order */
        __m512i idx[8];
        int NW;
        if (G == 32) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_set1_epi64x((long long)load_u64(qs)));
            idx[0] = _mm512_srlv_epi32(v, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2));
            idx[1] = _mm512_srlv_epi32(v, _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6));
            NW = 2;
        } else if (G == 64) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
            idx[0] = v;
            idx[1] = _mm512_srli_epi32(v, 2);
            idx[2] = _mm512_srli_epi32(v, 4);
            idx[3] = _mm512_srli_epi32(v, 6);
            NW = 4;
        } else {
            const __m512i v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
            const __m512i v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16)));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                idx[2 * k] = _mm512_srli_epi32(v0, 2 * k);
                idx[2 * k + 1] = _mm512_srli_epi32(v1, 2 * k);
            }
            NW = 8;
        }
        tile_perm_fma512(idx, NW, T, x, b * G, NT, acc);
    }
    tile_finish512(acc, NT, out);
}

/* ------------------------------------------------------------ integer activations */

/* Codes of 64 consecutive elements 64p .. 64p+63 of a group of G = 64 or 128. */
INLINE __m512i codes64(const uint8_t *qs, const int G, const int p) {
    const __m512i m3 = _mm512_set1_epi8(3);
    if (G == 64) {
        const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs));
        return _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6)), m3);
    }
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    const int s0 = 4 * p, s1 = 4 * p + 2;
    return _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_setr_epi32(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1)), m3);
}
/* Codes of the 32 elements of a G = 32 group. */
INLINE __m256i codes32(const uint8_t *qs) {
    const __m256i v = _mm256_set1_epi64x((long long)load_u64(qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6)), _mm256_set1_epi8(3));
}

/* Per group and token: the int32 lane partial sums of up to three planes, converted. */
INLINE void group_dots(const uint8_t *qs, const int8_t *q, const int G, const bool LUT, const bool VNNI,
                       __m512 *D1, __m512 *D2, __m512 *D3) {
    if (G == 32) {
        const __m256i c = codes32(qs), qv = _mm256_loadu_si256((const __m256i *)q), z = _mm256_setzero_si256();
        *D1 = _mm512_castps256_ps512(_mm256_cvtepi32_ps(dp256(z, c, qv, VNNI)));
        if (LUT) {
            const __m256i p2 = _mm256_and_si256(c, _mm256_set1_epi8(2));
            const __m256i p3 = _mm256_and_si256(_mm256_add_epi8(c, _mm256_set1_epi8(1)), _mm256_set1_epi8(4));
            *D2 = _mm512_castps256_ps512(_mm256_cvtepi32_ps(dp256(z, p2, qv, VNNI)));
            *D3 = _mm512_castps256_ps512(_mm256_cvtepi32_ps(dp256(z, p3, qv, VNNI)));
        }
        return;
    }
    __m512i s1 = _mm512_setzero_si512(), s2 = s1, s3 = s1;
#pragma GCC unroll 2
    for (int p = 0; p < G / 64; p++) {
        const __m512i c = codes64(qs, G, p), qv = _mm512_loadu_si512(q + 64 * p);
        s1 = dp512(s1, c, qv, VNNI);
        if (LUT) {
            const __m512i p2 = _mm512_and_si512(c, _mm512_set1_epi8(2));
            const __m512i p3 = _mm512_and_si512(_mm512_add_epi8(c, _mm512_set1_epi8(1)), _mm512_set1_epi8(4));
            s2 = dp512(s2, p2, qv, VNNI);
            s3 = dp512(s3, p3, qv, VNNI);
        }
    }
    *D1 = _mm512_cvtepi32_ps(s1);
    if (LUT) {
        *D2 = _mm512_cvtepi32_ps(s2);
        *D3 = _mm512_cvtepi32_ps(s3);
    }
}

INLINE void dot_i8(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G, const bool LUT, const bool VNNI) {
    const int L = G / 4, head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + L;
    const int64_t in = a->in, ng = in / G;
    const int W = G == 32 ? 8 : 16; /* lanes per group, as the driver computes them */
    const int8_t *q[RQ_LOWBIT_TILE];
    const float *ql[RQ_LOWBIT_TILE]; /* lane sums of q (lowbit_impl.h) */
    __m512 acc[RQ_LOWBIT_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        q[t] = a->q + (t0 + t) * in;
        ql[t] = a->qlane + (t0 + t) * ng * W;
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + head;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        if (!LUT) {
            __m512 d, z;
            scale_zero512(blk, &d, &z);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512 D1, D2, D3;
                group_dots(qs, q[t] + b * G, G, false, VNNI, &D1, &D2, &D3);
                /* per lane D_l − z·Q_l (exact for an integer z), then the scale */
                if (G == 32) {
                    const __m256 D = _mm256_fnmadd_ps(_mm512_castps512_ps256(z), _mm256_loadu_ps(ql[t] + b * W), _mm512_castps512_ps256(D1));
                    acc[t] = _mm512_castps256_ps512(_mm256_fmadd_ps(D, _mm512_castps512_ps256(d), _mm512_castps512_ps256(acc[t])));
                } else {
                    acc[t] = _mm512_fmadd_ps(_mm512_fnmadd_ps(z, _mm512_loadu_ps(ql[t] + b * W), D1), d, acc[t]);
                }
            }
        } else {
            /* bit planes, as in lowbit_w2_avx2.c: Σ_k v_k S_k = v0·Q + c1·D1 + c2·D2 + c3·D3 */
            float v[4];
            _mm_storeu_ps(v, levels(blk, true));
            const __m512 v0 = _mm512_set1_ps(v[0]);
            const __m512 c1 = _mm512_set1_ps(v[1] - v[0]);
            const __m512 c2 = _mm512_set1_ps(0.5f * (v[2] - 2 * v[1] + v[0]));
            const __m512 c3 = _mm512_set1_ps(0.25f * (v[3] - v[2] - v[1] + v[0]));
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512 D1, D2, D3;
                group_dots(qs, q[t] + b * G, G, true, VNNI, &D1, &D2, &D3);
                /* the group's value per lane, Σ_lane v_code·q, then into the accumulator */
                if (G == 32) {
                    __m256 s = _mm256_mul_ps(_mm512_castps512_ps256(v0), _mm256_loadu_ps(ql[t] + b * W));
                    s = _mm256_fmadd_ps(_mm512_castps512_ps256(D1), _mm512_castps512_ps256(c1), s);
                    s = _mm256_fmadd_ps(_mm512_castps512_ps256(D2), _mm512_castps512_ps256(c2), s);
                    s = _mm256_fmadd_ps(_mm512_castps512_ps256(D3), _mm512_castps512_ps256(c3), s);
                    acc[t] = _mm512_castps256_ps512(_mm256_add_ps(_mm512_castps512_ps256(acc[t]), s));
                } else {
                    __m512 s = _mm512_mul_ps(v0, _mm512_loadu_ps(ql[t] + b * W));
                    s = _mm512_fmadd_ps(D1, c1, s);
                    s = _mm512_fmadd_ps(D2, c2, s);
                    s = _mm512_fmadd_ps(D3, c3, s);
                    acc[t] = _mm512_add_ps(acc[t], s);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        if (G == 32) {
            /* only the low 8 lanes were used; the upper ones are undefined after the casts */
            const __m256 s = _mm512_castps512_ps256(acc[t]);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            out[t] = _mm_cvtss_f32(h);
        } else {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
    }
}

/* ------------------------------------------------------------ instantiations */

#define RQ_F32_INST(G, LUT)                                                              \
    static void f32_##LUT##_##G(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        switch (nt) {                                                                    \
        case 1: dot_f32(r, a, t0, b0, b1, o, 1, G, LUT); break;                                  \
        case 2: dot_f32(r, a, t0, b0, b1, o, 2, G, LUT); break;                                  \
        case 3: dot_f32(r, a, t0, b0, b1, o, 3, G, LUT); break;                                  \
        default: dot_f32(r, a, t0, b0, b1, o, 4, G, LUT); break;                                 \
        }                                                                                \
    }
#define RQ_I8_INST(G, LUT, VNNI)                                                         \
    static void i8_##LUT##_##G##_##VNNI(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        switch (nt) {                                                                    \
        case 1: dot_i8(r, a, t0, b0, b1, o, 1, G, LUT, VNNI); break;                             \
        case 2: dot_i8(r, a, t0, b0, b1, o, 2, G, LUT, VNNI); break;                             \
        case 3: dot_i8(r, a, t0, b0, b1, o, 3, G, LUT, VNNI); break;                             \
        default: dot_i8(r, a, t0, b0, b1, o, 4, G, LUT, VNNI); break;                            \
        }                                                                                \
    }
RQ_F32_INST(32, false) RQ_F32_INST(64, false) RQ_F32_INST(128, false)
RQ_F32_INST(32, true) RQ_F32_INST(64, true) RQ_F32_INST(128, true)
RQ_I8_INST(32, false, true) RQ_I8_INST(64, false, true) RQ_I8_INST(128, false, true)
RQ_I8_INST(32, true, true) RQ_I8_INST(64, true, true) RQ_I8_INST(128, true, true)
RQ_I8_INST(32, false, false) RQ_I8_INST(64, false, false) RQ_I8_INST(128, false, false)
RQ_I8_INST(32, true, false) RQ_I8_INST(64, true, false) RQ_I8_INST(128, true, false)

/* ------------------------------------------------------------ activation quantization */

static float act_quant(const float *x, int64_t n, int qmax, int8_t *q) {
    __m512 m = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float amax = _mm512_reduce_max_ps(m);
    for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (amax == 0) {
        memset(q, 0, (size_t)n);
        return 0;
    }
    const float inv = (float)qmax / amax;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i hi = _mm512_set1_epi32(qmax), lo = _mm512_set1_epi32(-qmax);
    for (i = 0; i + 16 <= n; i += 16) {
        /* cvtps rounds to nearest even, like nearbyintf in the reference */
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv));
        v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(v));
    }
    for (; i < n; i++) {
        float r = nearbyintf(x[i] * inv);
        q[i] = (int8_t)fminf(fmaxf(r, (float)-qmax), (float)qmax);
    }
    return amax / (float)qmax;
}

static const rq_lowbit_dot_fn f32_tab[2][3] = {{f32_false_32, f32_false_64, f32_false_128},
                                            {f32_true_32, f32_true_64, f32_true_128}};
static const rq_lowbit_dot_fn i8_vnni_tab[2][3] = {{i8_false_32_true, i8_false_64_true, i8_false_128_true},
                                               {i8_true_32_true, i8_true_64_true, i8_true_128_true}};
static const rq_lowbit_dot_fn i8_tab[2][3] = {{i8_false_32_false, i8_false_64_false, i8_false_128_false},
                                          {i8_true_32_false, i8_true_64_false, i8_true_128_false}};

const rq_lowbit_kernel_set rq_lowbit_kernels_avx512 = {
    .name = "avx512-vnni",
    .f32 = {f32_tab[0], f32_tab[1], rq_w4_f32_avx512},
    .i8 = {i8_vnni_tab[0], i8_vnni_tab[1], rq_w4_i8_avx512_vnni},
    .act_quant = act_quant,
    .lanes = 16,
    .sc = {rq_w2sc_avx512_vnni[0], rq_w2sc_avx512_vnni[1]},
    .sc4 = {rq_w2sc4_avx512_vnni[0], rq_w2sc4_avx512_vnni[1]},
};

const rq_lowbit_kernel_set rq_lowbit_kernels_avx512_novnni = {
    .name = "avx512",
    .f32 = {f32_tab[0], f32_tab[1], rq_w4_f32_avx512},
    .i8 = {i8_tab[0], i8_tab[1], rq_w4_i8_avx512},
    .act_quant = act_quant,
    .lanes = 16,
    .sc = {rq_w2sc_avx512[0], rq_w2sc_avx512[1]},
    .sc4 = {rq_w2sc4_avx512[0], rq_w2sc4_avx512[1]},
};

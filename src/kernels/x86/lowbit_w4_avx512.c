/* AVX-512 (F/BW/VL/DQ) W4U dot kernels (4-bit uniform, format/lowbit.h), used by both AVX-512
 * kernel sets of x86/lowbit_w2_avx512.c: float activations, and integer activations with
 * AVX512-VNNI (vpdpbusd) and without (vpmaddubsw + vpmaddwd).
 *
 * Float activations: the group's 16 dequantized values d·(c − z) (computed as the
 * reference does, so each ŵ is exact) fill one 512-bit table; vpermps reads the low 4
 * bits of each 32-bit lane, so 16 code bytes widened to lanes index it directly for the
 * low nibbles (elements 0 .. L-1 of the group) and after one shift by 4 for the high
 * nibbles (elements L .. 2L-1): one permute and one FMA per 16 weights.
 * Integer activations: 64 consecutive codes per 512-bit register (g = 64: the 32 code
 * bytes broadcast to both 256-bit halves, the upper half shifted by 4, masked with 15;
 * g = 128: the 64 bytes masked, then shifted by 4 and masked; g = 32: 32 codes in a
 * 256-bit register the same way), then vpdpbusd(codes, q) gives exact int32 sums per lane
 * (codes <= 15: 4·15·127 per lane and step, and vpmaddubsw's pairs, 2·15·127, stay far
 * from int16 saturation). The zero point enters per lane with the lane sums of q,
 * d·(D_l − z·Q_l), before the lanes are accumulated over the groups (kernels/lowbit_impl.h),
 * exactly as for W2U. */
#include "kernels/x86/dot_x86.h"

/* ------------------------------------------------------------ float activations */

INLINE void dot_f32(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                    const int NT, const int G) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L, NW = G / 16, NH = NW / 2;
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const float *x[RQ_LOWBIT_TILE];
    __m512 acc[RQ_LOWBIT_TILE][4];
    tile_start512(a, t0, NT, x, acc);
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + RQ_W4U_HEAD;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        __m512 d, z;
        scale_zero512(blk, &d, &z);
        const __m512 T = _mm512_mul_ps(d, _mm512_sub_ps(iota, z)); /* T[c] = d·(c − z) */
        /* idx[s]: elements 16s .. 16s+15 of the group (low nibbles first, then high) */
        __m512i idx[8];
#pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * h)));
            idx[h] = v;
            idx[NH + h] = _mm512_srli_epi32(v, 4);
        }
        tile_perm_fma512(idx, NW, T, x, b * G, NT, acc);
    }
    tile_finish512(acc, NT, out);
}

/* ------------------------------------------------------------ integer activations */

/* Codes of the 64 consecutive elements 64p .. 64p+63 of a group of G = 64 or 128. */
INLINE __m512i codes64(const uint8_t *qs, const int G, const int p) {
    const __m512i m15 = _mm512_set1_epi8(15);
    if (G == 64) {
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
        return _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4)), m15);
    }
    const __m512i v = _mm512_loadu_si512(qs);
    return _mm512_and_si512(p ? _mm512_srli_epi32(v, 4) : v, m15);
}
/* Codes of the 32 elements of a G = 32 group. */
INLINE __m256i codes32(const uint8_t *qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(15));
}

INLINE void dot_i8(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G, const bool VNNI) {
    const int L = G / 2, bb = RQ_W4U_HEAD + L, NV = G / 64;
    const int64_t in = a->in, ng = in / G;
    const int W = G == 32 ? 8 : 16; /* lanes per group, as the driver computes them */
    const int8_t *q[RQ_LOWBIT_TILE];
    const float *ql[RQ_LOWBIT_TILE]; /* lane sums of q (lowbit_impl.h) */
    __m512 acc[RQ_LOWBIT_TILE];
    __m256 acc8[RQ_LOWBIT_TILE]; /* G = 32: 8 lanes */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        q[t] = a->q + (t0 + t) * in;
        ql[t] = a->qlane + (t0 + t) * ng * W;
        acc[t] = _mm512_setzero_ps();
        acc8[t] = _mm256_setzero_ps();
    }
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = row + b * bb, *qs = blk + RQ_W4U_HEAD;
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        __m512 d, z;
        scale_zero512(blk, &d, &z);
        if (G == 32) {
            const __m256i c = codes32(qs);
            const __m256 d8 = _mm512_castps512_ps256(d), z8 = _mm512_castps512_ps256(z);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const __m256i s = dp256(_mm256_setzero_si256(), c, _mm256_loadu_si256((const __m256i *)(q[t] + b * G)), VNNI);
                /* per lane D_l − z·Q_l (exact for an integer z), then the scale */
                const __m256 D = _mm256_fnmadd_ps(z8, _mm256_loadu_ps(ql[t] + b * W), _mm256_cvtepi32_ps(s));
                acc8[t] = _mm256_fmadd_ps(D, d8, acc8[t]);
            }
        } else {
            __m512i c[2];
#pragma GCC unroll 2
            for (int p = 0; p < NV; p++) c[p] = codes64(qs, G, p);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 2
                for (int p = 0; p < NV; p++) s = dp512(s, c[p], _mm512_loadu_si512(q[t] + b * G + 64 * p), VNNI);
                const __m512 D = _mm512_fnmadd_ps(z, _mm512_loadu_ps(ql[t] + b * W), _mm512_cvtepi32_ps(s));
                acc[t] = _mm512_fmadd_ps(D, d, acc[t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        if (G == 32) {
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc8[t]), _mm256_extractf128_ps(acc8[t], 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            out[t] = _mm_cvtss_f32(h);
        } else {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
    }
}

/* ------------------------------------------------------------ instantiations */

#define RQ_F32_INST(G)                                                                           \
    static void f32_##G(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        switch (nt) {                                                                            \
        case 1: dot_f32(r, a, t0, b0, b1, o, 1, G); break;                                       \
        case 2: dot_f32(r, a, t0, b0, b1, o, 2, G); break;                                       \
        case 3: dot_f32(r, a, t0, b0, b1, o, 3, G); break;                                       \
        default: dot_f32(r, a, t0, b0, b1, o, 4, G); break;                                      \
        }                                                                                        \
    }
#define RQ_I8_INST(G, VNNI)                                                                      \
    static void i8_##G##_##VNNI(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        switch (nt) {                                                                            \
        case 1: dot_i8(r, a, t0, b0, b1, o, 1, G, VNNI); break;                                  \
        case 2: dot_i8(r, a, t0, b0, b1, o, 2, G, VNNI); break;                                  \
        case 3: dot_i8(r, a, t0, b0, b1, o, 3, G, VNNI); break;                                  \
        default: dot_i8(r, a, t0, b0, b1, o, 4, G, VNNI); break;                                 \
        }                                                                                        \
    }
RQ_F32_INST(32) RQ_F32_INST(64) RQ_F32_INST(128)
RQ_I8_INST(32, true) RQ_I8_INST(64, true) RQ_I8_INST(128, true)
RQ_I8_INST(32, false) RQ_I8_INST(64, false) RQ_I8_INST(128, false)

const rq_lowbit_dot_fn rq_w4_f32_avx512[3] = {f32_32, f32_64, f32_128};
const rq_lowbit_dot_fn rq_w4_i8_avx512_vnni[3] = {i8_32_true, i8_64_true, i8_128_true};
const rq_lowbit_dot_fn rq_w4_i8_avx512[3] = {i8_32_false, i8_64_false, i8_128_false};

/* AVX2 W2 kernels for integer activations over super-chunks of 256 elements
 * (lowbit_impl.h, rq_lowbit_act.scq), g = 64 and 128: the method of lowbit_w2sc_avx512.c in
 * two 256-bit halves (pieces 0-1 and 2-3 of the super-chunk, lanes 0-7 and 8-15 of its
 * lane sums), with vpmaddubsw + vpmaddwd for the dot products. The four steps' int16
 * pair sums stay exact before vpmaddwd: 4 · 2 · 4 · 127 < 32767 for every plane. */
#include "kernels/x86/dot_x86.h"

/* Codes of half h (pieces 2h, 2h+1); groups at or past `have` read as zero. */
INLINE __m256i half_codes(const uint8_t *blk, const int G, const int head, int h, bool full, int have) {
    const int L = G / 4;
    if (full)
        return _mm256_loadu2_m128i((const __m128i *)sc_piece(blk, G, head, 2 * h + 1), (const __m128i *)sc_piece(blk, G, head, 2 * h));
    __m128i p[2];
    for (int i = 0; i < 2; i++) {
        const int j = 2 * h + i;
        p[i] = 16 * j / L < have ? _mm_loadu_si128((const __m128i *)sc_piece(blk, G, head, j)) : _mm_setzero_si128();
    }
    return _mm256_set_m128i(p[1], p[0]);
}

/* The header words of up to 4 groups (g = 64) or 2 (g = 128), 16 bytes: W2U (d, z) per
 * group, W2L the 4 levels of groups 0-1 (hw[0]) and 2-3 (hw[1]). Missing groups: 0. */
INLINE void headers(const uint8_t *blk, const int G, const bool LUT, bool full, int have, __m128i hw[2]) {
    const int head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + G / 4;
    if (full && !LUT) {
        hw[0] = G == 64 ? _mm_setr_epi32((int)load_u32(blk), (int)load_u32(blk + bb), (int)load_u32(blk + 2 * bb),
                                         (int)load_u32(blk + 3 * bb))
                        : _mm_setr_epi32((int)load_u32(blk), (int)load_u32(blk + bb), 0, 0);
        hw[1] = _mm_setzero_si128();
        return;
    }
    if (full) {
        hw[0] = _mm_set_epi64x((long long)load_u64(blk + bb), (long long)load_u64(blk));
        hw[1] = G == 64 ? _mm_set_epi64x((long long)load_u64(blk + 3 * bb), (long long)load_u64(blk + 2 * bb))
                        : _mm_setzero_si128();
        return;
    }
    /* a partial super-chunk: its own blocks only, the missing headers are zero */
    if (!LUT) {
        hw[0] = _mm_setr_epi32((int)load_u32(blk), have > 1 ? (int)load_u32(blk + bb) : 0,
                               have > 2 ? (int)load_u32(blk + 2 * bb) : 0, have > 3 ? (int)load_u32(blk + 3 * bb) : 0);
        hw[1] = _mm_setzero_si128();
        return;
    }
    hw[0] = _mm_set_epi64x(have > 1 ? (long long)load_u64(blk + bb) : 0, (long long)load_u64(blk));
    hw[1] = _mm_set_epi64x(have > 3 ? (long long)load_u64(blk + 3 * bb) : 0, have > 2 ? (long long)load_u64(blk + 2 * bb) : 0);
}

/* The four 2-bit planes of a half's codes (one per step). */
INLINE void half_planes(__m256i v, __m256i c[4]) {
    const __m256i m3 = _mm256_set1_epi8(3);
    c[0] = _mm256_and_si256(v, m3);
    c[1] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
    c[3] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
}

/* W2U: d and z per lane of half h, from hw0 = d0 z0 d1 z1 d2 z2 d3 z3 (g = 64) or d0 z0 d1 z1
 * (g = 128); lanes 8h .. 8h+7 hold groups 2h, 2h+1 (g = 64) or group h (g = 128). */
INLINE void half_dz(__m128i hw0, const int G, int h, __m256 *d, __m256 *z) {
    const __m256 dz = _mm256_cvtph_ps(hw0);
    const int g0 = G == 64 ? 2 * h : h, g1 = G == 64 ? 2 * h + 1 : h;
    const __m256i id = _mm256_setr_epi32(2 * g0, 2 * g0, 2 * g0, 2 * g0, 2 * g1, 2 * g1, 2 * g1, 2 * g1);
    *d = _mm256_permutevar8x32_ps(dz, id);
    *z = _mm256_permutevar8x32_ps(dz, _mm256_add_epi32(id, _mm256_set1_epi32(1)));
}

/* W2U, one half of a super-chunk of one token: acc + d·s·(D − z·Q) per lane (x: the half's
 * activations of the four steps, qlv: their lane sums Q, qsv: the lane scales s or NULL). */
INLINE __m256 half_uniform_step(const __m256i c[4], const __m256i x[4], __m256 d, __m256 z, __m256 qlv,
                                const float *qsv, __m256 acc) {
    __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c[k], x[k]));
    const __m256 D = _mm256_fnmadd_ps(z, qlv, _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1))));
    return _mm256_fmadd_ps(D, qsv ? _mm256_mul_ps(d, _mm256_loadu_ps(qsv)) : d, acc);
}

INLINE void dot_sc(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G, const bool LUT) {
    const int head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + G / 4, GPS = RQ_LOWBIT_SC / G;
    const int8_t *q[RQ_LOWBIT_TILE];
    const float *ql[RQ_LOWBIT_TILE], *qs[RQ_LOWBIT_TILE];
    sc_tile(a, t0, NT, q, ql, qs);
    __m256 acc[RQ_LOWBIT_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = b0; b < b1; b += GPS) {
        const int64_t s = b / GPS;
        const uint8_t *blk = row + b * bb;
        const bool full = b + GPS <= b1;
        const int have = full ? GPS : (int)(b1 - b);
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH + 64, _MM_HINT_T0);
        __m128i hw[2];
        headers(blk, G, LUT, full, have, hw);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* lanes 8h .. 8h+7: groups 2h, 2h+1 (g = 64) or group h (g = 128) */
            __m256i c[4];
            half_planes(half_codes(blk, G, head, h, full, have), c);
            if (!LUT) {
                __m256 d, z;
                half_dz(hw[0], G, h, &d, &z);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *qv = q[t] + s * RQ_LOWBIT_SC + 32 * h;
                    __m256i x[4];
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) x[k] = _mm256_loadu_si256((const __m256i *)(qv + 64 * k));
                    acc[t] = half_uniform_step(c, x, d, z, _mm256_loadu_ps(ql[t] + 16 * s + 8 * h),
                                               qs[t] ? qs[t] + 16 * s + 8 * h : NULL, acc[t]);
                }
            } else {
                /* g = 64: hw[h] = the levels of groups 2h, 2h+1; g = 128: hw[0] = groups 0, 1 */
                const __m256 lv = _mm256_cvtph_ps(G == 64 ? hw[h] : hw[0]);
                const int o0 = G == 64 ? 0 : 4 * h, o1 = G == 64 ? 4 : 4 * h;
                __m256 vk[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    vk[k] = _mm256_permutevar8x32_ps(lv, _mm256_setr_epi32(o0 + k, o0 + k, o0 + k, o0 + k, o1 + k, o1 + k, o1 + k, o1 + k));
                const __m256 c1 = _mm256_sub_ps(vk[1], vk[0]);
                const __m256 c2 = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_fnmadd_ps(_mm256_set1_ps(2), vk[1], vk[2]), vk[0]));
                const __m256 c3 = _mm256_mul_ps(_mm256_set1_ps(0.25f), _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(vk[3], vk[2]), vk[1]), vk[0]));
                __m256i p2[4], p3[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    p2[k] = _mm256_and_si256(c[k], _mm256_set1_epi8(2));
                    p3[k] = _mm256_and_si256(_mm256_add_epi8(c[k], _mm256_set1_epi8(1)), _mm256_set1_epi8(4));
                }
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *qv = q[t] + s * RQ_LOWBIT_SC + 32 * h;
                    __m256i s1 = _mm256_setzero_si256(), s2 = s1, s3 = s1;
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        const __m256i x = _mm256_loadu_si256((const __m256i *)(qv + 64 * k));
                        s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c[k], x));
                        s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(p2[k], x));
                        s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(p3[k], x));
                    }
                    __m256 sum = _mm256_mul_ps(vk[0], _mm256_loadu_ps(ql[t] + 16 * s + 8 * h));
                    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s1, ones)), c1, sum);
                    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s2, ones)), c2, sum);
                    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s3, ones)), c3, sum);
                    acc[t] = qs[t] ? _mm256_fmadd_ps(sum, _mm256_loadu_ps(qs[t] + 16 * s + 8 * h), acc[t])
                                   : _mm256_add_ps(acc[t], sum);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum256(acc[t]);
}

/* W2U, four rows of one token: as dot_sc with NT = 1, each half's activations loaded once for
 * the four rows, and the four row sums reduced together at the end. */
INLINE void dot_sc4_u(const uint8_t *row, int64_t row_bytes, const rq_lowbit_act *a, int64_t t0, int64_t b0,
                      int64_t b1, float *out, const int G) {
    const int head = RQ_W2U_HEAD, bb = head + G / 4, GPS = RQ_LOWBIT_SC / G;
    const int8_t *q;
    const float *ql, *qs;
    sc_tile(a, t0, 1, &q, &ql, &qs);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = b0; b < b1; b += GPS) {
        const int64_t s = b / GPS;
        const bool full = b + GPS <= b1;
        const int have = full ? GPS : (int)(b1 - b);
        __m128i hw[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = row + r * row_bytes + b * bb;
            _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH + 64, _MM_HINT_T0);
            headers(blk, G, false, full, have, hw[r]);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const int8_t *qv = q + s * RQ_LOWBIT_SC + 32 * h;
            __m256i x[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) x[k] = _mm256_loadu_si256((const __m256i *)(qv + 64 * k));
            const __m256 qlv = _mm256_loadu_ps(ql + 16 * s + 8 * h);
            const float *qsv = qs ? qs + 16 * s + 8 * h : NULL;
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256i c[4];
                half_planes(half_codes(row + r * row_bytes + b * bb, G, head, h, full, have), c);
                __m256 d, z;
                half_dz(hw[r][0], G, h, &d, &z);
                acc[r] = half_uniform_step(c, x, d, z, qlv, qsv, acc[r]);
            }
        }
    }
    hsum4_256(acc, out);
}

static void sc4_u64(const uint8_t *r, int64_t rb, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *o) {
    dot_sc4_u(r, rb, a, t0, b0, b1, o, 64);
}
static void sc4_u128(const uint8_t *r, int64_t rb, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *o) {
    dot_sc4_u(r, rb, a, t0, b0, b1, o, 128);
}

/* W2U only: W2L's super-chunk kernels are not the default (lowbit_impl.h) */
const rq_lowbit_dot4_fn rq_w2sc4_avx2[2][3] = {{NULL, sc4_u64, sc4_u128}, {NULL, NULL, NULL}};

#define RQ_SC_INST(G, LUT)                                                                                          \
    static void sc_##LUT##_##G(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, \
                               float *o) {                                                                         \
        switch (nt) {                                                                                              \
        case 1: dot_sc(r, a, t0, b0, b1, o, 1, G, LUT); break;                                                     \
        case 2: dot_sc(r, a, t0, b0, b1, o, 2, G, LUT); break;                                                     \
        case 3: dot_sc(r, a, t0, b0, b1, o, 3, G, LUT); break;                                                     \
        default: dot_sc(r, a, t0, b0, b1, o, 4, G, LUT); break;                                                    \
        }                                                                                                          \
    }
RQ_SC_INST(64, false) RQ_SC_INST(128, false) RQ_SC_INST(64, true) RQ_SC_INST(128, true)

const rq_lowbit_dot_fn rq_w2sc_avx2[2][3] = {{NULL, sc_false_64, sc_false_128}, {NULL, sc_true_64, sc_true_128}};

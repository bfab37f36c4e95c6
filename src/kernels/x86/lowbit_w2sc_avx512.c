/* AVX-512 W2 kernels for integer activations over super-chunks of 256 elements
 * (lowbit_impl.h, rq_lowbit_act.scq), g = 64 and 128, with and without VNNI.
 *
 * The per-group kernels of lowbit_w2_avx512.c spend one vpdpbusd on a group of 64 and
 * then, per group, a conversion, the zero point, the scale broadcast and an FMA: about ten
 * vector instructions per 64 weights, which computes ~28 G weights/s per core — below the
 * memory stream of two cores. Here the 64 code bytes of a super-chunk (4 groups of 64
 * or 2 of 128) are loaded as four 16-byte pieces, one per 128-bit lane, and shifted by
 * 0, 2, 4, 6: four vpdpbusd per super-chunk whose 32-bit lanes each sum one group's
 * products only (the activations were put in that order once per token). The float
 * part — conversion, zero point (W2U) or levels (W2L bit planes), scale — is then done
 * once per 16 lanes for 4 groups, with the groups' scales gathered into a vector by one
 * vpermw of the block headers.
 *
 * W2U: acc += d·s·(D − z·Q) per lane (D = Σ code·q, Q = Σ q over the lane's 16
 * elements, s the lane's activation scale when activations are quantized per group,
 * else 1), exact before the scale for an integer z, as in the per-group kernels.
 * W2L: the bit planes of lowbit_w2_avx512.c, Σ v_code·q = v0·Q + c1·D1 + c2·D2 + c3·D3 with
 * D1 = Σ code·q, D2 = Σ (code & 2)·q, D3 = Σ 4·[code = 3]·q. */
#include "kernels/x86/dot_x86.h"

/* Codes of a super-chunk of `have` groups (all 256/G when full); pieces of missing groups
 * (past the row's end) read as zero. */
INLINE __m512i sc_codes(const uint8_t *blk, const int G, const int head, bool full, int have) {
    const int L = G / 4;
    __m128i p[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        p[j] = full || 16 * j / L < have ? _mm_loadu_si128((const __m128i *)sc_piece(blk, G, head, j)) : _mm_setzero_si128();
    __m512i v = _mm512_castsi128_si512(p[0]);
    v = _mm512_inserti32x4(v, p[1], 1);
    v = _mm512_inserti32x4(v, p[2], 2);
    return _mm512_inserti32x4(v, p[3], 3);
}

/* Bytes [lo, hi) of the super-chunk from blk + lo as a 64-byte vector (a masked load: nothing
 * past hi is touched; hi - lo <= 64). */
INLINE __m512i load_span(const uint8_t *blk, int lo, int hi) {
    if (hi <= lo) return _mm512_setzero_si512();
    const __mmask64 m = hi - lo >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (hi - lo)) - 1);
    return _mm512_maskz_loadu_epi8(m, blk + lo);
}

/* vpermw indices of the header words per lane: lane l belongs to group (16·(l/4))/L of the
 * super-chunk, whose header starts at word (group · block bytes)/2 from blk. W2U: d for the
 * 16 lanes, then z; W2L: levels 0 and 1, then 2 and 3 (words past 31 come from the second
 * 64 bytes). */
#define R4(x) x, x, x, x
#define R8(x) x, x, x, x, x, x, x, x
static const uint16_t IDX_U64[32] = {R4(0), R4(10), R4(20), R4(30), R4(1), R4(11), R4(21), R4(31)};
static const uint16_t IDX_U128[32] = {R8(0), R8(18), R8(1), R8(19)};
static const uint16_t IDX_L64[2][32] = {{R4(0), R4(12), R4(24), R4(36), R4(1), R4(13), R4(25), R4(37)},
                                        {R4(2), R4(14), R4(26), R4(38), R4(3), R4(15), R4(27), R4(39)}};
static const uint16_t IDX_L128[2][32] = {{R8(0), R8(20), R8(1), R8(21)}, {R8(2), R8(22), R8(3), R8(23)}};
#undef R4
#undef R8

/* W2U: d and z per lane. */
INLINE void uniform_hdr(const uint8_t *blk, const int G, bool full, int have, __m512 *d, __m512 *z) {
    const __m512i idx = _mm512_loadu_si512(G == 64 ? IDX_U64 : IDX_U128);
    /* the headers lie in the first 64 bytes (of 80 or 72); a partial super-chunk reads only
     * its own blocks, the missing headers are zero */
    const __m512i h = full ? _mm512_loadu_si512(blk) : load_span(blk, 0, have * (RQ_W2U_HEAD + G / 4));
    const __m512i w = _mm512_permutexvar_epi16(idx, h);
    *d = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
    *z = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w, 1));
}

/* W2L: v0 and the bit-plane coefficients per lane. */
INLINE void lut_hdr(const uint8_t *blk, const int G, bool full, int have, __m512 *v0, __m512 *c1, __m512 *c2,
                    __m512 *c3) {
    const __m512i i01 = _mm512_loadu_si512(G == 64 ? IDX_L64[0] : IDX_L128[0]);
    const __m512i i23 = _mm512_loadu_si512(G == 64 ? IDX_L64[1] : IDX_L128[1]);
    /* g = 64: headers at 0, 24, 48, 72 (the last past the first 64 bytes); g = 128: 0, 40 */
    const int span = have * (RQ_W2L_HEAD + G / 4); /* the super-chunk's bytes (96 or 80 when full) */
    const __m512i h0 = full ? _mm512_loadu_si512(blk) : load_span(blk, 0, span < 64 ? span : 64);
    const __m512i h1 = load_span(blk, 64, span < 80 ? span : 80);
    const __m512i w01 = _mm512_permutex2var_epi16(h0, i01, h1), w23 = _mm512_permutex2var_epi16(h0, i23, h1);
    const __m512 a = _mm512_cvtph_ps(_mm512_castsi512_si256(w01)), b = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w01, 1));
    const __m512 c = _mm512_cvtph_ps(_mm512_castsi512_si256(w23)), e = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w23, 1));
    *v0 = a;
    *c1 = _mm512_sub_ps(b, a);
    *c2 = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_fnmadd_ps(_mm512_set1_ps(2), b, c), a));
    *c3 = _mm512_mul_ps(_mm512_set1_ps(0.25f), _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(e, c), b), a));
}

/* The four 2-bit planes of a super-chunk's codes (one per vpdpbusd step). */
INLINE void sc_planes(__m512i v, __m512i c[4]) {
    const __m512i m3 = _mm512_set1_epi8(3);
    c[0] = _mm512_and_si512(v, m3);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(v, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(v, 6), m3);
}

/* W2U, one super-chunk of one token: acc + d·s·(D − z·Q) per lane (x: the activations of the
 * four steps, qlv: their lane sums Q, qsv: the lane scales s or NULL). */
INLINE __m512 sc_uniform_step(const __m512i c[4], const __m512i x[4], __m512 d, __m512 z, __m512 qlv, const float *qsv,
                              __m512 acc, const bool VNNI) {
    __m512i S = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) S = dp512(S, c[k], x[k], VNNI);
    const __m512 D = _mm512_fnmadd_ps(z, qlv, _mm512_cvtepi32_ps(S));
    return _mm512_fmadd_ps(D, qsv ? _mm512_mul_ps(d, _mm512_loadu_ps(qsv)) : d, acc);
}

/* W2L bit planes (p2, p3 from the codes by vpshufb), one super-chunk of one token:
 * v0·Q + c1·D1 + c2·D2 + c3·D3 per lane, times the lane scales when given, added to acc. */
INLINE void sc_lut_planes(const __m512i c[4], __m512i p2[4], __m512i p3[4]) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) { /* table lookups (vpshufb, port 5) beside the port-0 dot products */
        p2[k] = _mm512_shuffle_epi8(_mm512_set4_epi32(0, 0, 0, 0x02020000), c[k]);
        p3[k] = _mm512_shuffle_epi8(_mm512_set4_epi32(0, 0, 0, 0x04000000), c[k]);
    }
}
INLINE __m512 sc_lut_step(const __m512i c[4], const __m512i p2[4], const __m512i p3[4], const __m512i x[4], __m512 v0,
                          __m512 c1, __m512 c2, __m512 c3, __m512 qlv, const float *qsv, __m512 acc, const bool VNNI) {
    __m512i S1 = _mm512_setzero_si512(), S2 = S1, S3 = S1;
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        S1 = dp512(S1, c[k], x[k], VNNI);
        S2 = dp512(S2, p2[k], x[k], VNNI);
        S3 = dp512(S3, p3[k], x[k], VNNI);
    }
    __m512 sum = _mm512_mul_ps(v0, qlv);
    sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S1), c1, sum);
    sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S2), c2, sum);
    sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S3), c3, sum);
    return qsv ? _mm512_fmadd_ps(sum, _mm512_loadu_ps(qsv), acc) : _mm512_add_ps(acc, sum);
}

INLINE void dot_sc(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1, float *out,
                   const int NT, const int G, const bool LUT, const bool VNNI) {
    const int head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + G / 4, GPS = RQ_LOWBIT_SC / G;
    const int8_t *q[RQ_LOWBIT_TILE];
    const float *ql[RQ_LOWBIT_TILE], *qs[RQ_LOWBIT_TILE];
    sc_tile(a, t0, NT, q, ql, qs);
    __m512 acc[RQ_LOWBIT_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = b0; b < b1; b += GPS) {
        const int64_t s = b / GPS;
        const uint8_t *blk = row + b * bb;
        const bool full = b + GPS <= b1;
        const int have = full ? GPS : (int)(b1 - b);
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH + 64, _MM_HINT_T0);
        __m512i c[4];
        sc_planes(sc_codes(blk, G, head, full, have), c);
        if (!LUT) {
            __m512 d, z;
            uniform_hdr(blk, G, full, have, &d, &z);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *qv = q[t] + s * RQ_LOWBIT_SC;
                __m512i x[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) x[k] = _mm512_loadu_si512(qv + 64 * k);
                acc[t] = sc_uniform_step(c, x, d, z, _mm512_loadu_ps(ql[t] + 16 * s), qs[t] ? qs[t] + 16 * s : NULL,
                                         acc[t], VNNI);
            }
        } else {
            __m512 v0, c1, c2, c3;
            lut_hdr(blk, G, full, have, &v0, &c1, &c2, &c3);
            __m512i p2[4], p3[4];
            sc_lut_planes(c, p2, p3);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *qv = q[t] + s * RQ_LOWBIT_SC;
                __m512i x[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) x[k] = _mm512_loadu_si512(qv + 64 * k);
                acc[t] = sc_lut_step(c, p2, p3, x, v0, c1, c2, c3, _mm512_loadu_ps(ql[t] + 16 * s),
                                     qs[t] ? qs[t] + 16 * s : NULL, acc[t], VNNI);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/* Four rows of one token: as dot_sc with NT = 1, each super-chunk's activations loaded once
 * for the four rows, and the four row sums reduced together at the end. */
INLINE void dot_sc4(const uint8_t *row, int64_t row_bytes, const rq_lowbit_act *a, int64_t t0, int64_t b0, int64_t b1,
                    float *out, const int G, const bool LUT, const bool VNNI) {
    const int head = LUT ? RQ_W2L_HEAD : RQ_W2U_HEAD, bb = head + G / 4, GPS = RQ_LOWBIT_SC / G;
    const int8_t *q;
    const float *ql, *qs;
    sc_tile(a, t0, 1, &q, &ql, &qs);
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = b0; b < b1; b += GPS) {
        const int64_t s = b / GPS;
        const bool full = b + GPS <= b1;
        const int have = full ? GPS : (int)(b1 - b);
        const int8_t *qv = q + s * RQ_LOWBIT_SC;
        __m512i x[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) x[k] = _mm512_loadu_si512(qv + 64 * k);
        const __m512 qlv = _mm512_loadu_ps(ql + 16 * s);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = row + r * row_bytes + b * bb;
            _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + RQ_LOWBIT_PREFETCH + 64, _MM_HINT_T0);
            __m512i c[4];
            sc_planes(sc_codes(blk, G, head, full, have), c);
            const float *qsv = qs ? qs + 16 * s : NULL;
            if (!LUT) {
                __m512 d, z;
                uniform_hdr(blk, G, full, have, &d, &z);
                acc[r] = sc_uniform_step(c, x, d, z, qlv, qsv, acc[r], VNNI);
            } else {
                __m512 v0, c1, c2, c3;
                lut_hdr(blk, G, full, have, &v0, &c1, &c2, &c3);
                __m512i p2[4], p3[4];
                sc_lut_planes(c, p2, p3);
                acc[r] = sc_lut_step(c, p2, p3, x, v0, c1, c2, c3, qlv, qsv, acc[r], VNNI);
            }
        }
    }
    __m256 h[4]; /* each row's halves added, then the four reduced together */
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        h[r] = _mm256_add_ps(_mm512_castps512_ps256(acc[r]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1)));
    hsum4_256(h, out);
}

#define RQ_SC4_INST(G, LUT, VNNI)                                                                                  \
    static void sc4_##LUT##_##G##_##VNNI(const uint8_t *r, int64_t rb, const rq_lowbit_act *a, int64_t t0,       \
                                         int64_t b0, int64_t b1, float *o) {                                     \
        dot_sc4(r, rb, a, t0, b0, b1, o, G, LUT, VNNI);                                                          \
    }
RQ_SC4_INST(64, false, true) RQ_SC4_INST(128, false, true) RQ_SC4_INST(64, true, true) RQ_SC4_INST(128, true, true)
RQ_SC4_INST(64, false, false) RQ_SC4_INST(128, false, false) RQ_SC4_INST(64, true, false) RQ_SC4_INST(128, true, false)

const rq_lowbit_dot4_fn rq_w2sc4_avx512_vnni[2][3] = {{NULL, sc4_false_64_true, sc4_false_128_true},
                                                      {NULL, sc4_true_64_true, sc4_true_128_true}};
const rq_lowbit_dot4_fn rq_w2sc4_avx512[2][3] = {{NULL, sc4_false_64_false, sc4_false_128_false},
                                                 {NULL, sc4_true_64_false, sc4_true_128_false}};

#define RQ_SC_INST(G, LUT, VNNI)                                                                                   \
    static void sc_##LUT##_##G##_##VNNI(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, \
                                        int64_t b1, float *o) {                                                  \
        switch (nt) {                                                                                            \
        case 1: dot_sc(r, a, t0, b0, b1, o, 1, G, LUT, VNNI); break;                                             \
        case 2: dot_sc(r, a, t0, b0, b1, o, 2, G, LUT, VNNI); break;                                             \
        case 3: dot_sc(r, a, t0, b0, b1, o, 3, G, LUT, VNNI); break;                                             \
        default: dot_sc(r, a, t0, b0, b1, o, 4, G, LUT, VNNI); break;                                            \
        }                                                                                                        \
    }
RQ_SC_INST(64, false, true) RQ_SC_INST(128, false, true) RQ_SC_INST(64, true, true) RQ_SC_INST(128, true, true)
RQ_SC_INST(64, false, false) RQ_SC_INST(128, false, false) RQ_SC_INST(64, true, false) RQ_SC_INST(128, true, false)

const rq_lowbit_dot_fn rq_w2sc_avx512_vnni[2][3] = {{NULL, sc_false_64_true, sc_false_128_true},
                                                    {NULL, sc_true_64_true, sc_true_128_true}};
const rq_lowbit_dot_fn rq_w2sc_avx512[2][3] = {{NULL, sc_false_64_false, sc_false_128_false},
                                               {NULL, sc_true_64_false, sc_true_128_false}};

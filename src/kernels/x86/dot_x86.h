/* Pieces shared by the x86 packed-weight dot kernels (lowbit_w2_avx2.c, lowbit_w4_avx2.c, lowbit_w2_avx512.c,
 * lowbit_w4_avx512.c, q8_0_avx2.c, q8_0_avx512.c): unaligned scalar loads, horizontal sums, the u8×s8 dot-product step with
 * and without VNNI, and the float kernels' tile of accumulators (NT tokens × NA
 * independent FMA chains, NA = 4 / 2 / 1 for 1 / 2 / 3-4 tokens, summed at the end).
 * Internal; always inlined so that each kernel compiles as if written out. The AVX-512
 * parts are visible only in files compiled with AVX-512 enabled. */
#ifndef RQ_KERNELS_X86_DOT_X86_H
#define RQ_KERNELS_X86_DOT_X86_H

#include "format/format.h"
#include "kernels/lowbit_impl.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

static inline uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t load_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The super-chunk kernels (lowbit_w2sc_*.c): the address of lane j's 16 code bytes, from
 * group (16j)/L of the super-chunk starting at block blk, at byte (16j) % L of its codes. */
INLINE const uint8_t *sc_piece(const uint8_t *blk, const int G, const int head, const int j) {
    const int L = G / 4, bb = head + L;
    return blk + (16 * j / L) * bb + head + (16 * j) % L;
}
/* ... and each token's reordered activations, lane sums and lane scales (NULL: one scale
 * per token) for a tile of NT tokens (lowbit_impl.h). */
INLINE void sc_tile(const rq_lowbit_act *a, int64_t t0, const int NT, const int8_t **q, const float **ql,
                    const float **qs) {
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        q[t] = a->scq + (t0 + t) * a->ns * RQ_LOWBIT_SC;
        ql[t] = a->scl + (t0 + t) * a->ns * 16;
        qs[t] = a->scs ? a->scs + (t0 + t) * a->ns * 16 : NULL;
    }
}

/* independent FMA chains per token for a tile of NT tokens */
#define RQ_DOT_NA(NT) ((NT) == 1 ? 4 : (NT) == 2 ? 2 : 1)

/* The scale d and zero point z (fp16) at the start of a uniform block (W2U, W4U), each
 * broadcast. */
INLINE void scale_zero256(const uint8_t *blk, __m256 *d, __m256 *z) {
    const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)load_u32(blk))); /* d, z, 0, 0 */
    *d = _mm256_broadcastss_ps(h);
    *z = _mm256_broadcastss_ps(_mm_movehdup_ps(h));
}

/* The uniform layouts' integer-activation step for one group and one token (AVX2):
 * D_l = Σ code·q by 32-bit lane over the group's NV 32-byte parts c[] (vpmaddubsw into
 * int16, one vpmaddwd; the caller's codes keep every int16 sum of 4 parts exact:
 * 4·2·cmax·127 <= 32767), then acc + d·(D_l − z·Q_l) with the activations' lane sums
 * Q_l = qlg[0..7] (lowbit_impl.h), exact for an integer z before the scale. */
INLINE __m256 uniform_i8_step256(const __m256i *c, const int NV, const int8_t *qg, const float *qlg, __m256 d,
                                 __m256 z, __m256 acc) {
    __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int p = 0; p < NV; p++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c[p], _mm256_loadu_si256((const __m256i *)(qg + 32 * p))));
    const __m256 D = _mm256_fnmadd_ps(z, _mm256_loadu_ps(qlg), _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1))));
    return _mm256_fmadd_ps(D, d, acc);
}

INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* out[0..3] = the horizontal sums of h[0..3]: two rounds of horizontal adds give
 * [s0 s1 s2 s3] in each 128-bit lane, whose two halves are then added. */
INLINE void hsum4_256(const __m256 h[4], float *out) {
    const __m256 h4 = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h4), _mm256_extractf128_ps(h4, 1)));
}

/* Σ of 4 adjacent s8·s8 products w·x per 32-bit lane, as |w| · sign(x, w) (vpsignb has no
 * 512-bit form; at most 2·128·127 per int16 pair without VNNI: no saturation for any w in
 * -128..127 and x in -127..127). VNNI only where AVX-512 is compiled in. */
INLINE __m256i s8_dot256(__m256i w, __m256i x, const bool VNNI) {
    const __m256i u = _mm256_sign_epi8(w, w), s = _mm256_sign_epi8(x, w);
#ifdef __AVX512F__
    if (VNNI) return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#endif
    (void)VNNI;
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The rows of rq_q8_0_gemv_q8 (kernels/qgemv.h): per block the integer dot of its 32 weights
 * and codes, then one FMA of d·xd, two chains (even and odd blocks). */
INLINE void q8_0_gemv_q8_rows(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y,
                              const bool VNNI) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *a = w;
    for (int64_t r = 0; r < out; r++, a += nb) {
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t b = 0; b < nb; b++) {
            const __m256i s = s8_dot256(_mm256_loadu_si256((const __m256i *)a[b].qs),
                                        _mm256_loadu_si256((const __m256i *)(xq + b * RQ_QK8_0)), VNNI);
            acc[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[b].d) * xd[b]), _mm256_cvtepi32_ps(s), acc[b & 1]);
        }
        y[r] = hsum256(_mm256_add_ps(acc[0], acc[1]));
    }
}

/* x[t] = the activation rows of the tile, acc = 0 */
INLINE void tile_start256(const rq_lowbit_act *a, int64_t t0, const int NT, const float **x, __m256 (*acc)[4]) {
    const int NA = RQ_DOT_NA(NT);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        x[t] = a->xf + (t0 + t) * a->in;
#pragma GCC unroll 4
        for (int s = 0; s < NA; s++) acc[t][s] = _mm256_setzero_ps();
    }
}
/* acc[t][s % NA] += w · x[t][off .. off+7] for every token of the tile */
INLINE void tile_fma256(__m256 w, const float **x, int64_t off, int s, const int NT, __m256 (*acc)[4]) {
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        acc[t][s % RQ_DOT_NA(NT)] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x[t] + off), acc[t][s % RQ_DOT_NA(NT)]);
}
INLINE void tile_finish256(__m256 (*acc)[4], const int NT, float *out) {
    const int NA = RQ_DOT_NA(NT);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        __m256 v = acc[t][0];
#pragma GCC unroll 4
        for (int s = 1; s < NA; s++) v = _mm256_add_ps(v, acc[t][s]);
        out[t] = hsum256(v);
    }
}

#ifdef __AVX512F__
/* acc + Σ of 4 adjacent u8·s8 products per 32-bit lane */
INLINE __m512i dp512(__m512i acc, __m512i u, __m512i s, const bool VNNI) {
    if (VNNI) return _mm512_dpbusd_epi32(acc, u, s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}
INLINE __m256i dp256(__m256i acc, __m256i u, __m256i s, const bool VNNI) {
    if (VNNI) return _mm256_dpbusd_epi32(acc, u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

INLINE void scale_zero512(const uint8_t *blk, __m512 *d, __m512 *z) {
    const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128((int)load_u32(blk))); /* d, z, 0, 0 */
    *d = _mm512_broadcastss_ps(h);
    *z = _mm512_broadcastss_ps(_mm_movehdup_ps(h));
}

INLINE void tile_start512(const rq_lowbit_act *a, int64_t t0, const int NT, const float **x, __m512 (*acc)[4]) {
    const int NA = RQ_DOT_NA(NT);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        x[t] = a->xf + (t0 + t) * a->in;
#pragma GCC unroll 4
        for (int s = 0; s < NA; s++) acc[t][s] = _mm512_setzero_ps();
    }
}
/* The float kernels' inner step: NW vectors of 16 weights, vector s = table T permuted
 * by idx[s] (vpermps reads the low 4 bits of each lane), times x[t][off0 + 16s ..]. */
INLINE void tile_perm_fma512(const __m512i *idx, const int NW, __m512 T, const float **x, int64_t off0, const int NT,
                             __m512 (*acc)[4]) {
#pragma GCC unroll 8
    for (int s = 0; s < NW; s++) {
        const __m512 w = _mm512_permutexvar_ps(idx[s], T);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[t][s % RQ_DOT_NA(NT)] =
                _mm512_fmadd_ps(w, _mm512_loadu_ps(x[t] + off0 + 16 * s), acc[t][s % RQ_DOT_NA(NT)]);
    }
}
INLINE void tile_finish512(__m512 (*acc)[4], const int NT, float *out) {
    const int NA = RQ_DOT_NA(NT);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        __m512 v = acc[t][0];
#pragma GCC unroll 4
        for (int s = 1; s < NA; s++) v = _mm512_add_ps(v, acc[t][s]);
        out[t] = _mm512_reduce_add_ps(v);
    }
}
#endif

#endif

/* Scalar reference dequantization and round-to-nearest quantization of the GGUF block
 * types (layouts in format.h). Each element is computed with the same float operations,
 * in the same order, as ggml's reference code, so results match it bit for bit. The
 * inner loops have fixed trip counts and no dependencies between iterations so that
 * the compiler can vectorize them; the fast kernels live in src/kernels/. */
#include "format/format.h"

#include "base/status.h"

#include <math.h>

/* Keep a*b + c as two roundings (no FMA contraction), as in the reference. GCC in ISO
 * C mode (-std=c11) does not contract; clang does unless told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4); /* little-endian host (format.h) */
    return v;
}

/* ---------------------------------------------------------------- 32-element blocks */

void rq_dequant_q4_0(const rq_block_q4_0 *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK4_0 == 0);
    const int64_t nb = n / RQ_QK4_0;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK4_0) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const uint8_t *qs = x[b].qs;
        for (int j = 0; j < RQ_QK4_0 / 2; j++) {
            y[j] = (float)((qs[j] & 0xf) - 8) * d;
            y[j + RQ_QK4_0 / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

void rq_dequant_q4_1(const rq_block_q4_1 *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK4_1 == 0);
    const int64_t nb = n / RQ_QK4_1;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK4_1) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const float m = rq_fp16_to_fp32(x[b].m);
        const uint8_t *qs = x[b].qs;
        for (int j = 0; j < RQ_QK4_1 / 2; j++) {
            y[j] = (float)(qs[j] & 0xf) * d + m;
            y[j + RQ_QK4_1 / 2] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

void rq_dequant_q5_0(const rq_block_q5_0 *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK5_0 == 0);
    const int64_t nb = n / RQ_QK5_0;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK5_0) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const uint32_t qh = load_u32(x[b].qh);
        const uint8_t *qs = x[b].qs;
        for (int j = 0; j < RQ_QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(((qs[j] & 0xf) | h0) - 16) * d;
            y[j + RQ_QK5_0 / 2] = (float)(((qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void rq_dequant_q5_1(const rq_block_q5_1 *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK5_1 == 0);
    const int64_t nb = n / RQ_QK5_1;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK5_1) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const float m = rq_fp16_to_fp32(x[b].m);
        const uint32_t qh = load_u32(x[b].qh);
        const uint8_t *qs = x[b].qs;
        for (int j = 0; j < RQ_QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)((qs[j] & 0xf) | h0) * d + m;
            y[j + RQ_QK5_1 / 2] = (float)((qs[j] >> 4) | h1) * d + m;
        }
    }
}

void rq_dequant_q8_0(const rq_block_q8_0 *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK8_0 == 0);
    const int64_t nb = n / RQ_QK8_0;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK8_0) {
        const float d = rq_fp16_to_fp32(x[b].d);
        for (int j = 0; j < RQ_QK8_0; j++) y[j] = (float)x[b].qs[j] * d;
    }
}

const int8_t rq_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void rq_dequant_iq4_nl(const rq_block_iq4_nl *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK4_NL == 0);
    const int64_t nb = n / RQ_QK4_NL;
    for (int64_t b = 0; b < nb; b++, y += RQ_QK4_NL) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const uint8_t *qs = x[b].qs;
        for (int j = 0; j < RQ_QK4_NL / 2; j++) {
            y[j] = d * (float)rq_iq4nl_values[qs[j] & 0xf];
            y[j + RQ_QK4_NL / 2] = d * (float)rq_iq4nl_values[qs[j] >> 4];
        }
    }
}

/* ---------------------------------------------------------------- k-quants (256) */

void rq_dequant_q2_K(const rq_block_q2_K *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_K == 0);
    const int64_t nb = n / RQ_QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const float dmin = rq_fp16_to_fp32(x[b].dmin);
        for (int h = 0; h < 2; h++) {                 /* 128-element halves */
            const uint8_t *q = x[b].qs + 32 * h;
            for (int k = 0; k < 4; k++, y += 32) {     /* 2-bit planes */
                const int s = 8 * h + 2 * k;          /* sub-block of y[0..15] */
                const float dl0 = d * (float)(x[b].scales[s] & 0xf);
                const float ml0 = dmin * (float)(x[b].scales[s] >> 4);
                const float dl1 = d * (float)(x[b].scales[s + 1] & 0xf);
                const float ml1 = dmin * (float)(x[b].scales[s + 1] >> 4);
                for (int l = 0; l < 16; l++) {
                    y[l] = dl0 * (float)((q[l] >> (2 * k)) & 3) - ml0;
                    y[l + 16] = dl1 * (float)((q[l + 16] >> (2 * k)) & 3) - ml1;
                }
            }
        }
    }
}

/* The sixteen 6-bit scales of Q3_K, unpacked and offset to -32..31. */
static inline void q3_K_scales(const uint8_t *restrict p, int8_t *restrict sc) {
    for (int s = 0; s < 16; s++) {
        const int lo = s < 8 ? (p[s] & 0xf) : (p[s - 8] >> 4);
        const int hi = (p[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

void rq_dequant_q3_K(const rq_block_q3_K *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_K == 0);
    const int64_t nb = n / RQ_QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = rq_fp16_to_fp32(x[b].d);
        int8_t sc[16];
        q3_K_scales(x[b].scales, sc);
        const uint8_t *hm = x[b].hmask;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = x[b].qs + 32 * h;
            for (int k = 0; k < 4; k++, y += 32) {
                const int plane = 4 * h + k;          /* hmask bit of these 32 */
                const int s = 8 * h + 2 * k;
                const float dl0 = d * (float)sc[s];
                const float dl1 = d * (float)sc[s + 1];
                for (int l = 0; l < 16; l++) {
                    const int q0 = ((q[l] >> (2 * k)) & 3) - (((hm[l] >> plane) & 1) ? 0 : 4);
                    const int q1 = ((q[l + 16] >> (2 * k)) & 3) - (((hm[l + 16] >> plane) & 1) ? 0 : 4);
                    y[l] = dl0 * (float)q0;
                    y[l + 16] = dl1 * (float)q1;
                }
            }
        }
    }
}

void rq_dequant_q4_K(const rq_block_q4_K *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_K == 0);
    const int64_t nb = n / RQ_QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const float dmin = rq_fp16_to_fp32(x[b].dmin);
        for (int c = 0; c < 4; c++, y += 64) {         /* 64-element chunks */
            uint8_t sc0, mn0, sc1, mn1;
            rq_k4_scale_min(x[b].scales, 2 * c, &sc0, &mn0);
            rq_k4_scale_min(x[b].scales, 2 * c + 1, &sc1, &mn1);
            const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
            const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
            const uint8_t *q = x[b].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                y[l] = d0 * (float)(q[l] & 0xf) - m0;
                y[l + 32] = d1 * (float)(q[l] >> 4) - m1;
            }
        }
    }
}

void rq_dequant_q5_K(const rq_block_q5_K *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_K == 0);
    const int64_t nb = n / RQ_QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = rq_fp16_to_fp32(x[b].d);
        const float dmin = rq_fp16_to_fp32(x[b].dmin);
        const uint8_t *qh = x[b].qh;
        for (int c = 0; c < 4; c++, y += 64) {
            uint8_t sc0, mn0, sc1, mn1;
            rq_k4_scale_min(x[b].scales, 2 * c, &sc0, &mn0);
            rq_k4_scale_min(x[b].scales, 2 * c + 1, &sc1, &mn1);
            const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
            const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
            const uint8_t *q = x[b].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                const int h0 = ((qh[l] >> (2 * c)) & 1) << 4;
                const int h1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                y[l] = d0 * (float)((q[l] & 0xf) | h0) - m0;
                y[l + 32] = d1 * (float)((q[l] >> 4) | h1) - m1;
            }
        }
    }
}

void rq_dequant_q6_K(const rq_block_q6_K *restrict x, float *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_K == 0);
    const int64_t nb = n / RQ_QK_K;
    for (int64_t b = 0; b < nb; b++) {
        const float d = rq_fp16_to_fp32(x[b].d);
        for (int h = 0; h < 2; h++, y += 128) {
            const uint8_t *ql = x[b].ql + 64 * h;
            const uint8_t *qh = x[b].qh + 32 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            for (int g = 0; g < 2; g++) {              /* 16-element groups */
                /* x[128h + 32k + 16g + l] has scale sc[2k + g] */
                const float d0 = d * (float)sc[g], d1 = d * (float)sc[g + 2];
                const float d2 = d * (float)sc[g + 4], d3 = d * (float)sc[g + 6];
                for (int l = 16 * g; l < 16 * g + 16; l++) {
                    const int q0 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q1 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d0 * (float)q0;
                    y[l + 32] = d1 * (float)q1;
                    y[l + 64] = d2 * (float)q2;
                    y[l + 96] = d3 * (float)q3;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- quantization */

void rq_quant_q8_0_ref(const float *restrict x, rq_block_q8_0 *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK8_0 == 0);
    const int64_t nb = n / RQ_QK8_0;
    for (int64_t b = 0; b < nb; b++, x += RQ_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < RQ_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = rq_fp32_to_fp16(d);
        for (int j = 0; j < RQ_QK8_0; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void rq_quant_q4_0_ref(const float *restrict x, rq_block_q4_0 *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK4_0 == 0);
    const int64_t nb = n / RQ_QK4_0;
    for (int64_t b = 0; b < nb; b++, x += RQ_QK4_0) {
        /* the element of largest magnitude, with its sign (first one on ties) */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < RQ_QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = rq_fp32_to_fp16(d);
        for (int j = 0; j < RQ_QK4_0 / 2; j++) {
            /* x * id lies in [-8, 8], so the sums are in [0.5, 16.5] and truncate to 0..16 */
            const int q0 = (int)(x[j] * id + 8.5f);
            const int q1 = (int)(x[j + RQ_QK4_0 / 2] * id + 8.5f);
            y[b].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
        }
    }
}

void rq_quant_q4_1_ref(const float *restrict x, rq_block_q4_1 *restrict y, int64_t n) {
    RQ_ASSERT(n >= 0 && n % RQ_QK4_1 == 0);
    const int64_t nb = n / RQ_QK4_1;
    for (int64_t b = 0; b < nb; b++, x += RQ_QK4_1) {
        float min = x[0], max = x[0];
        for (int j = 1; j < RQ_QK4_1; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = rq_fp32_to_fp16(d);
        y[b].m = rq_fp32_to_fp16(min);
        for (int j = 0; j < RQ_QK4_1 / 2; j++) {
            /* (x - min) * id lies in [0, 15], so the sums are in [0.5, 15.5] */
            const int q0 = (int)((x[j] - min) * id + 0.5f);
            const int q1 = (int)((x[j + RQ_QK4_1 / 2] - min) * id + 0.5f);
            y[b].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
        }
    }
}

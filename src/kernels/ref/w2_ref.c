/* Scalar reference W2 dot kernels: the oracle for the SIMD versions and the path used
 * on CPUs without AVX2. Plain loops in element order:
 *   float activations:  Σ_g Σ_i lv_g[code_i]·x_i, lv_g the group's 4 dequantized
 *                       values (W2U: d·(k − z), W2L: v_k), a float sum per group;
 *   int activations:    W2U: Σ_g d_g·(D_g − z_g·Q_g),  D_g = Σ code_i·q_i (int32)
 *                       W2L: Σ_g Σ_k v_gk·S_gk,           S_gk = Σ_{code_i = k} q_i
 * with exact integer sums; D_g − z_g·Q_g is exact in float for an integer z (|.| < 2^24),
 * so each group adds one rounded product, no larger than Σ|ŵ_i·q_i|, to the sum. */
#include "kernels/w2_impl.h"

#include "base/status.h"

#include <math.h>

/* The group's 4 dequantized values and a pointer to its codes. */
static const uint8_t *group_levels(const uint8_t *blk, bool lut, float lv[4]) {
    rq_half h[4];
    if (lut) {
        memcpy(h, blk, 8);
        for (int k = 0; k < 4; k++) lv[k] = rq_fp16_to_fp32(h[k]);
        return blk + RQ_W2L_HEAD;
    }
    memcpy(h, blk, 4);
    const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
    for (int k = 0; k < 4; k++) lv[k] = d * ((float)k - z);
    return blk + RQ_W2U_HEAD;
}

static void dot_f32(const uint8_t *row, const rq_w2_act *a, int64_t t0, int nt, int64_t b0,
                    int64_t b1, float *out, bool lut) {
    const int64_t g = a->group, L = g / 4;
    const int64_t bb = (lut ? RQ_W2L_HEAD : RQ_W2U_HEAD) + L;
    for (int t = 0; t < nt; t++) {
        const float *x = a->xf + (t0 + t) * a->in;
        float sum = 0;
        for (int64_t b = b0; b < b1; b++) {
            float lv[4];
            const uint8_t *qs = group_levels(row + b * bb, lut, lv);
            float s = 0;
            for (int64_t i = 0; i < g; i++) s += lv[rq_w2_code(qs, L, i)] * x[b * g + i];
            sum += s;
        }
        out[t] = sum;
    }
}

static void dot_i8(const uint8_t *row, const rq_w2_act *a, int64_t t0, int nt, int64_t b0,
                   int64_t b1, float *out, bool lut) {
    const int64_t g = a->group, L = g / 4;
    const int64_t bb = (lut ? RQ_W2L_HEAD : RQ_W2U_HEAD) + L;
    for (int t = 0; t < nt; t++) {
        const int8_t *q = a->q + (t0 + t) * a->in;
        float sum = 0;
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = row + b * bb;
            rq_half h[4];
            memcpy(h, blk, lut ? 8 : 4);
            const uint8_t *qs = blk + (lut ? RQ_W2L_HEAD : RQ_W2U_HEAD);
            int32_t S[4] = {0, 0, 0, 0};
            for (int64_t i = 0; i < g; i++) S[rq_w2_code(qs, L, i)] += q[b * g + i];
            if (lut) {
                for (int k = 0; k < 4; k++) sum += rq_fp16_to_fp32(h[k]) * (float)S[k];
            } else {
                const int32_t D = S[1] + 2 * S[2] + 3 * S[3], Q = S[0] + S[1] + S[2] + S[3];
                const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
                sum += d * ((float)D - z * (float)Q);
            }
        }
        out[t] = sum;
    }
}

static void f32_u(const uint8_t *r, const rq_w2_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { dot_f32(r, a, t0, nt, b0, b1, o, false); }
static void f32_l(const uint8_t *r, const rq_w2_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { dot_f32(r, a, t0, nt, b0, b1, o, true); }
static void i8_u(const uint8_t *r, const rq_w2_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { dot_i8(r, a, t0, nt, b0, b1, o, false); }
static void i8_l(const uint8_t *r, const rq_w2_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { dot_i8(r, a, t0, nt, b0, b1, o, true); }

static float act_quant(const float *x, int64_t n, int qmax, int8_t *q) {
    return rq_act_quant_ref(x, n, qmax, q);
}

const rq_w2_kernel_set rq_w2_kernels_ref = {
    .name = "scalar",
    .f32 = {{f32_u, f32_u, f32_u}, {f32_l, f32_l, f32_l}},
    .i8 = {{i8_u, i8_u, i8_u}, {i8_l, i8_l, i8_l}},
    .act_quant = act_quant,
};

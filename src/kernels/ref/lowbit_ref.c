/* Scalar reference low-bit dot kernels (W2U, W2L, W4U): the oracle for the SIMD versions and
 * the path used on CPUs without AVX2. Plain loops in element order:
 *   float activations:  Σ_g Σ_i lv_g[code_i]·x_i, lv_g the group's 4 (16) dequantized
 *                       values (W2U, W4U: d·(k − z), W2L: v_k), a float sum per group;
 *   int activations:    W2U, W4U: Σ_g d_g·(D_g − z_g·Q_g),  D_g = Σ code_i·q_i (int32)
 *                       W2L: Σ_g Σ_k v_gk·S_gk,           S_gk = Σ_{code_i = k} q_i
 * with exact integer sums; D_g − z_g·Q_g is exact in float for an integer z (|.| < 2^24),
 * so each group adds one rounded product, no larger than Σ|ŵ_i·q_i|, to the sum. */
#include "kernels/lowbit_impl.h"

#include "base/status.h"

#include <math.h>

/* The group's dequantized values (4 for W2, 16 for W4U) and a pointer to its codes. */
static const uint8_t *group_levels(const uint8_t *blk, rq_lowbit_kind kind, float lv[RQ_W4_LEVELS]) {
    rq_half h[4];
    if (kind == RQ_LOWBIT_KIND_W2L) {
        memcpy(h, blk, 8);
        for (int k = 0; k < 4; k++) lv[k] = rq_fp16_to_fp32(h[k]);
        return blk + RQ_W2L_HEAD;
    }
    memcpy(h, blk, 4);
    const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
    const int n = kind == RQ_LOWBIT_KIND_W4U ? RQ_W4_LEVELS : RQ_W2_LEVELS;
    for (int k = 0; k < n; k++) lv[k] = d * ((float)k - z);
    return blk + RQ_W2U_HEAD;
}

/* Code bytes per group (L) and block bytes of a kind at group size g. */
static int64_t code_bytes(rq_lowbit_kind kind, int64_t g) { return kind == RQ_LOWBIT_KIND_W4U ? g / 2 : g / 4; }
static int64_t block_bytes(rq_lowbit_kind kind, int64_t g) {
    return (kind == RQ_LOWBIT_KIND_W2L ? RQ_W2L_HEAD : RQ_W2U_HEAD) + code_bytes(kind, g);
}
static int code_at(rq_lowbit_kind kind, const uint8_t *qs, int64_t L, int64_t i) {
    return kind == RQ_LOWBIT_KIND_W4U ? rq_w4_code(qs, L, i) : rq_w2_code(qs, L, i);
}

static void dot_f32(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0,
                    int64_t b1, float *out, rq_lowbit_kind kind) {
    const int64_t g = a->group, L = code_bytes(kind, g), bb = block_bytes(kind, g);
    for (int t = 0; t < nt; t++) {
        const float *x = a->xf + (t0 + t) * a->in;
        float sum = 0;
        for (int64_t b = b0; b < b1; b++) {
            float lv[RQ_W4_LEVELS];
            const uint8_t *qs = group_levels(row + b * bb, kind, lv);
            float s = 0;
            for (int64_t i = 0; i < g; i++) s += lv[code_at(kind, qs, L, i)] * x[b * g + i];
            sum += s;
        }
        out[t] = sum;
    }
}

static void dot_i8(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0,
                   int64_t b1, float *out, rq_lowbit_kind kind) {
    const int64_t g = a->group, L = code_bytes(kind, g), bb = block_bytes(kind, g);
    const bool lut = kind == RQ_LOWBIT_KIND_W2L;
    for (int t = 0; t < nt; t++) {
        const int8_t *q = a->q + (t0 + t) * a->in;
        float sum = 0;
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = row + b * bb;
            rq_half h[4];
            memcpy(h, blk, lut ? 8 : 4);
            const uint8_t *qs = blk + (lut ? RQ_W2L_HEAD : RQ_W2U_HEAD);
            int32_t S[RQ_W4_LEVELS] = {0};
            for (int64_t i = 0; i < g; i++) S[code_at(kind, qs, L, i)] += q[b * g + i];
            if (lut) {
                for (int k = 0; k < 4; k++) sum += rq_fp16_to_fp32(h[k]) * (float)S[k];
            } else {
                int32_t D = 0, Q = 0;
                for (int k = 0; k < RQ_W4_LEVELS; k++) D += k * S[k], Q += S[k];
                const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
                sum += d * ((float)D - z * (float)Q);
            }
        }
        out[t] = sum;
    }
}

#define RQ_REF_DOT(fn, name, kind)                                                              \
    static void name(const uint8_t *r, const rq_lowbit_act *a, int64_t t0, int nt, int64_t b0, int64_t b1, float *o) { \
        fn(r, a, t0, nt, b0, b1, o, kind);                                                      \
    }
RQ_REF_DOT(dot_f32, f32_u, RQ_LOWBIT_KIND_W2U)
RQ_REF_DOT(dot_f32, f32_l, RQ_LOWBIT_KIND_W2L)
RQ_REF_DOT(dot_f32, f32_4, RQ_LOWBIT_KIND_W4U)
RQ_REF_DOT(dot_i8, i8_u, RQ_LOWBIT_KIND_W2U)
RQ_REF_DOT(dot_i8, i8_l, RQ_LOWBIT_KIND_W2L)
RQ_REF_DOT(dot_i8, i8_4, RQ_LOWBIT_KIND_W4U)

static const rq_lowbit_dot_fn ref_f32[RQ_LOWBIT_N_KINDS][3] = {{f32_u, f32_u, f32_u}, {f32_l, f32_l, f32_l}, {f32_4, f32_4, f32_4}};
static const rq_lowbit_dot_fn ref_i8[RQ_LOWBIT_N_KINDS][3] = {{i8_u, i8_u, i8_u}, {i8_l, i8_l, i8_l}, {i8_4, i8_4, i8_4}};

static float act_quant(const float *x, int64_t n, int qmax, int8_t *q) {
    return rq_act_quant_ref(x, n, qmax, q);
}

const rq_lowbit_kernel_set rq_lowbit_kernels_ref = {
    .name = "scalar",
    .f32 = {ref_f32[0], ref_f32[1], ref_f32[2]},
    .i8 = {ref_i8[0], ref_i8[1], ref_i8[2]},
    .act_quant = act_quant,
};

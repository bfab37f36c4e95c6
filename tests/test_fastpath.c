/* The model's fast path against its reference path.
 *   - Q8_0 GEMV (kernels/qgemv.h), float and int8-per-block activations: every level the
 *     CPU has against a float64 oracle, odd shapes, weights of -128; W2U/W2L/W4U dequantization (rq_lowbit_dequant) equal to rq_dequant_lowbit bit for bit;
 *   - rq_linear of the packed kinds (W2U, W2L, W4U, GGUF Q8_0/F16) against kind F32 holding the
 *     dequantized matrix (the reference path), for float and int8/int4 activations
 *     (act_bits; the F32 kind gets the rows fake-quantized by rq_act_quant_ref), one token and batches below and above the
 *     W2 kinds' switch to dequantized tiles + SGEMM, accumulating into a wider output,
 *     whole and by column ranges;
 *   - with the real model (skipped without it): W2 uniform, W2 LUT and W4 uniform models made
 *     here with RTN (GSR rotation, group 64), loaded packed and loaded with the reference path:
 *     weights in memory are the packed size, perplexity agrees to 4 significant digits
 *     over 8 chunks, the first block's output agrees (A16/A8/A4, W2 kernels and
 *     dequantized tiles), layer 0's linears agree on the same activation codes (A8/A4),
 *     greedy generation gives the same 16 tokens for 3 prompts. */
#include "testing.h"

#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "eval/ppl.h"
#include "format/act.h"
#include "format/format.h"
#include "format/lowbit.h"
#include "kernels/gemv.h"
#include "kernels/qgemv.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "model/fold.h"
#include "text/tokenizer.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* Two float sums of the same n products in different orders differ by at most 2γ_n·M
 * (γ_n ≈ n·ε, M = Σ|products|; Higham); the factor 3 covers the few extra roundings of
 * scales (d·block sum, a·Σ). A wrong weight or code changes a result by ~M/n, far above. */
static double sum_tol(double M, int64_t n) { return 2.0 * 3.0 * (double)(n + 8) * FLT_EPSILON * M + 1e-30; }

/* Perplexity agreement of the two paths with float activations: "identical to 4
 * significant digits". */
#define PPL_REL_TOL 5e-5
/* With int8/int4 activations a model-level comparison means little: a float
 * difference in the last bits flips the rounding of some activation codes (by a whole
 * step, a/2 on average), and on these 2-bit RTN models (PPL ~4e5, chaotic) the flips
 * compound over 30 layers. Measured: two runs of the *reference* path alone, differing
 * only in OpenBLAS's summation order (RQ_BLAS_CORE=Haswell vs SkylakeX), give PPL 444482
 * and 449615 at A8 (1.2% apart) but agree to 6 digits at A16; fast vs reference differ
 * by 1-3% at A8 and up to 21% at A4. The exact checks of the integer path are per linear
 * (test_linear_kinds: every output within float rounding of the reference; and the real
 * model's layer 0 linears on their own inputs, LINEAR_TOL_AINT). */
/* float activations: the block's output differs by float rounding only */
#define LAYER_TOL_A16 1e-5
/* int activations, the whole first block: the q/k/v inputs get the same codes on both
 * paths, but every later quantization point (o, gate/up, down inputs) sees inputs that
 * differ in the last bits, and a value within a few ulps of a rounding boundary takes
 * the neighbouring code. Measured (W2U, these 64 tokens): exactly one of the 98304
 * down-proj input codes differs at A8 (token 58, channel 929: x·127/max = 0.5000001 on
 * the fast path, the two maxima 1 ulp apart), which alone gives the 3.2e-4 printed, on
 * every CPU level including the scalar reference; the integer kernels themselves agree
 * with the reference to 2.4e-7 on the same codes (LINEAR_TOL_AINT below). One flip
 * costs 1.5-3e-4 at A8 and, its step being 127/7 times larger, presumably ~5e-3 at A4
 * (none occurred here). The bounds allow ~10 flips at A8 and ~2 at A4; a wrong scale, code
 * or group gives O(1). */
#define LAYER_TOL_A8 3e-3
#define LAYER_TOL_A4 1e-2
/* int activations, layer 0's seven linears one at a time on the model's own inputs,
 * both paths on the same codes (worst_linear_error): float summation order only.
 * Measured 2.4e-7 (W2U), 3.6e-7 (W2L) and 3.6e-7 (W4U) at A8 and A4; a kernel losing digits to
 * cancellation (1-4e-6 on offset activations before the integer kernels centred their
 * lanes, tests/test_kernels.c) or a 3e-4 error like one flipped code would fail. */
#define LINEAR_TOL_AINT 2e-6

/* ------------------------------------------------------------------ Q8_0 GEMV */

static void test_q8_0_gemv(void) {
    rq_rng r;
    rq_rng_seed(&r, 11);
    const int64_t outs[3] = {1, 7, 37}, ins[3] = {32, 96, 608};
    for (int oi = 0; oi < 3; oi++)
        for (int ii = 0; ii < 3; ii++) {
            const int64_t out = outs[oi], in = ins[ii], rb = in / 32 * 34;
            float *wf = rq_xalloc(out * in * 4), *wd = rq_xalloc(out * in * 4), *x = rq_xalloc(in * 4);
            float *y = rq_xalloc(out * 4);
            uint8_t *wq = rq_xalloc(out * rb);
            for (int64_t i = 0; i < out * in; i++) wf[i] = (float)rq_rng_normal(&r);
            for (int64_t i = 0; i < in; i++) x[i] = (float)rq_rng_normal(&r);
            for (int64_t o = 0; o < out; o++) {
                rq_quant_q8_0_ref(wf + o * in, (rq_block_q8_0 *)(wq + o * rb), in);
                rq_dequant_q8_0((const rq_block_q8_0 *)(wq + o * rb), wd + o * in, in);
            }
            for (int lvl = RQ_CPU_SCALAR; lvl <= (int)rq_cpu_max_level(); lvl++) {
                rq_cpu_set_level((rq_cpu_level)lvl);
                rq_q8_0_gemv(wq, out, in, x, y);
                int bad = 0;
                for (int64_t o = 0; o < out; o++) {
                    double s = 0, M = 0;
                    for (int64_t i = 0; i < in; i++) {
                        s += (double)wd[o * in + i] * x[i];
                        M += fabs((double)wd[o * in + i] * x[i]);
                    }
                    bad += fabs(y[o] - s) > sum_tol(M, in);
                }
                RQ_CHECK_MSG(bad == 0, "Q8_0 GEMV %s %lldx%lld: %d rows off", rq_cpu_level_name((rq_cpu_level)lvl),
                             (long long)out, (long long)in, bad);
            }
            /* the int8 GEMV on x quantized per 32-block (x̃ = xd·xq), with some weights set to
             * -128 (a file may hold them; |w| is then 128 in the unsigned operand) */
            int8_t *xq = rq_xalloc(in);
            float *xd = rq_xalloc(in / 32 * 4);
            for (int64_t b = 0; b < in / 32; b++) xd[b] = rq_act_quant_ref(x + b * 32, 32, 127, xq + b * 32);
            for (int64_t o = 0; o < out; o++) {
                rq_block_q8_0 *blk = (rq_block_q8_0 *)(wq + o * rb);
                blk[o % (in / 32)].qs[(o * 7) % 32] = -128;
                rq_dequant_q8_0(blk, wd + o * in, in);
            }
            for (int lvl = RQ_CPU_SCALAR; lvl <= (int)rq_cpu_max_level(); lvl++) {
                rq_cpu_set_level((rq_cpu_level)lvl);
                rq_q8_0_gemv_q8(wq, out, in, xq, xd, y);
                int bad = 0;
                for (int64_t o = 0; o < out; o++) {
                    double s = 0, M = 0;
                    for (int64_t i = 0; i < in; i++) {
                        const double p = (double)wd[o * in + i] * ((double)xd[i / 32] * xq[i]);
                        s += p;
                        M += fabs(p);
                    }
                    bad += fabs(y[o] - s) > sum_tol(M, in / 32);
                }
                RQ_CHECK_MSG(bad == 0, "Q8_0 int8 GEMV %s %lldx%lld: %d rows off", rq_cpu_level_name((rq_cpu_level)lvl),
                             (long long)out, (long long)in, bad);
            }
            rq_cpu_set_level(RQ_CPU_AVX512);
            rq_free(wf), rq_free(wd), rq_free(x), rq_free(y), rq_free(wq), rq_free(xq), rq_free(xd);
        }
}

/* ------------------------------------------------------------------ low-bit dequantization */

static void test_lowbit_dequant(void) {
    rq_rng r;
    rq_rng_seed(&r, 13);
    const int types[9] = {RQ_TYPE_W2U_G32, RQ_TYPE_W2U_G64, RQ_TYPE_W2U_G128, RQ_TYPE_W2L_G32, RQ_TYPE_W2L_G64,
                          RQ_TYPE_W2L_G128, RQ_TYPE_W4U_G32, RQ_TYPE_W4U_G64, RQ_TYPE_W4U_G128};
    for (int ti = 0; ti < 9; ti++) {
        const int type = types[ti];
        const int64_t n = 5 * 128, g = rq_lowbit_group(type);
        const int np = rq_lowbit_n_param(type), nc = 1 << rq_lowbit_bits(type);
        uint8_t *codes = rq_xalloc(n), *data = rq_xalloc(n);
        float *params = rq_xalloc(n / g * np * 4), *want = rq_xalloc(n * 4), *got = rq_xalloc(n * 4);
        for (int64_t i = 0; i < n; i++) codes[i] = (uint8_t)rq_rng_below(&r, (uint64_t)nc);
        for (int64_t i = 0; i < n / g * np; i++) params[i] = (float)rq_rng_normal(&r);
        if (!rq_lowbit_is_lut(type))
            for (int64_t b = 0; b < n / g; b++) params[b * 2 + 1] = (float)rq_rng_below(&r, (uint64_t)nc) + (b % 3 ? 0.f : 0.5f);
        rq_lowbit_pack(type, 1, n, codes, params, data);
        rq_dequant_lowbit(type, data, want, n);
        for (int lvl = RQ_CPU_SCALAR; lvl <= (int)rq_cpu_max_level(); lvl++) {
            rq_cpu_set_level((rq_cpu_level)lvl);
            memset(got, 0xff, (size_t)n * 4);
            rq_lowbit_dequant(type, data, got, n);
            RQ_CHECK_MSG(memcmp(got, want, (size_t)n * 4) == 0, "rq_lowbit_dequant %s %s differs from rq_dequant_lowbit",
                         rq_type_name(type), rq_cpu_level_name((rq_cpu_level)lvl));
        }
        rq_cpu_set_level(RQ_CPU_AVX512);
        rq_free(codes), rq_free(data), rq_free(params), rq_free(want), rq_free(got);
    }
}

/* ------------------------------------------------------------------ linear kinds */

/* A packed linear of `type` with random content and its F32 twin (dequantized rows). */
static void make_pair(rq_rng *r, int type, int64_t out, int64_t in, rq_linear *packed, rq_linear *ref) {
    int64_t rb;
    RQ_ASSERT(rq_type_row_bytes(type, in, &rb));
    uint8_t *data = rq_xalloc(out * rb);
    float *w = rq_xalloc(out * in * 4);
    int64_t g = rq_lowbit_group(type);
    if (g) {
        const int np = rq_lowbit_n_param(type), nc = 1 << rq_lowbit_bits(type);
        uint8_t *codes = rq_xalloc(out * in);
        float *params = rq_xalloc(out * (in / g) * np * 4);
        for (int64_t i = 0; i < out * in; i++) codes[i] = (uint8_t)rq_rng_below(r, (uint64_t)nc);
        for (int64_t b = 0; b < out * (in / g); b++) {
            float *p = params + b * np;
            if (rq_lowbit_is_lut(type))
                for (int k = 0; k < 4; k++) p[k] = (float)(rq_rng_normal(r) * 0.05);
            else
                p[0] = (float)(0.01 + 0.05 * rq_rng_uniform(r)), p[1] = (float)rq_rng_below(r, (uint64_t)nc);
        }
        rq_lowbit_pack(type, out, in, codes, params, data);
        rq_free(codes);
        rq_free(params);
        const int kind = rq_lowbit_kind_of(type);
        *packed = (rq_linear){.kind = kind == RQ_LOWBIT_KIND_W4U   ? RQ_LINEAR_W4U
                                      : kind == RQ_LOWBIT_KIND_W2L ? RQ_LINEAR_W2L
                                                               : RQ_LINEAR_W2U};
    } else {
        float *wf = rq_xalloc(out * in * 4);
        for (int64_t i = 0; i < out * in; i++) wf[i] = (float)(rq_rng_normal(r) * 0.05);
        for (int64_t o = 0; o < out; o++) {
            if (type == RQ_TYPE_Q8_0) rq_quant_q8_0_ref(wf + o * in, (rq_block_q8_0 *)(data + o * rb), in);
            else rq_fp32_to_fp16_array(wf + o * in, (rq_half *)(data + o * rb), in);
        }
        rq_free(wf);
        *packed = (rq_linear){.kind = RQ_LINEAR_GGUF};
    }
    const rq_type_traits *tr = rq_type_traits_get(type);
    for (int64_t o = 0; o < out; o++) tr->to_float(data + o * rb, w + o * in, in);
    packed->n_out = out, packed->n_in = in, packed->owns_w = true;
    packed->type = type, packed->data = data, packed->row_bytes = rb;
    *ref = (rq_linear){.kind = RQ_LINEAR_F32, .n_out = out, .n_in = in, .w = w, .owns_w = true};
}

/* M [n, out] = Σ_i |ŵ_oi · x̃_ti| for the tolerance. */
static void abs_sums(const rq_linear *ref, const float *x, int64_t n, int act_bits, double *M) {
    const int64_t in = ref->n_in;
    float *xq = rq_xalloc(in * 4);
    int8_t *q = rq_xalloc(in);
    for (int64_t t = 0; t < n; t++) {
        if (act_bits == 8 || act_bits == 4) {
            float a = rq_act_quant_ref(x + t * in, in, act_bits == 8 ? 127 : 7, q);
            for (int64_t i = 0; i < in; i++) xq[i] = a * q[i];
        } else {
            memcpy(xq, x + t * in, (size_t)in * 4);
        }
        for (int64_t o = 0; o < ref->n_out; o++) {
            double s = 0;
            for (int64_t i = 0; i < in; i++) s += fabs((double)ref->w[o * in + i] * xq[i]);
            M[t * ref->n_out + o] = s;
        }
    }
    rq_free(q);
    rq_free(xq);
}

/* The R16 layout (kernels/qgemv.h): packed from Q8_0 rows holding every code -128..127, each
 * level's int8 GEMV against the float64 oracle; then an rq_linear of kind GGUF Q8_0 under
 * RQ_LOWBIT_A16_Q8 gets the layout from rq_linear_prepare_q8 (not for 77 rows, nor in exact
 * mode) and its one-token forward, whole and by column ranges that are or are not multiples
 * of 16, agrees with the F32 kind on x quantized per 32-block. */
static void test_q8_0_r16(void) {
    rq_rng r;
    rq_rng_seed(&r, 17);
    const int64_t outs[2] = {16, 48}, ins[3] = {32, 96, 608};
    for (int oi = 0; oi < 2; oi++)
        for (int ii = 0; ii < 3; ii++) {
            const int64_t out = outs[oi], in = ins[ii], nb = in / 32;
            rq_block_q8_0 *w = rq_xalloc(out * nb * 34);
            uint8_t *wr = rq_xalloc(out / 16 * rq_q8_0_r16_group_bytes(in));
            int8_t *xq = rq_xalloc(in);
            float *xd = rq_xalloc(nb * 4), *y = rq_xalloc(out * 4), *x = rq_xalloc(in * 4);
            int32_t *xs = rq_xalloc(nb * 4);
            for (int64_t i = 0; i < out * nb; i++) {
                w[i].d = rq_fp32_to_fp16((float)(0.1 * rq_rng_uniform(&r) - 0.05));
                for (int k = 0; k < 32; k++) w[i].qs[k] = (int8_t)((i * 32 + k) * 37 % 256 - 128);
            }
            for (int64_t i = 0; i < in; i++) x[i] = (float)rq_rng_normal(&r);
            for (int64_t b = 0; b < nb; b++) {
                xd[b] = rq_act_quant_ref(x + b * 32, 32, 127, xq + b * 32);
                xs[b] = 0;
                for (int k = 0; k < 32; k++) xs[b] += xq[b * 32 + k];
            }
            rq_q8_0_r16_pack(w, out, in, wr);
            for (int lvl = RQ_CPU_SCALAR; lvl <= (int)rq_cpu_max_level(); lvl++) {
                rq_cpu_set_level((rq_cpu_level)lvl);
                rq_q8_0_r16_gemv_q8(wr, out, in, xq, xd, xs, y);
                int bad = 0;
                for (int64_t o = 0; o < out; o++) {
                    double s = 0, M = 0;
                    for (int64_t b = 0; b < nb; b++)
                        for (int k = 0; k < 32; k++) {
                            const double p = (double)rq_fp16_to_fp32(w[o * nb + b].d) * w[o * nb + b].qs[k] *
                                             ((double)xd[b] * xq[b * 32 + k]);
                            s += p;
                            M += fabs(p);
                        }
                    bad += fabs(y[o] - s) > sum_tol(M, nb);
                }
                RQ_CHECK_MSG(bad == 0, "Q8_0 R16 int8 GEMV %s %lldx%lld: %d rows off", rq_cpu_level_name((rq_cpu_level)lvl),
                             (long long)out, (long long)in, bad);
            }
            rq_cpu_set_level(RQ_CPU_AVX512);
            rq_free(w), rq_free(wr), rq_free(xq), rq_free(xd), rq_free(y), rq_free(x), rq_free(xs);
        }
    /* the layer */
    const int64_t in = 96;
    for (int oi = 0; oi < 2; oi++) {
        const int64_t out = oi ? 77 : 80;
        rq_linear lp, lr;
        make_pair(&r, RQ_TYPE_Q8_0, out, in, &lp, &lr);
        RQ_CHECK(rq_linear_prepare_q8(&lp) == RQ_OK && lp.q8r16 == NULL); /* exact mode: nothing */
        rq_lowbit_tuning tu;
        rq_lowbit_tuning_get(&tu);
        tu.a16 = RQ_LOWBIT_A16_Q8;
        rq_lowbit_tuning_set(&tu);
        RQ_CHECK(rq_linear_prepare_q8(&lp) == RQ_OK && (lp.q8r16 != NULL) == (out % 16 == 0));
        float *x = rq_xalloc(in * 4), *xr = rq_xalloc(in * 4), *yp = rq_xalloc(out * 4), *yr = rq_xalloc(out * 4);
        int8_t q[32];
        for (int64_t i = 0; i < in; i++) x[i] = (float)rq_rng_normal(&r);
        for (int64_t b = 0; b < in; b += 32) {
            const float a = rq_act_quant_ref(x + b, 32, 127, q);
            for (int i = 0; i < 32; i++) xr[b + i] = a * (float)q[i];
        }
        double *M = rq_xalloc(out * 8);
        abs_sums(&lr, xr, 1, 0, M);
        rq_linear_forward(&lr, xr, 1, yr, out, false);
        for (int mode = 0; mode < 2; mode++) {
            memset(yp, 0, (size_t)out * 4);
            if (mode == 0) {
                rq_linear_forward(&lp, x, 1, yp, out, false);
            } else { /* ranges [0, 32), [32, 45), [45, out): R16, then the per-row kernel */
                const int64_t cuts[4] = {0, 32, 45, out};
                for (int k = 0; k < 3; k++) rq_linear_forward_cols(&lp, x, 1, cuts[k], cuts[k + 1], yp, out, true);
            }
            int bad = 0;
            for (int64_t o = 0; o < out; o++) bad += !(fabs((double)yp[o] - yr[o]) <= sum_tol(M[o], in));
            RQ_CHECK_MSG(bad == 0, "Q8_0 linear %lld rows, a16 q8, mode %d: %d outputs off", (long long)out, mode, bad);
        }
        rq_lowbit_tuning_set(NULL);
        rq_free(x), rq_free(xr), rq_free(yp), rq_free(yr), rq_free(M);
        rq_free(lp.data), rq_free(lp.q8r16), rq_free(lr.w);
    }
}

static void test_linear_kinds(void) {
    rq_rng r;
    rq_rng_seed(&r, 12);
    const int types[9] = {RQ_TYPE_W2U_G32, RQ_TYPE_W2U_G64, RQ_TYPE_W2U_G128, RQ_TYPE_W2L_G64, RQ_TYPE_W4U_G32,
                          RQ_TYPE_W4U_G64, RQ_TYPE_W4U_G128, RQ_TYPE_Q8_0, RQ_TYPE_F16};
    const int64_t out = 77, in = 384, ldy = out + 5;
    const int64_t ns[3] = {1, 6, 12}; /* 12: the W2 kinds' dequantize-and-SGEMM path */
    /* the fourth: float activations of W2U weights and Q8_0 under RQ_LOWBIT_A16_Q8 (int8 per
     * weight group or 32-block, on the GEMV and the dequantizing path alike) */
    const int abits[4] = {0, 8, 4, 0};
    for (int ti = 0; ti < 9; ti++)
        for (int ni = 0; ni < 3; ni++)
            for (int ai = 0; ai < 4; ai++) {
                const int type = types[ti];
                const int64_t n = ns[ni];
                const bool w2 = rq_lowbit_group(type) != 0;
                if (!w2 && abits[ai]) continue; /* the GGUF kind keeps float activations */
                const bool a16q8 = ai == 3;
                /* W2U and Q8_0 (W2L and W4U keep x exactly: test_kernels) */
                if (a16q8 && rq_lowbit_kind_of(type) != RQ_LOWBIT_KIND_W2U && type != RQ_TYPE_Q8_0) continue;
                rq_lowbit_tuning tu;
                rq_lowbit_tuning_get(&tu);
                tu.a16 = a16q8 ? RQ_LOWBIT_A16_Q8 : RQ_LOWBIT_A16_EXACT;
                rq_lowbit_tuning_set(&tu);
                rq_linear lp, lr;
                make_pair(&r, type, out, in, &lp, &lr);
                lp.act_bits = abits[ai]; /* the reference (kind F32) gets x̃ instead */
                float *x = rq_xalloc(n * in * 4), *y0 = rq_xalloc(n * ldy * 4), *yp = rq_xalloc(n * ldy * 4);
                float *yr = rq_xalloc(n * ldy * 4);
                double *M = rq_xalloc(n * out * 8);
                for (int64_t i = 0; i < n * in; i++) x[i] = (float)(rq_rng_normal(&r) * (i % 61 == 0 ? 6 : 1));
                for (int64_t i = 0; i < n * ldy; i++) y0[i] = (float)rq_rng_normal(&r);
                abs_sums(&lr, x, n, abits[ai], M);
                float *xr = rq_xalloc(n * in * 4); /* x̃: the integer kernels' quantizer, scalar reference */
                memcpy(xr, x, (size_t)(n * in) * 4);
                if (abits[ai]) {
                    int8_t *q = rq_xalloc(in);
                    for (int64_t t = 0; t < n; t++) {
                        float a = rq_act_quant_ref(x + t * in, in, abits[ai] == 8 ? 127 : 7, q);
                        for (int64_t i = 0; i < in; i++) xr[t * in + i] = a * (float)q[i];
                    }
                    rq_free(q);
                }
                if (a16q8) { /* per weight group, per 32-block for Q8_0 */
                    const int64_t g = type == RQ_TYPE_Q8_0 ? 32 : rq_lowbit_group(type);
                    int8_t *q = rq_xalloc(g);
                    for (int64_t b = 0; b < n * in; b += g) {
                        float a = rq_act_quant_ref(x + b, g, 127, q);
                        for (int64_t i = 0; i < g; i++) xr[b + i] = a * (float)q[i];
                    }
                    rq_free(q);
                }
                for (int mode = 0; mode < 3; mode++) {
                    /* 0: overwrite; 1: accumulate; 2: column ranges [0,13), [13,40), [40,out) accumulating */
                    const bool acc = mode > 0;
                    memcpy(yp, y0, (size_t)(n * ldy) * 4);
                    memcpy(yr, y0, (size_t)(n * ldy) * 4);
                    if (mode < 2) {
                        rq_linear_forward(&lp, x, n, yp, ldy, acc);
                        rq_linear_forward(&lr, xr, n, yr, ldy, acc);
                    } else {
                        const int64_t cuts[4] = {0, 13, 40, out};
                        for (int k = 0; k < 3; k++) {
                            rq_linear_forward_cols(&lp, x, n, cuts[k], cuts[k + 1], yp, ldy, true);
                            rq_linear_forward_cols(&lr, xr, n, cuts[k], cuts[k + 1], yr, ldy, true);
                        }
                    }
                    int bad = 0, untouched = 1;
                    for (int64_t t = 0; t < n; t++) {
                        for (int64_t o = 0; o < out; o++) {
                            double d = fabs((double)yp[t * ldy + o] - yr[t * ldy + o]);
                            bad += !(d <= sum_tol(M[t * out + o], in) + (acc ? 4 * FLT_EPSILON * fabs(y0[t * ldy + o]) : 0));
                        }
                        for (int64_t o = out; o < ldy; o++) untouched &= yp[t * ldy + o] == y0[t * ldy + o];
                    }
                    RQ_CHECK_MSG(bad == 0 && untouched, "%s n=%lld A%d%s mode %d: %d outputs off, padding %s",
                                 rq_type_name(type), (long long)n, abits[ai] ? abits[ai] : 16, a16q8 ? " q8" : "",
                                 mode, bad, untouched ? "kept" : "written");
                }
                rq_lowbit_tuning_set(NULL);
                rq_free(x), rq_free(xr), rq_free(y0), rq_free(yp), rq_free(yr), rq_free(M);
                rq_free(lp.data), rq_free(lr.w);
            }
}

/* ------------------------------------------------------------------ models */

static rq_status make_model(const char *src, int wbits, rq_qparam_kind kind, const char *path) {
    rq_gguf *g;
    RQ_TRY(rq_gguf_open(src, &g));
    rq_model *m = NULL;
    rq_ptq_result res = {0};
    rq_status s = rq_model_load(g, &m);
    rq_rotation r1 = {0}, r2 = {0};
    if (s == RQ_OK) {
        r1 = rq_rot_make(RQ_ROT_GSR, m->cfg.n_embd, 64, 0);
        r2 = rq_rot_make(RQ_ROT_NONE, m->cfg.head_dim, 0, 0);
        s = rq_fold_model(m, &r1, &r2);
    }
    rq_ptq_opts o = rq_ptq_opts_default();
    o.method = RQ_PTQ_RTN;
    o.wbits = wbits;
    o.group = 64;
    o.quantizer = kind;
    if (s == RQ_OK) s = rq_ptq_run(m, &o, NULL, 0, 0, &res);
    if (s == RQ_OK) {
        rq_qinfo qi;
        memset(&qi, 0, sizeof qi);
        qi.wbits = (uint32_t)wbits;
        qi.group = 64;
        qi.quantizer = kind;
        strcpy(qi.method, "rtn");
        strcpy(qi.embd_type, "q8_0");
        qi.r1 = r1;
        qi.r2 = r2;
        s = rq_qmodel_write(m, g, &res, &qi, path);
    }
    rq_ptq_result_free(&res);
    rq_model_free(m);
    rq_gguf_close(g);
    return s;
}

static double ppl_of(const rq_model *m, const int32_t *ids, int64_t n, int64_t ctx, int64_t chunks) {
    rq_ppl_params p = {.protocol = RQ_PPL_LLAMACPP, .ctx = ctx, .max_chunks = chunks, .bos = -1};
    rq_ppl_result res;
    if (rq_ppl_eval(m, ids, n, &p, &res) != RQ_OK) return -1;
    return res.ppl;
}

/* Relative L2 difference of the residual after block 0 of the two models, from the same
 * embeddings of tokens[0..n). */
static double first_block_error(const rq_model *a, const rq_model *b, const int32_t *tokens, int64_t n) {
    rq_state *sa, *sb;
    RQ_ASSERT(rq_state_new(a, n, n, false, &sa) == RQ_OK && rq_state_new(b, n, n, false, &sb) == RQ_OK);
    rq_model_embed(a, tokens, n, sa->x);
    rq_model_embed(b, tokens, n, sb->x);
    RQ_ASSERT(rq_model_forward_layers(sa, 0, 1, n, 0) == RQ_OK && rq_model_forward_layers(sb, 0, 1, n, 0) == RQ_OK);
    double e = rq_rel_l2(sa->x, sb->x, n * a->cfg.n_embd);
    rq_state_free(sa);
    rq_state_free(sb);
    return e;
}

/* Layer 0's linear inputs as the forward pass hands them over (the W2 kinds with integer
 * activations get x itself and quantize it in their kernels). */
typedef struct {
    float *x[RQ_SITE_COUNT];
    int64_t n, dim[RQ_SITE_COUNT];
} site_inputs;

static void capture_inputs(void *user, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim) {
    site_inputs *c = user;
    if (layer != 0 || site >= RQ_SITE_RESIDUAL) return;
    rq_free(c->x[site]);
    c->x[site] = rq_xalloc(n * dim * (int64_t)sizeof(float));
    memcpy(c->x[site], x, (size_t)(n * dim) * sizeof(float));
    c->n = n, c->dim[site] = dim;
}

/* Largest relative L2 difference over layer 0's seven linears between the packed linear
 * on the model's own inputs x (its integer kernels quantize x) and the reference's F32
 * linear on x̃ = x quantized and dequantized by rq_act_quant_ref: the same codes by
 * construction, so the outputs differ by float summation order only. */
static double worst_linear_error(const rq_model *fast, const rq_model *ref, const int32_t *tokens, int64_t n,
                                 int bits, const char **worst) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(fast, n, n, false, &st) == RQ_OK);
    site_inputs c = {0};
    st->hook = capture_inputs;
    st->hook_user = &c;
    rq_model_embed(fast, tokens, n, st->x);
    RQ_ASSERT(rq_model_forward_layers(st, 0, 1, n, 0) == RQ_OK);
    rq_state_free(st);
    const rq_layer *F = &fast->layers[0], *R = &ref->layers[0];
    const rq_linear *fl[7] = {&F->wq, &F->wk, &F->wv, &F->wo, &F->w_gate, &F->w_up, &F->w_down};
    const rq_linear *rl[7] = {&R->wq, &R->wk, &R->wv, &R->wo, &R->w_gate, &R->w_up, &R->w_down};
    const rq_site sites[7] = {RQ_SITE_ATTN_IN, RQ_SITE_ATTN_IN, RQ_SITE_ATTN_IN, RQ_SITE_ATTN_OUT,
                              RQ_SITE_FFN_IN,  RQ_SITE_FFN_IN,  RQ_SITE_FFN_DOWN};
    const char *names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    double e_max = 0;
    for (int k = 0; k < 7; k++) {
        const int64_t in = fl[k]->n_in, out = fl[k]->n_out;
        const float *x = c.x[sites[k]];
        RQ_ASSERT(x && c.dim[sites[k]] == in && fl[k]->act_bits == bits);
        float *xq = rq_xalloc(n * in * (int64_t)sizeof(float)), *yf = rq_xalloc(n * out * (int64_t)sizeof(float));
        float *yr = rq_xalloc(n * out * (int64_t)sizeof(float));
        int8_t *q = rq_xalloc(in);
        for (int64_t t = 0; t < n; t++) {
            const float a = rq_act_quant_ref(x + t * in, in, bits == 8 ? RQ_ACT_Q8_MAX : RQ_ACT_Q4_MAX, q);
            for (int64_t i = 0; i < in; i++) xq[t * in + i] = a * (float)q[i];
        }
        rq_linear_forward(fl[k], x, n, yf, out, false);
        rq_linear_forward(rl[k], xq, n, yr, out, false);
        const double e = rq_rel_l2(yf, yr, n * out);
        if (e >= e_max) e_max = e, *worst = names[k];
        rq_free(xq), rq_free(yf), rq_free(yr), rq_free(q);
    }
    for (int s = 0; s < RQ_SITE_COUNT; s++) rq_free(c.x[s]);
    return e_max;
}

/* greedy tokens after a prompt */
static void greedy(const rq_model *m, const int32_t *prompt, int64_t np, int64_t n_gen, int32_t *out) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, np + n_gen, np, false, &st) == RQ_OK);
    RQ_ASSERT(rq_model_forward(st, prompt, np, 0, RQ_LOGITS_LAST) == RQ_OK);
    for (int64_t i = 0; i < n_gen; i++) {
        int32_t best = 0;
        for (int64_t v = 1; v < m->cfg.n_vocab; v++)
            if (st->logits[v] > st->logits[best]) best = (int32_t)v;
        out[i] = best;
        if (i + 1 < n_gen) RQ_ASSERT(rq_model_forward(st, &best, 1, np + i, RQ_LOGITS_LAST) == RQ_OK);
    }
    rq_state_free(st);
}

#define N_GEN 16

static void compare_paths(const char *path, const char *label, int wbits, const int32_t *ids, int64_t n_ids,
                          int64_t ctx, int32_t **prompts, const int64_t *prompt_len, int n_prompts) {
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(path, &g) == RQ_OK);
    rq_model *fast = NULL, *ref = NULL;
    rq_model_load_opts ro = {.ref_linear = true};
    RQ_CHECK(rq_model_load_ex(g, NULL, &fast) == RQ_OK);
    RQ_CHECK(rq_model_load_ex(g, &ro, &ref) == RQ_OK);
    rq_gguf_close(g);
    if (!fast || !ref) return;
    /* packed: the blocks' linears are W2U/W2L/W4U, lm_head and embedding Q8_0; no float copies */
    const rq_layer *L = &fast->layers[0];
    const rq_linear_kind kind = wbits == 4 ? RQ_LINEAR_W4U : strstr(label, "lut") ? RQ_LINEAR_W2L : RQ_LINEAR_W2U;
    RQ_CHECK(L->wq.kind == kind && L->wq.w == NULL && L->w_down.kind == kind);
    /* the weight-holding line names the packed type of every block linear */
    char desc[512], want[64];
    snprintf(want, sizeof want, "blocks: %lld %s;", (long long)(7 * fast->cfg.n_layer),
             wbits == 4 ? "W4U_G64" : strstr(label, "lut") ? "W2L_G64" : "W2U_G64");
    rq_model_describe(fast, desc, sizeof desc);
    RQ_CHECK_MSG(strstr(desc, want) != NULL, "%s: describe gives '%s', expected '%s'", label, desc, want);
    RQ_CHECK(fast->output.kind == RQ_LINEAR_GGUF && fast->output.type == RQ_TYPE_Q8_0 && fast->tok_embd == NULL);
    RQ_CHECK(ref->layers[0].wq.kind == RQ_LINEAR_F32 && ref->tok_embd != NULL);
    /* weights in memory: 2/4-bit codes + fp16 params of the linears, Q8_0 embedding and
     * lm_head (untied after folding), norms */
    const rq_model_config *c = &fast->cfg;
    int64_t lin = c->n_layer * (c->n_embd * (2 * c->n_head * c->head_dim + 2 * c->n_head_kv * c->head_dim) +
                                3 * c->n_embd * c->n_ff);
    int np = strstr(label, "lut") ? 4 : 2;
    int64_t expect = lin * wbits / 8 + lin / 64 * np * 2 + 2 * c->n_vocab * c->n_embd / 32 * 34 +
                     (2 * c->n_layer + 1) * c->n_embd * 4;
    RQ_CHECK_MSG(rq_model_weight_bytes(fast) == expect, "%s: %lld bytes of weights, expected %lld", label,
                 (long long)rq_model_weight_bytes(fast), (long long)expect);
    /* the W2 kernels for every batch (prefill included): the path under test */
    rq_linear_set_lowbit_dequant_min(INT64_MAX);
    double t0 = rq_time_now();
    double pf = ppl_of(fast, ids, n_ids, ctx, 8), pr = ppl_of(ref, ids, n_ids, ctx, 8);
    printf("%s, 8 chunks of %lld: PPL fast %.6f, reference %.6f (%.1f s)\n", label, (long long)ctx, pf, pr,
           rq_time_now() - t0);
    RQ_CHECK_MSG(pf > 0 && fabs(pf - pr) <= PPL_REL_TOL * pr, "%s: PPL %.6f (fast) vs %.6f (reference)", label, pf,
                 pr);
    /* int8/int4 activations: the first block's output from the same input, on the W2
     * kernels and on the dequantizing prefill path */
    const int abits[3] = {16, 8, 4};
    const double tol[3] = {LAYER_TOL_A16, LAYER_TOL_A8, LAYER_TOL_A4};
    for (int route = 0; route < 2; route++) {
        rq_linear_set_lowbit_dequant_min(route == 0 ? INT64_MAX : 1);
        for (int a = 0; a < 3; a++) {
            RQ_CHECK(rq_model_set_act_bits(fast, abits[a]) == RQ_OK && rq_model_set_act_bits(ref, abits[a]) == RQ_OK);
            double e = first_block_error(fast, ref, ids, ctx);
            printf("%s A%d, %s: first block output, relative L2 difference %.3g\n", label, abits[a],
                   route == 0 ? "W2 kernels" : "dequantized tiles", e);
            RQ_CHECK_MSG(e <= tol[a], "%s A%d: first block differs by %.3g (relative L2)", label, abits[a], e);
            if (route == 0 && abits[a] != 16) {
                const char *which = "";
                const double el = worst_linear_error(fast, ref, ids, ctx, abits[a], &which);
                printf("%s A%d, W2 kernels: layer 0 linears on the same codes, largest relative L2 difference "
                       "%.3g (%s)\n", label, abits[a], el, which);
                RQ_CHECK_MSG(el <= LINEAR_TOL_AINT, "%s A%d: layer 0 linear %s differs by %.3g (relative L2)", label,
                             abits[a], which, el);
            }
        }
    }
    rq_linear_set_lowbit_dequant_min(INT64_MAX);
    t0 = rq_time_now();
    RQ_CHECK(rq_model_set_act_bits(fast, 16) == RQ_OK && rq_model_set_act_bits(ref, 16) == RQ_OK);
    for (int p = 0; p < n_prompts; p++) {
        int32_t tf[N_GEN], tr[N_GEN];
        greedy(fast, prompts[p], prompt_len[p], N_GEN, tf);
        greedy(ref, prompts[p], prompt_len[p], N_GEN, tr);
        RQ_CHECK_MSG(memcmp(tf, tr, sizeof tf) == 0, "%s: greedy tokens of prompt %d differ", label, p);
    }
    printf("%s: greedy tokens compared (%.1f s)\n", label, rq_time_now() - t0);
    rq_linear_set_lowbit_dequant_min(0);
    rq_model_free(fast);
    rq_model_free(ref);
}

static void test_models(void) {
    const char *src = rq_test_model_path();
    if (!src) {
        printf("note: default model absent, model comparisons skipped\n");
        return;
    }
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(src, &g) == RQ_OK);
    rq_tokenizer *tok;
    RQ_CHECK(rq_tokenizer_load(g, &tok) == RQ_OK);
    rq_gguf_close(g);
    /* evaluation text: the shared WikiText-2 test file when present, else the model's
     * tokenization of a paragraph repeated (any token stream serves to compare paths) */
    const char *wiki = "../shared/data/wikitext-2-raw/wiki.test.raw";
    char *text = NULL;
    int64_t len = 0;
    FILE *f = fopen(wiki, "rb");
    if (f) {
        len = 16384;
        text = rq_xalloc(len + 1);
        len = (int64_t)fread(text, 1, (size_t)len, f);
        fclose(f);
    } else {
        const char *para = "The quick brown fox jumps over the lazy dog near the river bank, while the "
                           "children of the village watch from the old stone bridge and count the boats. ";
        len = (int64_t)strlen(para) * 40;
        text = rq_xalloc(len + 1);
        for (int i = 0; i < 40; i++) memcpy(text + i * strlen(para), para, strlen(para));
    }
    int32_t *ids;
    int64_t n_ids;
    RQ_CHECK(rq_tokenizer_encode(tok, text, len, false, false, &ids, &n_ids) == RQ_OK);
    const int64_t ctx = 64;
    RQ_CHECK(n_ids >= 8 * ctx);
    const char *prompts_txt[3] = {"The capital of France is", "def fibonacci(n):", "Once upon a time, there was"};
    int32_t *prompts[3];
    int64_t plen[3];
    for (int p = 0; p < 3; p++)
        RQ_CHECK(rq_tokenizer_encode(tok, prompts_txt[p], (int64_t)strlen(prompts_txt[p]), false, false, &prompts[p],
                                     &plen[p]) == RQ_OK);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "/tmp/rq_test_fastpath_%d.gguf", (int)getpid());
    const rq_qparam_kind kinds[3] = {RQ_QPARAM_UNIFORM, RQ_QPARAM_LUT, RQ_QPARAM_UNIFORM};
    const int wbits[3] = {2, 2, 4};
    const char *labels[3] = {"W2 uniform g64 rtn", "W2 lut g64 rtn", "W4 uniform g64 rtn"};
    for (int k = 0; k < 3; k++) {
        double t0 = rq_time_now();
        RQ_CHECK(make_model(src, wbits[k], kinds[k], tmp) == RQ_OK);
        printf("%s: model made in %.1f s\n", labels[k], rq_time_now() - t0);
        compare_paths(tmp, labels[k], wbits[k], ids, n_ids, ctx, prompts, plen, 3);
        unlink(tmp);
    }
    for (int p = 0; p < 3; p++) rq_free(prompts[p]);
    rq_free(ids);
    rq_free(text);
    rq_tokenizer_free(tok);
}

int main(void) {
    rq_threads_set(0);
    test_q8_0_gemv();
    test_q8_0_r16();
    test_lowbit_dequant();
    test_linear_kinds();
    test_models();
    return rq_test_finish();
}

/* Tests of src/quant: the uniform quantizer against a direct scalar implementation of
 * METHODS.md's formulas, the clip search, the LUT (Lloyd-Max) quantizer, the Hessian
 * accumulator against a float64 XᵀX, and GPTQ against a deliberately simple float64
 * implementation written here (column-by-column update of the whole W, Gauss-Jordan
 * inverse, textbook Cholesky), plus GPTQ's defining property (output error below RTN's),
 * dead inputs, the act-order permutation and the damping retry. */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "quant/gptq.h"
#include "quant/lut.h"
#include "quant/uniform.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* Both GPTQ implementations run in float64; they differ only in summation order and in
 * how H⁻¹ is formed (LAPACK vs Gauss-Jordan), ~1e-12 relative. A code could flip only if
 * a value sat within that distance of a rounding boundary, so we require identical codes.
 * Dequantized values are then fp16 scale × integer, equal exactly; the bound is slack. */
#define TOL_GPTQ_DEQ 1e-5
#define TOL_GPTQ_LOSS_REL 1e-8
/* H from float32 chunk sums (2048 rows) vs float64: ~1e-6 relative to max |H|. */
#define TOL_HESSIAN_REL 1e-5

/* ---------- an independent fp16 rounding (F16C hardware) ---------- */
static float f16_hw(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

static float oracle_scale(double raw) {
    float s = f16_hw((float)raw);
    if (s < 0x1p-24f) s = 0x1p-24f;
    if (s > 65504.0f) s = 65504.0f;
    return s;
}

/* ---------- scalar oracle of the uniform quantizer (METHODS.md formulas) ---------- */
static void oracle_params(int bits, int sym, double c, const double *w, int n, float *s, int *z) {
    if (sym) {
        double m = 0;
        for (int j = 0; j < n; j++)
            if (fabs(w[j]) > m) m = fabs(w[j]);
        m *= c;
        *z = 1 << (bits - 1);
        *s = m == 0 ? 1.0f : oracle_scale(m / ((1 << (bits - 1)) - 1));
        return;
    }
    int maxq = (1 << bits) - 1;
    double mn = 0, mx = 0; /* range includes 0 */
    for (int j = 0; j < n; j++) {
        if (w[j] < mn) mn = w[j];
        if (w[j] > mx) mx = w[j];
    }
    double lo = c * mn, hi = c * mx;
    if (hi == lo) {
        *s = 1.0f;
        *z = 0;
        return;
    }
    *s = oracle_scale((hi - lo) / maxq);
    double zz = rint(-lo / *s);
    *z = zz < 0 ? 0 : zz > maxq ? maxq : (int)zz;
}

static int oracle_code(int bits, int sym, float s, int z, double w) {
    double q = rint(w / s);
    if (sym) { /* q in [-2^(b-1), 2^(b-1)-1], stored with offset 2^(b-1) */
        double lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
        q = q < lo ? lo : q > hi ? hi : q;
        return (int)q + (1 << (bits - 1));
    }
    q += z;
    int maxq = (1 << bits) - 1;
    return q < 0 ? 0 : q > maxq ? maxq : (int)q;
}

/* weighted squared error of a group at clip ratio c */
static double oracle_group_err(int bits, int sym, double c, const double *w, const double *imp,
                               int n, float *s, int *z) {
    oracle_params(bits, sym, c, w, n, s, z);
    double err = 0;
    for (int j = 0; j < n; j++) {
        double d = w[j] - (double)*s * (oracle_code(bits, sym, *s, *z, w[j]) - *z);
        err += (imp ? imp[j] : 1.0) * d * d;
    }
    return err;
}

static void oracle_fit(int bits, int sym, const float *grid, int ngrid, const double *w,
                       const double *imp, int n, float *s, int *z) {
    double best = INFINITY;
    for (int k = 0; k < ngrid; k++) {
        float ss;
        int zz;
        double e = oracle_group_err(bits, sym, grid[k], w, imp, n, &ss, &zz);
        if (e < best) {
            best = e;
            *s = ss;
            *z = zz;
        }
    }
}

static void fill_weights(rq_rng *r, float *w, int64_t out, int64_t in) {
    for (int64_t i = 0; i < out * in; i++) {
        double v = 0.05 * rq_rng_normal(r);
        if (rq_rng_below(r, 50) == 0) v *= 6; /* outliers */
        w[i] = (float)v;
    }
}

/* ---------- fp16 helper ---------- */
static void test_fp16(void) {
    rq_rng r;
    rq_rng_seed(&r, 1);
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        /* random sign, exponent 2^-30..2^17, random mantissa: normals, subnormals, overflow */
        uint32_t bits = (uint32_t)rq_rng_u64(&r);
        uint32_t e = 97 + (uint32_t)rq_rng_below(&r, 48);
        bits = (bits & 0x807fffffu) | (e << 23);
        float x;
        memcpy(&x, &bits, 4);
        float a = rq_quant_round_fp16(x), b = f16_hw(x);
        if (!(a == b || (isnan(a) && isnan(b))) || signbit(a) != signbit(b)) bad++;
    }
    const float edge[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 1e9f, 0x1p-24f,
                          0x1p-25f, 0x1.8p-25f, 0x1p-26f, 0x1p-14f, 0x1.ffcp-15f, 1.0f + 0x1p-11f,
                          1.0f + 0x1.8p-11f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int sg = 0; sg < 2; sg++) {
            float x = sg ? -edge[i] : edge[i];
            float a = rq_quant_round_fp16(x), b = f16_hw(x);
            if (!(a == b) || signbit(a) != signbit(b)) bad++;
        }
    RQ_CHECK(isnan(rq_quant_round_fp16(NAN)));
    RQ_CHECK_MSG(bad == 0, "fp16 rounding differs from F16C on %d values", bad);
}

/* ---------- uniform quantizer ---------- */
static void test_uniform_vs_oracle(void) {
    const int64_t out = 7, in = 96;
    const int64_t groups[] = {32, 96, 3};
    const int bitsv[] = {2, 3, 4, 8};
    rq_rng r;
    rq_rng_seed(&r, 2);
    float w[7 * 96], deq[7 * 96], scales[7 * 32], imp[96];
    uint8_t codes[7 * 96], zeros[7 * 32];
    fill_weights(&r, w, out, in);
    for (int64_t j = 0; j < in; j++) w[4 * in + j] = 0.01f + fabsf(w[4 * in + j]); /* all > 0 */
    for (int64_t j = 0; j < in; j++) w[5 * in + j] = 0.0f;                          /* all 0 */
    for (int64_t j = 0; j < in; j++) w[6 * in + j] = -fabsf(w[6 * in + j]);         /* all <= 0 */
    for (int64_t j = 0; j < in; j++) imp[j] = (float)(0.1 + rq_rng_uniform(&r) * 3);

    for (int gi = 0; gi < 3; gi++)
        for (int bi = 0; bi < 4; bi++)
            for (int sym = 0; sym < 2; sym++)
                for (int search = 0; search < 3; search++) {
                    int64_t g = groups[gi], ng = in / g;
                    int bits = bitsv[bi], maxq = (1 << bits) - 1;
                    rq_uniform_cfg cfg = {.bits = bits, .symmetric = sym};
                    if (search) {
                        cfg.clip = rq_uniform_clip_grid;
                        cfg.n_clip = RQ_UNIFORM_CLIP_GRID_N;
                    }
                    const float *impp = search == 2 ? imp : NULL;
                    RQ_CHECK(rq_uniform_quantize(&cfg, w, out, in, g, impp, codes, scales, zeros,
                                                 deq) == RQ_OK);
                    int code_mismatch = 0, param_mismatch = 0, deq_mismatch = 0, range_bad = 0;
                    int err_bad = 0, clip_worse = 0;
                    for (int64_t row = 0; row < out; row++)
                        for (int64_t k = 0; k < ng; k++) {
                            double wg[96], ig[96];
                            for (int64_t j = 0; j < g; j++) {
                                wg[j] = w[row * in + k * g + j];
                                ig[j] = impp ? impp[k * g + j] : 1.0;
                            }
                            float s;
                            int z;
                            if (search)
                                oracle_fit(bits, sym, rq_uniform_clip_grid, RQ_UNIFORM_CLIP_GRID_N,
                                           wg, impp ? ig : NULL, (int)g, &s, &z);
                            else
                                oracle_params(bits, sym, 1.0, wg, (int)g, &s, &z);
                            float ls = scales[row * ng + k];
                            int lz = zeros[row * ng + k];
                            if (ls != s || lz != z) param_mismatch++;
                            if (lz > maxq || rq_quant_round_fp16(ls) != ls || !(ls > 0)) range_bad++;
                            double err = 0;
                            for (int64_t j = 0; j < g; j++) {
                                int64_t idx = row * in + k * g + j;
                                int oc = oracle_code(bits, sym, s, z, wg[j]);
                                if (codes[idx] != oc) code_mismatch++;
                                if (codes[idx] > maxq) range_bad++;
                                if (deq[idx] != (float)((double)ls * (codes[idx] - lz))) deq_mismatch++;
                                /* inside the representable range the error is at most s/2 */
                                double lo_r = (double)ls * (0 - lz), hi_r = (double)ls * (maxq - lz);
                                double e = fabs(wg[j] - deq[idx]);
                                if (wg[j] >= lo_r && wg[j] <= hi_r && e > 0.5 * ls * (1 + 1e-12))
                                    err_bad++;
                                err += ig[j] * e * e;
                            }
                            if (search) { /* never worse than c = 1 */
                                float s1;
                                int z1;
                                double e1 = oracle_group_err(bits, sym, 1.0, wg, ig, (int)g, &s1, &z1);
                                if (err > e1 * (1 + 1e-12)) clip_worse++;
                            }
                        }
                    RQ_CHECK_MSG(code_mismatch == 0 && param_mismatch == 0 && deq_mismatch == 0,
                                 "uniform g=%lld b=%d sym=%d search=%d: %d codes, %d params, %d "
                                 "deq differ from the oracle",
                                 (long long)g, bits, sym, search, code_mismatch, param_mismatch,
                                 deq_mismatch);
                    RQ_CHECK_MSG(range_bad == 0, "uniform: %d values out of range", range_bad);
                    RQ_CHECK_MSG(err_bad == 0, "uniform g=%lld b=%d sym=%d: %d errors > s/2",
                                 (long long)g, bits, sym, err_bad);
                    RQ_CHECK_MSG(clip_worse == 0, "clip search worse than c=1 in %d groups",
                                 clip_worse);
                }

    /* the error bound on the clip range itself, for c = 1 asymmetric: w in [min, max]
     * lies within s/2 of the grid up to the fp16 rounding of s (|Δs| <= 2^-11 s, times
     * 2^b - 1 steps) and the rounding of z (s/2) */
    for (int bi = 0; bi < 4; bi++) {
        int bits = bitsv[bi], maxq = (1 << bits) - 1;
        rq_uniform_cfg cfg = {.bits = bits};
        RQ_CHECK(rq_uniform_quantize(&cfg, w, out, in, 32, NULL, codes, scales, zeros, deq) == RQ_OK);
        double worst = 0;
        for (int64_t i = 0; i < out * in; i++) {
            double s = scales[i / 32];
            worst = fmax(worst, fabs((double)w[i] - deq[i]) / (s * (1.0 + maxq * 0x1p-11)));
        }
        RQ_CHECK_MSG(worst <= 1.0 + 1e-9, "b=%d: error %.3f s beyond the clip-range bound", bits,
                     worst);
    }

    /* invalid arguments */
    rq_uniform_cfg bad = {.bits = 5};
    RQ_CHECK(rq_uniform_quantize(&bad, w, out, in, 32, NULL, codes, scales, zeros, deq) == RQ_EINVAL);
    rq_uniform_cfg ok = {.bits = 4};
    RQ_CHECK(rq_uniform_quantize(&ok, w, out, in, 40, NULL, codes, scales, zeros, deq) == RQ_EINVAL);
    float badclip = 1.5f;
    rq_uniform_cfg bc = {.bits = 4, .clip = &badclip, .n_clip = 1};
    RQ_CHECK(rq_uniform_quantize(&bc, w, out, in, 32, NULL, codes, scales, zeros, deq) == RQ_EINVAL);
}

/* ---------- LUT quantizer ---------- */
/* The least-squares fit (uniform.h): (1) parameters are fp16 values and codes the nearest
 * grid point; (2) never worse than the same clip grid with integer zero points, weighted
 * or not; (3) a group that lies exactly on a grid with a non-integer zero point is
 * recovered exactly (the regression's fixed point), which no integer zero can do; (4) on
 * Gaussian 2-bit groups of 64 it lowers the mean squared error by a margin (measured
 * 0.86x of the clip search's; required below 0.95x). */
static void test_uniform_least_squares(void) {
    rq_rng r;
    rq_rng_seed(&r, 11);
    enum { G = 64, NG = 400 };
    double w[G], imp[G];
    for (int bits = 2; bits <= 4; bits++)
        for (int sym = 0; sym < 2; sym++)
            for (int weighted = 0; weighted < 2; weighted++) {
                int maxq = (1 << bits) - 1;
                rq_uniform_cfg clip = {.bits = bits, .symmetric = sym, .clip = rq_uniform_clip_grid,
                                       .n_clip = RQ_UNIFORM_CLIP_GRID_N};
                rq_uniform_cfg ls = clip;
                ls.least_squares = true;
                rq_group_quantizer q = rq_uniform_quantizer(&ls);
                double sum_ls = 0, sum_clip = 0;
                int not_fp16 = 0, not_nearest = 0, worse = 0;
                for (int k = 0; k < NG; k++) {
                    double shift = k % 4 == 0 ? 0.7 : 0.0; /* some groups off-centre */
                    for (int j = 0; j < G; j++) {
                        w[j] = rq_rng_normal(&r) + shift;
                        imp[j] = weighted ? 0.05 + 3.0 * rq_rng_uniform(&r) : 1.0;
                    }
                    float p[2], s1;
                    int z1;
                    q.fit(&q, w, weighted ? imp : NULL, G, p);
                    rq_uniform_fit(&clip, w, weighted ? imp : NULL, G, &s1, &z1);
                    if (f16_hw(p[0]) != p[0] || f16_hw(p[1]) != p[1] || !(p[0] > 0)) not_fp16++;
                    double e_ls = 0, e_clip = 0;
                    for (int j = 0; j < G; j++) {
                        double wq;
                        int c = q.quant(&q, p, w[j], &wq);
                        if (wq != (double)(p[0] * ((float)c - p[1]))) not_nearest++;
                        for (int c2 = 0; c2 <= maxq; c2++)
                            if (fabs(w[j] - p[0] * ((float)c2 - p[1])) < fabs(w[j] - wq) - 1e-12) not_nearest++;
                        e_ls += imp[j] * (w[j] - wq) * (w[j] - wq);
                        double wc = rq_uniform_dequant(s1, z1, rq_uniform_code(bits, s1, z1, w[j]));
                        e_clip += imp[j] * (w[j] - wc) * (w[j] - wc);
                    }
                    if (e_ls > e_clip * (1 + 1e-9)) worse++;
                    sum_ls += e_ls;
                    sum_clip += e_clip;
                }
                RQ_CHECK_MSG(not_fp16 == 0 && not_nearest == 0,
                             "ls b=%d sym=%d: %d groups with non-fp16 parameters, %d non-nearest codes", bits, sym,
                             not_fp16, not_nearest);
                RQ_CHECK_MSG(worse == 0, "ls b=%d sym=%d w=%d: worse than the clip search in %d of %d groups", bits,
                             sym, weighted, worse, NG);
                printf("ls fit b=%d sym=%d weighted=%d: squared error %.4g vs clip search %.4g (ratio %.3f)\n", bits,
                       sym, weighted, sum_ls, sum_clip, sum_ls / sum_clip);
                if (bits == 2 && !sym)
                    RQ_CHECK_MSG(sum_ls < 0.95 * sum_clip, "ls b=2 w=%d: error %.4g vs clip search %.4g", weighted,
                                 sum_ls, sum_clip);
            }
    /* exact recovery of a grid with a real-valued zero point */
    for (int bits = 2; bits <= 4; bits++) {
        int maxq = (1 << bits) - 1;
        rq_uniform_cfg ls = {.bits = bits, .least_squares = true};
        rq_group_quantizer q = rq_uniform_quantizer(&ls);
        float s0 = f16_hw(0.0371f), z0 = f16_hw(0.37f * (float)maxq + 0.29f);
        for (int j = 0; j < G; j++) w[j] = s0 * ((float)(j % (maxq + 1)) - z0);
        float p[2];
        q.fit(&q, w, NULL, G, p);
        double e = 0;
        for (int j = 0; j < G; j++) {
            double wq;
            q.quant(&q, p, w[j], &wq);
            e = fmax(e, fabs(w[j] - wq));
        }
        RQ_CHECK_MSG(p[0] == s0 && p[1] == z0 && e == 0,
                     "ls b=%d: grid (%g, %g) fitted as (%g, %g), max error %g", bits, s0, z0, p[0], p[1], e);
    }
    /* SEQ's grid (half_zero): z = 1.5, levels ±s/2, ±3s/2 only; on N(0, 1) the fit reaches
     * Max's (1960) optimal uniform 4-level quantizer (step 0.9957, MSE 0.1188) in MSE to 1 %
     * (the error is flat near the optimum: the 4 least-squares steps from the clip grid,
     * whose smallest ratio is 0.5 of max|w| ≈ 4.2, stop at a step within 0.1 of it) */
    {
        enum { N = 1 << 15 };
        double *wn = malloc(N * sizeof *wn);
        rq_rng rn;
        rq_rng_seed(&rn, 515);
        for (int j = 0; j < N; j++) wn[j] = rq_rng_normal(&rn);
        rq_uniform_cfg seq = {.bits = 2, .least_squares = true, .half_zero = true,
                              .clip = rq_uniform_clip_grid, .n_clip = RQ_UNIFORM_CLIP_GRID_N};
        RQ_CHECK(rq_uniform_cfg_check(&seq) == RQ_OK);
        rq_group_quantizer q = rq_uniform_quantizer(&seq);
        float p[2];
        q.fit(&q, wn, NULL, N, p);
        double mse = 0;
        int off = 0;
        for (int j = 0; j < N; j++) {
            double wq;
            int c = q.quant(&q, p, wn[j], &wq);
            mse += (wn[j] - wq) * (wn[j] - wq) / N;
            off += wq != p[0] * ((float)c - 1.5f) || fabs(wq) < 0.25 * p[0];
        }
        RQ_CHECK_MSG(p[1] == 1.5f && off == 0 && fabs(p[0] - 0.9957) < 0.1 && fabs(mse - 0.1188) < 0.0012,
                     "SEQ grid on N(0,1): s %g z %g MSE %.4f, %d values off the grid", p[0], p[1], mse, off);
        printf("SEQ grid on N(0,1): step %.4f (Max 0.9957), MSE %.4f (0.1188)\n", p[0], mse);
        seq.least_squares = false;
        RQ_CHECK(rq_uniform_cfg_check(&seq) == RQ_EINVAL);
        free(wn);
    }
    rq_uniform_cfg ls8 = {.bits = 8, .least_squares = true};
    RQ_CHECK(rq_uniform_cfg_check(&ls8) == RQ_EINVAL);
    rq_uniform_cfg ls4 = {.bits = 4, .least_squares = true};
    float wf[64] = {0}, sc[2], deq[64];
    uint8_t codes[64], zs[2];
    RQ_CHECK(rq_uniform_quantize(&ls4, wf, 1, 64, 32, NULL, codes, sc, zs, deq) == RQ_EINVAL);
}

static void test_lut(void) {
    const int64_t out = 5, in = 64, g = 32, ng = 2;
    rq_rng r;
    rq_rng_seed(&r, 3);
    float w[5 * 64], deq[5 * 64], deq0[5 * 64], lv[5 * 2 * 4], lv0[5 * 2 * 4], imp[64];
    uint8_t codes[5 * 64], codes0[5 * 64];
    fill_weights(&r, w, out, in);
    for (int64_t j = 0; j < in; j++) w[4 * in + j] = 0.0f; /* degenerate row */
    for (int64_t j = 0; j < in; j++) imp[j] = (float)(0.1 + 2 * rq_rng_uniform(&r));
    for (int weighted = 0; weighted < 2; weighted++) {
        const float *ip = weighted ? imp : NULL;
        rq_lut_cfg c10 = {.iters = 10}, c0 = {.iters = 0};
        RQ_CHECK(rq_lut_quantize(&c10, w, out, in, g, ip, codes, lv, deq) == RQ_OK);
        RQ_CHECK(rq_lut_quantize(&c0, w, out, in, g, ip, codes0, lv0, deq0) == RQ_OK);
        int bad = 0, worse = 0;
        for (int64_t row = 0; row < out; row++)
            for (int64_t k = 0; k < ng; k++) {
                const float *v = lv + (row * ng + k) * 4;
                for (int l = 0; l < 4; l++) bad += rq_quant_round_fp16(v[l]) != v[l];
                for (int l = 0; l < 3; l++) bad += !(v[l] <= v[l + 1]);
                double e = 0, e0 = 0;
                for (int64_t j = 0; j < g; j++) {
                    int64_t idx = row * in + k * g + j;
                    double x = w[idx], a = ip ? ip[k * g + j] : 1.0;
                    /* nearest level, by brute force */
                    double best = INFINITY;
                    for (int l = 0; l < 4; l++) best = fmin(best, fabs(x - v[l]));
                    bad += codes[idx] > 3 || deq[idx] != v[codes[idx]] ||
                           fabs(x - deq[idx]) != best;
                    e += a * (x - deq[idx]) * (x - deq[idx]);
                    e0 += a * (x - deq0[idx]) * (x - deq0[idx]);
                }
                /* Lloyd never increases the (weighted) error of the uniform start, up to
                 * the fp16 rounding of the levels (relative 2^-11 of the level values) */
                if (e > e0 * (1 + 1e-3) + 1e-12) worse++;
            }
        RQ_CHECK_MSG(bad == 0, "lut: %d bad levels/codes", bad);
        RQ_CHECK_MSG(worse == 0, "lut: Lloyd worse than uniform levels in %d groups", worse);
        for (int64_t j = 0; j < in; j++) RQ_CHECK(deq[4 * in + j] == 0.0f);
    }
    /* iters = 0 gives the uniform levels lo + k(hi-lo)/3 */
    double wg[4] = {-1, 2, 0.5, 0.25};
    float v[4];
    rq_lut_cfg c0 = {.iters = 0};
    rq_lut_fit(&c0, wg, NULL, 4, v);
    RQ_CHECK(v[0] == -1.0f && v[1] == 0.0f && v[2] == 1.0f && v[3] == 2.0f);
    RQ_CHECK(rq_lut_code(v, 0.5) == 1 && rq_lut_code(v, 0.5000001) == 2 && rq_lut_code(v, 9) == 3);
}

/* ---------- Hessian ---------- */
static void test_hessian(void) {
    const int64_t d = 24, n = 4100;
    rq_rng r;
    rq_rng_seed(&r, 4);
    float *x = rq_xalloc(n * d * 4);
    for (int64_t i = 0; i < n * d; i++) x[i] = (float)(rq_rng_normal(&r) + (i % d == 3 ? 2 : 0));
    for (int64_t i = 0; i < n; i++) x[i * d + 7] = 0; /* a dead input */
    rq_hessian h;
    RQ_CHECK(rq_hessian_init(&h, d) == RQ_OK);
    rq_hessian_add(&h, x, 1);
    rq_hessian_add(&h, x + d, 2049);
    rq_hessian_add(&h, x + 2050 * d, 0);
    rq_hessian_add(&h, x + 2050 * d, 2050);
    RQ_CHECK(h.n == n);
    double H[24 * 24], maxh = 0, maxdiff = 0;
    rq_hessian_get(&h, H);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += (double)x[k * d + i] * x[k * d + j];
            s *= 2.0 / n;
            maxh = fmax(maxh, fabs(s));
            maxdiff = fmax(maxdiff, fabs(s - H[i * d + j]));
            if (H[i * d + j] != H[j * d + i]) maxdiff = INFINITY;
        }
    RQ_CHECK_MSG(maxdiff <= TOL_HESSIAN_REL * maxh, "hessian: max diff %g (max |H| %g)", maxdiff, maxh);
    RQ_CHECK(H[7 * d + 7] == 0);
    rq_hessian_free(&h);
    RQ_CHECK(rq_hessian_init(&h, 0) == RQ_EINVAL);
    rq_free(x);
}

/* ---------- a simple float64 GPTQ (no lazy batches, Gauss-Jordan inverse) ---------- */
typedef struct {
    int bits, sym;             /* uniform quantizer (lut = 0) */
    int lut;                   /* use the library's LUT fit/code (tests the loop only) */
    int64_t g;
    int act_order, static_groups;
    double damp;
} simple_cfg;

static void simple_fit(const simple_cfg *c, const double *w, int n, float *p) {
    if (c->lut) {
        rq_lut_cfg lc = {.iters = RQ_LUT_ITERS_DEFAULT};
        rq_lut_fit(&lc, w, NULL, n, p);
        return;
    }
    float s;
    int z;
    oracle_params(c->bits, c->sym, 1.0, w, n, &s, &z);
    p[0] = s;
    p[1] = (float)z;
}

static double simple_quant(const simple_cfg *c, const float *p, double w, int *code) {
    if (c->lut) {
        *code = rq_lut_code(p, w);
        return p[*code];
    }
    *code = oracle_code(c->bits, c->sym, p[0], (int)p[1], w);
    return (double)p[0] * (*code - (int)p[1]);
}

static double simple_gptq(const simple_cfg *c, const double *H0, const float *w0, int64_t out,
                          int64_t d, uint8_t *codes, float *deq) {
    int64_t g = c->g, ng = d / g;
    double *H = rq_xalloc(d * d * 8), *W = rq_xalloc(out * d * 8), *dg = rq_xalloc(d * 8);
    double *M = rq_xalloc(d * 2 * d * 8), *U = rq_xalloc(d * d * 8);
    float *P = rq_xalloc(out * ng * 4 * 4);
    int64_t *perm = rq_xalloc(d * 8);
    int64_t *codes_p = rq_xalloc(out * d * 8);
    for (int64_t i = 0; i < d; i++) dg[i] = H0[i * d + i] == 0 ? 1.0 : H0[i * d + i];
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) W[r * d + i] = H0[i * d + i] == 0 ? 0 : w0[r * d + i];
    if (c->static_groups)
        for (int64_t r = 0; r < out; r++)
            for (int64_t k = 0; k < ng; k++) simple_fit(c, W + r * d + k * g, (int)g, P + (r * ng + k) * 4);
    /* insertion sort, stable, decreasing diag */
    for (int64_t i = 0; i < d; i++) perm[i] = i;
    if (c->act_order)
        for (int64_t i = 1; i < d; i++)
            for (int64_t j = i; j > 0 && dg[perm[j]] > dg[perm[j - 1]]; j--) {
                int64_t t = perm[j];
                perm[j] = perm[j - 1];
                perm[j - 1] = t;
            }
    double mean = 0;
    for (int64_t i = 0; i < d; i++) mean += dg[i] / d;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
            H[i * d + j] = i == j ? dg[perm[i]] + c->damp * mean : H0[perm[i] * d + perm[j]];
    /* permuted W */
    double *Wp = rq_xalloc(out * d * 8);
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) Wp[r * d + i] = W[r * d + perm[i]];
    /* Gauss-Jordan with partial pivoting on [H | I] */
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < 2 * d; j++) M[i * 2 * d + j] = j < d ? H[i * d + j] : (j - d == i);
    for (int64_t col = 0; col < d; col++) {
        int64_t piv = col;
        for (int64_t i = col + 1; i < d; i++)
            if (fabs(M[i * 2 * d + col]) > fabs(M[piv * 2 * d + col])) piv = i;
        for (int64_t j = 0; j < 2 * d; j++) {
            double t = M[col * 2 * d + j];
            M[col * 2 * d + j] = M[piv * 2 * d + j];
            M[piv * 2 * d + j] = t;
        }
        double pv = M[col * 2 * d + col];
        for (int64_t j = 0; j < 2 * d; j++) M[col * 2 * d + j] /= pv;
        for (int64_t i = 0; i < d; i++) {
            if (i == col) continue;
            double f = M[i * 2 * d + col];
            if (f != 0)
                for (int64_t j = 0; j < 2 * d; j++) M[i * 2 * d + j] -= f * M[col * 2 * d + j];
        }
    }
    /* lower Cholesky L of H⁻¹ (its lower triangle), U = Lᵀ */
    memset(U, 0, d * d * 8);
    for (int64_t j = 0; j < d; j++) {
        double s = M[j * 2 * d + d + j];
        for (int64_t k = 0; k < j; k++) s -= U[k * d + j] * U[k * d + j];
        U[j * d + j] = sqrt(s);
        for (int64_t i = j + 1; i < d; i++) {
            double t = M[i * 2 * d + d + j];
            for (int64_t k = 0; k < j; k++) t -= U[k * d + i] * U[k * d + j];
            U[j * d + i] = t / U[j * d + j]; /* L[i][j] */
        }
    }
    /* column by column over the whole W */
    double loss = 0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t r = 0; r < out; r++) {
            double *wr = Wp + r * d;
            float *p;
            if (c->static_groups) {
                p = P + (r * ng + perm[i] / g) * 4;
            } else {
                p = P + (r * ng + i / g) * 4;
                if (i % g == 0) simple_fit(c, wr + i, (int)g, p);
            }
            int code;
            double q = simple_quant(c, p, wr[i], &code);
            double e = (wr[i] - q) / U[i * d + i];
            loss += e * e / 2;
            for (int64_t j = i + 1; j < d; j++) wr[j] -= e * U[i * d + j];
            wr[i] = q;
            codes_p[r * d + i] = code;
        }
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) {
            codes[r * d + perm[i]] = (uint8_t)codes_p[r * d + i];
            deq[r * d + perm[i]] = (float)Wp[r * d + i];
        }
    rq_free(H), rq_free(W), rq_free(dg), rq_free(M), rq_free(U), rq_free(P), rq_free(perm);
    rq_free(codes_p), rq_free(Wp);
    return loss;
}

/* ---------- GPTQ test problem ---------- */
typedef struct {
    int64_t out, d, n;
    float *x;  /* [n, d] */
    float *w;  /* [out, d] */
    double *H; /* [d, d] */
} problem;

static void make_problem(problem *p, int64_t out, int64_t d, int64_t n, uint64_t seed,
                         int n_dead) {
    rq_rng r;
    rq_rng_seed(&r, seed);
    p->out = out, p->d = d, p->n = n;
    p->x = rq_xalloc(n * d * 4);
    p->w = rq_xalloc(out * d * 4);
    p->H = rq_xalloc(d * d * 8);
    /* X = Z·A: A = diag(column scales 0.2..2) + a dense random part, so inputs are correlated
     * and have different energies (act-order matters) */
    double *A = rq_xalloc(d * d * 8), *z = rq_xalloc(d * 8);
    for (int64_t i = 0; i < d * d; i++) A[i] = 0.5 * rq_rng_normal(&r) / sqrt((double)d);
    for (int64_t i = 0; i < d; i++) A[i * d + i] += 0.2 + 1.8 * rq_rng_uniform(&r);
    for (int64_t k = 0; k < n; k++) {
        for (int64_t i = 0; i < d; i++) z[i] = rq_rng_normal(&r);
        for (int64_t j = 0; j < d; j++) {
            double s = 0;
            for (int64_t i = 0; i < d; i++) s += z[i] * A[i * d + j];
            p->x[k * d + j] = (float)s;
        }
    }
    for (int k = 0; k < n_dead; k++) {
        int64_t col = (5 + 71 * k) % d;
        for (int64_t i = 0; i < n; i++) p->x[i * d + col] = 0;
    }
    fill_weights(&r, p->w, out, d);
    rq_hessian h;
    RQ_ASSERT(rq_hessian_init(&h, d) == RQ_OK);
    rq_hessian_add(&h, p->x, n);
    rq_hessian_get(&h, p->H);
    rq_hessian_free(&h);
    rq_free(A), rq_free(z);
}

static void free_problem(problem *p) { rq_free(p->x), rq_free(p->w), rq_free(p->H); }

/* ‖X Wᵀ − X Ŵᵀ‖² */
static double output_err(const problem *p, const float *deq) {
    double tot = 0;
    for (int64_t k = 0; k < p->n; k++)
        for (int64_t o = 0; o < p->out; o++) {
            double s = 0;
            for (int64_t i = 0; i < p->d; i++)
                s += (double)p->x[k * p->d + i] * ((double)p->w[o * p->d + i] - deq[o * p->d + i]);
            tot += s * s;
        }
    return tot;
}

static void test_gptq_vs_simple(const problem *p) {
    int64_t out = p->out, d = p->d;
    uint8_t *c1 = rq_xalloc(out * d), *c2 = rq_xalloc(out * d);
    float *d1 = rq_xalloc(out * d * 4), *d2 = rq_xalloc(out * d * 4);
    float *params = rq_xalloc(out * d * 4 * 4);
    struct {
        int bits, sym, lut;
        int64_t g, block;
        int act, stat;
    } cases[] = {
        {4, 0, 0, 32, 128, 0, 0}, {3, 0, 0, 32, 128, 1, 0}, {2, 0, 0, 32, 128, 1, 1},
        {2, 0, 0, 64, 128, 0, 0}, {4, 1, 0, 32, 128, 1, 0}, {3, 0, 0, 256, 128, 1, 0},
        {2, 0, 0, 32, 48, 1, 0},  {4, 0, 0, 128, 48, 0, 0}, {8, 0, 0, 32, 128, 1, 0},
        {2, 0, 1, 32, 128, 1, 0}, {2, 0, 1, 64, 128, 0, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        rq_gptq_cfg cfg = rq_gptq_cfg_default();
        cfg.group = cases[ci].g;
        cfg.block = cases[ci].block;
        cfg.act_order = cases[ci].act;
        cfg.static_groups = cases[ci].stat;
        rq_uniform_cfg uc = {.bits = cases[ci].bits, .symmetric = cases[ci].sym};
        rq_lut_cfg lc = {.iters = RQ_LUT_ITERS_DEFAULT};
        rq_group_quantizer q = cases[ci].lut ? rq_lut_quantizer(&lc) : rq_uniform_quantizer(&uc);
        rq_gptq_info info;
        rq_status st = rq_gptq_quantize(&cfg, &q, p->H, p->w, out, d, c1, params, d1, NULL, &info);
        RQ_CHECK(st == RQ_OK);
        simple_cfg sc = {cases[ci].bits, cases[ci].sym, cases[ci].lut, cases[ci].g,
                         cases[ci].act, cases[ci].stat, cfg.damp};
        double loss = simple_gptq(&sc, p->H, p->w, out, d, c2, d2);
        int mism = 0;
        for (int64_t i = 0; i < out * d; i++) mism += c1[i] != c2[i];
        double md = rq_max_abs_diff(d1, d2, out * d);
        RQ_CHECK_MSG(mism == 0 && md <= TOL_GPTQ_DEQ,
                     "gptq case %zu (b=%d sym=%d lut=%d g=%lld B=%lld act=%d static=%d): %d codes "
                     "differ, max deq diff %g",
                     ci, cases[ci].bits, cases[ci].sym, cases[ci].lut, (long long)cases[ci].g,
                     (long long)cases[ci].block, cases[ci].act, cases[ci].stat, mism, md);
        RQ_CHECK_MSG(fabs(info.loss - loss) <= TOL_GPTQ_LOSS_REL * loss,
                     "gptq case %zu: loss %.12g vs simple %.12g", ci, info.loss, loss);
        RQ_CHECK(info.retries == 0 && info.warning[0] == 0);
    }
    rq_free(c1), rq_free(c2), rq_free(d1), rq_free(d2), rq_free(params);
}

static void test_gptq_beats_rtn(const problem *p) {
    int64_t out = p->out, d = p->d, g = 32, ng = d / g;
    uint8_t *codes = rq_xalloc(out * d), *zeros = rq_xalloc(out * ng);
    float *deq = rq_xalloc(out * d * 4), *scales = rq_xalloc(out * ng * 4);
    float *lv = rq_xalloc(out * ng * 4 * 4);
    for (int bits = 2; bits <= 4; bits++) {
        rq_uniform_cfg uc = {.bits = bits};
        RQ_CHECK(rq_uniform_quantize(&uc, p->w, out, d, g, NULL, codes, scales, zeros, deq) == RQ_OK);
        double e_rtn = output_err(p, deq);
        for (int act = 0; act < 2; act++) {
            rq_gptq_cfg cfg = rq_gptq_cfg_default();
            cfg.group = g;
            cfg.act_order = act;
            rq_gptq_info info;
            RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, p->H, p->w, out, d, codes, scales, zeros,
                                              deq, NULL, &info) == RQ_OK);
            double e_gptq = output_err(p, deq);
            printf("b=%d act_order=%d: output error GPTQ %.4g vs RTN %.4g (ratio %.3f)\n", bits,
                   act, e_gptq, e_rtn, e_gptq / e_rtn);
            RQ_CHECK_MSG(e_gptq <= e_rtn, "b=%d act=%d: GPTQ %g > RTN %g", bits, act, e_gptq, e_rtn);
        }
    }
    /* LUT: GPTQ with the LUT quantizer beats LUT RTN */
    rq_lut_cfg lc = {.iters = RQ_LUT_ITERS_DEFAULT};
    RQ_CHECK(rq_lut_quantize(&lc, p->w, out, d, g, NULL, codes, lv, deq) == RQ_OK);
    double e_rtn = output_err(p, deq);
    rq_gptq_cfg cfg = rq_gptq_cfg_default();
    cfg.group = g;
    cfg.act_order = true;
    RQ_CHECK(rq_gptq_quantize_lut(&cfg, &lc, p->H, p->w, out, d, codes, lv, deq, NULL, NULL) == RQ_OK);
    double e_gptq = output_err(p, deq);
    printf("lut act_order=1: output error GPTQ %.4g vs RTN %.4g (ratio %.3f)\n", e_gptq, e_rtn,
           e_gptq / e_rtn);
    RQ_CHECK(e_gptq <= e_rtn);
    rq_free(codes), rq_free(zeros), rq_free(deq), rq_free(scales), rq_free(lv);
}

static void test_gptq_dead_and_threads(const problem *p) {
    /* p has dead inputs at columns 5 and 76 */
    int64_t out = p->out, d = p->d, g = 32, ng = d / g;
    uint8_t *codes = rq_xalloc(out * d), *zeros = rq_xalloc(out * ng), *codes1 = rq_xalloc(out * d);
    float *deq = rq_xalloc(out * d * 4), *scales = rq_xalloc(out * ng * 4), *deq1 = rq_xalloc(out * d * 4);
    rq_gptq_cfg cfg = rq_gptq_cfg_default();
    cfg.group = g;
    cfg.act_order = true;
    rq_uniform_cfg uc = {.bits = 3};
    rq_gptq_info info;
    int32_t g_idx[256];
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, p->H, p->w, out, d, codes, scales, zeros, deq,
                                      g_idx, &info) == RQ_OK);
    RQ_CHECK(info.n_dead == 2);
    const int64_t dead[2] = {5, 76};
    int bad = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t r = 0; r < out; r++) {
            int64_t j = dead[k];
            bad += deq[r * d + j] != 0.0f || codes[r * d + j] != zeros[r * ng + g_idx[j]];
        }
    RQ_CHECK_MSG(bad == 0, "dead inputs: %d weights not quantized to 0", bad);
    for (int64_t i = 0; i < out * d; i++) bad += !isfinite(deq[i]);
    RQ_CHECK(bad == 0);
    /* the same result with one thread (fixed row tiles make it independent of -t) */
    int nt = rq_threads_get();
    rq_threads_set(1);
    rq_gptq_info info1;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, p->H, p->w, out, d, codes1, scales, zeros, deq1,
                                      NULL, &info1) == RQ_OK);
    rq_threads_set(nt);
    RQ_CHECK(memcmp(codes, codes1, out * d) == 0 && memcmp(deq, deq1, out * d * 4) == 0);
    RQ_CHECK(info.loss == info1.loss);
    rq_free(codes), rq_free(zeros), rq_free(deq), rq_free(scales), rq_free(codes1), rq_free(deq1);
}

/* Shrinkage towards the diagonal (cfg.shrink = α): the same result as GPTQ on a copy of H
 * whose off-diagonal entries were scaled by 1 − α beforehand, bit for bit; α = 1 is GPTQ on
 * diag(H), which test_act_order_roundtrip pins down as RTN of each group; α outside [0, 1]
 * is refused. */
static void test_gptq_shrink(const problem *p) {
    int64_t out = p->out, d = p->d, g = 32;
    uint8_t *c1 = rq_xalloc(out * d), *c2 = rq_xalloc(out * d);
    float *d1 = rq_xalloc(out * d * 4), *d2 = rq_xalloc(out * d * 4), *params = rq_xalloc(out * d * 4 * 4);
    double *Hs = rq_xalloc(d * d * 8);
    rq_uniform_cfg uc = {.bits = 3};
    rq_group_quantizer q = rq_uniform_quantizer(&uc);
    const double alphas[] = {0.5, 1.0};
    for (int k = 0; k < 2; k++) {
        double a = alphas[k];
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++) Hs[i * d + j] = i == j ? p->H[i * d + j] : p->H[i * d + j] * (1.0 - a);
        for (int act = 0; act < 2; act++) {
            rq_gptq_cfg cfg = rq_gptq_cfg_default();
            cfg.group = g, cfg.act_order = act, cfg.static_groups = act, cfg.fit_importance = true;
            rq_gptq_info i1, i2;
            cfg.shrink = a;
            RQ_CHECK(rq_gptq_quantize(&cfg, &q, p->H, p->w, out, d, c1, params, d1, NULL, &i1) == RQ_OK);
            cfg.shrink = 0;
            RQ_CHECK(rq_gptq_quantize(&cfg, &q, Hs, p->w, out, d, c2, params, d2, NULL, &i2) == RQ_OK);
            RQ_CHECK_MSG(memcmp(c1, c2, out * d) == 0 && memcmp(d1, d2, out * d * 4) == 0 && i1.loss == i2.loss,
                         "shrink %g act %d: not GPTQ on the shrunk Hessian", a, act);
            printf("shrink %.1f act_order=%d: output error %.4g\n", a, act, output_err(p, d1));
        }
    }
    rq_gptq_cfg cfg = rq_gptq_cfg_default();
    cfg.group = g, cfg.shrink = 1.5;
    RQ_CHECK(rq_gptq_quantize(&cfg, &q, p->H, p->w, out, d, c1, params, d1, NULL, NULL) == RQ_EINVAL);
    cfg.shrink = NAN;
    RQ_CHECK(rq_gptq_quantize(&cfg, &q, p->H, p->w, out, d, c1, params, d1, NULL, NULL) == RQ_EINVAL);
    rq_free(c1), rq_free(c2), rq_free(d1), rq_free(d2), rq_free(params), rq_free(Hs);
}

/* With a diagonal H, U is diagonal: no error feedback, so GPTQ reduces to RTN of each group,
 * whatever the order. That pins down the permutation bookkeeping exactly. */
static void test_act_order_roundtrip(void) {
    const int64_t out = 9, d = 96, g = 16, ng = d / g;
    rq_rng r;
    rq_rng_seed(&r, 6);
    float w[9 * 96], deq[9 * 96], deq_rtn[9 * 96], scales[9 * 6], scales_rtn[9 * 6];
    uint8_t codes[9 * 96], codes_rtn[9 * 96], zeros[9 * 6], zeros_rtn[9 * 6];
    int32_t g_idx[96];
    double *H = rq_xcalloc(d * d * 8);
    fill_weights(&r, w, out, d);
    for (int64_t i = 0; i < d; i++) H[i * d + i] = 0.1 + rq_rng_uniform(&r);
    rq_uniform_cfg uc = {.bits = 2};
    rq_gptq_cfg cfg = rq_gptq_cfg_default();
    cfg.group = g;
    cfg.act_order = true;

    /* static groups: identical to RTN, g_idx = j / g */
    cfg.static_groups = true;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, g_idx,
                                      NULL) == RQ_OK);
    RQ_CHECK(rq_uniform_quantize(&uc, w, out, d, g, NULL, codes_rtn, scales_rtn, zeros_rtn,
                                 deq_rtn) == RQ_OK);
    RQ_CHECK(memcmp(codes, codes_rtn, sizeof codes) == 0 && memcmp(deq, deq_rtn, sizeof deq) == 0);
    RQ_CHECK(memcmp(scales, scales_rtn, sizeof scales) == 0);
    int bad = 0;
    for (int64_t j = 0; j < d; j++) bad += g_idx[j] != j / g;
    RQ_CHECK(bad == 0);

    /* dynamic groups: group k = the k-th g columns by decreasing H_ii */
    cfg.static_groups = false;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, g_idx,
                                      NULL) == RQ_OK);
    int64_t order[96];
    for (int64_t i = 0; i < d; i++) order[i] = i;
    for (int64_t i = 0; i < d; i++) /* selection sort by decreasing diag */
        for (int64_t j = i + 1; j < d; j++)
            if (H[order[j] * d + order[j]] > H[order[i] * d + order[i]]) {
                int64_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    bad = 0;
    for (int64_t k = 0; k < ng; k++) {
        for (int64_t m = 0; m < g; m++) bad += g_idx[order[k * g + m]] != k;
        for (int64_t row = 0; row < out; row++) {
            double wg[16];
            for (int64_t m = 0; m < g; m++) wg[m] = w[row * d + order[k * g + m]];
            float s;
            int z;
            oracle_params(2, 0, 1.0, wg, (int)g, &s, &z);
            bad += scales[row * ng + k] != s || zeros[row * ng + k] != z;
            for (int64_t m = 0; m < g; m++) {
                int64_t j = order[k * g + m];
                int oc = oracle_code(2, 0, s, z, wg[m]);
                bad += codes[row * d + j] != oc || deq[row * d + j] != s * (float)(oc - z);
            }
        }
    }
    RQ_CHECK_MSG(bad == 0, "act-order round trip: %d mismatches", bad);
    rq_free(H);
}

static void test_damping_retry(void) {
    const int64_t out = 4, d = 64;
    rq_rng r;
    rq_rng_seed(&r, 7);
    float w[4 * 64], deq[4 * 64], scales[4 * 2];
    uint8_t codes[4 * 64], zeros[4 * 2];
    double *H = rq_xcalloc(d * d * 8);
    fill_weights(&r, w, out, d);
    /* indefinite: eigenvalues 1 ± 1.5 in the (0, 1) block, mean diag 1: damping 0.01 and
     * 0.1 fail, 1 succeeds */
    for (int64_t i = 0; i < d; i++) H[i * d + i] = 1;
    H[0 * d + 1] = H[1 * d + 0] = 1.5;
    rq_uniform_cfg uc = {.bits = 4};
    rq_gptq_cfg cfg = rq_gptq_cfg_default();
    cfg.group = 32;
    rq_gptq_info info;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, NULL,
                                      &info) == RQ_OK);
    RQ_CHECK(info.retries == 2);
    RQ_CHECK_NEAR(info.damp, 1.0, 1e-12);
    RQ_CHECK(strstr(info.warning, "Cholesky failed") != NULL);
    printf("damping retry warning: %s\n", info.warning);
    int bad = 0;
    for (int64_t i = 0; i < out * d; i++) bad += codes[i] > 15 || !isfinite(deq[i]);
    RQ_CHECK(bad == 0);
    cfg.max_retries = 1;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, NULL,
                                      &info) == RQ_EINVAL);
    RQ_CHECK(strstr(rq_last_error(), "not positive definite") != NULL);
    /* damping 0 on a singular H: retried from 0.01 */
    memset(H, 0, d * d * 8);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) H[i * d + j] = 1.0; /* rank 1, no dead input */
    cfg = rq_gptq_cfg_default();
    cfg.group = 32;
    cfg.damp = 0;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, NULL,
                                      &info) == RQ_OK);
    RQ_CHECK(info.retries >= 1 && info.damp >= 0.01);
    /* bad arguments */
    cfg.group = 48;
    RQ_CHECK(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros, deq, NULL,
                                      &info) == RQ_EINVAL);
    rq_free(H);
}

int main(void) {
    test_fp16();
    test_uniform_vs_oracle();
    test_uniform_least_squares();
    test_lut();
    test_hessian();
    problem p;
    make_problem(&p, 33, 256, 512, 5, 0);
    test_gptq_vs_simple(&p);
    test_gptq_beats_rtn(&p);
    free_problem(&p);
    make_problem(&p, 33, 256, 512, 8, 2);
    test_gptq_dead_and_threads(&p);
    test_gptq_shrink(&p);
    test_gptq_vs_simple(&p); /* dead inputs through the oracle too */
    free_problem(&p);
    test_act_order_roundtrip();
    test_damping_retry();
    return rq_test_finish();
}

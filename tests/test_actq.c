/* Run-time quantizers: the per-token activation quantizer (kernels/actq.h) and the 4-bit
 * KV cache rows (format/kv.h).
 *   - every SIMD level gives the scalar reference's rows bit for bit, on odd sizes and
 *     tails, 4 and 8 bits, symmetric and asymmetric, clip 1 and 0.9, special rows;
 *   - the reference agrees with the METHODS.md formulas evaluated independently in
 *     double (away from rounding ties), keeps 0 exact, uses at most 2^b levels, and errs
 *     by at most s/2 inside the clip range;
 *   - symmetric and unclipped, it gives the integer W2 kernels' activation codes
 *     (rq_act_quant_ref, format/act.h) bit for bit, on rows full of rounding ties;
 *   - KV rows: the documented byte layout, quantize → dequantize equals the in-place
 *     fake quantization, the SIMD dequantizer equals the reference, the error bound. */
#include "testing.h"

#include "base/cpu.h"
#include "base/rng.h"
#include "format/format.h"
#include "format/kv.h"
#include "kernels/actq.h"
#include "kernels/gemv.h"
#include "format/act.h"

#include <math.h>
#include <string.h>

/* Relative slack on the |x − x̃| <= s/2 bound: x/s is one float division away from exact. */
#define HALF_STEP_SLACK 1e-5
/* The double-precision oracle skips elements whose x/s lies this close to a rounding tie
 * (float and double may round such a quotient to different sides). */
#define TIE_GUARD 1e-3

static const int64_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 100, 127, 576, 577, 1536, 1537};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* kinds of rows: normal with outliers, all positive, all negative, all zero, one spike */
static void fill_row(rq_rng *r, float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        double v = rq_rng_normal(r);
        if (kind == 0 && rq_rng_below(r, 50) == 0) v *= 20; /* outliers */
        if (kind == 1) v = fabs(v) + 0.5;
        if (kind == 2) v = -fabs(v) - 0.25;
        if (kind == 3) v = 0;
        if (kind == 4) v = i == n / 2 ? 7.5 : 0;
        x[i] = (float)v;
    }
}

/* the METHODS.md quantizer in double: expected x̃ for x, or NAN near a tie */
static double oracle(const rq_actq *q, const float *x, int64_t n, int64_t i, double *step) {
    double mn = 0, mx = 0;
    for (int64_t k = 0; k < n; k++) mn = fmin(mn, x[k]), mx = fmax(mx, x[k]);
    double s, z = 0, lo, hi;
    if (q->asym) {
        double maxq = (1 << q->bits) - 1;
        s = q->clip * (mx - mn) / maxq;
        if (s == 0) return *step = 0, x[i];
        z = fmin(fmax(rint(-q->clip * mn / s), 0), maxq);
        lo = 0, hi = maxq;
    } else {
        double half = 1 << (q->bits - 1);
        s = q->clip * fmax(-mn, mx) / (half - 1);
        if (s == 0) return *step = 0, x[i];
        lo = -half, hi = half - 1;
    }
    *step = s;
    double t = x[i] / s;
    if (fabs(t - floor(t) - 0.5) < TIE_GUARD) return NAN;
    if (q->asym && fabs(-q->clip * mn / s - floor(-q->clip * mn / s) - 0.5) < TIE_GUARD) return NAN;
    double c = fmin(fmax(rint(t) + z, lo), hi);
    return s * (c - z);
}

static void test_actq(void) {
    rq_rng r;
    rq_rng_seed(&r, 77);
    float *x = malloc(2000 * sizeof(float)), *a = malloc(2000 * sizeof(float)), *b = malloc(2000 * sizeof(float));
    rq_cpu_level top = rq_cpu_max_level();
    int n_cfg = 0;
    for (int bits = 4; bits <= 8; bits += 4)
        for (int asym = 0; asym < 2; asym++)
            for (int ci = 0; ci < 2; ci++) {
                rq_actq q = {.bits = bits, .asym = asym, .clip = ci ? 0.9f : 1.0f};
                int simd_ok = 1, oracle_ok = 1, levels_ok = 1, bound_ok = 1, zero_ok = 1;
                for (int si = 0; si < N_SIZES; si++)
                    for (int kind = 0; kind < 5; kind++) {
                        int64_t n = sizes[si];
                        fill_row(&r, x, n, kind);
                        memcpy(a, x, (size_t)n * 4);
                        rq_actq_row_ref(&q, a, n);
                        if (top >= RQ_CPU_AVX2) {
                            memcpy(b, x, (size_t)n * 4);
                            rq_actq_row_avx2(&q, b, n);
                            simd_ok &= memcmp(a, b, (size_t)n * 4) == 0;
                        }
                        for (int lv = RQ_CPU_SCALAR; lv <= (int)top; lv++) {
                            rq_cpu_set_level((rq_cpu_level)lv);
                            memcpy(b, x, (size_t)n * 4);
                            rq_actq_row(&q, b, n);
                            simd_ok &= memcmp(a, b, (size_t)n * 4) == 0;
                        }
                        rq_cpu_set_level(top);
                        /* levels, zero, error bound, oracle */
                        float lv[300];
                        int nl = 0;
                        double step = 0;
                        for (int64_t i = 0; i < n; i++) {
                            int seen = 0;
                            for (int k = 0; k < nl && !seen; k++) seen = lv[k] == a[i];
                            if (!seen && nl < 300) lv[nl++] = a[i];
                            double e = oracle(&q, x, n, i, &step);
                            if (!isnan(e)) oracle_ok &= fabs(e - a[i]) <= 1e-6 * (fabs(e) + step);
                            if (x[i] == 0) zero_ok &= a[i] == 0;
                        }
                        levels_ok &= nl <= (1 << bits);
                        if (q.clip == 1.0f && step > 0)
                            for (int64_t i = 0; i < n; i++) bound_ok &= fabs(x[i] - a[i]) <= step / 2 * (1 + HALF_STEP_SLACK);
                        if (kind == 3) zero_ok &= memcmp(a, x, (size_t)n * 4) == 0;
                    }
                RQ_CHECK_MSG(simd_ok, "actq A%d %s clip %g: SIMD differs from the reference", bits, asym ? "asym" : "sym",
                             (double)q.clip);
                RQ_CHECK_MSG(oracle_ok, "actq A%d %s clip %g: reference differs from the formulas", bits,
                             asym ? "asym" : "sym", (double)q.clip);
                RQ_CHECK_MSG(levels_ok, "actq A%d: more than 2^b levels", bits);
                RQ_CHECK_MSG(bound_ok, "actq A%d %s: error above s/2", bits, asym ? "asym" : "sym");
                RQ_CHECK_MSG(zero_ok, "actq A%d %s: zero not exact", bits, asym ? "asym" : "sym");
                n_cfg++;
            }
    /* clipping: with c = 0.9 the extreme value saturates at the top level */
    {
        float v[5] = {-1, -0.5f, 0, 0.5f, 1};
        rq_actq q = {.bits = 4, .asym = false, .clip = 0.9f};
        rq_actq_row_ref(&q, v, 5);
        RQ_CHECK_NEAR(v[4], 0.9, 1e-6); /* s = 0.9/7, code 7 */
        RQ_CHECK_NEAR(v[0], -0.9 * 8 / 7, 1e-6); /* code −8: symmetric range [−8, 7] */
    }
    printf("activation quantizer: %d configurations x %d sizes x 5 row kinds\n", n_cfg, N_SIZES);
    free(x), free(a), free(b);
}

static void test_kv4(void) {
    RQ_CHECK(rq_kv4_row_bytes(192, 64) == 3 * 36);
    RQ_CHECK(rq_kv4_row_bytes(192, 8) == 24 * 8);
    RQ_CHECK(rq_kv4_group_ok(64, 64) && rq_kv4_group_ok(16, 64) && !rq_kv4_group_ok(12, 64) && !rq_kv4_group_ok(4, 64) &&
             !rq_kv4_group_ok(48, 64));
    rq_rng r;
    rq_rng_seed(&r, 91);
    int64_t groups[] = {8, 16, 32, 64, 128};
    int64_t rows = 7;
    rq_cpu_level top = rq_cpu_max_level();
    for (int gi = 0; gi < 5; gi++)
        for (int nh = 1; nh <= 3; nh += 2)
            for (int ci = 0; ci < 2; ci++) {
                int64_t g = groups[gi], n = nh * 128, rb = rq_kv4_row_bytes(n, g);
                float clip = ci ? 0.95f : 1.0f;
                float *x = malloc((size_t)(rows * n) * 4), *fake = malloc((size_t)(rows * n) * 4);
                float *y = malloc((size_t)(rows * n) * 4), *y2 = malloc((size_t)(rows * (n + 3)) * 4);
                uint8_t *pk = malloc((size_t)(rows * rb));
                for (int64_t i = 0; i < rows; i++) fill_row(&r, x + i * n, n, (int)(i % 5));
                memcpy(fake, x, (size_t)(rows * n) * 4);
                int layout_ok = 1, bound_ok = 1;
                for (int64_t i = 0; i < rows; i++) {
                    rq_kv4_quant_row_ref(x + i * n, n, g, clip, pk + i * rb);
                    rq_kv4_dequant_row_ref(pk + i * rb, n, g, y + i * n);
                    rq_kv4_fake_row_ref(fake + i * n, n, g, clip);
                    for (int64_t k = 0; k < n / g; k++) {
                        const uint8_t *blk = pk + i * rb + k * rq_kv4_group_bytes(g);
                        rq_kv4_hdr h;
                        memcpy(&h, blk, sizeof h);
                        float s = rq_fp16_to_fp32(h.d);
                        float sp;
                        int zp;
                        rq_kv4_params_ref(x + i * n + k * g, g, clip, &sp, &zp);
                        layout_ok &= h.pad == 0 && h.z <= 15 && s == sp && h.z == zp;
                        /* documented nibble order: channel 2j low, 2j+1 high */
                        for (int64_t j = 0; j < g; j++) {
                            int code = (blk[4 + j / 2] >> (4 * (j & 1))) & 15;
                            layout_ok &= y[i * n + k * g + j] == s * ((float)code - (float)h.z);
                            if (clip == 1.0f)
                                bound_ok &= fabsf(x[i * n + k * g + j] - y[i * n + k * g + j]) <= s / 2 * (1 + HALF_STEP_SLACK);
                        }
                    }
                }
                RQ_CHECK_MSG(layout_ok, "kv4 g%lld n%lld: layout", (long long)g, (long long)n);
                RQ_CHECK_MSG(bound_ok, "kv4 g%lld n%lld: error above s/2", (long long)g, (long long)n);
                RQ_CHECK_MSG(memcmp(fake, y, (size_t)(rows * n) * 4) == 0, "kv4 g%lld: fake != quant+dequant", (long long)g);
                for (int lv = RQ_CPU_SCALAR; lv <= (int)top; lv++) {
                    rq_cpu_set_level((rq_cpu_level)lv);
                    for (int64_t i = 0; i < rows * (n + 3); i++) y2[i] = -1;
                    rq_kv4_dequant_rows(pk, rows, n, g, y2, n + 3); /* strided destination */
                    int same = 1;
                    for (int64_t i = 0; i < rows; i++) {
                        same &= memcmp(y2 + i * (n + 3), y + i * n, (size_t)n * 4) == 0;
                        same &= y2[i * (n + 3) + n] == -1;
                    }
                    RQ_CHECK_MSG(same, "kv4 dequant level %s g%lld differs from the reference", rq_cpu_level_name((rq_cpu_level)lv),
                                 (long long)g);
                }
                rq_cpu_set_level(top);
                free(x), free(fake), free(y), free(y2), free(pk);
            }
}

/* The forward pass fake-quantizes float layers' inputs with rq_actq_row while packed 2-bit
 * layers quantize their own inputs (rq_act_quant): the reference path and the integer
 * path must see the same x̃. Rows on a coarse grid (as the embeddings of a 4-bit model
 * give) put many x·r exactly on .5. */
static void test_matches_kernel_quantizer(void) {
    rq_rng r;
    rq_rng_seed(&r, 91);
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t n = sizes[si];
        float *x = rq_xalloc(n * 4 + 64), *y = rq_xalloc(n * 4 + 64);
        int8_t *q = rq_xalloc(n + 64);
        for (int bits = 4; bits <= 8; bits += 4)
            for (int grid = 0; grid < 2; grid++) {
                for (int64_t i = 0; i < n; i++) {
                    double v = rq_rng_normal(&r) * (i % 61 == 0 ? 8 : 1);
                    x[i] = grid ? (float)(rint(v * 16) / 16) : (float)v;
                }
                float a = rq_act_quant_ref(x, n, bits == 8 ? RQ_ACT_Q8_MAX : RQ_ACT_Q4_MAX, q);
                rq_actq aq = {.bits = bits, .asym = false, .clip = 1.0f};
                for (int lvl = RQ_CPU_SCALAR; lvl <= (int)rq_cpu_max_level(); lvl++) {
                    rq_cpu_set_level((rq_cpu_level)lvl);
                    memcpy(y, x, (size_t)n * 4);
                    rq_actq_row(&aq, y, n);
                    int64_t bad = 0;
                    for (int64_t i = 0; i < n; i++) bad += y[i] != a * (float)q[i];
                    RQ_CHECK_MSG(bad == 0, "n=%lld A%d grid %d level %d: %lld values differ from the kernel quantizer",
                                 (long long)n, bits, grid, lvl, (long long)bad);
                }
                rq_cpu_set_level(rq_cpu_max_level());
            }
        rq_free(x), rq_free(y), rq_free(q);
    }
}

int main(void) {
    test_actq();
    test_matches_kernel_quantizer();
    test_kv4();
    return rq_test_finish();
}

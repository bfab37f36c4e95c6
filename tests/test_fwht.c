/* Tests of kernels/fwht.h: the scalar FWHT and Kronecker mix against dense products in
 * double precision, every SIMD level against the scalar reference on all power-of-two
 * lengths 1..8192 and odd row counts, and that nothing outside the rows is touched. */
#include "testing.h"

#include "base/cpu.h"
#include "base/rng.h"
#include "base/status.h"
#include "kernels/fwht.h"

#include <math.h>
#include <string.h>

/* Reference vs a dense double-precision product: float rounding of log2(n) butterfly
 * stages (or m-term sums), relative L2 well under 1e-6. */
static const double REF_VS_DENSE_TOL = 1e-6;
/* SIMD vs scalar FWHT: the same additions in the same order (the in-register stages use
 * an exact fma with ±1), so results should be identical; allow a few ulps anyway. */
static const double FWHT_SIMD_TOL = 1e-6;
/* SIMD vs scalar mix: FMA against separate multiply and add, m-term sums. */
static const double MIX_SIMD_TOL = 1e-6;

typedef void (*fwht_fn)(float *, int64_t, int64_t, float);
typedef void (*mix_fn)(const float *, int64_t, int64_t, float *, int64_t, float, float *);

static void fill_normal(rq_rng *g, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)rq_rng_normal(g);
}

/* Dense oracle: y = scale · x S_n in double. */
static void fwht_dense(const float *x, float *y, int64_t rows, int64_t n, double scale) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) {
                int sign = (__builtin_popcountll((uint64_t)(i & j)) & 1) ? -1 : 1;
                s += sign * (double)x[r * n + i];
            }
            y[r * n + j] = (float)(s * scale);
        }
}

int main(void) {
    rq_rng g;
    rq_rng_seed(&g, 1234);
    const int64_t NMAX = 8192, RMAX = 7;
    float *x = rq_xalloc((RMAX + 1) * NMAX * (int64_t)sizeof(float));
    float *a = rq_xalloc((RMAX + 1) * NMAX * (int64_t)sizeof(float));
    float *b = rq_xalloc((RMAX + 1) * NMAX * (int64_t)sizeof(float));

    /* 1. scalar reference vs dense oracle, n = 1..1024, with and without scale */
    for (int64_t n = 1; n <= 1024; n *= 2) {
        int64_t rows = 3;
        fill_normal(&g, x, rows * n);
        for (int sc = 0; sc < 2; sc++) {
            float scale = sc ? (float)(1.0 / sqrt((double)n)) : 1.0f;
            memcpy(a, x, (size_t)(rows * n) * sizeof *a);
            rq_fwht_ref(a, rows, n, scale);
            fwht_dense(x, b, rows, n, scale);
            double e = rq_rel_l2(a, b, rows * n);
            RQ_CHECK_MSG(e <= REF_VS_DENSE_TOL, "fwht_ref vs dense n=%lld scale=%g: rel %.3g", (long long)n, scale, e);
        }
        /* orthonormal transform is an involution */
        memcpy(a, x, (size_t)(rows * n) * sizeof *a);
        rq_fwht_ref(a, rows, n, (float)(1.0 / sqrt((double)n)));
        rq_fwht_ref(a, rows, n, (float)(1.0 / sqrt((double)n)));
        double e = rq_rel_l2(a, x, rows * n);
        RQ_CHECK_MSG(e <= REF_VS_DENSE_TOL, "fwht twice n=%lld: rel %.3g", (long long)n, e);
    }

    /* 2. every SIMD level vs the scalar reference, n = 1..8192, odd row counts; a guard
     *    row after the data must stay untouched */
    rq_cpu_level maxl = rq_cpu_max_level();
    struct { rq_cpu_level lvl; fwht_fn f; mix_fn mix; } levels[] = {
        {RQ_CPU_AVX2, rq_fwht_avx2, rq_fwht_mix_avx2},
        {RQ_CPU_AVX512, rq_fwht_avx512, rq_fwht_mix_avx512},
    };
    int tested_levels = 0;
    for (int li = 0; li < 2; li++) {
        if (levels[li].lvl > maxl) {
            printf("skipping %s kernels: CPU lacks them\n", rq_cpu_level_name(levels[li].lvl));
            continue;
        }
        tested_levels++;
        for (int64_t n = 1; n <= NMAX; n *= 2) {
            const int64_t row_counts[] = {1, 3, 7};
            for (int ri = 0; ri < 3; ri++) {
                int64_t rows = row_counts[ri];
                fill_normal(&g, x, (rows + 1) * n);
                for (int sc = 0; sc < 2; sc++) {
                    float scale = sc ? (float)(1.0 / sqrt((double)n)) : 1.0f;
                    memcpy(a, x, (size_t)((rows + 1) * n) * sizeof *a);
                    memcpy(b, x, (size_t)((rows + 1) * n) * sizeof *b);
                    rq_fwht_ref(a, rows, n, scale);
                    levels[li].f(b, rows, n, scale);
                    double e = rq_rel_l2(b, a, rows * n);
                    RQ_CHECK_MSG(e <= FWHT_SIMD_TOL, "fwht %s n=%lld rows=%lld scale=%g: rel %.3g",
                                 rq_cpu_level_name(levels[li].lvl), (long long)n, (long long)rows, scale, e);
                    RQ_CHECK_MSG(memcmp(b + rows * n, x + rows * n, (size_t)n * sizeof *b) == 0,
                                 "fwht %s n=%lld wrote past its rows", rq_cpu_level_name(levels[li].lvl), (long long)n);
                }
            }
        }
        /* the dispatcher follows the level cap */
        rq_cpu_set_level(levels[li].lvl);
        int64_t n = 2048, rows = 5;
        fill_normal(&g, x, rows * n);
        memcpy(a, x, (size_t)(rows * n) * sizeof *a);
        memcpy(b, x, (size_t)(rows * n) * sizeof *b);
        levels[li].f(a, rows, n, 0.5f);
        rq_fwht(b, rows, n, 0.5f);
        RQ_CHECK(memcmp(a, b, (size_t)(rows * n) * sizeof *a) == 0);
        rq_cpu_set_level(RQ_CPU_AVX512);
    }

    /* 3. mix: reference vs dense oracle and SIMD vs reference, for small dense factors
     *    and block lengths including non-powers of two and vector tails */
    const int64_t ms[] = {1, 2, 3, 5, 12, 20, 36};
    const int64_t ps[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 128};
    float *c = rq_xalloc(36 * 36 * (int64_t)sizeof(float));
    float *tmp = rq_xalloc(36 * 128 * (int64_t)sizeof(float));
    float *o = rq_xalloc(3 * 36 * 128 * (int64_t)sizeof(float));
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t pi = 0; pi < sizeof ps / sizeof *ps; pi++) {
            int64_t m = ms[mi], p = ps[pi], len = m * p, rows = 3;
            fill_normal(&g, c, m * m);
            fill_normal(&g, x, (rows + 1) * len);
            const float scale = 0.25f;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < m; j++)
                    for (int64_t k = 0; k < p; k++) {
                        double s = 0;
                        for (int64_t i = 0; i < m; i++) s += (double)c[i * m + j] * x[r * len + i * p + k];
                        o[r * len + j * p + k] = (float)(s * scale);
                    }
            memcpy(a, x, (size_t)((rows + 1) * len) * sizeof *a);
            rq_fwht_mix_ref(c, m, p, a, rows, scale, tmp);
            double e = rq_rel_l2(a, o, rows * len);
            RQ_CHECK_MSG(e <= REF_VS_DENSE_TOL, "mix_ref m=%lld p=%lld: rel %.3g", (long long)m, (long long)p, e);
            for (int li = 0; li < 2; li++) {
                if (levels[li].lvl > maxl) continue;
                memcpy(b, x, (size_t)((rows + 1) * len) * sizeof *b);
                levels[li].mix(c, m, p, b, rows, scale, tmp);
                e = rq_rel_l2(b, a, rows * len);
                RQ_CHECK_MSG(e <= MIX_SIMD_TOL, "mix %s m=%lld p=%lld: rel %.3g", rq_cpu_level_name(levels[li].lvl),
                             (long long)m, (long long)p, e);
                RQ_CHECK_MSG(memcmp(b + rows * len, x + rows * len, (size_t)len * sizeof *b) == 0,
                             "mix %s m=%lld p=%lld wrote past its rows", rq_cpu_level_name(levels[li].lvl),
                             (long long)m, (long long)p);
            }
        }
    printf("SIMD levels tested: %d (max %s)\n", tested_levels, rq_cpu_level_name(maxl));
    rq_free(c);
    rq_free(tmp);
    rq_free(o);
    rq_free(x);
    rq_free(a);
    rq_free(b);
    return rq_test_finish();
}

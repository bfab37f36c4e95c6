/* Tests of src/kernels/vexp: every level the CPU has against double-precision exp, on
 * odd lengths (tails), in place, without output, and the sum. */
#include "testing.h"

#include "base/cpu.h"
#include "base/rng.h"
#include "kernels/vexp.h"

#include <math.h>
#include <string.h>

/* SIMD polynomial vs exact: observed < 1.5e-7 relative; expf itself is < 1 ulp. */
#define EXP_REL_TOL 2.5e-7
/* sum of n <= 5000 terms accumulated in double from float terms */
#define SUM_REL_TOL 2.5e-7

static void check_level(const char *name, rq_vexp_sum_fn f) {
    rq_rng r;
    rq_rng_seed(&r, 11);
    static float x[5003], y[5003], z[5003];
    const int64_t lens[] = {0, 1, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 5003};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)(rq_rng_uniform(&r) * 100.0 - 90.0); /* arguments -90..10 after shift */
            mx = fmaxf(mx, x[i]);
        }
        float shift = n ? mx - 10.0f : 0.0f;
        double s = f(y, x, n, shift), s_no_y = f(NULL, x, n, shift);
        double exact = 0, worst = 0;
        for (int64_t i = 0; i < n; i++) {
            float arg = x[i] - shift; /* the kernels' (rounded) argument */
            double e = exp((double)arg);
            exact += e;
            if (arg > -87.0) {
                double rel = fabs(y[i] - e) / e;
                if (rel > worst) worst = rel;
            } else {
                RQ_CHECK(y[i] >= 0 && y[i] < 2e-38);
            }
        }
        RQ_CHECK_MSG(worst <= EXP_REL_TOL, "%s n=%lld: worst rel error %g", name, (long long)n, worst);
        RQ_CHECK_MSG(fabs(s - exact) <= SUM_REL_TOL * exact + 1e-30, "%s n=%lld: sum %.10g vs %.10g", name,
                     (long long)n, s, exact);
        RQ_CHECK(s == s_no_y);
        memcpy(z, x, sizeof(float) * (size_t)n);
        RQ_CHECK(f(z, z, n, shift) == s); /* in place */
        RQ_CHECK(n == 0 || memcmp(z, y, sizeof(float) * (size_t)n) == 0);
    }
    /* exact values at 0 and ln 2 multiples */
    float a[3] = {0.0f, (float)-M_LN2, (float)(-10 * M_LN2)}, b[3];
    f(b, a, 3, 0.0f);
    RQ_CHECK_NEAR(b[0], 1.0, 1e-7);
    RQ_CHECK_NEAR(b[1], 0.5, 1e-7);
    RQ_CHECK_NEAR(b[2], 1.0 / 1024, 1e-9);
}

int main(void) {
    check_level("ref", rq_vexp_sum_ref);
    if (rq_cpu_max_level() >= RQ_CPU_AVX2) check_level("avx2", rq_vexp_sum_avx2);
    if (rq_cpu_max_level() >= RQ_CPU_AVX512) check_level("avx512", rq_vexp_sum_avx512);
    rq_cpu_set_level(RQ_CPU_SCALAR);
    RQ_CHECK(rq_vexp_sum_pick() == rq_vexp_sum_ref);
    return rq_test_finish();
}

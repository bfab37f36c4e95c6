/* Tests of src/kernels/vmath: every level the CPU has against double-precision formulas,
 * on lengths with every tail (0..40) and a long one; in place and NULL-output forms. */
#include "testing.h"

#include "base/cpu.h"
#include "base/rng.h"
#include "kernels/vmath.h"

#include <math.h>
#include <string.h>

/* exp polynomial vs exp of the float argument: observed < 1.5e-7 relative (expf < 1 ulp) */
#define EXP_REL_TOL 2.5e-7
/* sums of float terms accumulated in double */
#define SUM_REL_TOL 2.5e-7
/* swiglu: exp error plus a division and two products in float */
#define SWIGLU_REL_TOL 6e-7
/* rmsnorm: float products after a double sum */
#define RMS_REL_TOL 4e-7

static float x[5003], y[5003], z[5003], w[5003];

static void check_exp_sum(const rq_vmath *vm, rq_rng *r, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(rq_rng_uniform(r) * 100.0 - 90.0);
        mx = fmaxf(mx, x[i]);
    }
    float shift = n ? mx - 10.0f : 0.0f; /* arguments from about -100 to 10 */
    double s = vm->exp_sum(y, x, n, shift), s_no_y = vm->exp_sum(NULL, x, n, shift);
    double exact = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float arg = x[i] - shift; /* the kernels' (rounded) argument */
        double e = exp((double)arg);
        exact += e;
        if (arg > -87.0f) worst = fmax(worst, fabs(y[i] - e) / e);
        else RQ_CHECK(y[i] >= 0 && y[i] < 2e-38);
    }
    RQ_CHECK_MSG(worst <= EXP_REL_TOL, "%s exp n=%lld: worst rel error %g", vm->name, (long long)n, worst);
    RQ_CHECK_MSG(fabs(s - exact) <= SUM_REL_TOL * exact + 1e-30, "%s exp_sum n=%lld: %.10g vs %.10g", vm->name,
                 (long long)n, s, exact);
    RQ_CHECK(s == s_no_y);
    memcpy(z, x, sizeof(float) * (size_t)n);
    RQ_CHECK(vm->exp_sum(z, z, n, shift) == s);
    RQ_CHECK(n == 0 || memcmp(z, y, sizeof(float) * (size_t)n) == 0);
}

static void check_others(const rq_vmath *vm, rq_rng *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(4 * rq_rng_normal(r));
        w[i] = (float)(1 + 0.2 * rq_rng_normal(r));
    }
    /* max: exact; put the maximum at every position class (tails included) */
    if (n > 0) {
        int64_t at = (int64_t)rq_rng_below(r, (uint64_t)n);
        x[at] = 100.0f;
        RQ_CHECK_MSG(vm->max(x, n) == 100.0f, "%s max n=%lld at %lld", vm->name, (long long)n, (long long)at);
        x[at] = (float)rq_rng_normal(r);
        float m = x[0];
        for (int64_t i = 1; i < n; i++) m = fmaxf(m, x[i]);
        RQ_CHECK(vm->max(x, n) == m);
    }
    /* scale: exact float products */
    memcpy(y, x, sizeof(float) * (size_t)n);
    vm->scale(y, n, 0.3f);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok &= y[i] == x[i] * 0.3f;
    RQ_CHECK_MSG(ok, "%s scale n=%lld", vm->name, (long long)n);
    /* swiglu */
    memcpy(y, x, sizeof(float) * (size_t)n);
    vm->swiglu(y, w, n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = x[i] / (1 + exp(-(double)x[i])) * w[i];
        worst = fmax(worst, fabs(y[i] - e) / fmax(fabs(e), 1e-30));
    }
    RQ_CHECK_MSG(worst <= SWIGLU_REL_TOL, "%s swiglu n=%lld: worst rel error %g", vm->name, (long long)n, worst);
    /* rmsnorm, separate output and in place */
    if (n > 0) {
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double rr = 1 / sqrt(ss / n + 1e-5);
        vm->rmsnorm(x, w, n, 1e-5f, y);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = x[i] * rr * w[i];
            worst = fmax(worst, fabs(y[i] - e) / fmax(fabs(e), 1e-30));
        }
        RQ_CHECK_MSG(worst <= RMS_REL_TOL, "%s rmsnorm n=%lld: worst rel error %g", vm->name, (long long)n, worst);
        memcpy(z, x, sizeof(float) * (size_t)n);
        vm->rmsnorm(z, w, n, 1e-5f, z);
        RQ_CHECK(memcmp(z, y, sizeof(float) * (size_t)n) == 0);
    }
}

static void check_level(const rq_vmath *vm) {
    rq_rng r;
    rq_rng_seed(&r, 11);
    for (int64_t n = 0; n <= 40; n++) {
        check_exp_sum(vm, &r, n);
        check_others(vm, &r, n);
    }
    check_exp_sum(vm, &r, 5003);
    check_others(vm, &r, 5003);
    /* exact values at 0 and multiples of ln 2 */
    float a[3] = {0.0f, (float)-M_LN2, (float)(-10 * M_LN2)}, b[3];
    vm->exp_sum(b, a, 3, 0.0f);
    RQ_CHECK_NEAR(b[0], 1.0, 1e-7);
    RQ_CHECK_NEAR(b[1], 0.5, 1e-7);
    RQ_CHECK_NEAR(b[2], 1.0 / 1024, 1e-9);
    /* swiglu at extreme inputs stays finite: silu(-100) ~ 0, silu(100) = 100 */
    float g[2] = {-100.0f, 100.0f}, u[2] = {1.0f, 1.0f};
    vm->swiglu(g, u, 2);
    RQ_CHECK(isfinite(g[0]) && fabsf(g[0]) < 1e-30f);
    RQ_CHECK_NEAR(g[1], 100.0, 1e-5);
}

int main(void) {
    check_level(&rq_vmath_ref);
    if (rq_cpu_max_level() >= RQ_CPU_AVX2) check_level(&rq_vmath_avx2);
    if (rq_cpu_max_level() >= RQ_CPU_AVX512) check_level(&rq_vmath_avx512);
    rq_cpu_set_level(RQ_CPU_SCALAR);
    RQ_CHECK(rq_vmath_get() == &rq_vmath_ref);
    return rq_test_finish();
}

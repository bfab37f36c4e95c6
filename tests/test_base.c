/* Tests of src/base: RNG reproducibility and distribution, thread pool coverage,
 * error messages, overflow checks. */
#include "testing.h"

#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

typedef struct { atomic_int *hits; } cover_ctx;

static void cover(void *vctx, int64_t b, int64_t e, int thread) {
    cover_ctx *c = vctx;
    RQ_ASSERT(thread >= 0 && thread < rq_threads_get());
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

int main(void) {
    /* RNG: same seed, same stream; different seed, different stream */
    rq_rng a, b;
    rq_rng_seed(&a, 42);
    rq_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rq_rng_u64(&a) == rq_rng_u64(&b);
    RQ_CHECK(same);
    rq_rng_seed(&b, 43);
    RQ_CHECK(rq_rng_u64(&a) != rq_rng_u64(&b));

    /* normal: mean ~0, variance ~1 over 200k draws (5 sigma bounds: 0.011 / 0.016) */
    double s = 0, s2 = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double x = rq_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    RQ_CHECK_NEAR(s / N, 0.0, 0.011);
    RQ_CHECK_NEAR(s2 / N, 1.0, 0.016);
    int inrange = 1;
    for (int i = 0; i < 10000; i++) inrange &= rq_rng_below(&a, 7) < 7;
    RQ_CHECK(inrange);

    /* pool: every index visited exactly once, for several thread counts and sizes */
    for (int nt = 1; nt <= 4; nt++) {
        rq_threads_set(nt);
        RQ_CHECK(rq_threads_get() == nt);
        int64_t sizes[] = {1, 3, 17, 1000, 4099};
        for (int si = 0; si < 5; si++) {
            int64_t n = sizes[si];
            atomic_int *hits = calloc((size_t)n, sizeof *hits);
            cover_ctx c = {hits};
            for (int rep = 0; rep < 3; rep++) rq_parallel_for(n, 2, cover, &c);
            int ok = 1;
            for (int64_t i = 0; i < n; i++) ok &= atomic_load(&hits[i]) == 3;
            RQ_CHECK_MSG(ok, "pool coverage nt=%d n=%lld", nt, (long long)n);
            free(hits);
        }
    }
    rq_threads_shutdown();

    /* errors */
    RQ_CHECK(rq_errorf(RQ_EFORMAT, "bad %d", 7) == RQ_EFORMAT);
    RQ_CHECK(strcmp(rq_last_error(), "bad 7") == 0);
    rq_error_prefix(RQ_EFORMAT, "file.gguf");
    RQ_CHECK(strcmp(rq_last_error(), "file.gguf: bad 7") == 0);

    int64_t r;
    RQ_CHECK(!rq_mul_ok(INT64_MAX / 2, 3, &r));
    RQ_CHECK(rq_mul_ok(1 << 20, 1 << 20, &r) && r == (int64_t)1 << 40);
    RQ_CHECK(!rq_add_ok(INT64_MAX, 1, &r));
    RQ_CHECK(!rq_mul_ok(-1, 2, &r));

    /* CPU level capping never raises */
    rq_cpu_level maxl = rq_cpu_max_level();
    rq_cpu_set_level(RQ_CPU_SCALAR);
    RQ_CHECK(rq_cpu_level_get() == RQ_CPU_SCALAR);
    rq_cpu_set_level(RQ_CPU_AVX512);
    RQ_CHECK(rq_cpu_level_get() <= maxl);
    printf("cpu max level: %s\n", rq_cpu_level_name(maxl));
    return rq_test_finish();
}

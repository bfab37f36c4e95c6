/* Tests of the MPI layer (src/base/mpi.h) and its helpers (base/exact_sum.h, base/hash.h).
 * Run alone it checks the one-rank behaviour (the stub, or an MPI build not launched by
 * mpirun); under `mpirun -np N` (tests/CMakeLists.txt, -DRQ_MPI=ON) every rank checks the
 * collectives against values it can compute alone:
 *   - shares: contiguous, in rank order, covering [0, n) exactly once;
 *   - gather of shares: every rank ends with every item, item i = f(i);
 *   - sums: Σ (rank + 1) = size (size + 1) / 2, exact in every type;
 *   - exact sums: float32 addends m·2^e over a range of 2^76 (naive float64 summation
 *     loses bits on them), split over the ranks, reduced with rq_mpi_sum_exact, equal to
 *     the exact sum computed in 128-bit integers and rounded once — bitwise;
 *   - broadcast, maximum, and rq_mpi_check_same naming the rank that differs.
 * `test_mpi --die RANK` makes that rank exit (status 3) while the others wait in an
 * all-reduce: tests/sh_mpi.sh checks that mpirun ends the job with an error naming it. */
#include "testing.h"

#include "base/exact_sum.h"
#include "base/hash.h"
#include "base/mpi.h"
#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_EXACT 4000 /* addends of the exact-sum check */
#define E_MIN (-40)  /* their exponents: m·2^e, |m| < 2^24, e in [E_MIN, 0] */

/* the addends and their exact sum, in units of 2^E_MIN, as a 128-bit integer */
static void exact_data(float *x, __int128 *sum) {
    rq_rng r;
    rq_rng_seed(&r, 7);
    *sum = 0;
    for (int i = 0; i < N_EXACT; i++) {
        int64_t m = (int64_t)rq_rng_below(&r, (UINT64_C(1) << 25) - 1) - ((INT64_C(1) << 24) - 1);
        int e = E_MIN + (int)rq_rng_below(&r, (uint64_t)(1 - E_MIN));
        x[i] = ldexpf((float)m, e); /* exact: |m| < 2^24 */
        *sum += (__int128)m << (e - E_MIN);
    }
}

static double exact_oracle(__int128 sum) { return ldexp((double)sum, E_MIN); /* one rounding */ }

static void test_hash(void) {
    unsigned char buf[80];
    for (int i = 0; i < 80; i++) buf[i] = (unsigned char)(i * 37 + 1);
    RQ_CHECK(rq_hash64(buf, 80, 0) == rq_hash64(buf, 80, 0));
    /* every length differs, and one flipped bit anywhere changes the hash */
    int distinct = 1, flips = 1;
    for (int n = 0; n < 80; n++) {
        uint64_t h = rq_hash64(buf, n, 0);
        if (n > 0 && h == rq_hash64(buf, n - 1, 0)) distinct = 0;
        for (int i = 0; i < n; i++) {
            buf[i] ^= 4;
            if (rq_hash64(buf, n, 0) == h) flips = 0;
            buf[i] ^= 4;
        }
    }
    RQ_CHECK(distinct);
    RQ_CHECK(flips);
    RQ_CHECK(rq_hash64(buf, 80, 1) != rq_hash64(buf, 80, 0));
}

/* exact sums in one process: any split into parts, combined in any order, gives the
 * oracle bitwise, where naive float64 summation does not */
static void test_exact_local(const float *x, double oracle) {
    double naive = 0;
    for (int i = 0; i < N_EXACT; i++) naive += x[i];
    RQ_CHECK_MSG(naive != oracle, "the data should be hard for naive summation (naive %.17g)", naive);
    for (int parts = 1; parts <= 7; parts++) {
        double hi = 0, lo = 0;
        for (int p = parts - 1; p >= 0; p--) { /* parts combined last to first */
            double phi = 0, plo = 0;
            for (int i = N_EXACT * p / parts; i < N_EXACT * (p + 1) / parts; i++) rq_exact_add(&phi, &plo, x[i]);
            rq_exact_add_pair(&hi, &lo, phi, plo);
        }
        RQ_CHECK_MSG(rq_exact_value(hi, lo) == oracle, "%d parts: %.17g vs %.17g", parts, rq_exact_value(hi, lo),
                     oracle);
    }
}

static void test_collectives(const float *x, double oracle) {
    int rank = rq_mpi_rank(), size = rq_mpi_size();
    RQ_CHECK(rank >= 0 && rank < size);
    RQ_CHECK(rq_mpi_local_size() >= 1 && rq_mpi_local_size() <= size);

    /* shares: lengths sum to n; the shares gathered are contiguous and in order */
    for (int64_t n = 0; n < 11; n++) {
        int64_t b, e;
        rq_mpi_share(n, &b, &e);
        RQ_CHECK(0 <= b && b <= e && e <= n && e - b >= n / size && e - b <= n / size + 1);
        int64_t len = e - b;
        RQ_CHECK(rq_mpi_sum_i64(&len, 1) == RQ_OK);
        RQ_CHECK(len == n);
        int64_t *be = calloc((size_t)size * 2, sizeof *be); /* [size, 2] */
        be[2 * rank] = b, be[2 * rank + 1] = e;
        RQ_CHECK(rq_mpi_gather_shares(be, size, 2 * sizeof *be) == RQ_OK); /* one item per rank */
        RQ_CHECK(be[0] == 0 && be[2 * size - 1] == n);
        for (int r = 1; r < size; r++) RQ_CHECK(be[2 * r] == be[2 * r - 1]);
        free(be);
    }

    /* gather: items of 3 doubles, item i = (i, i², -i) */
    enum { NG = 1001 };
    double *items = calloc(NG * 3, sizeof *items);
    int64_t b, e;
    rq_mpi_share(NG, &b, &e);
    for (int64_t i = b; i < e; i++) items[3 * i] = (double)i, items[3 * i + 1] = (double)(i * i), items[3 * i + 2] = -(double)i;
    RQ_CHECK(rq_mpi_gather_shares(items, NG, 3 * sizeof *items) == RQ_OK);
    int ok = 1;
    for (int64_t i = 0; i < NG; i++)
        ok &= items[3 * i] == (double)i && items[3 * i + 1] == (double)(i * i) && items[3 * i + 2] == -(double)i;
    RQ_CHECK(ok);
    free(items);

    /* sums */
    double d[3] = {rank + 1.0, 1.0, -0.5 * rank};
    float f[2] = {(float)rank + 1.0f, 2.0f};
    int64_t k[2] = {rank + 1, INT64_C(1) << 40};
    RQ_CHECK(rq_mpi_sum_f64(d, 3) == RQ_OK && rq_mpi_sum_f32(f, 2) == RQ_OK && rq_mpi_sum_i64(k, 2) == RQ_OK);
    double tri = size * (size + 1) / 2.0;
    RQ_CHECK(d[0] == tri && d[1] == size && d[2] == -0.5 * (tri - size));
    RQ_CHECK(f[0] == (float)tri && f[1] == 2.0f * (float)size);
    RQ_CHECK(k[0] == (int64_t)tri && k[1] == (INT64_C(1) << 40) * size);
    RQ_CHECK(rq_mpi_max_i64(rank * 10) == (size - 1) * 10);

    /* exact sums over the ranks: two pairs per item (the same sum twice) */
    double pairs[4] = {0, 0, 0, 0};
    rq_mpi_share(N_EXACT, &b, &e);
    for (int64_t i = b; i < e; i++) rq_exact_add(&pairs[0], &pairs[1], x[i]);
    for (int64_t i = e - 1; i >= b; i--) rq_exact_add(&pairs[2], &pairs[3], x[i]);
    RQ_CHECK(rq_mpi_sum_exact(pairs, 2) == RQ_OK);
    RQ_CHECK_MSG(rq_exact_value(pairs[0], pairs[1]) == oracle, "rank %d: %.17g vs %.17g", rank,
                 rq_exact_value(pairs[0], pairs[1]), oracle);
    RQ_CHECK(rq_exact_value(pairs[2], pairs[3]) == oracle);

    /* broadcast from the last rank */
    char msg[32];
    snprintf(msg, sizeof msg, "from rank %d", rank);
    RQ_CHECK(rq_mpi_bcast(msg, sizeof msg, size - 1) == RQ_OK);
    char want[32];
    snprintf(want, sizeof want, "from rank %d", size - 1);
    RQ_CHECK(!strcmp(msg, want));
    RQ_CHECK(rq_mpi_bcast(msg, 4, size) == RQ_EINVAL || size == 1);

    /* the same hash everywhere passes; one that differs on the last rank fails everywhere,
     * naming that rank */
    RQ_CHECK(rq_mpi_check_same(12345, "the model") == RQ_OK);
    rq_status s = rq_mpi_check_same(rank == size - 1 ? 99 : 12345, "the model");
    if (size == 1) {
        RQ_CHECK(s == RQ_OK);
    } else {
        char expect[64];
        snprintf(expect, sizeof expect, "the model on rank %d differs from rank 0's", size - 1);
        RQ_CHECK(s == RQ_EINVAL && strstr(rq_last_error(), expect));
    }
}

int main(int argc, char **argv) {
    RQ_CHECK(rq_mpi_init(&argc, &argv) == RQ_OK);
    if (argc == 3 && !strcmp(argv[1], "--die")) {
        /* a rank that dies while the others wait in a collective */
        double v = 1;
        if (rq_mpi_rank() == atoi(argv[2])) {
            fprintf(stderr, "test_mpi: rank %d exits on purpose\n", rq_mpi_rank());
            _exit(3);
        }
        sleep(1);
        rq_mpi_sum_f64(&v, 1);
        fprintf(stderr, "test_mpi: rank %d passed the all-reduce (it should not have)\n", rq_mpi_rank());
        rq_mpi_finalize();
        return 0;
    }
    if (rq_mpi_rank() == 0)
        printf("test_mpi: %d rank(s), MPI %s\n", rq_mpi_size(), rq_mpi_compiled() ? "compiled in" : "stub");
    static float x[N_EXACT];
    __int128 sum;
    exact_data(x, &sum);
    double oracle = exact_oracle(sum);
    test_hash();
    test_exact_local(x, oracle);
    test_collectives(x, oracle);
    /* every rank's verdict: the job fails if any rank failed */
    int64_t failed = rq_test_failed;
    RQ_CHECK(rq_mpi_sum_i64(&failed, 1) == RQ_OK);
    if (failed && !rq_test_failed) rq_test_fail(__FILE__, __LINE__, "another rank failed");
    int rc = rq_test_finish();
    rq_mpi_finalize();
    return rc;
}

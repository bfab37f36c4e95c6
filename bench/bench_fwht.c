/* Speed of the fast rotations and the raw FWHT kernels, against a memcpy of the same data
 * and the dense product X·Q (cblas_sgemm) measured in the same run.
 *   bench_fwht [rows] [threads]      (defaults: 2048 rows, 1 thread)
 * GB/s counts the bytes of X once (rows·n·4). */
#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "kernels/fwht.h"
#include "rotate/rotation.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPS 15

typedef void (*bench_fn)(void *ctx);

/* median of REPS timed calls after two warm-ups, seconds */
static double time_median(bench_fn f, void *ctx) {
    double t[REPS];
    f(ctx);
    f(ctx);
    for (int r = 0; r < REPS; r++) {
        double t0 = rq_time_now();
        f(ctx);
        t[r] = rq_time_now() - t0;
    }
    for (int i = 1; i < REPS; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    return t[REPS / 2];
}

typedef struct {
    const rq_rot_plan *pl;
    const float *x, *q;
    float *y;
    int64_t rows, n;
    void (*kernel)(float *, int64_t, int64_t, float);
} ctx_t;

static void run_memcpy(void *v) {
    ctx_t *c = v;
    memcpy(c->y, c->x, (size_t)(c->rows * c->n) * sizeof(float));
}
static void run_apply(void *v) {
    ctx_t *c = v;
    rq_rot_apply(c->pl, c->x, c->y, c->rows);
}
static void run_apply_t(void *v) {
    ctx_t *c = v;
    rq_rot_apply_t(c->pl, c->x, c->y, c->rows);
}
static void run_gemm(void *v) {
    ctx_t *c = v;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->rows, (int)c->n, (int)c->n, 1.0f, c->x, (int)c->n,
                c->q, (int)c->n, 0.0f, c->y, (int)c->n);
}
static void run_kernel(void *v) {
    ctx_t *c = v;
    c->kernel(c->y, c->rows, c->n, (float)(1.0 / sqrt((double)c->n)));
}

int main(int argc, char **argv) {
    int64_t rows = argc > 1 ? atoll(argv[1]) : 2048;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (rows < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_fwht [rows] [threads]\n");
        return 2;
    }
    rq_threads_set(threads);
    printf("bench_fwht: %lld rows, %d thread(s), cpu level %s\n", (long long)rows, threads,
           rq_cpu_level_name(rq_cpu_level_get()));
    const int64_t nmax = 8192;
    float *x = rq_xalloc(rows * nmax * 4), *y = rq_xalloc(rows * nmax * 4);
    rq_rng g;
    rq_rng_seed(&g, 1);
    for (int64_t i = 0; i < rows * nmax; i++) x[i] = (float)rq_rng_normal(&g);

    struct { rq_rot_kind k; int64_t n, b; } cases[] = {
        {RQ_ROT_HADAMARD, 576, 0},  {RQ_ROT_WALSH, 576, 0},    {RQ_ROT_GSR, 576, 64},   {RQ_ROT_HADAMARD, 640, 0},
        {RQ_ROT_GSR, 640, 64},      {RQ_ROT_HADAMARD, 1536, 0}, {RQ_ROT_GSR, 1536, 64},  {RQ_ROT_HADAMARD, 2048, 0},
        {RQ_ROT_HADAMARD, 4096, 0}, {RQ_ROT_GSR, 4096, 64},    {RQ_ROT_GSR, 4096, 128},
    };
    printf("\n%-36s %-32s %9s %8s %8s %7s %10s %8s\n", "rotation", "hadamard blocks", "apply ms", "GB/s", "memcpy",
           "ratio", "sgemm ms", "speedup");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rq_rotation r = rq_rot_make(cases[i].k, cases[i].n, cases[i].b, 0);
        rq_rot_plan *pl;
        float *q;
        if (rq_rot_plan_build(&r, &pl) != RQ_OK || rq_rot_dense(&r, &q) != RQ_OK) {
            fprintf(stderr, "bench_fwht: %s\n", rq_last_error());
            return 1;
        }
        ctx_t c = {pl, x, q, y, rows, r.n, NULL};
        double t_cp = time_median(run_memcpy, &c);
        double t_ap = time_median(run_apply, &c);
        double t_at = time_median(run_apply_t, &c);
        double t_mm = time_median(run_gemm, &c);
        double bytes = (double)rows * (double)r.n * 4.0;
        char desc[96];
        rq_rot_describe(&r, desc, sizeof desc);
        printf("%-36s %-32s %9.3f %8.2f %8.2f %7.3f %10.3f %7.1fx   (apply_t %.3f ms)\n", desc,
               rq_rot_plan_hadamard_desc(pl), t_ap * 1e3, bytes / t_ap / 1e9, bytes / t_cp / 1e9, t_cp / t_ap,
               t_mm * 1e3, t_mm / t_ap, t_at * 1e3);
        rq_free(q);
        rq_rot_plan_free(pl);
    }

    printf("\nraw rq_fwht kernels, in place, orthonormal (GB/s of rows·n·4 bytes; ratio = memcpy time / kernel time)\n");
    printf("%6s %10s %10s %10s %10s %8s\n", "n", "scalar", "avx2", "avx512", "memcpy", "ratio");
    const int64_t ns[] = {16, 32, 64, 128, 1024, 4096, 8192};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int64_t n = ns[i];
        ctx_t c = {NULL, x, NULL, y, rows, n, NULL};
        memcpy(y, x, (size_t)(rows * n) * 4);
        double bytes = (double)rows * (double)n * 4.0, gbs[3] = {0, 0, 0}, best = 0;
        void (*fns[3])(float *, int64_t, int64_t, float) = {rq_fwht_ref, rq_fwht_avx2, rq_fwht_avx512};
        for (int l = 0; l < 3; l++) {
            if ((rq_cpu_level)l > rq_cpu_max_level()) continue;
            c.kernel = fns[l];
            double t = time_median(run_kernel, &c);
            gbs[l] = bytes / t / 1e9;
            if (gbs[l] > best) best = gbs[l];
        }
        double t_cp = time_median(run_memcpy, &c);
        printf("%6lld %10.2f %10.2f %10.2f %10.2f %8.3f\n", (long long)n, gbs[0], gbs[1], gbs[2], bytes / t_cp / 1e9,
               best / (bytes / t_cp / 1e9));
    }
    rq_free(x);
    rq_free(y);
    rq_threads_shutdown();
    return 0;
}

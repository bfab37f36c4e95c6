/* GPTQ timings on SmolLM2-135M layer shapes: Hessian accumulation from N = 2048·16
 * calibration rows (fed in batches of 2048, as a calibration driver would) and the GPTQ
 * solve, next to RTN of the same layer as the baseline.
 *   bench_gptq [threads] [n_rows]     (threads: 0 = all cores) */
#include "base/pool.h"
#include "base/rng.h"
#include "base/timer.h"
#include "quant/gptq.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    int64_t n_rows = argc > 2 ? atoll(argv[2]) : 2048 * 16;
    const int64_t batch = 2048;
    rq_threads_set(threads);
    openblas_set_num_threads(rq_threads_get());
    printf("threads %d (OpenBLAS %d), N = %lld rows\n", rq_threads_get(), openblas_get_num_threads(),
           (long long)n_rows);
    const struct { const char *name; int64_t in, out; } shapes[] = {
        {"576->576 (q/o)", 576, 576},
        {"576->1536 (gate/up)", 576, 1536},
        {"1536->576 (down)", 1536, 576},
    };
    rq_rng r;
    rq_rng_seed(&r, 1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t d = shapes[s].in, out = shapes[s].out, g = 64, ng = d / g;
        float *x = rq_xalloc(batch * d * 4);
        float *colscale = rq_xalloc(d * 4);
        for (int64_t i = 0; i < d; i++) colscale[i] = (float)(0.1 + 2 * rq_rng_uniform(&r));
        rq_hessian h;
        RQ_ASSERT(rq_hessian_init(&h, d) == RQ_OK);
        double t_h = 0;
        for (int64_t b = 0; b < n_rows; b += batch) {
            int64_t m = n_rows - b < batch ? n_rows - b : batch;
            for (int64_t k = 0; k < m; k++) { /* rows with a shared component: correlated */
                double common = rq_rng_normal(&r);
                for (int64_t i = 0; i < d; i++)
                    x[k * d + i] = (float)(colscale[i] * (rq_rng_normal(&r) + 0.5 * common));
            }
            double t0 = rq_time_now();
            rq_hessian_add(&h, x, m);
            t_h += rq_time_now() - t0;
        }
        double *H = rq_xalloc(d * d * 8);
        double t0 = rq_time_now();
        rq_hessian_get(&h, H);
        t_h += rq_time_now() - t0;
        rq_hessian_free(&h);

        float *w = rq_xalloc(out * d * 4), *deq = rq_xalloc(out * d * 4);
        float *scales = rq_xalloc(out * ng * 4), *lv = rq_xalloc(out * ng * 16);
        uint8_t *codes = rq_xalloc(out * d), *zeros = rq_xalloc(out * ng);
        for (int64_t i = 0; i < out * d; i++) w[i] = (float)(0.05 * rq_rng_normal(&r));
        rq_uniform_cfg uc = {.bits = 2};
        t0 = rq_time_now();
        RQ_ASSERT(rq_uniform_quantize(&uc, w, out, d, g, NULL, codes, scales, zeros, deq) == RQ_OK);
        double t_rtn = rq_time_now() - t0;
        rq_gptq_cfg cfg = rq_gptq_cfg_default();
        cfg.group = g;
        double t_solve[3];
        rq_gptq_info info;
        for (int v = 0; v < 3; v++) {
            cfg.act_order = v >= 1;
            t0 = rq_time_now();
            if (v < 2) {
                RQ_ASSERT(rq_gptq_quantize_uniform(&cfg, &uc, H, w, out, d, codes, scales, zeros,
                                                   deq, NULL, &info) == RQ_OK);
            } else {
                rq_lut_cfg lc = {.iters = RQ_LUT_ITERS_DEFAULT};
                RQ_ASSERT(rq_gptq_quantize_lut(&cfg, &lc, H, w, out, d, codes, lv, deq, NULL,
                                               &info) == RQ_OK);
            }
            t_solve[v] = rq_time_now() - t0;
        }
        double gflop = 1e-9 * (double)n_rows * (double)d * (double)(d + 1);
        printf("%-20s hessian %7.3f s (%5.1f GFLOP/s) | GPTQ 2-bit g64: solve %.3f s, act-order "
               "%.3f s, LUT act-order %.3f s | RTN %.4f s (solve/RTN %.0fx)\n",
               shapes[s].name, t_h, gflop / t_h, t_solve[0], t_solve[1], t_solve[2], t_rtn,
               t_solve[0] / t_rtn);
        rq_free(x), rq_free(colscale), rq_free(H), rq_free(w), rq_free(deq), rq_free(scales);
        rq_free(lv), rq_free(codes), rq_free(zeros);
    }
    printf("peak RSS %.0f MiB\n", rq_peak_rss_bytes() / 1048576.0);
    return 0;
}

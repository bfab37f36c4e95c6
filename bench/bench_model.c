/* Speed of the float forward pass on a model, beside its baselines measured in the same
 * run:
 *   pp N   prefill of N tokens in one batch (tokens/s), compared with the throughput of
 *          plain BLAS GEMM on the model's MLP shape (the compute roofline we can reach);
 *   tg M   decoding M tokens one at a time from an empty cache (tokens/s), compared with
 *          streaming the float weights at memcpy bandwidth (the memory roofline).
 * usage: bench_model [MODEL] [-t threads] [-p N] [-n M] [-r repeats]
 * llama.cpp's figures for the same machine come from llama-bench (pp512/tg128). */
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "model/blas.h"
#include "model/model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double best_of(double *t, int r) {
    double b = t[0];
    for (int i = 1; i < r; i++) b = t[i] < b ? t[i] : b;
    return b;
}

int main(int argc, char **argv) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int threads = 0, reps = 3;
    int64_t pp = 512, tg = 128;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) pp = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) tg = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else path = argv[i];
    }
    if (reps < 1 || reps > 100 || pp < 1 || tg < 1) {
        fprintf(stderr, "bad arguments\n");
        return 1;
    }
    const char *core = rq_blas_select_kernels();
    rq_threads_set(threads);
    openblas_set_num_threads(rq_threads_get());
    rq_model *m;
    double t = rq_time_now();
    if (rq_model_load_file(path, &m) != RQ_OK) {
        fprintf(stderr, "bench_model: %s\n", rq_last_error());
        return 1;
    }
    const rq_model_config *c = &m->cfg;
    printf("model %s: %lld params, load %.2f s, %d threads, OpenBLAS core %s\n", path,
           (long long)rq_model_n_params(m), rq_time_now() - t, rq_threads_get(), core);
    rq_state *st;
    if (rq_state_new(m, pp > tg ? pp : tg, pp, false, &st) != RQ_OK) {
        fprintf(stderr, "bench_model: %s\n", rq_last_error());
        return 1;
    }
    int32_t *tok = rq_xalloc(pp * (int64_t)sizeof(int32_t));
    rq_rng r;
    rq_rng_seed(&r, 1);
    for (int64_t i = 0; i < pp; i++) tok[i] = (int32_t)rq_rng_below(&r, (uint64_t)c->n_vocab);
    double ts[100];

    /* prefill */
    rq_model_forward(st, tok, pp, 0, RQ_LOGITS_LAST); /* warm-up */
    for (int k = 0; k < reps; k++) {
        t = rq_time_now();
        rq_model_forward(st, tok, pp, 0, RQ_LOGITS_LAST);
        ts[k] = rq_time_now() - t;
    }
    double t_pp = best_of(ts, reps);
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    double macs_tok = (double)c->n_layer * ((double)c->n_embd * (2 * q_dim + 2 * kv_dim) + 3.0 * c->n_embd * c->n_ff);
    double attn_macs = (double)c->n_layer * c->n_head * c->head_dim * 2.0 * (pp + 1) / 2.0; /* per token, average */
    double flops_pp = 2.0 * (macs_tok + attn_macs) * pp + 2.0 * c->n_embd * c->n_vocab; /* + last logits */
    printf("pp%lld: %.1f tokens/s (%.3f s), %.1f GFLOP/s\n", (long long)pp, pp / t_pp, t_pp, flops_pp / t_pp * 1e-9);

    /* baseline: BLAS GEMM on the MLP up-projection shape, threads split over our pool as
     * the model does (rq_linear_forward) */
    {
        float *wbuf = rq_xalloc(c->n_ff * c->n_embd * (int64_t)sizeof(float));
        for (int64_t i = 0; i < c->n_ff * c->n_embd; i++) wbuf[i] = (float)rq_rng_uniform(&r) - 0.5f;
        rq_linear l = {.kind = RQ_LINEAR_F32, .n_out = c->n_ff, .n_in = c->n_embd, .owns_w = false, .w = wbuf};
        float *y = rq_xalloc(pp * c->n_ff * (int64_t)sizeof(float));
        rq_linear_forward(&l, st->xn, pp, y, c->n_ff, false);
        for (int k = 0; k < reps; k++) {
            t = rq_time_now();
            for (int j = 0; j < 10; j++) rq_linear_forward(&l, st->xn, pp, y, c->n_ff, false);
            ts[k] = (rq_time_now() - t) / 10;
        }
        double g = 2.0 * pp * c->n_ff * c->n_embd / best_of(ts, reps) * 1e-9;
        printf("  baseline GEMM [%lld x %lld]·[%lld x %lld]ᵀ: %.1f GFLOP/s -> model at %.0f%% of it\n",
               (long long)pp, (long long)c->n_embd, (long long)c->n_ff, (long long)c->n_embd, g,
               100.0 * flops_pp / t_pp * 1e-9 / g);
        rq_free(y);
        rq_free(wbuf);
    }

    /* decode */
    for (int k = 0; k < reps; k++) {
        rq_state_reset(st);
        int32_t cur = tok[0];
        t = rq_time_now();
        for (int64_t i = 0; i < tg; i++) {
            rq_model_forward(st, &cur, 1, i, RQ_LOGITS_LAST);
            cur = tok[(i + 1) % pp];
        }
        ts[k] = rq_time_now() - t;
    }
    double t_tg = best_of(ts, reps);
    double wbytes = (double)rq_model_n_params(m) * 4.0;
    printf("tg%lld: %.1f tokens/s (%.2f ms/token), weights %.0f MiB float32\n", (long long)tg, tg / t_tg,
           t_tg / tg * 1e3, wbytes / 1048576.0);
    {
        /* baseline: memcpy bandwidth over 256 MiB, split over the pool */
        int64_t nb = INT64_C(256) << 20;
        char *a = rq_xalloc(nb), *b = rq_xalloc(nb);
        memset(a, 1, (size_t)nb);
        memset(b, 2, (size_t)nb);
        for (int k = 0; k < reps; k++) {
            t = rq_time_now();
            memcpy(b, a, (size_t)nb);
            ts[k] = rq_time_now() - t;
        }
        double bw = 2.0 * nb / best_of(ts, reps); /* read + write */
        printf("  baseline memcpy (1 thread): %.1f GB/s -> streaming the weights once: %.1f tokens/s; decode at "
               "%.0f%% of it\n",
               bw * 1e-9, bw / wbytes, 100.0 * (tg / t_tg) / (bw / wbytes));
        rq_free(a);
        rq_free(b);
    }
    rq_free(tok);
    rq_state_free(st);
    rq_model_free(m);
    return 0;
}

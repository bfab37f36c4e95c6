/* Speed and memory of the forward pass on a model file, beside baselines measured in the
 * same run:
 *   pp N   prefill of N tokens in one batch (tokens/s), compared with the throughput of
 *          plain BLAS GEMM on the model's MLP shape (the compute roofline of float);
 *   tg M   decoding M tokens one at a time from an empty cache (tokens/s), compared with
 *          streaming the weights held in memory at memcpy bandwidth (the memory roofline);
 *   rot    the online rotations of one decoded token (R3, R4; R1 after the post-norms; Ri, Ro),
 *          timed alone as single-row transforms, as a share of the decoded token's time;
 *   RSS    resident memory after loading (total and anonymous, i.e. without file pages)
 *          and the peak over the run; the weights' bytes as held.
 * A rotquant 2-bit file runs on the packed kernels (kinds W2U/W2L + Q8_0 lm_head) unless
 * --ref (the dequantized float reference path); --abits sets the blocks' activations.
 * CPU load: the run also reports the process's CPU time over wall time during the timed
 * parts (threads × 100% when it had the cores to itself; lower when shared).
 *
 * usage: bench_model [MODEL] [-t threads] [-p N] [-n M] [-r repeats] [--abits 16|8|4] [--ref]
 *                    [--a16 exact|q8] [--lut-int float|bitplane] [--no-rows4] [--no-baseline] [--tsv LABEL]
 * --a16: how packed 2-bit weights take float activations (kernels/gemv.h, rq_lowbit_a16);
 * --lut-int: W2L's method for integer activations (rq_lowbit_lut_int_method); --no-rows4: the
 * super-chunk kernels row by row for one token (rq_lowbit_tuning.no_rows4).
 * --tsv prints one tab-separated line at the end:
 *   LABEL weights_MiB rss_load_MiB rss_anon_MiB peak_rss_MiB pp_tok_s tg_tok_s cpu_pct
 * llama.cpp's figures for the same machine come from llama-bench (bench/bench_model.sh). */
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "kernels/gemv.h"
#include "model/blas.h"
#include "model/model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double best_of(double *t, int r) {
    double b = t[0];
    for (int i = 1; i < r; i++) b = t[i] < b ? t[i] : b;
    return b;
}

/* A field of /proc/self/status in kB ("RssAnon:"), 0 if absent. */
static double status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double v = 0;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, k)) {
            v = atof(line + k);
            break;
        }
    fclose(f);
    return v;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf", *tsv = NULL;
    int threads = 0, reps = 3, abits = 0;
    bool ref = false, baseline = true;
    int64_t pp = 512, tg = 128;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) pp = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) tg = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--abits") && i + 1 < argc) abits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tsv") && i + 1 < argc) tsv = argv[++i];
        else if (!strcmp(argv[i], "--ref")) ref = true;
        else if (!strcmp(argv[i], "--a16") && i + 1 < argc) {
            rq_lowbit_tuning tu;
            rq_lowbit_tuning_get(&tu);
            const char *v = argv[++i];
            if (strcmp(v, "exact") && strcmp(v, "q8")) {
                fprintf(stderr, "bench_model: --a16 %s is not exact or q8\n", v);
                return 1;
            }
            tu.a16 = !strcmp(v, "q8") ? RQ_LOWBIT_A16_Q8 : RQ_LOWBIT_A16_EXACT;
            rq_lowbit_tuning_set(&tu);
        }
        else if (!strcmp(argv[i], "--lut-int") && i + 1 < argc) {
            rq_lowbit_tuning tu;
            rq_lowbit_tuning_get(&tu);
            const char *v = argv[++i];
            if (strcmp(v, "float") && strcmp(v, "bitplane")) {
                fprintf(stderr, "bench_model: --lut-int %s is not float or bitplane\n", v);
                return 1;
            }
            tu.lut_int = !strcmp(v, "bitplane") ? RQ_LOWBIT_LUT_INT_BITPLANE : RQ_LOWBIT_LUT_INT_FLOAT;
            rq_lowbit_tuning_set(&tu);
        }
        else if (!strcmp(argv[i], "--no-rows4")) {
            rq_lowbit_tuning tu;
            rq_lowbit_tuning_get(&tu);
            tu.no_rows4 = true;
            rq_lowbit_tuning_set(&tu);
        }
        else if (!strcmp(argv[i], "--no-baseline")) baseline = false;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "bench_model: unknown option %s\n", argv[i]);
            return 1;
        } else path = argv[i];
    }
    if (reps < 1 || reps > 100 || pp < 1 || tg < 1) {
        fprintf(stderr, "bad arguments\n");
        return 1;
    }
    const char *core = rq_blas_select_kernels();
    rq_threads_set(threads);
    openblas_set_num_threads(rq_threads_get());
    rq_model *m = NULL;
    double t = rq_time_now();
    rq_gguf *g;
    rq_model_load_opts lo = {.ref_linear = ref};
    if (rq_gguf_open(path, &g) != RQ_OK || rq_model_load_ex(g, &lo, &m) != RQ_OK) {
        fprintf(stderr, "bench_model: %s\n", rq_last_error());
        return 1;
    }
    rq_gguf_close(g);
    if (abits && rq_model_set_act_bits(m, abits) != RQ_OK) {
        fprintf(stderr, "bench_model: %s\n", rq_last_error());
        return 1;
    }
    const rq_model_config *c = &m->cfg;
    char desc[256];
    const double rss_load = status_kb("VmRSS:") / 1024.0, rss_anon = status_kb("RssAnon:") / 1024.0;
    const double wbytes = (double)rq_model_weight_bytes(m);
    printf("model %s: %lld params, load %.2f s, %d threads, OpenBLAS core %s\n  %s\n", path,
           (long long)rq_model_n_params(m), rq_time_now() - t, rq_threads_get(), core,
           rq_model_describe(m, desc, sizeof desc));
    printf("  memory after load: RSS %.1f MiB (anonymous %.1f MiB); weights %.1f MiB\n", rss_load, rss_anon,
           wbytes / 1048576.0);
    rq_state *st;
    if (rq_state_new(m, pp > tg ? pp : tg, pp, false, &st) != RQ_OK) {
        fprintf(stderr, "bench_model: %s\n", rq_last_error());
        return 1;
    }
    int32_t *tok = rq_xalloc(pp * (int64_t)sizeof(int32_t));
    rq_rng r;
    rq_rng_seed(&r, 1);
    for (int64_t i = 0; i < pp; i++) tok[i] = (int32_t)rq_rng_below(&r, (uint64_t)c->n_vocab);
    double ts[100], cpu = 0, wall = 0;

    /* prefill */
    rq_model_forward(st, tok, pp, 0, RQ_LOGITS_LAST); /* warm-up */
    for (int k = 0; k < reps; k++) {
        double c0 = cpu_seconds();
        t = rq_time_now();
        rq_model_forward(st, tok, pp, 0, RQ_LOGITS_LAST);
        ts[k] = rq_time_now() - t;
        cpu += cpu_seconds() - c0;
        wall += ts[k];
    }
    double t_pp = best_of(ts, reps);
    const float *xn_pp = st->xn; /* normed activations of the prefill, input of the GEMM baseline */
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    double macs_tok = (double)c->n_layer * ((double)c->n_embd * (2 * q_dim + 2 * kv_dim) + 3.0 * c->n_embd * c->n_ff);
    double attn_macs = (double)c->n_layer * c->n_head * c->head_dim * 2.0 * (pp + 1) / 2.0; /* per token, average */
    double flops_pp = 2.0 * (macs_tok + attn_macs) * pp + 2.0 * c->n_embd * c->n_vocab; /* + last logits */
    printf("pp%lld: %.1f tokens/s (%.3f s), %.1f GFLOP/s\n", (long long)pp, pp / t_pp, t_pp, flops_pp / t_pp * 1e-9);

    /* decode */
    for (int k = 0; k < reps; k++) {
        rq_state_reset(st);
        int32_t cur = tok[0];
        double c0 = cpu_seconds();
        t = rq_time_now();
        for (int64_t i = 0; i < tg; i++) {
            rq_model_forward(st, &cur, 1, i, RQ_LOGITS_LAST);
            cur = tok[(i + 1) % pp];
        }
        ts[k] = rq_time_now() - t;
        cpu += cpu_seconds() - c0;
        wall += ts[k];
    }
    double t_tg = best_of(ts, reps);
    printf("tg%lld: %.1f tokens/s (%.2f ms/token), weights %.1f MiB as held\n", (long long)tg, tg / t_tg,
           t_tg / tg * 1e3, wbytes / 1048576.0);
    {
        /* the online rotations one decoded token goes through (R3 on q and k of every head,
         * R4, R1 after both post-norms (route (a)), Ri twice and Ro (route (b)), per layer),
         * timed alone as single-row rq_rot_apply calls on a scratch row, against the token */
        const rq_online *on = &m->online;
        const struct { const rq_rot_plan *p; int64_t per_layer; } tr[5] = {
            {on->p3, c->n_head + c->n_head_kv}, {on->p4, 1}, {on->p1, 2}, {on->pi, 2}, {on->po, 1}};
        int64_t calls = 0, nmax = 1;
        for (int i = 0; i < 5; i++)
            if (tr[i].p) {
                calls += tr[i].per_layer * c->n_layer;
                if (rq_rot_plan_rotation(tr[i].p)->n > nmax) nmax = rq_rot_plan_rotation(tr[i].p)->n;
            }
        if (calls > 0) {
            float *row = rq_xalloc(nmax * (int64_t)sizeof(float));
            for (int64_t i = 0; i < nmax; i++) row[i] = (float)rq_rng_uniform(&r) - 0.5f;
            for (int k = 0; k < reps; k++) {
                t = rq_time_now();
                for (int64_t j = 0; j < 20; j++)
                    for (int i = 0; i < 5; i++)
                        for (int64_t q = 0; tr[i].p && q < tr[i].per_layer * c->n_layer; q++)
                            rq_rot_apply(tr[i].p, row, row, 1);
                ts[k] = (rq_time_now() - t) / 20;
            }
            double t_rot = best_of(ts, reps);
            printf("online rotations: %lld transforms per token, %.1f us per token (%.2f%% of a decoded token)\n",
                   (long long)calls, t_rot * 1e6, 100.0 * t_rot / (t_tg / tg));
            rq_free(row);
        }
    }
    const double peak = (double)rq_peak_rss_bytes() / 1048576.0, cpu_pct = 100.0 * cpu / wall;
    printf("memory: peak RSS %.1f MiB; CPU time / wall time over the timed runs: %.0f%% (%d threads)\n", peak, cpu_pct,
           rq_threads_get());
    /* baselines last, so that their buffers do not count in the peak above */
    if (baseline) {
        /* BLAS GEMM on the MLP up-projection shape (random float weights), threads split
         * over our pool as the float model does (rq_linear_forward) */
        float *wbuf = rq_xalloc(c->n_ff * c->n_embd * (int64_t)sizeof(float));
        for (int64_t i = 0; i < c->n_ff * c->n_embd; i++) wbuf[i] = (float)rq_rng_uniform(&r) - 0.5f;
        rq_linear l = {.kind = RQ_LINEAR_F32, .n_out = c->n_ff, .n_in = c->n_embd, .owns_w = false, .w = wbuf};
        float *y = rq_xalloc(pp * c->n_ff * (int64_t)sizeof(float));
        rq_linear_forward(&l, xn_pp, pp, y, c->n_ff, false);
        for (int k = 0; k < reps; k++) {
            t = rq_time_now();
            for (int j = 0; j < 10; j++) rq_linear_forward(&l, xn_pp, pp, y, c->n_ff, false);
            ts[k] = (rq_time_now() - t) / 10;
        }
        double gf = 2.0 * pp * c->n_ff * c->n_embd / best_of(ts, reps) * 1e-9;
        printf("  baseline float GEMM [%lld x %lld]·[%lld x %lld]ᵀ: %.1f GFLOP/s -> model at %.0f%% of it\n",
               (long long)pp, (long long)c->n_embd, (long long)c->n_ff, (long long)c->n_embd, gf,
               100.0 * flops_pp / t_pp * 1e-9 / gf);
        rq_free(y);
        rq_free(wbuf);
    }

    if (baseline) {
        /* memcpy bandwidth over 256 MiB, one thread */
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

    if (tsv)
        printf("%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\n", tsv, wbytes / 1048576.0, rss_load, rss_anon, peak,
               pp / t_pp, tg / t_tg, cpu_pct);
    rq_free(tok);
    rq_state_free(st);
    rq_model_free(m);
    return 0;
}

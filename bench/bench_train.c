/* One training step split into its phases, on a model file (float32 reference path):
 *   inference  the plain forward of the same batch with no activations saved (the baseline)
 *   forward    the forward saving activations (rq_train_forward)
 *   loss       next-token cross-entropy and its gradient over the logits
 *   backward   rq_train_backward
 *   optimizer  gradient norm/clip and the AdamW update
 * each the best of -r repeats, with the ratios backward/forward and forward/inference
 * (goal of the training design: backward <= 2.5 × forward).
 *
 * usage: bench_train [MODEL] [-t threads] [-b sequences] [-T tokens] [-r repeats] [--train-embd]
 * (default: models/SmolLM2-135M-Instruct.Q4_1.gguf, 2 threads, 2 × 256 tokens, 3 repeats,
 * the token embedding frozen as rotquant train leaves it by default). */
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "model/blas.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/backward.h"
#include "train/params.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PH_INFER, PH_FWD, PH_LOSS, PH_BWD, PH_OPT, PH_COUNT };

int main(int argc, char **argv) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int threads = 2, reps = 3;
    int64_t B = 2, T = 256;
    bool train_embd = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) B = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) T = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-embd")) train_embd = true;
        else if (argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: bench_train [MODEL] [-t threads] [-b sequences] [-T tokens] [-r repeats] "
                            "[--train-embd]\n");
            return 2;
        }
    }
    if (reps < 1 || B < 1 || T < 2) return 2;
    rq_threads_set(threads);
    openblas_set_num_threads(threads);
    rq_gguf *g;
    rq_model *m;
    rq_model_load_opts lo = {.ref_linear = true};
    if (rq_gguf_open(path, &g) != RQ_OK || rq_model_load_ex(g, &lo, &m) != RQ_OK) {
        fprintf(stderr, "bench_train: %s\n", rq_last_error());
        return 1;
    }
    rq_gguf_close(g);
    rq_params p, gr;
    rq_adamw o;
    rq_train_ctx *c;
    rq_state *inf;
    if (rq_params_build(m, &p) != RQ_OK || rq_params_mirror(&p, &gr) != RQ_OK) return 1;
    p.p[rq_params_find(&p, m->tok_embd)].trainable = train_embd;
    if (rq_adamw_init(&o, &p) != RQ_OK || rq_train_ctx_new(m, B, T, &c) != RQ_OK) return 1;
    if (rq_state_new(m, c->n, c->n, true, &inf) != RQ_OK || rq_state_set_segments(inf, T) != RQ_OK) return 1;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)c->n);
    rq_rng r;
    rq_rng_seed(&r, 1);
    for (int64_t i = 0; i < c->n; i++) tok[i] = (int32_t)rq_rng_below(&r, (uint64_t)m->cfg.n_vocab);
    double best[PH_COUNT];
    for (int k = 0; k < PH_COUNT; k++) best[k] = 1e30;
    for (int rep = 0; rep <= reps; rep++) { /* rep 0 warms up */
        double t[PH_COUNT + 1];
        t[0] = rq_time_now();
        rq_state_reset(inf);
        if (rq_model_forward_segments(inf, tok, c->seg, c->pos, c->n, RQ_LOGITS_ALL) != RQ_OK) return 1;
        t[1] = rq_time_now();
        if (rq_train_forward(c, tok) != RQ_OK) return 1;
        t[2] = rq_time_now();
        double loss = rq_train_loss(c, tok, NULL, 0);
        t[3] = rq_time_now();
        memset(gr.buf, 0, (size_t)gr.n_total * sizeof(float));
        rq_train_backward(c, tok, c->st->logits, &p, &gr);
        t[4] = rq_time_now();
        rq_grad_clip(&p, &gr, 1.0);
        rq_adamw_step(&o, &p, &gr, 1e-6f);
        t[5] = rq_time_now();
        if (rep == 0) {
            printf("%s: %lld × %lld tokens, %d threads, %lld trainable parameters%s; loss %.4f\n", path, (long long)B,
                   (long long)T, threads, (long long)rq_params_n_trainable(&p),
                   train_embd ? "" : " (embedding frozen)", loss);
            continue;
        }
        for (int k = 0; k < PH_COUNT; k++)
            if (t[k + 1] - t[k] < best[k]) best[k] = t[k + 1] - t[k];
    }
    const char *names[PH_COUNT] = {"inference fwd", "forward", "loss", "backward", "optimizer"};
    double step = best[PH_FWD] + best[PH_LOSS] + best[PH_BWD] + best[PH_OPT];
    for (int k = 0; k < PH_COUNT; k++)
        printf("  %-14s %8.3f s  %8.1f tokens/s\n", names[k], best[k], (double)c->n / best[k]);
    printf("  step           %8.3f s  %8.1f tokens/s\n", step, (double)c->n / step);
    printf("  backward/forward %.2f (goal <= 2.5); forward saving activations / inference %.3f; peak RSS %.0f MiB\n",
           best[PH_BWD] / best[PH_FWD], best[PH_FWD] / best[PH_INFER], (double)rq_peak_rss_bytes() / (1 << 20));
    free(tok);
    rq_state_free(inf);
    rq_train_ctx_free(c);
    rq_adamw_free(&o);
    rq_params_free(&gr);
    rq_params_free(&p);
    rq_model_free(m);
    return 0;
}

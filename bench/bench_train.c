/* One training step split into its phases, on a model file (float32 reference path):
 *   inference  the plain forward of the same batch with no activations saved (the baseline)
 *   forward    the forward saving activations (rq_train_forward)
 *   loss       next-token cross-entropy and its gradient over the logits
 *   backward   rq_train_backward
 *   optimizer  gradient norm/clip and the AdamW update
 * each the best of -r repeats, with the ratios backward/forward and forward/inference
 * (goal of the training design: backward <= 2.5 × forward).
 *
 * With --checkpoint-act the step is measured twice, with activation checkpointing per block
 * (train/backward.h: only the block inputs kept, each block recomputed in the backward) and
 * without, in that order in the same process, so that the peak RSS printed after the first
 * is its own and after the second the plain step's (which needs more); the step-time ratio
 * and the contexts' sizes are printed too.
 *
 * usage: bench_train [MODEL] [-t threads] [-b sequences] [-T tokens] [-r repeats] [--train-embd]
 *                    [--checkpoint-act]
 * (default: models/SmolLM2-135M-Instruct.Q4_1.gguf, 2 threads, 2 × 256 tokens, 3 repeats,
 * the token embedding frozen as rotquant train leaves it by default). */
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "io/gguf.h"
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

typedef struct {
    rq_model *m;
    rq_params *p, *gr;
    rq_adamw *o;
    rq_state *inf; /* the plain forward's state (the inference baseline) */
    const int32_t *tok;
    int64_t B, T;
    int reps, threads;
    bool train_embd;
    const char *path;
} bench;

/* The phases of one configuration, best of reps; returns the step time (0 on error). */
static double run_config(const bench *b, bool checkpoint_act) {
    rq_train_ctx *c;
    const rq_train_ctx_opts co = {.checkpoint_act = checkpoint_act};
    if (rq_train_ctx_new_ex(b->m, b->B, b->T, &co, &c) != RQ_OK) return 0;
    double best[PH_COUNT];
    for (int k = 0; k < PH_COUNT; k++) best[k] = 1e30;
    printf("%s:\n", checkpoint_act ? "with activation checkpointing (--checkpoint-act)" : "without activation checkpointing");
    for (int rep = 0; rep <= b->reps; rep++) { /* rep 0 warms up */
        double t[PH_COUNT + 1];
        t[0] = rq_time_now();
        rq_state_reset(b->inf);
        if (rq_model_forward_segments(b->inf, b->tok, c->seg, c->pos, c->n, RQ_LOGITS_ALL) != RQ_OK) return 0;
        t[1] = rq_time_now();
        if (rq_train_forward(c, b->tok) != RQ_OK) return 0;
        t[2] = rq_time_now();
        double loss = rq_train_loss(c, b->tok, NULL, 0);
        t[3] = rq_time_now();
        memset(b->gr->buf, 0, (size_t)b->gr->n_total * sizeof(float));
        rq_train_backward(c, b->tok, c->st->logits, b->p, b->gr);
        t[4] = rq_time_now();
        rq_grad_clip(b->p, b->gr, 1.0);
        rq_adamw_step(b->o, b->p, b->gr, 1e-6f);
        t[5] = rq_time_now();
        if (rep == 0) {
            printf("%s: %lld × %lld tokens, %d threads, %lld trainable parameters%s; loss %.4f\n", b->path,
                   (long long)b->B, (long long)b->T, b->threads, (long long)rq_params_n_trainable(b->p),
                   b->train_embd ? "" : " (embedding frozen)", loss);
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
    printf("  training context %.1f MiB (rq_train_ctx_bytes_ex)\n",
           (double)rq_train_ctx_bytes_ex(&b->m->cfg, b->B, b->T, &co) / (1 << 20));
    rq_train_ctx_free(c);
    return step;
}

int main(int argc, char **argv) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int threads = 2, reps = 3;
    int64_t B = 2, T = 256;
    bool train_embd = false, ckpt = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) B = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) T = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-embd")) train_embd = true;
        else if (!strcmp(argv[i], "--checkpoint-act")) ckpt = true;
        else if (argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: bench_train [MODEL] [-t threads] [-b sequences] [-T tokens] [-r repeats] "
                            "[--train-embd] [--checkpoint-act]\n");
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
    rq_state *inf;
    if (rq_params_build(m, &p) != RQ_OK || rq_params_mirror(&p, &gr) != RQ_OK) return 1;
    p.p[rq_params_find(&p, m->tok_embd)].trainable = train_embd;
    if (rq_adamw_init(&o, &p) != RQ_OK) return 1;
    const int64_t n = B * T;
    if (rq_state_new(m, n, n, true, &inf) != RQ_OK || rq_state_set_segments(inf, T) != RQ_OK) return 1;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    rq_rng r;
    rq_rng_seed(&r, 1);
    for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)rq_rng_below(&r, (uint64_t)m->cfg.n_vocab);
    bench b = {.m = m, .p = &p, .gr = &gr, .o = &o, .inf = inf, .tok = tok, .B = B, .T = T, .reps = reps,
               .threads = threads, .train_embd = train_embd, .path = path};
    int rc = 0;
    if (ckpt) {
        /* checkpointed first: the peak RSS after it is its own */
        double with = run_config(&b, true), rss_with = (double)rq_peak_rss_bytes() / (1 << 20);
        double without = with > 0 ? run_config(&b, false) : 0, rss_without = (double)rq_peak_rss_bytes() / (1 << 20);
        if (with > 0 && without > 0)
            printf("activation checkpointing: step %.3f s vs %.3f s without (%.2fx), peak RSS %.0f MiB vs %.0f MiB\n",
                   with, without, with / without, rss_with, rss_without);
        else rc = 1;
    } else if (run_config(&b, false) <= 0) {
        rc = 1;
    }
    if (rc) fprintf(stderr, "bench_train: %s\n", rq_last_error());
    free(tok);
    rq_state_free(inf);
    rq_adamw_free(&o);
    rq_params_free(&gr);
    rq_params_free(&p);
    rq_model_free(m);
    return rc;
}

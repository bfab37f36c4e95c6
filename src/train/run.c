/* The training loop (train/run.h). */
#include "train/run.h"

#include "base/mpi.h"
#include "base/rng.h"
#include "base/timer.h"
#include "train/backward.h"
#include "train/checkpoint.h"
#include "train/dp.h"
#include "train/step.h"

#include <stdio.h>
#include <string.h>

/* copies the trainable entries of list into buf (to = true) or back (to = false) */
static void snapshot(rq_params *list, float *buf, bool to) {
    int64_t o = 0;
    for (int64_t i = 0; i < list->count; i++) {
        const rq_param *e = &list->p[i];
        if (!e->trainable) continue;
        if (to) memcpy(buf + o, e->data, (size_t)e->n * sizeof(float));
        else memcpy(e->data, buf + o, (size_t)e->n * sizeof(float));
        o += e->n;
    }
}

/* mean loss over the validation windows of whole batches (the last partial batch left out),
 * split by window over the ranks */
static rq_status validate(rq_train_ctx *c, rq_state *tst, const int32_t *val, int64_t n_val, int64_t n_seq,
                          double gamma, double *loss) {
    return rq_dp_loss(c, tst, val, n_val / n_seq * n_seq, gamma, loss);
}

rq_status rq_train_run(rq_model *m, rq_params *p, rq_qat *qat, const rq_model *teacher, const int32_t *train,
                       int64_t n_train, const int32_t *val, int64_t n_val, const rq_train_run_opts *o,
                       rq_train_run_result *res) {
    memset(res, 0, sizeof *res);
    if (n_train < 1 || o->eval_every < 1)
        return rq_errorf(RQ_EINVAL, "train: %lld training windows, eval_every %lld", (long long)n_train,
                         (long long)o->eval_every);
    rq_params *list = qat ? &qat->list : p, gr = {0};
    rq_adamw opt = {0};
    rq_dp_sum acc = {0};
    rq_train_ctx *c = NULL;
    rq_state *tst = NULL;
    int32_t *batch = NULL;
    rq_rng rng;
    rq_rng_seed(&rng, o->seed);
    rq_status s = rq_params_mirror(p, &gr);
    if (s == RQ_OK) s = rq_adamw_init(&opt, list);
    const rq_train_ctx_opts co = {.checkpoint_act = o->checkpoint_act};
    /* one window at a time (train/dp.h): the same per-window gradients on any rank count */
    if (s == RQ_OK) s = rq_train_ctx_new_ex(m, 1, o->T, &co, &c);
    if (s == RQ_OK) s = rq_dp_sum_init(&acc, p);
    if (s == RQ_OK && teacher) {
        s = rq_state_new(teacher, c->n, c->n, true, &tst);
        if (s == RQ_OK) s = rq_state_set_segments(tst, o->T);
    }
    if (s == RQ_OK && !(batch = rq_alloc(o->n_seq * o->T * (int64_t)sizeof(int32_t)))) s = RQ_ENOMEM;
    float *best = NULL; /* [n_trainable] the parameters at the lowest validation loss */
    bool do_val = n_val >= o->n_seq;
    if (s == RQ_OK && o->keep_best && do_val &&
        !(best = rq_alloc(rq_params_n_trainable(list) * (int64_t)sizeof(float))))
        s = RQ_ENOMEM;
    if (s == RQ_OK) {
        memcpy(opt.group, o->group, sizeof opt.group);
        if (o->resume && (s = rq_checkpoint_load(o->resume, m, list, &opt, &rng)) == RQ_OK && qat) rq_qat_apply(qat, p);
    }
    if (s == RQ_OK && o->progress && rq_mpi_rank() == 0 && rq_mpi_size() > 1)
        fprintf(stderr, "train: %d MPI ranks, each its share of the %lld windows of a step; gradient all-reduce "
                "%.1f MB per rank and step\n", rq_mpi_size(), (long long)o->n_seq, (double)rq_dp_sum_bytes(&acc) / 1e6);
    double vl = 0, t_start = rq_time_now();
    res->step0 = opt.t;
    if (s == RQ_OK && do_val && (s = validate(c, tst, val, n_val, o->n_seq, o->gamma, &vl)) == RQ_OK) {
        res->val_first = res->val_last = res->val_best = vl;
        res->best_step = opt.t;
        if (best) snapshot(list, best, true);
        if (o->on_validation && rq_mpi_rank() == 0) o->on_validation(o->user, opt.t, -1, vl);
    }
    while (s == RQ_OK && opt.t < o->steps) {
        for (int64_t b = 0; b < o->n_seq; b++)
            memcpy(batch + b * o->T, train + (int64_t)rq_rng_below(&rng, (uint64_t)n_train) * o->T,
                   (size_t)o->T * sizeof(int32_t));
        rq_train_step_opts so = {.gamma = o->gamma, .clip = o->clip,
                                 .lr_factor = rq_lr_factor(&o->schedule, opt.t), .qat = qat};
        double loss, gn;
        if ((s = rq_dp_grads(c, tst, p, &gr, &acc, batch, o->n_seq, o->gamma, &loss)) != RQ_OK) break;
        rq_train_apply(p, &gr, &opt, &so, &gn);
        res->tokens += o->n_seq * o->T;
        double el = rq_time_now() - t_start, tps = (double)res->tokens / el;
        if (o->progress && rq_mpi_rank() == 0)
            fprintf(stderr, "step %lld/%lld loss %.5f |g| %.3g lr×%.3f  %.1f tokens/s, ETA %.0f s\n", (long long)opt.t,
                    (long long)o->steps, loss, gn, so.lr_factor, tps,
                    (double)(o->steps - opt.t) * (double)(o->n_seq * o->T) / tps);
        if ((opt.t % o->eval_every == 0 || opt.t == o->steps) && do_val) {
            if ((s = validate(c, tst, val, n_val, o->n_seq, o->gamma, &vl)) != RQ_OK) break;
            res->val_last = vl;
            if (vl < res->val_best) {
                res->val_best = vl, res->best_step = opt.t;
                if (best) snapshot(list, best, true);
            }
            if (o->on_validation && rq_mpi_rank() == 0) o->on_validation(o->user, opt.t, loss, vl);
            /* every rank holds the same state: rank 0 writes it (a failure there ends the job) */
            if (o->checkpoint && rq_mpi_rank() == 0) s = rq_checkpoint_save(o->checkpoint, m, list, &opt, &rng);
        }
    }
    res->steps = opt.t;
    if (s == RQ_OK && best && res->best_step != opt.t) { /* end with the best parameters */
        snapshot(list, best, false);
        if (qat) rq_qat_apply(qat, p);
        if (o->progress && rq_mpi_rank() == 0)
            fprintf(stderr, "train: ending with the parameters of step %lld (validation loss %.5f; last %.5f)\n",
                    (long long)res->best_step, res->val_best, res->val_last);
    }
    res->seconds = rq_time_now() - t_start;
    rq_free(best);
    rq_free(batch);
    rq_state_free(tst);
    rq_train_ctx_free(c);
    rq_dp_sum_free(&acc);
    rq_adamw_free(&opt);
    rq_params_free(&gr);
    return s;
}

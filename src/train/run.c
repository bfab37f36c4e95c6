/* The training loop (train/run.h). */
#include "train/run.h"

#include "base/rng.h"
#include "base/timer.h"
#include "train/backward.h"
#include "train/checkpoint.h"
#include "train/step.h"

#include <stdio.h>
#include <string.h>

/* the teacher's logits of the context's batch (tst NULL: nothing) */
static rq_status teacher_logits(rq_state *tst, const rq_train_ctx *c, const int32_t *tok) {
    if (!tst) return RQ_OK;
    rq_state_reset(tst);
    return rq_model_forward_segments(tst, tok, c->seg, c->pos, c->n, RQ_LOGITS_ALL);
}

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

/* mean loss over the validation windows, n_seq at a time */
static rq_status validate(rq_train_ctx *c, rq_state *tst, const int32_t *val, int64_t n_val, double gamma,
                          double *loss) {
    double sum = 0;
    int64_t nb = n_val / c->n_seq;
    for (int64_t b = 0; b < nb; b++) {
        const int32_t *tok = val + b * c->n;
        double l;
        RQ_TRY(teacher_logits(tst, c, tok));
        RQ_TRY(rq_train_eval(c, tok, tst ? tst->logits : NULL, gamma, &l));
        sum += l;
    }
    *loss = nb ? sum / (double)nb : 0;
    return RQ_OK;
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
    rq_train_ctx *c = NULL;
    rq_state *tst = NULL;
    int32_t *batch = NULL;
    rq_rng rng;
    rq_rng_seed(&rng, o->seed);
    rq_status s = rq_params_mirror(p, &gr);
    if (s == RQ_OK) s = rq_adamw_init(&opt, list);
    const rq_train_ctx_opts co = {.checkpoint_act = o->checkpoint_act};
    if (s == RQ_OK) s = rq_train_ctx_new_ex(m, o->n_seq, o->T, &co, &c);
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
    double vl = 0, t_start = rq_time_now();
    res->step0 = opt.t;
    if (s == RQ_OK && do_val && (s = validate(c, tst, val, n_val, o->gamma, &vl)) == RQ_OK) {
        res->val_first = res->val_last = res->val_best = vl;
        res->best_step = opt.t;
        if (best) snapshot(list, best, true);
        if (o->on_validation) o->on_validation(o->user, opt.t, -1, vl);
    }
    while (s == RQ_OK && opt.t < o->steps) {
        for (int64_t b = 0; b < o->n_seq; b++)
            memcpy(batch + b * o->T, train + (int64_t)rq_rng_below(&rng, (uint64_t)n_train) * o->T,
                   (size_t)o->T * sizeof(int32_t));
        if ((s = teacher_logits(tst, c, batch)) != RQ_OK) break;
        rq_train_step_opts so = {.teacher = tst ? tst->logits : NULL, .gamma = o->gamma, .clip = o->clip,
                                 .lr_factor = rq_lr_factor(&o->schedule, opt.t), .qat = qat};
        double loss, gn;
        if ((s = rq_train_step(c, p, &gr, &opt, batch, &so, &loss, &gn)) != RQ_OK) break;
        res->tokens += c->n;
        double el = rq_time_now() - t_start, tps = (double)res->tokens / el;
        if (o->progress)
            fprintf(stderr, "step %lld/%lld loss %.5f |g| %.3g lr×%.3f  %.1f tokens/s, ETA %.0f s\n", (long long)opt.t,
                    (long long)o->steps, loss, gn, so.lr_factor, tps, (double)(o->steps - opt.t) * (double)c->n / tps);
        if ((opt.t % o->eval_every == 0 || opt.t == o->steps) && do_val) {
            if ((s = validate(c, tst, val, n_val, o->gamma, &vl)) != RQ_OK) break;
            res->val_last = vl;
            if (vl < res->val_best) {
                res->val_best = vl, res->best_step = opt.t;
                if (best) snapshot(list, best, true);
            }
            if (o->on_validation) o->on_validation(o->user, opt.t, loss, vl);
            if (o->checkpoint) s = rq_checkpoint_save(o->checkpoint, m, list, &opt, &rng);
        }
    }
    res->steps = opt.t;
    if (s == RQ_OK && best && res->best_step != opt.t) { /* end with the best parameters */
        snapshot(list, best, false);
        if (qat) rq_qat_apply(qat, p);
        if (o->progress)
            fprintf(stderr, "train: ending with the parameters of step %lld (validation loss %.5f; last %.5f)\n",
                    (long long)res->best_step, res->val_best, res->val_last);
    }
    res->seconds = rq_time_now() - t_start;
    rq_free(best);
    rq_free(batch);
    rq_state_free(tst);
    rq_train_ctx_free(c);
    rq_adamw_free(&opt);
    rq_params_free(&gr);
    return s;
}

/* The block-wise phase of QAT (train/blockwise.h). */
#include "train/blockwise.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/timer.h"
#include "train/backward.h"
#include "train/dp.h"

#include <stdio.h>
#include <string.h>

/* rows [n_win·T, n_embd] ← layer l of model (state st, segments of T) applied to them, n_seq
 * windows at a time; under MPI each rank runs its share of these batches (the batches of one
 * process, so the rows do not depend on the rank count) and every rank gets every row */
static rq_status layer_all(rq_state *st, int64_t l, const int64_t *seg, const int64_t *pos, int64_t n_seq, int64_t T,
                           float *rows, int64_t n_win) {
    int64_t e = st->model->cfg.n_embd, nbat = (n_win + n_seq - 1) / n_seq, b0, b1;
    rq_mpi_share(nbat, &b0, &b1);
    int64_t w_begin = b0 * n_seq < n_win ? b0 * n_seq : n_win, w_end = b1 * n_seq < n_win ? b1 * n_seq : n_win;
    for (int64_t w0 = w_begin; w0 < w_end; w0 += n_seq) {
        int64_t nw = n_win - w0 < n_seq ? n_win - w0 : n_seq, n = nw * T;
        float *x = rows + w0 * T * e;
        memcpy(st->x, x, (size_t)(n * e) * sizeof(float));
        rq_state_reset(st);
        RQ_TRY(rq_model_forward_layers_segments(st, l, l + 1, seg, pos, n));
        memcpy(x, st->x, (size_t)(n * e) * sizeof(float));
    }
    if (rq_mpi_size() > 1) RQ_TRY(rq_mpi_gather_range(rows, T * e * (int64_t)sizeof(float), w_begin, w_end));
    return RQ_OK;
}

/* mean squared error of y against t [n·e], and dy = ∂/∂y (if not NULL) */
static double mse(const float *y, const float *t, int64_t n, float *dy) {
    double s = 0, inv = 1.0 / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - t[i];
        s += d * d;
        if (dy) dy[i] = (float)(2.0 * d * inv);
    }
    return s * inv;
}

/* the block's MSE over the training windows of whole batches (the student's block on xs
 * against xt), one window at a time (c: a context of one window), split by window over the
 * ranks and averaged in window order */
static rq_status block_mse(rq_train_ctx *c, int64_t l, const float *xs, const float *xt, int64_t n_win, int64_t n_seq,
                           float *y, double *out) {
    int64_t e = c->model->cfg.n_embd, nw = n_win / n_seq * n_seq, b0, b1;
    double *v = rq_calloc((nw > 0 ? nw : 1) * (int64_t)sizeof(double));
    if (!v) return RQ_ENOMEM;
    rq_mpi_share(nw, &b0, &b1);
    rq_status s = RQ_OK;
    for (int64_t w = b0; w < b1 && s == RQ_OK; w++)
        if ((s = rq_train_block_forward(c, l, xs + w * c->T * e, y)) == RQ_OK) v[w] = mse(y, xt + w * c->T * e, c->T * e, NULL);
    if (s == RQ_OK) s = rq_dp_mean(v, nw, out);
    rq_free(v);
    return s;
}

rq_status rq_blockwise_run(rq_model *student, rq_params *p, rq_qat *qat, const rq_model *teacher,
                           const int32_t *train, int64_t n_train, const rq_blockwise_opts *o,
                           rq_blockwise_result *res) {
    memset(res, 0, sizeof *res);
    const rq_model_config *c = &student->cfg;
    if (teacher->cfg.n_embd != c->n_embd || teacher->cfg.n_layer != c->n_layer || teacher->cfg.n_vocab != c->n_vocab)
        return rq_errorf(RQ_EINVAL, "block-wise QAT: the teacher is another model");
    if (n_train < o->n_seq || o->steps < 1 || o->n_seq < 1 || o->T < 1)
        return rq_errorf(RQ_EINVAL, "block-wise QAT: %lld windows for batches of %lld, %lld steps", (long long)n_train,
                         (long long)o->n_seq, (long long)o->steps);
    for (int64_t i = 0; i < n_train * o->T; i++)
        if (train[i] < 0 || train[i] >= c->n_vocab)
            return rq_errorf(RQ_EINVAL, "block-wise QAT: token id %d out of range", train[i]);
    int64_t e = c->n_embd, T = o->T, rows = n_train * T, nb = o->n_seq * T;
    float *xs = NULL, *xt = NULL, *y = NULL, *dy = NULL;
    rq_train_ctx *tc = NULL;
    rq_state *tst = NULL, *sst = NULL;
    rq_params g = {0};
    rq_dp_sum acc = {0};
    int32_t *pick = NULL;
    double *wl = NULL; /* [n_seq] the MSE of each window of a step */
    int64_t *seg = NULL; /* [2, nb] segment and position of the rows of n_seq windows */
    rq_rng rng;
    rq_rng_seed(&rng, o->seed ^ 0x626c6f636bULL);
    int64_t rb;
    rq_status s = rq_mul_ok(rows, e * (int64_t)sizeof(float), &rb) ? RQ_OK : RQ_ENOMEM;
    if (s == RQ_OK && (!(xs = rq_alloc(rb)) || !(xt = rq_alloc(rb)) ||
                       !(y = rq_alloc(T * e * (int64_t)sizeof(float))) ||
                       !(dy = rq_alloc(T * e * (int64_t)sizeof(float))) ||
                       !(pick = rq_alloc(o->n_seq * (int64_t)sizeof(int32_t))) ||
                       !(wl = rq_alloc(o->n_seq * (int64_t)sizeof(double))) ||
                       !(seg = rq_alloc(2 * nb * (int64_t)sizeof(int64_t)))))
        s = RQ_ENOMEM;
    for (int64_t i = 0; s == RQ_OK && i < nb; i++) seg[i] = i / T, seg[nb + i] = i % T;
    rq_train_ctx_opts co = {.block = true};
    /* the block's training runs one window at a time (train/dp.h): the same gradients on
     * any rank count */
    if (s == RQ_OK) s = rq_train_ctx_new_ex(student, 1, T, &co, &tc);
    if (s == RQ_OK) s = rq_state_new(teacher, nb, nb, false, &tst);
    if (s == RQ_OK) s = rq_state_set_segments(tst, T);
    if (s == RQ_OK) s = rq_state_new(student, nb, nb, false, &sst);
    if (s == RQ_OK) s = rq_state_set_segments(sst, T);
    if (s == RQ_OK) s = rq_params_mirror(p, &g);
    if (s == RQ_OK) s = rq_dp_sum_init(&acc, p);
    if (s == RQ_OK) {
        rq_model_embed(student, train, rows, xs);
        rq_model_embed(teacher, train, rows, xt);
    }
    double t0 = rq_time_now(), sum_first = 0, sum_last = 0;
    for (int64_t l = 0; l < c->n_layer && s == RQ_OK; l++) {
        double tl = rq_time_now();
        /* the float block's output on the float inputs: the target, and the next teacher input */
        if ((s = layer_all(tst, l, seg, seg + nb, o->n_seq, T, xt, n_train)) != RQ_OK) break;
        rq_qat_only_block(qat, l);
        double m0, m1;
        if ((s = block_mse(tc, l, xs, xt, n_train, o->n_seq, y, &m0)) != RQ_OK) break;
        rq_adamw opt = {0};
        if ((s = rq_adamw_init(&opt, &qat->list)) != RQ_OK) break;
        memcpy(opt.group, o->group, sizeof opt.group);
        /* the gradient entries of this block (the backward adds to them) */
        char pre[32];
        snprintf(pre, sizeof pre, "blk.%lld.", (long long)l);
        if ((s = rq_dp_sum_select(&acc, p, pre)) != RQ_OK) {
            rq_adamw_free(&opt);
            break;
        }
        double last = 0;
        for (int64_t step = 0; step < o->steps && s == RQ_OK; step++) {
            /* every rank draws the whole batch (the same RNG) and runs its share of it */
            for (int64_t b = 0; b < o->n_seq; b++) pick[b] = (int32_t)rq_rng_below(&rng, (uint64_t)n_train);
            int64_t b0, b1;
            rq_mpi_share(o->n_seq, &b0, &b1);
            rq_dp_sum_zero(&acc);
            for (int64_t b = b0; b < b1 && s == RQ_OK; b++) {
                const float *xw = xs + pick[b] * T * e, *tw = xt + pick[b] * T * e;
                if ((s = rq_train_block_forward(tc, l, xw, y)) != RQ_OK) break;
                wl[b] = mse(y, tw, T * e, dy);
                rq_dp_sum_clear(&acc, &g);
                rq_train_block_backward(tc, l, dy, p, &g, NULL);
                rq_dp_sum_add(&acc, &g);
            }
            if (s == RQ_OK) s = rq_dp_sum_finish(&acc, &g, o->n_seq);
            if (s == RQ_OK) s = rq_dp_mean(wl, o->n_seq, &last);
            if (s != RQ_OK) break;
            rq_qat_grads(qat, p, &g);
            rq_grad_clip(&qat->list, &qat->grads, o->clip);
            rq_adamw_step(&opt, &qat->list, &qat->grads, rq_lr_factor(&o->schedule, step));
            rq_qat_apply(qat, p);
            res->tokens += nb;
        }
        rq_adamw_free(&opt);
        if (s != RQ_OK) break;
        if ((s = block_mse(tc, l, xs, xt, n_train, o->n_seq, y, &m1)) != RQ_OK) break;
        sum_first += m0, sum_last += m1;
        /* the trained block's output: the next block's input */
        if ((s = layer_all(sst, l, seg, seg + nb, o->n_seq, T, xs, n_train)) != RQ_OK) break;
        if (o->progress && rq_mpi_rank() == 0) {
            double el = rq_time_now() - t0;
            fprintf(stderr, "block %lld/%lld: MSE %.5g -> %.5g (last batch %.5g), %.1f s, ETA %.0f s\n",
                    (long long)l + 1, (long long)c->n_layer, m0, m1, last, rq_time_now() - tl,
                    el / (double)(l + 1) * (double)(c->n_layer - l - 1));
        }
    }
    rq_qat_only_block(qat, -1);
    res->seconds = rq_time_now() - t0;
    res->mse_first = sum_first / (double)c->n_layer, res->mse_last = sum_last / (double)c->n_layer;
    rq_params_free(&g);
    rq_dp_sum_free(&acc);
    rq_free(wl);
    rq_free(seg);
    rq_state_free(sst);
    rq_state_free(tst);
    rq_train_ctx_free(tc);
    rq_free(pick);
    rq_free(dy);
    rq_free(y);
    rq_free(xt);
    rq_free(xs);
    return s;
}

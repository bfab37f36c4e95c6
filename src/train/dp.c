/* Data-parallel training steps (train/dp.h). */
#include "train/dp.h"

#include "base/exact_sum.h"
#include "base/mpi.h"
#include "base/pool.h"

#include <string.h>

rq_status rq_dp_sum_init(rq_dp_sum *s, const rq_params *p) {
    memset(s, 0, sizeof *s);
    int64_t n = rq_params_n_trainable(p), bytes;
    if (!rq_mul_ok(n > 0 ? n : 1, 2 * (int64_t)sizeof(double), &bytes)) return RQ_ENOMEM;
    s->cap = n, s->max_ent = p->count;
    s->pair = rq_alloc(bytes);
    s->ent = rq_alloc((p->count > 0 ? p->count : 1) * (int64_t)sizeof(int64_t));
    if (!s->pair || !s->ent) {
        rq_dp_sum_free(s);
        return RQ_ENOMEM;
    }
    return rq_dp_sum_select(s, p, NULL);
}

rq_status rq_dp_sum_select(rq_dp_sum *s, const rq_params *p, const char *prefix) {
    size_t k = prefix ? strlen(prefix) : 0;
    int64_t n = 0, ne = 0;
    for (int64_t i = 0; i < p->count; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable || (prefix && strncmp(e->name, prefix, k))) continue;
        if (ne >= s->max_ent || e->n > s->cap - n)
            return rq_errorf(RQ_EINVAL, "data-parallel sum: the selection outgrows the trainable entries");
        s->ent[ne++] = i, n += e->n;
    }
    s->n = n, s->n_ent = ne;
    return RQ_OK;
}

void rq_dp_sum_free(rq_dp_sum *s) {
    rq_free(s->pair);
    rq_free(s->ent);
    memset(s, 0, sizeof *s);
}

void rq_dp_sum_zero(rq_dp_sum *s) { memset(s->pair, 0, (size_t)s->n * 2 * sizeof(double)); }

void rq_dp_sum_clear(const rq_dp_sum *s, rq_params *g) {
    for (int64_t j = 0; j < s->n_ent; j++) {
        rq_param *e = &g->p[s->ent[j]];
        memset(e->data, 0, (size_t)e->n * sizeof(float));
    }
}

typedef struct {
    double *pair;
    const float *x;
} add_job;

/* elementwise, so the thread split does not matter */
static void add_range(void *ctx, int64_t b, int64_t e, int thread) {
    (void)thread;
    const add_job *j = ctx;
    for (int64_t i = b; i < e; i++) rq_exact_add(&j->pair[2 * i], &j->pair[2 * i + 1], (double)j->x[i]);
}

void rq_dp_sum_add(rq_dp_sum *s, const rq_params *g) {
    int64_t o = 0;
    for (int64_t j = 0; j < s->n_ent; j++) {
        const rq_param *e = &g->p[s->ent[j]];
        add_job jb = {.pair = s->pair + 2 * o, .x = e->data};
        rq_parallel_for(e->n, 1 << 14, add_range, &jb);
        o += e->n;
    }
}

rq_status rq_dp_sum_finish(rq_dp_sum *s, rq_params *g, int64_t count) {
    if (rq_mpi_size() > 1) RQ_TRY(rq_mpi_sum_exact(s->pair, s->n));
    int64_t o = 0;
    double inv = 1.0 / (double)count;
    for (int64_t j = 0; j < s->n_ent; j++) {
        rq_param *e = &g->p[s->ent[j]];
        const double *pr = s->pair + 2 * o;
        /* one rounding of the exact sum: the same value whatever pairs represent it */
        for (int64_t i = 0; i < e->n; i++) e->data[i] = (float)(rq_exact_value(pr[2 * i], pr[2 * i + 1]) * inv);
        o += e->n;
    }
    return RQ_OK;
}

int64_t rq_dp_sum_bytes(const rq_dp_sum *s) { return s->n * 2 * (int64_t)sizeof(double); }

rq_status rq_dp_mean(double *v, int64_t n, double *mean) {
    if (rq_mpi_size() > 1) RQ_TRY(rq_mpi_gather_shares(v, n, (int64_t)sizeof(double)));
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    *mean = n ? sum / (double)n : 0;
    return RQ_OK;
}

/* the teacher's logits of one window (tst NULL: nothing) */
static rq_status teacher_logits(rq_state *tst, const rq_train_ctx *c, const int32_t *tok) {
    if (!tst) return RQ_OK;
    rq_state_reset(tst);
    return rq_model_forward_segments(tst, tok, c->seg, c->pos, c->n, RQ_LOGITS_ALL);
}

/* the windows [n_win, T]: this rank's share, forward and loss each (and the backward added
 * into s when g is not NULL); a failing rank stops at once (the CLI then ends the job) */
static rq_status windows(rq_train_ctx *c, rq_state *tst, const rq_params *p, rq_params *g, rq_dp_sum *s,
                         const int32_t *tokens, int64_t n_win, double gamma, double *loss) {
    double *ls = rq_calloc((n_win > 0 ? n_win : 1) * (int64_t)sizeof(double));
    if (!ls) return RQ_ENOMEM;
    int64_t b0, b1;
    rq_mpi_share(n_win, &b0, &b1);
    rq_status st = RQ_OK;
    if (s) rq_dp_sum_zero(s);
    for (int64_t b = b0; b < b1 && st == RQ_OK; b++) {
        const int32_t *tok = tokens + b * c->T;
        if ((st = teacher_logits(tst, c, tok)) != RQ_OK || (st = rq_train_forward(c, tok)) != RQ_OK) break;
        ls[b] = rq_train_loss(c, tok, tst ? tst->logits : NULL, gamma);
        if (!s) continue;
        rq_dp_sum_clear(s, g);
        rq_train_backward(c, tok, c->st->logits, p, g);
        rq_dp_sum_add(s, g);
    }
    if (st == RQ_OK && s) st = rq_dp_sum_finish(s, g, n_win);
    if (st == RQ_OK) st = rq_dp_mean(ls, n_win, loss);
    rq_free(ls);
    return st;
}

rq_status rq_dp_grads(rq_train_ctx *c, rq_state *tst, const rq_params *p, rq_params *g, rq_dp_sum *s,
                      const int32_t *tokens, int64_t n_seq, double gamma, double *loss) {
    if (c->n_seq != 1) return rq_errorf(RQ_EINVAL, "data-parallel step: a context of %lld windows, expected 1",
                                        (long long)c->n_seq);
    return windows(c, tst, p, g, s, tokens, n_seq, gamma, loss);
}

rq_status rq_dp_loss(rq_train_ctx *c, rq_state *tst, const int32_t *tokens, int64_t n_win, double gamma,
                     double *loss) {
    if (c->n_seq != 1) return rq_errorf(RQ_EINVAL, "data-parallel loss: a context of %lld windows, expected 1",
                                        (long long)c->n_seq);
    return windows(c, tst, NULL, NULL, NULL, tokens, n_win, gamma, loss);
}

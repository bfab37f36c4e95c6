/* AdamW, gradient clipping and schedules (train/adamw.h). */
#include "train/adamw.h"

#include "base/pool.h"

#include <math.h>
#include <string.h>

/* Elements per work item (fixed: results do not depend on the thread count). */
#define ELEMS_PER_ITEM 16384

float rq_lr_factor(const rq_lr_schedule *s, int64_t step) {
    if (step < s->warmup) return (float)(step + 1) / (float)s->warmup;
    int64_t K = s->total - s->warmup, k = step - s->warmup;
    if (s->shape == RQ_LR_CONSTANT || K <= 0) return 1.0f;
    if (k > K) k = K;
    double x = (double)k / (double)K, mn = s->min_ratio;
    if (s->shape == RQ_LR_COSINE) return (float)(mn + (1 - mn) * 0.5 * (1 + cos(M_PI * x)));
    return (float)(1 - (1 - mn) * x);
}

rq_status rq_lr_shape_parse(const char *name, rq_lr_shape *out) {
    if (!strcmp(name, "constant")) *out = RQ_LR_CONSTANT;
    else if (!strcmp(name, "cosine")) *out = RQ_LR_COSINE;
    else if (!strcmp(name, "linear")) *out = RQ_LR_LINEAR;
    else return rq_errorf(RQ_EINVAL, "unknown learning-rate schedule '%s' (constant, cosine, linear)", name);
    return RQ_OK;
}

rq_status rq_adamw_init(rq_adamw *o, const rq_params *p) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9f, o->beta2 = 0.999f, o->eps = 1e-8f;
    for (int i = 0; i < RQ_PGROUP_COUNT; i++) o->group[i] = (rq_adamw_group){.lr = 1e-5f, .weight_decay = 0};
    rq_status s = rq_params_mirror(p, &o->m);
    if (s == RQ_OK) s = rq_params_mirror(p, &o->v);
    if (s != RQ_OK) rq_adamw_free(o);
    return s;
}

void rq_adamw_free(rq_adamw *o) {
    rq_params_free(&o->m);
    rq_params_free(&o->v);
}

typedef struct {
    const rq_adamw *o;
    float *w;
    const float *g;
    float *m, *v;
    float lr, wd, bc1, bc2;
} step_job;

static void step_items(void *ctx, int64_t b, int64_t e, int thread) {
    const step_job *j = ctx;
    float b1 = j->o->beta1, b2 = j->o->beta2, eps = j->o->eps;
    for (int64_t i = b; i < e; i++) {
        float g = j->g[i];
        float m = j->m[i] = b1 * j->m[i] + (1.0f - b1) * g;
        float v = j->v[i] = b2 * j->v[i] + (1.0f - b2) * g * g;
        float mh = m / j->bc1, vh = v / j->bc2;
        j->w[i] -= j->lr * (mh / (sqrtf(vh) + eps) + j->wd * j->w[i]);
    }
}

void rq_adamw_step(rq_adamw *o, rq_params *p, const rq_params *g, float lr_factor) {
    RQ_ASSERT(o->m.count == p->count && g->count == p->count);
    o->t++;
    float bc1 = (float)(1.0 - pow(o->beta1, (double)o->t)), bc2 = (float)(1.0 - pow(o->beta2, (double)o->t));
    for (int64_t i = 0; i < p->count; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable) continue;
        const rq_adamw_group *gr = &o->group[e->group];
        step_job j = {.o = o, .w = e->data, .g = g->p[i].data, .m = o->m.p[i].data, .v = o->v.p[i].data,
                      .lr = gr->lr * lr_factor, .wd = gr->weight_decay, .bc1 = bc1, .bc2 = bc2};
        rq_parallel_for(e->n, ELEMS_PER_ITEM, step_items, &j);
    }
}

double rq_grad_norm(const rq_params *p, const rq_params *g) {
    double s = 0;
    for (int64_t i = 0; i < p->count; i++) {
        if (!p->p[i].trainable) continue;
        const float *x = g->p[i].data;
        for (int64_t k = 0; k < p->p[i].n; k++) s += (double)x[k] * x[k];
    }
    return sqrt(s);
}

double rq_grad_clip(const rq_params *p, rq_params *g, double max_norm) {
    double norm = rq_grad_norm(p, g);
    if (max_norm > 0 && norm > max_norm) {
        float sc = (float)(max_norm / norm);
        for (int64_t i = 0; i < p->count; i++) {
            if (!p->p[i].trainable) continue;
            float *x = g->p[i].data;
            for (int64_t k = 0; k < p->p[i].n; k++) x[k] *= sc;
        }
    }
    return norm;
}

/* AdamW (Loshchilov & Hutter) over the flat parameter list, with per-group learning rate and
 * weight decay, gradient clipping by the global norm, and learning-rate schedules.
 *
 * Step t (1-based) for each trainable element w with gradient g, group lr and decay wd,
 * schedule factor f(t):
 *   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
 *   m̂ = m / (1 − β1^t),      v̂ = v / (1 − β2^t)
 *   w ← w − f·lr·(m̂ / (√v̂ + ε) + wd·w)        (decoupled weight decay)
 * Elementwise, so the result does not depend on the thread count. */
#ifndef RQ_TRAIN_ADAMW_H
#define RQ_TRAIN_ADAMW_H

#include "train/params.h"

/* Learning-rate schedule: factor f(step) in [0, 1] that multiplies every group's lr.
 * step counts from 0 (the first update). Linear warm-up over the first `warmup` steps
 * (f = (step + 1)/warmup), then the shape over the remaining steps up to `total`:
 *   constant: 1;  cosine: min + (1 − min)·½(1 + cos(π·k/K));  linear: 1 − (1 − min)·k/K
 * with k = step − warmup, K = total − warmup, min = min_ratio; after `total`, f stays at
 * its last value. */
typedef enum rq_lr_shape { RQ_LR_CONSTANT = 0, RQ_LR_COSINE = 1, RQ_LR_LINEAR = 2 } rq_lr_shape;
typedef struct rq_lr_schedule {
    rq_lr_shape shape;
    int64_t warmup, total;
    float min_ratio;
} rq_lr_schedule;
float rq_lr_factor(const rq_lr_schedule *s, int64_t step);
/* "constant", "cosine", "linear" → shape (RQ_EINVAL otherwise). */
rq_status rq_lr_shape_parse(const char *name, rq_lr_shape *out);

typedef struct rq_adamw_group {
    float lr, weight_decay;
} rq_adamw_group;

typedef struct rq_adamw {
    float beta1, beta2, eps;
    rq_adamw_group group[RQ_PGROUP_COUNT];
    rq_params m, v; /* first and second moments, mirrors of the parameter list */
    int64_t t;      /* updates taken */
} rq_adamw;

/* Moments zeroed for the list p; β1 0.9, β2 0.999, ε 1e-8, every group lr 1e-5 and decay 0
 * (set o->group[...] afterwards). Free with rq_adamw_free. */
rq_status rq_adamw_init(rq_adamw *o, const rq_params *p);
void rq_adamw_free(rq_adamw *o);
/* One update of the trainable entries of p with gradients g (a mirror of p), learning
 * rates times `lr_factor`. */
void rq_adamw_step(rq_adamw *o, rq_params *p, const rq_params *g, float lr_factor);

/* Global L2 norm of the trainable entries' gradients (accumulated in double, in a fixed
 * order). */
double rq_grad_norm(const rq_params *p, const rq_params *g);
/* Scale the gradients to global norm max_norm when their norm exceeds it (max_norm <= 0:
 * no clipping); returns the norm before clipping. */
double rq_grad_clip(const rq_params *p, rq_params *g, double max_norm);

#endif

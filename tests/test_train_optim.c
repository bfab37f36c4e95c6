/* AdamW (src/train/adamw.h) against the update written out in float64, per-group learning
 * rates and decay, frozen entries, gradient clipping by the global norm, and the schedules'
 * values at their defining points. */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "train/adamw.h"
#include "train/params.h"

#include <math.h>
#include <string.h>

/* float32 AdamW vs the float64 formula over 5 steps: observed 5.2e-7 — the float32 weights'
 * own rounding (half an ulp is 2.4e-7 at |w| in [2, 4)) over 5 updates. */
#define ADAM_ABS_TOL 2e-6
/* schedule factors computed in double and returned as float */
#define LR_TOL 1e-6

enum { NA = 37, NB = 20011, NC = 5 }; /* NB spans two work items of the update */

int main(void) {
    rq_rng rng;
    rq_rng_seed(&rng, 5);
    rq_threads_set(2);
    static float a[NA], b[NB], c[NC];
    for (int i = 0; i < NA; i++) a[i] = (float)rq_rng_normal(&rng);
    for (int i = 0; i < NB; i++) b[i] = (float)rq_rng_normal(&rng);
    for (int i = 0; i < NC; i++) c[i] = (float)rq_rng_normal(&rng);
    rq_params p = {0}, g;
    RQ_ASSERT(rq_params_add(&p, "a", a, NA, 1, RQ_PGROUP_NORM, true) == RQ_OK);
    RQ_ASSERT(rq_params_add(&p, "b", b, 7, NB / 7, RQ_PGROUP_LINEAR, true) == RQ_OK);
    RQ_ASSERT(rq_params_add(&p, "c", c, NC, 1, RQ_PGROUP_QUANT, false) == RQ_OK); /* frozen */
    RQ_CHECK(p.n_total == NA + NB / 7 * 7 + NC && rq_params_n_trainable(&p) == NA + NB / 7 * 7);
    RQ_CHECK(rq_params_find_name(&p, "b") == 1 && rq_params_find(&p, c) == 2);
    RQ_ASSERT(rq_params_mirror(&p, &g) == RQ_OK);
    RQ_CHECK(g.p[1].data == g.buf + NA && g.p[2].offset == NA + NB / 7 * 7);
    rq_adamw o;
    RQ_ASSERT(rq_adamw_init(&o, &p) == RQ_OK);
    o.group[RQ_PGROUP_NORM] = (rq_adamw_group){.lr = 1e-2f, .weight_decay = 0.0f};
    o.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = 3e-3f, .weight_decay = 0.1f};
    /* float64 reference of the trainable elements */
    int64_t nt = NA + NB / 7 * 7;
    double *w = malloc(sizeof(double) * (size_t)nt), *m = calloc((size_t)nt, sizeof(double));
    double *v = calloc((size_t)nt, sizeof(double));
    for (int64_t i = 0; i < nt; i++) w[i] = i < NA ? a[i] : b[i - NA];
    float c0[NC];
    memcpy(c0, c, sizeof c0);
    for (int t = 1; t <= 5; t++) {
        for (int64_t i = 0; i < g.n_total; i++) g.buf[i] = (float)rq_rng_normal(&rng);
        float f = 0.5f + 0.1f * (float)t; /* a schedule factor */
        rq_adamw_step(&o, &p, &g, f);
        for (int64_t i = 0; i < nt; i++) {
            double gi = g.buf[i], lr = (i < NA ? 1e-2 : 3e-3) * f, wd = i < NA ? 0 : 0.1;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            w[i] -= lr * (mh / (sqrt(vh) + 1e-8) + wd * w[i]);
        }
    }
    double err = 0;
    for (int64_t i = 0; i < nt; i++) err = fmax(err, fabs((i < NA ? a[i] : b[i - NA]) - w[i]));
    printf("AdamW 5 steps, 2 groups: max |w − w64| = %.2e (tol %.0e)\n", err, ADAM_ABS_TOL);
    RQ_CHECK(err <= ADAM_ABS_TOL);
    RQ_CHECK(memcmp(c, c0, sizeof c0) == 0); /* frozen entry untouched */
    RQ_CHECK(o.t == 5);

    /* clipping: the norm before, and after clipping exactly max_norm (to float rounding) */
    for (int64_t i = 0; i < g.n_total; i++) g.buf[i] = (float)rq_rng_normal(&rng);
    double ref = 0;
    for (int64_t i = 0; i < nt; i++) ref += (double)g.buf[i] * g.buf[i]; /* trainable only */
    ref = sqrt(ref);
    double n0 = rq_grad_clip(&p, &g, 10.0);
    RQ_CHECK_NEAR(n0, ref, 1e-9 * ref);
    RQ_CHECK_NEAR(rq_grad_norm(&p, &g), 10.0, 1e-5);
    RQ_CHECK_NEAR(rq_grad_clip(&p, &g, 20.0), 10.0, 1e-5); /* under the limit: unchanged */
    RQ_CHECK_NEAR(rq_grad_norm(&p, &g), 10.0, 1e-5);

    /* schedules */
    rq_lr_schedule s = {.shape = RQ_LR_COSINE, .warmup = 10, .total = 110, .min_ratio = 0.1f};
    RQ_CHECK_NEAR(rq_lr_factor(&s, 0), 0.1, LR_TOL);   /* warm-up (step + 1)/warmup */
    RQ_CHECK_NEAR(rq_lr_factor(&s, 9), 1.0, LR_TOL);
    RQ_CHECK_NEAR(rq_lr_factor(&s, 10), 1.0, LR_TOL);  /* cosine start */
    RQ_CHECK_NEAR(rq_lr_factor(&s, 60), 0.55, LR_TOL); /* midpoint: (1 + min)/2 */
    RQ_CHECK_NEAR(rq_lr_factor(&s, 110), 0.1, LR_TOL); /* end: min */
    RQ_CHECK_NEAR(rq_lr_factor(&s, 500), 0.1, LR_TOL); /* stays */
    s.shape = RQ_LR_LINEAR;
    RQ_CHECK_NEAR(rq_lr_factor(&s, 35), 1 - 0.9 * 0.25, LR_TOL);
    s.shape = RQ_LR_CONSTANT, s.warmup = 0;
    RQ_CHECK_NEAR(rq_lr_factor(&s, 0), 1.0, LR_TOL);
    RQ_CHECK_NEAR(rq_lr_factor(&s, 1000), 1.0, LR_TOL);
    rq_lr_shape sh;
    RQ_CHECK(rq_lr_shape_parse("cosine", &sh) == RQ_OK && sh == RQ_LR_COSINE);
    RQ_CHECK(rq_lr_shape_parse("exp", &sh) == RQ_EINVAL);

    free(w), free(m), free(v);
    rq_adamw_free(&o);
    rq_params_free(&g);
    rq_params_free(&p);
    return rq_test_finish();
}

#include "quant/quantizer.h"

#include "base/pool.h"

#include <math.h>

float rq_quant_round_fp16(float x) {
    if (!isfinite(x) || x == 0.0f) return x;
    /* fp16 has 11 significant bits: a normal value in [2^k, 2^(k+1)) is a multiple of
     * 2^(k-10); below 2^-14 (subnormals) everything is a multiple of 2^-24. Scaling by a
     * power of two is exact, so rint (ties to even) does the IEEE rounding. */
    int e;
    frexpf(x, &e); /* |x| = m * 2^e, m in [0.5, 1): k = e - 1 */
    int qexp = e - 11;
    if (qexp < -24) qexp = -24;
    float r = ldexpf(rintf(ldexpf(x, -qexp)), qexp);
    if (fabsf(r) > 65504.0f) return copysignf(INFINITY, x);
    return r;
}

typedef struct {
    const rq_group_quantizer *q;
    const float *w, *imp;
    int64_t in, group;
    uint8_t *codes;
    float *params, *deq;
} rtn_ctx;

static void rtn_rows(void *vctx, int64_t r0, int64_t r1, int thread) {
    const rtn_ctx *c = vctx;
    const rq_group_quantizer *q = c->q;
    int64_t g = c->group, ng = c->in / g, span = rq_quantizer_span(q), G = g * span;
    double *wg = rq_xalloc(2 * G * (int64_t)sizeof(double)); /* [G] values, [G] importances */
    double *ig = wg + G;
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t k = 0; k < ng; k += span) {
            const float *src = c->w + r * c->in + k * g;
            for (int64_t j = 0; j < G; j++) wg[j] = src[j];
            if (c->imp)
                for (int64_t j = 0; j < G; j++) ig[j] = c->imp[k * g + j];
            float *p = c->params + (r * ng + k) * q->n_param;
            q->fit(q, wg, c->imp ? ig : NULL, G, p);
            for (int64_t j = 0; j < G; j++) {
                double wq;
                int code = q->quant(q, p + (j / g) * q->n_param, wg[j], &wq);
                c->codes[r * c->in + k * g + j] = (uint8_t)code;
                if (c->deq) c->deq[r * c->in + k * g + j] = (float)wq;
            }
        }
    }
    rq_free(wg);
}

rq_status rq_quant_rtn(const rq_group_quantizer *q, const float *w, int64_t out, int64_t in,
                       int64_t group, const float *imp, uint8_t *codes, float *params,
                       float *deq) {
    RQ_ASSERT(q && q->fit && q->quant && q->n_param <= RQ_QUANT_MAX_PARAM && q->max_code <= 255);
    if (out <= 0 || in <= 0)
        return rq_errorf(RQ_EINVAL, "rtn: bad shape [%lld, %lld]", (long long)out, (long long)in);
    if (group <= 0 || in % (group * rq_quantizer_span(q)) != 0)
        return rq_errorf(RQ_EINVAL, "rtn: group size %lld (x %lld per fit) does not divide %lld input columns",
                         (long long)group, (long long)rq_quantizer_span(q), (long long)in);
    rtn_ctx c = {q, w, imp, in, group, codes, params, deq};
    rq_parallel_for(out, 1, rtn_rows, &c);
    return RQ_OK;
}

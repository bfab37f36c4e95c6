/* Fake quantizers and their straight-through backward (train/fakequant.h). */
#include "train/fakequant.h"

#include "base/status.h"
#include "format/kv.h"

#include <math.h>

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* range of group k: lo, hi, the step s and the group's min and max */
typedef struct {
    float mn, mx, lo, hi, s, maxq;
} ugroup;

static ugroup ugroup_of(int bits, const float *w, int64_t group, float beta, float gam) {
    ugroup u = {.mn = w[0], .mx = w[0], .maxq = (float)((1 << bits) - 1)};
    for (int64_t i = 1; i < group; i++) {
        u.mn = fminf(u.mn, w[i]);
        u.mx = fmaxf(u.mx, w[i]);
    }
    u.lo = sigmoidf(beta) * u.mn;
    u.hi = sigmoidf(gam) * u.mx;
    u.s = (u.hi - u.lo) / u.maxq;
    return u;
}

static inline float ucode(const ugroup *u, float w) {
    float c = rintf((w - u->lo) / u->s);
    return fminf(fmaxf(c, 0.0f), u->maxq);
}

void rq_fq_uniform_forward(int bits, int64_t group, const float *w, int64_t n, const float *beta, const float *gam,
                           float *wq) {
    RQ_ASSERT(bits >= 1 && bits <= 8 && group >= 1 && n % group == 0);
    for (int64_t k = 0; k < n / group; k++) {
        const float *wg = w + k * group;
        ugroup u = ugroup_of(bits, wg, group, beta[k], gam[k]);
        for (int64_t i = 0; i < group; i++) wq[k * group + i] = u.s > 0.0f ? u.lo + ucode(&u, wg[i]) * u.s : u.lo;
    }
}

void rq_fq_uniform_backward(int bits, int64_t group, const float *w, int64_t n, const float *beta,
                            const float *gam, const float *dwq, float *dw, float *dbeta, float *dgam) {
    RQ_ASSERT(bits >= 1 && bits <= 8 && group >= 1 && n % group == 0);
    for (int64_t k = 0; k < n / group; k++) {
        const float *wg = w + k * group, *dg = dwq + k * group;
        ugroup u = ugroup_of(bits, wg, group, beta[k], gam[k]);
        if (!(u.s > 0.0f)) continue;
        double dlo = 0, dhi = 0;
        for (int64_t i = 0; i < group; i++) {
            float c = ucode(&u, wg[i]), t = c / u.maxq;
            if (dw && wg[i] >= u.lo && wg[i] <= u.hi) dw[k * group + i] += dg[i];
            dlo += (double)dg[i] * (1.0f - t);
            dhi += (double)dg[i] * t;
        }
        float sb = sigmoidf(beta[k]), sg = sigmoidf(gam[k]);
        if (dbeta) dbeta[k] += (float)(dlo * sb * (1.0f - sb) * u.mn);
        if (dgam) dgam[k] += (float)(dhi * sg * (1.0f - sg) * u.mx);
    }
}

void rq_fq_act_backward(const rq_actq *q, const float *x, const float *dy, int64_t n, int64_t dim, float *dx,
                        float *dclip) {
    RQ_ASSERT(q->bits == 4 || q->bits == 8);
    double dc = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * dim, *dyr = dy + r * dim;
        float *dxr = dx + r * dim;
        float mn = 0.0f, mx = 0.0f;
        for (int64_t i = 0; i < dim; i++) {
            mn = fminf(mn, xr[i]);
            mx = fmaxf(mx, xr[i]);
        }
        float s, rr, z, qlo, qhi;
        rq_actq_params(q, mn, mx, &s, &rr, &z, &qlo, &qhi);
        for (int64_t i = 0; i < dim; i++) {
            if (!(s > 0.0f)) { /* a row of zeros is left as it is: identity */
                dxr[i] = dyr[i];
                continue;
            }
            float c = rintf(xr[i] * rr) + z;
            bool clamped = c < qlo || c > qhi;
            c = fminf(fmaxf(c, qlo), qhi);
            dxr[i] = clamped ? 0.0f : dyr[i];
            dc += (double)dyr[i] * (s * (c - z)) / q->clip;
        }
    }
    if (dclip) *dclip += (float)dc;
}

void rq_fq_kv4_backward(const float *x, const float *dy, int64_t n, int64_t dim, int64_t group, float clip,
                        float *dx, float *dclip) {
    RQ_ASSERT(group >= 1 && dim % group == 0);
    double dc = 0;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t g0 = 0; g0 < dim; g0 += group) {
            const float *xg = x + r * dim + g0, *dyg = dy + r * dim + g0;
            float *dxg = dx + r * dim + g0;
            float s;
            int zi;
            rq_kv4_params_ref(xg, group, clip, &s, &zi);
            float z = (float)zi;
            for (int64_t i = 0; i < group; i++) {
                float c = rintf(xg[i] / s) + z;
                bool clamped = c < 0.0f || c > (float)RQ_KV4_MAXQ;
                c = fminf(fmaxf(c, 0.0f), (float)RQ_KV4_MAXQ);
                dxg[i] = clamped ? 0.0f : dyg[i];
                dc += (double)dyg[i] * (s * (c - z)) / clip;
            }
        }
    }
    if (dclip) *dclip += (float)dc;
}

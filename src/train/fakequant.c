/* Fake quantizers and their straight-through backward (train/fakequant.h). */
#include "train/fakequant.h"

#include "base/status.h"
#include "format/format.h"
#include "format/kv.h"

#include <math.h>
#include <string.h>

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

/* ---- 2-bit, 4 levels per group (RCP's quantizers) ------------------------------------ */

static const int fq2_np[RQ_FQ2_COUNT] = {2, 5, 1}, fq2_nc[RQ_FQ2_COUNT] = {2, 2, 1};
static const char *const fq2_names[RQ_FQ2_COUNT] = {"uniform", "ldp", "seq"};

int rq_fq2_n_param(rq_fq2_kind k) { return fq2_np[k]; }
int rq_fq2_n_const(rq_fq2_kind k) { return fq2_nc[k]; }
const char *rq_fq2_name(rq_fq2_kind k) { return fq2_names[k]; }

int rq_fq2_parse(const char *name) {
    for (int k = 0; k < RQ_FQ2_COUNT; k++)
        if (!strcmp(name, fq2_names[k])) return k;
    return -1;
}

static inline float round_h(float x) { return rq_fp16_to_fp32(rq_fp32_to_fp16(x)); }

/* what a group's levels are made of, before the fp16 rounding */
typedef struct {
    float lo, hi;  /* UNIFORM/LDP range; SEQ: −α, α (the STE region) */
    float P[4];    /* UNIFORM/LDP: cumulative fractions of the range */
    float p[3];    /* LDP: softmax(θ) */
    float alpha;   /* SEQ */
    float v[4];    /* the levels (fp16-representable) */
    float dz[2];   /* UNIFORM/SEQ: stored scale and zero */
} fq2_group;

static fq2_group fq2_group_of(rq_fq2_kind k, const float *q, const float *r) {
    fq2_group G = {0};
    if (k == RQ_FQ2_SEQ) {
        G.alpha = r[0] * expf(q[0]);
        G.lo = -G.alpha, G.hi = G.alpha;
        float d = round_h(0.5f * G.alpha), dz = d * 1.5f;
        for (int c = 0; c < 4; c++) G.v[c] = d * (float)c - dz;
        G.dz[0] = d, G.dz[1] = 1.5f;
        return G;
    }
    G.lo = sigmoidf(q[0]) * r[0];
    G.hi = sigmoidf(q[1]) * r[1];
    if (k == RQ_FQ2_UNIFORM) {
        for (int c = 0; c < 4; c++) G.P[c] = (float)c / 3.0f;
        float d = round_h((G.hi - G.lo) / 3.0f), z = d != 0.0f ? round_h(-G.lo / d) : 0.0f, dz = d * z;
        for (int c = 0; c < 4; c++) G.v[c] = d * (float)c - dz;
        G.dz[0] = d, G.dz[1] = z;
        return G;
    }
    float m = fmaxf(fmaxf(q[2], q[3]), q[4]), e[3], sum = 0.0f;
    for (int i = 0; i < 3; i++) sum += e[i] = expf(q[2 + i] - m);
    for (int i = 0; i < 3; i++) G.p[i] = e[i] / sum;
    G.P[0] = 0.0f, G.P[1] = G.p[0], G.P[2] = G.p[0] + G.p[1], G.P[3] = 1.0f;
    float R = G.hi - G.lo;
    G.v[0] = round_h(G.lo);
    G.v[1] = round_h(G.lo + G.P[1] * R);
    G.v[2] = round_h(G.lo + G.P[2] * R);
    G.v[3] = round_h(G.hi);
    return G;
}

void rq_fq2_levels(rq_fq2_kind k, const float *q, const float *r, float v[4], float dz[2]) {
    fq2_group G = fq2_group_of(k, q, r);
    memcpy(v, G.v, sizeof G.v);
    if (dz && k != RQ_FQ2_LDP) dz[0] = G.dz[0], dz[1] = G.dz[1];
}

/* nearest level: midpoint thresholds (ties to the lower code); levels sorted */
static inline int fq2_code(const float v[4], float w) {
    return (w > 0.5f * (v[0] + v[1])) + (w > 0.5f * (v[1] + v[2])) + (w > 0.5f * (v[2] + v[3]));
}

void rq_fq2_init(rq_fq2_kind k, const float *w, int64_t group, float init_logit, const float *v, float *q,
                 float *r) {
    float mn = w[0], mx = w[0];
    for (int64_t i = 1; i < group; i++) mn = fminf(mn, w[i]), mx = fmaxf(mx, w[i]);
    if (k == RQ_FQ2_SEQ && v) { /* a SEQ grid d·(c − 1.5): α = 2d gives it back */
        r[0] = 2.0f * (v[1] - v[0]);
        q[0] = 0.0f;
        return;
    }
    if (k == RQ_FQ2_SEQ) {
        /* α = m·t with the t of least squared error: 24 points over (0, 1], then 24 around
         * the best (max |w| itself makes the inner levels ±m/4 far too coarse) */
        float m = fmaxf(fabsf(mn), fabsf(mx)), best_t = 1.0f, lo_t = 0.0f, step = 1.0f / 24.0f;
        double best = INFINITY;
        r[0] = m > 0.0f ? m : 1.0f;
        for (int pass = 0; pass < 2; pass++) {
            float t0 = lo_t;
            for (int j = 1; j <= 24; j++) {
                float t = t0 + step * (float)j, a = logf(t), lv[4];
                if (t <= 0.0f || t > 1.0f) continue;
                rq_fq2_levels(RQ_FQ2_SEQ, &a, r, lv, NULL);
                double e = 0;
                for (int64_t i = 0; i < group; i++) {
                    double d = (double)w[i] - lv[fq2_code(lv, w[i])];
                    e += d * d;
                }
                if (e < best) best = e, best_t = t;
            }
            lo_t = best_t - step, step = 2.0f * step / 24.0f;
        }
        q[0] = logf(best_t);
        return;
    }
    q[0] = q[1] = init_logit;
    float sg = sigmoidf(init_logit);
    if (!v) {
        r[0] = mn, r[1] = mx;
    } else {
        r[0] = v[0] / sg, r[1] = v[3] / sg;
    }
    if (k == RQ_FQ2_LDP) {
        float R = v ? v[3] - v[0] : 0.0f;
        for (int i = 0; i < 3; i++) {
            float frac = R > 0.0f ? (v[i + 1] - v[i]) / R : 1.0f / 3.0f;
            q[2 + i] = logf(fmaxf(frac, 1e-6f));
        }
    }
}

void rq_fq2_forward(rq_fq2_kind k, int64_t group, const float *w, int64_t n, const float *q, const float *r,
                    float *wq, uint8_t *codes) {
    RQ_ASSERT(group >= 1 && n % group == 0);
    int np = fq2_np[k], nc = fq2_nc[k];
    for (int64_t g = 0; g < n / group; g++) {
        fq2_group G = fq2_group_of(k, q + g * np, r + g * nc);
        for (int64_t i = g * group; i < (g + 1) * group; i++) {
            int c = fq2_code(G.v, w[i]);
            wq[i] = G.v[c];
            if (codes) codes[i] = (uint8_t)c;
        }
    }
}

void rq_fq2_backward(rq_fq2_kind k, int64_t group, const float *w, int64_t n, const float *q, const float *r,
                     const float *dwq, float *dw, float *dq) {
    RQ_ASSERT(group >= 1 && n % group == 0);
    int np = fq2_np[k], nc = fq2_nc[k];
    for (int64_t g = 0; g < n / group; g++) {
        const float *qg = q + g * np;
        fq2_group G = fq2_group_of(k, qg, r + g * nc);
        double dv[4] = {0};
        for (int64_t i = g * group; i < (g + 1) * group; i++) {
            dv[fq2_code(G.v, w[i])] += dwq[i];
            if (dw && w[i] >= G.lo && w[i] <= G.hi) dw[i] += dwq[i];
        }
        float *d = dq + g * np;
        if (k == RQ_FQ2_SEQ) {
            double da = 0;
            for (int c = 0; c < 4; c++) da += dv[c] * 0.5 * ((double)c - 1.5);
            d[0] += (float)(da * G.alpha);
            continue;
        }
        double dlo = 0, dhi = 0, dP1 = 0, dP2 = 0, R = (double)G.hi - G.lo;
        for (int c = 0; c < 4; c++) dlo += dv[c] * (1.0 - G.P[c]), dhi += dv[c] * G.P[c];
        float sb = sigmoidf(qg[0]), sgm = sigmoidf(qg[1]);
        d[0] += (float)(dlo * sb * (1.0f - sb) * r[g * nc]);
        d[1] += (float)(dhi * sgm * (1.0f - sgm) * r[g * nc + 1]);
        if (k != RQ_FQ2_LDP) continue;
        dP1 = dv[1] * R, dP2 = dv[2] * R;
        double dp[3] = {dP1 + dP2, dP2, 0.0}, s = 0;
        for (int i = 0; i < 3; i++) s += G.p[i] * dp[i];
        for (int i = 0; i < 3; i++) d[2 + i] += (float)(G.p[i] * (dp[i] - s));
    }
}

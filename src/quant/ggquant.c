/* llama.cpp's block encodings as group quantizers (quant/ggquant.h). */
#include "quant/ggquant.h"

#include "format/format.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Levels are computed as the dequantizers compute them: a*b + c as two roundings. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define FP16_MAX 65504.0f

/* ---------------------------------------------------------------- the types */

typedef enum { SHAPE_SCALE, SHAPE_AFFINE, SHAPE_KMIN, SHAPE_KSYM } shape;

typedef struct {
    int type;
    const char *cli;
    shape sh;
    int group, span;   /* weights per parameter set, sets per fit */
    int qmin, qmax;    /* codes (stored values) */
    int zero;          /* SCALE / KSYM: level index = code − zero */
    int scmin, scmax;  /* K types: sub-block scale range */
    int mnmax;         /* KMIN: sub-block min range 0..mnmax */
    const int8_t *tab; /* IQ4_NL: levels by code */
    uint32_t ftype;    /* llama_ftype */
} gg_desc;

static const gg_desc descs[] = {
    {RQ_TYPE_Q4_0, "q4_0", SHAPE_SCALE, 32, 1, 0, 15, 8, 0, 0, 0, NULL, 2},
    {RQ_TYPE_Q4_1, "q4_1", SHAPE_AFFINE, 32, 1, 0, 15, 0, 0, 0, 0, NULL, 3},
    {RQ_TYPE_Q5_0, "q5_0", SHAPE_SCALE, 32, 1, 0, 31, 16, 0, 0, 0, NULL, 8},
    {RQ_TYPE_Q5_1, "q5_1", SHAPE_AFFINE, 32, 1, 0, 31, 0, 0, 0, 0, NULL, 9},
    {RQ_TYPE_Q8_0, "q8_0", SHAPE_SCALE, 32, 1, 1, 255, 128, 0, 0, 0, NULL, 7},
    {RQ_TYPE_IQ4_NL, "iq4_nl", SHAPE_SCALE, 32, 1, 0, 15, 0, 0, 0, 0, rq_iq4nl_values, 25},
    {RQ_TYPE_Q2_K, "q2_k", SHAPE_KMIN, 16, 16, 0, 3, 0, 0, 15, 15, NULL, 10},
    {RQ_TYPE_Q3_K, "q3_k", SHAPE_KSYM, 16, 16, 0, 7, 4, -32, 31, 0, NULL, 11},
    {RQ_TYPE_Q4_K, "q4_k", SHAPE_KMIN, 32, 8, 0, 15, 0, 0, 63, 63, NULL, 14},
    {RQ_TYPE_Q5_K, "q5_k", SHAPE_KMIN, 32, 8, 0, 31, 0, 0, 63, 63, NULL, 16},
    {RQ_TYPE_Q6_K, "q6_k", SHAPE_KSYM, 16, 16, 0, 63, 32, -128, 127, 0, NULL, 18},
};
#define N_DESCS ((int)(sizeof descs / sizeof descs[0]))

static const gg_desc *desc_of(int type) {
    for (int i = 0; i < N_DESCS; i++)
        if (descs[i].type == type) return &descs[i];
    return NULL;
}

bool rq_gg_type_writable(int type) { return desc_of(type) != NULL; }

const char *rq_gg_type_cli_name(int type) {
    const gg_desc *d = desc_of(type);
    if (d) return d->cli;
    return type == RQ_TYPE_F16 ? "f16" : type == RQ_TYPE_F32 ? "f32" : "unknown";
}

rq_status rq_gg_type_parse(const char *s, bool allow_float, const char *opt, int *type) {
    char low[16];
    size_t n = s ? strlen(s) : 0;
    if (s && n < sizeof low) {
        for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)s[i]);
        for (int i = 0; i < N_DESCS; i++)
            if (!strcmp(low, descs[i].cli)) {
                *type = descs[i].type;
                return RQ_OK;
            }
        if (allow_float && !strcmp(low, "f16")) return *type = RQ_TYPE_F16, RQ_OK;
        if (allow_float && !strcmp(low, "f32")) return *type = RQ_TYPE_F32, RQ_OK;
    }
    return rq_errorf(RQ_EINVAL, "%s: '%.32s' is not one of q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, q2_k, q3_k, q4_k, q5_k, "
                     "q6_k%s", opt, s ? s : "", allow_float ? ", f16, f32" : "");
}

int rq_gg_type_for_row(int type, int64_t n_in) {
    const gg_desc *d = desc_of(type);
    if (!d || n_in <= 0 || n_in % 32) return -1;
    if (n_in % (d->group * d->span) == 0) return type;
    switch (type) {
    case RQ_TYPE_Q2_K:
    case RQ_TYPE_Q3_K: return RQ_TYPE_IQ4_NL;
    case RQ_TYPE_Q4_K: return RQ_TYPE_Q5_0;
    case RQ_TYPE_Q5_K: return RQ_TYPE_Q5_1;
    case RQ_TYPE_Q6_K: return RQ_TYPE_Q8_0;
    default: return -1;
    }
}

uint32_t rq_gg_file_type(int type) {
    const gg_desc *d = desc_of(type);
    return d ? d->ftype : type == RQ_TYPE_F16 ? 1u : 0u;
}

/* ---------------------------------------------------------------- helpers */

static inline float fp16r(double x) {
    if (!isfinite(x)) return NAN;
    if (x > FP16_MAX) x = FP16_MAX;
    if (x < -FP16_MAX) x = -FP16_MAX;
    return rq_fp16_to_fp32(rq_fp32_to_fp16((float)x));
}

static inline int clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }
static inline double wt(const double *imp, int64_t i) { return imp ? imp[i] : 1.0; }

/* ---- one scale, levels d·K (K: integers kmin..kmax, or a table) -------------------- */

typedef struct {
    int kmin, kmax;    /* integer grid (tab NULL) */
    const int8_t *tab; /* or 16 increasing table values */
} sgrid;

static inline double sg_lo(const sgrid *g) { return g->tab ? g->tab[0] : g->kmin; }
static inline double sg_hi(const sgrid *g) { return g->tab ? g->tab[15] : g->kmax; }

/* the grid value nearest to t (t = x / d) */
static inline int sg_near(const sgrid *g, double t) {
    if (!g->tab) return clampi(lrint(t), g->kmin, g->kmax);
    int lo = 0, hi = 15; /* first table index whose midpoint to the next is above t */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t > 0.5 * (g->tab[mid] + g->tab[mid + 1])) lo = mid + 1;
        else hi = mid;
    }
    return g->tab[lo];
}

/* Σ imp (x − d·K)² with each x at its nearest level of the float scale d */
static double sg_err(const sgrid *g, float d, const double *x, const double *imp, int64_t n) {
    double e = 0;
    if (d == 0.0f) {
        for (int64_t i = 0; i < n; i++) e += wt(imp, i) * x[i] * x[i];
        return e;
    }
    double inv = 1.0 / d;
    for (int64_t i = 0; i < n; i++) {
        float v = d * (float)sg_near(g, x[i] * inv);
        double r = x[i] - v;
        e += wt(imp, i) * r * r;
    }
    return e;
}

/* Best scale d (fp16 when round16) for the grid; returns its error. The largest |x| is mapped
 * to each end level ×(1 + 0.04 j), |j| <= nj; each candidate and its least-squares refit tried. */
static double sg_fit(const sgrid *g, const double *x, const double *imp, int64_t n, bool round16, int nj,
                     float *d_out) {
    double amax = 0, mx = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(x[i]) > amax) amax = fabs(x[i]), mx = x[i];
    *d_out = 0.0f;
    double best = sg_err(g, 0.0f, x, imp, n);
    if (amax == 0) return best;
    const double ends[2] = {sg_lo(g), sg_hi(g)};
    for (int e = 0; e < 2; e++) {
        if (ends[e] == 0) continue;
        for (int j = -nj; j <= nj; j++) {
            double d0 = mx / (ends[e] * (1.0 + 0.04 * j));
            double cand[2] = {d0, 0};
            /* weighted least squares for the scale of the codes d0 gives */
            double sxl = 0, sll = 0, inv = 1.0 / d0;
            for (int64_t i = 0; i < n; i++) {
                double l = sg_near(g, x[i] * inv);
                sxl += wt(imp, i) * x[i] * l;
                sll += wt(imp, i) * l * l;
            }
            cand[1] = sll > 0 ? sxl / sll : 0;
            for (int c = j == 0 ? 0 : 1; c < 2; c++) { /* d0 itself only at j = 0 */
                float d = round16 ? fp16r(cand[c]) : (float)cand[c];
                if (!isfinite(d) || d == 0.0f) continue;
                double err = sg_err(g, d, x, imp, n);
                if (err < best) best = err, *d_out = d;
            }
        }
    }
    return best;
}

/* ---- affine: levels (float)q·d + m, q in 0..qmax --------------------------------- */

static inline int af_near(double x, float d, float m, int qmax) {
    if (d == 0.0f) return 0;
    int q = clampi(lrint((x - m) / d), 0, qmax);
    return q;
}

static double af_err(float d, float m, int qmax, const double *x, const double *imp, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = (float)af_near(x[i], d, m, qmax) * d + m;
        double r = x[i] - v;
        e += wt(imp, i) * r * r;
    }
    return e;
}

/* Best (d, m) (fp16 when round16; m ≤ 0 when nonpos: K-quants' mins); returns its error. */
static double af_fit(const double *x, const double *imp, int64_t n, int qmax, bool round16, bool nonpos, float *d_out,
                     float *m_out) {
    double mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) mn = x[i] < mn ? x[i] : mn, mx = x[i] > mx ? x[i] : mx;
    if (nonpos && mn > 0) mn = 0;
    float m0 = round16 ? fp16r(mn) : (float)mn;
    *d_out = 0.0f, *m_out = isfinite(m0) ? m0 : 0.0f;
    double best = af_err(0.0f, *m_out, qmax, x, imp, n);
    if (mx == mn) return best;
    for (int j = -6; j <= 6; j++) {
        double t = qmax + 0.15 * j;
        if (t <= 0) continue;
        double d0 = (mx - mn) / t;
        double cd[2] = {d0, 0}, cm[2] = {mn, 0};
        int nc = 1;
        /* weighted least squares of x on the codes (d0, mn) gives */
        double s1 = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
        for (int64_t i = 0; i < n; i++) {
            double l = clampi(lrint((x[i] - mn) / d0), 0, qmax), w = wt(imp, i);
            s1 += w, sl += w * l, sll += w * l * l, sx += w * x[i], sxl += w * x[i] * l;
        }
        double det = s1 * sll - sl * sl;
        if (det > 0) {
            double d = (s1 * sxl - sl * sx) / det, m = (sll * sx - sl * sxl) / det;
            if (nonpos && m > 0) m = 0, d = sll > 0 ? sxl / sll : 0;
            if (d > 0) cd[1] = d, cm[1] = m, nc = 2;
        }
        for (int c = j == 0 ? 0 : 1; c < nc; c++) { /* (d0, mn) itself only at j = 0 */
            float d = round16 ? fp16r(cd[c]) : (float)cd[c], m = round16 ? fp16r(cm[c]) : (float)cm[c];
            if (!isfinite(d) || !isfinite(m) || d <= 0.0f) continue;
            double err = af_err(d, m, qmax, x, imp, n);
            if (err < best) best = err, *d_out = d, *m_out = m;
        }
    }
    return best;
}

/* ---- K types with mins: x = (d·sc)·q − dmin·mn ---------------------------------------- */

static inline int km_near(double x, float dl, float ml, int qmax) {
    if (dl == 0.0f) return 0;
    return clampi(lrint((x + ml) / dl), 0, qmax);
}

static double km_err(float d, float dmin, int sc, int mn, int qmax, const double *x, const double *imp, int64_t n) {
    const float dl = d * (float)sc, ml = dmin * (float)mn;
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = dl * (float)km_near(x[i], dl, ml, qmax) - ml;
        double r = x[i] - v;
        e += wt(imp, i) * r * r;
    }
    return e;
}

/* the sub-block's integer scale and min among the neighbours of s/d and m/dmin */
static double km_pick(const gg_desc *D, float d, float dmin, double s, double m, const double *x, const double *imp,
                      int64_t n, int *sc_out, int *mn_out) {
    int c0 = d > 0 ? clampi(lrint(s / d), 0, D->scmax) : 0, m0 = dmin > 0 ? clampi(lrint(m / dmin), 0, D->mnmax) : 0;
    double best = INFINITY;
    for (int a = c0 - 1; a <= c0 + 1; a++) {
        if (a < 0 || a > D->scmax) continue;
        for (int b = m0 - 1; b <= m0 + 1; b++) {
            if (b < 0 || b > D->mnmax) continue;
            double e = km_err(d, dmin, a, b, D->qmax, x, imp, n);
            if (e < best) best = e, *sc_out = a, *mn_out = b;
        }
    }
    return best;
}

static void fit_kmin(const gg_desc *D, const double *x, const double *imp, int64_t n, float *param) {
    enum { MAXSUB = 16 };
    const int g = D->group, ns = (int)(n / g);
    RQ_ASSERT(ns <= MAXSUB && ns * g == n);
    double s[MAXSUB], m[MAXSUB], smax = 0, mmax = 0;
    for (int j = 0; j < ns; j++) {
        float d, off;
        af_fit(x + j * g, imp ? imp + j * g : NULL, g, D->qmax, false, true, &d, &off);
        s[j] = d > 0 ? d : 0, m[j] = off < 0 ? -off : 0;
        smax = s[j] > smax ? s[j] : smax, mmax = m[j] > mmax ? m[j] : mmax;
    }
    int sc[MAXSUB], mn[MAXSUB], bsc[MAXSUB] = {0}, bmn[MAXSUB] = {0};
    float bd = 0, bdmin = 0;
    double best = INFINITY;
    const float dmin0 = fp16r(mmax / D->mnmax);
    static const double f[3] = {1.0, 0.95, 0.9};
    for (int k = 0; k < 4; k++) {
        float d, dmin;
        if (k < 3) {
            d = fp16r(smax * f[k] / D->scmax), dmin = dmin0;
        } else { /* least-squares refit of (d, dmin) for the best choice so far */
            double a2 = 0, ab = 0, b2 = 0, ax = 0, bx = 0;
            for (int j = 0; j < ns; j++) {
                const float dl = bd * (float)bsc[j], ml = bdmin * (float)bmn[j];
                for (int i = j * g; i < (j + 1) * g; i++) {
                    double q = km_near(x[i], dl, ml, D->qmax), w = wt(imp, i);
                    double a = bsc[j] * q, b = bmn[j];
                    a2 += w * a * a, ab += w * a * b, b2 += w * b * b, ax += w * a * x[i], bx += w * b * x[i];
                }
            }
            /* minimise Σ w (d·a − dmin·b − x)² */
            double det = a2 * b2 - ab * ab;
            if (!(det > 0)) break;
            d = fp16r((ax * b2 - ab * bx) / det), dmin = fp16r((ab * ax - a2 * bx) / det);
            if (dmin < 0) dmin = 0;
        }
        if (!isfinite(d) || !isfinite(dmin) || d < 0) continue;
        double tot = 0;
        for (int j = 0; j < ns && tot < best; j++)
            tot += km_pick(D, d, dmin, s[j], m[j], x + j * g, imp ? imp + j * g : NULL, g, &sc[j], &mn[j]);
        if (tot < best) {
            best = tot, bd = d, bdmin = dmin;
            memcpy(bsc, sc, sizeof sc), memcpy(bmn, mn, sizeof mn);
        }
    }
    if (!isfinite(best)) bd = bdmin = 0; /* every candidate invalid: all levels 0 */
    for (int j = 0; j < ns; j++) {
        float *p = param + 4 * j;
        p[0] = bd, p[1] = bdmin, p[2] = (float)bsc[j], p[3] = (float)bmn[j];
    }
}

/* ---- K types without mins: x = (d·sc)·(q − z) --------------------------------------- */

static double ks_err(float d, int sc, const sgrid *G, const double *x, const double *imp, int64_t n) {
    return sg_err(G, d * (float)sc, x, imp, n);
}

static void fit_ksym(const gg_desc *D, const double *x, const double *imp, int64_t n, float *param) {
    enum { MAXSUB = 16 };
    const int g = D->group, ns = (int)(n / g);
    RQ_ASSERT(ns <= MAXSUB && ns * g == n);
    const sgrid G = {D->qmin - D->zero, D->qmax - D->zero, NULL};
    double s[MAXSUB], big = 0;
    for (int j = 0; j < ns; j++) {
        float d;
        sg_fit(&G, x + j * g, imp ? imp + j * g : NULL, g, false, D->qmax > 16 ? 2 : 5, &d);
        s[j] = d;
        if (fabs(d) > fabs(big)) big = d;
    }
    int sc[MAXSUB], bsc[MAXSUB] = {0};
    float bd = 0;
    double best = INFINITY;
    for (int k = 0; k < 5; k++) {
        float d;
        if (k < 4) { /* the largest sub-block scale at the top or the bottom of the scale range */
            d = fp16r(big / ((k & 1) ? D->scmin : D->scmax) * (k < 2 ? 1.0 : 0.95));
        } else { /* least-squares refit of d for the best choice so far */
            double aa = 0, ax = 0;
            for (int j = 0; j < ns; j++) {
                const float dl = bd * (float)bsc[j];
                for (int i = j * g; i < (j + 1) * g; i++) {
                    double q = dl != 0.0f ? sg_near(&G, x[i] / dl) : 0, a = bsc[j] * q, w = wt(imp, i);
                    aa += w * a * a, ax += w * a * x[i];
                }
            }
            if (!(aa > 0)) break;
            d = fp16r(ax / aa);
        }
        if (!isfinite(d) || d == 0.0f) continue;
        double tot = 0;
        for (int j = 0; j < ns && tot < best; j++) {
            const double *xj = x + j * g, *ij = imp ? imp + j * g : NULL;
            int c0 = clampi(lrint(s[j] / d), D->scmin, D->scmax);
            double eb = INFINITY;
            for (int a = c0 - 1; a <= c0 + 1; a++) {
                if (a < D->scmin || a > D->scmax) continue;
                double e = ks_err(d, a, &G, xj, ij, g);
                if (e < eb) eb = e, sc[j] = a;
            }
            tot += eb;
        }
        if (tot < best) best = tot, bd = d, memcpy(bsc, sc, sizeof sc);
    }
    if (!isfinite(best)) { /* all zero */
        bd = 0;
        memset(bsc, 0, sizeof bsc);
    }
    for (int j = 0; j < ns; j++) param[2 * j] = bd, param[2 * j + 1] = (float)bsc[j];
}

/* ---------------------------------------------------------------- the quantizer */

static void gg_fit(const rq_group_quantizer *q, const double *w, const double *imp, int64_t n, float *param) {
    const gg_desc *D = q->cfg;
    switch (D->sh) {
    case SHAPE_SCALE: {
        const sgrid G = {D->qmin - D->zero, D->qmax - D->zero, D->tab};
        sg_fit(&G, w, imp, n, true, D->qmax > 32 ? 2 : 5, &param[0]);
        break;
    }
    case SHAPE_AFFINE: af_fit(w, imp, n, D->qmax, true, false, &param[0], &param[1]); break;
    case SHAPE_KMIN: fit_kmin(D, w, imp, n, param); break;
    case SHAPE_KSYM: fit_ksym(D, w, imp, n, param); break;
    }
}

/* the level of a code, exactly as the type's dequantizer computes it */
static inline float gg_level(const gg_desc *D, const float *p, int code) {
    switch (D->sh) {
    case SHAPE_SCALE:
        if (D->tab) return p[0] * (float)D->tab[code];
        return (float)(code - D->zero) * p[0];
    case SHAPE_AFFINE: return (float)code * p[0] + p[1];
    case SHAPE_KMIN: {
        const float dl = p[0] * p[2], ml = p[1] * p[3];
        return dl * (float)code - ml;
    }
    case SHAPE_KSYM: {
        const float dl = p[0] * p[1];
        return dl * (float)(code - D->zero);
    }
    }
    return 0;
}

static int gg_quant(const rq_group_quantizer *q, const float *p, double w, double *wq) {
    const gg_desc *D = q->cfg;
    int c0, lo, hi;
    if (D->tab) { /* 16 levels: all of them */
        lo = 0, hi = 15, c0 = 0;
    } else {
        double scale, off;
        switch (D->sh) {
        case SHAPE_SCALE: scale = p[0], off = -(double)D->zero * p[0]; break;
        case SHAPE_AFFINE: scale = p[0], off = p[1]; break;
        case SHAPE_KMIN: scale = (double)(p[0] * p[2]), off = -(double)(p[1] * p[3]); break;
        default: scale = (double)(p[0] * p[1]), off = -(double)D->zero * scale; break;
        }
        c0 = scale != 0 ? clampi(lrint((w - off) / scale), D->qmin, D->qmax) : D->zero > D->qmin ? D->zero : D->qmin;
        lo = c0 - 1 < D->qmin ? D->qmin : c0 - 1;
        hi = c0 + 1 > D->qmax ? D->qmax : c0 + 1;
    }
    int best = -1;
    double be = INFINITY;
    for (int c = lo; c <= hi; c++) {
        double e = fabs(w - (double)gg_level(D, p, c));
        if (e < be) be = e, best = c;
    }
    if (best < 0) best = c0; /* NaN input */
    *wq = gg_level(D, p, best);
    return best;
}

rq_group_quantizer rq_gg_quantizer(int type, int64_t *group) {
    const gg_desc *D = desc_of(type);
    RQ_ASSERT(D);
    *group = D->group;
    rq_group_quantizer q = {
        .name = D->cli,
        .n_param = D->sh == SHAPE_KMIN ? 4 : D->sh == SHAPE_SCALE ? 1 : 2,
        .max_code = D->qmax,
        .fit = gg_fit,
        .quant = gg_quant,
        .cfg = D,
        .span = D->span,
    };
    return q;
}

/* ---------------------------------------------------------------- encoding */

static bool half_ok(float v, rq_half *h) {
    *h = rq_fp32_to_fp16(v);
    return isfinite(v) && rq_fp16_to_fp32(*h) == v;
}

static inline void nibbles(const uint8_t *c, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((c[j] & 0xf) | (c[j + 16] & 0xf) << 4);
}

static inline void high_bits32(const uint8_t *c, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((c[j] >> 4) & 1) << j;
    memcpy(qh, &h, 4); /* little-endian host (format.h) */
}

rq_status rq_gg_encode_row(int type, const uint8_t *codes, const float *params, int64_t n, void *dst) {
    const gg_desc *D = desc_of(type);
    if (!D || n <= 0 || n % (D->group * D->span))
        return rq_errorf(RQ_EINVAL, "encode: %lld weights of type %s", (long long)n, rq_type_name(type));
    for (int64_t i = 0; i < n; i++)
        if (codes[i] < D->qmin || codes[i] > D->qmax)
            return rq_errorf(RQ_EINVAL, "encode %s: code %d out of range", D->cli, codes[i]);
    uint8_t *out = dst;
    const char *bad = NULL;
    if (D->span == 1) { /* 32-weight blocks, one parameter set each */
        const int np = D->sh == SHAPE_AFFINE ? 2 : 1;
        for (int64_t b = 0; b < n / 32 && !bad; b++) {
            const uint8_t *c = codes + 32 * b;
            const float *p = params + np * b;
            rq_half d, m = 0;
            if (!half_ok(p[0], &d) || (np == 2 && !half_ok(p[1], &m))) bad = "a scale is not an fp16 value";
            switch (type) {
            case RQ_TYPE_Q4_0:
            case RQ_TYPE_IQ4_NL: { /* the same layout */
                rq_block_q4_0 *x = (rq_block_q4_0 *)out + b;
                x->d = d;
                nibbles(c, x->qs);
                break;
            }
            case RQ_TYPE_Q4_1: {
                rq_block_q4_1 *x = (rq_block_q4_1 *)out + b;
                x->d = d, x->m = m;
                nibbles(c, x->qs);
                break;
            }
            case RQ_TYPE_Q5_0: {
                rq_block_q5_0 *x = (rq_block_q5_0 *)out + b;
                x->d = d;
                high_bits32(c, x->qh);
                nibbles(c, x->qs);
                break;
            }
            case RQ_TYPE_Q5_1: {
                rq_block_q5_1 *x = (rq_block_q5_1 *)out + b;
                x->d = d, x->m = m;
                high_bits32(c, x->qh);
                nibbles(c, x->qs);
                break;
            }
            case RQ_TYPE_Q8_0: {
                rq_block_q8_0 *x = (rq_block_q8_0 *)out + b;
                x->d = d;
                for (int j = 0; j < 32; j++) x->qs[j] = (int8_t)(c[j] - 128);
                break;
            }
            }
        }
    } else { /* K types: super-blocks of 256 */
        const int np = D->sh == SHAPE_KMIN ? 4 : 2, ns = D->span;
        for (int64_t b = 0; b < n / 256 && !bad; b++) {
            const uint8_t *c = codes + 256 * b;
            const float *p = params + (int64_t)np * ns * b;
            rq_half d, dmin = 0;
            int sc[16], mn[16] = {0};
            if (!half_ok(p[0], &d) || (np == 4 && !half_ok(p[1], &dmin))) bad = "a scale is not an fp16 value";
            for (int j = 0; j < ns; j++) {
                const float *pj = p + np * j;
                if (pj[0] != p[0] || (np == 4 && pj[1] != p[1])) bad = "sub-blocks of one super-block with different scales";
                sc[j] = (int)pj[np == 4 ? 2 : 1];
                if (np == 4) mn[j] = (int)pj[3];
                if ((float)sc[j] != pj[np == 4 ? 2 : 1] || sc[j] < D->scmin || sc[j] > D->scmax ||
                    (np == 4 && ((float)mn[j] != pj[3] || mn[j] < 0 || mn[j] > D->mnmax)))
                    bad = "a sub-block scale or min out of range";
            }
            if (bad) break;
            switch (type) {
            case RQ_TYPE_Q2_K: {
                rq_block_q2_K *x = (rq_block_q2_K *)out + b;
                for (int j = 0; j < 16; j++) x->scales[j] = (uint8_t)(sc[j] | mn[j] << 4);
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < 32; l++) {
                        uint8_t v = 0;
                        for (int k = 0; k < 4; k++) v |= (uint8_t)((c[128 * h + 32 * k + l] & 3) << (2 * k));
                        x->qs[32 * h + l] = v;
                    }
                x->d = d, x->dmin = dmin;
                break;
            }
            case RQ_TYPE_Q3_K: {
                rq_block_q3_K *x = (rq_block_q3_K *)out + b;
                memset(x->hmask, 0, sizeof x->hmask);
                memset(x->scales, 0, sizeof x->scales);
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < 32; l++) {
                        uint8_t v = 0;
                        for (int k = 0; k < 4; k++) {
                            const int i = 128 * h + 32 * k + l;
                            v |= (uint8_t)((c[i] & 3) << (2 * k));
                            x->hmask[l] |= (uint8_t)(((c[i] >> 2) & 1) << (4 * h + k));
                        }
                        x->qs[32 * h + l] = v;
                    }
                for (int s = 0; s < 16; s++) {
                    const int u = sc[s] + 32;
                    if (s < 8) x->scales[s] |= (uint8_t)(u & 0xf);
                    else x->scales[s - 8] |= (uint8_t)((u & 0xf) << 4);
                    x->scales[8 + s % 4] |= (uint8_t)(((u >> 4) & 3) << (2 * (s / 4)));
                }
                x->d = d;
                break;
            }
            case RQ_TYPE_Q4_K:
            case RQ_TYPE_Q5_K: {
                uint8_t *scales;
                uint8_t *qs;
                if (type == RQ_TYPE_Q4_K) {
                    rq_block_q4_K *x = (rq_block_q4_K *)out + b;
                    x->d = d, x->dmin = dmin, scales = x->scales, qs = x->qs;
                } else {
                    rq_block_q5_K *x = (rq_block_q5_K *)out + b;
                    x->d = d, x->dmin = dmin, scales = x->scales, qs = x->qs;
                    memset(x->qh, 0, sizeof x->qh);
                    for (int i = 0; i < 256; i++) x->qh[i % 32] |= (uint8_t)(((c[i] >> 4) & 1) << (i / 32));
                }
                for (int s = 0; s < 4; s++) {
                    scales[s] = (uint8_t)((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
                    scales[s + 4] = (uint8_t)((mn[s] & 63) | ((mn[s + 4] >> 4) << 6));
                    scales[s + 8] = (uint8_t)((sc[s + 4] & 0xf) | ((mn[s + 4] & 0xf) << 4));
                }
                for (int ch = 0; ch < 4; ch++)
                    for (int l = 0; l < 32; l++)
                        qs[32 * ch + l] = (uint8_t)((c[64 * ch + l] & 0xf) | (c[64 * ch + 32 + l] & 0xf) << 4);
                break;
            }
            case RQ_TYPE_Q6_K: {
                rq_block_q6_K *x = (rq_block_q6_K *)out + b;
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < 32; l++) {
                        const uint8_t *v = c + 128 * h + l;
                        x->ql[64 * h + l] = (uint8_t)((v[0] & 0xf) | (v[64] & 0xf) << 4);
                        x->ql[64 * h + 32 + l] = (uint8_t)((v[32] & 0xf) | (v[96] & 0xf) << 4);
                        x->qh[32 * h + l] =
                            (uint8_t)((v[0] >> 4) | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
                    }
                for (int s = 0; s < 16; s++) x->scales[s] = (int8_t)sc[s];
                x->d = d;
                break;
            }
            }
        }
    }
    if (bad) return rq_errorf(RQ_EINVAL, "encode %s: %s", D->cli, bad);
    return RQ_OK;
}

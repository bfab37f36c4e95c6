#include "quant/uniform.h"

#include "base/status.h"

#include <math.h>

const float rq_uniform_clip_grid[RQ_UNIFORM_CLIP_GRID_N] = {
    1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f, 0.65f, 0.6f, 0.55f, 0.5f};

static const float clip_one = 1.0f;

#define FP16_MIN_SUBNORMAL 5.9604644775390625e-8f /* 2^-24 */
#define FP16_MAX 65504.0f

rq_status rq_uniform_cfg_check(const rq_uniform_cfg *cfg) {
    if (!(cfg->bits == 2 || cfg->bits == 3 || cfg->bits == 4 || cfg->bits == 8))
        return rq_errorf(RQ_EINVAL, "uniform quantizer: %d bits (expected 2, 3, 4 or 8)", cfg->bits);
    if (cfg->half_zero && !cfg->least_squares)
        return rq_errorf(RQ_EINVAL, "uniform quantizer: the SEQ grid (half-integer zero point) needs the least-squares fit");
    if (cfg->least_squares && cfg->bits == 8)
        return rq_errorf(RQ_EINVAL, "uniform quantizer: the least-squares fit is for 2-4 bits");
    if (cfg->n_clip < 0 || (cfg->n_clip > 0 && !cfg->clip))
        return rq_errorf(RQ_EINVAL, "uniform quantizer: clip grid of %d ratios", cfg->n_clip);
    for (int i = 0; i < cfg->n_clip; i++)
        if (!(cfg->clip[i] > 0.0f && cfg->clip[i] <= 1.0f))
            return rq_errorf(RQ_EINVAL, "uniform quantizer: clip ratio %g not in (0, 1]",
                             (double)cfg->clip[i]);
    return RQ_OK;
}

/* fp16-representable scale from a raw one (see uniform.h for the edge cases) */
static float stored_scale(double raw) {
    float s = rq_quant_round_fp16((float)raw);
    if (s < FP16_MIN_SUBNORMAL) s = FP16_MIN_SUBNORMAL;
    if (s > FP16_MAX) s = FP16_MAX;
    return s;
}

void rq_uniform_params(int bits, bool symmetric, double c, const double *w, int64_t n,
                       float *scale, int *zero) {
    int maxq = (1 << bits) - 1;
    if (symmetric) {
        double m = 0;
        for (int64_t j = 0; j < n; j++) m = fabs(w[j]) > m ? fabs(w[j]) : m;
        m *= c;
        *zero = 1 << (bits - 1);
        *scale = m > 0 ? stored_scale(m / ((1 << (bits - 1)) - 1)) : 1.0f;
        return;
    }
    double mn = 0, mx = 0;
    for (int64_t j = 0; j < n; j++) {
        mn = w[j] < mn ? w[j] : mn;
        mx = w[j] > mx ? w[j] : mx;
    }
    double lo = c * mn, hi = c * mx;
    if (hi - lo <= 0) { /* all zero */
        *scale = 1.0f;
        *zero = 0;
        return;
    }
    float s = stored_scale((hi - lo) / maxq);
    double z = rint(-lo / s);
    *scale = s;
    *zero = (int)fmin(fmax(z, 0), maxq);
}

int rq_uniform_code(int bits, float scale, int zero, double w) {
    int maxq = (1 << bits) - 1;
    double q = rint(w / scale) + zero;
    return (int)fmin(fmax(q, 0), maxq);
}

void rq_uniform_fit(const rq_uniform_cfg *cfg, const double *w, const double *imp, int64_t n,
                    float *scale, int *zero) {
    const float *grid = cfg->n_clip > 0 ? cfg->clip : &clip_one;
    int ngrid = cfg->n_clip > 0 ? cfg->n_clip : 1;
    double best = INFINITY;
    for (int k = 0; k < ngrid; k++) {
        float s;
        int z;
        rq_uniform_params(cfg->bits, cfg->symmetric, grid[k], w, n, &s, &z);
        if (ngrid == 1) {
            *scale = s;
            *zero = z;
            return;
        }
        double err = 0;
        for (int64_t j = 0; j < n; j++) {
            double d = w[j] - rq_uniform_dequant(s, z, rq_uniform_code(cfg->bits, s, z, w[j]));
            err += (imp ? imp[j] : 1.0) * d * d;
        }
        if (err < best) {
            best = err;
            *scale = s;
            *zero = z;
        }
    }
}

int rq_uniform_code_f(int bits, float scale, float zero, double w) {
    int maxq = (1 << bits) - 1;
    double q = rint(w / scale + zero);
    return q < 0 ? 0 : q > maxq ? maxq : (int)q;
}

/* The nearest codes for (s, z) into code [n] (as doubles), and Σ imp (w − s·(code − z))².
 * Written to vectorize (GPTQ's fit calls it ~100 times per group): w·(1/s) instead of w/s
 * (a code may differ only for a value within an ulp of a rounding boundary, where both
 * codes are equally near), four partial sums, one loop per weighting. */
static double codes_err(int bits, float s, float z, const double *w, const double *imp, int64_t n, double *code) {
    const double inv = 1.0 / s, maxq = (1 << bits) - 1;
    double acc[4] = {0, 0, 0, 0};
    int64_t n4 = n & ~(int64_t)3;
#define RQ_CODE_ERR(j, wt)                                        \
    do {                                                          \
        double q_ = rint(w[j] * inv + z);                         \
        q_ = q_ < 0 ? 0 : q_ > maxq ? maxq : q_;                  \
        code[j] = q_;                                             \
        double d_ = w[j] - (double)(s * ((float)q_ - z));         \
        acc[(j) & 3] += (wt) * d_ * d_;                           \
    } while (0)
    if (imp) {
        for (int64_t j = 0; j < n4; j += 4)
            for (int k = 0; k < 4; k++) RQ_CODE_ERR(j + k, imp[j + k]);
        for (int64_t j = n4; j < n; j++) RQ_CODE_ERR(j, imp[j]);
    } else {
        for (int64_t j = 0; j < n4; j += 4)
            for (int k = 0; k < 4; k++) RQ_CODE_ERR(j + k, 1.0);
        for (int64_t j = n4; j < n; j++) RQ_CODE_ERR(j, 1.0);
    }
#undef RQ_CODE_ERR
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* One least-squares step: with the codes q_j fixed, the (s', z') that minimize
 * Σ imp_j (w_j − s'(q_j − z'))², i.e. the weighted linear regression of w on q (slope s',
 * intercept −s'z'; symmetric: z' = z fixed, slope only), both rounded through fp16.
 * Returns false when the regression is degenerate (one distinct code, s' <= 0). */
static bool ls_step(int bits, bool symmetric, const double *code, float *s, float *z, const double *w,
                    const double *imp, int64_t n) {
    double A = 0, B = 0, C = 0, D = 0, E = 0; /* Σ i q², Σ i q, Σ i, Σ i q w, Σ i w */
    double zs = symmetric ? *z : 0.0;
    for (int64_t j = 0; j < n; j++) {
        double i = imp ? imp[j] : 1.0, q = code[j] - zs;
        A += i * q * q;
        B += i * q;
        C += i;
        D += i * q * w[j];
        E += i * w[j];
    }
    double slope, icept = 0;
    if (symmetric) {
        if (!(A > 0)) return false;
        slope = D / A;
    } else {
        double det = A * C - B * B;
        if (!(det > 1e-12 * A * C)) return false;
        slope = (C * D - B * E) / det;
        icept = (A * E - B * D) / det;
    }
    if (!(slope > 0) || !isfinite(slope)) return false;
    float ns = stored_scale(slope);
    float nz = symmetric ? *z : rq_quant_round_fp16((float)(-icept / ns));
    if (!isfinite(nz) || fabsf(nz) > 2.0f * (float)(1 << bits)) return false;
    *s = ns;
    *z = nz;
    return true;
}

void rq_uniform_fit_ls(const rq_uniform_cfg *cfg, const double *w, const double *imp, int64_t n,
                       float *scale, float *zero) {
    const float *grid = cfg->n_clip > 0 ? cfg->clip : &clip_one;
    int ngrid = cfg->n_clip > 0 ? cfg->n_clip : 1;
    double code_buf[2][256], *heap = NULL;
    double *code = code_buf[0], *code2 = code_buf[1];
    if (n > 256) {
        heap = rq_xalloc(2 * n * (int64_t)sizeof(double));
        code = heap, code2 = heap + n;
    }
    double best = INFINITY;
    for (int k = 0; k < ngrid; k++) {
        float s, z;
        if (cfg->half_zero) {
            double m = 0;
            for (int64_t j = 0; j < n; j++) m = fabs(w[j]) > m ? fabs(w[j]) : m;
            z = 0.5f * (float)((1 << cfg->bits) - 1);
            s = m > 0 ? stored_scale(grid[k] * m / z) : 1.0f;
        } else {
            int zi;
            rq_uniform_params(cfg->bits, cfg->symmetric, grid[k], w, n, &s, &zi);
            z = (float)zi;
        }
        double err = codes_err(cfg->bits, s, z, w, imp, n, code);
        for (int it = 0; it < RQ_UNIFORM_LS_ITERS; it++) {
            float s2 = s, z2 = z;
            if (!ls_step(cfg->bits, cfg->symmetric || cfg->half_zero, code, &s2, &z2, w, imp, n)) break;
            double e2 = codes_err(cfg->bits, s2, z2, w, imp, n, code2);
            if (!(e2 < err)) break;
            double *t = code;
            code = code2, code2 = t;
            s = s2, z = z2, err = e2;
        }
        if (err < best) {
            best = err;
            *scale = s;
            *zero = z;
        }
    }
    rq_free(heap);
}

static void uq_fit(const rq_group_quantizer *q, const double *w, const double *imp, int64_t n,
                   float *param) {
    const rq_uniform_cfg *cfg = q->cfg;
    if (cfg->least_squares) {
        rq_uniform_fit_ls(cfg, w, imp, n, &param[0], &param[1]);
        return;
    }
    float s;
    int z;
    rq_uniform_fit(cfg, w, imp, n, &s, &z);
    param[0] = s;
    param[1] = (float)z;
}

static int uq_quant(const rq_group_quantizer *q, const float *param, double w, double *wq) {
    const rq_uniform_cfg *cfg = q->cfg;
    if (cfg->least_squares) {
        int code = rq_uniform_code_f(cfg->bits, param[0], param[1], w);
        *wq = rq_uniform_dequant_f(param[0], param[1], code);
        return code;
    }
    int z = (int)param[1];
    int code = rq_uniform_code(cfg->bits, param[0], z, w);
    *wq = rq_uniform_dequant(param[0], z, code);
    return code;
}

rq_group_quantizer rq_uniform_quantizer(const rq_uniform_cfg *cfg) {
    rq_group_quantizer q = {
        .name = "uniform",
        .n_param = 2,
        .max_code = (1 << cfg->bits) - 1,
        .fit = uq_fit,
        .quant = uq_quant,
        .cfg = cfg,
    };
    return q;
}

rq_status rq_uniform_quantize(const rq_uniform_cfg *cfg, const float *w, int64_t out, int64_t in,
                              int64_t group, const float *imp, uint8_t *codes, float *scales,
                              uint8_t *zeros, float *deq) {
    RQ_TRY(rq_uniform_cfg_check(cfg));
    if (cfg->least_squares) /* its zero points are not integers: use rq_uniform_quantizer */
        return rq_errorf(RQ_EINVAL, "uniform quantizer: integer zero points requested with the least-squares fit");
    if (out <= 0 || in <= 0 || group <= 0 || in % group != 0)
        return rq_errorf(RQ_EINVAL, "uniform quantizer: group size %lld for shape [%lld, %lld]",
                         (long long)group, (long long)out, (long long)in);
    int64_t np = out * (in / group);
    float *params = rq_alloc(np * 2 * (int64_t)sizeof(float)); /* [out, in/group, 2] */
    if (!params) return RQ_ENOMEM;
    rq_group_quantizer q = rq_uniform_quantizer(cfg);
    rq_status st = rq_quant_rtn(&q, w, out, in, group, imp, codes, params, deq);
    if (st == RQ_OK)
        for (int64_t i = 0; i < np; i++) {
            scales[i] = params[2 * i];
            zeros[i] = (uint8_t)params[2 * i + 1];
        }
    rq_free(params);
    return st;
}

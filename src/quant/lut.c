#include "quant/lut.h"

#include <math.h>

int rq_lut_code(const float levels[RQ_LUT_LEVELS], double w) {
    int code = 0;
    for (int k = 0; k < RQ_LUT_LEVELS - 1; k++)
        code += w > 0.5 * ((double)levels[k] + (double)levels[k + 1]);
    return code;
}

void rq_lut_fit(const rq_lut_cfg *cfg, const double *w, const double *imp, int64_t n,
                float levels[RQ_LUT_LEVELS]) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        lo = fmin(lo, w[j]);
        hi = fmax(hi, w[j]);
    }
    if (!(lo <= hi)) lo = hi = 0; /* n == 0 or all NaN */
    double v[RQ_LUT_LEVELS];
    for (int k = 0; k < RQ_LUT_LEVELS; k++) v[k] = lo + k * (hi - lo) / (RQ_LUT_LEVELS - 1);
    for (int it = 0; it < cfg->iters && hi > lo; it++) {
        double sw[RQ_LUT_LEVELS] = {0}, swx[RQ_LUT_LEVELS] = {0};
        double t[RQ_LUT_LEVELS - 1];
        for (int k = 0; k < RQ_LUT_LEVELS - 1; k++) t[k] = 0.5 * (v[k] + v[k + 1]);
        for (int64_t j = 0; j < n; j++) {
            int c = (w[j] > t[0]) + (w[j] > t[1]) + (w[j] > t[2]);
            double a = imp ? imp[j] : 1.0;
            sw[c] += a;
            swx[c] += a * w[j];
        }
        int changed = 0;
        for (int k = 0; k < RQ_LUT_LEVELS; k++) {
            if (sw[k] <= 0) continue; /* empty cell keeps its level */
            double nv = swx[k] / sw[k];
            changed |= nv != v[k];
            v[k] = nv;
        }
        if (!changed) break;
    }
    for (int k = 0; k < RQ_LUT_LEVELS; k++) levels[k] = rq_quant_round_fp16((float)v[k]);
}

static void lq_fit(const rq_group_quantizer *q, const double *w, const double *imp, int64_t n,
                   float *param) {
    rq_lut_fit(q->cfg, w, imp, n, param);
}

static int lq_quant(const rq_group_quantizer *q, const float *param, double w, double *wq) {
    int code = rq_lut_code(param, w);
    *wq = param[code];
    return code;
}

rq_group_quantizer rq_lut_quantizer(const rq_lut_cfg *cfg) {
    rq_group_quantizer q = {
        .name = "lut",
        .n_param = RQ_LUT_LEVELS,
        .max_code = RQ_LUT_LEVELS - 1,
        .fit = lq_fit,
        .quant = lq_quant,
        .cfg = cfg,
    };
    return q;
}

rq_status rq_lut_quantize(const rq_lut_cfg *cfg, const float *w, int64_t out, int64_t in,
                          int64_t group, const float *imp, uint8_t *codes, float *levels,
                          float *deq) {
    if (cfg->iters < 0)
        return rq_errorf(RQ_EINVAL, "lut quantizer: %d Lloyd iterations", cfg->iters);
    rq_group_quantizer q = rq_lut_quantizer(cfg);
    return rq_quant_rtn(&q, w, out, in, group, imp, codes, levels, deq);
}

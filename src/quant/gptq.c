#include "quant/gptq.h"

#include "base/exact_sum.h"
#include "base/mpi.h"
#include "base/pool.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPTQ_TILE 16 /* rows per solve task: a fixed size, so results do not depend on -t */

/* ---------------- Hessian ---------------- */

rq_status rq_hessian_init(rq_hessian *h, int64_t d) {
    memset(h, 0, sizeof *h);
    int64_t dd;
    if (d <= 0 || d > INT_MAX || !rq_mul_ok(d, d, &dd) || dd > INT64_MAX / 8)
        return rq_errorf(RQ_EINVAL, "hessian: bad input dimension %lld", (long long)d);
    h->sum = rq_calloc(dd * (int64_t)sizeof(double));
    h->lo = h->sum ? rq_calloc(dd * (int64_t)sizeof(double)) : NULL;
    h->chunk = h->lo ? rq_alloc(dd * (int64_t)sizeof(float)) : NULL;
    if (!h->chunk) {
        rq_free(h->sum);
        rq_free(h->lo);
        h->sum = h->lo = NULL;
        return RQ_ENOMEM;
    }
    h->d = d;
    return RQ_OK;
}

void rq_hessian_add(rq_hessian *h, const float *x, int64_t n) {
    int64_t d = h->d;
    for (int64_t r = 0; r < n; r += RQ_HESSIAN_CHUNK) {
        int64_t m = n - r < RQ_HESSIAN_CHUNK ? n - r : RQ_HESSIAN_CHUNK;
        /* chunk = Xcᵀ Xc, upper triangle (row-major) */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0f, x + r * d,
                    (int)d, 0.0f, h->chunk, (int)d);
        for (int64_t i = 0; i < d; i++) {
            double *s = h->sum + i * d, *lo = h->lo + i * d;
            const float *c = h->chunk + i * d;
            for (int64_t j = i; j < d; j++) rq_exact_add(&s[j], &lo[j], c[j]);
        }
    }
    h->n += n;
}

void rq_hessian_get(const rq_hessian *h, double *H) {
    int64_t d = h->d;
    double f = h->n > 0 ? 2.0 / (double)h->n : 0.0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++)
            H[i * d + j] = H[j * d + i] = f * rq_exact_value(h->sum[i * d + j], h->lo[i * d + j]);
}

rq_status rq_hessian_reduce(rq_hessian *h) {
    if (rq_mpi_size() == 1) return RQ_OK;
    int64_t d = h->d, np = d * (d + 1) / 2;
    double *pairs = rq_alloc(np * 2 * (int64_t)sizeof(double)); /* [np, 2] the upper triangle */
    if (!pairs) return RQ_ENOMEM;
    for (int64_t i = 0, k = 0; i < d; i++)
        for (int64_t j = i; j < d; j++, k++) pairs[2 * k] = h->sum[i * d + j], pairs[2 * k + 1] = h->lo[i * d + j];
    rq_status s = rq_mpi_sum_exact(pairs, np);
    if (s == RQ_OK) s = rq_mpi_sum_i64(&h->n, 1);
    for (int64_t i = 0, k = 0; i < d && s == RQ_OK; i++)
        for (int64_t j = i; j < d; j++, k++) h->sum[i * d + j] = pairs[2 * k], h->lo[i * d + j] = pairs[2 * k + 1];
    rq_free(pairs);
    return s;
}

void rq_hessian_free(rq_hessian *h) {
    rq_free(h->sum);
    rq_free(h->lo);
    rq_free(h->chunk);
    memset(h, 0, sizeof *h);
}

/* ---------------- solve ---------------- */

rq_gptq_cfg rq_gptq_cfg_default(void) {
    rq_gptq_cfg c = {
        .damp = 0.01,
        .shrink = 0,
        .group = 0,
        .block = 128,
        .act_order = false,
        .static_groups = false,
        .fit_importance = false,
        .max_retries = 6,
    };
    return c;
}

/* End of the block starting at i1: group starts always begin a block (see gptq.h). */
static int64_t block_end(int64_t i1, int64_t d, int64_t g, int64_t B) {
    int64_t e;
    if (g <= B) {
        e = i1 + (B / g) * g;
    } else {
        int64_t next_group = (i1 / g + 1) * g;
        e = i1 + B < next_group ? i1 + B : next_group;
    }
    return e < d ? e : d;
}

typedef struct {
    const rq_group_quantizer *q;
    int64_t out, d, g, B;
    bool dynamic;
    double *W;            /* [out, d] permuted; a column becomes its dequantized value */
    const double *U;      /* [d, d] upper Cholesky factor of H⁻¹ (permuted) */
    const double *imp;    /* [d] permuted diag(H) for fit, or NULL */
    const int64_t *perm;  /* [d] original column of permuted position i */
    float *params;        /* [out, d/g, n_param] */
    uint8_t *codes;       /* [out, d] permuted */
    float *pre;           /* [out, d] original order, or NULL (rq_gptq_cfg.pre) */
    double *tile_loss;    /* [n_tiles] */
} solve_ctx;

static void solve_tiles(void *vctx, int64_t t0, int64_t t1, int thread) {
    const solve_ctx *c = vctx;
    const rq_group_quantizer *q = c->q;
    int64_t d = c->d, g = c->g, ng = d / g, np = q->n_param, G = g * rq_quantizer_span(q);
    double *E = rq_xalloc(GPTQ_TILE * c->B * (int64_t)sizeof(double)); /* [tile rows, block] */
    for (int64_t t = t0; t < t1; t++) {
        int64_t r0 = t * GPTQ_TILE, r1 = r0 + GPTQ_TILE < c->out ? r0 + GPTQ_TILE : c->out;
        double loss = 0;
        for (int64_t i1 = 0, i2; i1 < d; i1 = i2) {
            i2 = block_end(i1, d, G, c->B);
            int64_t nb = i2 - i1;
            for (int64_t r = r0; r < r1; r++) {
                double *wr = c->W + r * d;
                double *er = E + (r - r0) * nb;
                const float *p = NULL;
                for (int64_t i = i1; i < i2; i++) {
                    if (c->dynamic) {
                        p = c->params + (r * ng + i / g) * np;
                        if (i % G == 0) /* W[r, i..i+G) is fully updated here */
                            q->fit(q, wr + i, c->imp ? c->imp + i : NULL, G, (float *)p);
                    } else {
                        p = c->params + (r * ng + c->perm[i] / g) * np;
                    }
                    double wq;
                    if (c->pre) c->pre[r * d + c->perm[i]] = (float)wr[i];
                    int code = q->quant(q, p, wr[i], &wq);
                    c->codes[r * d + i] = (uint8_t)code;
                    const double *ui = c->U + i * d;
                    double e = (wr[i] - wq) / ui[i];
                    wr[i] = wq;
                    for (int64_t j = i + 1; j < i2; j++) wr[j] -= e * ui[j];
                    er[i - i1] = e;
                    loss += 0.5 * e * e;
                }
            }
            if (i2 < d) /* W[tile, i2:] -= E · U[i1:i2, i2:] */
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0),
                            (int)(d - i2), (int)nb, -1.0, E, (int)nb, c->U + i1 * d + i2, (int)d,
                            1.0, c->W + r0 * d + i2, (int)d);
        }
        c->tile_loss[t] = loss;
    }
    rq_free(E);
}

typedef struct {
    const rq_group_quantizer *q;
    const double *W, *imp;
    int64_t d, g;
    float *params;
} static_ctx;

static void fit_static_rows(void *vctx, int64_t r0, int64_t r1, int thread) {
    const static_ctx *c = vctx;
    int64_t ng = c->d / c->g, span = rq_quantizer_span(c->q);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t k = 0; k < ng; k += span)
            c->q->fit(c->q, c->W + r * c->d + k * c->g, c->imp ? c->imp + k * c->g : NULL, c->g * span,
                      c->params + (r * ng + k) * c->q->n_param);
}

typedef struct {
    double key;
    int64_t index;
} keyed;

static int by_decreasing_key(const void *va, const void *vb) {
    const keyed *a = va, *b = vb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index); /* ties keep index order */
}

/* Cholesky of A = Hp + λ·mean·I, its inverse, Cholesky of the inverse, all in A:
 * A is row-major, which LAPACK (column-major, 'L') sees as the transpose, so the lower
 * factor it computes is our upper U with H⁻¹ = UᵀU. Returns the first LAPACK info != 0. */
static int factor(const double *Hp, double *A, int64_t d, double shift) {
    memcpy(A, Hp, (size_t)(d * d) * sizeof(double));
    for (int64_t i = 0; i < d; i++) A[i * d + i] += shift;
    int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (int)d, A, (int)d);
    if (info == 0) info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (int)d, A, (int)d);
    if (info == 0) info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (int)d, A, (int)d);
    if (info == 0)
        for (int64_t i = 0; i < d; i++) {
            if (!(A[i * d + i] > 0) || !isfinite(A[i * d + i])) return -1;
            for (int64_t j = 0; j < i; j++) A[i * d + j] = 0; /* strict lower: unused */
        }
    return info;
}

rq_status rq_gptq_quantize(const rq_gptq_cfg *cfg, const rq_group_quantizer *q, const double *H,
                           const float *w, int64_t out, int64_t d, uint8_t *codes, float *params,
                           float *deq, int32_t *g_idx, rq_gptq_info *info) {
    RQ_ASSERT(q && q->fit && q->quant && q->n_param <= RQ_QUANT_MAX_PARAM && q->max_code <= 255);
    int64_t g = cfg->group ? cfg->group : d;
    int64_t dd, od;
    if (out <= 0 || d <= 0 || out > INT_MAX || d > INT_MAX || !rq_mul_ok(d, d, &dd) ||
        !rq_mul_ok(out, d, &od))
        return rq_errorf(RQ_EINVAL, "gptq: bad shape [%lld, %lld]", (long long)out, (long long)d);
    if (g <= 0 || d % (g * rq_quantizer_span(q)) != 0)
        return rq_errorf(RQ_EINVAL, "gptq: group size %lld (x %lld per fit) does not divide %lld input columns",
                         (long long)g, (long long)rq_quantizer_span(q), (long long)d);
    if (rq_quantizer_span(q) > 1 && cfg->act_order && !cfg->static_groups)
        return rq_errorf(RQ_EINVAL, "gptq: %s fits %lld groups together: act-order needs static groups", q->name,
                         (long long)rq_quantizer_span(q));
    if (!(cfg->shrink >= 0 && cfg->shrink <= 1))
        return rq_errorf(RQ_EINVAL, "gptq: Hessian shrinkage %g is not in [0, 1]", cfg->shrink);
    if (cfg->block <= 0 || !(cfg->damp >= 0 && isfinite(cfg->damp)) || cfg->max_retries < 0)
        return rq_errorf(RQ_EINVAL, "gptq: bad block %lld / damping %g / retries %d",
                         (long long)cfg->block, cfg->damp, cfg->max_retries);

    rq_gptq_info inf = {0};
    int64_t n_tiles = (out + GPTQ_TILE - 1) / GPTQ_TILE;
    double *Hp = rq_alloc(dd * (int64_t)sizeof(double));  /* [d, d] permuted, dead fixed */
    double *A = rq_alloc(dd * (int64_t)sizeof(double));   /* [d, d] factor work, then U */
    double *W = rq_alloc(od * (int64_t)sizeof(double));   /* [out, d] original order */
    double *Wp = rq_alloc(od * (int64_t)sizeof(double));  /* [out, d] permuted */
    uint8_t *codes_p = rq_alloc(od);                       /* [out, d] permuted */
    double *dg = rq_alloc(2 * d * (int64_t)sizeof(double)); /* [d] diag H, [d] permuted */
    int64_t *perm = rq_alloc(d * (int64_t)sizeof(int64_t));
    double *tile_loss = rq_alloc(n_tiles * (int64_t)sizeof(double));
    rq_status st = RQ_OK;
    if (!Hp || !A || !W || !Wp || !codes_p || !dg || !perm || !tile_loss) {
        st = RQ_ENOMEM;
        goto done;
    }
    double *dgp = dg + d;

    /* 1. dead inputs */
    for (int64_t i = 0; i < d; i++) {
        dg[i] = H[i * d + i];
        if (dg[i] == 0) {
            dg[i] = 1;
            inf.n_dead++;
        }
    }
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) W[r * d + i] = H[i * d + i] == 0 ? 0.0 : w[r * d + i];

    /* 2. static groups, on the original order */
    if (cfg->static_groups) {
        static_ctx sc = {q, W, cfg->fit_importance ? dg : NULL, d, g, params};
        rq_parallel_for(out, 1, fit_static_rows, &sc);
    }

    /* 3. act-order */
    for (int64_t i = 0; i < d; i++) perm[i] = i;
    if (cfg->act_order) {
        keyed *kd = rq_alloc(d * (int64_t)sizeof(keyed));
        if (!kd) {
            st = RQ_ENOMEM;
            goto done;
        }
        for (int64_t i = 0; i < d; i++) kd[i] = (keyed){dg[i], i};
        qsort(kd, (size_t)d, sizeof(keyed), by_decreasing_key);
        for (int64_t i = 0; i < d; i++) perm[i] = kd[i].index;
        rq_free(kd);
    }
    for (int64_t i = 0; i < d; i++) {
        int64_t a = perm[i];
        dgp[i] = dg[a];
        for (int64_t j = 0; j < d; j++) {
            int64_t b = perm[j];
            Hp[i * d + j] = a <= b ? H[a * d + b] : H[b * d + a];
        }
        Hp[i * d + i] = dg[a];
    }
    /* shrinkage towards the diagonal: the off-diagonal correlations carry the error feedback
     * that fits the calibration text; the diagonal alone is an importance matrix */
    if (cfg->shrink > 0)
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                if (i != j) Hp[i * d + j] *= 1.0 - cfg->shrink;
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) Wp[r * d + i] = W[r * d + perm[i]];

    /* 4. damping, Cholesky, inverse, Cholesky; raise the damping if not positive definite */
    double mean = 0;
    for (int64_t i = 0; i < d; i++) mean += dg[i];
    mean /= (double)d;
    double lambda = cfg->damp;
    int linfo = 0;
    for (;;) {
        linfo = factor(Hp, A, d, lambda * mean);
        if (linfo == 0) break;
        if (inf.retries == cfg->max_retries) {
            st = rq_errorf(RQ_EINVAL,
                           "gptq: Hessian not positive definite even with damping %g "
                           "(LAPACK info %d after %d retries)",
                           lambda, linfo, inf.retries);
            goto done;
        }
        if (inf.retries == 0)
            snprintf(inf.warning, sizeof inf.warning,
                     "gptq: Cholesky failed with damping %g (LAPACK info %d); damping raised",
                     lambda, linfo);
        inf.retries++;
        lambda = lambda > 0 ? lambda * 10 : 0.01;
    }
    if (inf.retries > 0) {
        size_t len = strlen(inf.warning);
        snprintf(inf.warning + len, sizeof inf.warning - len, " to %g after %d retries", lambda,
                 inf.retries);
    }
    inf.damp = lambda;

    /* 5. the solve, rows in parallel; OpenBLAS single-threaded inside the pool's tasks */
    solve_ctx c = {
        .q = q, .out = out, .d = d, .g = g, .B = cfg->block, .dynamic = !cfg->static_groups,
        .W = Wp, .U = A, .imp = cfg->fit_importance ? dgp : NULL, .perm = perm,
        .params = params, .codes = codes_p, .pre = cfg->pre, .tile_loss = tile_loss,
    };
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rq_parallel_for(n_tiles, 1, solve_tiles, &c);
    openblas_set_num_threads(blas_threads);

    /* 6. loss, and back to the original column order */
    for (int64_t t = 0; t < n_tiles; t++) inf.loss += tile_loss[t];
    for (int64_t r = 0; r < out; r++)
        for (int64_t i = 0; i < d; i++) {
            codes[r * d + perm[i]] = codes_p[r * d + i];
            if (deq) deq[r * d + perm[i]] = (float)Wp[r * d + i];
        }
    if (g_idx)
        for (int64_t i = 0; i < d; i++)
            g_idx[perm[i]] = (int32_t)(cfg->static_groups ? perm[i] / g : i / g);

done:
    if (info) *info = inf;
    rq_free(Hp);
    rq_free(A);
    rq_free(W);
    rq_free(Wp);
    rq_free(codes_p);
    rq_free(dg);
    rq_free(perm);
    rq_free(tile_loss);
    return st;
}

rq_status rq_gptq_quantize_uniform(const rq_gptq_cfg *cfg, const rq_uniform_cfg *ucfg,
                                   const double *H, const float *w, int64_t out, int64_t d,
                                   uint8_t *codes, float *scales, uint8_t *zeros, float *deq,
                                   int32_t *g_idx, rq_gptq_info *info) {
    RQ_TRY(rq_uniform_cfg_check(ucfg));
    int64_t g = cfg->group ? cfg->group : d;
    if (out <= 0 || d <= 0 || g <= 0 || d % g != 0)
        return rq_errorf(RQ_EINVAL, "gptq: group size %lld for shape [%lld, %lld]",
                         (long long)g, (long long)out, (long long)d);
    int64_t np = out * (d / g);
    float *params = rq_alloc(np * 2 * (int64_t)sizeof(float)); /* [out, d/g, 2] */
    if (!params) return RQ_ENOMEM;
    rq_group_quantizer q = rq_uniform_quantizer(ucfg);
    rq_status st = rq_gptq_quantize(cfg, &q, H, w, out, d, codes, params, deq, g_idx, info);
    if (st == RQ_OK)
        for (int64_t i = 0; i < np; i++) {
            scales[i] = params[2 * i];
            zeros[i] = (uint8_t)params[2 * i + 1];
        }
    rq_free(params);
    return st;
}

rq_status rq_gptq_quantize_lut(const rq_gptq_cfg *cfg, const rq_lut_cfg *lcfg, const double *H,
                               const float *w, int64_t out, int64_t d, uint8_t *codes,
                               float *levels, float *deq, int32_t *g_idx, rq_gptq_info *info) {
    if (lcfg->iters < 0)
        return rq_errorf(RQ_EINVAL, "lut quantizer: %d Lloyd iterations", lcfg->iters);
    rq_group_quantizer q = rq_lut_quantizer(lcfg);
    return rq_gptq_quantize(cfg, &q, H, w, out, d, codes, levels, deq, g_idx, info);
}

/* Backward operations (train/ops.h). */
#include "train/ops.h"

#include "base/pool.h"
#include "base/status.h"
#include "model/blas_threads.h"

#include <math.h>
#include <string.h>

/* Fixed work-item sizes: the split (and so every float result) does not depend on the
 * thread count. */
#define ROWS_PER_ITEM 16
#define GEMM_COLS_PER_ITEM 64

void rq_train_embed_backward(const float *dx, const int32_t *tok, int64_t n, int64_t d, float scale, float *dE) {
    for (int64_t i = 0; i < n; i++) {
        float *row = dE + (int64_t)tok[i] * d;
        const float *g = dx + i * d;
        for (int64_t j = 0; j < d; j++) row[j] += scale * g[j];
    }
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

typedef struct {
    const float *x, *g, *dy;
    int64_t n, d;
    float eps;
    float *dx, *dg, *r; /* r [n]: the rows' 1/rms */
    bool accumulate;
} rms_job;

static void rms_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rms_job *j = ctx;
    int64_t d = j->d;
    for (int64_t i = b; i < e; i++) {
        const float *x = j->x + i * d, *dy = j->dy + i * d;
        double ss = 0, dot = 0;
        for (int64_t k = 0; k < d; k++) {
            ss += (double)x[k] * x[k];
            dot += (double)j->g[k] * dy[k] * x[k];
        }
        double r = 1.0 / sqrt(ss / (double)d + (double)j->eps);
        j->r[i] = (float)r;
        float a = (float)r, c = (float)(r * r * r * dot / (double)d);
        float *dx = j->dx + i * d;
        if (j->accumulate)
            for (int64_t k = 0; k < d; k++) dx[k] += a * j->g[k] * dy[k] - c * x[k];
        else
            for (int64_t k = 0; k < d; k++) dx[k] = a * j->g[k] * dy[k] - c * x[k];
    }
}

static void rms_cols(void *ctx, int64_t b, int64_t e, int thread) {
    const rms_job *j = ctx;
    for (int64_t k = b; k < e; k++) {
        double s = 0;
        for (int64_t i = 0; i < j->n; i++) s += (double)j->dy[i * j->d + k] * j->x[i * j->d + k] * j->r[i];
        j->dg[k] += (float)s;
    }
}

void rq_train_rmsnorm_backward(const float *x, const float *g, const float *dy, int64_t n, int64_t d, float eps,
                               float *dx, bool accumulate, float *dg) {
    float *r = rq_xalloc(n * (int64_t)sizeof(float));
    rms_job j = {.x = x, .g = g, .dy = dy, .n = n, .d = d, .eps = eps, .dx = dx, .dg = dg, .r = r,
                 .accumulate = accumulate};
    rq_parallel_for(n, ROWS_PER_ITEM, rms_rows, &j);
    if (dg) rq_parallel_for(d, ROWS_PER_ITEM, rms_cols, &j);
    rq_free(r);
}

/* ---- linear -------------------------------------------------------------------------- */

typedef struct {
    const float *w, *x, *dy;
    int64_t n, n_out, n_in;
    float *dx, *dw;
    bool accumulate;
    int64_t n_dx_items; /* items [0, n_dx_items): column blocks of dx; then row blocks of dW */
} lin_job;

static void lin_items(void *ctx, int64_t b, int64_t e, int thread) {
    const lin_job *j = ctx;
    for (int64_t it = b; it < e; it++) {
        if (it < j->n_dx_items) { /* dx[:, c0:c1] (+)= dy · W[:, c0:c1] */
            int64_t c0 = it * GEMM_COLS_PER_ITEM, c1 = c0 + GEMM_COLS_PER_ITEM < j->n_in ? c0 + GEMM_COLS_PER_ITEM : j->n_in;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->n, (int)(c1 - c0), (int)j->n_out, 1.0f,
                        j->dy, (int)j->n_out, j->w + c0, (int)j->n_in, j->accumulate ? 1.0f : 0.0f, j->dx + c0,
                        (int)j->n_in);
        } else { /* dW[r0:r1, :] += dy[:, r0:r1]ᵀ · x */
            int64_t r0 = (it - j->n_dx_items) * GEMM_COLS_PER_ITEM;
            int64_t r1 = r0 + GEMM_COLS_PER_ITEM < j->n_out ? r0 + GEMM_COLS_PER_ITEM : j->n_out;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(r1 - r0), (int)j->n_in, (int)j->n, 1.0f,
                        j->dy + r0, (int)j->n_out, j->x, (int)j->n_in, 1.0f, j->dw + r0 * j->n_in, (int)j->n_in);
        }
    }
}

void rq_train_linear_backward(const float *w, const float *x, const float *dy, int64_t n, int64_t n_out,
                              int64_t n_in, float *dx, bool accumulate, float *dw) {
    lin_job j = {.w = w, .x = x, .dy = dy, .n = n, .n_out = n_out, .n_in = n_in, .dx = dx, .dw = dw,
                 .accumulate = accumulate};
    j.n_dx_items = dx ? (n_in + GEMM_COLS_PER_ITEM - 1) / GEMM_COLS_PER_ITEM : 0;
    int64_t n_dw_items = dw ? (n_out + GEMM_COLS_PER_ITEM - 1) / GEMM_COLS_PER_ITEM : 0;
    int prev = rq_blas_single_begin();
    rq_parallel_for(j.n_dx_items + n_dw_items, 1, lin_items, &j);
    rq_blas_single_end(prev);
}

/* ---- RoPE ---------------------------------------------------------------------------- */

void rq_train_rope_backward(float *dx, const float *cos_, const float *sin_, int64_t rope_dim, bool neox) {
    int64_t h = rope_dim / 2;
    for (int64_t i = 0; i < h; i++) {
        int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + h : 2 * i + 1;
        float a = dx[i0], b = dx[i1], c = cos_[i], s = sin_[i];
        dx[i0] = a * c + b * s;
        dx[i1] = -a * s + b * c;
    }
}

/* ---- MLP activations ----------------------------------------------------------------- */

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

/* act(x) and act'(x) */
static inline void act_d(bool gelu, float x, float *a, float *da) {
    if (gelu) { /* x·σ(t), t = 2k(x + a x³) */
        float t = 2.0f * GELU_K * (x + GELU_A * x * x * x), sg = 1.0f / (1.0f + expf(-t));
        *a = x * sg;
        *da = sg + x * sg * (1.0f - sg) * 2.0f * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
    } else { /* silu: x·σ(x) */
        float sg = 1.0f / (1.0f + expf(-x));
        *a = x * sg;
        *da = sg * (1.0f + x * (1.0f - sg));
    }
}

void rq_train_mlp_act_backward(bool gelu, const float *g, const float *u, const float *dh, int64_t n, float *dg,
                               float *du, float *h) {
    for (int64_t i = 0; i < n; i++) {
        float a, da, ui = u[i], dhi = dh[i];
        act_d(gelu, g[i], &a, &da);
        if (h) h[i] = a * ui;
        dg[i] = dhi * ui * da;
        du[i] = dhi * a;
    }
}

void rq_train_mlp_act(bool gelu, const float *g, const float *u, int64_t n, float *h) {
    for (int64_t i = 0; i < n; i++) {
        float a, da;
        act_d(gelu, g[i], &a, &da);
        h[i] = a * u[i];
    }
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    const rq_train_attn_shape *a;
    const float *q, *k, *v, *dout;
    float *dq, *dk, *dv;
    float *scratch; /* [n_threads, 2, T, T] */
} att_job;

/* One item: sequence b, KV head kh, and the query heads of its group. */
static void att_items(void *ctx, int64_t b0, int64_t e0, int thread) {
    const att_job *j = ctx;
    const rq_train_attn_shape *a = j->a;
    int64_t T = a->T, hd = a->hd, qd = a->n_head * hd, kvd = a->n_kv * hd, group = a->n_head / a->n_kv;
    float *P = j->scratch + (int64_t)thread * 2 * T * T, *dP = P + T * T;
    for (int64_t item = b0; item < e0; item++) {
        int64_t b = item / a->n_kv, kh = item % a->n_kv, r0 = b * T;
        const float *K = j->k + r0 * kvd + kh * hd, *Vv = j->v + r0 * kvd + kh * hd;
        float *dK = j->dk + r0 * kvd + kh * hd, *dV = j->dv + r0 * kvd + kh * hd;
        for (int64_t t = 0; t < T; t++) {
            memset(dK + t * kvd, 0, (size_t)hd * sizeof(float));
            memset(dV + t * kvd, 0, (size_t)hd * sizeof(float));
        }
        for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
            const float *Q = j->q + r0 * qd + h * hd, *dO = j->dout + r0 * qd + h * hd;
            float *dQ = j->dq + r0 * qd + h * hd;
            /* P = softmax(scale·Q·Kᵀ) with the mask; masked entries exactly 0 */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, a->scale, Q, (int)qd, K,
                        (int)kvd, 0.0f, P, (int)T);
            for (int64_t t = 0; t < T; t++) {
                float *row = P + t * T;
                int64_t lo = a->window > 0 && t - a->window + 1 > 0 ? t - a->window + 1 : 0;
                float mx = -INFINITY;
                for (int64_t s = lo; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                double sum = 0;
                for (int64_t s = lo; s <= t; s++) sum += (row[s] = expf(row[s] - mx));
                float inv = (float)(1.0 / sum);
                for (int64_t s = 0; s < T; s++) row[s] = s >= lo && s <= t ? row[s] * inv : 0.0f;
            }
            /* dV += Pᵀ·dO;  dP = dO·Vᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, P, (int)T, dO,
                        (int)qd, 1.0f, dV, (int)kvd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, dO, (int)qd, Vv,
                        (int)kvd, 0.0f, dP, (int)T);
            /* dS = P∘(dP − rowsum(P∘dP)), scaled by `scale` here (S = scale·QKᵀ) */
            for (int64_t t = 0; t < T; t++) {
                float *p = P + t * T, *dp = dP + t * T;
                double dot = 0;
                for (int64_t s = 0; s <= t; s++) dot += (double)p[s] * dp[s];
                for (int64_t s = 0; s < T; s++) dp[s] = a->scale * p[s] * (dp[s] - (float)dot);
            }
            /* dQ = dS·K;  dK += dSᵀ·Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dP, (int)T, K,
                        (int)kvd, 0.0f, dQ, (int)qd);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dP, (int)T, Q,
                        (int)qd, 1.0f, dK, (int)kvd);
        }
    }
}

void rq_train_attention_backward(const rq_train_attn_shape *a, const float *q, const float *k, const float *v,
                                 const float *dout, float *dq, float *dk, float *dv) {
    RQ_ASSERT(a->n_head % a->n_kv == 0 && a->T >= 1);
    int nt = rq_threads_get();
    att_job j = {.a = a, .q = q, .k = k, .v = v, .dout = dout, .dq = dq, .dk = dk, .dv = dv};
    j.scratch = rq_xalloc((int64_t)nt * 2 * a->T * a->T * (int64_t)sizeof(float));
    int prev = rq_blas_single_begin();
    rq_parallel_for(a->n_seq * a->n_kv, 1, att_items, &j);
    rq_blas_single_end(prev);
    rq_free(j.scratch);
}

/* ---- losses -------------------------------------------------------------------------- */

typedef struct {
    const float *z, *zt;
    const int32_t *target;
    int64_t V;
    double gamma;
    float scale;
    float *dz;
    double *loss; /* [n] per row */
} loss_job;

/* log-sum-exp of a row, in double */
static double row_lse(const float *z, int64_t V) {
    float mx = z[0];
    for (int64_t k = 1; k < V; k++) mx = z[k] > mx ? z[k] : mx;
    double s = 0;
    for (int64_t k = 0; k < V; k++) s += exp((double)z[k] - mx);
    return mx + log(s);
}

static void xent_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const loss_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        const float *z = j->z + i * j->V;
        float *dz = j->dz + i * j->V;
        int32_t y = j->target[i];
        if (y < 0) {
            j->loss[i] = 0;
            memset(dz, 0, (size_t)j->V * sizeof(float));
            continue;
        }
        double lse = row_lse(z, j->V);
        j->loss[i] = lse - z[y];
        for (int64_t k = 0; k < j->V; k++) dz[k] = j->scale * (float)exp((double)z[k] - lse);
        dz[y] -= j->scale;
    }
}

double rq_train_xent(const float *z, const int32_t *target, int64_t n, int64_t V, float scale, float *dz) {
    double *loss = rq_xalloc(n * (int64_t)sizeof(double));
    loss_job j = {.z = z, .target = target, .V = V, .scale = scale, .dz = dz, .loss = loss};
    rq_parallel_for(n, 1, xent_rows, &j);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += loss[i];
    rq_free(loss);
    return s;
}

static void kl_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const loss_job *j = ctx;
    int64_t V = j->V;
    double g = j->gamma;
    for (int64_t i = b; i < e; i++) {
        const float *zs = j->z + i * V, *zt = j->zt + i * V;
        float *dz = j->dz + i * V;
        double ls = row_lse(zs, V), lt = row_lse(zt, V);
        /* KL(s‖t) = Σ p_s (log p_s − log p_t), KL(t‖s) = Σ p_t (log p_t − log p_s) */
        double kl_st = 0, kl_ts = 0;
        for (int64_t k = 0; k < V; k++) {
            double lps = zs[k] - ls, lpt = zt[k] - lt, d = lps - lpt;
            kl_st += exp(lps) * d;
            kl_ts -= exp(lpt) * d;
        }
        j->loss[i] = g * kl_st + (1 - g) * kl_ts;
        for (int64_t k = 0; k < V; k++) {
            double lps = zs[k] - ls, lpt = zt[k] - lt, ps = exp(lps), pt = exp(lpt);
            double d = (1 - g) * (ps - pt) + g * ps * (lps - lpt - kl_st);
            dz[k] = j->scale * (float)d;
        }
    }
}

double rq_train_kl(const float *zs, const float *zt, int64_t n, int64_t V, double gamma, float scale, float *dzs) {
    double *loss = rq_xalloc(n * (int64_t)sizeof(double));
    loss_job j = {.z = zs, .zt = zt, .V = V, .gamma = gamma, .scale = scale, .dz = dzs, .loss = loss};
    rq_parallel_for(n, 1, kl_rows, &j);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += loss[i];
    rq_free(loss);
    return s;
}

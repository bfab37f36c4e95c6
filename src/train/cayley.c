/* Cayley SGD on the orthogonal group (train/cayley.h). */
#include "train/cayley.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* q of the step bound η <= 2q/‖A‖ (Li et al.'s Cayley SGD) */
#define CAYLEY_Q 0.5
#define CAYLEY_EPS 1e-8

rq_status rq_cayley_step(double *R, const double *G, int64_t n, int64_t block, double lr, bool cap,
                         rq_cayley_info *info) {
    int64_t b = block > 0 ? block : n;
    RQ_ASSERT(n >= 1 && b <= n && n % b == 0);
    int64_t nb = n / b;
    double *A = rq_alloc(nb * b * b * (int64_t)sizeof(double)); /* [nb][b, b] the skew blocks */
    double *M = rq_alloc(2 * b * b * (int64_t)sizeof(double));   /* I + η/2·A and (I − η/2·A)·R_i */
    lapack_int *piv = rq_alloc(b * (int64_t)sizeof(lapack_int));
    if (!A || !M || !piv) {
        rq_free(A), rq_free(M), rq_free(piv);
        return RQ_ENOMEM;
    }
    /* A_i = P − Pᵀ with P = G_i R_iᵀ; ‖A‖²_F over all blocks */
    double nrm2 = 0;
    for (int64_t k = 0; k < nb; k++) {
        const double *Gk = G + k * b * n + k * b, *Rk = R + k * b * n + k * b;
        double *Ak = A + k * b * b, *P = M;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)b, (int)b, 1.0, Gk, (int)n, Rk, (int)n, 0.0,
                    P, (int)b);
        for (int64_t i = 0; i < b; i++)
            for (int64_t j = 0; j < b; j++) {
                double a = P[i * b + j] - P[j * b + i];
                Ak[i * b + j] = a;
                nrm2 += a * a;
            }
    }
    double an = sqrt(nrm2), eta = lr;
    if (cap && eta > 2 * CAYLEY_Q / (an + CAYLEY_EPS)) eta = 2 * CAYLEY_Q / (an + CAYLEY_EPS);
    if (info) info->lr = eta, info->a_norm = an;
    rq_status s = RQ_OK;
    if (!isfinite(an)) s = rq_errorf(RQ_EINVAL, "Cayley step: the gradient or the rotation is not finite");
    for (int64_t k = 0; k < nb && s == RQ_OK; k++) {
        double *Rk = R + k * b * n + k * b, *Ak = A + k * b * b, *L = M, *Y = M + b * b;
        for (int64_t i = 0; i < b; i++)
            for (int64_t j = 0; j < b; j++) L[i * b + j] = (i == j) + 0.5 * eta * Ak[i * b + j];
        /* Y = (I − η/2·A) R_k = R_k − η/2·A R_k */
        for (int64_t i = 0; i < b; i++) memcpy(Y + i * b, Rk + i * n, (size_t)b * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)b, (int)b, -0.5 * eta, Ak, (int)b, Rk,
                    (int)n, 1.0, Y, (int)b);
        lapack_int inf = LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)b, (lapack_int)b, L, (lapack_int)b, piv, Y,
                                       (lapack_int)b);
        if (inf != 0) s = rq_errorf(RQ_EINVAL, "Cayley step: singular system (LAPACK info %d)", (int)inf);
        else
            for (int64_t i = 0; i < b; i++) memcpy(Rk + i * n, Y + i * b, (size_t)b * sizeof(double));
    }
    rq_free(A), rq_free(M), rq_free(piv);
    return s;
}

double rq_orth_error(const double *R, int64_t n) {
    double *P = rq_xalloc(n * n * (int64_t)sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, R, (int)n, R, (int)n, 0.0, P,
                (int)n);
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d = P[i * n + j] - (i == j);
            e += d * d;
        }
    rq_free(P);
    return sqrt(e);
}

/* Cayley SGD on the orthogonal group (METHODS.md "Learned rotations (SpinQuant)"): the
 * update that keeps a learned rotation R [n, n] orthogonal.
 *
 * With G = ∂L/∂R the Euclidean gradient:
 *     A = G Rᵀ − R Gᵀ                       (skew-symmetric, n×n)
 *     R ← (I + η/2·A)⁻¹ (I − η/2·A) R       (the Cayley transform of −η·A, times R)
 * The Cayley transform of a skew-symmetric matrix is orthogonal, so R stays orthogonal in
 * exact arithmetic; to first order R ← R − η·(G − R Gᵀ R) and the loss changes by
 * −η·‖A‖²_F/2. Solved exactly (LU with partial pivoting, LAPACKE_dgesv, float64), not with
 * the fixed-point iteration: the matrices are at most the hidden size (576 for SmolLM2),
 * where the solve costs far less than one training step, and the exact solve leaves no
 * iteration error to drift.
 *
 * Step size: η = min(lr, 2q/(‖A‖_F + ε)) with q = ½ (the bound of Li, Li & Todorovic's
 * Cayley SGD, which SpinQuant's optimizer uses, so that its lr 1.5 is an upper bound on η:
 * η‖A‖ <= 1 keeps the step inside the region where the Cayley map is well conditioned).
 * cap = false uses η = lr as given.
 *
 * Block-diagonal rotations (a learned GSR/GH structure): R = blockdiag(R_1, ..., R_k) with
 * blocks of b (b divides n), stored as the dense n×n matrix with zero off-diagonal blocks.
 * Only G's diagonal blocks G_i enter: A = blockdiag(G_i R_iᵀ − R_i G_iᵀ), and since the
 * Cayley transform of a block-diagonal A is block-diagonal, each block takes its own
 * Cayley step R_i ← (I + η/2·A_i)⁻¹ (I − η/2·A_i) R_i with the one η of the whole A (the
 * exact restriction of the dense step to the block-diagonal subgroup). */
#ifndef RQ_TRAIN_CAYLEY_H
#define RQ_TRAIN_CAYLEY_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_cayley_info {
    double lr;     /* the η used */
    double a_norm; /* ‖A‖_F before the step */
} rq_cayley_info;

/* One step on R [n, n] (float64, row-major) with gradient G [n, n]. block: 0 or n = dense,
 * else the block size (dividing n; R's off-diagonal blocks are left as they are, zero for
 * a block-diagonal R). info may be NULL. Errors: a singular system (RQ_EINVAL: R or G not
 * finite), ENOMEM. */
rq_status rq_cayley_step(double *R, const double *G, int64_t n, int64_t block, double lr, bool cap,
                         rq_cayley_info *info);

/* ‖RᵀR − I‖_F of R [n, n] (float64; a float32 one: rotate/learned.h). */
double rq_orth_error(const double *R, int64_t n);

#endif

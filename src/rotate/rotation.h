/* Rotations: orthogonal matrices Q [n, n] (Q Qᵀ = I) described by a few values, built
 * densely or applied fast to rows (METHODS.md, row-vector convention: Y = X Q).
 *
 * Every Hadamard-based kind is
 *     Q = diag(s) · blockdiag(Q_b, ..., Q_b)        (n/b copies, b the block)
 *     Q_b = P_b H_b / √b
 * with H_b the Hadamard matrix of order b from rotate/hadamard.h, P_b the identity
 * (natural order) or the sequency permutation (Walsh order: row r of Q_b is H_b's row with
 * the r-th fewest sign changes), and s a seeded random ±1 vector of length n when
 * random_signs is set (all ones otherwise):
 *     hadamard    b = n, natural order   (QuaRot: random_signs = true)
 *     walsh       b = n, sequency order
 *     gh          b = block, natural order      (GH(n, b))
 *     gsr         b = block, sequency order     (GSR(n, b); the paper: no random signs)
 * orthogonal: Q from the QR decomposition of a seeded n×n standard Gaussian matrix
 * (columns' signs fixed so that R has a positive diagonal: Haar-distributed).
 * none: Q = I.
 * learned: a stored dense matrix (rotate/learned.h; learned by train/rotlearn.h), folded with
 * model/fold.h rq_fold_model_dense. The description only records that R was learned (n and
 * its block when block-diagonal); rq_rot_dense and rq_rot_plan_build refuse it.
 *
 * The fast apply never forms Q for the Hadamard kinds: signs and the sequency permutation
 * as one gather/scatter, H_b = B ⊗ S_p as an FWHT over runs of p plus a small dense mix
 * with the m×m base B (kernels/fwht.h). Cost per element: about log2(p) adds + m FMAs.
 * orthogonal uses a dense GEMM (cblas). */
#ifndef RQ_ROTATE_ROTATION_H
#define RQ_ROTATE_ROTATION_H

#include "base/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values are stored in files: only grow at the end. */
typedef enum rq_rot_kind {
    RQ_ROT_NONE = 0,
    RQ_ROT_HADAMARD = 1,   /* random ±1 diag × normalized Hadamard (QuaRot) */
    RQ_ROT_WALSH = 2,      /* normalized Walsh (sequency-ordered Hadamard) */
    RQ_ROT_GH = 3,         /* block-diagonal natural-order Hadamard blocks */
    RQ_ROT_GSR = 4,        /* block-diagonal Walsh blocks */
    RQ_ROT_ORTHOGONAL = 5, /* QR of a seeded Gaussian */
    RQ_ROT_LEARNED = 6,    /* a stored matrix (rotate/learned.h) */
} rq_rot_kind;
#define RQ_ROT_KIND_COUNT 7

/* What a rotation is; plain values, copy freely. */
typedef struct rq_rotation {
    rq_rot_kind kind;
    int64_t n;         /* size of the rotated row vectors */
    int64_t block;     /* gh/gsr: block size b (divides n, a Hadamard order); other kinds: 0 (or n) */
    bool random_signs; /* Hadamard kinds: multiply by diag(s), s seeded ±1 */
    uint64_t seed;     /* seeds s and the Gaussian of orthogonal */
} rq_rotation;

/* "none", "hadamard", "walsh", "gh", "gsr", "orthogonal", "learned" ("?" for a bad value). */
const char *rq_rot_kind_name(rq_rot_kind kind);
/* Parse one of the names above (exact, lower case); RQ_EINVAL for anything else. */
rq_status rq_rot_kind_parse(const char *name, rq_rot_kind *out);
/* The usual settings of a kind: random_signs on for hadamard only (QuaRot), off for the
 * others (the GSR paper uses none); block as given (0 for the full-size kinds). */
rq_rotation rq_rot_make(rq_rot_kind kind, int64_t n, int64_t block, uint64_t seed);
/* Check a description: n >= 1; gh/gsr need 1 <= block <= n dividing n; the other kinds
 * block 0 or n (learned: 0 or a block dividing n); the Hadamard order (b) must be
 * constructible. RQ_EINVAL /
 * RQ_EUNSUPPORTED with a message naming the value. */
rq_status rq_rot_validate(const rq_rotation *r);
/* "gsr(n=576, block=64)", "hadamard(n=576, signs, seed=7)", ... into buf (always
 * terminated); returns buf. */
const char *rq_rot_describe(const rq_rotation *r, char *buf, size_t size);

/* The dense matrix Q [n, n] (float, Q Qᵀ = I up to rounding), built directly from the
 * definition (dense Hadamard, sequency sort, signs) — the oracle for the fast apply.
 * *out is owned by the caller (rq_free). */
rq_status rq_rot_dense(const rq_rotation *r, float **out);

/* How widely an orthogonal Q [n, n] (row-major) mixes: the mean over its rows of the
 * participation ratio 1 / Σ_j q_ij⁴ (1 for a permutation, n for a Hadamard, b for GSR with
 * blocks of b). Outlier spreading needs it large. */
double rq_rot_mixing(const float *q, int64_t n);

/* A prepared rotation for fast application; owns its tables. Read-only once built, so
 * one plan may be used from several threads. */
typedef struct rq_rot_plan rq_rot_plan;

rq_status rq_rot_plan_build(const rq_rotation *r, rq_rot_plan **out);
/* A plan of a learned rotation r (kind learned) applying the given matrix q [r->n, r->n]
 * (row-major, orthogonal; copied) densely with cblas: an online learned rotation. */
rq_status rq_rot_plan_matrix(const rq_rotation *r, const float *q, rq_rot_plan **out);
/* The matrix a learned plan applies (n × n, owned by the plan; NULL for the other kinds),
 * and its replacement by another of the same size (not while the plan is in use). */
const float *rq_rot_plan_q(const rq_rot_plan *plan);
void rq_rot_plan_set_q(rq_rot_plan *plan, const float *q);
void rq_rot_plan_free(rq_rot_plan *plan);
const rq_rotation *rq_rot_plan_rotation(const rq_rot_plan *plan);
/* Description of the Hadamard construction of the blocks ("paley2(q=17) x sylvester(16)"),
 * or "" for none/orthogonal. Owned by the plan. */
const char *rq_rot_plan_hadamard_desc(const rq_rot_plan *plan);

/* y = x Q for `rows` rows: x [rows, n], y [rows, n]. y == x (in place) is allowed; other
 * overlaps are not. Spreads rows over the thread pool (base/pool.h) when there are many;
 * orthogonal and learned use cblas. */
void rq_rot_apply(const rq_rot_plan *plan, const float *x, float *y, int64_t rows);
/* y = x Qᵀ (the inverse rotation), same rules. */
void rq_rot_apply_t(const rq_rot_plan *plan, const float *x, float *y, int64_t rows);

#endif

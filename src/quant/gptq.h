/* GPTQ (Frantar et al., 2022) as METHODS.md states it, with a pluggable group quantizer.
 *
 * Hessian: H = 2 XᵀX / N from the layer's calibration inputs X [N, d], accumulated batch
 * by batch with rq_hessian. Each chunk of up to RQ_HESSIAN_CHUNK rows goes through
 * cblas_ssyrk (float32, the fast part: N·d² flops), and the chunk sums are added into a
 * float64 accumulator, exactly (pairs, base/exact_sum.h: H is the exact sum of the chunks
 * rounded once, whatever the order of the chunks or their split over MPI ranks). So the float32 rounding error is that of a 2048-term sum (about
 * 1e-6 relative), never growing with N, and the 2/N scaling happens once at the end (no
 * running-mean rescaling as in the float32 reference).
 *
 * Solve (rq_gptq_quantize), in float64 throughout: it costs O(out·d² + d³), small next to
 * the Hessian's O(N·d²), and float64 keeps the result independent of summation order to
 * ~1e-13, which lets the tests compare codes exactly with a simple column-by-column
 * implementation.
 *   1. dead inputs (H_ii = 0): H_ii = 1 and W[:, i] = 0;
 *   2. static groups: every group's parameters fitted upfront on this W, original order;
 *   3. act-order: columns permuted by decreasing H_ii (stable: ties keep index order);
 *   4. H += λ·mean(diag H)·I; Cholesky of H, inverse from it (dpotri), Cholesky again:
 *      U upper with H⁻¹ = UᵀU. If a factorization fails (not positive definite), λ is
 *      multiplied by 10 (0 becomes 0.01) and it is retried, up to max_retries times; the
 *      info records the retries and a warning;
 *   5. blocks of B columns; for each column i: at a group start (i % g == 0, in the
 *      processing order, unless static) fit the group's parameters from the current,
 *      error-updated W[:, i..i+g); q_i = quant(W[:, i]); e = (W[:, i] − q_i) / U_ii;
 *      W[:, i+1..block end] −= e ⊗ U[i, i+1..block end]; after the block
 *      W[:, rest] −= E_block · U[block, rest] (cblas_dgemm). Block ends are aligned to
 *      group starts (blocks of ⌊B/g⌋·g columns when g <= B, otherwise B-column pieces of
 *      each group), so a group's columns are fully updated when it is fitted; in exact
 *      arithmetic the result equals the column-by-column algorithm. (The reference code
 *      fits groups that start inside a block on values that lack that block's updates;
 *      METHODS.md asks for the current W, which is what we do.)
 *   6. loss = Σ e²/2; columns permuted back.
 * Rows are independent in steps 5-6, so they run in parallel on the pool (tiles of 16
 * rows, each with its own dgemm), with OpenBLAS set to 1 thread for the duration (and
 * restored after) so that its threads do not compete with the pool's.
 *
 * Groups with act-order: with dynamic groups (static_groups = false, like the reference),
 * group k is the permuted columns [k·g, (k+1)·g), so in the original order a group's
 * columns are scattered: g_idx [d] gives each original column's group. A file format with
 * contiguous groups needs static_groups = true (then g_idx[j] = j / g).
 *
 * A quantizer whose fit spans k > 1 groups (rq_group_quantizer.span: llama.cpp's K-quant
 * super-blocks, quant/ggquant.h) is fitted k·g columns at a time: upfront with static
 * groups, otherwise at every k·g-th column with blocks aligned to k·g (act-order then needs
 * static groups: RQ_EINVAL otherwise). */
#ifndef RQ_QUANT_GPTQ_H
#define RQ_QUANT_GPTQ_H

#include "quant/quantizer.h"
#include "quant/uniform.h"
#include "quant/lut.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- Hessian accumulation ---- */

#define RQ_HESSIAN_CHUNK 2048 /* rows per float32 ssyrk */

typedef struct rq_hessian {
    int64_t d;    /* input dimension */
    int64_t n;    /* rows accumulated so far */
    double *sum;  /* [d, d] Σ xᵀx over all rows, upper triangle (row-major), as exact pairs */
    double *lo;   /* [d, d] (base/exact_sum.h): the value is sum + lo, the exact sum of the chunks'
                   * float32 results, so it does not depend on the order they were added in */
    float *chunk; /* [d, d] one chunk's ssyrk result (scratch) */
} rq_hessian;

/* Allocates the accumulator (≈ 20·d² bytes); free with rq_hessian_free. */
rq_status rq_hessian_init(rq_hessian *h, int64_t d);
/* Adds the rows x [n, d] (any n >= 0; OpenBLAS threads the ssyrk). */
void rq_hessian_add(rq_hessian *h, const float *x, int64_t n);
/* H [d, d] = 2 Σ xᵀx / N, full symmetric, caller-owned; zeros if no row was added. */
void rq_hessian_get(const rq_hessian *h, double *H);
/* Under MPI (base/mpi.h): every rank's accumulator becomes the sum of all ranks' (exact,
 * rq_mpi_sum_exact; d(d+1)/2 pairs of float64 = 8·d(d+1) bytes through the reduction), so
 * the rows may be split over the ranks in any way and H comes out bit-identical to one
 * process adding them all. A no-op alone. */
rq_status rq_hessian_reduce(rq_hessian *h);
void rq_hessian_free(rq_hessian *h);

/* ---- the solve ---- */

typedef struct rq_gptq_cfg {
    double damp;        /* λ, relative to mean(diag H) (default 0.01) */
    double shrink;      /* α in [0, 1]: H's off-diagonal entries scaled by 1 − α before the solve
                         * (default 0; 1: diagonal H, each weight rounded to the nearest level of
                         * its H_ii-weighted group fit with no error feedback) */
    int64_t group;      /* g, divides d; 0 = per channel (g = d) */
    int64_t block;      /* lazy-batch width B (default 128) */
    bool act_order;     /* permute columns by decreasing H_ii */
    bool static_groups; /* fit all groups upfront on the original W and order */
    bool fit_importance; /* pass diag(H) of a group's columns to the quantizer's fit */
    int max_retries;    /* damping increases after a failed Cholesky (default 6) */
    float *pre;         /* optional output [out, d] (caller-owned, original column order): each
                         * weight's value at the moment it was rounded, i.e. the GPTQ-updated
                         * weights, whose nearest grid points are the codes (QAT starts its
                         * latent weights there); NULL: not kept */
} rq_gptq_cfg;

rq_gptq_cfg rq_gptq_cfg_default(void);

typedef struct rq_gptq_info {
    double loss;        /* Σ e²/2 over all weights */
    double damp;        /* λ finally used */
    int retries;        /* failed Cholesky attempts before success */
    int64_t n_dead;     /* inputs with H_ii = 0 */
    char warning[192];  /* "" or a message (e.g. damping retries) */
} rq_gptq_info;

/* Quantize W [out, d] with Hessian H [d, d] (symmetric; only the upper triangle is read).
 * Outputs, all caller-owned, in the original column order:
 *   codes  [out, d]                   codes in [0, q->max_code]
 *   params [out, d/g, q->n_param]     group k's parameters (k as in g_idx)
 *   deq    [out, d] or NULL           dequantized weights
 *   g_idx  [d] or NULL                group of each input column
 * info (may be NULL) receives the loss, damping and warnings. Returns RQ_EINVAL for a bad
 * shape or cfg, or when H stays non-positive-definite after max_retries damping raises;
 * RQ_ENOMEM if the work buffers (≈ 8·(2d² + out·d) bytes) cannot be allocated. */
rq_status rq_gptq_quantize(const rq_gptq_cfg *cfg, const rq_group_quantizer *q, const double *H,
                           const float *w, int64_t out, int64_t d, uint8_t *codes, float *params,
                           float *deq, int32_t *g_idx, rq_gptq_info *info);

/* GPTQ with the uniform quantizer: scales [out, d/g], zeros [out, d/g] as in uniform.h
 * (the clip grid of ucfg applies at every group fit). */
rq_status rq_gptq_quantize_uniform(const rq_gptq_cfg *cfg, const rq_uniform_cfg *ucfg,
                                   const double *H, const float *w, int64_t out, int64_t d,
                                   uint8_t *codes, float *scales, uint8_t *zeros, float *deq,
                                   int32_t *g_idx, rq_gptq_info *info);

/* GPTQ with the 4-level LUT quantizer: levels [out, d/g, 4]. */
rq_status rq_gptq_quantize_lut(const rq_gptq_cfg *cfg, const rq_lut_cfg *lcfg, const double *H,
                               const float *w, int64_t out, int64_t d, uint8_t *codes,
                               float *levels, float *deq, int32_t *g_idx, rq_gptq_info *info);

#endif

/* Uniform b-bit weight quantizer (METHODS.md "Uniform quantizers"), per group of g
 * consecutive input columns of one output row of W [out, in].
 *
 * Asymmetric, clip ratio c, group values w:
 *   lo = c·min(min w, 0), hi = c·max(max w, 0), s = fp16(( hi − lo) / (2^b − 1)),
 *   z = clamp(round(−lo / s), 0, 2^b − 1), code = clamp(round(w / s) + z, 0, 2^b − 1),
 *   ŵ = s·(code − z).
 * The range is widened to contain 0 (as reference GPTQ does) so that z always lies in
 * [0, 2^b − 1]; for a group with both signs (nearly every weight group) this is exactly
 * METHODS.md's lo = c·min(w), hi = c·max(w). The clamp of z only acts when fp16
 * rounding of s moves −lo/s past the end.
 * Symmetric: s = fp16(c·max|w| / (2^(b−1) − 1)), q = clamp(round(w / s), −2^(b−1),
 *   2^(b−1) − 1), stored as code = q + 2^(b−1) with zero point z = 2^(b−1), so the same
 *   ŵ = s·(code − z) dequantizes both variants and codes are always in [0, 2^b − 1].
 * round is round-half-to-even (rint, like torch.round). s is rounded through fp16 before
 * z and the codes are computed, so the parameters equal what a file stores. Degenerate
 * groups: an all-zero group gets s = 1 (z = 0, or 2^(b−1) symmetric); a scale below the
 * smallest fp16 subnormal becomes 2^−24; one above 65504 becomes 65504.
 * ŵ = s·(code − z) is exact in float (11-bit s times a 9-bit integer).
 *
 * SEQ grid (cfg->half_zero): z = (2^b − 1)/2, s = fp16(c·max|w| / z), so that the levels
 *   s·(code − z) are symmetric about 0 without a zero level; least-squares fit only.
 *
 * Clip search: each group tries every ratio of cfg->clip in order and keeps the first
 * one with the smallest Σ imp_j (w_j − ŵ_j)² (imp = 1 when no importance is given).
 *
 * Least-squares fit (cfg->least_squares, 2-4 bits): from each clip ratio's (s, z) above,
 * up to RQ_UNIFORM_LS_ITERS alternations of (1) nearest codes q_j for (s, z) and (2) the
 * weighted linear regression of w on q, s' = slope, z' = −intercept / s' (symmetric: z
 * stays 2^(b−1), slope only), each kept while it lowers Σ imp (w − ŵ)²; the best over the
 * grid wins. s' and z' are rounded through fp16 (what the file stores), so z is no longer
 * an integer: ŵ = s·(code − z) with code = clamp(round(w/s + z), 0, 2^b − 1), the nearest
 * grid point. Every packed layout and kernel reads z as fp16/float (format/lowbit.h), so the
 * fitted grid is the grid that runs. Never worse than the same clip grid without it. */
#ifndef RQ_QUANT_UNIFORM_H
#define RQ_QUANT_UNIFORM_H

#include "quant/quantizer.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_uniform_cfg {
    int bits;          /* 2, 3, 4 or 8 */
    bool symmetric;
    const float *clip; /* [n_clip] clip ratios in (0, 1], tried in order; NULL/0: {1.0} */
    int n_clip;
    bool least_squares; /* refine each candidate (s, z) by weighted least squares (see above) */
    bool half_zero;     /* ParetoQ's SEQ grid: z = (2^b − 1)/2 fixed, no zero level (2 bits: ŵ ∈
                         * {±s/2, ±3s/2}); the outer level at c·max|w|, then the slope-only
                         * least-squares refinement. Needs least_squares (z is not an integer). */
} rq_uniform_cfg;

#define RQ_UNIFORM_LS_ITERS 4

/* 1.0, 0.95, ..., 0.5: a clip grid for RTN (pass with RQ_UNIFORM_CLIP_GRID_N). */
#define RQ_UNIFORM_CLIP_GRID_N 11
extern const float rq_uniform_clip_grid[RQ_UNIFORM_CLIP_GRID_N];

/* RQ_EINVAL with a message if bits or a clip ratio is out of range. */
rq_status rq_uniform_cfg_check(const rq_uniform_cfg *cfg);

/* The quantizer as an rq_group_quantizer: n_param = 2 (param[0] = scale,
 * param[1] = zero point as a float), max_code = 2^bits − 1. cfg must outlive it. */
rq_group_quantizer rq_uniform_quantizer(const rq_uniform_cfg *cfg);

/* One group's scale and zero point at a fixed clip ratio c (no search). w [n]. */
void rq_uniform_params(int bits, bool symmetric, double c, const double *w, int64_t n,
                       float *scale, int *zero);
/* One group's parameters with the clip search of cfg; imp [n] or NULL. */
void rq_uniform_fit(const rq_uniform_cfg *cfg, const double *w, const double *imp, int64_t n,
                    float *scale, int *zero);
/* code = clamp(round(w / scale) + zero, 0, 2^bits − 1). */
int rq_uniform_code(int bits, float scale, int zero, double w);
static inline float rq_uniform_dequant(float scale, int zero, int code) {
    return scale * (float)(code - zero);
}
/* The least-squares fit's parameters (real-valued zero point, fp16 values): its group
 * fit, nearest code and dequantized value, ŵ = s·(code − z) in float as
 * format/qpacked.c dequantizes it. */
void rq_uniform_fit_ls(const rq_uniform_cfg *cfg, const double *w, const double *imp, int64_t n,
                       float *scale, float *zero);
int rq_uniform_code_f(int bits, float scale, float zero, double w);
static inline float rq_uniform_dequant_f(float scale, float zero, int code) {
    return scale * ((float)code - zero);
}

/* RTN of a whole matrix (rows in parallel). All buffers owned by the caller:
 *   w      [out, in]          weights
 *   imp    [in] or NULL       per-column importance for the clip search (e.g. diag(H))
 *   codes  [out, in]          unpacked codes in [0, 2^bits − 1]
 *   scales [out, in/group]    fp16-representable scales
 *   zeros  [out, in/group]    integer zero points in [0, 2^bits − 1]
 *   deq    [out, in] or NULL  dequantized weights
 * Returns RQ_EINVAL for a bad cfg, shape or group size. */
rq_status rq_uniform_quantize(const rq_uniform_cfg *cfg, const float *w, int64_t out, int64_t in,
                              int64_t group, const float *imp, uint8_t *codes, float *scales,
                              uint8_t *zeros, float *deq);

#endif

/* Fake quantizers for quantization-aware training: forward (quantize and dequantize in
 * float), and backward = the straight-through estimator (STE) for the quantized input plus
 * the gradient to the quantizer's own parameters.
 *
 * Gradient definitions. METHODS.md gives them for LDP ("straight-through for w inside
 * [lo, hi] (zero outside), exact for the levels"); for the quantizers below it is silent,
 * and we define them the same way (LSQ/PACT-style, our definition):
 *   - the input: ∂x̃/∂x = 1 where x lies inside the quantizer's range (its code is not
 *     clamped), 0 where it is clamped (PACT);
 *   - the parameters: the exact derivative of x̃ with the integer codes held fixed (so a
 *     finite difference small enough not to flip a code reproduces it);
 *   - statistics of the input that set the range (a group's or row's min and max) are
 *     treated as constants (no gradient flows through them to x);
 *   - the fp16 rounding of the KV4 scale is passed straight through.
 * Checked against central finite differences in float64 in tests/test_grad.c. */
#ifndef RQ_TRAIN_FAKEQUANT_H
#define RQ_TRAIN_FAKEQUANT_H

#include "kernels/actq.h"

#include <stdint.h>

/* ---- weights: uniform b-bit, per group, with learnable clipping (METHODS.md LDP's
 * clipping with p = ⅓, "uniform asymmetric 2-bit with the same learnable clipping") ----
 * Groups of `group` consecutive elements of w [n] (n % group == 0; for a [out, in] matrix
 * with group | in these are groups of input columns of one row). Group k:
 *   lo = σ(β_k)·min(w),  hi = σ(γ_k)·max(w),  s = (hi − lo)/(2^b − 1)
 *   c = clamp(round((w − lo)/s), 0, 2^b − 1),  ŵ = lo + c·s
 * (a group with hi <= lo gives ŵ = lo and no gradient). Backward:
 *   ∂ŵ/∂w = 1 inside [lo, hi], else 0;  ∂ŵ/∂lo = 1 − c/(2^b − 1),  ∂ŵ/∂hi = c/(2^b − 1);
 *   ∂lo/∂β = σ(β)(1 − σ(β))·min(w),  ∂hi/∂γ = σ(γ)(1 − σ(γ))·max(w).
 * beta, gam [n/group]. */
void rq_fq_uniform_forward(int bits, int64_t group, const float *w, int64_t n, const float *beta, const float *gam,
                           float *wq);
/* dw += STE(dwq); dbeta, dgam += their gradients (any of the three may be NULL). */
void rq_fq_uniform_backward(int bits, int64_t group, const float *w, int64_t n, const float *beta,
                            const float *gam, const float *dwq, float *dw, float *dbeta, float *dgam);

/* ---- per-token activation quantizer (kernels/actq.h, applied by the forward) ----------
 * Rows x [n, dim] and dy (the gradient of x̃): dx = dy where a code is not clamped, else 0
 * (written); *dclip += Σ dy·x̃/c (x̃ = s·(code − z) and s ∝ c with z and the codes held;
 * dclip may be NULL). Rows of zeros (left as they are by the forward) pass dy through. */
void rq_fq_act_backward(const rq_actq *q, const float *x, const float *dy, int64_t n, int64_t dim, float *dx,
                        float *dclip);

/* ---- 4-bit KV rows (format/kv.h; groups of `group` channels, clip c) -------------------
 * The same STE per group: dx = dy where the code is not clamped, else 0; *dclip +=
 * Σ dy·x̃/c (the fp16 rounding of s passed straight through). x, dy, dx [n, dim]. */
void rq_fq_kv4_backward(const float *x, const float *dy, int64_t n, int64_t dim, int64_t group, float clip,
                        float *dx, float *dclip);

/* ---- weights: 2-bit, 4 levels per group, the runtime grid (RCP / METHODS.md LDP) -------
 * Three quantizers that share one form: each group of `group` consecutive weights has 4
 * levels computed from its trainable parameters q and its constants r (set at
 * initialization, not trained), rounded through fp16 exactly as the exported file stores
 * them; a weight takes the code of the nearest level (midpoint thresholds, a value on a
 * midpoint takes the lower code); ŵ = v_code. The exported file holds these codes and
 * levels (W2L) or the equivalent fp16 scale and zero (W2U), so the runtime grid is the
 * training grid bit for bit.
 *
 *   UNIFORM  q = (β, γ), r = (m_lo, m_hi): lo = σ(β)·m_lo, hi = σ(γ)·m_hi,
 *            d = fp16((hi − lo)/3), z = fp16(−lo/d), v_k = d·k − d·z (as the W2U kernels
 *            compute it; d = 0 gives all levels 0). Exported as W2U (d, z).
 *   LDP      q = (β, γ, θ1, θ2, θ3), r = (m_lo, m_hi): lo, hi as above, p = softmax(θ),
 *            v_0 = lo, v_1 = lo + p1·(hi − lo), v_2 = v_1 + p2·(hi − lo), v_3 = hi, each
 *            rounded to fp16. Exported as W2L (v). θ = 0 gives the uniform grid.
 *   SEQ      q = (a), r = (m): α = m·e^a (ParetoQ's SEQ; a relative parameterization so
 *            that one learning rate suits every row), d = fp16(α/2), z = 1.5, levels
 *            v_k = d·k − d·z = α·{−¾, −¼, ¼, ¾}. Exported as W2U (d, 1.5).
 *
 * Departures from METHODS.md (said in the notes): the range statistics m_lo, m_hi (and
 * SEQ's m) are the group's min and max AT INITIALIZATION, held constant (METHODS.md reads
 * the current latent's min and max, treated as constants in the gradient anyway; frozen
 * statistics let an initialization reproduce a PTQ grid exactly and keep the levels from
 * jumping when the extreme weight moves); SEQ's α gets the codes-held gradient below, like
 * LDP's levels, not LSQ's (level − w/α).
 *
 * Backward (the fp16 rounding passed straight through):
 *   ∂ŵ/∂w = 1 for w inside [lo, hi] (SEQ: |w| <= α), else 0;
 *   ∂ŵ/∂v_code = 1, chained to the parameters: UNIFORM/LDP v_k = lo + P_k·(hi − lo) with
 *   P = (0, p1, p1 + p2, 1) (UNIFORM: P_k = k/3), the softmax's Jacobian for θ,
 *   ∂lo/∂β = σ'(β)·m_lo, ∂hi/∂γ = σ'(γ)·m_hi; SEQ ∂v_k/∂a = α·(k − 1.5)/2. */
typedef enum rq_fq2_kind { RQ_FQ2_UNIFORM = 0, RQ_FQ2_LDP = 1, RQ_FQ2_SEQ = 2, RQ_FQ2_COUNT } rq_fq2_kind;

#define RQ_FQ2_MAX_PARAM 5

/* Trainable parameters and constants per group. */
int rq_fq2_n_param(rq_fq2_kind k);
int rq_fq2_n_const(rq_fq2_kind k);
/* "uniform", "ldp", "seq"; and back (−1 for an unknown name). */
const char *rq_fq2_name(rq_fq2_kind k);
int rq_fq2_parse(const char *name);

/* One group's 4 levels (fp16-representable floats); for UNIFORM and SEQ also the stored
 * scale and zero (dz may be NULL), for LDP dz is left untouched. */
void rq_fq2_levels(rq_fq2_kind k, const float *q, const float *r, float v[4], float dz[2]);

/* Initialize one group's q and r from its weights w [group]:
 *   from the weights' range: UNIFORM/LDP m_lo = min w, m_hi = max w, β = γ = init_logit,
 *   θ = 0; SEQ m = max|w| and a = log t for the t in (0, 1] of least squared error
 *   (a grid search, 1/24 then 1/288 apart; for Gaussian weights α ≈ 2σ, Max's optimum);
 *   from a PTQ grid (levels v[4] sorted, or NULL): UNIFORM/LDP β = γ = init_logit and
 *   m_lo = v0/σ(init_logit), m_hi = v3/σ(init_logit), θ_i = log of the interval fractions
 *   (so the levels are v again, up to float rounding before the fp16 rounding); SEQ from
 *   a SEQ grid v = d·(k − 1.5) (d fp16): m = 2d, a = 0, the same levels exactly. */
void rq_fq2_init(rq_fq2_kind k, const float *w, int64_t group, float init_logit, const float *v, float *q,
                 float *r);

/* ŵ [n] and, if codes is not NULL, the codes [n] of w [n] (n % group == 0); q [n/group,
 * n_param], r [n/group, n_const]. */
void rq_fq2_forward(rq_fq2_kind k, int64_t group, const float *w, int64_t n, const float *q, const float *r,
                    float *wq, uint8_t *codes);
/* dw += STE(dwq) (dw may be NULL); dq [n/group, n_param] += the parameters' gradients. */
void rq_fq2_backward(rq_fq2_kind k, int64_t group, const float *w, int64_t n, const float *q, const float *r,
                     const float *dwq, float *dw, float *dq);

#endif

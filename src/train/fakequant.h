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

#endif

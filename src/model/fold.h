/* Folding rotations into a float LLaMA-style model (QuaRot's computational invariance,
 * METHODS.md "Folding rotations"). After rq_fold_model the model computes the same
 * function (same logits up to rounding), but its linear layers see rotated inputs:
 *   1. every RMSNorm scale g is fused into the linears that read the norm's output
 *      (W ← W·diag(g), g ← 1); a tied lm_head is untied first (it gets its own copy of
 *      the embedding, since the final norm's scale is fused into it and not into E);
 *   2. R1 [n_embd]: E ← E·Q; q, k, v, gate, up, lm_head: W ← W·Q; o, down: W ← Qᵀ·W;
 *   3. R2 [head_dim] (optional): v's output rows of each KV head: W_v[h] ← R2ᵀ·W_v[h];
 *      o's input columns of each query head: W_o[:, h] ← W_o[:, h]·R2.
 * R3 (online, on q and k) needs no weights changed; R4's inverse is folded into down by
 * rq_fold_r4, its forward half is applied online (rq_model_set_online). */
#ifndef RQ_MODEL_FOLD_H
#define RQ_MODEL_FOLD_H

#include "model/model.h"
#include "rotate/rotation.h"

/* Fold norms and rotations into m in place. r1->n must equal n_embd; r2 (may be NULL or
 * kind none) ->n must equal head_dim. Errors (RQ_EINVAL) name the mismatch.
 * Gemma-3 (cfg.post_norms): the post-attention and post-FFN norms sit between o/down and the
 * residual stream, and RMSNorm(y)·diag(g) cannot be written as a function of y·Q followed by
 * Qᵀ, so R1 cannot fold entirely. Route (a) (METHODS.md "Rotations through post-norms"): R1 is
 * folded as above into the embedding, the pre-norms (fused), q/k/v, gate/up and the lm_head
 * (final norm fused, lm_head untied), but NOT into o and down, which keep writing in the
 * unrotated basis where the post-norm runs; the caller must then apply R1 online to the
 * post-norms' outputs (rq_model_set_online with cfg.r1 = the same r1), or the model computes
 * something else. R1 orthogonal is refused there (RQ_EUNSUPPORTED: no fast online form). The
 * q/k norms act per head on q/k's outputs, which R1 does not touch. R2 is exact (v has no
 * norm; the attention mixes values linearly), R3 acts after the q/k norms and RoPE (q·kᵀ
 * unchanged), R4 right before down (its output norm sees the same down output). Without R1
 * step 1 is not needed, and it is skipped for Gemma-3: all its norms stay as they are (fused,
 * their widely varying scales would wreck the weights' quantization groups; fold.c). */
rq_status rq_fold_model(rq_model *m, const rq_rotation *r1, const rq_rotation *r2);

/* Route (b), the offline half of the per-linear input rotations (any architecture, no norm
 * crossed): W ← W·Ri for q, k, v, gate and up (ri [n_embd]), W_o ← W_o·Ro (ro [n_head·
 * head_dim]; after R2 if R2 is folded: o's input then carries R2 already). The model computes
 * the same function only once Ri and Ro are also applied online to those inputs
 * (rq_model_set_online with cfg.ri/ro the same); down's counterpart is R4 (rq_fold_r4).
 * Either may be NULL or kind none; a learned ri takes its matrix ri_q [n_embd, n_embd]
 * (NULL otherwise). RQ_EINVAL on a size mismatch or an invalid rotation. */
rq_status rq_fold_inputs(rq_model *m, const rq_rotation *ri, const float *ri_q, const rq_rotation *ro);
/* rq_fold_model with R1 and R2 given as dense matrices (learned rotations, rotate/learned.h):
 * r1 [n_embd, n_embd] (NULL: no R1), r2 [n_r2, head_dim, head_dim] (NULL: no R2) with
 * n_r2 = 1 (every layer the same R2) or n_layer (layer l uses r2[l], SpinQuant's per-layer
 * R2). Each matrix must be orthogonal for the model to keep its function (not checked
 * here: rotate/learned.h checks a stored one). The norms are fused first as by
 * rq_fold_model (idempotent). Errors: n_r2 not 1 or n_layer (RQ_EINVAL), R1 on a model with
 * post-norms (RQ_EUNSUPPORTED, as rq_fold_model). */
rq_status rq_fold_model_dense(rq_model *m, const float *r1, const float *r2, int64_t n_r2);

/* Step 3 alone: R2 (kind none: nothing) folded into v and o, the norms left as they are
 * (the export without R1 keeps llama.cpp's unfused norms). RQ_EINVAL if r2->n != head_dim
 * or the rotation is invalid. */
rq_status rq_fold_r2(rq_model *m, const rq_rotation *r2);

/* METHODS.md step 5, the offline half of R4 [n_ff]: W_down ← W_down·R4 in every layer.
 * The model computes the same function only once R4 is also applied online to down's
 * input (rq_model_set_online with the same r4). Kind none: nothing. RQ_EINVAL if
 * r4->n != n_ff or the rotation is invalid. */
rq_status rq_fold_r4(rq_model *m, const rq_rotation *r4);

/* Step 1 alone (also used by the quantizer when no rotation is asked for, so that every
 * quantized model has unit norms and an untied lm_head). Idempotent. */
void rq_fold_norms(rq_model *m);

#endif

/* Learned rotations (SpinQuant, METHODS.md "Learned rotations"): R1 (the residual stream,
 * n_embd × n_embd, dense or block-diagonal) and R2 (head_dim × head_dim, one per layer)
 * optimized by Cayley SGD (train/cayley.h) on the next-token cross-entropy of the
 * fake-quantized model, then stored (rotate/learned.h) for `quantize` to fold.
 *
 * The rotations are a reparameterization of the weights: with W the norm-fused float weights
 * (R4's inverse folded into down when R4 runs online), the model the training forward runs
 * holds
 *     W_eff = fold(W; R1, R2)         (model/fold.h rq_fold_model_dense: E·R1, readers W·R1,
 *                                      o/down R1ᵀ·W, v rows R2ᵀ per KV head, o columns ·R2)
 *     Ŵ = Q(W_eff)                    (the block linears: b-bit asymmetric RTN per group of
 *                                      the input, METHODS.md "Uniform quantizers", c = 1)
 * so that the existing forward and backward (train/backward.h, with the A/KV fake quantizers
 * and R3/R4 online when the model has them) give ∂L/∂Ŵ; the weight quantizer passes it
 * straight through (with c = 1 no weight is clamped: ∂Ŵ/∂W_eff = 1, the STE), and the chain
 * rule through the fold gives the Euclidean gradients (G = ∂L/∂W_eff of each tensor):
 *     ∂L/∂R1 = Σ_readers Wᵀ·G  + Eᵀ·G_E (+ lm_head's)          (W_eff = W·R1)
 *            + (D_vᵀ·W_v)ᵀ·G_v                                  (W_v,eff = D_vᵀ·W_v·R1)
 *            + (W_o·D_o)·G_oᵀ + W_down·G_downᵀ                   (W_eff = R1ᵀ·W·D)
 *     ∂L/∂R2[l] = Σ_h (W_v·R1)_h·G_v,hᵀ + Σ_h (R1ᵀ·W_o)_{:,h}ᵀ·G_o,{:,h}
 * (D_v, D_o: block-diagonal copies of R2[l] over the KV heads' rows of v and the query
 * heads' columns of o). Then each rotation takes a Cayley step: R1 dense or per block
 * (block-diagonal learning, each block orthogonal), every R2[l] its own.
 *
 * Rotations are held in float64 (the Cayley step keeps them orthogonal to ~1e-13 over
 * hundreds of steps) and rounded to float32 for the fold. */
#ifndef RQ_TRAIN_ROTLEARN_H
#define RQ_TRAIN_ROTLEARN_H

#include "rotate/learned.h"
#include "train/adamw.h"
#include "train/backward.h"
#include "train/cayley.h"
#include "train/params.h"

/* ---- the reparameterization (one model, its rotations) -------------------------------- */

typedef struct rq_rotlearn_cfg {
    int64_t block;  /* R1 learned block-diagonal with blocks of this size (0: dense) */
    bool r2;        /* learn R2 (one per layer) */
    int wbits;      /* fake-quantized block linears: 2..8 bits; 16: float */
    int64_t group;  /* weights per group along the input (divides every linear's input) */
    bool linear;    /* route (b): R1 is Ri, the model's learned online input rotation of q/k/v and
                     * gate/up (the model must apply a learned Ri: rq_online_cfg.ri_matrix); no
                     * norm is fused and no R2 is learned */
} rq_rotlearn_cfg;

typedef struct rq_rotlearn {
    rq_rotlearn_cfg cfg;
    rq_model *m;        /* not owned: its weights are overwritten by rq_rotlearn_apply */
    rq_params p;        /* m's list: the linears and the embedding (and an untied lm_head)
                         * trainable (they receive gradients), the norms not */
    float **base;       /* [p.count] norm-fused float weights of each rotated entry (NULL: none) */
    int64_t n, hd, nl;
    double *R1;         /* [n, n] */
    double *R2;         /* [nl, hd, hd] (cfg.r2; else NULL) */
    float *r1f, *r2f;   /* float copies used by the fold */
} rq_rotlearn;

/* Prepare m (a float model with float32 linears; any online quantizers and R3/R4 already
 * set, R4's inverse folded): its norms are fused (rq_fold_norms; not with cfg.linear), its
 * weights copied as the base, R1 = R2 = I. Errors: a group that does not divide a linear's
 * input, wbits outside 2..8 and not 16, a block that does not divide n_embd, post-norm models
 * without cfg.linear (RQ_EUNSUPPORTED: R1 does not fold), cfg.linear without a learned Ri on
 * m or with R2, ENOMEM. *out owned by the caller (rq_rotlearn_free).
 *
 * Route (b) (cfg.linear, post-norm models such as Gemma-3): R1 is the model's online Ri, x ←
 * x·Ri on the normed inputs of q/k/v and gate/up, with W_eff = W·Ri for those five linears
 * (the other weights only quantized), so
 *     ∂L/∂Ri = Σ_readers Wᵀ·G + G_Q,    G_Q = Σ x₀ᵀ·∂L/∂(x₀·Ri)
 * the second term accumulated by the backward into the gradient of the plan's matrix, a
 * parameter of L->p (group RQ_PGROUP_ROT, "rotquant.ri.matrix"). */
rq_status rq_rotlearn_new(rq_model *m, const rq_rotlearn_cfg *cfg, rq_rotlearn **out);
void rq_rotlearn_free(rq_rotlearn *L);
/* Set R1 from r1 [n, n] (NULL: the identity) and every R2[l] from r2 [hd, hd] when learned
 * (NULL: the identity). A block-diagonal learner keeps only r1's diagonal blocks (the rest
 * is dropped; those blocks must be orthogonal). The float32 matrices are made orthogonal to
 * float64 rounding (their polar factor, a change of ~1e-7). */
void rq_rotlearn_set(rq_rotlearn *L, const float *r1, const float *r2);
/* m's weights ← Q(fold(base; R1, R2)). */
void rq_rotlearn_apply(rq_rotlearn *L);
/* The Euclidean gradients dR1 [n, n] and dR2 [nl, hd, hd] (written; dR2 may be NULL without
 * R2) from g, a mirror of L->p filled by rq_train_backward at the weights of the last
 * rq_rotlearn_apply. */
void rq_rotlearn_grad(const rq_rotlearn *L, const rq_params *g, double *dR1, double *dR2);

typedef struct rq_rotlearn_step_info {
    double loss;
    double lr1, a1;        /* R1's Cayley η and ‖A‖ */
    double orth1, orth2;   /* ‖R1ᵀR1 − I‖_F and the largest over R2[l] after the step */
} rq_rotlearn_step_info;

/* One optimization step on the batch tokens [c->n_seq, c->T] (c a context of L->m): apply,
 * forward, cross-entropy, backward, gradients, Cayley steps with learning rate lr. */
rq_status rq_rotlearn_step(rq_rotlearn *L, rq_train_ctx *c, rq_params *g, const int32_t *tokens, double lr,
                           rq_rotlearn_step_info *info);

/* ---- the whole run (what `rotquant rotlearn` runs) ------------------------------------ */

typedef struct rq_rotlearn_opts {
    rq_rot_kind init;        /* R1's start: hadamard (random signs, SpinQuant), walsh, gsr, gh,
                              * orthogonal, none (the identity) */
    int64_t init_block;      /* gsr/gh block of the start (0: block, else the group) */
    int64_t block;           /* learn R1 block-diagonal with this block (0: dense) */
    bool r2;                 /* learn R2 (per layer), started from init2 */
    rq_rot_kind init2;
    int rotate3, rotate4;    /* online R3/R4 kinds with A/KV quantizers (-1: hadamard; route (b): R4
                              * the start's kind when it has a fast form) */
    int r1_route;            /* rq_r1_route (quant/pipeline.h): auto (default) learns Ri by route (b)
                              * on post-norm models (Gemma-3) and R1 on the residual stream otherwise;
                              * route (b) learns no R2, and o's input takes the start's kind, fixed */
    int wbits;               /* fake quantizers: weights (16 = off), activations, KV cache */
    int64_t group;
    int abits, kvbits;
    bool asym;
    float aclip;
    int64_t steps, n_seq, T; /* SpinQuant: 100 steps; here batches of n_seq windows of T */
    double lr;               /* Cayley lr with the schedule over the steps: default 0.02 (SpinQuant's 1.5 makes
                              * every step the bound η = 1/‖A‖ on SmolLM2 and the loss diverges) */
    rq_lr_shape schedule;
    const int32_t *ids;      /* training windows given as token ids [n_ids] (NULL: generate) */
    int64_t n_ids;
    int64_t gen_seqs;        /* windows generated by the float model (seeded) */
    float gen_temp;
    double gen_chat;         /* fraction of them in the chat format (quant/calib.h) */
    const char *data_save;   /* write the generated windows here (one per line) */
    int64_t val_seqs;        /* windows held out for the loss before/after (0: none) */
    uint64_t seed;
    bool progress;
} rq_rotlearn_opts;

rq_rotlearn_opts rq_rotlearn_opts_default(void);

typedef struct rq_rotlearn_result {
    double val_first, val_last;  /* held-out cross-entropy of the fake-quantized model */
    double loss_first, loss_last;
    double orth1, orth2;         /* at the end */
    int64_t tokens;
    double t_data, t_train, t_total;
} rq_rotlearn_result;

/* in: a float GGUF; out: the rotation file (rotate/learned.h). Errors: bad options
 * (RQ_EINVAL naming the option), a quantized input, data too short, ENOMEM. */
rq_status rq_rotlearn_run(const char *in, const char *out, const rq_rotlearn_opts *o, rq_rotlearn_result *res);

#endif

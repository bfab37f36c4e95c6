/* Quantization-aware training of the block linears with the uniform fake quantizer of
 * train/fakequant.h (b bits, groups of `group` input columns, learnable clipping σ(β)·min,
 * σ(γ)·max per group).
 *
 * The model's float weights (what the one forward reads) hold the fake-quantized values
 * ŵ = Q(w; β, γ); the trainable latent weights w and the clip logits β, γ live here. The
 * optimizer works on `list`: for each block linear of the model's list p, its latent
 * (same name, group LINEAR) followed by "<name>.clip_lo" (β) and "<name>.clip_hi" (γ)
 * [n_out, n_in/group] (group QUANT); every other trainable entry of p is shared (same data).
 * After the backward has filled gradients g (a mirror of p), rq_qat_grads maps them to
 * `grads` (a mirror of list): STE for the latents, train/fakequant.h's gradients for β, γ,
 * a copy for shared entries; after each optimizer step rq_qat_apply writes ŵ back into the
 * model. */
#ifndef RQ_TRAIN_QAT_H
#define RQ_TRAIN_QAT_H

#include "train/params.h"

typedef struct rq_qat {
    int bits;
    int64_t group;
    rq_params list;   /* what the optimizer updates (latents and clip logits owned by `store`) */
    rq_params grads;  /* mirror of list */
    int64_t *src;     /* [list.count] index in p of the entry each list entry comes from */
    int *kind;        /* [list.count] 0 shared, 1 latent, 2 clip_lo, 3 clip_hi */
    float *store;     /* one block holding the latents and clip logits */
} rq_qat;

/* From the model's list p (rq_params_build): entries named blk.*.attn_{q,k,v,output} and
 * blk.*.ffn_{gate,up,down} are quantized; clip logits start at init_logit (METHODS.md's
 * margin, e.g. 4: σ = 0.982). Then rq_qat_apply. Errors (RQ_EINVAL): bits outside [2, 8], a
 * group that does not divide a linear's input width. *out owned by the caller (rq_qat_free). */
rq_status rq_qat_new(rq_params *p, int bits, int64_t group, float init_logit, rq_qat **out);
void rq_qat_free(rq_qat *q);
/* The model's weights of the quantized linears ← Q(latent; β, γ). */
void rq_qat_apply(rq_qat *q, rq_params *p);
/* grads ← the gradients of list from g (mirror of p, filled by rq_train_backward). */
void rq_qat_grads(rq_qat *q, const rq_params *p, const rq_params *g);

#endif

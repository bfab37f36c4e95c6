/* Quantization-aware training of the block linears (q, k, v, o, gate, up, down).
 *
 * The model's float weights (what the one forward reads) hold the fake-quantized values
 * ŵ = Q(w; params); the trainable latent weights w and the quantizer's parameters live
 * here. The optimizer works on `list`: for each block linear of the model's list p, its
 * latent (same name, group LINEAR) followed by its quantizer's entries (group QUANT); every
 * other trainable entry of p is shared (same data). After the backward has filled the
 * gradients g (a mirror of p), rq_qat_grads maps them to `grads` (a mirror of list): the
 * straight-through estimator for the latents, train/fakequant.h's gradients for the
 * quantizer parameters, a copy for shared entries; after each optimizer step rq_qat_apply
 * writes ŵ back into the model.
 *
 * Two families of quantizers (train/fakequant.h):
 *   - b-bit uniform with learnable clipping σ(β)·min, σ(γ)·max of the CURRENT latent group
 *     (rotquant train --wbits; exported as float tensors);
 *   - 2-bit 4-level quantizers on the runtime grid (uniform, LDP, SEQ; rotquant qat):
 *     entries "<name>.qp" [n_out, (n_in/group)·n_param] (trainable) and "<name>.qr"
 *     [n_out, (n_in/group)·n_const] (the constants, not trained, kept in checkpoints);
 *     rq_qat_export gives the codes and fp16 levels (LUT) or scale/zero (uniform) that a
 *     packed file stores, so the exported model computes exactly what was trained. */
#ifndef RQ_TRAIN_QAT_H
#define RQ_TRAIN_QAT_H

#include "quant/ptq.h"
#include "train/fakequant.h"
#include "train/params.h"

typedef struct rq_qat_cfg {
    bool fq2;             /* the 2-bit runtime-grid quantizers (else b-bit uniform, current range) */
    rq_fq2_kind kind;     /* fq2: uniform, LDP or SEQ */
    int bits;             /* not fq2: 2..8 */
    int64_t group;        /* weights per group along the input; 0: one group per output row
                           * (per channel). fq2 exports need group % 32 == 0 or 0 */
    float init_logit;     /* clip logits' start (METHODS.md's margin, e.g. 4: σ = 0.982) */
    const rq_ptq_result *init; /* fq2: start from this PTQ result (the same linears and group):
                                * latents from its latent weights (or the model's current,
                                * dequantized ones), levels from its grid (per-channel groups
                                * and SEQ: the latents only, ranges from their min/max); NULL:
                                * from the model's weights and their min/max */
    rq_qparam_kind init_kind;  /* the kind of init's parameters (LUT levels or scale/zero) */
} rq_qat_cfg;

typedef struct rq_qat {
    rq_qat_cfg cfg;
    rq_params list;   /* what the optimizer updates (latents and quantizer entries owned by `store`) */
    rq_params grads;  /* mirror of list */
    int64_t *src;     /* [list.count] index in p of the entry each list entry comes from */
    int *kind;        /* [list.count] what each entry is (qat.c) */
    float *store;     /* one block holding the latents and the quantizer entries */
} rq_qat;

/* From the model's list p (rq_params_build). Then rq_qat_apply. Errors (RQ_EINVAL): bits
 * outside [2, 8], a group that does not divide a linear's input width, an fq2 group not a
 * multiple of 32, an init result that lacks a linear or has another shape or group.
 * *out owned by the caller (rq_qat_free). */
rq_status rq_qat_new_cfg(rq_params *p, const rq_qat_cfg *cfg, rq_qat **out);
/* The b-bit uniform family (rotquant train --wbits). */
rq_status rq_qat_new(rq_params *p, int bits, int64_t group, float init_logit, rq_qat **out);
void rq_qat_free(rq_qat *q);
/* The model's weights of the quantized linears ← Q(latent; params). */
void rq_qat_apply(rq_qat *q, rq_params *p);
/* grads ← the gradients of list from g (mirror of p, filled by rq_train_backward). */
void rq_qat_grads(rq_qat *q, const rq_params *p, const rq_params *g);
/* Restrict training to the linears of block `layer` (−1: all blocks again): the other
 * latents and quantizer entries are frozen (trainable = false), shared entries too.
 * Returns the number of trainable elements. */
int64_t rq_qat_only_block(rq_qat *q, int64_t layer);

/* fq2 only: what a packed file stores, for every quantized linear in model order —
 * codes, and per file group of `file_group` weights (dividing the training group, or any
 * divisor of n_in with per-channel groups) the fp16 parameters: LUT levels (LDP) or scale
 * and zero (uniform, SEQ). res->lin[i].latent is NULL. *kind receives the file's
 * parameter kind. Free res with rq_ptq_result_free. Errors: not fq2, a file group that
 * does not fit, ENOMEM. */
rq_status rq_qat_export(const rq_qat *q, int64_t file_group, rq_ptq_result *res, rq_qparam_kind *kind);

#endif

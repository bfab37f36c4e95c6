/* One training step over a batch: forward (saving activations), loss, backward, gradient
 * clipping, AdamW update; and the loss of a batch without an update (validation). */
#ifndef RQ_TRAIN_STEP_H
#define RQ_TRAIN_STEP_H

#include "train/adamw.h"
#include "train/backward.h"
#include "train/params.h"
#include "train/qat.h"

typedef struct rq_train_step_opts {
    const float *teacher; /* [n, n_vocab] teacher logits of the batch (distillation), or NULL: cross-entropy */
    double gamma;         /* distillation: weight of KL(student‖teacher) (0: KL(teacher‖student)) */
    double clip;          /* global gradient-norm clip (<= 0: none) */
    float lr_factor;      /* schedule factor for this step (rq_lr_factor) */
    rq_qat *qat;          /* QAT: the optimizer o works on qat->list (gradients mapped by rq_qat_grads,
                           * the model's weights re-quantized after the update); NULL: on p itself */
} rq_train_step_opts;

/* tokens [n_seq, T] of the context; g a mirror of p (the model's list). Gradients in g are
 * zeroed first. *loss: the batch's mean
 * loss before the update; *grad_norm (may be NULL): the norm before clipping. Errors: a
 * token id out of range (nothing updated). */
rq_status rq_train_step(rq_train_ctx *c, rq_params *p, rq_params *g, rq_adamw *o, const int32_t *tokens,
                        const rq_train_step_opts *opt, double *loss, double *grad_norm);
/* The update of a step from the batch gradient g (a mirror of p): QAT's gradients mapped,
 * clipping, AdamW, QAT's weights re-quantized (what rq_train_step does after its backward;
 * the data-parallel loop, train/dp.h, computes g itself). *grad_norm (may be NULL): the
 * norm before clipping. */
void rq_train_apply(rq_params *p, rq_params *g, rq_adamw *o, const rq_train_step_opts *opt, double *grad_norm);
/* The mean loss of a batch (no update). */
rq_status rq_train_eval(rq_train_ctx *c, const int32_t *tokens, const float *teacher, double gamma, double *loss);

#endif

/* One training step (train/step.h). */
#include "train/step.h"

#include <string.h>

rq_status rq_train_step(rq_train_ctx *c, rq_params *p, rq_params *g, rq_adamw *o, const int32_t *tokens,
                        const rq_train_step_opts *opt, double *loss, double *grad_norm) {
    RQ_TRY(rq_train_forward(c, tokens));
    *loss = rq_train_loss(c, tokens, opt->teacher, opt->gamma);
    memset(g->buf, 0, (size_t)g->n_total * sizeof(float));
    rq_train_backward(c, tokens, c->st->logits, p, g);
    rq_train_apply(p, g, o, opt, grad_norm);
    return RQ_OK;
}

void rq_train_apply(rq_params *p, rq_params *g, rq_adamw *o, const rq_train_step_opts *opt, double *grad_norm) {
    rq_params *op = p, *og = g; /* what the optimizer updates */
    if (opt->qat) {
        rq_qat_grads(opt->qat, p, g);
        op = &opt->qat->list, og = &opt->qat->grads;
    }
    double norm = rq_grad_clip(op, og, opt->clip);
    if (grad_norm) *grad_norm = norm;
    rq_adamw_step(o, op, og, opt->lr_factor);
    if (opt->qat) rq_qat_apply(opt->qat, p);
}

rq_status rq_train_eval(rq_train_ctx *c, const int32_t *tokens, const float *teacher, double gamma, double *loss) {
    RQ_TRY(rq_train_forward(c, tokens));
    *loss = rq_train_loss(c, tokens, teacher, gamma);
    return RQ_OK;
}

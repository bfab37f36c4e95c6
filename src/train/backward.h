/* The model's backward pass over the ONE forward (src/model/forward.c), llm.c's way: the
 * forward runs with a saved-activations struct (rq_model_acts, model/model.h) and the
 * backward reads it, layer by layer in reverse, with the ops of train/ops.h.
 *
 * A training batch is n_seq independent sequences of T tokens each (positions 0..T−1),
 * run as one segmented forward (rq_model_forward_segments) so that every linear is one GEMM
 * over the n = n_seq·T rows.
 *
 * Supported: float32 weights (rq_params_build), LLaMA and Gemma-3 (q/k norms, post norms,
 * sliding window, GELU), tied or untied lm_head. Not supported (RQ_EUNSUPPORTED at
 * creation): the online quantizers and rotations (activation quantizer, KV quantization,
 * R3/R4); QAT fake-quantizes the weights instead (train/fakequant.h). */
#ifndef RQ_TRAIN_BACKWARD_H
#define RQ_TRAIN_BACKWARD_H

#include "base/status.h"
#include "model/model.h"
#include "train/params.h"

typedef struct rq_train_ctx {
    rq_model *model;
    rq_state *st;        /* n_ctx = n_batch = n rows, all logits, segments of T */
    rq_model_acts acts;  /* what the forward saves */
    int64_t n_seq, T, n; /* n = n_seq·T */
    int64_t *seg, *pos;  /* [n] segment and position of each row */
    /* backward scratch */
    float *dx;           /* [n, n_embd] ∂L/∂(residual stream) */
    float *dxn, *xn;     /* [n, n_embd] gradient of a norm's output; the norm's output recomputed */
    float *tmp;          /* [n, n_embd] gradient behind a post-norm */
    float *dq, *dq2;     /* [n, n_head·head_dim] (dq2: before the q norm) */
    float *dk, *dk2, *dv;/* [n, n_head_kv·head_dim] */
    float *datt;         /* [n, n_head·head_dim] */
    float *dgate, *dup;  /* [n, n_ff] */
    float *h;            /* [n, n_ff] the input of down, recomputed */
    int32_t *target;     /* [n] next-token targets of the cross-entropy (−1: unscored) */
} rq_train_ctx;

/* Bytes a context for n_seq sequences of T tokens takes (activations, scratch, logits, KV
 * cache), to refuse a batch that does not fit before allocating. */
int64_t rq_train_ctx_bytes(const rq_model_config *c, int64_t n_seq, int64_t T);
/* Allocate a context (owned by the caller, rq_train_ctx_free; the model must outlive it).
 * Errors: n_seq or T < 1, online quantizers/rotations set (RQ_EUNSUPPORTED), ENOMEM. */
rq_status rq_train_ctx_new(rq_model *m, int64_t n_seq, int64_t T, rq_train_ctx **out);
void rq_train_ctx_free(rq_train_ctx *c);

/* The forward of tokens [n_seq, T] saving activations; logits in c->st->logits [n, n_vocab].
 * Errors: a token id out of range. */
rq_status rq_train_forward(rq_train_ctx *c, const int32_t *tokens);
/* The backward of the last rq_train_forward: dlogits [n, n_vocab] (∂L/∂logits; may be
 * c->st->logits overwritten by the loss); gradients ADDED to g (a mirror of p, the model's
 * list from rq_params_build, possibly with entries appended) for trainable entries.
 * Overwrites c->st->hidden. */
void rq_train_backward(rq_train_ctx *c, const int32_t *tokens, const float *dlogits, const rq_params *p,
                       rq_params *g);

/* The loss of the last rq_train_forward, averaged over its scored tokens; its gradient is
 * written over c->st->logits (the dlogits of rq_train_backward):
 *   teacher == NULL: next-token cross-entropy (the last token of each sequence unscored);
 *   teacher [n, n_vocab]: the teacher's logits on the same tokens, every token scored with
 *     γ·KL(P_s‖P_t) + (1 − γ)·KL(P_t‖P_s) (train/ops.h rq_train_kl; γ = 0: KL(teacher‖student)). */
double rq_train_loss(rq_train_ctx *c, const int32_t *tokens, const float *teacher, double gamma);

#endif

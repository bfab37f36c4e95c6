/* The model's backward pass over the ONE forward (src/model/forward.c), llm.c's way: the
 * forward runs with a saved-activations struct (rq_model_acts, model/model.h) and the
 * backward reads it, layer by layer in reverse, with the ops of train/ops.h.
 *
 * A training batch is n_seq independent sequences of T tokens each (positions 0..T−1),
 * run as one segmented forward (rq_model_forward_segments) so that every linear is one GEMM
 * over the n = n_seq·T rows.
 *
 * Supported: float32 weights (rq_params_build), LLaMA and Gemma-3 (q/k norms, post norms,
 * sliding window, GELU), tied or untied lm_head, and the online quantizers and rotations of
 * rq_model_set_online (W·A·KV quantization-aware training):
 *   - the per-token activation quantizer on the inputs of the block linears: straight-
 *     through (train/fakequant.h rq_fq_act_backward: dy passes where the code is not
 *     clamped), the linear's weight gradient taken with the quantized input it received;
 *     the clip ratio is fixed (no gradient to it);
 *   - the 4-bit KV quantizer: the context's state keeps the fake-quantized float cache
 *     (model.h rq_online.kv_fake) whatever the model's setting; straight-through
 *     (rq_fq_kv4_backward) on k (after R3) and v;
 *   - R3 (q, k per head after RoPE) and R4 (the input of down): y = x·Q, so dx = dy·Qᵀ
 *     (rotate/rotation.h rq_rot_apply_t); route (b)'s Ri (the normed inputs of q/k/v and
 *     gate/up) and Ro (o's input) the same way; a learned Ri's matrix, when it is a trainable
 *     entry of the parameter list (rotlearn), also gets ∂L/∂Q = Σ x₀ᵀ·dy (xn0 below);
 *   - not supported: route (a)'s R1 online after the post-norms (refused).
 * The quantizers' decisions (codes, clamping) in the backward are those of the forward, bit
 * for bit: their inputs are the saved pre-quantization tensors or recomputed with the same
 * kernels.
 *
 * Activation checkpointing per block (opts.checkpoint_act): the forward keeps only each
 * layer's input x_in (rq_train_ctx.x_ins); all other saved tensors of every layer go into ONE
 * block-sized buffer shared by the layers, and the backward, before each layer's backward,
 * recomputes that layer's forward from its saved input (the same layer_forward, the same
 * kernels, rows and threads) to refill the buffer. The activation memory is then
 * n_layer·n·n_embd floats of block inputs plus one block's worth instead of n_layer blocks'
 * worth; the cost is a second forward of each layer during the backward (about one more
 * forward per step). The gradients are bit-identical to the non-checkpointed ones
 * (tests/test_train_model.c checks it with the online quantizers on).
 *
 * Block-wise use (EfficientQAT's Block-AP): rq_train_block_forward / rq_train_block_backward
 * run one transformer block alone on given residual rows. A context created with
 * opts.block holds the activations of ONE layer (shared by all layers) and can only do that. */
#ifndef RQ_TRAIN_BACKWARD_H
#define RQ_TRAIN_BACKWARD_H

#include "base/status.h"
#include "model/model.h"

#include <stdbool.h>
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
    float *xn0;          /* [n, n_embd] a normed input before a learned Ri (route (b)), the left
                          * factor of ∂L/∂Ri; NULL unless the model's Ri is learned */
    float *dq, *dq2;     /* [n, n_head·head_dim] (dq2: before the q norm) */
    float *dk, *dk2, *dv;/* [n, n_head_kv·head_dim] */
    float *datt;         /* [n, n_head·head_dim] */
    float *dgate, *dup;  /* [n, n_ff] */
    float *h;            /* [n, n_ff] the input of down, recomputed */
    int32_t *target;     /* [n] next-token targets of the cross-entropy (−1: unscored) */
    bool block;          /* one layer's activations shared by all layers (block-wise only) */
    bool checkpoint_act; /* activation checkpointing (see the top): acts.layers[l] share one block
                          * buffer except x_in, which points into x_ins */
    float *x_ins;        /* [n_layer, n, n_embd] the layers' inputs (checkpoint_act; else NULL) */
    float *acts_buf;     /* the block buffer of the shared layer activations (block or
                          * checkpoint_act; else NULL: one buffer per layer, at its x_in) */
    int64_t block_l;     /* block-wise: the layer of the last rq_train_block_forward (−1: none) */
    /* online quantizers/rotations (NULL when the model has none): the inputs of the attention
     * and of the quantized linears as the forward used them, recomputed, and the gradients
     * behind the KV quantizer */
    float *xq;           /* [n, n_embd] quantized normed input of q/k/v or gate/up */
    float *attq;         /* [n, n_head·head_dim] quantized input of o */
    float *hq;           /* [n, n_ff] quantized input of down */
    float *qr;           /* [n, n_head·head_dim] q·R3 */
    float *kr, *kq, *vq; /* [n, n_head_kv·head_dim] k·R3; k̃ and ṽ (KV-quantized) */
    float *dks, *dvs;    /* [n, n_head_kv·head_dim] dk, dv behind the KV quantizer */
} rq_train_ctx;

/* Options of rq_train_ctx_new_ex (zero-initialized = rq_train_ctx_new). */
typedef struct rq_train_ctx_opts {
    bool block; /* block-wise only: activations of one layer, no logits for all rows; the
                 * whole-model rq_train_forward/backward refuse such a context */
    bool checkpoint_act; /* activation checkpointing per block (see the top): keep only each
                          * layer's input, recompute the layer's forward in the backward.
                          * Ignored with block (which already holds one layer). */
} rq_train_ctx_opts;

/* Bytes a context for n_seq sequences of T tokens takes (activations, scratch, logits, KV
 * cache), to refuse a batch that does not fit before allocating. Counts the whole-model
 * context without online quantizers (the largest part); the block-wise one and the online
 * scratch are of the same order or smaller. */
int64_t rq_train_ctx_bytes(const rq_model_config *c, int64_t n_seq, int64_t T);
/* The same for a context with these options (NULL: the defaults, = rq_train_ctx_bytes). */
int64_t rq_train_ctx_bytes_ex(const rq_model_config *c, int64_t n_seq, int64_t T, const rq_train_ctx_opts *opts);
/* Allocate a context (owned by the caller, rq_train_ctx_free; the model must outlive it, and
 * its online configuration must not change while the context lives). opts may be NULL.
 * Errors: n_seq or T < 1 (RQ_EINVAL), ENOMEM. */
rq_status rq_train_ctx_new_ex(rq_model *m, int64_t n_seq, int64_t T, const rq_train_ctx_opts *opts,
                              rq_train_ctx **out);
/* rq_train_ctx_new_ex with default options (the whole model). */
rq_status rq_train_ctx_new(rq_model *m, int64_t n_seq, int64_t T, rq_train_ctx **out);
void rq_train_ctx_free(rq_train_ctx *c);

/* The forward of tokens [n_seq, T] saving activations; logits in c->st->logits [n, n_vocab].
 * Errors: a token id out of range; a block-wise context (RQ_EINVAL). */
rq_status rq_train_forward(rq_train_ctx *c, const int32_t *tokens);
/* The backward of the last rq_train_forward: dlogits [n, n_vocab] (∂L/∂logits; may be
 * c->st->logits overwritten by the loss); gradients ADDED to g (a mirror of p, the model's
 * list from rq_params_build, possibly with entries appended) for trainable entries.
 * Overwrites c->st->hidden (with checkpoint_act also the state's other activation buffers
 * and KV cache, by the recomputed layer forwards; dlogits is read before them). */
void rq_train_backward(rq_train_ctx *c, const int32_t *tokens, const float *dlogits, const rq_params *p,
                       rq_params *g);

/* ---- one block (Block-AP) ---------------------------------------------------------------
 * Layer l alone on residual rows x_in [n, n_embd] (row i: sequence i / T, position i % T;
 * each sequence attends only to itself), writing its output rows y [n, n_embd] (y may equal
 * x_in) and saving layer l's activations (overwriting what the context held for l; in a
 * block-wise or checkpointed context, the shared block buffer). Errors (RQ_EINVAL): l out
 * of range. */
rq_status rq_train_block_forward(rq_train_ctx *c, int64_t l, const float *x_in, float *y);
/* The backward of the last rq_train_block_forward of layer l (asserted: the context's
 * activations of l are that forward's): dy [n, n_embd] = ∂L/∂y; gradients ADDED to g (a
 * mirror of p, as rq_train_backward) for layer l's trainable entries; dx_in [n, n_embd] =
 * ∂L/∂x_in written unless NULL (may equal dy). */
void rq_train_block_backward(rq_train_ctx *c, int64_t l, const float *dy, const rq_params *p, rq_params *g,
                             float *dx_in);

/* The loss of the last rq_train_forward, averaged over its scored tokens; its gradient is
 * written over c->st->logits (the dlogits of rq_train_backward):
 *   teacher == NULL: next-token cross-entropy (the last token of each sequence unscored);
 *   teacher [n, n_vocab]: the teacher's logits on the same tokens, every token scored with
 *     γ·KL(P_s‖P_t) + (1 − γ)·KL(P_t‖P_s) (train/ops.h rq_train_kl; γ = 0: KL(teacher‖student)). */
double rq_train_loss(rq_train_ctx *c, const int32_t *tokens, const float *teacher, double gamma);

#endif

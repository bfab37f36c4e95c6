/* The block-wise phase of QAT (EfficientQAT's Block-AP, METHODS.md "Self-distillation"):
 * for each transformer block in order, its latent weights and quantizer parameters are
 * trained alone to make the block's output on the QUANTIZED model's inputs match the
 * float block's output on the FLOAT model's inputs (mean squared error over the residual
 * stream), so that each block also corrects the error its predecessors left; then the
 * trained block's output becomes the next block's input. One block's activations in
 * memory at a time (a block-wise training context), plus the residual rows of the
 * training windows for both models.
 *
 * The teacher must compute in the student's basis: the rotated float model (the same
 * rotations folded), without weight quantization. */
#ifndef RQ_TRAIN_BLOCKWISE_H
#define RQ_TRAIN_BLOCKWISE_H

#include "train/adamw.h"
#include "train/params.h"
#include "train/qat.h"

typedef struct rq_blockwise_opts {
    int64_t n_seq, T;        /* a batch: n_seq windows of T tokens */
    int64_t steps;           /* optimizer steps per block (>= 1) */
    rq_adamw_group group[RQ_PGROUP_COUNT]; /* learning rates: LINEAR the latents, QUANT the quantizer */
    rq_lr_schedule schedule; /* within each block (total = steps) */
    double clip;             /* global gradient-norm clip per step (<= 0: none) */
    uint64_t seed;           /* batch sampling */
    bool progress;           /* a line per block on stderr */
} rq_blockwise_opts;

typedef struct rq_blockwise_result {
    int64_t tokens;            /* trained on, all blocks */
    double seconds;
    double mse_first, mse_last; /* mean over blocks of each block's MSE on the training windows
                                 * before and after its training */
} rq_blockwise_result;

/* student: the model whose quantized linears qat trains (p its list, rq_params_build, with
 * qat made from it); teacher: the float model in the same basis. train [n_train, T] token
 * windows (n_train >= 1). Afterwards every block has been trained once, qat's entries all
 * trainable again (rq_qat_only_block(−1)) and the model's weights are the fake-quantized
 * latents. Errors: mismatched models, a token id out of range, ENOMEM. */
rq_status rq_blockwise_run(rq_model *student, rq_params *p, rq_qat *qat, const rq_model *teacher,
                           const int32_t *train, int64_t n_train, const rq_blockwise_opts *o,
                           rq_blockwise_result *res);

#endif

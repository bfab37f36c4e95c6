/* Learned (stored) rotations: the R1 and R2 that `rotquant rotlearn` optimizes (SpinQuant's
 * Cayley SGD, train/rotlearn.h), as a small GGUF file that `rotquant quantize --rotate learned
 * --rotation-file F` folds into a model (model/fold.h rq_fold_model_dense) before GPTQ.
 *
 * File (GGUF v3, general.architecture = "rotquant-rotation"):
 *   rotlearn.format_version  u32  1 (readers refuse newer)
 *   rotlearn.n, .block       u64  R1's size (the hidden size) and block (0: dense; else
 *                                 block-diagonal with blocks of this size)
 *   rotlearn.head_dim, .n_r2 u64  R2's size and count (n_r2 = 0: no R2; 1: shared; else
 *                                 one per layer)
 *   rotlearn.init1/.init2.*, rotlearn.r3.*, rotlearn.r4.*: rotations as described values
 *                                 (kind, n, block, random_signs, seed): the start of R1 and
 *                                 R2, and the online R3/R4 the training ran with
 *   rotlearn.{wbits,group,abits,kvbits,asym,aclip}: the fake quantizers of the training
 *   rotlearn.{steps,n_seq,T,tokens,lr,seed,loss_first,loss_last,seconds,model}: how
 *   tensors: rotlearn.r1  F32 [n, n] (row-major, y = x·R1)
 *            rotlearn.r2  F32 [n_r2, head_dim, head_dim] (when n_r2 > 0)
 * A reader checks the shapes against the keys, that every value is finite, that R1 is
 * block-diagonal when a block is given, and that every matrix is orthogonal
 * (‖RᵀR − I‖_F <= RQ_ROT_LEARNED_ORTH_TOL); anything else is RQ_EFORMAT naming the file. */
#ifndef RQ_ROTATE_LEARNED_H
#define RQ_ROTATE_LEARNED_H

#include "io/gguf.h"
#include "rotate/rotation.h"

#define RQ_ROT_LEARNED_VERSION 1
/* float32 storage of a float64-orthogonal matrix gives ~1e-6 at n = 576 (rounding of each
 * entry); a matrix 1e-3 away from orthogonal would visibly change the folded model's function */
#define RQ_ROT_LEARNED_ORTH_TOL 1e-3

typedef struct rq_rot_learned {
    int64_t n, block;         /* R1 [n, n]; block-diagonal with blocks of `block` (0: dense) */
    int64_t head_dim, n_r2;   /* R2 [n_r2, head_dim, head_dim]; n_r2 = 0: none */
    float *r1, *r2;           /* owned (rq_rot_learned_free) */
    rq_rotation init1, init2; /* the start of the optimization */
    rq_rotation r3, r4;       /* the online rotations the training ran with */
    int wbits, abits, kvbits; /* the training's fake quantizers (16: off) */
    int64_t group;
    bool asym;
    float aclip;
    int64_t steps, n_seq, T, tokens;
    float lr;
    uint64_t seed;
    double loss_first, loss_last, seconds;
    char model[512];          /* the model's configuration (model.h rq_model_config_describe) */
} rq_rot_learned;

/* r's description as GGUF keys PREFIX.kind (its name), PREFIX.n, PREFIX.block,
 * PREFIX.random_signs and PREFIX.seed (e.g. prefix "rotquant.r1" in quantized files,
 * "rotlearn.init1" here). */
void rq_rot_write_keys(rq_gguf_writer *w, const char *prefix, const rq_rotation *r);
/* Write r to path atomically. */
rq_status rq_rot_learned_write(const rq_rot_learned *r, const char *path);
/* Read and check a file (see the top); *out owned by the caller (rq_rot_learned_free). */
rq_status rq_rot_learned_read(const char *path, rq_rot_learned *out);
void rq_rot_learned_free(rq_rot_learned *r);
/* ‖RᵀR − I‖_F of a float32 R [n, n], in float64. */
double rq_rot_learned_orth_error(const float *r, int64_t n);

#endif

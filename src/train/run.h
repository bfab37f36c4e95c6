/* The training loop as one library call (what `rotquant train` runs): batches of n_seq
 * windows drawn (seeded) from the training windows, the teacher's logits when distilling,
 * rq_train_step, the validation loss on the held-out windows before the first step, every
 * eval_every steps and after the last, a checkpoint after each validation, resume from one.
 * Deterministic for a fixed thread count: a run resumed from a checkpoint reproduces the
 * uninterrupted run bit for bit.
 *
 * Each window of a batch runs alone and the batch gradient is their exact sum (train/dp.h),
 * which makes the loop data-parallel over MPI ranks: every call here is collective (every
 * rank passes the same model, data and options), each rank runs its share of the windows of
 * each step and of the validation, and every rank ends with the same parameters, bit for bit
 * those of one process at the same thread count. Rank 0 alone prints progress, calls
 * on_validation and writes the checkpoint (the checkpoint holds nothing rank-dependent: a
 * run resumes at any rank count). With keep_best the run ends with the parameters of its lowest
 * validation loss. */
#ifndef RQ_TRAIN_RUN_H
#define RQ_TRAIN_RUN_H

#include "train/adamw.h"
#include "train/params.h"
#include "train/qat.h"

typedef struct rq_train_run_opts {
    int64_t n_seq, T;       /* a batch: n_seq windows of T tokens */
    int64_t steps;          /* optimizer steps in all (a resumed run continues up to it) */
    int64_t eval_every;     /* validation every this many steps (>= 1) */
    double clip;            /* global gradient-norm clip (<= 0: none) */
    double gamma;           /* distillation: weight of KL(student‖teacher) */
    rq_lr_schedule schedule;
    rq_adamw_group group[RQ_PGROUP_COUNT];
    uint64_t seed;          /* batch sampling (the RNG is saved in checkpoints) */
    const char *checkpoint; /* written after each validation, or NULL */
    const char *resume;     /* checkpoint to continue, or NULL */
    bool progress;          /* a line per step on stderr: loss, gradient norm, tokens/s, ETA */
    bool keep_best;         /* keep a copy of the trainable parameters at the lowest validation loss
                             * and end the run with them (METHODS.md: keep the best checkpoint);
                             * a resumed run tracks the best from its own first validation */
    bool checkpoint_act;    /* activation checkpointing per block (train/backward.h): less memory,
                             * one more forward per step, the same gradients bit for bit */
    /* called after each validation (may be NULL); train_loss < 0 before the first step */
    void (*on_validation)(void *user, int64_t step, double train_loss, double val_loss);
    void *user;
} rq_train_run_opts;

typedef struct rq_train_run_result {
    int64_t step0, steps;   /* the run went from update step0 to steps */
    int64_t tokens;         /* trained on */
    double seconds;         /* of the loop (validation included) */
    double val_first, val_last; /* validation loss at step0 and at the end (0 without validation) */
    double val_best;        /* the lowest validation loss seen (keep_best: the parameters the run ends with) */
    int64_t best_step;      /* the step of val_best */
} rq_train_run_result;

/* m: the student, p its list (rq_params_build; trainable flags as wanted); qat: NULL or the
 * QAT of p (the optimizer then works on qat->list); teacher: NULL (next-token cross-entropy)
 * or the model whose logits are distilled. train [n_train, T], val [n_val, T] windows
 * (validation needs n_val >= n_seq; the last partial batch of val is left out). Errors:
 * a checkpoint that does not fit (rq_checkpoint_load), a token id out of range, ENOMEM. */
rq_status rq_train_run(rq_model *m, rq_params *p, rq_qat *qat, const rq_model *teacher, const int32_t *train,
                       int64_t n_train, const int32_t *val, int64_t n_val, const rq_train_run_opts *o,
                       rq_train_run_result *res);

#endif

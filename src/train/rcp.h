/* RCP's quantization-aware training as one library call (what `rotquant qat` runs):
 * Rotate (R1/R2 folded; R3/R4 online with A4/KV4), Clip and Partition (the 2-bit
 * runtime-grid quantizers of train/fakequant.h: LDP, uniform with learnable clipping, SEQ),
 * trained by self-distillation from the rotated float model:
 *   1. the float model is loaded twice: the student, and the teacher (R1/R2 folded, float,
 *      no online quantizers: the same function as the original model);
 *   2. data: the teacher's own generated text (temperature, seeded) or given token ids,
 *      windows of T tokens shuffled (seeded), a held-out split for validation;
 *   3. start: GPTQ on the student (the same calibration with the online quantizers in
 *      place as `rotquant quantize`; calibration windows = the first training windows),
 *      keeping the GPTQ-updated weights as latents and its grid as the quantizer's
 *      start; or the plain weights with min/max ranges;
 *   4. phase 1 block-wise (train/blockwise.h), phase 2 end-to-end distillation
 *      (train/run.h; CAKLD with γ from the teacher's confidence, or a fixed γ);
 *   5. export: the trained codes and fp16 levels (W2L) or scales/zeros (W2U) in a rotquant
 *      file with the online settings, so that ppl/run/eval run exactly what was trained. */
#ifndef RQ_TRAIN_RCP_H
#define RQ_TRAIN_RCP_H

#include "rotate/rotation.h"
#include "train/adamw.h"
#include "train/fakequant.h"

typedef struct rq_rcp_opts {
    rq_fq2_kind quantizer;   /* LDP (W2L), uniform or SEQ (W2U) */
    int64_t group;           /* 32, 64, 128; 0 = per output channel (stored in groups of 64) */
    rq_rot_kind rotate;      /* R1 (block = group or 64 for GSR/GH); R3/R4 the same kind with A/KV */
    rq_rot_kind rotate2;     /* R2 per head, folded into v/o (default none: QAT was measured without) */
    int r1_route;            /* rq_r1_route (quant/pipeline.h); auto (default): per-linear (route (b))
                              * on a post-norm model such as Gemma-3 (the backward does not run
                              * route (a)), the residual stream otherwise */
    int abits, kvbits;       /* settings (format/abits.h): 4, 8 or 16 = off; 4 or 16 = off */
    float aclip;             /* activation clip ratio (1: none) */
    bool asym;               /* asymmetric activations */
    bool init_ptq;           /* start from GPTQ (else from the weights' min/max) */
    int64_t calib_n;         /* GPTQ calibration windows (<= the training windows) */
    const char *init_file;   /* or start from this 2-bit rotquant file of the same model (its
                              * rotations, A/KV settings, group and embedding type are used; the
                              * options' ones are ignored) */
    /* data */
    const int32_t *ids;      /* given token ids [n_ids] (NULL: generate) */
    int64_t n_ids;
    int64_t gen_seqs;        /* generated windows */
    float gen_temp;
    double gen_chat;         /* fraction of the generated windows in the chat format (user and
                              * assistant turns both written by the model; quant/calib.h) */
    const char *data_save;   /* write the generated windows here (token ids, a window per line) */
    int64_t T, n_seq;        /* window length; windows per batch */
    double val_frac;
    /* phase 1 */
    int64_t block_steps;     /* per block (0: skip the phase) */
    float block_lr, block_lr_quant;
    /* phase 2 */
    int64_t steps;           /* end-to-end optimizer steps (0: skip the phase) */
    float lr, lr_quant;
    rq_lr_shape schedule;
    int64_t warmup;          /* phase 2: linear warm-up steps (lr ramps (k + 1)/warmup), then the schedule */
    double gamma;            /* CAKLD γ (< 0: the teacher's mean top-1 probability) */
    int64_t eval_every;
    const char *checkpoint, *resume;
    bool keep_last;          /* end phase 2 with its last parameters (default: those of the lowest
                              * validation loss) */
    const char *save_start;  /* also write the start point (GPTQ or min/max), before any training */
    const char *save_block;  /* also write the model after phase 1 (as `out` is written) */
    bool checkpoint_act;     /* phase 2: activation checkpointing per block (train/run.h) */
    double clip;             /* gradient-norm clip */
    uint64_t seed;
    const char *embd_type;   /* "q8_0", "f16", "f32" */
    bool progress;
} rq_rcp_opts;

rq_rcp_opts rq_rcp_opts_default(void);

typedef struct rq_rcp_result {
    double gamma;                       /* the γ used */
    double mse_first, mse_last;         /* phase 1 (mean over blocks) */
    double val_first, val_last;         /* phase 2 validation loss (KL) before/after */
    double val_ppl_start, val_ppl_end;  /* the student's perplexity on the held-out windows */
    double val_ppl_file;                /* the same, the written file loaded and run for inference
                                         * (under MPI the three perplexities and bits_per_weight
                                         * on rank 0, which writes the files; 0 elsewhere) */
    int64_t tokens_block, tokens_e2e;
    double t_data, t_ptq, t_block, t_e2e, t_total; /* seconds */
    double bits_per_weight;
} rq_rcp_result;

/* in: a float (not rotquant-quantized) GGUF; out: the file to write (atomically). Errors:
 * bad options (RQ_EINVAL, naming the option), a quantized input, a window longer than the
 * model's context, data too short, a checkpoint from another run, ENOMEM. */
rq_status rq_rcp_run(const char *in, const char *out, const rq_rcp_opts *o, rq_rcp_result *res);

#endif

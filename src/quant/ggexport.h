/* Export for llama.cpp (`rotquant export`): a standard GGUF that llama.cpp loads unchanged.
 *
 * The quantize pipeline (quant/pipeline.h) with only what folds into the weights: R1 and R2
 * folded (norms fused: their weights become ones and are written as such, F32; the lm_head
 * untied when the final norm's scale is fused into it), no online transform (A16, KV16, no
 * R3/R4; a post-norm model such as Gemma-3, whose R1 would have to run online after its
 * post-norms, is refused unless --rotate none). Every linear is solved by GPTQ (or RTN)
 * directly onto a llama.cpp block encoding (quant/ggquant.h), falling back per tensor as
 * llama.cpp does where the row length does not take the K type; the token embedding and
 * the lm_head are stored in embd_type (RTN onto the same encodings, or f16/f32).
 *
 * The file: the source's metadata (architecture, hyperparameters, tokenizer, chat template;
 * rotquant.* keys never), general.file_type = the main type's llama_ftype,
 * general.quantization_version = 2, the source's alignment; tensors under the source's names.
 * Written atomically. The model left in memory holds exactly the weights a reader
 * dequantizes from the file. */
#ifndef RQ_QUANT_GGEXPORT_H
#define RQ_QUANT_GGEXPORT_H

#include "model/model.h"
#include "quant/pipeline.h"

typedef struct rq_export_opts {
    rq_quant_opts q;  /* rotate/rotate2/block/block2/rotation_file/compose, method, act_order,
                       * fit_importance, damp, calibration, seed, progress; the rest is unused
                       * (A16 KV16, no R3/R4) */
    int type;         /* the linears' llama.cpp type (rq_gg_type_writable) */
    int embd_type;    /* token embedding and lm_head: a writable type, RQ_TYPE_F16 or RQ_TYPE_F32 */
} rq_export_opts;

/* gsr (block 32), GPTQ with act-order and fit-importance, calibration as quantize's
 * defaults, type Q4_0, embeddings Q8_0. */
rq_export_opts rq_export_opts_default(void);

typedef struct rq_export_result {
    int64_t n_lin;                 /* linears written */
    int64_t n_fallback;            /* of them, in a fallback type */
    char types[160];               /* "180 Q5_0, 30 Q4_K; embedding Q8_0, lm_head Q8_0" */
    double bits_per_weight;        /* over the linears */
    double loss;                   /* Σ of the layers' GPTQ losses (RTN: squared errors) */
    int64_t file_bytes;
    int64_t calib_n, calib_len;
    double t_fold, t_calib, t_forward, t_hessian, t_quant, t_write, t_total;
} rq_export_result;

/* The whole export from in (a GGUF or Hugging Face checkpoint, float or llama.cpp-quantized;
 * not a rotquant file) to out. quantized (may be NULL): receives the model in memory as
 * quantized (its weights equal the file's dequantized ones), owned by the caller. Errors:
 * bad options (RQ_EINVAL naming the option), an online rotation the file cannot hold
 * (RQ_EUNSUPPORTED), a row length no type fits, those of the pipeline's steps; out is then
 * not written. */
rq_status rq_export_run(const char *in, const char *out, const rq_export_opts *o, rq_export_result *r,
                        rq_model **quantized);

#endif

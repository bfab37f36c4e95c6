/* Post-training quantization of a (rotated) float model: every linear layer of every
 * block, RTN or GPTQ, layer by layer. GPTQ's Hessians come from calibration sequences
 * run through the model one block at a time: block l is calibrated on the outputs of the
 * already-quantized blocks 0..l-1 (METHODS.md "GPTQ"). The model's float weights are
 * replaced by their dequantized values as it goes, so afterwards `m` is the
 * fake-quantized model and can be evaluated directly.
 *
 * The model's run-time quantizers and online rotations (rq_model_set_online: per-token
 * activations, 4-bit KV cache, R3, R4) are in force during calibration: the Hessians are
 * built from the inputs the linears really receive (rotated and quantized, model.h
 * "hooks"), and each block runs on the outputs of the earlier blocks with their weights,
 * activations and KV cache all quantized.
 *
 * MPI (base/mpi.h): the calibration sequences are shared over the ranks, the Hessians
 * summed exactly (rq_hessian_reduce), GPTQ of linear i of a block solved by rank
 * i mod size and broadcast: every rank ends with the result of one process, bit for bit. */
#ifndef RQ_QUANT_PTQ_H
#define RQ_QUANT_PTQ_H

#include "format/qpacked.h"
#include "model/model.h"

typedef enum rq_ptq_method { RQ_PTQ_RTN = 0, RQ_PTQ_GPTQ = 1 } rq_ptq_method;

typedef struct rq_ptq_opts {
    int wbits;                /* 2, 3, 4, 8 */
    int64_t group;            /* weights per group; where it does not divide a layer's input
                               * size, that layer uses the largest group/2^k that does (>= 16) */
    rq_qparam_kind quantizer; /* uniform (asymmetric) or 4-level LUT (wbits 2) */
    rq_ptq_method method;
    bool act_order;           /* GPTQ: columns by decreasing H_ii (static groups) */
    bool fit_importance;      /* GPTQ: group quantizers fitted with diag(H) weights */
    double damp;              /* GPTQ: λ (0.01) */
    double shrink;            /* GPTQ: off-diagonal Hessian shrinkage α (0; gptq.h) */
    bool clip_search;         /* search a clip ratio per group (uniform quantizer) */
    bool least_squares;       /* refine each clip ratio's scale/zero by weighted least
                               * squares (uniform, 2-4 bits; real-valued zero points) */
    bool half_zero;           /* uniform: SEQ's grid, z = (2^b − 1)/2 (quant/uniform.h); needs
                               * least_squares */
    int lut_iters;            /* Lloyd iterations of the LUT quantizer (10) */
    bool progress;            /* per-layer lines on stderr */
    bool keep_latent;         /* fill rq_qlinear.latent (quantization-aware training starts there) */
    int gg_type;              /* 0: the quantizer above; else a llama.cpp type (quant/ggquant.h): every
                               * linear is solved onto that type's block encoding, or the type llama.cpp
                               * falls back to for its row length (rq_gg_type_for_row); wbits, group,
                               * quantizer and the fit options are then unused */
} rq_ptq_opts;

rq_ptq_opts rq_ptq_opts_default(void);

/* One quantized linear layer, in the file's terms (format/qpacked.h). */
typedef struct rq_qlinear {
    char name[64];     /* GGUF tensor name, e.g. "blk.3.attn_q.weight" */
    int64_t n_out, n_in;
    int64_t group;     /* this layer's group size (see rq_ptq_opts.group) */
    int type;          /* with rq_ptq_opts.gg_type: the llama.cpp type of this layer (codes and params
                        * as rq_gg_quantizer(type) fills them); 0 otherwise */
    uint8_t *codes;    /* [n_out, n_in] unpacked */
    float *params;     /* [n_out, n_in/group, n_param] */
    double loss;       /* GPTQ: Σe²/2 weighted by H; RTN: Σ(w − ŵ)² */
    float *latent;     /* [n_out, n_in] with opts.keep_latent, else NULL: the weights as they were
                        * rounded (GPTQ: updated by the earlier columns' errors; RTN: the input) */
} rq_qlinear;

typedef struct rq_ptq_result {
    rq_qlinear *lin;   /* [n_lin], in model order */
    int64_t n_lin;
    double t_forward, t_hessian, t_quant; /* seconds */
} rq_ptq_result;

/* Quantize every block's linear layers of m in place. calib [n_seq, seq_len] token ids
 * (GPTQ only; may be NULL for RTN). res is filled (free with rq_ptq_result_free). */
rq_status rq_ptq_run(rq_model *m, const rq_ptq_opts *o, const int32_t *calib, int64_t n_seq, int64_t seq_len,
                     rq_ptq_result *res);
void rq_ptq_result_free(rq_ptq_result *res);

#endif

/* Perplexity of a token stream under the model, by one of the two protocols of
 * METHODS.md:
 *   RQ_PPL_LLAMACPP  exactly llama.cpp's llama-perplexity: n_chunks = n_tokens / ctx
 *                    windows of ctx tokens (at least 2 windows are required); the first
 *                    token of each window is replaced by BOS when `bos` >= 0 (the model
 *                    adds BOS); only the second half is scored: the logits at positions
 *                    ctx/2 .. ctx-2 predict the tokens at ctx/2+1 .. ctx-1 (ctx - ctx/2 - 1
 *                    per window). The caller tokenizes the text as llama.cpp does: one
 *                    trailing newline of the file dropped, BOS at the start iff the model
 *                    adds BOS, special tokens not parsed (tools/cmd_ppl.c).
 *   RQ_PPL_FULL      the GPTQ/QuaRot papers' protocol: n_tokens / ctx non-overlapping
 *                    windows (the tail dropped), every token after the first of a window
 *                    scored (ctx - 1 per window); no BOS replacement.
 * PPL = exp(mean NLL). Its standard error is llama.cpp's estimate:
 * ppl · sqrt((mean(NLL²) − mean(NLL)²) / (N − 1)). The log-softmax sums exp in double.
 * The sums are kept per window (tokens in order) and added in window order; under MPI
 * (base/mpi.h) the windows are shared over the ranks and their sums gathered, so every
 * rank returns what one process returns (at the same thread count). */
#ifndef RQ_EVAL_PPL_H
#define RQ_EVAL_PPL_H

#include "base/status.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum rq_ppl_protocol {
    RQ_PPL_LLAMACPP = 0,
    RQ_PPL_FULL = 1,
} rq_ppl_protocol;

typedef struct rq_ppl_params {
    rq_ppl_protocol protocol;
    int64_t ctx;        /* window length in tokens */
    int64_t max_chunks; /* <= 0: all windows */
    int32_t bos;        /* llamacpp: token put first in each window; -1 = none */
    bool progress;      /* progress lines with ETA and running PPL on stderr */
} rq_ppl_params;

typedef struct rq_ppl_result {
    double ppl;
    double ppl_stderr;
    double nll;          /* mean negative log-likelihood (nats) */
    int64_t n_chunks;    /* windows evaluated */
    int64_t n_scored;    /* tokens scored */
    int64_t n_evaluated; /* tokens run through the model (n_chunks · ctx) */
    double seconds;      /* wall time of the evaluation */
} rq_ppl_result;

/* Errors: EINVAL for a bad ctx or too few tokens (message says how many are needed). */
rq_status rq_ppl_eval(const rq_model *m, const int32_t *tokens, int64_t n_tokens, const rq_ppl_params *p,
                      rq_ppl_result *out);

/* −log softmax(logits)[target] over logits[n], exp (src/kernels/vmath.h) summed in double
 * after subtracting the maximum. */
double rq_ppl_token_nll(const float *logits, int64_t n, int32_t target);

#endif

/* Text generation loop over token ids: prefill the prompt (in batches of the state's
 * n_batch), then sample and decode one token at a time. Tokenizer-free: the caller's
 * callback sees every sampled token and says whether to go on (e.g. stop at end-of-
 * generation tokens, print its bytes). */
#ifndef RQ_MODEL_GENERATE_H
#define RQ_MODEL_GENERATE_H

#include "model/model.h"
#include "model/sampler.h"

/* Return false to stop; the token is not fed to the model then. */
typedef bool (*rq_token_fn)(void *user, int32_t token);

typedef struct rq_generate_stats {
    int64_t n_prompt, n_generated; /* tokens sampled (passed to on_token) */
    int64_t n_decoded;             /* single-token forward calls */
    double t_prompt;   /* seconds: prefill and the first sample */
    double t_generate; /* seconds: the n_decoded decode steps and their samples */
} rq_generate_stats;

/* Generate up to n_predict tokens after prompt[0..n_prompt) (n_prompt >= 1), starting from
 * an empty cache; stops early when on_token returns false or the context is full.
 * Errors: EINVAL when the prompt does not fit the state's context. */
rq_status rq_generate(rq_state *st, const int32_t *prompt, int64_t n_prompt, int64_t n_predict, rq_sampler *s,
                      rq_token_fn on_token, void *user, rq_generate_stats *stats);

#endif

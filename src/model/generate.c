#include "model/generate.h"

#include "base/timer.h"

#include <string.h>

rq_status rq_generate(rq_state *st, const int32_t *prompt, int64_t n_prompt, int64_t n_predict, rq_sampler *s,
                      rq_token_fn on_token, void *user, rq_generate_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n_prompt < 1) return rq_errorf(RQ_EINVAL, "generate: empty prompt");
    if (n_prompt >= st->n_ctx)
        return rq_errorf(RQ_EINVAL, "generate: the prompt has %lld tokens; the context holds %lld",
                         (long long)n_prompt, (long long)st->n_ctx);
    rq_state_reset(st);
    double t0 = rq_time_now();
    for (int64_t p = 0; p < n_prompt; p += st->n_batch) {
        int64_t k = n_prompt - p < st->n_batch ? n_prompt - p : st->n_batch;
        RQ_TRY(rq_model_forward(st, prompt + p, k, p, p + k == n_prompt ? RQ_LOGITS_LAST : RQ_LOGITS_NONE));
    }
    stats->n_prompt = n_prompt;
    int64_t pos = n_prompt;
    for (int64_t i = 0; i < n_prompt; i++) rq_sampler_accept(s, prompt[i]);
    int32_t tok = rq_sampler_sample(s, st->logits);
    rq_sampler_accept(s, tok);
    double t1 = rq_time_now();
    stats->t_prompt = t1 - t0;
    for (int64_t i = 0; i < n_predict; i++) {
        stats->n_generated++;
        if (!on_token(user, tok) || i + 1 == n_predict || pos >= st->n_ctx) break;
        RQ_TRY(rq_model_forward(st, &tok, 1, pos, RQ_LOGITS_LAST));
        stats->n_decoded++;
        pos++;
        tok = rq_sampler_sample(s, st->logits);
        rq_sampler_accept(s, tok);
    }
    stats->t_generate = rq_time_now() - t1;
    return RQ_OK;
}

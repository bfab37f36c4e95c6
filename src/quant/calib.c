#include "quant/calib.h"

#include "base/rng.h"
#include "base/timer.h"
#include "model/sampler.h"

#include <string.h>

rq_status rq_calib_generate(const rq_model *m, const rq_tokenizer *tok, int64_t n_seq, int64_t seq_len,
                            float temperature, uint64_t seed, bool progress, int32_t **out) {
    *out = NULL;
    if (n_seq < 1 || seq_len < 2) return rq_errorf(RQ_EINVAL, "calibration: need at least 1 sequence of 2 tokens");
    int32_t bos = rq_tokenizer_bos(tok);
    if (bos < 0) bos = rq_tokenizer_eos(tok);
    if (bos < 0) return rq_errorf(RQ_EUNSUPPORTED, "calibration: the model has neither BOS nor EOS to start from");
    int64_t total;
    if (!rq_mul_ok(n_seq, seq_len, &total)) return rq_errorf(RQ_EINVAL, "calibration: size overflows");
    int32_t *ids = rq_alloc(total * (int64_t)sizeof(int32_t));
    if (!ids) return RQ_ENOMEM;
    rq_state *st;
    rq_status s = rq_state_new(m, seq_len, 1, false, &st);
    if (s != RQ_OK) {
        rq_free(ids);
        return s;
    }
    rq_progress prog;
    rq_progress_start(&prog, "calibration text", total, progress);
    for (int64_t q = 0; q < n_seq && s == RQ_OK; q++) {
        rq_sampler_params sp = {.temperature = temperature, .top_k = 0, .top_p = 1.0f, .seed = seed + (uint64_t)q};
        rq_sampler *smp;
        if ((s = rq_sampler_new(&sp, m->cfg.n_vocab, &smp)) != RQ_OK) break;
        int32_t *seq = ids + q * seq_len;
        seq[0] = bos;
        rq_state_reset(st);
        for (int64_t t = 0; t + 1 < seq_len; t++) {
            if ((s = rq_model_forward(st, &seq[t], 1, t, RQ_LOGITS_LAST)) != RQ_OK) break;
            int32_t next = rq_sampler_sample(smp, st->logits);
            seq[t + 1] = rq_tokenizer_is_eog(tok, next) ? bos : next;
            rq_progress_step(&prog, 1, NULL);
        }
        rq_progress_step(&prog, 1, NULL);
        rq_sampler_free(smp);
    }
    rq_progress_finish(&prog);
    rq_state_free(st);
    if (s != RQ_OK) {
        rq_free(ids);
        return s;
    }
    *out = ids;
    return RQ_OK;
}

rq_status rq_calib_from_text(const rq_tokenizer *tok, const char *text, int64_t len, int64_t n_seq,
                             int64_t seq_len, uint64_t seed, int32_t **out) {
    *out = NULL;
    if (n_seq < 1 || seq_len < 2) return rq_errorf(RQ_EINVAL, "calibration: need at least 1 sequence of 2 tokens");
    int32_t *toks;
    int64_t n;
    RQ_TRY(rq_tokenizer_encode(tok, text, len, false, false, &toks, &n));
    int32_t bos = rq_tokenizer_add_bos_default(tok) ? rq_tokenizer_bos(tok) : -1;
    int64_t w = bos >= 0 ? seq_len - 1 : seq_len;
    if (n < w) {
        rq_free(toks);
        return rq_errorf(RQ_EINVAL, "calibration text has %lld tokens, fewer than one window of %lld", (long long)n,
                         (long long)w);
    }
    int64_t total;
    if (!rq_mul_ok(n_seq, seq_len, &total)) {
        rq_free(toks);
        return rq_errorf(RQ_EINVAL, "calibration: size overflows");
    }
    int32_t *ids = rq_alloc(total * (int64_t)sizeof(int32_t));
    if (!ids) {
        rq_free(toks);
        return RQ_ENOMEM;
    }
    rq_rng r;
    rq_rng_seed(&r, seed);
    for (int64_t q = 0; q < n_seq; q++) {
        int64_t off = (int64_t)rq_rng_below(&r, (uint64_t)(n - w + 1));
        int32_t *seq = ids + q * seq_len;
        if (bos >= 0) *seq++ = bos;
        memcpy(seq, toks + off, (size_t)w * sizeof(int32_t));
    }
    rq_free(toks);
    *out = ids;
    return RQ_OK;
}

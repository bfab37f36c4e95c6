#include "quant/calib.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/timer.h"
#include "model/sampler.h"

#include <math.h>
#include <string.h>

/* Sequences sampled together: each forward call advances every sequence of a batch by one
 * token (rq_model_forward_segments, one cache segment of seq_len positions per sequence),
 * so that the linears run as GEMMs over the batch's rows instead of GEMVs. A batch has at
 * most CALIB_MAX_BATCH sequences and at most CALIB_KV_BUDGET bytes of KV cache; the
 * sequences are spread evenly over the fewest batches that fit. */
#define CALIB_MAX_BATCH 64
#define CALIB_KV_BUDGET (INT64_C(2) << 30)

/* Sequences per batch for n_seq sequences of seq_len positions at kv_bytes per position. */
static int64_t calib_batch(int64_t n_seq, int64_t seq_len, int64_t kv_bytes) {
    int64_t per_seq = kv_bytes > 0 && seq_len <= CALIB_KV_BUDGET / kv_bytes ? seq_len * kv_bytes : CALIB_KV_BUDGET;
    int64_t b = CALIB_KV_BUDGET / per_seq;
    if (b > CALIB_MAX_BATCH) b = CALIB_MAX_BATCH;
    if (b > (INT64_C(1) << 24) / seq_len) b = (INT64_C(1) << 24) / seq_len; /* rq_state_new's context limit */
    if (b < 1) b = 1;
    int64_t n_batches = (n_seq + b - 1) / b;
    return (n_seq + n_batches - 1) / n_batches;
}

typedef struct {
    rq_sampler **smp; /* [b] */
    const float *logits; /* [b, n_vocab] */
    int64_t n_vocab;
    int32_t *next;    /* [b] */
} sample_job;

static void sample_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const sample_job *j = ctx;
    for (int64_t i = b; i < e; i++) j->next[i] = rq_sampler_sample(j->smp[i], j->logits + i * j->n_vocab);
}

void rq_calib_chat_clear(rq_calib_chat *c) {
    rq_free(c->start);
    rq_free(c->to_asst);
    rq_free(c->to_user);
    memset(c, 0, sizeof *c);
}

/* tokens of text[b, e) (control tokens parsed), optionally after BOS */
static rq_status piece(const rq_tokenizer *tok, const char *b, const char *e, bool bos, int32_t **ids, int64_t *n) {
    RQ_TRY(rq_tokenizer_encode(tok, b, (int64_t)(e - b), bos, true, ids, n));
    if (*n < 1) {
        rq_free(*ids), *ids = NULL;
        return rq_errorf(RQ_EINVAL, "calibration: the chat template has no marker between two turns");
    }
    return RQ_OK;
}

rq_status rq_calib_chat_make(const rq_chat_template *t, const rq_tokenizer *tok, rq_calib_chat *out) {
    memset(out, 0, sizeof *out);
    /* placeholders no template contains, found again in the rendering */
    static const char U[] = "\x01rqU\x01", A[] = "\x01rqA\x01", V[] = "\x01rqV\x01";
    rq_chat_message msgs[3] = {{"user", U}, {"assistant", A}, {"user", V}};
    char *r;
    RQ_TRY(rq_chat_render(t, msgs, 3, false, &r));
    const char *u = strstr(r, U), *a = u ? strstr(u, A) : NULL, *v = a ? strstr(a, V) : NULL;
    rq_status s = u && a && v ? RQ_OK : rq_errorf(RQ_EINVAL, "calibration: cannot find the turns in the chat template");
    bool bos = rq_tokenizer_add_bos_default(tok);
    if (s == RQ_OK) s = piece(tok, r, u, bos, &out->start, &out->n_start);
    if (s == RQ_OK) s = piece(tok, u + sizeof U - 1, a, false, &out->to_asst, &out->n_to_asst);
    if (s == RQ_OK) s = piece(tok, a + sizeof A - 1, v, false, &out->to_user, &out->n_to_user);
    rq_free(r);
    if (s != RQ_OK) rq_calib_chat_clear(out);
    return s;
}

static bool is_chat_seq(int64_t q, double frac) {
    return frac > 0 && floor((double)(q + 1) * frac) > floor((double)q * frac);
}

rq_status rq_calib_generate(const rq_model *m, const rq_tokenizer *tok, int64_t n_seq, int64_t seq_len,
                            float temperature, uint64_t seed, bool progress, int32_t **out) {
    return rq_calib_generate_mixed(m, tok, n_seq, seq_len, temperature, seed, NULL, 0, progress, out);
}

rq_status rq_calib_generate_mixed(const rq_model *m, const rq_tokenizer *tok, int64_t n_seq, int64_t seq_len,
                                  float temperature, uint64_t seed, const rq_calib_chat *chat, double chat_frac,
                                  bool progress, int32_t **out) {
    *out = NULL;
    if (n_seq < 1 || seq_len < 2) return rq_errorf(RQ_EINVAL, "calibration: need at least 1 sequence of 2 tokens");
    if (!(chat_frac >= 0 && chat_frac <= 1)) return rq_errorf(RQ_EINVAL, "calibration: chat fraction %g", chat_frac);
    if (!chat) chat_frac = 0;
    int32_t bos = rq_tokenizer_bos(tok);
    if (bos < 0) bos = rq_tokenizer_eos(tok);
    if (bos < 0) return rq_errorf(RQ_EUNSUPPORTED, "calibration: the model has neither BOS nor EOS to start from");
    int64_t total;
    if (!rq_mul_ok(n_seq, seq_len, &total)) return rq_errorf(RQ_EINVAL, "calibration: size overflows");
    const rq_model_config *c = &m->cfg;
    int64_t kv_bytes = 2 * c->n_layer * c->n_head_kv * c->head_dim * (int64_t)sizeof(float);
    int64_t B = calib_batch(n_seq, seq_len, kv_bytes);
    int32_t *ids = rq_alloc(total * (int64_t)sizeof(int32_t));
    /* per row of a batch: its token, segment and position; the samplers; the sampled ids */
    int32_t *toks = rq_alloc(B * (int64_t)sizeof(int32_t)), *next = rq_alloc(B * (int64_t)sizeof(int32_t));
    /* chat sequences: the forced piece each row is writing (NULL: sampling) and where in it,
     * and whether the model is writing a user turn */
    const int32_t **force = rq_calloc(B * (int64_t)sizeof(int32_t *));
    int64_t *force_n = rq_calloc(B * (int64_t)sizeof(int64_t)), *force_at = rq_calloc(B * (int64_t)sizeof(int64_t));
    bool *in_user = rq_calloc(B * (int64_t)sizeof(bool));
    int64_t *seg = rq_alloc(B * (int64_t)sizeof(int64_t)), *pos = rq_alloc(B * (int64_t)sizeof(int64_t));
    rq_sampler **smp = rq_calloc(B * (int64_t)sizeof(rq_sampler *));
    rq_state *st = NULL;
    rq_status s = RQ_OK;
    if (!ids || !toks || !next || !seg || !pos || !smp || !force || !force_n || !force_at || !in_user) s = RQ_ENOMEM;
    if (s == RQ_OK) s = rq_state_new(m, B * seq_len, B, true, &st);
    if (s == RQ_OK) s = rq_state_set_segments(st, seq_len);
    /* MPI (base/mpi.h): each rank samples its share of the batches — the same batches,
     * hence the same ids, as one process — and every rank gets all of them */
    int64_t n_batches = (n_seq + B - 1) / B, bb, be;
    rq_mpi_share(n_batches, &bb, &be);
    int64_t q_begin = bb * B, q_end = be * B < n_seq ? be * B : n_seq;
    rq_progress prog;
    rq_progress_start(&prog, "calibration text", (q_end - q_begin) * seq_len, progress);
    for (int64_t q0 = q_begin; q0 < q_end && s == RQ_OK; q0 += B) {
        int64_t nb = n_seq - q0 < B ? n_seq - q0 : B;
        for (int64_t b = 0; b < nb && s == RQ_OK; b++) {
            rq_sampler_params sp = {.temperature = temperature, .top_k = 0, .top_p = 1.0f,
                                    .seed = seed + (uint64_t)(q0 + b)};
            s = rq_sampler_new(&sp, c->n_vocab, &smp[b]);
            ids[(q0 + b) * seq_len] = bos;
            seg[b] = b;
            force[b] = NULL, in_user[b] = false;
            if (is_chat_seq(q0 + b, chat_frac)) {
                ids[(q0 + b) * seq_len] = chat->start[0];
                force[b] = chat->start, force_n[b] = chat->n_start, force_at[b] = 1, in_user[b] = true;
            }
        }
        rq_state_reset(st);
        for (int64_t t = 0; t + 1 < seq_len && s == RQ_OK; t++) {
            for (int64_t b = 0; b < nb; b++) toks[b] = ids[(q0 + b) * seq_len + t], pos[b] = t;
            if ((s = rq_model_forward_segments(st, toks, seg, pos, nb, RQ_LOGITS_ALL)) != RQ_OK) break;
            sample_job sj = {.smp = smp, .logits = st->logits, .n_vocab = c->n_vocab, .next = next};
            rq_parallel_for(nb, 1, sample_rows, &sj);
            for (int64_t b = 0; b < nb; b++) {
                int32_t *dst = &ids[(q0 + b) * seq_len + t + 1];
                if (force[b] && force_at[b] < force_n[b]) { /* inside a marker: written, not sampled */
                    *dst = force[b][force_at[b]++];
                } else if (!is_chat_seq(q0 + b, chat_frac)) {
                    *dst = rq_tokenizer_is_eog(tok, next[b]) ? bos : next[b];
                } else if (rq_tokenizer_is_eog(tok, next[b])) { /* end of a turn: the next one's header */
                    force[b] = in_user[b] ? chat->to_asst : chat->to_user;
                    force_n[b] = in_user[b] ? chat->n_to_asst : chat->n_to_user;
                    force_at[b] = 1, in_user[b] = !in_user[b];
                    *dst = force[b][0];
                } else {
                    *dst = next[b];
                }
            }
            rq_progress_step(&prog, nb, NULL);
        }
        rq_progress_step(&prog, nb, NULL);
        for (int64_t b = 0; b < nb; b++) {
            rq_sampler_free(smp[b]);
            smp[b] = NULL;
        }
    }
    rq_progress_finish(&prog);
    rq_state_free(st);
    rq_free(toks);
    rq_free(next);
    rq_free(force);
    rq_free(force_n);
    rq_free(force_at);
    rq_free(in_user);
    rq_free(seg);
    rq_free(pos);
    rq_free(smp);
    if (s == RQ_OK) s = rq_mpi_gather_range(ids, seq_len * (int64_t)sizeof(int32_t), q_begin, q_end);
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

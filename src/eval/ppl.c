#include "eval/ppl.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/pool.h"
#include "base/timer.h"
#include "kernels/vmath.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Rows of logits computed at once (LOGIT_ROWS × n_vocab floats: 48 MiB for a 49k
 * vocabulary): one pass over the output matrix per LOGIT_ROWS scored tokens. Fewer when
 * a window scores fewer tokens, and fewer for large vocabularies: the buffer stays within
 * LOGIT_BUDGET bytes (at least one row). */
#define LOGIT_ROWS 256
#define LOGIT_BUDGET (INT64_C(64) << 20)

double rq_ppl_token_nll(const float *logits, int64_t n, int32_t target) {
    const rq_vmath *vm = rq_vmath_get();
    float mx = vm->max(logits, n);
    return log(vm->exp_sum(NULL, logits, n, mx)) + (double)mx - (double)logits[target];
}

typedef struct {
    const float *logits; /* [rows, n_vocab] */
    const int32_t *targets;
    int64_t n_vocab;
    double *nll; /* [rows] */
} nll_job;

static void nll_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const nll_job *j = ctx;
    for (int64_t r = b; r < e; r++) j->nll[r] = rq_ppl_token_nll(j->logits + r * j->n_vocab, j->n_vocab, j->targets[r]);
}

rq_status rq_ppl_eval(const rq_model *m, const int32_t *tokens, int64_t n_tokens, const rq_ppl_params *p,
                      rq_ppl_result *out) {
    memset(out, 0, sizeof *out);
    const int64_t ctx = p->ctx, V = m->cfg.n_vocab;
    const bool lcpp = p->protocol == RQ_PPL_LLAMACPP;
    if (p->protocol != RQ_PPL_LLAMACPP && p->protocol != RQ_PPL_FULL)
        return rq_errorf(RQ_EINVAL, "perplexity: unknown protocol %d", (int)p->protocol);
    if (ctx < (lcpp ? 4 : 2) || ctx > (INT64_C(1) << 20))
        return rq_errorf(RQ_EINVAL, "perplexity: context %lld out of range [%d, %lld]", (long long)ctx, lcpp ? 4 : 2,
                         (long long)(INT64_C(1) << 20));
    int64_t need = lcpp ? 2 * ctx : ctx;
    if (n_tokens < need)
        return rq_errorf(RQ_EINVAL, "perplexity: the text has %lld tokens; context %lld needs at least %lld",
                         (long long)n_tokens, (long long)ctx, (long long)need);
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return rq_errorf(RQ_EINVAL, "perplexity: token id %d at %lld out of range", tokens[i], (long long)i);
    if (p->bos >= V) return rq_errorf(RQ_EINVAL, "perplexity: BOS id %d out of range", p->bos);
    int64_t n_chunks = n_tokens / ctx;
    if (p->max_chunks > 0 && p->max_chunks < n_chunks) n_chunks = p->max_chunks;
    const int64_t first = lcpp ? ctx / 2 : 0; /* first scored logits row */
    const int64_t n_score = ctx - 1 - first;  /* rows first .. ctx-2 */

    /* every rank the same ids and protocol (base/mpi.h); each scores its share of the
     * windows, and the windows' sums, gathered, are added in window order: the result does
     * not depend on the rank count */
    if (rq_mpi_size() > 1) {
        int64_t pv[4] = {(int64_t)p->protocol, ctx, n_chunks, p->bos};
        RQ_TRY(rq_mpi_check_same(rq_hash64(pv, sizeof pv, rq_hash64(tokens, n_chunks * ctx * 4, 0)),
                                 "perplexity: the token ids or options"));
    }
    int64_t c0, c1;
    rq_mpi_share(n_chunks, &c0, &c1);
    double *part = rq_calloc(n_chunks * 2 * (int64_t)sizeof(double)); /* [n_chunks, 2]: Σ nll, Σ nll² */
    rq_state *st = NULL;
    rq_status s = part ? rq_state_new(m, ctx, ctx, false, &st) : RQ_ENOMEM;
    if (s != RQ_OK) {
        rq_free(part);
        return s;
    }
    int64_t rows = LOGIT_BUDGET / (V * (int64_t)sizeof(float));
    if (rows > LOGIT_ROWS) rows = LOGIT_ROWS;
    if (rows > n_score) rows = n_score;
    if (rows < 1) rows = 1;
    int32_t *buf = rq_alloc(ctx * (int64_t)sizeof(int32_t));
    float *logits = rq_alloc(rows * V * (int64_t)sizeof(float)); /* [rows, V] */
    double *nll = rq_alloc(rows * (int64_t)sizeof(double));
    if (!buf || !logits || !nll) {
        rq_free(buf), rq_free(logits), rq_free(nll), rq_free(part);
        rq_state_free(st);
        return RQ_ENOMEM;
    }
    double run_sum = 0; /* this rank's, for the progress line */
    int64_t run_count = 0;
    rq_progress pr;
    rq_progress_start(&pr, "perplexity", c1 - c0, p->progress);
    double t0 = rq_time_now();
    for (int64_t c = c0; c < c1 && s == RQ_OK; c++) {
        memcpy(buf, tokens + c * ctx, (size_t)ctx * sizeof(int32_t));
        if (lcpp && p->bos >= 0) buf[0] = p->bos;
        rq_state_reset(st);
        s = rq_model_forward(st, buf, ctx, 0, RQ_LOGITS_NONE);
        if (s != RQ_OK) break;
        double *ps = part + 2 * c;
        for (int64_t r0 = first; r0 < first + n_score; r0 += rows) {
            int64_t nr = first + n_score - r0 < rows ? first + n_score - r0 : rows;
            rq_model_logits(m, st->hidden + r0 * m->cfg.n_embd, nr, logits);
            nll_job j = {.logits = logits, .targets = buf + r0 + 1, .n_vocab = V, .nll = nll};
            rq_parallel_for(nr, 1, nll_rows, &j);
            for (int64_t r = 0; r < nr; r++) ps[0] += nll[r], ps[1] += nll[r] * nll[r]; /* in order: deterministic */
        }
        run_sum += ps[0], run_count += n_score;
        char extra[64];
        snprintf(extra, sizeof extra, "PPL %.4f", exp(run_sum / (double)run_count));
        rq_progress_step(&pr, 1, extra);
    }
    rq_progress_finish(&pr);
    rq_free(buf), rq_free(logits), rq_free(nll);
    rq_state_free(st);
    if (s == RQ_OK) s = rq_mpi_gather_shares(part, n_chunks, 2 * (int64_t)sizeof(double));
    double t1 = rq_time_now();
    double sum = 0, sum2 = 0;
    for (int64_t c = 0; c < n_chunks; c++) sum += part[2 * c], sum2 += part[2 * c + 1];
    int64_t count = n_chunks * n_score;
    rq_free(part);
    if (s != RQ_OK) return s;
    double mean = sum / (double)count, var = sum2 / (double)count - mean * mean;
    out->nll = mean;
    out->ppl = exp(mean);
    out->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * out->ppl : 0;
    out->n_chunks = n_chunks;
    out->n_scored = count;
    out->n_evaluated = n_chunks * ctx;
    out->seconds = t1 - t0;
    return RQ_OK;
}

#include "model/sampler.h"

#include "base/rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float v; /* logit, then probability */
    int32_t id;
} cand;

struct rq_sampler {
    rq_sampler_params p;
    int64_t n_vocab;
    rq_rng rng;
    cand *c; /* [n_vocab] */
    /* repetition penalty: the last n_hist accepted tokens (a ring from hist_at) and the
     * penalized logits */
    int32_t *hist;
    int64_t n_hist, hist_at, last_n;
    float *pen; /* [n_vocab] */
};

rq_status rq_sampler_new(const rq_sampler_params *p, int64_t n_vocab, rq_sampler **out) {
    *out = NULL;
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return rq_errorf(RQ_EINVAL, "temperature %g must be >= 0", p->temperature);
    if (p->top_k < 0) return rq_errorf(RQ_EINVAL, "top-k %d must be >= 0", p->top_k);
    if (!(p->top_p >= 0 && p->top_p <= 1)) return rq_errorf(RQ_EINVAL, "top-p %g must be in [0, 1]", p->top_p);
    if (!(p->repeat_penalty >= 0) || !isfinite(p->repeat_penalty))
        return rq_errorf(RQ_EINVAL, "repeat penalty %g must be > 0 (1 = off)", p->repeat_penalty);
    if (p->repeat_last_n < 0) return rq_errorf(RQ_EINVAL, "repeat-last-n %d must be >= 0", p->repeat_last_n);
    if (n_vocab < 1 || n_vocab > INT32_MAX) return rq_errorf(RQ_EINVAL, "vocabulary size %lld", (long long)n_vocab);
    rq_sampler *s = rq_calloc(sizeof *s);
    if (!s) return RQ_ENOMEM;
    bool pen = p->repeat_penalty > 0 && p->repeat_penalty != 1;
    s->last_n = pen ? (p->repeat_last_n > 0 ? p->repeat_last_n : 64) : 0;
    s->c = rq_alloc(n_vocab * (int64_t)sizeof(cand));
    if (pen) {
        s->hist = rq_alloc(s->last_n * (int64_t)sizeof(int32_t));
        s->pen = rq_alloc(n_vocab * (int64_t)sizeof(float));
    }
    if (!s->c || (pen && (!s->hist || !s->pen))) {
        rq_sampler_free(s);
        return RQ_ENOMEM;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    rq_rng_seed(&s->rng, p->seed);
    *out = s;
    return RQ_OK;
}

void rq_sampler_free(rq_sampler *s) {
    if (!s) return;
    rq_free(s->c);
    rq_free(s->hist);
    rq_free(s->pen);
    rq_free(s);
}

int32_t rq_argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

/* descending value, then ascending id: a total order, so results are deterministic */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool cand_less(cand a, cand b) { return a.v < b.v || (a.v == b.v && a.id > b.id); }

/* keep the k best of c[0..n) in c[0..k) (unordered): a min-heap of size k */
static void select_top_k(cand *c, int64_t n, int64_t k) {
    for (int64_t i = k / 2 - 1; i >= 0; i--) { /* heapify c[0..k) */
        int64_t j = i;
        for (;;) {
            int64_t l = 2 * j + 1, r = l + 1, m = j;
            if (l < k && cand_less(c[l], c[m])) m = l;
            if (r < k && cand_less(c[r], c[m])) m = r;
            if (m == j) break;
            cand t = c[j]; c[j] = c[m]; c[m] = t;
            j = m;
        }
    }
    for (int64_t i = k; i < n; i++) {
        if (!cand_less(c[0], c[i])) continue;
        c[0] = c[i];
        int64_t j = 0;
        for (;;) {
            int64_t l = 2 * j + 1, r = l + 1, m = j;
            if (l < k && cand_less(c[l], c[m])) m = l;
            if (r < k && cand_less(c[r], c[m])) m = r;
            if (m == j) break;
            cand t = c[j]; c[j] = c[m]; c[m] = t;
            j = m;
        }
    }
}

void rq_sampler_accept(rq_sampler *s, int32_t token) {
    if (!s->last_n || token < 0 || token >= s->n_vocab) return;
    s->hist[s->hist_at] = token;
    s->hist_at = (s->hist_at + 1) % s->last_n;
    if (s->n_hist < s->last_n) s->n_hist++;
}

int32_t rq_sampler_sample(rq_sampler *s, const float *logits) {
    const rq_sampler_params *p = &s->p;
    int64_t n = s->n_vocab;
    if (s->n_hist > 0) { /* each distinct token once: its entry still equals the logit until penalized */
        memcpy(s->pen, logits, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < s->n_hist; i++) {
            int32_t t = s->hist[i];
            if (s->pen[t] != logits[t]) continue;
            s->pen[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty : logits[t] * p->repeat_penalty;
        }
        logits = s->pen;
    }
    if (p->temperature == 0 || p->top_k == 1) return rq_argmax(logits, n);
    cand *c = s->c;
    for (int64_t i = 0; i < n; i++) c[i] = (cand){logits[i], (int32_t)i};
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(c, n, p->top_k);
        n = p->top_k;
    }
    bool use_top_p = p->top_p > 0 && p->top_p < 1;
    if (use_top_p) qsort(c, (size_t)n, sizeof *c, cand_cmp);
    float mx = c[0].v;
    for (int64_t i = 1; i < n; i++) mx = c[i].v > mx ? c[i].v : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        c[i].v = (float)exp(((double)c[i].v - mx) / p->temperature);
        sum += c[i].v;
    }
    if (use_top_p) {
        double cum = 0, target = p->top_p * sum;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += c[i].v;
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = cum;
    }
    double r = rq_rng_uniform(&s->rng) * sum, acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += c[i].v;
        if (r < acc) return c[i].id;
    }
    return c[n - 1].id; /* rounding: r == sum */
}

/* Next-token sampling: greedy, or temperature + top-k + top-p with a seeded RNG.
 * Order of the filters: the repetition penalty (CTRL's, as llama.cpp applies it: each
 * distinct token among the last repeat_last_n accepted ones has its logit divided by the
 * penalty when positive, multiplied when negative), top-k on the logits, softmax at the temperature, top-p on the
 * sorted probabilities (the smallest prefix whose mass reaches top_p), then one draw.
 * The same seed and logits give the same tokens on every machine. */
#ifndef RQ_MODEL_SAMPLER_H
#define RQ_MODEL_SAMPLER_H

#include "base/status.h"

#include <stdint.h>

typedef struct rq_sampler_params {
    float temperature; /* 0 = greedy (first index of the largest logit); > 0 sampling */
    int32_t top_k;     /* 0 = off; else keep the k largest logits */
    float top_p;       /* 0 or 1 = off; else in (0, 1) */
    uint64_t seed;
    float repeat_penalty;  /* 0 or 1 = off; else > 0 (llama.cpp's --repeat-penalty) */
    int32_t repeat_last_n; /* tokens of history it looks at (0: 64) */
} rq_sampler_params;

typedef struct rq_sampler rq_sampler;

/* Validates the parameters (EINVAL naming the bad one). *out owned by the caller
 * (rq_sampler_free). */
rq_status rq_sampler_new(const rq_sampler_params *p, int64_t n_vocab, rq_sampler **out);
void rq_sampler_free(rq_sampler *s);
/* Pick a token from logits[n_vocab] (not modified). */
int32_t rq_sampler_sample(rq_sampler *s, const float *logits);
/* Add a token (of the prompt, or the one just sampled) to the history the penalty reads. */
void rq_sampler_accept(rq_sampler *s, int32_t token);
/* Index of the first largest of x[n]. */
int32_t rq_argmax(const float *x, int64_t n);

#endif

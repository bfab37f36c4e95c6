/* Seeded, reproducible random numbers (xoshiro256** seeded through splitmix64).
 * The same seed gives the same stream on every machine. */
#ifndef RQ_BASE_RNG_H
#define RQ_BASE_RNG_H

#include <stdint.h>

typedef struct rq_rng { uint64_t s[4]; } rq_rng;

void rq_rng_seed(rq_rng *r, uint64_t seed);
uint64_t rq_rng_u64(rq_rng *r);
/* uniform in [0, 1) with 53 random bits */
double rq_rng_uniform(rq_rng *r);
/* uniform integer in [0, n), n > 0, unbiased */
uint64_t rq_rng_below(rq_rng *r, uint64_t n);
/* standard normal (Box-Muller) */
double rq_rng_normal(rq_rng *r);

#endif

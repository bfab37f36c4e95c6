/* Row operations of the forward pass (float32, one row at a time; the caller spreads rows
 * over threads). Each has a direct formula, tested in tests/test_model.c. */
#ifndef RQ_MODEL_OPS_H
#define RQ_MODEL_OPS_H

#include "kernels/vexp.h"

#include <stdint.h>

/* y[i] = x[i] / sqrt(mean(x²) + eps) · g[i], i < n (mean accumulated in double).
 * y may alias x. */
void rq_rmsnorm(const float *x, const float *g, int64_t n, float eps, float *y);

/* RoPE on one head vector x[head_dim], in place, rotating the adjacent pairs
 * (x[2i], x[2i+1]), i < rope_dim/2, by the angle whose cos/sin are given:
 *   x'[2i] = x[2i]·c_i − x[2i+1]·s_i,   x'[2i+1] = x[2i]·s_i + x[2i+1]·c_i.
 * Dims >= rope_dim are left alone. */
void rq_rope_apply(float *x, const float *cos_, const float *sin_, int64_t rope_dim);

/* cos/sin tables for positions 0..n_pos-1: angle(p, i) = p·scale·base^(−2i/rope_dim)
 * / freq_div[i] (freq_div may be NULL = 1), computed in double.
 * cos_, sin_ [n_pos, rope_dim/2]. */
void rq_rope_table(int64_t n_pos, int64_t rope_dim, double base, double scale, const float *freq_div,
                   float *cos_, float *sin_);

/* In-place softmax over x[n] (max subtracted; exp by src/kernels/vexp.h, sum in double).
 * The _with form takes the exp kernel, picked once by the caller for hot loops. */
void rq_softmax(float *x, int64_t n);
void rq_softmax_with(float *x, int64_t n, rq_vexp_sum_fn vexp);

/* gate[i] = silu(gate[i]) · up[i] = gate/(1+exp(−gate)) · up, i < n. */
void rq_swiglu(float *gate, const float *up, int64_t n);

#endif

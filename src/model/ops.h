/* Row operations of the forward pass that are not plain vector math (that is in
 * kernels/vmath.h): RoPE, and softmax composed from the vmath kernels. Tested against
 * their direct formulas in tests/test_model.c. */
#ifndef RQ_MODEL_OPS_H
#define RQ_MODEL_OPS_H

#include "kernels/vmath.h"

#include <stdint.h>

/* RoPE on one head vector x[head_dim], in place, rotating the adjacent pairs
 * (x[2i], x[2i+1]), i < rope_dim/2, by the angle whose cos/sin are given:
 *   x'[2i] = x[2i]·c_i − x[2i+1]·s_i,   x'[2i+1] = x[2i]·s_i + x[2i+1]·c_i.
 * Dims >= rope_dim are left alone. */
void rq_rope_apply(float *x, const float *cos_, const float *sin_, int64_t rope_dim);

/* The same rotation on the NEOX pairing (x[i], x[i + rope_dim/2]), i < rope_dim/2 (Gemma,
 * GPT-NeoX): x'[i] = x[i]·c_i − x[i+h]·s_i,  x'[i+h] = x[i]·s_i + x[i+h]·c_i, h = rope_dim/2. */
void rq_rope_apply_neox(float *x, const float *cos_, const float *sin_, int64_t rope_dim);

/* GELU-gated MLP activation, in place over g[n]: g[i] = gelu(g[i])·u[i] with the tanh
 * approximation gelu(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (Gemma's), computed as
 * x·σ(2·√(2/π)(x + 0.044715x³)), which is the same function. */
void rq_geglu(float *g, const float *u, int64_t n);

/* cos/sin tables for positions 0..n_pos-1: angle(p, i) = p·scale·base^(−2i/rope_dim)
 * / freq_div[i] (freq_div may be NULL = 1), computed in double.
 * cos_, sin_ [n_pos, rope_dim/2]. */
void rq_rope_table(int64_t n_pos, int64_t rope_dim, double base, double scale, const float *freq_div,
                   float *cos_, float *sin_);

/* In-place softmax over x[n], n >= 1: max subtracted, exp summed in double. */
void rq_softmax(float *x, int64_t n, const rq_vmath *vm);

#endif

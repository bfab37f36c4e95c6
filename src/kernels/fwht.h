/* Fast Walsh-Hadamard transform kernels (METHODS.md "Hadamard and Walsh matrices").
 *
 * rq_fwht: in place, each of `rows` contiguous rows x[r·n .. r·n + n) becomes
 *     x_r ← scale · x_r S_n
 * with S_n the (symmetric, unnormalized) Sylvester matrix of order n, n a power of two
 * (1 <= n <= 2^30). scale = 1 gives the plain transform, scale = 1/√n the orthonormal
 * one. Results are in natural (Sylvester/Hadamard) order; sequency order is a
 * permutation applied by the caller (rotate/rotation.h).
 *
 * rq_fwht_mix: the dense factor of a Kronecker transform H = B ⊗ S_p. Each of `rows`
 * contiguous rows is m blocks of p floats, X [m, p]; it becomes
 *     Y[j] = scale · Σ_i c[i·m + j] · X[i]         (Y = scale · cᵀ X,  c [m, m])
 * i.e. with c = B this computes the B-part of x (B ⊗ I_p); with c = Bᵀ the part of
 * x (Bᵀ ⊗ I_p). tmp is caller-provided scratch of m·p floats.
 *
 * The dispatching entries pick the fastest level allowed by rq_cpu_level_get(); the
 * per-level functions are exported for tests and benchmarks (call the AVX-512 ones only
 * when rq_cpu_max_level() reports AVX-512). All levels give the same results up to
 * rounding (FWHT: the same additions in the same order, so in practice bit-identical;
 * mix: FMA vs separate multiply-add). */
#ifndef RQ_KERNELS_FWHT_H
#define RQ_KERNELS_FWHT_H

#include <stdint.h>

void rq_fwht(float *x, int64_t rows, int64_t n, float scale); /* x [rows, n] */
void rq_fwht_ref(float *x, int64_t rows, int64_t n, float scale);
void rq_fwht_avx2(float *x, int64_t rows, int64_t n, float scale);
void rq_fwht_avx512(float *x, int64_t rows, int64_t n, float scale);

/* x [rows, m·p], c [m, m], tmp [m·p] */
void rq_fwht_mix(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp);
void rq_fwht_mix_ref(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp);
void rq_fwht_mix_avx2(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp);
void rq_fwht_mix_avx512(const float *c, int64_t m, int64_t p, float *x, int64_t rows, float scale, float *tmp);

#endif

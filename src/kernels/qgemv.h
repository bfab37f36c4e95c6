/* GEMV over GGUF's Q8_0 rows (format/format.h) with float activations: the lm_head (and
 * the token embedding) of rotquant's quantized model files, which `rotquant quantize`
 * stores as Q8_0 by default, run without materializing the float matrix.
 *
 *   y [out] = Ŵ · x,   Ŵ [out, in] the dequantized Q8_0 rows (in % 32 == 0), x [in]
 *   y_r = Σ_b d_rb · (Σ_{i in block b} q_rbi · x_i)     (float sums, block by block)
 *
 * Single-threaded: the caller splits rows over threads (a row range is a pointer offset of
 * r·(in/32)·34 bytes). The kernel is chosen from rq_cpu_level_get() (RQ_CPU caps it):
 * scalar reference (kernels/ref/q8_0_ref.c), AVX2 or AVX-512 (kernels/x86/q8_0_*.c). The
 * SIMD versions sum in a different order than the reference, so they agree with it up to
 * float rounding (tests/test_kernels.c bounds the difference). */
#ifndef RQ_KERNELS_QGEMV_H
#define RQ_KERNELS_QGEMV_H

#include <stdint.h>

/* w: out rows of in/32 rq_block_q8_0 (any 2-byte aligned address); x [in], y [out],
 * caller-owned, not overlapping. */
void rq_q8_0_gemv(const void *w, int64_t out, int64_t in, const float *x, float *y);

/* The versions behind it, for tests and benchmarks (the AVX ones need the CPU to have
 * the instructions: check rq_cpu_max_level() first). */
void rq_q8_0_gemv_ref(const void *w, int64_t out, int64_t in, const float *x, float *y);
void rq_q8_0_gemv_avx2(const void *w, int64_t out, int64_t in, const float *x, float *y);
void rq_q8_0_gemv_avx512(const void *w, int64_t out, int64_t in, const float *x, float *y);

#endif

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

#include "format/format.h"

#include <stdint.h>

/* w: out rows of in/32 rq_block_q8_0 (any 2-byte aligned address); x [in], y [out],
 * caller-owned, not overlapping. */
void rq_q8_0_gemv(const void *w, int64_t out, int64_t in, const float *x, float *y);

/* The versions behind it, for tests and benchmarks (the AVX ones need the CPU to have
 * the instructions: check rq_cpu_max_level() first). */
void rq_q8_0_gemv_ref(const void *w, int64_t out, int64_t in, const float *x, float *y);
void rq_q8_0_gemv_avx2(const void *w, int64_t out, int64_t in, const float *x, float *y);
void rq_q8_0_gemv_avx512(const void *w, int64_t out, int64_t in, const float *x, float *y);

/* The same product with x quantized to int8 per 32-block (llama.cpp's Q8_0 × Q8_0 dot):
 *
 *   y_r = Σ_b (d_rb · xd_b) · (Σ_{i in block b} q_rbi · xq_i)
 *
 * xq [in] the activation codes, xd [in/32] their block scales (rq_act_quant on each block of
 * 32 with qmax 127 gives them), i.e. x̃_i = xd_b · xq_i. The block dots are integers (exact on
 * every path), only the float sum over blocks depends on the order. Used for the Q8_0
 * lm_head under RQ_LOWBIT_A16_Q8 (kernels/gemv.h): the float GEMV widens every weight to
 * float (two permutes, a conversion and an FMA per 16) and cannot keep up with the
 * memory stream; one vpdpbusd covers 32 weights. Every q_rbi in -128..127 is accepted
 * (a file may hold -128; no SIMD sum saturates). */
void rq_q8_0_gemv_q8(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y);
void rq_q8_0_gemv_q8_ref(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y);
void rq_q8_0_gemv_q8_avx2(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y);
/* needs AVX-512 VL and VNNI */
void rq_q8_0_gemv_q8_avx512(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y);

/* Q8_0 rows repacked for the int8 GEMV, 16 rows at a time (R16; built once at model load,
 * never written to a file). For each group of 16 rows and each block b (32 columns):
 *
 *   d[16]          the 16 rows' block scales (fp16, 32 bytes)
 *   codes[8][64]   step k (0..7): for row j (0..15), bytes 4j..4j+3 = elements 4k..4k+3 of
 *                  its block b, stored as unsigned w + 128
 *
 * 544 bytes per 16 × 32 weights, as many as Q8_0. One vpdpbusd of a step against x's 4 codes
 * broadcast adds 4 products to each row's 32-bit lane, so a 16-row block sum needs 8 of them
 * and no horizontal reduction; the bias Σ 128·x_i = 128·xs_b is the same for every row. */
#define RQ_Q8R16_ROWS 16
#define RQ_Q8R16_BLOCK_BYTES (RQ_Q8R16_ROWS * 2 + RQ_Q8R16_ROWS * RQ_QK8_0)

/* Bytes of one group of 16 rows of length in (a multiple of 32). */
int64_t rq_q8_0_r16_group_bytes(int64_t in);
/* dst [out / 16 · group bytes] from Q8_0 rows w [out, in]; out a multiple of 16. */
void rq_q8_0_r16_pack(const void *w, int64_t out, int64_t in, void *dst);
/* y [out] = the int8 GEMV of rq_q8_0_gemv_q8 on the repacked rows wr (out a multiple of 16,
 * row r0 of a matrix starts at byte r0 / 16 · group bytes); xs [in / 32] = the sum of each
 * block's codes xq. Every level sums the blocks of a row in order as the reference. */
void rq_q8_0_r16_gemv_q8(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                         const int32_t *xs, float *y);
void rq_q8_0_r16_gemv_q8_ref(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                             const int32_t *xs, float *y);
void rq_q8_0_r16_gemv_q8_avx2(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                              const int32_t *xs, float *y);
/* needs AVX-512 VNNI */
void rq_q8_0_r16_gemv_q8_avx512(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                                const int32_t *xs, float *y);

#endif

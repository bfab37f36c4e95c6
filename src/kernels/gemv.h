/* GEMV / small GEMM over the packed weight layouts of format/lowbit.h (2-bit W2U and W2L,
 * 4-bit W4U), with float or per-token quantized activations (format/act.h),
 * multithreaded over output rows on the pool.
 *
 *   y [n_tok, out] = x̃ [n_tok, in] · Ŵᵀ,   Ŵ [out, in] the dequantized weights,
 *   x̃ = x (RQ_ACT_F32) or x quantized per token and dequantized (RQ_ACT_Q8 / RQ_ACT_Q4).
 *
 * The kernel is chosen here, in one place, from rq_cpu_level_get() (RQ_CPU caps it):
 * scalar reference (kernels/ref), AVX2 (x86/lowbit_w2_avx2.c) or AVX-512 (x86/lowbit_w2_avx512.c,
 * with vpdpbusd where the CPU has AVX512-VNNI). How each computes, and the measured
 * choices, are described in those files and in the report of bench/bench_kernels.c.
 * n_tok = 1 is the decode GEMV; larger batches (prefill) unpack each weight row once per
 * tile of up to 4 tokens.
 *
 * Float activations use the same kernel for W2U and W2L: a group's 4 dequantized values
 * form a table and the codes index it (vpermps), then FMA. Integer activations compute
 * exact integer dot products per group (vpdpbusd / vpmaddubsw), take the zero point (or
 * the lowest LUT level) per vector lane with the lane sums of the activations, so that
 * no float sum grows beyond the products it adds (kernels/lowbit_impl.h), and apply the
 * weight scales per group and the token's scale at the end.
 * W4U works the same way with 16 table entries d·(c − z) (AVX-512: one vpermps per 16
 * weights; AVX2: codes converted to float, d·(c − z)) and unsigned 4-bit codes in the
 * integer dot products (x86/lowbit_w4_avx512.c, x86/lowbit_w4_avx2.c).
 * W2U at g = 64 and 128 with integer activations runs the super-chunk kernels (W2L with
 * the bit-plane method too; lowbit_impl.h, x86/lowbit_w2sc_avx512.c, x86/lowbit_w2sc_avx2.c):
 * the activations are reordered once per call so that each 32-bit lane of four vpdpbusd sums one group's
 * products over 256 elements, and the float work per group shrinks fourfold. Float
 * activations can take that path too, quantized to int8 per weight group
 * (rq_lowbit_tuning.a16 = RQ_LOWBIT_A16_Q8), as llama.cpp does for its quantized types.
 *
 * Measured (bench/bench_kernels.c, one thread of the AMD EPYC Zen 5 dev VM, AVX-512+VNNI,
 * group 64, weights cold; the machine was shared with other jobs): the kernels are
 * compute-bound at about 19-20 GB/s of weights per core for W2U A8/A4 and W2L (all
 * activation kinds) and 13 GB/s for W2U A16, against about 40 GB/s for a read-only pass
 * over the same bytes on one core. W2L with integer activations: the float-table method
 * (19 GB/s) beats the bit-plane vpdpbusd method (8 GB/s) for the GEMV, so it is the
 * default; the bit-plane method wins only for GEMM tiles at g = 128. GEMM: unpacking a
 * weight row once per 4 tokens gives 1.9x per token for int8/int4 activations and
 * 1.2-1.4x for float ones (whose 4 activation rows load more bytes than the codes). */
#ifndef RQ_KERNELS_GEMV_H
#define RQ_KERNELS_GEMV_H

#include "base/status.h"
#include "format/act.h"
#include "format/lowbit.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_lowbit_matrix {
    int type;         /* RQ_TYPE_W2U_G*, RQ_TYPE_W2L_G* or RQ_TYPE_W4U_G* */
    int64_t out, in;  /* in % group == 0 */
    const void *data; /* [out, in/group] blocks; row r starts at r·rq_type_row_bytes(type, in);
                       * borrowed, at least 2-byte aligned */
} rq_lowbit_matrix;

/* RQ_EINVAL with a message if the type is not a W2U/W2L/W4U type, a size is negative, in is not a
 * multiple of the group, or data is NULL with out·in > 0. */
rq_status rq_lowbit_matrix_check(const rq_lowbit_matrix *w);

/* y [n_tok, out] = x̃ [n_tok, in] · Ŵᵀ (see above). x and y caller-owned, not
 * overlapping; w must pass rq_lowbit_matrix_check (asserted). Allocates scratch for the
 * quantized activations (n_tok·in bytes and a little more) per call. */
void rq_lowbit_gemm(const rq_lowbit_matrix *w, rq_act_kind act, const float *x, int64_t n_tok, float *y);
/* The same into rows of y that are ldy >= out floats apart (only the first out columns of
 * each row are written), and with accumulate, y += x̃·Ŵᵀ instead of y =. The model's
 * linear layers use this to write into wider buffers and to add into the residual. */
void rq_lowbit_gemm_ex(const rq_lowbit_matrix *w, rq_act_kind act, const float *x, int64_t n_tok, float *y, int64_t ldy,
                   bool accumulate);
/* The decode case: y [out] = Ŵ · x̃ for one token x [in]. */
static inline void rq_lowbit_gemv(const rq_lowbit_matrix *w, rq_act_kind act, const float *x, float *y) {
    rq_lowbit_gemm(w, act, x, 1, y);
}
/* Activations already quantized: q [n_tok, in] (values in [-127, 127]) with scales
 * [n_tok], e.g. from rq_act_quant_ref or rq_act_q4_unpack. y [n_tok, out]. */
void rq_lowbit_gemm_q(const rq_lowbit_matrix *w, const int8_t *q, const float *scale, int64_t n_tok,
                  float *y);

/* Dequantization of n elements (n % group == 0, asserted) of W2U/W2L/W4U blocks to floats y [n],
 * with the dispatched SIMD code; the values equal rq_dequant_lowbit's (format/lowbit.h) bit for
 * bit. The model's prefill dequantizes tiles of weight rows with it and multiplies them
 * with BLAS (model/linear.c). The AVX versions are callable directly (tests) where the
 * CPU has the instructions. */
void rq_lowbit_dequant(int type, const void *src, float *y, int64_t n);
void rq_lowbit_dequant_avx2(int type, const void *src, float *y, int64_t n);
void rq_lowbit_dequant_avx512(int type, const void *src, float *y, int64_t n);

/* Per-token quantization with the dispatched SIMD code (same codes as rq_act_quant_ref):
 * q [n] and the returned scale. qmax = 127 (Q8) or 7 (Q4). */
float rq_act_quant(const float *x, int64_t n, int qmax, int8_t *q);

/* ---- tuning knobs, for tests and bench/bench_kernels.c (process-wide; not thread-safe
 * against concurrent GEMMs). */
typedef enum rq_lowbit_lut_int_method {
    /* W2L with integer activations: the integer values are turned into floats once per
     * token and the float table-lookup kernel runs on them (the measured winner; each
     * product of an integer value and an fp16 level is exact in float) */
    RQ_LOWBIT_LUT_INT_FLOAT = 0,
    /* three vpdpbusd per group over bit planes (code, code & 2, code == 3), whose integer
     * sums give the 4 per-code partial sums, combined with the 4 levels; over super-chunks
     * where the level has those kernels (unless no_sc) */
    RQ_LOWBIT_LUT_INT_BITPLANE = 1,
} rq_lowbit_lut_int_method;

/* What RQ_ACT_F32 (A16) computes with the W2 types. */
typedef enum rq_lowbit_a16 {
    /* x exactly, in float (the float kernels) */
    RQ_LOWBIT_A16_EXACT = 0,
    /* W2U: x quantized to int8 per weight group (one scale amax/127 per g elements, as
     * rq_act_quant_ref on each group) and multiplied in integers, as llama.cpp does for its
     * quantized types: the float kernels compute one permute and one FMA per 16 weights
     * and cannot keep up with the memory stream; the integer super-chunk kernels can.
     * Where no such kernel runs (g = 32, the scalar level) the float kernels run on the
     * dequantized int8 values, so that every path gives the same numbers. W2L and W4U
     * keep x exactly: no integer kernel for them beats their float kernels (W2L needs
     * three integer dot products per group for its four levels), so quantizing x would
     * change their numbers for nothing. The same switch quantizes the input of GGUF layers
     * with an int8 GEMV (the Q8_0 lm_head: int8 per 32-block, kernels/qgemv.h), on the
     * decode and the prefill path alike (model/linear.c). */
    RQ_LOWBIT_A16_Q8 = 1,
} rq_lowbit_a16;

typedef struct rq_lowbit_tuning {
    rq_lowbit_lut_int_method lut_int; /* default RQ_LOWBIT_LUT_INT_FLOAT (where no super-chunk kernel runs) */
    int tok_tile;                 /* tokens per weight-row unpack, 1..4 (default 4) */
    bool no_vnni;                 /* use the AVX-512 kernels without vpdpbusd */
    bool no_sc;                   /* W2 integer activations: the per-group kernels instead of the
                                   * super-chunk ones (lowbit_impl.h) where those exist */
    rq_lowbit_a16 a16;            /* default RQ_LOWBIT_A16_EXACT */
    bool no_rows4;                /* one token: the super-chunk kernels row by row instead of
                                   * four rows per call where the level has those */
} rq_lowbit_tuning;

void rq_lowbit_tuning_get(rq_lowbit_tuning *t);
/* NULL restores the defaults. */
void rq_lowbit_tuning_set(const rq_lowbit_tuning *t);
/* Name of the kernel set rq_lowbit_gemm would use now ("scalar", "avx2", "avx512-vnni", ...). */
const char *rq_lowbit_kernel_name(void);

#endif

/* The kernel entries of each type id: the fast code that dequantizes a type's rows and
 * multiplies them by float activations, keyed by the same ids as format/format.h's
 * traits table. format/ holds the layouts and the scalar dequantize (rq_type_traits,
 * to_float), and must not reach into kernels/ (DESIGN.md's layering), so the kernel side
 * of the traits lives here, in one table, instead of switches on type ids in the callers
 * (model/linear.c picks its dequantizer and its GEMV from this table).
 *
 * Each entry is itself a dispatching entry of its kernel family: it runs the fastest code
 * rq_cpu_level_get() allows (kernels/gemv.c for the low-bit family, kernels/qgemv.c for
 * Q8_0); the traits' to_float stays the scalar oracle they are tested against.
 *
 * The low-bit family's GEMM with integer activations (rq_lowbit_gemm_ex) is not in the
 * table: it takes the activation kind and splits rows over the pool itself, so the
 * caller reaches it through its own kernel family (kernels/gemv.h). */
#ifndef RQ_KERNELS_TYPE_KERNELS_H
#define RQ_KERNELS_TYPE_KERNELS_H

#include <stdint.h>

/* y [n] = the first n elements of src dequantized; n is a multiple of the type's block
 * size (asserted by the low-bit entry), and since the rows of a matrix are consecutive,
 * n = rows · in dequantizes whole rows at once. Values equal the type's to_float bit for
 * bit. src and y caller-owned. */
typedef void (*rq_dequant_fn)(int type, const void *src, float *y, int64_t n);

/* y [out] = Ŵ · x for float x [in], Ŵ [out, in] the dequantized rows of w (in a multiple
 * of the block size); single-threaded (a row range is a pointer offset, the caller splits
 * rows over threads). w, x and y caller-owned, not overlapping. */
typedef void (*rq_gemv_f32_fn)(int type, const void *w, int64_t out, int64_t in, const float *x, float *y);

/* y [out] = Ŵ · x̃ for x̃_i = xd_b · xq_i, x quantized to int8 per block of the type
 * (rq_act_quant with qmax 127 on each block: codes xq [in], scales xd [in / block]);
 * single-threaded as gemv_f32. */
typedef void (*rq_gemv_q8_fn)(int type, const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                              float *y);

typedef struct rq_type_kernels {
    rq_dequant_fn dequant;   /* never NULL in an entry */
    rq_gemv_f32_fn gemv_f32; /* NULL: no direct GEMV for the type (callers dequantize
                              * tiles of rows and multiply them with BLAS) */
    rq_gemv_q8_fn gemv_q8;   /* NULL: none; else the GEMV with int8 activations per block that
                              * RQ_LOWBIT_A16_Q8 (kernels/gemv.h) selects for one token */
} rq_type_kernels;

/* The entry of `type`, or NULL where rotquant cannot dequantize it (unknown ids, the
 * layouts known by size only: exactly where rq_type_can_dequantize is false). Any int is
 * accepted. Points into a static table. */
const rq_type_kernels *rq_type_kernels_get(int type);

#endif

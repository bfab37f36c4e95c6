/* CUDA kernels (built only with -DRQ_CUDA=ON, into the static library rotquant_cuda):
 * low-bit GEMV for one token, W2U with float activations ("W2A16") and W2L with packed int4
 * activations ("W2A4", RCP's non-uniform kernel), and the fast Walsh-Hadamard transform.
 * A plain C interface; every pointer named *_dev is device memory, and the kernels run
 * on the default stream (asynchronous: rq_cuda_sync waits). Errors are returned as
 * RQ_EIO / RQ_EINVAL with the CUDA error string in rq_last_error().
 *
 * Each kernel computes what the CPU scalar reference computes (kernels/gemv.h):
 *   rq_cuda_w2u_gemv_f32: y [out] = Ŵ · x, Ŵ = d·(code − z) per group, float sums;
 *   rq_cuda_w2l_gemv_a4:  y [out] = a · Σ_g Σ_k v_gk·S_gk with the exact integer sums
 *                         S_gk = Σ_{code_i = k} q_i of the token's int4 values q (packed
 *                         rq_block_a4 rows, format/act.h) and its scale a;
 *   rq_cuda_fwht:         x_r ← scale · x_r·S_n per row (S_n Sylvester, n = 2^k <= 32768),
 *                         the same definition as the CPU rq_fwht (kernels/fwht.h).
 * Layouts are the CPU ones (format/lowbit.h), so a model's packed tensors are copied as is.
 * Rows of W2U_G32/64/128 blocks are 4-byte aligned and W2L rows 8-byte aligned when the
 * matrix starts at a cudaMalloc address (block sizes 12/20/36 and 16/24/40 bytes). */
#ifndef RQ_KERNELS_CUDA_RQ_CUDA_H
#define RQ_KERNELS_CUDA_RQ_CUDA_H

#include "base/status.h"
#include "format/act.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices usable now (0 when there is no driver or no GPU). */
int rq_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" into buf; RQ_EIO without a device. */
rq_status rq_cuda_device_name(char *buf, int64_t size);

rq_status rq_cuda_malloc(void **p_dev, int64_t bytes);
void rq_cuda_free(void *p_dev);
rq_status rq_cuda_upload(void *dst_dev, const void *src, int64_t bytes);
rq_status rq_cuda_download(void *dst, const void *src_dev, int64_t bytes);
rq_status rq_cuda_copy_d2d(void *dst_dev, const void *src_dev, int64_t bytes);
rq_status rq_cuda_sync(void);

/* type: RQ_TYPE_W2U_G32/64/128; w_dev [out, in/g] blocks, x_dev [in], y_dev [out]. */
rq_status rq_cuda_w2u_gemv_f32(int type, int64_t out, int64_t in, const void *w_dev,
                               const float *x_dev, float *y_dev);
/* type: RQ_TYPE_W4U_G32/64/128 (4-bit uniform); w_dev [out, in/g] blocks, x_dev [in],
 * y_dev [out]: y = Ŵ·x with Ŵ = d·(code − z), float sums (8 rows per block, split-K). */
rq_status rq_cuda_w4u_gemv_f32(int type, int64_t out, int64_t in, const void *w_dev, const float *x_dev,
                               float *y_dev);
/* type: RQ_TYPE_W2L_G32/64/128; w_dev [out, in/g] blocks, xq_dev [in/32] packed int4
 * values, scale = the token's scale a; y_dev [out]. in % 32 == 0 by the group. */
rq_status rq_cuda_w2l_gemv_a4(int type, int64_t out, int64_t in, const void *w_dev,
                              const rq_block_a4 *xq_dev, float scale, float *y_dev);
/* How the GEMVs split the work (process-wide; for bench_cuda and tests):
 * 0 = one warp per output row, 4 or 8 = that many rows per block with the row's units
 * split over the block's threads (lowbit_gemv.cu), -1 = each kernel's measured best (the
 * default). RQ_EINVAL otherwise. */
rq_status rq_cuda_gemv_split_set(int rows_per_block);
int rq_cuda_gemv_split_get(void);
/* Peak memory bandwidth from the device's memory clock and bus width (GB/s, double data
 * rate), 0 when the driver does not report them. */
double rq_cuda_peak_gbs(void);
/* In place, x_dev [rows, n], n a power of two in [1, 32768]. */
rq_status rq_cuda_fwht(float *x_dev, int64_t rows, int64_t n, float scale);

#ifdef __cplusplus
}
#endif

#endif

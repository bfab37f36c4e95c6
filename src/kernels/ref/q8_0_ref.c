/* Scalar reference Q8_0 GEMV (kernels/qgemv.h): for each row, a float sum per block,
 * scaled by the block's d and added in block order. */
#include "kernels/qgemv.h"

#include "format/format.h"

void rq_q8_0_gemv_ref(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *blk = w;
    for (int64_t r = 0; r < out; r++) {
        float sum = 0;
        for (int64_t b = 0; b < nb; b++, blk++) {
            float s = 0;
            for (int i = 0; i < RQ_QK8_0; i++) s += (float)blk->qs[i] * x[b * RQ_QK8_0 + i];
            sum += rq_fp16_to_fp32(blk->d) * s;
        }
        y[r] = sum;
    }
}

void rq_q8_0_gemv_q8_ref(const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd, float *y) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *blk = w;
    for (int64_t r = 0; r < out; r++) {
        float sum = 0;
        for (int64_t b = 0; b < nb; b++, blk++) {
            int32_t s = 0;
            for (int i = 0; i < RQ_QK8_0; i++) s += (int32_t)blk->qs[i] * xq[b * RQ_QK8_0 + i];
            sum += rq_fp16_to_fp32(blk->d) * xd[b] * (float)s;
        }
        y[r] = sum;
    }
}

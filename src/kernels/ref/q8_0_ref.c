/* Scalar reference Q8_0 GEMV (kernels/qgemv.h): for each row, a float sum per block,
 * scaled by the block's d and added in block order. */
#include "kernels/qgemv.h"

#include "format/format.h"

#include <string.h>

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

int64_t rq_q8_0_r16_group_bytes(int64_t in) { return in / RQ_QK8_0 * RQ_Q8R16_BLOCK_BYTES; }

void rq_q8_0_r16_pack(const void *w, int64_t out, int64_t in, void *dst) {
    const int64_t nb = in / RQ_QK8_0;
    const rq_block_q8_0 *src = w;
    uint8_t *o = dst;
    for (int64_t g = 0; g < out / RQ_Q8R16_ROWS; g++)
        for (int64_t b = 0; b < nb; b++, o += RQ_Q8R16_BLOCK_BYTES) {
            for (int j = 0; j < RQ_Q8R16_ROWS; j++) {
                const rq_block_q8_0 *blk = src + (g * RQ_Q8R16_ROWS + j) * nb + b;
                memcpy(o + 2 * j, &blk->d, 2);
                for (int k = 0; k < 8; k++)
                    for (int t = 0; t < 4; t++)
                        o[2 * RQ_Q8R16_ROWS + 64 * k + 4 * j + t] = (uint8_t)(blk->qs[4 * k + t] + 128);
            }
        }
}

void rq_q8_0_r16_gemv_q8_ref(const void *wr, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                             const int32_t *xs, float *y) {
    (void)xs;
    const int64_t nb = in / RQ_QK8_0;
    const uint8_t *blk = wr;
    for (int64_t g = 0; g < out / RQ_Q8R16_ROWS; g++) {
        float acc[RQ_Q8R16_ROWS] = {0};
        for (int64_t b = 0; b < nb; b++, blk += RQ_Q8R16_BLOCK_BYTES) {
            const uint8_t *c = blk + 2 * RQ_Q8R16_ROWS;
            for (int j = 0; j < RQ_Q8R16_ROWS; j++) {
                int32_t s = 0;
                for (int k = 0; k < 8; k++)
                    for (int t = 0; t < 4; t++) s += ((int32_t)c[64 * k + 4 * j + t] - 128) * xq[b * RQ_QK8_0 + 4 * k + t];
                rq_half d;
                memcpy(&d, blk + 2 * j, 2);
                acc[j] += rq_fp16_to_fp32(d) * xd[b] * (float)s;
            }
        }
        for (int j = 0; j < RQ_Q8R16_ROWS; j++) y[g * RQ_Q8R16_ROWS + j] = acc[j];
    }
}

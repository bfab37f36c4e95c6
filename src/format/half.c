/* Array versions of the fp16 / bf16 conversions of format.h. The scalar conversions
 * are branch-free; the work goes in fixed chunks of 16 so that the compiler vectorizes
 * the inner loop even at -O2 (GCC's cheap cost model refuses loops needing a tail). */
#include "format/format.h"

#define RQ_CONVERT_ARRAY(fn, Src, Dst, conv)                                           \
    void fn(const Src *restrict src, Dst *restrict dst, int64_t n) {                   \
        int64_t i = 0;                                                                 \
        for (; i + 16 <= n; i += 16)                                                   \
            for (int j = 0; j < 16; j++) dst[i + j] = conv(src[i + j]);                \
        for (; i < n; i++) dst[i] = conv(src[i]);                                      \
    }

RQ_CONVERT_ARRAY(rq_fp16_to_fp32_array, rq_half, float, rq_fp16_to_fp32)
RQ_CONVERT_ARRAY(rq_fp32_to_fp16_array, float, rq_half, rq_fp32_to_fp16)
RQ_CONVERT_ARRAY(rq_bf16_to_fp32_array, rq_bf16, float, rq_bf16_to_fp32)
RQ_CONVERT_ARRAY(rq_fp32_to_bf16_array, float, rq_bf16, rq_fp32_to_bf16)

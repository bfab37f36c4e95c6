/* Per-token activation quantization, scalar reference (act.h). */
#include "format/act.h"

#include "base/status.h"

#include <math.h>

const char *rq_act_kind_name(rq_act_kind kind) {
    switch (kind) {
    case RQ_ACT_F32: return "f32";
    case RQ_ACT_Q8: return "q8";
    case RQ_ACT_Q4: return "q4";
    }
    return "?";
}

float rq_act_quant_ref(const float *x, int64_t n, int qmax, int8_t *q) {
    RQ_ASSERT(n >= 0 && qmax > 0 && qmax <= 127);
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (amax == 0) {
        for (int64_t i = 0; i < n; i++) q[i] = 0;
        return 0;
    }
    const float inv = (float)qmax / amax;
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * inv);
        v = fminf(fmaxf(v, (float)-qmax), (float)qmax);
        q[i] = (int8_t)v;
    }
    return amax / (float)qmax;
}

void rq_act_q4_pack(const int8_t *q, int64_t n, rq_block_a4 *dst) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_A4 == 0);
    for (int64_t c = 0; c < n / RQ_QK_A4; c++) {
        const int8_t *s = q + c * RQ_QK_A4;
        for (int j = 0; j < RQ_QK_A4 / 2; j++) {
            RQ_ASSERT(s[j] >= -8 && s[j] <= 7 && s[j + 16] >= -8 && s[j + 16] <= 7);
            dst[c].qs[j] = (uint8_t)((s[j] + 8) | (s[j + 16] + 8) << 4);
        }
    }
}

void rq_act_q4_unpack(const rq_block_a4 *src, int64_t n, int8_t *q) {
    RQ_ASSERT(n >= 0 && n % RQ_QK_A4 == 0);
    for (int64_t c = 0; c < n / RQ_QK_A4; c++) {
        int8_t *d = q + c * RQ_QK_A4;
        for (int j = 0; j < RQ_QK_A4 / 2; j++) {
            d[j] = (int8_t)((src[c].qs[j] & 15) - 8);
            d[j + 16] = (int8_t)((src[c].qs[j] >> 4) - 8);
        }
    }
}

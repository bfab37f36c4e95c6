/* 4-bit KV cache rows: scalar reference quantizer and dequantizer (kv.h). */
#include "format/kv.h"

#include "base/status.h"
#include "format/format.h"

#include <math.h>
#include <string.h>

#define FP16_MIN_SUBNORMAL 5.9604644775390625e-8f /* 2^-24 */
#define FP16_MAX 65504.0f

void rq_kv4_params_ref(const float *x, int64_t group, float clip, float *scale, int *zero) {
    float mn = 0.0f, mx = 0.0f;
    for (int64_t i = 0; i < group; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    float lo = clip * mn, hi = clip * mx;
    if (!(hi - lo > 0.0f)) { /* all zero */
        *scale = 1.0f;
        *zero = 0;
        return;
    }
    float s = rq_fp16_to_fp32(rq_fp32_to_fp16((hi - lo) / (float)RQ_KV4_MAXQ));
    if (s < FP16_MIN_SUBNORMAL) s = FP16_MIN_SUBNORMAL;
    if (s > FP16_MAX) s = FP16_MAX;
    float z = rintf(-lo / s);
    *scale = s;
    *zero = (int)fminf(fmaxf(z, 0.0f), (float)RQ_KV4_MAXQ);
}

static inline int kv4_code(float x, float s, float zf) {
    float q = rintf(x / s) + zf;
    return (int)fminf(fmaxf(q, 0.0f), (float)RQ_KV4_MAXQ);
}

void rq_kv4_quant_row_ref(const float *x, int64_t n, int64_t group, float clip, uint8_t *dst) {
    RQ_ASSERT(group >= RQ_KV4_GROUP_ALIGN && group % RQ_KV4_GROUP_ALIGN == 0 && n % group == 0);
    int64_t gb = rq_kv4_group_bytes(group);
    for (int64_t g = 0; g < n / group; g++) {
        const float *xg = x + g * group;
        uint8_t *b = dst + g * gb;
        float s;
        int z;
        rq_kv4_params_ref(xg, group, clip, &s, &z);
        rq_kv4_hdr h = {.d = rq_fp32_to_fp16(s), .z = (uint8_t)z, .pad = 0};
        memcpy(b, &h, sizeof h);
        uint8_t *qs = b + sizeof h;
        for (int64_t j = 0; j < group / 2; j++)
            qs[j] = (uint8_t)(kv4_code(xg[2 * j], s, (float)z) | kv4_code(xg[2 * j + 1], s, (float)z) << 4);
    }
}

void rq_kv4_dequant_row_ref(const uint8_t *src, int64_t n, int64_t group, float *y) {
    RQ_ASSERT(group >= RQ_KV4_GROUP_ALIGN && group % RQ_KV4_GROUP_ALIGN == 0 && n % group == 0);
    int64_t gb = rq_kv4_group_bytes(group);
    for (int64_t g = 0; g < n / group; g++) {
        const uint8_t *b = src + g * gb;
        rq_kv4_hdr h;
        memcpy(&h, b, sizeof h);
        float s = rq_fp16_to_fp32(h.d), zf = (float)h.z;
        const uint8_t *qs = b + sizeof h;
        float *yg = y + g * group;
        for (int64_t j = 0; j < group / 2; j++) {
            yg[2 * j] = s * ((float)(qs[j] & 15) - zf);
            yg[2 * j + 1] = s * ((float)(qs[j] >> 4) - zf);
        }
    }
}

void rq_kv4_fake_row_ref(float *x, int64_t n, int64_t group, float clip) {
    RQ_ASSERT(group >= RQ_KV4_GROUP_ALIGN && group % RQ_KV4_GROUP_ALIGN == 0 && n % group == 0);
    for (int64_t g = 0; g < n / group; g++) {
        float *xg = x + g * group;
        float s;
        int z;
        rq_kv4_params_ref(xg, group, clip, &s, &z);
        for (int64_t i = 0; i < group; i++) xg[i] = s * ((float)kv4_code(xg[i], s, (float)z) - (float)z);
    }
}

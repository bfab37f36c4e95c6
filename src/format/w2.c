/* Packing, unpacking and scalar dequantization of the 2-bit weight layouts (w2.h). */
#include "format/w2.h"

#include "base/status.h"

int64_t rq_w2_group(int type) {
    switch (type) {
    case RQ_TYPE_W2U_G32: case RQ_TYPE_W2L_G32: return 32;
    case RQ_TYPE_W2U_G64: case RQ_TYPE_W2L_G64: return 64;
    case RQ_TYPE_W2U_G128: case RQ_TYPE_W2L_G128: return 128;
    default: return 0;
    }
}

bool rq_w2_is_lut(int type) {
    return type == RQ_TYPE_W2L_G32 || type == RQ_TYPE_W2L_G64 || type == RQ_TYPE_W2L_G128;
}

int rq_w2_type(bool lut, int64_t group) {
    switch (group) {
    case 32: return lut ? RQ_TYPE_W2L_G32 : RQ_TYPE_W2U_G32;
    case 64: return lut ? RQ_TYPE_W2L_G64 : RQ_TYPE_W2U_G64;
    case 128: return lut ? RQ_TYPE_W2L_G128 : RQ_TYPE_W2U_G128;
    default: return -1;
    }
}

/* Bytes of one block: the head (fp16 parameters) and g/4 code bytes. */
static int64_t block_bytes(int type, int64_t g) {
    return (rq_w2_is_lut(type) ? RQ_W2L_HEAD : RQ_W2U_HEAD) + g / 4;
}

void rq_w2_pack(int type, int64_t out, int64_t in, const uint8_t *codes, const float *params,
                void *dst) {
    const int64_t g = rq_w2_group(type);
    RQ_ASSERT(g > 0 && out >= 0 && in >= 0 && in % g == 0);
    const int np = rq_w2_n_param(type);
    const int64_t L = g / 4, bb = block_bytes(type, g), head = bb - L, ng = in / g;
    uint8_t *p = dst;
    for (int64_t r = 0; r < out; r++) {
        for (int64_t b = 0; b < ng; b++, p += bb) {
            const float *pr = params + (r * ng + b) * np;
            for (int k = 0; k < np; k++) {
                const rq_half h = rq_fp32_to_fp16(pr[k]);
                memcpy(p + 2 * k, &h, 2);
            }
            const uint8_t *c = codes + r * in + b * g;
            uint8_t *qs = p + head;
            for (int64_t j = 0; j < L; j++) {
                uint8_t byte = 0;
                for (int k = 0; k < 4; k++) {
                    RQ_ASSERT(c[k * L + j] <= 3);
                    byte |= (uint8_t)(c[k * L + j] << (2 * k));
                }
                qs[j] = byte;
            }
        }
    }
}

void rq_w2_unpack(int type, int64_t out, int64_t in, const void *src, uint8_t *codes,
                  float *params) {
    const int64_t g = rq_w2_group(type);
    RQ_ASSERT(g > 0 && out >= 0 && in >= 0 && in % g == 0);
    const int np = rq_w2_n_param(type);
    const int64_t L = g / 4, bb = block_bytes(type, g), head = bb - L, ng = in / g;
    const uint8_t *p = src;
    for (int64_t r = 0; r < out; r++) {
        for (int64_t b = 0; b < ng; b++, p += bb) {
            float *pr = params + (r * ng + b) * np;
            for (int k = 0; k < np; k++) {
                rq_half h;
                memcpy(&h, p + 2 * k, 2);
                pr[k] = rq_fp16_to_fp32(h);
            }
            uint8_t *c = codes + r * in + b * g;
            for (int64_t i = 0; i < g; i++) c[i] = (uint8_t)rq_w2_code(p + head, L, i);
        }
    }
}

void rq_dequant_w2(int type, const void *src, float *y, int64_t n) {
    const int64_t g = rq_w2_group(type);
    RQ_ASSERT(g > 0 && n >= 0 && n % g == 0);
    const int64_t L = g / 4, bb = block_bytes(type, g), head = bb - L;
    const bool lut = rq_w2_is_lut(type);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / g; b++, p += bb, y += g) {
        rq_half h[4];
        memcpy(h, p, (size_t)(head));
        float lv[4];
        if (lut) {
            for (int k = 0; k < 4; k++) lv[k] = rq_fp16_to_fp32(h[k]);
        } else {
            const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
            for (int k = 0; k < 4; k++) lv[k] = d * ((float)k - z);
        }
        const uint8_t *qs = p + head;
        for (int k = 0; k < 4; k++)
            for (int64_t j = 0; j < L; j++) y[k * L + j] = lv[(qs[j] >> (2 * k)) & 3];
    }
}

/* Packing, unpacking and scalar dequantization of the packed low-bit weight layouts (lowbit.h):
 * 2-bit W2U / W2L and 4-bit W4U. */
#include "format/lowbit.h"

#include "base/status.h"

/* Kind and group size of each family type, indexed by id - RQ_TYPE_OWN_FIRST; group 0
 * marks an own id that is not in the family. */
static const struct {
    rq_lowbit_kind kind;
    int64_t group;
} lowbit_ids[RQ_TYPE_OWN_END - RQ_TYPE_OWN_FIRST] = {
    [RQ_TYPE_W2U_G32 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2U, 32},
    [RQ_TYPE_W2U_G64 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2U, 64},
    [RQ_TYPE_W2U_G128 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2U, 128},
    [RQ_TYPE_W2L_G32 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2L, 32},
    [RQ_TYPE_W2L_G64 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2L, 64},
    [RQ_TYPE_W2L_G128 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W2L, 128},
    [RQ_TYPE_W4U_G32 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W4U, 32},
    [RQ_TYPE_W4U_G64 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W4U, 64},
    [RQ_TYPE_W4U_G128 - RQ_TYPE_OWN_FIRST] = {RQ_LOWBIT_KIND_W4U, 128},
};

static bool in_family(int type) {
    return type >= RQ_TYPE_OWN_FIRST && type < RQ_TYPE_OWN_END && lowbit_ids[type - RQ_TYPE_OWN_FIRST].group > 0;
}

int64_t rq_lowbit_group(int type) { return in_family(type) ? lowbit_ids[type - RQ_TYPE_OWN_FIRST].group : 0; }

int rq_lowbit_kind_of(int type) { return in_family(type) ? (int)lowbit_ids[type - RQ_TYPE_OWN_FIRST].kind : -1; }

int rq_lowbit_bits(int type) {
    const int k = rq_lowbit_kind_of(type);
    return k < 0 ? 0 : k == RQ_LOWBIT_KIND_W4U ? 4 : 2;
}

bool rq_lowbit_is_lut(int type) { return rq_lowbit_kind_of(type) == RQ_LOWBIT_KIND_W2L; }

int rq_lowbit_kind_type(rq_lowbit_kind kind, int64_t group) {
    static const int ids[RQ_LOWBIT_N_KINDS][3] = {
        {RQ_TYPE_W2U_G32, RQ_TYPE_W2U_G64, RQ_TYPE_W2U_G128},
        {RQ_TYPE_W2L_G32, RQ_TYPE_W2L_G64, RQ_TYPE_W2L_G128},
        {RQ_TYPE_W4U_G32, RQ_TYPE_W4U_G64, RQ_TYPE_W4U_G128},
    };
    if ((int)kind < 0 || (int)kind >= RQ_LOWBIT_N_KINDS) return -1;
    switch (group) {
    case 32: return ids[kind][0];
    case 64: return ids[kind][1];
    case 128: return ids[kind][2];
    default: return -1;
    }
}

int rq_lowbit_type(bool lut, int64_t group) {
    return rq_lowbit_kind_type(lut ? RQ_LOWBIT_KIND_W2L : RQ_LOWBIT_KIND_W2U, group);
}

/* Bytes of one block: the head (fp16 parameters) and g·bits/8 code bytes. */
static int64_t block_bytes(int type, int64_t g) { return rq_lowbit_head(type) + g * rq_lowbit_bits(type) / 8; }

/* Code of element i of a group (L code bytes) of a type with `bits`-bit codes. */
static int code_at(int bits, const uint8_t *qs, int64_t L, int64_t i) {
    return bits == 4 ? rq_w4_code(qs, L, i) : rq_w2_code(qs, L, i);
}

void rq_lowbit_pack(int type, int64_t out, int64_t in, const uint8_t *codes, const float *params,
                void *dst) {
    const int64_t g = rq_lowbit_group(type);
    RQ_ASSERT(g > 0 && out >= 0 && in >= 0 && in % g == 0);
    const int np = rq_lowbit_n_param(type), bits = rq_lowbit_bits(type), per = 8 / bits;
    const int64_t L = g / per, bb = block_bytes(type, g), head = bb - L, ng = in / g;
    const unsigned cmax = (1u << bits) - 1;
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
                for (int k = 0; k < per; k++) {
                    RQ_ASSERT(c[k * L + j] <= cmax);
                    byte |= (uint8_t)(c[k * L + j] << (bits * k));
                }
                qs[j] = byte;
            }
        }
    }
}

void rq_lowbit_unpack(int type, int64_t out, int64_t in, const void *src, uint8_t *codes,
                  float *params) {
    const int64_t g = rq_lowbit_group(type);
    RQ_ASSERT(g > 0 && out >= 0 && in >= 0 && in % g == 0);
    const int np = rq_lowbit_n_param(type), bits = rq_lowbit_bits(type);
    const int64_t L = g * bits / 8, bb = block_bytes(type, g), head = bb - L, ng = in / g;
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
            for (int64_t i = 0; i < g; i++) c[i] = (uint8_t)code_at(bits, p + head, L, i);
        }
    }
}

void rq_dequant_lowbit(int type, const void *src, float *y, int64_t n) {
    const int64_t g = rq_lowbit_group(type);
    RQ_ASSERT(g > 0 && n >= 0 && n % g == 0);
    const int bits = rq_lowbit_bits(type), per = 8 / bits, nlv = 1 << bits;
    const int64_t L = g / per, bb = block_bytes(type, g), head = bb - L;
    const bool lut = rq_lowbit_is_lut(type);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / g; b++, p += bb, y += g) {
        rq_half h[4];
        memcpy(h, p, (size_t)(head));
        float lv[RQ_W4_LEVELS];
        if (lut) {
            for (int k = 0; k < 4; k++) lv[k] = rq_fp16_to_fp32(h[k]);
        } else {
            const float d = rq_fp16_to_fp32(h[0]), z = rq_fp16_to_fp32(h[1]);
            for (int k = 0; k < nlv; k++) lv[k] = d * ((float)k - z);
        }
        const uint8_t *qs = p + head;
        for (int k = 0; k < per; k++)
            for (int64_t j = 0; j < L; j++) y[k * L + j] = lv[(qs[j] >> (bits * k)) & (nlv - 1)];
    }
}

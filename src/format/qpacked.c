#include "format/qpacked.h"

#include "base/status.h"
#include "format/format.h"

#include <string.h>

void rq_qpacked_pack_row(int bits, const uint8_t *codes, int64_t n, uint8_t *dst) {
    RQ_ASSERT(rq_qpacked_bits_ok(bits));
    memset(dst, 0, (size_t)rq_qpacked_row_bytes(bits, n));
    for (int64_t i = 0; i < n; i++) {
        RQ_ASSERT(codes[i] < (1u << bits));
        int64_t bit = i * bits;
        uint32_t v = (uint32_t)codes[i] << (bit & 7);
        dst[bit >> 3] |= (uint8_t)v;
        if ((bit & 7) + bits > 8) dst[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
    }
}

void rq_qpacked_unpack_row(int bits, const uint8_t *src, int64_t n, uint8_t *codes) {
    RQ_ASSERT(rq_qpacked_bits_ok(bits));
    int64_t nb = rq_qpacked_row_bytes(bits, n);
    uint32_t mask = (1u << bits) - 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t bit = i * bits, byte = bit >> 3;
        uint32_t v = src[byte];
        if (byte + 1 < nb) v |= (uint32_t)src[byte + 1] << 8;
        codes[i] = (uint8_t)((v >> (bit & 7)) & mask);
    }
}

void rq_qpacked_dequant(rq_qparam_kind kind, int bits, int64_t group, const uint8_t *packed,
                        const uint16_t *params, int64_t out, int64_t in, float *dst) {
    RQ_ASSERT(group > 0 && in % group == 0 && (kind != RQ_QPARAM_LUT || bits == 2));
    int np = rq_qparam_count(kind);
    int64_t rb = rq_qpacked_row_bytes(bits, in), ng = in / group;
    uint8_t *codes = rq_xalloc(in);
    for (int64_t r = 0; r < out; r++) {
        rq_qpacked_unpack_row(bits, packed + r * rb, in, codes);
        for (int64_t gi = 0; gi < ng; gi++) {
            const uint16_t *p = params + (r * ng + gi) * np;
            float *y = dst + r * in + gi * group;
            const uint8_t *c = codes + gi * group;
            if (kind == RQ_QPARAM_UNIFORM) {
                float s = rq_fp16_to_fp32(p[0]), z = rq_fp16_to_fp32(p[1]);
                for (int64_t i = 0; i < group; i++) y[i] = s * ((float)c[i] - z);
            } else {
                float v[4] = {rq_fp16_to_fp32(p[0]), rq_fp16_to_fp32(p[1]), rq_fp16_to_fp32(p[2]),
                              rq_fp16_to_fp32(p[3])};
                for (int64_t i = 0; i < group; i++) y[i] = v[c[i]];
            }
        }
    }
    rq_free(codes);
}

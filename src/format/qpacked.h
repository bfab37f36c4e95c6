/* rotquant's file layout for quantized linear layers (any bit width, uniform or LUT).
 *
 * A quantized linear W [out, in] named N (e.g. "blk.3.attn_q.weight") is stored in the
 * GGUF as two plain tensors, so any GGUF tool can read the file:
 *   N.codes   I8  ne = [row_bytes, out]        codes, bit-packed per row (below)
 *   N.params  F16 ne = [n_param, in/g, out]    per (row, group) quantizer parameters
 * and the file's rotquant.* metadata says how to read them (quant/qmodel.h).
 *
 * Codes: b bits per weight (b = 2, 3, 4 or 8), little-endian bit order: the code of
 * element i of a row occupies bits [i·b, i·b + b) of the row's byte string, bit 0 being
 * the least significant bit of byte 0. row_bytes = ceil(in·b / 8).
 *
 *     b = 2:  byte 0 = [x3 x2 x1 x0] (x0 in bits 1..0), byte 1 = [x7 x6 x5 x4], ...
 *     b = 3:  byte 0 = [x2(lo 2 bits) x1 x0], byte 1 = [x5(lo 1) x4 x3 x2(hi 1)], ...
 *
 * Parameters (fp16), per METHODS.md:
 *   uniform (n_param = 2): [scale s, zero point z]   ŵ = s·(code − z)
 *   lut     (n_param = 4): [v0, v1, v2, v3]          ŵ = v[code]
 * The fast kernels repack these into their own block layouts at load (format/lowbit.h). */
#ifndef RQ_FORMAT_QPACKED_H
#define RQ_FORMAT_QPACKED_H

#include <stdbool.h>
#include <stdint.h>

typedef enum rq_qparam_kind {
    RQ_QPARAM_UNIFORM = 0, /* n_param 2: scale, zero */
    RQ_QPARAM_LUT = 1,     /* n_param 4: levels */
} rq_qparam_kind;

static inline int rq_qparam_count(rq_qparam_kind k) { return k == RQ_QPARAM_LUT ? 4 : 2; }
static inline bool rq_qpacked_bits_ok(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }
static inline int64_t rq_qpacked_row_bytes(int bits, int64_t n) { return (n * bits + 7) / 8; }
/* The group a layer of input size `in` gets for a requested group: the largest group/2^k
 * that divides `in` (at least 16 unless it is the group itself); 0 if none. The quantizer
 * uses it, the loader checks files against it. */
static inline int64_t rq_qpacked_group_for(int64_t group, int64_t in) {
    int64_t g = group;
    while (g > 1 && in % g) g /= 2;
    return g >= 1 && in % g == 0 && (g == group || g >= 16) ? g : 0;
}

/* codes [n] (each < 2^bits) → dst [row_bytes] */
void rq_qpacked_pack_row(int bits, const uint8_t *codes, int64_t n, uint8_t *dst);
/* src [row_bytes] → codes [n] */
void rq_qpacked_unpack_row(int bits, const uint8_t *src, int64_t n, uint8_t *codes);
/* Dequantize a whole matrix: packed [out, row_bytes], params fp16 [out, in/group, n_param]
 * → dst [out, in]. LUT needs bits == 2. */
void rq_qpacked_dequant(rq_qparam_kind kind, int bits, int64_t group, const uint8_t *packed,
                        const uint16_t *params, int64_t out, int64_t in, float *dst);

#endif

/* rotquant's packed weight layouts for the fast kernels (kernels/gemv.h): 2-bit uniform
 * (W2U), 2-bit non-uniform / LUT (W2L) and 4-bit uniform (W4U), each with groups of 32,
 * 64 or 128 consecutive input columns of one output row: the packed low-bit family. The
 * rq_lowbit_* functions below accept all three (rq_lowbit_kind_of tells them apart). Type ids are in format.h
 * (RQ_TYPE_W2U_G32 .. RQ_TYPE_W4U_G128), traits in format.c, so a GGUF reader can size
 * and dequantize these tensors like any other block type. A row of `in` weights is in/g
 * consecutive blocks (one per group); a matrix [out, in] is out such rows.
 *
 * Codes of one group of g weights (g = 32, 64, 128), L = g/4 bytes qs[0..L-1]:
 * element i = k·L + j (k = 0..3, j = 0..L-1) has its 2-bit code in bits 2k..2k+1 of qs[j].
 *
 *          bit  7 6        5 4         3 2        1 0
 *   qs[j] = [ x[3L+j] | x[2L+j] | x[L+j] | x[j] ]          j = 0 .. L-1
 *
 * so (qs >> 2k) & 3 over the L bytes gives the codes of elements kL .. kL+L-1 in order:
 * one shift and one mask per L consecutive codes. For g = 64 (L = 16): byte j holds the
 * codes of elements j, j+16, j+32, j+48, and one 16-byte load plus shift/mask gives 16
 * consecutive codes (one 128-bit lane); broadcasting the 16 bytes to the four lanes of a
 * 512-bit register and shifting lane k by 2k gives all 64 codes in order.
 *
 * W2U (uniform, METHODS.md "Uniform quantizers", b = 2):
 *   ŵ_i = d · (code_i − z)
 *   d = scale (fp16), z = zero point stored as fp16. The quantizers produce an integer
 *   z in 0..3, which fp16 holds exactly, and then ŵ = d·(code − z) is exact in float: the
 *   dequantized value equals quant/uniform.h's rq_uniform_dequant bit for bit. (The
 *   alternative, storing the offset m = −d·z, needs up to 13 significant bits and would
 *   round in fp16.) Kernels read z as a float, so any finite z is accepted, and they
 *   compute the group's offset d·z once per group (one multiply per 32-128 weights).
 *     byte 0..1     d (fp16)
 *     byte 2..3     z (fp16)
 *     byte 4..4+L-1 qs[L] (codes as above)
 *
 * W2L (non-uniform, 4 levels per group, METHODS.md "Non-uniform 2-bit quantizer"):
 *   ŵ_i = v[code_i]; v[0..3] fp16 (the Lloyd-Max / LDP levels, normally increasing, but
 *   any values are accepted).
 *     byte 0..7     v[4] (fp16)
 *     byte 8..8+L-1 qs[L]
 *
 *   type           g    bytes/block  bits/weight
 *   W2U_G32       32       12          3.0
 *   W2U_G64       64       20          2.5
 *   W2U_G128     128       36          2.25
 *   W2L_G32       32       16          4.0
 *   W2L_G64       64       24          3.0
 *   W2L_G128     128       40          2.5
 *
 * W4U (uniform, b = 4): ŵ_i = d · (code_i − z), codes 0..15, d and z fp16 exactly as in
 * W2U (the quantizers' integer z in 0..15 is exact in fp16, so ŵ equals
 * rq_uniform_dequant and rq_qpacked_dequant bit for bit). Codes of a group of g weights,
 * L = g/2 bytes qs[0..L-1]: element j (j < L) in the low nibble of qs[j], element L + j in
 * the high nibble:
 *
 *          bit  7 6 5 4     3 2 1 0
 *   qs[j] = [ x[L+j]    |   x[j]   ]                         j = 0 .. L-1
 *
 * so qs & 15 over the L bytes gives the codes of elements 0 .. L-1 in order and qs >> 4
 * those of L .. 2L-1: one shift and one mask per L consecutive codes. For g = 64 (L = 32)
 * one 32-byte load broadcast to both halves of a 512-bit register, the upper half shifted
 * by 4, gives all 64 codes in order; a 16-entry table of d·(c − z) indexed by the codes
 * (vpermps uses the low 4 bits of a lane) dequantizes 16 of them at a time.
 *     byte 0..1     d (fp16)
 *     byte 2..3     z (fp16)
 *     byte 4..4+L-1 qs[L] (codes as above)
 *
 *   type           g    bytes/block  bits/weight
 *   W4U_G32       32       20          5.0
 *   W4U_G64       64       36          4.5
 *   W4U_G128     128       68          4.25
 *
 * All structs have alignment 2 and no padding (like format.h's), so a block may sit at
 * any even address; the SIMD kernels use unaligned loads. */
#ifndef RQ_FORMAT_LOWBIT_H
#define RQ_FORMAT_LOWBIT_H

#include "format/format.h"

#include <stdbool.h>
#include <stdint.h>

#define RQ_W2_LEVELS 4  /* codes 0..3 */
#define RQ_W4_LEVELS 16 /* codes 0..15 */

typedef struct rq_block_w2u_g32 {
    rq_half d;
    rq_half z;
    uint8_t qs[32 / 4];
} rq_block_w2u_g32;
static_assert(sizeof(rq_block_w2u_g32) == 4 + 8, "rq_block_w2u_g32 size");

typedef struct rq_block_w2u_g64 {
    rq_half d;
    rq_half z;
    uint8_t qs[64 / 4];
} rq_block_w2u_g64;
static_assert(sizeof(rq_block_w2u_g64) == 4 + 16, "rq_block_w2u_g64 size");

typedef struct rq_block_w2u_g128 {
    rq_half d;
    rq_half z;
    uint8_t qs[128 / 4];
} rq_block_w2u_g128;
static_assert(sizeof(rq_block_w2u_g128) == 4 + 32, "rq_block_w2u_g128 size");

typedef struct rq_block_w2l_g32 {
    rq_half v[RQ_W2_LEVELS];
    uint8_t qs[32 / 4];
} rq_block_w2l_g32;
static_assert(sizeof(rq_block_w2l_g32) == 8 + 8, "rq_block_w2l_g32 size");

typedef struct rq_block_w2l_g64 {
    rq_half v[RQ_W2_LEVELS];
    uint8_t qs[64 / 4];
} rq_block_w2l_g64;
static_assert(sizeof(rq_block_w2l_g64) == 8 + 16, "rq_block_w2l_g64 size");

typedef struct rq_block_w2l_g128 {
    rq_half v[RQ_W2_LEVELS];
    uint8_t qs[128 / 4];
} rq_block_w2l_g128;
static_assert(sizeof(rq_block_w2l_g128) == 8 + 32, "rq_block_w2l_g128 size");

typedef struct rq_block_w4u_g32 {
    rq_half d;
    rq_half z;
    uint8_t qs[32 / 2];
} rq_block_w4u_g32;
static_assert(sizeof(rq_block_w4u_g32) == 4 + 16, "rq_block_w4u_g32 size");

typedef struct rq_block_w4u_g64 {
    rq_half d;
    rq_half z;
    uint8_t qs[64 / 2];
} rq_block_w4u_g64;
static_assert(sizeof(rq_block_w4u_g64) == 4 + 32, "rq_block_w4u_g64 size");

typedef struct rq_block_w4u_g128 {
    rq_half d;
    rq_half z;
    uint8_t qs[128 / 2];
} rq_block_w4u_g128;
static_assert(sizeof(rq_block_w4u_g128) == 4 + 64, "rq_block_w4u_g128 size");

/* Byte offset of the codes inside a block: after d, z (W2U, W4U) or the 4 levels (W2L). */
#define RQ_W2U_HEAD 4
#define RQ_W2L_HEAD 8
#define RQ_W4U_HEAD 4

/* The three layouts of the family; the kernels' tables are indexed by it. */
typedef enum rq_lowbit_kind {
    RQ_LOWBIT_KIND_W2U = 0,
    RQ_LOWBIT_KIND_W2L = 1,
    RQ_LOWBIT_KIND_W4U = 2,
} rq_lowbit_kind;
#define RQ_LOWBIT_N_KINDS 3

/* Group size g of a W2U/W2L/W4U type, 0 if `type` is not one. */
int64_t rq_lowbit_group(int type);
/* The kind of a W2U/W2L/W4U type; -1 if `type` is not one. */
int rq_lowbit_kind_of(int type);
/* Bits per code: 2 (W2U, W2L), 4 (W4U), 0 for other types. */
int rq_lowbit_bits(int type);
/* True for the W2L (non-uniform) types; false for W2U, W4U and other types. */
bool rq_lowbit_is_lut(int type);
/* The 2-bit type id for a format (lut or uniform) and group size; -1 if g is not 32/64/128. */
int rq_lowbit_type(bool lut, int64_t group);
/* The type id of a kind and group size; -1 if g is not 32/64/128 or the kind is unknown. */
int rq_lowbit_kind_type(rq_lowbit_kind kind, int64_t group);
/* Parameters per group in the unpacked form: 2 for W2U/W4U (scale, zero), 4 for W2L. */
static inline int rq_lowbit_n_param(int type) { return rq_lowbit_is_lut(type) ? RQ_W2_LEVELS : 2; }
/* Byte offset of the codes inside a block of `type` (a family type, asserted by callers). */
static inline int rq_lowbit_head(int type) { return rq_lowbit_is_lut(type) ? RQ_W2L_HEAD : RQ_W2U_HEAD; }

/* Packs a quantized matrix [out, in] into `type` blocks; in % g == 0 (asserted).
 *   codes  [out, in]              codes in 0..2^bits − 1 (asserted), as src/quant writes them
 *   params [out, in/g, n_param]   per group: W2U (scale, zero point), W2L (v0..v3), i.e.
 *                                 the layout of rq_quant_rtn / rq_gptq_quantize params;
 *                                 each is rounded to fp16 (the quantizers already make
 *                                 them fp16-representable, so nothing changes)
 *   dst    out · rq_type_row_bytes(type, in) bytes, caller-owned (any even address) */
void rq_lowbit_pack(int type, int64_t out, int64_t in, const uint8_t *codes, const float *params,
                void *dst);
/* The inverse: codes [out, in] and params [out, in/g, n_param] (fp16 values as floats),
 * both caller-owned. */
void rq_lowbit_unpack(int type, int64_t out, int64_t in, const void *src, uint8_t *codes,
                  float *params);

/* Scalar reference dequantization of n elements (n % g == 0, asserted): y [n].
 * W2U, W4U: y = d·((float)code − z); W2L: y = v[code]. */
void rq_dequant_lowbit(int type, const void *src, float *y, int64_t n);

/* Code of element i of a W2U/W2L group from its qs bytes (the layout above; L = g/4). */
static inline int rq_w2_code(const uint8_t *qs, int64_t L, int64_t i) {
    return (qs[i % L] >> (2 * (i / L))) & 3;
}
/* Code of element i of a W4U group from its qs bytes (L = g/2). */
static inline int rq_w4_code(const uint8_t *qs, int64_t L, int64_t i) {
    return (qs[i % L] >> (4 * (i / L))) & 15;
}

#endif

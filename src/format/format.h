/* Weight block layouts, the type traits table, fp16/bf16 conversion, and scalar
 * (reference) dequantization and quantization.
 *
 * Every layout we read from a GGUF file is a C struct below with a static_assert on
 * its size; a table maps each type id to its traits (rq_type_traits_get). The type ids
 * below 1024 are GGUF's own ggml_type ids (checked against the gguf Python package's
 * GGMLQuantizationType); rotquant's own layouts will take ids from RQ_TYPE_OWN_FIRST
 * upward so that they can never collide with a future ggml id. Enums only grow at the
 * end.
 *
 * Conventions of all block layouts:
 *   - multi-byte fields are little-endian (the library builds for little-endian hosts
 *     only; see the #error below), fp16 fields are IEEE binary16 bit patterns;
 *   - a tensor row of n elements is n / block_size consecutive blocks, so a row of
 *     type T occupies (n / block_size) * type_size bytes (rq_type_row_bytes);
 *   - the layouts rotquant dequantizes have alignment 2 and no padding, so such a
 *     block may sit at any even address (GGUF tensor data is 32-byte aligned and their
 *     sizes are even). The layouts known by size only (see "Layouts known by size
 *     only" below) include odd sizes (MXFP4: 17 bytes) and a 4-byte field (Q8_K).
 *
 * Notation in the diagrams: "d" is a scale, "m"/"dmin" a min (offset), "q" a quant,
 * "x[i]" the i-th element of the block, "lo(b)" / "hi(b)" the low / high nibble of a
 * byte b, "bit(b, k)" bit k of b. */
#ifndef RQ_FORMAT_FORMAT_H
#define RQ_FORMAT_FORMAT_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rotquant's block layouts are read in place and assume a little-endian host"
#endif

/* ---------------------------------------------------------------------------------
 * Type ids
 * ------------------------------------------------------------------------------- */

typedef enum rq_type {
    RQ_TYPE_F32 = 0,
    RQ_TYPE_F16 = 1,
    RQ_TYPE_Q4_0 = 2,
    RQ_TYPE_Q4_1 = 3,
    /* 4, 5: Q4_2, Q4_3, removed from ggml long ago */
    RQ_TYPE_Q5_0 = 6,
    RQ_TYPE_Q5_1 = 7,
    RQ_TYPE_Q8_0 = 8,
    RQ_TYPE_Q8_1 = 9,   /* ggml dot-product intermediate, never stored; no traits: ggml
                         * (fp16 d, s: 36 bytes) and gguf-py (40 bytes) disagree on its size */
    RQ_TYPE_Q2_K = 10,
    RQ_TYPE_Q3_K = 11,
    RQ_TYPE_Q4_K = 12,
    RQ_TYPE_Q5_K = 13,
    RQ_TYPE_Q6_K = 14,
    RQ_TYPE_Q8_K = 15,  /* ggml dot-product intermediate; known by size only */
    RQ_TYPE_IQ2_XXS = 16,
    RQ_TYPE_IQ2_XS = 17,
    RQ_TYPE_IQ3_XXS = 18,
    RQ_TYPE_IQ1_S = 19,
    RQ_TYPE_IQ4_NL = 20,
    RQ_TYPE_IQ3_S = 21,
    RQ_TYPE_IQ2_S = 22,
    RQ_TYPE_IQ4_XS = 23,
    RQ_TYPE_I8 = 24,
    RQ_TYPE_I16 = 25,
    RQ_TYPE_I32 = 26,
    RQ_TYPE_I64 = 27,
    RQ_TYPE_F64 = 28,
    RQ_TYPE_IQ1_M = 29,
    RQ_TYPE_BF16 = 30,
    /* 31..33: Q4_0_4_4, Q4_0_4_8, Q4_0_8_8, removed from ggml */
    RQ_TYPE_TQ1_0 = 34,
    RQ_TYPE_TQ2_0 = 35,
    /* 36..38: IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8, removed from ggml */
    RQ_TYPE_MXFP4 = 39,
    RQ_TYPE_NVFP4 = 40,
    RQ_TYPE_Q1_0 = 41,
    /* ids 42..1023 are left to ggml. rotquant's own layouts start here. */
    RQ_TYPE_OWN_FIRST = 1024,
    /* 2-bit weights, layouts in format/lowbit.h: uniform (scale + zero point per group) and
     * non-uniform (4 fp16 levels per group), groups of 32, 64 or 128 input columns */
    RQ_TYPE_W2U_G32 = RQ_TYPE_OWN_FIRST,
    RQ_TYPE_W2U_G64 = 1025,
    RQ_TYPE_W2U_G128 = 1026,
    RQ_TYPE_W2L_G32 = 1027,
    RQ_TYPE_W2L_G64 = 1028,
    RQ_TYPE_W2L_G128 = 1029,
    /* 4-bit uniform weights (scale + zero point per group), layout in format/lowbit.h */
    RQ_TYPE_W4U_G32 = 1030,
    RQ_TYPE_W4U_G64 = 1031,
    RQ_TYPE_W4U_G128 = 1032,
    RQ_TYPE_OWN_END /* one past the last own id; new ids go just above */
} rq_type;

/* Block sizes (elements per block) */
#define RQ_QK4_0 32
#define RQ_QK4_1 32
#define RQ_QK5_0 32
#define RQ_QK5_1 32
#define RQ_QK8_0 32
#define RQ_QK_K 256          /* super-block of the k-quants */
#define RQ_K_SCALE_SIZE 12   /* packed 6-bit scales and mins of Q4_K / Q5_K */

typedef uint16_t rq_half;    /* IEEE binary16 bit pattern */
typedef uint16_t rq_bf16;    /* bfloat16 bit pattern (top half of a binary32) */

/* ---------------------------------------------------------------------------------
 * Block layouts
 * ------------------------------------------------------------------------------- */

/* Q4_0: 32 elements, 18 bytes (4.5 bits/weight). x[i] = d * (q[i] - 8), q in 0..15.
 *   byte 0..1   d (fp16)
 *   byte 2..17  qs[16]: qs[j] = q[j] | q[j + 16] << 4
 *               x[j] from lo(qs[j]), x[j + 16] from hi(qs[j]), j = 0..15 */
typedef struct rq_block_q4_0 {
    rq_half d;
    uint8_t qs[RQ_QK4_0 / 2];
} rq_block_q4_0;
static_assert(sizeof(rq_block_q4_0) == 2 + RQ_QK4_0 / 2, "rq_block_q4_0 size");

/* Q4_1: 32 elements, 20 bytes (5 bits/weight). x[i] = d * q[i] + m, q in 0..15.
 *   byte 0..1   d (fp16)
 *   byte 2..3   m (fp16)
 *   byte 4..19  qs[16], nibbles as in Q4_0 */
typedef struct rq_block_q4_1 {
    rq_half d;
    rq_half m;
    uint8_t qs[RQ_QK4_1 / 2];
} rq_block_q4_1;
static_assert(sizeof(rq_block_q4_1) == 4 + RQ_QK4_1 / 2, "rq_block_q4_1 size");

/* Q5_0: 32 elements, 22 bytes (5.5 bits/weight). x[i] = d * (q[i] - 16), q in 0..31.
 *   byte 0..1   d (fp16)
 *   byte 2..5   qh: uint32 (little-endian); bit i is bit 4 of q[i], i = 0..31
 *   byte 6..21  qs[16]: low 4 bits, x[j] in lo(qs[j]), x[j + 16] in hi(qs[j]) */
typedef struct rq_block_q5_0 {
    rq_half d;
    uint8_t qh[4];
    uint8_t qs[RQ_QK5_0 / 2];
} rq_block_q5_0;
static_assert(sizeof(rq_block_q5_0) == 2 + 4 + RQ_QK5_0 / 2, "rq_block_q5_0 size");

/* Q5_1: 32 elements, 24 bytes (6 bits/weight). x[i] = d * q[i] + m, q in 0..31.
 *   byte 0..1   d (fp16)
 *   byte 2..3   m (fp16)
 *   byte 4..7   qh: uint32, bit i is bit 4 of q[i]
 *   byte 8..23  qs[16], low 4 bits as in Q5_0 */
typedef struct rq_block_q5_1 {
    rq_half d;
    rq_half m;
    uint8_t qh[4];
    uint8_t qs[RQ_QK5_1 / 2];
} rq_block_q5_1;
static_assert(sizeof(rq_block_q5_1) == 4 + 4 + RQ_QK5_1 / 2, "rq_block_q5_1 size");

/* Q8_0: 32 elements, 34 bytes (8.5 bits/weight). x[i] = d * qs[i], qs signed.
 *   byte 0..1   d (fp16)
 *   byte 2..33  qs[32] (int8) */
typedef struct rq_block_q8_0 {
    rq_half d;
    int8_t qs[RQ_QK8_0];
} rq_block_q8_0;
static_assert(sizeof(rq_block_q8_0) == 2 + RQ_QK8_0, "rq_block_q8_0 size");

/* Q2_K: super-block of 256 = 16 sub-blocks of 16; 84 bytes (2.625 bits/weight).
 *   x = d * lo(scales[s]) * q - dmin * hi(scales[s]), q in 0..3, s = sub-block (i / 16)
 *   byte  0..15  scales[16]: lo = 4-bit scale, hi = 4-bit min of sub-block s
 *   byte 16..79  qs[64]: 2-bit quants. For half h = 0, 1 (128 elements each) and
 *                shift k = 0..3: x[128h + 32k + l] = (qs[32h + l] >> 2k) & 3, l = 0..31
 *   byte 80..81  d (fp16), super-block scale of the scales
 *   byte 82..83  dmin (fp16), super-block scale of the mins */
typedef struct rq_block_q2_K {
    uint8_t scales[RQ_QK_K / 16];
    uint8_t qs[RQ_QK_K / 4];
    rq_half d;
    rq_half dmin;
} rq_block_q2_K;
static_assert(sizeof(rq_block_q2_K) == RQ_QK_K / 16 + RQ_QK_K / 4 + 4, "rq_block_q2_K size");

/* Q3_K: super-block of 256 = 16 sub-blocks of 16; 110 bytes (3.4375 bits/weight).
 *   x = d * (sc[s] - 32) * (q - 4 * !hbit), q = 2 low bits in 0..3, s = i / 16
 *   byte   0..31   hmask[32]: hbit of x[32k + l] is bit(hmask[l], k), k = 0..7
 *   byte  32..95   qs[64]: 2 low bits, placed as in Q2_K
 *   byte  96..107  scales[12]: sixteen 6-bit scales sc[0..15]:
 *                  low 4 bits of sc[s] = lo(scales[s]) for s < 8, hi(scales[s - 8]) else
 *                  high 2 bits of sc[s] = (scales[8 + s % 4] >> 2 * (s / 4)) & 3
 *   byte 108..109  d (fp16) */
typedef struct rq_block_q3_K {
    uint8_t hmask[RQ_QK_K / 8];
    uint8_t qs[RQ_QK_K / 4];
    uint8_t scales[12];
    rq_half d;
} rq_block_q3_K;
static_assert(sizeof(rq_block_q3_K) == RQ_QK_K / 8 + RQ_QK_K / 4 + 12 + 2, "rq_block_q3_K size");

/* Q4_K: super-block of 256 = 8 sub-blocks of 32; 144 bytes (4.5 bits/weight).
 *   x = d * sc[s] * q - dmin * mn[s], q in 0..15, s = i / 32
 *   byte  0..1    d (fp16)
 *   byte  2..3    dmin (fp16)
 *   byte  4..15   scales[12]: eight 6-bit scales sc[] and eight 6-bit mins mn[]
 *                 (rq_k4_scale_min): for s < 4  sc = scales[s] & 63,
 *                 mn = scales[s + 4] & 63; for s >= 4 sc = lo(scales[s + 4]) |
 *                 (scales[s - 4] >> 6) << 4, mn = hi(scales[s + 4]) | (scales[s] >> 6) << 4
 *   byte 16..143  qs[128]: for chunk c = 0..3 (64 elements):
 *                 x[64c + l] in lo(qs[32c + l]), x[64c + 32 + l] in hi(qs[32c + l]) */
typedef struct rq_block_q4_K {
    rq_half d;
    rq_half dmin;
    uint8_t scales[RQ_K_SCALE_SIZE];
    uint8_t qs[RQ_QK_K / 2];
} rq_block_q4_K;
static_assert(sizeof(rq_block_q4_K) == 4 + RQ_K_SCALE_SIZE + RQ_QK_K / 2, "rq_block_q4_K size");

/* Q5_K: super-block of 256 = 8 sub-blocks of 32; 176 bytes (5.5 bits/weight).
 *   x = d * sc[s] * q - dmin * mn[s], q in 0..31, s = i / 32
 *   byte  0..1    d (fp16)
 *   byte  2..3    dmin (fp16)
 *   byte  4..15   scales[12], as in Q4_K
 *   byte 16..47   qh[32]: bit 4 of q for x[32s + l] is bit(qh[l], s)
 *   byte 48..175  qs[128]: low 4 bits, placed as in Q4_K */
typedef struct rq_block_q5_K {
    rq_half d;
    rq_half dmin;
    uint8_t scales[RQ_K_SCALE_SIZE];
    uint8_t qh[RQ_QK_K / 8];
    uint8_t qs[RQ_QK_K / 2];
} rq_block_q5_K;
static_assert(sizeof(rq_block_q5_K) == 4 + RQ_K_SCALE_SIZE + RQ_QK_K / 8 + RQ_QK_K / 2, "rq_block_q5_K size");

/* Q6_K: super-block of 256 = 16 sub-blocks of 16; 210 bytes (6.5625 bits/weight).
 *   x = d * scales[s] * (q - 32), q in 0..63, s = i / 16
 *   byte   0..127  ql[128]: low 4 bits. For half h = 0, 1 and l = 0..31:
 *                  x[128h + l]      in lo(ql[64h + l])
 *                  x[128h + 32 + l] in lo(ql[64h + 32 + l])
 *                  x[128h + 64 + l] in hi(ql[64h + l])
 *                  x[128h + 96 + l] in hi(ql[64h + 32 + l])
 *   byte 128..191  qh[64]: high 2 bits; for x[128h + 32k + l] they are
 *                  (qh[32h + l] >> 2k) & 3, k = 0..3
 *   byte 192..207  scales[16] (int8)
 *   byte 208..209  d (fp16) */
typedef struct rq_block_q6_K {
    uint8_t ql[RQ_QK_K / 2];
    uint8_t qh[RQ_QK_K / 4];
    int8_t scales[RQ_QK_K / 16];
    rq_half d;
} rq_block_q6_K;
static_assert(sizeof(rq_block_q6_K) == RQ_QK_K / 2 + RQ_QK_K / 4 + RQ_QK_K / 16 + 2, "rq_block_q6_K size");

/* ---------------------------------------------------------------------------------
 * Layouts known by size only
 *
 * ggml's other block types, as published in ggml/src/ggml-common.h (llama.cpp master at
 * 01243c58; the sizes agree with gguf-py 0.19's GGML_QUANT_SIZES). rotquant has no
 * dequantizer for them: a file holding them can be opened and listed (names, shapes,
 * bytes, bits per weight), but asking for their values fails with an error naming the
 * type. The fields are given so that the sizes are checked against a layout rather
 * than typed in as bare numbers; their meaning is ggml's.
 * ------------------------------------------------------------------------------- */

#define RQ_QK4_NL 32
#define RQ_QK_MXFP4 32
#define RQ_QK_NVFP4 64
#define RQ_QK1_0 128

/* Q8_K (ggml's k-quant dot-product intermediate): 256 elements, 292 bytes */
typedef struct rq_block_q8_K {
    float d;
    int8_t qs[RQ_QK_K];
    int16_t bsums[RQ_QK_K / 16];
} rq_block_q8_K;
static_assert(sizeof(rq_block_q8_K) == 4 + RQ_QK_K + RQ_QK_K / 16 * 2, "rq_block_q8_K size");

/* IQ2_XXS: 256 elements, 66 bytes (2.0625 bits/weight) */
typedef struct rq_block_iq2_xxs {
    rq_half d;
    uint16_t qs[RQ_QK_K / 8];
} rq_block_iq2_xxs;
static_assert(sizeof(rq_block_iq2_xxs) == 2 + RQ_QK_K / 8 * 2, "rq_block_iq2_xxs size");

/* IQ2_XS: 256 elements, 74 bytes (2.3125 bits/weight) */
typedef struct rq_block_iq2_xs {
    rq_half d;
    uint16_t qs[RQ_QK_K / 8];
    uint8_t scales[RQ_QK_K / 32];
} rq_block_iq2_xs;
static_assert(sizeof(rq_block_iq2_xs) == 2 + RQ_QK_K / 8 * 2 + RQ_QK_K / 32, "rq_block_iq2_xs size");

/* IQ2_S: 256 elements, 82 bytes (2.5625 bits/weight) */
typedef struct rq_block_iq2_s {
    rq_half d;
    uint8_t qs[RQ_QK_K / 4];
    uint8_t qh[RQ_QK_K / 32];
    uint8_t scales[RQ_QK_K / 32];
} rq_block_iq2_s;
static_assert(sizeof(rq_block_iq2_s) == 2 + RQ_QK_K / 4 + RQ_QK_K / 16, "rq_block_iq2_s size");

/* IQ3_XXS: 256 elements, 98 bytes (3.0625 bits/weight) */
typedef struct rq_block_iq3_xxs {
    rq_half d;
    uint8_t qs[3 * RQ_QK_K / 8];
} rq_block_iq3_xxs;
static_assert(sizeof(rq_block_iq3_xxs) == 2 + 3 * RQ_QK_K / 8, "rq_block_iq3_xxs size");

/* IQ3_S: 256 elements, 110 bytes (3.4375 bits/weight) */
typedef struct rq_block_iq3_s {
    rq_half d;
    uint8_t qs[RQ_QK_K / 4];
    uint8_t qh[RQ_QK_K / 32];
    uint8_t signs[RQ_QK_K / 8];
    uint8_t scales[RQ_QK_K / 64];
} rq_block_iq3_s;
static_assert(sizeof(rq_block_iq3_s) == 2 + 13 * RQ_QK_K / 32 + RQ_QK_K / 64, "rq_block_iq3_s size");

/* IQ1_S: 256 elements, 50 bytes (1.5625 bits/weight) */
typedef struct rq_block_iq1_s {
    rq_half d;
    uint8_t qs[RQ_QK_K / 8];
    uint16_t qh[RQ_QK_K / 32];
} rq_block_iq1_s;
static_assert(sizeof(rq_block_iq1_s) == 2 + RQ_QK_K / 8 + RQ_QK_K / 16, "rq_block_iq1_s size");

/* IQ1_M: 256 elements, 56 bytes (1.75 bits/weight; the fp16 scale is spread over the
 * high nibbles of scales[]) */
typedef struct rq_block_iq1_m {
    uint8_t qs[RQ_QK_K / 8];
    uint8_t qh[RQ_QK_K / 16];
    uint8_t scales[RQ_QK_K / 32];
} rq_block_iq1_m;
static_assert(sizeof(rq_block_iq1_m) == RQ_QK_K / 8 + RQ_QK_K / 16 + RQ_QK_K / 32, "rq_block_iq1_m size");

/* IQ4_NL: 32 elements, 18 bytes (4.5 bits/weight; non-uniform 16-entry grid), dequantized
 * (rq_dequant_iq4_nl): x[i] = d * rq_iq4nl_values[q[i]], q in 0..15.
 *   byte 0..1   d (fp16)
 *   byte 2..17  qs[16], nibbles as in Q4_0: x[j] in lo(qs[j]), x[j + 16] in hi(qs[j]) */
typedef struct rq_block_iq4_nl {
    rq_half d;
    uint8_t qs[RQ_QK4_NL / 2];
} rq_block_iq4_nl;
static_assert(sizeof(rq_block_iq4_nl) == 2 + RQ_QK4_NL / 2, "rq_block_iq4_nl size");

/* IQ4_XS: 256 elements, 136 bytes (4.25 bits/weight) */
typedef struct rq_block_iq4_xs {
    rq_half d;
    uint16_t scales_h;
    uint8_t scales_l[RQ_QK_K / 64];
    uint8_t qs[RQ_QK_K / 2];
} rq_block_iq4_xs;
static_assert(sizeof(rq_block_iq4_xs) == 4 + RQ_QK_K / 64 + RQ_QK_K / 2, "rq_block_iq4_xs size");

/* TQ1_0 (ternary): 256 elements, 54 bytes (1.6875 bits/weight) */
typedef struct rq_block_tq1_0 {
    uint8_t qs[(RQ_QK_K - 4 * RQ_QK_K / 64) / 5]; /* 5 trits a byte */
    uint8_t qh[RQ_QK_K / 64];                    /* 4 trits a byte */
    rq_half d;
} rq_block_tq1_0;
static_assert(sizeof(rq_block_tq1_0) == 48 + 4 + 2, "rq_block_tq1_0 size");

/* TQ2_0 (ternary): 256 elements, 66 bytes (2.0625 bits/weight) */
typedef struct rq_block_tq2_0 {
    uint8_t qs[RQ_QK_K / 4];
    rq_half d;
} rq_block_tq2_0;
static_assert(sizeof(rq_block_tq2_0) == RQ_QK_K / 4 + 2, "rq_block_tq2_0 size");

/* MXFP4: 32 elements, 17 bytes (4.25 bits/weight): an E8M0 exponent, 4-bit E2M1 values */
typedef struct rq_block_mxfp4 {
    uint8_t e;
    uint8_t qs[RQ_QK_MXFP4 / 2];
} rq_block_mxfp4;
static_assert(sizeof(rq_block_mxfp4) == 1 + RQ_QK_MXFP4 / 2, "rq_block_mxfp4 size");

/* NVFP4: 64 elements, 36 bytes (4.5 bits/weight): four UE4M3 scales (one per 16),
 * 4-bit E2M1 values */
typedef struct rq_block_nvfp4 {
    uint8_t d[RQ_QK_NVFP4 / 16];
    uint8_t qs[RQ_QK_NVFP4 / 2];
} rq_block_nvfp4;
static_assert(sizeof(rq_block_nvfp4) == RQ_QK_NVFP4 / 16 + RQ_QK_NVFP4 / 2, "rq_block_nvfp4 size");

/* Q1_0: 128 elements, 18 bytes (1.125 bits/weight): a scale and one sign bit per
 * element. (Forks before ggml adopted id 41 used 32-element blocks; ggml's is 128.) */
typedef struct rq_block_q1_0 {
    rq_half d;
    uint8_t qs[RQ_QK1_0 / 8];
} rq_block_q1_0;
static_assert(sizeof(rq_block_q1_0) == 2 + RQ_QK1_0 / 8, "rq_block_q1_0 size");

/* ---------------------------------------------------------------------------------
 * Traits
 * ------------------------------------------------------------------------------- */

/* Converts n elements (n a multiple of block_size, asserted) of this type at src to
 * floats at dst. src needs the alignment of the type's block (2 bytes for the block
 * types, the element size for plain types). dst: [n] */
typedef void (*rq_to_float_fn)(const void *src, float *dst, int64_t n);

typedef struct rq_type_traits {
    const char *name;      /* "Q4_K", as in GGUF / gguf-py */
    int64_t block_size;    /* elements per block (1 for plain types) */
    int64_t type_size;     /* bytes per block */
    bool quantized;        /* true for block-quantized types */
    rq_to_float_fn to_float; /* for the integer types: the numeric value as a float.
                              * NULL for a type known by size only (no dequantizer here):
                              * its tensors can be listed and sized but not read as values */
} rq_type_traits;

/* Traits of a known type: every id ggml defines (its layout published) but Q8_1, and
 * rotquant's own; NULL for Q8_1 and for an id that names nothing (any int accepted, so that ids read from a file
 * can be passed straight in). Check to_float before asking for values. Points into a
 * static table. */
const rq_type_traits *rq_type_traits_get(int type);

/* Name of a known type ("IQ2_XXS"), or of Q8_1; "unknown" for ids that name nothing.
 * Never NULL; static storage. */
const char *rq_type_name(int type);

/* True if rotquant can dequantize the type (known, with a to_float). */
bool rq_type_can_dequantize(int type);

/* Bytes taken by a row of n elements of `type` into *out. False (and *out untouched)
 * if the type is unknown, n < 0, n is not a multiple of the block size, or the size
 * overflows int64_t. Works for the types known by size only, too. */
bool rq_type_row_bytes(int type, int64_t n, int64_t *out);

/* ---------------------------------------------------------------------------------
 * fp16 / bf16
 * ------------------------------------------------------------------------------- */

static inline float rq_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t rq_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
/* c ? a : b as bit operations: no branch for the compiler to keep, so loops vectorize */
static inline uint32_t rq_select_u32(bool c, uint32_t a, uint32_t b) {
    const uint32_t m = 0u - (uint32_t)c;
    return (a & m) | (b & ~m);
}

/* Exact (every binary16 value is a binary32 value); NaN payloads are kept, so a quiet
 * NaN round-trips through rq_fp32_to_fp16. Branch-free, so loops over it vectorize.
 * Assumes no denormals-are-zero mode (never set by this library; -ffast-math sets it). */
static inline float rq_fp16_to_fp32(rq_half h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t em = h & 0x7fff;                 /* exponent and mantissa */
    /* finite: shift into place and rescale by 2^(127 - 15); the product is exact and
     * normalises subnormal halves too */
    const float finite = rq_bits_to_f32(em << 13) * 0x1p112f;
    const uint32_t infnan = (em << 13) | 0x7f800000u;
    return rq_bits_to_f32(sign | rq_select_u32(em >= 0x7c00, infnan, rq_f32_to_bits(finite)));
}

/* Round to nearest, ties to even. Overflow gives +-inf, underflow gives subnormals or
 * +-0, NaN gives a quiet NaN keeping the sign and the top 9 payload bits. Assumes the
 * default floating-point environment (round to nearest, no flush-to-zero). */
static inline rq_half rq_fp32_to_fp16(float f) {
    const uint32_t u = rq_f32_to_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000;
    const uint32_t a = u & 0x7fffffff;
    /* NaN: quiet bit set, top of the payload kept */
    const uint32_t nan = 0x7e00 | ((a >> 13) & 0x3ff);
    /* |f| >= 65520 (halfway between 65504, the largest half, and 2^16) rounds to inf */
    const uint32_t inf = 0x7c00;
    /* |f| < 2^-14 (half subnormal range): adding 0.5f, whose ulp is 2^-24 like the
     * half subnormals', rounds |f| to a multiple of 2^-24 in hardware (ties to even);
     * the mantissa bits then count those units (0x400 means the smallest normal). */
    const uint32_t sub = rq_f32_to_bits(rq_bits_to_f32(a) + 0.5f) - 0x3f000000u;
    /* normal: rebias the exponent and round the 13 dropped bits, ties to even; a carry
     * out of the mantissa correctly bumps the exponent */
    const uint32_t odd = (a >> 13) & 1;
    const uint32_t norm = (a + ((uint32_t)(15 - 127) << 23) + 0xfff + odd) >> 13;
    uint32_t mag = rq_select_u32(a < 0x38800000u, sub, norm);
    mag = rq_select_u32(a >= 0x477ff000u, inf, mag);
    mag = rq_select_u32(a > 0x7f800000u, nan, mag);
    return (rq_half)(sign | mag);
}

static inline float rq_bf16_to_fp32(rq_bf16 h) { return rq_bits_to_f32((uint32_t)h << 16); }

/* Round to nearest, ties to even; overflow rounds to +-inf as in binary32 arithmetic;
 * NaN gives a quiet NaN keeping the sign and the top payload bits. */
static inline rq_bf16 rq_fp32_to_bf16(float f) {
    const uint32_t u = rq_f32_to_bits(f);
    const uint32_t is_nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
    return (rq_bf16)rq_select_u32(is_nan, (u >> 16) | 0x0040u, rounded);
}

/* Array versions: dst[i] = conversion of src[i], i < n. */
void rq_fp16_to_fp32_array(const rq_half *src, float *dst, int64_t n);
void rq_fp32_to_fp16_array(const float *src, rq_half *dst, int64_t n);
void rq_bf16_to_fp32_array(const rq_bf16 *src, float *dst, int64_t n);
void rq_fp32_to_bf16_array(const float *src, rq_bf16 *dst, int64_t n);

/* ---------------------------------------------------------------------------------
 * Scalar reference dequantization: x (n / block_size blocks) -> y [n]
 * n must be a multiple of the block size (asserted). Each element is computed with the
 * same float operations in the same order as ggml's reference code; tests/test_format.c
 * checks them bit for bit against the gguf Python package.
 * ------------------------------------------------------------------------------- */

void rq_dequant_q4_0(const rq_block_q4_0 *x, float *y, int64_t n);
void rq_dequant_q4_1(const rq_block_q4_1 *x, float *y, int64_t n);
void rq_dequant_q5_0(const rq_block_q5_0 *x, float *y, int64_t n);
void rq_dequant_q5_1(const rq_block_q5_1 *x, float *y, int64_t n);
void rq_dequant_q8_0(const rq_block_q8_0 *x, float *y, int64_t n);
void rq_dequant_q2_K(const rq_block_q2_K *x, float *y, int64_t n);
void rq_dequant_q3_K(const rq_block_q3_K *x, float *y, int64_t n);
void rq_dequant_q4_K(const rq_block_q4_K *x, float *y, int64_t n);
void rq_dequant_q5_K(const rq_block_q5_K *x, float *y, int64_t n);
void rq_dequant_q6_K(const rq_block_q6_K *x, float *y, int64_t n);
void rq_dequant_iq4_nl(const rq_block_iq4_nl *x, float *y, int64_t n);

/* IQ4_NL's 16 levels (ggml's kvalues_iq4nl), in increasing order. */
extern const int8_t rq_iq4nl_values[16];

/* Scale and min of sub-block s (0..7) from the packed 12 bytes of Q4_K / Q5_K. */
static inline void rq_k4_scale_min(const uint8_t *scales, int s, uint8_t *sc, uint8_t *mn) {
    if (s < 4) {
        *sc = scales[s] & 63;
        *mn = scales[s + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[s + 4] & 0xf) | ((scales[s - 4] >> 6) << 4));
        *mn = (uint8_t)((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
    }
}

/* ---------------------------------------------------------------------------------
 * Scalar reference quantization (round to nearest, as ggml's reference): x [n] -> y
 * (n / 32 blocks). n must be a multiple of 32 (asserted). Follows ggml's
 * quantize_row_*_ref step for step (finite inputs); tests check the bytes against gguf-py.
 * ------------------------------------------------------------------------------- */

/* d = max|x| / 127, q = round(x / d) (halves away from zero) */
void rq_quant_q8_0_ref(const float *x, rq_block_q8_0 *y, int64_t n);
/* d = -(the x of largest magnitude) / 8, q = min(15, trunc(x / d + 8.5)) */
void rq_quant_q4_0_ref(const float *x, rq_block_q4_0 *y, int64_t n);
/* d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)) */
void rq_quant_q4_1_ref(const float *x, rq_block_q4_1 *y, int64_t n);

#endif

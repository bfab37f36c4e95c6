/* The 4-bit KV cache layout (QuaRot-style KV quantization, METHODS.md "Uniform
 * quantizers": KV cache per token and head, or per group of channels, asymmetric), with
 * the scalar reference quantizer and dequantizer.
 *
 * A cache row is the keys (or the values) of ONE token in ONE layer: n = n_head_kv ·
 * head_dim floats, split into n / G groups of G consecutive channels (G = head_dim by
 * default: one scale and zero point per head per token; G must divide head_dim and be a
 * multiple of 8). Each group is stored as
 *
 *     rq_kv4_hdr   (4 bytes)   d = scale s (fp16), z = zero point (0..15), a zero byte
 *     qs[G / 2]                byte j: low nibble = code of channel 2j, high = 2j + 1
 *
 * so a group takes 4 + G/2 bytes (36 for G = 64, against 256 as float32) and a row
 * (n / G)·(4 + G/2). Groups follow each other in channel order; rows of consecutive
 * positions follow each other in the cache. G % 8 == 0 keeps every header 2-aligned
 * and lets a SIMD dequantizer read 4 code bytes (8 channels) at a time.
 *
 * Quantizer (asymmetric, b = 4, clip ratio c in (0, 1]; the range widened to contain 0
 * exactly as the weight quantizer quant/uniform.h does, so that z is an integer in
 * [0, 15] and 0 is represented exactly):
 *     lo = c·min(min x, 0),  hi = c·max(max x, 0)
 *     s  = fp16((hi − lo) / 15)   (clamped to [2^−24, 65504]; a group of zeros: s = 1, z = 0)
 *     z  = clamp(round(−lo / s), 0, 15),   code = clamp(round(x / s) + z, 0, 15)
 *     x̃  = s·(code − z)
 * round is round-half-to-even; all arithmetic in float32, divisions (not reciprocal
 * multiplies), so that any implementation doing the same operations gets the same
 * codes. Inputs must be finite. */
#ifndef RQ_FORMAT_KV_H
#define RQ_FORMAT_KV_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#define RQ_KV4_MAXQ 15
#define RQ_KV4_GROUP_ALIGN 8 /* G must be a multiple of this */

typedef struct rq_kv4_hdr {
    uint16_t d;   /* scale, fp16 bit pattern */
    uint8_t z;    /* zero point, 0..15 */
    uint8_t pad;  /* 0 */
} rq_kv4_hdr;
static_assert(sizeof(rq_kv4_hdr) == 4, "rq_kv4_hdr size");

/* Bytes of one group of G channels, and of a row of n channels (n % G == 0). */
static inline int64_t rq_kv4_group_bytes(int64_t group) { return (int64_t)sizeof(rq_kv4_hdr) + group / 2; }
static inline int64_t rq_kv4_row_bytes(int64_t n, int64_t group) { return n / group * rq_kv4_group_bytes(group); }
/* Whether G is a valid group for heads of head_dim channels (divides it, multiple of 8). */
static inline bool rq_kv4_group_ok(int64_t group, int64_t head_dim) {
    return group >= RQ_KV4_GROUP_ALIGN && group % RQ_KV4_GROUP_ALIGN == 0 && head_dim % group == 0;
}

/* One group's parameters (the formulas above): x [group]. */
void rq_kv4_params_ref(const float *x, int64_t group, float clip, float *scale, int *zero);
/* Quantize a row x [n] into dst [rq_kv4_row_bytes(n, group)]. */
void rq_kv4_quant_row_ref(const float *x, int64_t n, int64_t group, float clip, uint8_t *dst);
/* Dequantize a row src → y [n]: y = s·(code − z). */
void rq_kv4_dequant_row_ref(const uint8_t *src, int64_t n, int64_t group, float *y);
/* x ← x̃ in place: quantize and dequantize (the "fake-quantized" float cache). */
void rq_kv4_fake_row_ref(float *x, int64_t n, int64_t group, float clip);

#endif

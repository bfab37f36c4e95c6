/* llama.cpp's block encodings as group quantizers (quant/quantizer.h), so that RTN and GPTQ
 * solve directly onto the grids llama.cpp runs: a weight's dequantized value is one of the
 * levels its (sub-)block's stored parameters give, computed with the same float operations
 * as ggml's (and format/dequant_ref.c's) dequantizer, so the floats GPTQ chooses are the
 * floats any reader of the written blocks gets back, bit for bit.
 *
 * Types and their parameters per group (the group is the block, or the sub-block of a
 * K-quant super-block; params are floats holding stored values exactly):
 *   Q4_0, Q5_0, Q8_0   32 weights, {d}:    x = (float)(q − z)·d, z = 8, 16, 128 (Q8_0's codes
 *                                          are 1..255: int8 −127..127, never −128)
 *   IQ4_NL             32 weights, {d}:    x = d·(float)K[q], K = rq_iq4nl_values
 *   Q4_1, Q5_1         32 weights, {d, m}: x = (float)q·d + m
 *   Q2_K, Q4_K, Q5_K   sub-blocks of 16/32/32 in super-blocks of 256, {d, dmin, sc, mn}:
 *                      x = (d·sc)·q − dmin·mn, sc and mn 4-bit (Q2_K) or 6-bit integers ≥ 0
 *   Q3_K, Q6_K         sub-blocks of 16 in super-blocks of 256, {d, sc}: x = (d·sc)·(q − z),
 *                      z = 4, 32; sc in −32..31 (Q3_K), −128..127 (Q6_K)
 * d, dmin and m are fp16 values. The K types fit a whole super-block at once (the
 * quantizer's span is 256 / sub-block size groups): d and dmin are shared by its sub-blocks.
 *
 * The fit of a block minimises the squared error Σ imp_i (w_i − x_i)² (imp = 1 when no
 * importance is given, GPTQ's H_ii with --fit-importance) over the encoded parameters after
 * their own rounding (fp16, 4/6-bit integers), each weight at its nearest level: a search
 * over scales (the largest weight mapped to the end levels of the grid, ±25 %), each
 * candidate refined by weighted least squares; for the K types per-sub-block fits, the
 * super-block scales from them, the integer sub-block scales/mins chosen among their
 * neighbours by the sub-block's error, then a least-squares refit of d (and dmin). The
 * quantizer's rounding (quant) is always the nearest level of the block's level set. */
#ifndef RQ_QUANT_GGQUANT_H
#define RQ_QUANT_GGQUANT_H

#include "base/status.h"
#include "quant/quantizer.h"

#include <stdbool.h>
#include <stdint.h>

/* Parse a llama.cpp type name, case-insensitive: q4_0 q4_1 q5_0 q5_1 q8_0 iq4_nl q2_k q3_k
 * q4_k q5_k q6_k (the types rotquant writes); with allow_float also f16 and f32. RQ_EINVAL
 * naming `opt` and listing the types otherwise. */
rq_status rq_gg_type_parse(const char *s, bool allow_float, const char *opt, int *type);
/* True for the quantized types above (rq_type ids of format/format.h). */
bool rq_gg_type_writable(int type);
/* "q4_0": the lower-case name as the CLI spells it. */
const char *rq_gg_type_cli_name(int type);

/* The type a weight matrix with rows of n_in gets when `type` is asked for, as llama.cpp
 * does it: the type itself when n_in is a multiple of its block size; otherwise the
 * K types fall back (Q2_K, Q3_K → IQ4_NL; Q4_K → Q5_0; Q5_K → Q5_1; Q6_K → Q8_0) when n_in
 * is a multiple of 32. −1 when nothing fits (n_in not a multiple of 32). */
int rq_gg_type_for_row(int type, int64_t n_in);

/* llama.cpp's general.file_type (llama_ftype) of a file mostly of `type`. */
uint32_t rq_gg_file_type(int type);

/* The group quantizer of a writable type and its group (weights per parameter set: 32, or
 * the K types' sub-block 16/32; q->span groups are fitted together). */
rq_group_quantizer rq_gg_quantizer(int type, int64_t *group);

/* Encode one row of n weights (n a multiple of the type's block size) from its codes [n]
 * and parameters [n / group, n_param] (as rq_quant_rtn / rq_gptq_quantize fill them with
 * rq_gg_quantizer(type)) into the type's blocks at dst (rq_type_row_bytes(type, n)). The
 * parameters must be encodable (what the fit produces: fp16 values, integer scales in range,
 * one d/dmin per super-block); RQ_EINVAL otherwise. */
rq_status rq_gg_encode_row(int type, const uint8_t *codes, const float *params, int64_t n, void *dst);

#endif

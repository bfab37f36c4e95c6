/* Activations quantized on the fly, per token (one row of n values), for the integer
 * paths of the W2U/W2L/W4U GEMV/GEMM kernels (src/kernels/gemv.h), with scalar references.
 *
 * Decision: one fp32 scale per token (METHODS.md: "Activations: per token (one row)"),
 * symmetric (QuaRot's and RCP's choice for activations; no zero point, so the integer dot
 * product needs no per-row weight sums). Not per group: the weight groups already force a
 * float multiply per group (the weight scale), so the kernel computes for each weight
 * group the exact integer dot product D_g = Σ_i code_i·q_i and combines
 *     y = a · Σ_g d_g·(D_g − z_g·Q_g)        (W2U, W4U; Q_g = Σ_{i in g} q_i)
 *     y = a · Σ_g Σ_k v_gk·S_gk               (W2L, S_gk = Σ_{i in g, code_i = k} q_i)
 * in float. Per-group activation scales would cost one more multiply per group and are
 * not needed after a rotation has spread the outliers.
 *
 * Q8: q_i in [−127, 127], a = max|x| / 127, q_i = round(x_i · (127 / max|x|)),
 *     x̃_i = a·q_i. An all-zero row gets a = 0 and q = 0.
 * Q4: q_i in [−7, 7] (METHODS.md's symmetric 4-bit clamp is [−8, 7]; with
 *     a = max|x| / 7 the value −8 never occurs), q_i = round(x_i · (7 / max|x|)).
 *     round is round-half-to-even (the SIMD conversions' default mode). Both the
 *     scalar reference and the SIMD versions multiply by the same float 127/max (or
 *     7/max), so they produce the same codes bit for bit. Inputs must be finite.
 *
 * Packed Q4 row (n % 32 == 0): n/32 chunks of 16 bytes (rq_block_a4); in chunk c
 *   byte j, j = 0..15:  low nibble = q[32c + j] + 8,  high nibble = q[32c + 16 + j] + 8
 * (offset binary, 0..15), so one 16-byte load, a mask and a 4-bit shift give 32
 * consecutive values. The kernels unpack a token's row to int8 once per GEMV/GEMM and
 * share the A8 integer inner loop, since the row is reused for every output row. */
#ifndef RQ_FORMAT_ACT_H
#define RQ_FORMAT_ACT_H

#include <assert.h>
#include <stdint.h>

typedef enum rq_act_kind {
    RQ_ACT_F32 = 0, /* activations kept in float ("A16" in the papers' naming) */
    RQ_ACT_Q8 = 1,  /* int8 per token (A8) */
    RQ_ACT_Q4 = 2,  /* int4 per token (A4) */
} rq_act_kind;

#define RQ_ACT_Q8_MAX 127
#define RQ_ACT_Q4_MAX 7
#define RQ_QK_A4 32 /* elements per packed Q4 chunk */

typedef struct rq_block_a4 {
    uint8_t qs[RQ_QK_A4 / 2];
} rq_block_a4;
static_assert(sizeof(rq_block_a4) == 16, "rq_block_a4 size");

/* Name ("f32", "q8", "q4"). */
const char *rq_act_kind_name(rq_act_kind kind);

/* Quantizes one row x [n] to q [n] with values in [−qmax, qmax] (qmax = 127 or 7) and
 * returns the scale a (x̃ = a·q). Reference for both Q8 and the values of Q4. */
float rq_act_quant_ref(const float *x, int64_t n, int qmax, int8_t *q);
/* Packs q [n] (values in [−8, 7], asserted; n % 32 == 0) into n/32 chunks. */
void rq_act_q4_pack(const int8_t *q, int64_t n, rq_block_a4 *dst);
/* Unpacks n/32 chunks into q [n]. */
void rq_act_q4_unpack(const rq_block_a4 *src, int64_t n, int8_t *q);

#endif

/* Per-token activation quantizers applied on the fly ("fake quantization": each row is
 * quantized and immediately dequantized in place), for the inputs of the linear layers
 * (METHODS.md "Uniform quantizers", activations: per token = one row), and the fast
 * dequantizer of 4-bit KV cache rows (format/kv.h).
 *
 * Activation quantizer of one row x [n], b bits (4 or 8), clip ratio c in (0, 1]:
 *   mn = min(min x, 0), mx = max(max x, 0)   (range widened to contain 0, as QuaRot's
 *                                             ActQuantizer and quant/uniform.h do)
 *   asymmetric: s = c·(mx − mn) / (2^b − 1), z = clamp(round(−c·mn / s), 0, 2^b − 1),
 *               codes in [0, 2^b − 1]
 *   symmetric:  s = c·max(−mn, mx) / (2^(b−1) − 1), z = 0, codes in [−2^(b−1), 2^(b−1) − 1]
 *   x̃ = s·(clamp(round(x·r) + z) − z),  r = (2^b − 1) / (c·(mx − mn)) (asymmetric) or
 *                                         (2^(b−1) − 1) / (c·max(−mn, mx)) (symmetric)
 * The scale stays float32 (it is computed per token at run time, never stored). A row
 * whose quantizer range is 0 (all zeros) is left as it is. round is round-half-to-even.
 * x·r, with r one float division per row, is exactly what the integer 2-bit kernels'
 * quantizer computes (format/act.h: q = round(x·(qmax/max|x|))), so the symmetric,
 * unclipped quantizer here gives the integer path's codes bit for bit, ties included; the
 * scalar reference and the SIMD versions perform the same float operations and give
 * bit-identical rows. Inputs must be finite.
 *
 * Dispatch (kernels/actq.c): rq_actq_row / rq_kv4_dequant_rows pick the fastest level
 * allowed by rq_cpu_level_get() (AVX-512 machines use the AVX2 code: these loops are
 * memory-bound and short); the scalar references are in ref/actq_ref.c. */
#ifndef RQ_KERNELS_ACTQ_H
#define RQ_KERNELS_ACTQ_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_actq {
    int bits;   /* 0: off (float activations, "A16"); 4 or 8 (run-time encoding, format/abits.h) */
    bool asym;  /* asymmetric (zero point) or symmetric */
    float clip; /* clip ratio c in (0, 1] (QuaRot uses 0.9) */
} rq_actq;

/* Parameters of one row from mn = min(min x, 0) and mx = max(max x, 0): scale s (0 when
 * the row is all zeros), its reciprocal r as defined above, zero point z and the code range
 * [qlo, qhi], as floats. Shared by every implementation so that they agree bit for bit. */
static inline void rq_actq_params(const rq_actq *q, float mn, float mx, float *s, float *r, float *z, float *qlo,
                                  float *qhi) {
    if (q->asym) {
        float maxq = (float)((1 << q->bits) - 1);
        float lo = q->clip * mn, hi = q->clip * mx;
        *s = (hi - lo) / maxq;
        *r = maxq / (hi - lo);
        float zz = *s > 0.0f ? __builtin_rintf(-lo / *s) : 0.0f;
        *z = zz < 0.0f ? 0.0f : zz > maxq ? maxq : zz;
        *qlo = 0.0f;
        *qhi = maxq;
    } else {
        float half = (float)(1 << (q->bits - 1));
        float amax = -mn > mx ? -mn : mx;
        *s = q->clip * amax / (half - 1.0f);
        *r = (half - 1.0f) / (q->clip * amax);
        *z = 0.0f;
        *qlo = -half;
        *qhi = half - 1.0f;
    }
}

/* x [n] ← x̃ in place. q->bits must be 4 or 8 (asserted). */
void rq_actq_row(const rq_actq *q, float *x, int64_t n);
void rq_actq_row_ref(const rq_actq *q, float *x, int64_t n);
void rq_actq_row_avx2(const rq_actq *q, float *x, int64_t n);

/* 4-bit KV rows (format/kv.h): src [rows, row_bytes(n, group)] → y [rows, ldy] (first n
 * columns). Bit-identical to rq_kv4_dequant_row_ref. */
void rq_kv4_dequant_rows(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy);
void rq_kv4_dequant_rows_ref(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy);
void rq_kv4_dequant_rows_avx2(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy);

#endif

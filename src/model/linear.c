/* Linear layers y = x·Wᵀ of every kind (model.h), split over the pool's threads.
 *
 *   F32    BLAS sgemv/sgemm on the float matrix (act_bits is always 0: quantized
 *          activations reach it already fake-quantized by the forward pass, rq_actq_row,
 *          the reference path that the integer kernels must agree with).
 *   W2U/L, W4U  up to lowbit_dequant_min_tokens() - 1 tokens (decode, short batches):
 *          rq_lowbit_gemm_ex (kernels/gemv.h) with float or per-token int8/int4 activations;
 *          longer batches (prefill): tiles of rows dequantized (rq_lowbit_dequant, SIMD) into
 *          a scratch buffer and multiplied with BLAS SGEMM, the activations quantized and
 *          dequantized per token first when act_bits is 8/4 (the same x̃ the integer
 *          kernels use: rq_act_quant gives the reference's codes bit for bit). Measured
 *          on the Zen 5 dev VM (bench/bench_kernels, 1536x576, 512 tokens, 1 thread):
 *          the low-bit GEMM costs 25 (A16) / 17 (A8) us per token against 14 us for OpenBLAS's
 *          Haswell SGEMM (9 us with its SkylakeX kernels) plus 36 us per call to
 *          dequantize the matrix, so the dequantizing path wins from a few tokens on.
 *          The full float matrix is never materialized: a tile is ~512 KiB.
 *   GGUF   one token of a type with a direct GEMV (kernels/type_kernels.h: Q8_0's
 *          rq_q8_0_gemv): that GEMV; otherwise tiles of rows are
 *          dequantized into a scratch buffer and multiplied with BLAS (the tile's
 *          dequantization is shared by all n tokens). */
#include "model/model.h"

#include "base/pool.h"
#include "format/act.h"
#include "format/format.h"
#include "kernels/gemv.h"
#include "kernels/type_kernels.h"
#include "model/blas_threads.h"

#include <stdlib.h>
#include <string.h>

/* Scratch of one dequantized tile of GGUF rows when n > 1: about this many bytes (it stays
 * in L2 while BLAS multiplies all tokens by it). */
#define GGUF_TILE_BYTES (512 * 1024)

/* Tokens from which low-bit layers (W2U/W2L/W4U) dequantize tiles and use SGEMM instead
 * of the low-bit GEMM kernels (see the top). RQ_LOWBIT_DEQUANT_MIN=<tokens> in the
 * environment overrides it (a huge value keeps the low-bit kernels for every batch, 1
 * dequantizes always); RQ_W2_DEQUANT_MIN, its former name, is still read when it is unset. */
#define LOWBIT_DEQUANT_MIN_DEFAULT 8

static int64_t g_lowbit_dequant_min = -1;

static int64_t lowbit_dequant_min_tokens(void) {
    if (g_lowbit_dequant_min < 0) {
        const char *e = getenv("RQ_LOWBIT_DEQUANT_MIN");
        if (!e || !*e) e = getenv("RQ_W2_DEQUANT_MIN");
        int64_t x = e && *e ? atoll(e) : LOWBIT_DEQUANT_MIN_DEFAULT;
        g_lowbit_dequant_min = x < 1 ? 1 : x; /* benign race: every thread computes the same value */
    }
    return g_lowbit_dequant_min;
}

void rq_linear_set_lowbit_dequant_min(int64_t tokens) { g_lowbit_dequant_min = tokens > 0 ? tokens : -1; }

static rq_act_kind act_kind(int bits) {
    return bits == 8 ? RQ_ACT_Q8 : bits == 4 ? RQ_ACT_Q4 : RQ_ACT_F32;
}

static bool act_quantized(const rq_linear *l) { return l->act_bits == 8 || l->act_bits == 4; }

/* x̃ [n, in] = x quantized and dequantized in blocks of `block` values (block divides in)
 * with the integer kernels' quantizer (rq_act_quant, the codes the integer path uses): per
 * token (block = in, qmax of act_bits 8/4) or per weight group for 2-bit weights under
 * RQ_LOWBIT_A16_Q8 (int8). A new buffer (rq_free). */
static float *fake_quant(const float *x, int64_t n, int64_t in, int64_t block, int qmax) {
    float *xq = rq_xalloc(n * in * (int64_t)sizeof(float) + 64);
    int8_t *q = rq_xalloc(block + 64);
    for (int64_t t = 0; t < n; t++)
        for (int64_t b = 0; b < in; b += block) {
            const float a = rq_act_quant(x + t * in + b, block, qmax, q);
            for (int64_t i = 0; i < block; i++) xq[t * in + b + i] = a * (float)q[i];
        }
    rq_free(q);
    return xq;
}

static void f32_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y, int64_t ldy,
                     bool accumulate) {
    float beta = accumulate ? 1.0f : 0.0f;
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(c1 - c0), (int)l->n_in, 1.0f, l->w + c0 * l->n_in,
                    (int)l->n_in, x, 1, beta, y + c0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)(c1 - c0), (int)l->n_in, 1.0f, x,
                    (int)l->n_in, l->w + c0 * l->n_in, (int)l->n_in, beta, y + c0, (int)ldy);
}

/* Rows [c0, c1) dequantized a tile at a time by the type's dequantizer (kernels/type_kernels.h:
 * SIMD for the low-bit family, the traits' to_float for GGUF types) and multiplied with BLAS. */
static void tiled_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y, int64_t ldy,
                       bool accumulate) {
    const uint8_t *rows = (const uint8_t *)l->data + c0 * l->row_bytes;
    const int64_t in = l->n_in;
    const rq_type_kernels *tk = rq_type_kernels_get(l->type);
    RQ_ASSERT(tk);
    int64_t tile = GGUF_TILE_BYTES / (in * (int64_t)sizeof(float));
    tile = tile < 16 ? 16 : tile;
    if (tile > c1 - c0) tile = c1 - c0;
    float *wt = rq_xalloc(tile * in * (int64_t)sizeof(float));
    const float beta = accumulate ? 1.0f : 0.0f;
    for (int64_t r0 = c0; r0 < c1; r0 += tile) {
        const int64_t m = r0 + tile < c1 ? tile : c1 - r0;
        tk->dequant(l->type, rows + (r0 - c0) * l->row_bytes, wt, m * in);
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)in, 1.0f, wt, (int)in, x, 1, beta, y + r0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m, (int)in, 1.0f, x, (int)in, wt,
                        (int)in, beta, y + r0, (int)ldy);
    }
    rq_free(wt);
}

static void gguf_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y, int64_t ldy,
                      bool accumulate) {
    const rq_type_kernels *tk = rq_type_kernels_get(l->type);
    if (n == 1 && tk && tk->gemv_f32) {
        const uint8_t *rows = (const uint8_t *)l->data + c0 * l->row_bytes;
        if (!accumulate) {
            tk->gemv_f32(l->type, rows, c1 - c0, l->n_in, x, y + c0);
            return;
        }
        float *tmp = rq_xalloc((c1 - c0) * (int64_t)sizeof(float));
        tk->gemv_f32(l->type, rows, c1 - c0, l->n_in, x, tmp);
        for (int64_t r = 0; r < c1 - c0; r++) y[c0 + r] += tmp[r];
        rq_free(tmp);
        return;
    }
    tiled_cols(l, x, n, c0, c1, y, ldy, accumulate);
}

static rq_lowbit_matrix lowbit_view(const rq_linear *l, int64_t c0, int64_t c1) {
    return (rq_lowbit_matrix){.type = l->type, .out = c1 - c0, .in = l->n_in,
                          .data = (const uint8_t *)l->data + c0 * l->row_bytes};
}

static bool lowbit_dequantizing(const rq_linear *l, int64_t n) {
    return rq_linear_kind_lowbit(l->kind) && n >= lowbit_dequant_min_tokens();
}

/* The activations a layer's float GEMM needs prepared on the dequantizing path of the low-bit
 * kinds: x̃ when act_bits is 8/4, or for 2-bit weights with float activations under
 * RQ_LOWBIT_A16_Q8 (so that prefill and decode compute the same); NULL when x itself serves. */
static float *prepare_x(const rq_linear *l, const float *x, int64_t n) {
    RQ_ASSERT(l->kind != RQ_LINEAR_F32 || !act_quantized(l));
    if (!lowbit_dequantizing(l, n)) return NULL;
    if (act_quantized(l)) return fake_quant(x, n, l->n_in, l->n_in, l->act_bits == 8 ? RQ_ACT_Q8_MAX : RQ_ACT_Q4_MAX);
    rq_lowbit_tuning t;
    rq_lowbit_tuning_get(&t);
    if (t.a16 == RQ_LOWBIT_A16_Q8 && rq_lowbit_bits(l->type) == 2)
        return fake_quant(x, n, l->n_in, rq_lowbit_group(l->type), RQ_ACT_Q8_MAX);
    return NULL;
}

/* Columns [c0, c1) with the activations already prepared by prepare_x. */
static void cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y, int64_t ldy,
                 bool accumulate) {
    switch (l->kind) {
    case RQ_LINEAR_F32: f32_cols(l, x, n, c0, c1, y, ldy, accumulate); return;
    case RQ_LINEAR_W2U:
    case RQ_LINEAR_W2L:
    case RQ_LINEAR_W4U: {
        if (lowbit_dequantizing(l, n)) {
            tiled_cols(l, x, n, c0, c1, y, ldy, accumulate);
            return;
        }
        rq_lowbit_matrix v = lowbit_view(l, c0, c1);
        rq_lowbit_gemm_ex(&v, act_kind(l->act_bits), x, n, y + c0, ldy, accumulate);
        return;
    }
    case RQ_LINEAR_GGUF: gguf_cols(l, x, n, c0, c1, y, ldy, accumulate); return;
    }
    RQ_ASSERT(!"unknown linear kind");
}

void rq_linear_forward_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y,
                            int64_t ldy, bool accumulate) {
    RQ_ASSERT(c0 >= 0 && c1 <= l->n_out);
    if (c1 <= c0) return;
    float *xq = prepare_x(l, x, n);
    cols(l, xq ? xq : x, n, c0, c1, y, ldy, accumulate);
    rq_free(xq);
}

typedef struct {
    const rq_linear *l;
    const float *x; /* [n, n_in] */
    int64_t n;
    float *y;       /* [n, ldy] */
    int64_t ldy;
    bool accumulate;
    int64_t blk;    /* output columns (weight rows) per work item */
} linear_job;

static void cols_range(void *ctx, int64_t b, int64_t e, int thread) {
    const linear_job *j = ctx;
    int64_t c1 = e * j->blk < j->l->n_out ? e * j->blk : j->l->n_out;
    cols(j->l, j->x, j->n, b * j->blk, c1, j->y, j->ldy, j->accumulate);
}

void rq_linear_forward(const rq_linear *l, const float *x, int64_t n, float *y, int64_t ldy, bool accumulate) {
    RQ_ASSERT(n >= 1 && ldy >= l->n_out);
    RQ_ASSERT(l->kind == RQ_LINEAR_F32 ? l->w != NULL : l->data != NULL);
    int prev = rq_blas_single_begin();
    if (rq_linear_kind_lowbit(l->kind) && !lowbit_dequantizing(l, n)) {
        /* the low-bit driver splits the rows over the pool itself, after quantizing the
         * activations once */
        rq_lowbit_matrix v = lowbit_view(l, 0, l->n_out);
        rq_lowbit_gemm_ex(&v, act_kind(l->act_bits), x, n, y, ldy, accumulate);
        rq_blas_single_end(prev);
        return;
    }
    float *xq = prepare_x(l, x, n);
    int nt = rq_threads_get();
    linear_job j = {.l = l, .x = xq ? xq : x, .n = n, .y = y, .ldy = ldy, .accumulate = accumulate};
    /* Work items: about 4 per thread for balance, at least 16 columns each (and a
     * multiple of 16 to keep GEMM panels whole). */
    int64_t blk = (l->n_out + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    blk = (blk + 15) / 16 * 16;
    if (blk < 16) blk = 16;
    j.blk = blk;
    int64_t n_items = (l->n_out + blk - 1) / blk;
    rq_parallel_for(n_items, 1, cols_range, &j);
    rq_free(xq);
    rq_blas_single_end(prev);
}

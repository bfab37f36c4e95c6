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
 *          rq_q8_0_gemv, or under RQ_LOWBIT_A16_Q8 its int8 GEMV rq_q8_0_gemv_q8 on x
 *          quantized per 32-block): that GEMV; otherwise tiles of rows are
 *          dequantized into a scratch buffer and multiplied with BLAS (the tile's
 *          dequantization is shared by all n tokens; under RQ_LOWBIT_A16_Q8 on the same x̃). */
#include "model/model.h"

#include "base/pool.h"
#include "format/act.h"
#include "format/format.h"
#include "kernels/gemv.h"
#include "kernels/qgemv.h"
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

/* The activations of one forward, prepared once for all its column ranges (prepare): what
 * the float paths multiply (x itself or x̃), or codes and block scales for a GGUF type's
 * int8 GEMV. */
typedef struct {
    const float *x; /* x, or xf when set */
    float *xf;      /* x̃ [n, in], owned, or NULL */
    int8_t *q;      /* one token's codes [in] for gemv_q8, owned, or NULL */
    float *qd;      /* their scales [in / block], owned */
    int32_t *qs;    /* the sums of each block's codes (for l->q8r16), owned */
} prepared;

static void gguf_cols(const rq_linear *l, const prepared *p, int64_t n, int64_t c0, int64_t c1, float *y,
                      int64_t ldy, bool accumulate) {
    const rq_type_kernels *tk = rq_type_kernels_get(l->type);
    if (n == 1 && tk && (tk->gemv_f32 || p->q)) {
        const uint8_t *rows = (const uint8_t *)l->data + c0 * l->row_bytes;
        float *dst = accumulate ? rq_xalloc((c1 - c0) * (int64_t)sizeof(float)) : y + c0;
        if (p->q && l->q8r16 && c0 % RQ_Q8R16_ROWS == 0 && (c1 - c0) % RQ_Q8R16_ROWS == 0)
            rq_q8_0_r16_gemv_q8((const uint8_t *)l->q8r16 + c0 / RQ_Q8R16_ROWS * rq_q8_0_r16_group_bytes(l->n_in),
                                c1 - c0, l->n_in, p->q, p->qd, p->qs, dst);
        else if (p->q)
            tk->gemv_q8(l->type, rows, c1 - c0, l->n_in, p->q, p->qd, dst);
        else
            tk->gemv_f32(l->type, rows, c1 - c0, l->n_in, p->x, dst);
        if (accumulate) {
            for (int64_t r = 0; r < c1 - c0; r++) y[c0 + r] += dst[r];
            rq_free(dst);
        }
        return;
    }
    tiled_cols(l, p->x, n, c0, c1, y, ldy, accumulate);
}

static rq_lowbit_matrix lowbit_view(const rq_linear *l, int64_t c0, int64_t c1) {
    return (rq_lowbit_matrix){.type = l->type, .out = c1 - c0, .in = l->n_in,
                          .data = (const uint8_t *)l->data + c0 * l->row_bytes};
}

static bool lowbit_dequantizing(const rq_linear *l, int64_t n) {
    return rq_linear_kind_lowbit(l->kind) && n >= lowbit_dequant_min_tokens();
}

/* The block over which RQ_LOWBIT_A16_Q8 (kernels/gemv.h) quantizes this layer's float
 * activations to int8, 0 where it does not apply: the weight group of W2U, the
 * block of a GGUF type with an int8 GEMV (Q8_0's 32: the lm_head of rotquant's files). */
static int64_t a16_q8_block(const rq_linear *l) {
    rq_lowbit_tuning t;
    rq_lowbit_tuning_get(&t);
    if (t.a16 != RQ_LOWBIT_A16_Q8 || act_quantized(l)) return 0;
    if (rq_linear_kind_lowbit(l->kind)) return l->kind == RQ_LINEAR_W2U ? rq_lowbit_group(l->type) : 0;
    const rq_type_kernels *tk = l->kind == RQ_LINEAR_GGUF ? rq_type_kernels_get(l->type) : NULL;
    return tk && tk->gemv_q8 ? rq_type_traits_get(l->type)->block_size : 0;
}

/* Prepares x for cols: on the dequantizing path of the low-bit kinds x̃ when act_bits is
 * 8/4, and under RQ_LOWBIT_A16_Q8 for the layers a16_q8_block names x quantized per block,
 * as codes for a GGUF type's int8 GEMV (one token) or as x̃ for the tiled float path (so
 * that prefill and decode compute the same); else x itself. */
static void prepare(const rq_linear *l, const float *x, int64_t n, prepared *p) {
    RQ_ASSERT(l->kind != RQ_LINEAR_F32 || !act_quantized(l));
    *p = (prepared){.x = x};
    const int64_t block = a16_q8_block(l);
    if (rq_linear_kind_lowbit(l->kind)) {
        if (!lowbit_dequantizing(l, n)) return; /* the low-bit driver quantizes itself */
        if (act_quantized(l))
            p->xf = fake_quant(x, n, l->n_in, l->n_in, l->act_bits == 8 ? RQ_ACT_Q8_MAX : RQ_ACT_Q4_MAX);
        else if (block)
            p->xf = fake_quant(x, n, l->n_in, block, RQ_ACT_Q8_MAX);
    } else if (block && n == 1) {
        const int64_t nb = l->n_in / block;
        p->q = rq_xalloc(l->n_in + 64);
        p->qd = rq_xalloc(nb * (int64_t)sizeof(float) + 64);
        for (int64_t b = 0; b < nb; b++) p->qd[b] = rq_act_quant(x + b * block, block, RQ_ACT_Q8_MAX, p->q + b * block);
        if (l->q8r16) { /* the R16 kernel's bias needs each block's code sum */
            p->qs = rq_xalloc(nb * (int64_t)sizeof(int32_t) + 64);
            for (int64_t b = 0; b < nb; b++) {
                int32_t sum = 0;
                for (int64_t i = 0; i < block; i++) sum += p->q[b * block + i];
                p->qs[b] = sum;
            }
        }
    } else if (block) {
        p->xf = fake_quant(x, n, l->n_in, block, RQ_ACT_Q8_MAX);
    }
    if (p->xf) p->x = p->xf;
}

static void prepared_free(prepared *p) {
    rq_free(p->xf);
    rq_free(p->q);
    rq_free(p->qd);
    rq_free(p->qs);
}

rq_status rq_linear_prepare_q8(rq_linear *l) {
    rq_lowbit_tuning t;
    rq_lowbit_tuning_get(&t);
    if (t.a16 != RQ_LOWBIT_A16_Q8 || l->kind != RQ_LINEAR_GGUF || l->type != RQ_TYPE_Q8_0 || !l->data ||
        l->q8r16 || l->n_out % RQ_Q8R16_ROWS != 0)
        return RQ_OK;
    l->q8r16 = rq_alloc(l->n_out / RQ_Q8R16_ROWS * rq_q8_0_r16_group_bytes(l->n_in));
    if (!l->q8r16) return rq_error_prefix(RQ_ENOMEM, "int8 layout of the Q8_0 lm_head");
    rq_q8_0_r16_pack(l->data, l->n_out, l->n_in, l->q8r16);
    return RQ_OK;
}

/* Columns [c0, c1) with the activations prepared by prepare. */
static void cols(const rq_linear *l, const prepared *p, int64_t n, int64_t c0, int64_t c1, float *y, int64_t ldy,
                 bool accumulate) {
    const float *x = p->x;
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
    case RQ_LINEAR_GGUF: gguf_cols(l, p, n, c0, c1, y, ldy, accumulate); return;
    }
    RQ_ASSERT(!"unknown linear kind");
}

void rq_linear_forward_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y,
                            int64_t ldy, bool accumulate) {
    RQ_ASSERT(c0 >= 0 && c1 <= l->n_out);
    if (c1 <= c0) return;
    prepared p;
    prepare(l, x, n, &p);
    cols(l, &p, n, c0, c1, y, ldy, accumulate);
    prepared_free(&p);
}

typedef struct {
    const rq_linear *l;
    const prepared *p;
    int64_t n;
    float *y;       /* [n, ldy] */
    int64_t ldy;
    bool accumulate;
    int64_t blk;    /* output columns (weight rows) per work item */
} linear_job;

static void cols_range(void *ctx, int64_t b, int64_t e, int thread) {
    const linear_job *j = ctx;
    int64_t c1 = e * j->blk < j->l->n_out ? e * j->blk : j->l->n_out;
    cols(j->l, j->p, j->n, b * j->blk, c1, j->y, j->ldy, j->accumulate);
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
    prepared p;
    prepare(l, x, n, &p);
    int nt = rq_threads_get();
    linear_job j = {.l = l, .p = &p, .n = n, .y = y, .ldy = ldy, .accumulate = accumulate};
    /* Work items: about 4 per thread for balance, at least 16 columns each (and a
     * multiple of 16 to keep GEMM panels whole). */
    int64_t blk = (l->n_out + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    blk = (blk + 15) / 16 * 16;
    if (blk < 16) blk = 16;
    j.blk = blk;
    int64_t n_items = (l->n_out + blk - 1) / blk;
    rq_parallel_for(n_items, 1, cols_range, &j);
    prepared_free(&p);
    rq_blas_single_end(prev);
}

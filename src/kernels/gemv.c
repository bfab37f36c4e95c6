/* The low-bit (W2U, W2L, W4U) GEMV/GEMM driver: kernel dispatch (the one place that reads the CPU level),
 * activation preparation, and the parallel loop over output rows. */
#include "kernels/gemv.h"

#include "base/cpu.h"
#include "base/pool.h"
#include "kernels/lowbit_impl.h"

#include <string.h>

static rq_lowbit_tuning g_tuning = {.lut_int = RQ_LOWBIT_LUT_INT_FLOAT, .tok_tile = RQ_LOWBIT_TILE};

void rq_lowbit_tuning_get(rq_lowbit_tuning *t) { *t = g_tuning; }

void rq_lowbit_tuning_set(const rq_lowbit_tuning *t) {
    static const rq_lowbit_tuning def = {.lut_int = RQ_LOWBIT_LUT_INT_FLOAT, .tok_tile = RQ_LOWBIT_TILE};
    g_tuning = t ? *t : def;
    if (g_tuning.tok_tile < 1) g_tuning.tok_tile = 1;
    if (g_tuning.tok_tile > RQ_LOWBIT_TILE) g_tuning.tok_tile = RQ_LOWBIT_TILE;
}

static const rq_lowbit_kernel_set *kernels(void) {
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512:
        return rq_cpu_features_get()->avx512vnni && !g_tuning.no_vnni ? &rq_lowbit_kernels_avx512
                                                                      : &rq_lowbit_kernels_avx512_novnni;
    case RQ_CPU_AVX2: return &rq_lowbit_kernels_avx2;
    case RQ_CPU_SCALAR: break;
    }
    return &rq_lowbit_kernels_ref;
}

const char *rq_lowbit_kernel_name(void) { return kernels()->name; }

void rq_lowbit_dequant(int type, const void *src, float *y, int64_t n) {
    const int64_t g = rq_lowbit_group(type);
    RQ_ASSERT(g > 0 && n >= 0 && n % g == 0);
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: rq_lowbit_dequant_avx512(type, src, y, n); return;
    case RQ_CPU_AVX2: rq_lowbit_dequant_avx2(type, src, y, n); return;
    case RQ_CPU_SCALAR: break;
    }
    rq_dequant_lowbit(type, src, y, n);
}

float rq_act_quant(const float *x, int64_t n, int qmax, int8_t *q) {
    RQ_ASSERT(n >= 0 && qmax > 0 && qmax <= 127);
    return kernels()->act_quant(x, n, qmax, q);
}

rq_status rq_lowbit_matrix_check(const rq_lowbit_matrix *w) {
    const int64_t g = rq_lowbit_group(w->type);
    if (g == 0)
        return rq_errorf(RQ_EINVAL, "low-bit matrix: type %s (%d) is not a W2U, W2L or W4U type", rq_type_name(w->type), w->type);
    if (w->out < 0 || w->in < 0) return rq_errorf(RQ_EINVAL, "low-bit matrix: negative shape [%lld, %lld]", (long long)w->out, (long long)w->in);
    if (w->in % g != 0)
        return rq_errorf(RQ_EINVAL, "low-bit matrix: in = %lld is not a multiple of the group size %lld", (long long)w->in, (long long)g);
    if (!w->data && w->out > 0 && w->in > 0) return rq_errorf(RQ_EINVAL, "low-bit matrix: no data");
    return RQ_OK;
}

/* Blocking of the row loop. A chunk of output rows is done RQ_LOWBIT_ROW_BLOCK rows at a time;
 * for each tile of tokens the groups are walked in K blocks whose activation slice (tile
 * tokens × K block) stays within RQ_LOWBIT_ACT_BLOCK_BYTES, so that it is read from L1 for
 * every row of the block (a 4096-float row alone is 16 KiB; 4 of them overflow L1). */
#define RQ_LOWBIT_ROW_BLOCK 16
_Static_assert(RQ_LOWBIT_TILE >= 4 && RQ_LOWBIT_ROW_BLOCK % 4 == 0, "the four-row kernels' outputs fit tmp and acc");
#define RQ_LOWBIT_ACT_BLOCK_BYTES (16 * 1024)
/* The GEMV (one token) walks whole rows unless its activation row exceeds this: one row
 * is read from L1/L2 by every weight row, and splitting long weight rows into pieces
 * interleaves 16 partial-row streams that the prefetchers follow poorly. Measured on the
 * dev VM (Zen 5, 48 KiB L1d, 1 MiB L2 per core), 4096×11008 (a 43 KiB float row), 2
 * threads, cold weights: W2U A16 1055 -> 690 us, W2L A16 913 -> 705 us; integer
 * activations (11 KiB rows) were never split. Rows longer than measured here (> 64K
 * floats) are split as before. */
#define RQ_LOWBIT_GEMV_ACT_BYTES (256 * 1024)

typedef struct {
    const uint8_t *w;
    int64_t row_bytes, out;
    const rq_lowbit_act *a;
    const float *scale; /* [n_tok] or NULL (all 1) */
    rq_lowbit_dot_fn fn;
    rq_lowbit_dot4_fn fn4; /* one token, four rows per call, or NULL */
    int tile;
    int64_t kc; /* groups per K block */
    float *y;   /* [n_tok, ldy] */
    int64_t ldy;
    bool accumulate;
} gemm_job;

static void gemm_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    const gemm_job *j = ctx;
    const int64_t ng = j->a->in / j->a->group, n_tok = j->a->n_tok;
    float acc[RQ_LOWBIT_ROW_BLOCK][RQ_LOWBIT_TILE], tmp[RQ_LOWBIT_TILE];
    for (int64_t rb = r0; rb < r1; rb += RQ_LOWBIT_ROW_BLOCK) {
        const int64_t re = rb + RQ_LOWBIT_ROW_BLOCK < r1 ? rb + RQ_LOWBIT_ROW_BLOCK : r1;
        for (int64_t t0 = 0; t0 < n_tok; t0 += j->tile) {
            const int nt = (int)(n_tok - t0 < j->tile ? n_tok - t0 : j->tile);
            for (int64_t b0 = 0; b0 < ng; b0 += j->kc) {
                const int64_t b1 = b0 + j->kc < ng ? b0 + j->kc : ng;
                int64_t r = rb;
                if (nt == 1 && j->fn4)
                    for (; r + 4 <= re; r += 4) {
                        j->fn4(j->w + r * j->row_bytes, j->row_bytes, j->a, t0, b0, b1, tmp);
                        for (int i = 0; i < 4; i++) acc[r - rb + i][0] = b0 == 0 ? tmp[i] : acc[r - rb + i][0] + tmp[i];
                    }
                for (; r < re; r++) {
                    j->fn(j->w + r * j->row_bytes, j->a, t0, nt, b0, b1, tmp);
                    for (int t = 0; t < nt; t++) acc[r - rb][t] = b0 == 0 ? tmp[t] : acc[r - rb][t] + tmp[t];
                }
            }
            for (int64_t r = rb; r < re; r++)
                for (int t = 0; t < nt; t++) {
                    const float v = j->scale ? acc[r - rb][t] * j->scale[t0 + t] : acc[r - rb][t];
                    float *dst = j->y + (t0 + t) * j->ldy + r;
                    *dst = j->accumulate ? *dst + v : v;
                }
        }
    }
}

/* The super-chunk kernel for w on this level and tuning, NULL if there is none. */
static rq_lowbit_dot_fn sc_kernel(const rq_lowbit_matrix *w) {
    const rq_lowbit_kernel_set *ks = kernels();
    const int kind = rq_lowbit_kind_of(w->type);
    if (g_tuning.no_sc || kind == RQ_LOWBIT_KIND_W4U || !ks->sc[kind]) return NULL;
    /* W2L: the super-chunk bit planes are 1.7-2x faster than the per-group ones but no
     * faster than the float-table method on the integer values (bench_kernels, both
     * levels), which stays the default */
    if (kind == RQ_LOWBIT_KIND_W2L && g_tuning.lut_int != RQ_LOWBIT_LUT_INT_BITPLANE) return NULL;
    return ks->sc[kind][rq_lowbit_gidx(rq_lowbit_group(w->type))];
}

/* Runs the row loop with activations already prepared; sc: the super-chunk kernel, or
 * NULL for the per-group ones. */
static void run(const rq_lowbit_matrix *w, const rq_lowbit_act *a, const float *scale, bool int_act,
                rq_lowbit_dot_fn sc, float *y, int64_t ldy, bool accumulate) {
    const rq_lowbit_kernel_set *ks = kernels();
    const int kind = rq_lowbit_kind_of(w->type);
    const bool lut = kind == RQ_LOWBIT_KIND_W2L;
    const int gi = rq_lowbit_gidx(a->group);
    gemm_job j = {.w = w->data, .out = w->out, .a = a, .scale = scale, .tile = g_tuning.tok_tile, .y = y,
                  .ldy = ldy, .accumulate = accumulate};
    RQ_ASSERT(rq_type_row_bytes(w->type, w->in, &j.row_bytes));
    const bool int_kernel = sc || (int_act && !(lut && g_tuning.lut_int == RQ_LOWBIT_LUT_INT_FLOAT));
    j.fn = sc ? sc : int_kernel ? ks->i8[kind][gi] : ks->f32[kind][gi];
    if (sc && a->n_tok == 1 && !g_tuning.no_rows4 && kind != RQ_LOWBIT_KIND_W4U && ks->sc4[kind])
        j.fn4 = ks->sc4[kind][gi]; /* NULL where the level has no four-row version */
    const int64_t tile = a->n_tok < j.tile ? a->n_tok : j.tile;
    /* activation bytes per group and token: int8 values or floats. The integer kernels
     * also read the lane sums (lowbit_impl.h, 4·lanes bytes per group: as many as the values
     * for AVX-512 at g = 64), left out here: the 48 KiB L1 of the dev VM holds both, and
     * counting them halved the K block, which cost 10% on the 4-token GEMM (4096², 160
     * vs 144 us per token) and nothing on the GEMV. */
    const int64_t gbytes = int_kernel ? a->group : a->group * 4;
    j.kc = (tile == 1 ? RQ_LOWBIT_GEMV_ACT_BYTES : RQ_LOWBIT_ACT_BLOCK_BYTES) / (tile * gbytes);
    if (j.kc < 1) j.kc = 1;
    if (sc) { /* whole super-chunks per K block */
        const int64_t gps = RQ_LOWBIT_SC / a->group;
        j.kc = j.kc < gps ? gps : j.kc / gps * gps;
    }
    /* grain: about 64 KiB of weights per chunk, so that small matrices stay on one thread */
    int64_t grain = (64 * 1024) / (j.row_bytes > 0 ? j.row_bytes : 1);
    if (grain < 1) grain = 1;
    rq_parallel_for(w->out, grain, gemm_rows, &j);
}

/* Super-chunk path (lowbit_impl.h) from q [n_tok, in]: the activations reordered with
 * their lane sums, and gscale [n_tok, in/g] (per-group activation scales) or NULL. */
static void run_sc(const rq_lowbit_matrix *w, rq_lowbit_dot_fn sc, const int8_t *q, const float *scale,
                   const float *gscale, int64_t n_tok, float *y, int64_t ldy, bool accumulate) {
    const int64_t in = w->in, g = rq_lowbit_group(w->type), ng = in / g;
    const int64_t ns = (in + RQ_LOWBIT_SC - 1) / RQ_LOWBIT_SC;
    int8_t *scq = rq_xalloc(n_tok * ns * RQ_LOWBIT_SC + 64);
    float *scl = rq_xalloc(n_tok * ns * 16 * (int64_t)sizeof(float) + 64);
    float *scs = gscale ? rq_xalloc(n_tok * ns * 16 * (int64_t)sizeof(float) + 64) : NULL;
    /* the 16 bytes of lane j in step k are 16 consecutive elements (g >= 64) from run_start[k][j] */
    int run_start[4][4];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) run_start[k][j] = rq_lowbit_sc_elem(g, j, k, 0);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t s = 0; s < ns; s++) {
            const int64_t base = s * RQ_LOWBIT_SC;
            const int8_t *qt = q + t * in;
            int8_t *dst = scq + (t * ns + s) * RQ_LOWBIT_SC;
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 4; j++) {
                    const int64_t i = base + run_start[k][j];
                    if (i + 16 <= in) memcpy(dst + 64 * k + 16 * j, qt + i, 16);
                    else memset(dst + 64 * k + 16 * j, 0, 16); /* past the row's end (groups are whole) */
                }
            int32_t lane[16];
            for (int l = 0; l < 16; l++) {
                int32_t v = 0;
                for (int k = 0; k < 4; k++)
                    v += dst[64 * k + 4 * l] + dst[64 * k + 4 * l + 1] + dst[64 * k + 4 * l + 2] + dst[64 * k + 4 * l + 3];
                lane[l] = v;
            }
            for (int l = 0; l < 16; l++) {
                scl[(t * ns + s) * 16 + l] = (float)lane[l];
                if (scs) { /* lane l sums elements of group (base + start of its runs) / g */
                    const int64_t b = (base + run_start[0][l / 4]) / g;
                    scs[(t * ns + s) * 16 + l] = b < ng ? gscale[t * ng + b] : 0;
                }
            }
        }
    rq_lowbit_act a = {.n_tok = n_tok, .in = in, .group = g, .q = q, .scq = scq, .scl = scl, .scs = scs, .ns = ns};
    run(w, &a, scale, true, sc, y, ldy, accumulate);
    rq_free(scs);
    rq_free(scl);
    rq_free(scq);
}

/* Integer path from q [n_tok, in] and scales: the super-chunk kernels where they exist,
 * else group sums (and their split by SIMD lanes for the integer kernels, lowbit_impl.h),
 * the float copy when the LUT float method needs it, then the row loop. */
static void run_int(const rq_lowbit_matrix *w, const int8_t *q, const float *scale, int64_t n_tok, float *y,
                    int64_t ldy, bool accumulate) {
    const rq_lowbit_dot_fn sc = sc_kernel(w);
    if (sc) {
        run_sc(w, sc, q, scale, NULL, n_tok, y, ldy, accumulate);
        return;
    }
    const int64_t in = w->in, g = rq_lowbit_group(w->type), ng = in / g;
    const bool lut_float = rq_lowbit_is_lut(w->type) && g_tuning.lut_int == RQ_LOWBIT_LUT_INT_FLOAT;
    const rq_lowbit_kernel_set *ks = kernels();
    const int lanes = lut_float || ks->lanes == 0 ? 0 : (int)(g / 4 < ks->lanes ? g / 4 : ks->lanes);
    RQ_ASSERT(lanes <= 16);
    int32_t *qsum = rq_xalloc(n_tok * ng * (int64_t)sizeof(int32_t) + 64);
    float *qlane = lanes ? rq_xalloc(n_tok * ng * lanes * (int64_t)sizeof(float) + 64) : NULL;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t b = 0; b < ng; b++) {
            const int8_t *qg = q + t * in + b * g;
            int32_t s = 0, sl[16] = {0};
            for (int64_t i = 0; i < g; i++) s += qg[i];
            qsum[t * ng + b] = s;
            if (!lanes) continue;
            for (int64_t i = 0; i < g; i++) sl[(i / 4) % lanes] += qg[i];
            for (int l = 0; l < lanes; l++) qlane[(t * ng + b) * lanes + l] = (float)sl[l];
        }
    float *xf = NULL;
    if (lut_float) {
        xf = rq_xalloc(n_tok * in * (int64_t)sizeof(float) + 64);
        for (int64_t i = 0; i < n_tok * in; i++) xf[i] = (float)q[i];
    }
    rq_lowbit_act a = {.n_tok = n_tok, .in = in, .group = g, .xf = xf, .q = q, .qsum = qsum, .qlane = qlane,
                   .lanes = lanes};
    run(w, &a, scale, true, NULL, y, ldy, accumulate);
    rq_free(xf);
    rq_free(qlane);
    rq_free(qsum);
}

/* y rows of a GEMM with an empty inner dimension: 0 (or unchanged when accumulating) */
static void zero_rows(float *y, int64_t n_tok, int64_t out, int64_t ldy, bool accumulate) {
    if (accumulate) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < out; r++) y[t * ldy + r] = 0;
}

/* Float activations through the float kernels. */
static void gemm_f32(const rq_lowbit_matrix *w, const float *x, int64_t n_tok, float *y, int64_t ldy, bool accumulate) {
    const int64_t g = rq_lowbit_group(w->type), ng = w->in / g;
    rq_lowbit_act a = {.n_tok = n_tok, .in = w->in, .group = g, .xf = x};
    float *xlane = NULL;
    if (kernels()->f32_xlane[rq_lowbit_kind_of(w->type)]) { /* lowbit_impl.h */
        xlane = rq_xalloc(n_tok * ng * 8 * (int64_t)sizeof(float) + 64);
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t b = 0; b < ng; b++) {
                const float *xg = x + t * w->in + b * g;
                float *xl = xlane + (t * ng + b) * 8;
                for (int l = 0; l < 8; l++) xl[l] = 0;
                for (int64_t i = 0; i < g; i++) xl[i % 8] += xg[i];
            }
        a.xlane = xlane;
    }
    run(w, &a, NULL, false, NULL, y, ldy, accumulate);
    rq_free(xlane);
}


/* RQ_LOWBIT_A16_Q8 (W2U): x quantized to int8 per weight group, then the super-chunk kernel,
 * or (where there is none: g = 32, the scalar level) the float kernels on the dequantized
 * values. */
static void gemm_a16_q8(const rq_lowbit_matrix *w, const float *x, int64_t n_tok, float *y, int64_t ldy,
                        bool accumulate) {
    const int64_t in = w->in, g = rq_lowbit_group(w->type), ng = in / g;
    const rq_lowbit_kernel_set *ks = kernels();
    int8_t *q = rq_xalloc(n_tok * in + 64);
    float *gs = rq_xalloc(n_tok * ng * (int64_t)sizeof(float) + 64);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t b = 0; b < ng; b++)
            gs[t * ng + b] = ks->act_quant(x + t * in + b * g, g, RQ_ACT_Q8_MAX, q + t * in + b * g);
    const rq_lowbit_dot_fn sc = sc_kernel(w);
    if (sc) {
        run_sc(w, sc, q, NULL, gs, n_tok, y, ldy, accumulate);
    } else {
        float *xq = rq_xalloc(n_tok * in * (int64_t)sizeof(float) + 64);
        for (int64_t i = 0; i < n_tok * in; i++) xq[i] = (float)q[i] * gs[i / g];
        gemm_f32(w, xq, n_tok, y, ldy, accumulate);
        rq_free(xq);
    }
    rq_free(gs);
    rq_free(q);
}

void rq_lowbit_gemm_ex(const rq_lowbit_matrix *w, rq_act_kind act, const float *x, int64_t n_tok, float *y, int64_t ldy,
                   bool accumulate) {
    RQ_ASSERT(rq_lowbit_matrix_check(w) == RQ_OK && n_tok >= 0 && ldy >= w->out);
    if (n_tok == 0 || w->out == 0) return;
    if (w->in == 0) {
        zero_rows(y, n_tok, w->out, ldy, accumulate);
        return;
    }
    if (act == RQ_ACT_F32 && g_tuning.a16 == RQ_LOWBIT_A16_Q8 && rq_lowbit_kind_of(w->type) == RQ_LOWBIT_KIND_W2U) {
        gemm_a16_q8(w, x, n_tok, y, ldy, accumulate);
        return;
    }
    if (act == RQ_ACT_F32) {
        gemm_f32(w, x, n_tok, y, ldy, accumulate);
        return;
    }
    RQ_ASSERT(act == RQ_ACT_Q8 || act == RQ_ACT_Q4);
    const int qmax = act == RQ_ACT_Q8 ? RQ_ACT_Q8_MAX : RQ_ACT_Q4_MAX;
    const rq_lowbit_kernel_set *ks = kernels();
    int8_t *q = rq_xalloc(n_tok * w->in + 64);
    float *scale = rq_xalloc(n_tok * (int64_t)sizeof(float));
    for (int64_t t = 0; t < n_tok; t++) scale[t] = ks->act_quant(x + t * w->in, w->in, qmax, q + t * w->in);
    run_int(w, q, scale, n_tok, y, ldy, accumulate);
    rq_free(scale);
    rq_free(q);
}

void rq_lowbit_gemm(const rq_lowbit_matrix *w, rq_act_kind act, const float *x, int64_t n_tok, float *y) {
    rq_lowbit_gemm_ex(w, act, x, n_tok, y, w->out, false);
}

void rq_lowbit_gemm_q(const rq_lowbit_matrix *w, const int8_t *q, const float *scale, int64_t n_tok, float *y) {
    RQ_ASSERT(rq_lowbit_matrix_check(w) == RQ_OK && n_tok >= 0);
    if (n_tok == 0 || w->out == 0) return;
    if (w->in == 0) {
        zero_rows(y, n_tok, w->out, w->out, false);
        return;
    }
    run_int(w, q, scale, n_tok, y, w->out, false);
}

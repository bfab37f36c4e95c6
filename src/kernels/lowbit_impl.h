/* Internal interface between the low-bit GEMV/GEMM driver (gemv.c) and the per-CPU-level
 * kernels (ref/lowbit_ref.c, x86/lowbit_w2_avx2.c, x86/lowbit_w2_avx512.c, and for the 4-bit W4U layout
 * x86/lowbit_w4_avx2.c, x86/lowbit_w4_avx512.c). Not part of the public API.
 *
 * The driver quantizes the activations once per call into an rq_lowbit_act, then for every
 * output row and every tile of up to RQ_LOWBIT_TILE tokens calls one "dot" kernel, which
 * unpacks the row's codes once and uses them for all tokens of the tile (the GEMM's
 * weight reuse), and writes the unscaled dot products; the driver multiplies by each
 * token's activation scale. */
#ifndef RQ_KERNELS_LOWBIT_IMPL_H
#define RQ_KERNELS_LOWBIT_IMPL_H

#include "format/act.h"
#include "format/lowbit.h"

#include <stdint.h>

#define RQ_LOWBIT_TILE 4 /* most tokens one kernel call handles */
/* Bytes ahead of the current block that the kernels prefetch within the row. The
 * driver walks a block of 16 rows in K blocks (gemv.c), so a row is read in segments
 * of ~1 KiB that the hardware stream prefetcher follows poorly; measured on 4096×11008
 * with cold weights: 2.85 -> 2.13 ms (W2U) and 3.13 -> 1.80 ms (W2L), no change elsewhere.
 * The integer kernels prefetch too since they also read the lane sums of the
 * activations (qlane below): 4-token W2U A8 GEMM on 4096², cold, 156-161 -> 142-144 us
 * per token, the same as before the lane sums; the GEMV unchanged. */
#define RQ_LOWBIT_PREFETCH 1024

typedef struct rq_lowbit_act {
    int64_t n_tok, in, group;
    const float *xf;     /* [n_tok, in] input of the float kernels: x itself (F32), or the
                          * integer values q as floats (int activations, LUT "float" method) */
    const int8_t *q;     /* [n_tok, in] integer activations (Q8/Q4), NULL for F32 */
    const int32_t *qsum; /* [n_tok, in/group] Σ q over each weight group, NULL for F32 */
    /* [n_tok, in/group, lanes] the group sums split by the SIMD kernels' 32-bit lanes:
     * lane l of group b holds Σ q_i over the elements i of the group with
     * (i/4) mod lanes = l, the elements whose products vpdpbusd / vpmaddubsw+vpmaddwd
     * add into lane l (4 adjacent bytes per lane, lanes repeating every 4·lanes
     * elements). The integer kernels take the zero point (W2U, W4U: d·(D_l − z·Q_l)) or the
     * lowest level (W2L bit planes: v0·Q_l + ...) per lane, before the lanes are
     * accumulated over the groups, so that every float partial sum stays within the
     * magnitude of the products it sums (Σ|ŵ_i·q_i| over a lane). Summing Σ d·D and
     * Σ d·z·Q separately over the row and subtracting at the end lost up to 2 decimal
     * digits at A8 once the activations have a mean offset: both sums then grow with
     * the row length while their difference does not (tests/test_kernels.c,
     * INT_ACC_REL_TOL). NULL (lanes = 0) for the scalar kernels, which use qsum, and
     * for the LUT float-table method. */
    const float *qlane;
    int lanes;
    /* Float activations, for float kernels that take the zero point out of the group
     * (the kernel set's f32_xlane): [n_tok, in/group, 8], lane l of group b holds Σ x_i
     * over the elements i of the group with i mod 8 = l — the elements that 8-float
     * vectors starting at multiples of 8 put in lane l. The kernel then computes per
     * lane d·(Σ c·x − z·X_l), as the integer kernels do with qlane. NULL otherwise. */
    const float *xlane;
} rq_lowbit_act;

/* out[t] = Σ_{i in groups b0..b1-1} ŵ[row, i] · v[t0 + t, i] for t < nt
 * (1 <= nt <= RQ_LOWBIT_TILE), where v is a->xf (float kernels) or a->q (integer kernels);
 * `row` points at the row's first block (group 0). Integer kernels compute each group's
 * integer sums exactly (see format/act.h) and combine them in float. */
typedef void (*rq_lowbit_dot_fn)(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int nt,
                             int64_t b0, int64_t b1, float *out);

/* Quantizes x [n] to q [n] in [-qmax, qmax]; returns the scale. Same codes as
 * rq_act_quant_ref, bit for bit. */
typedef float (*rq_act_quant_fn)(const float *x, int64_t n, int qmax, int8_t *q);

/* Index of a group size in the tables: 32 -> 0, 64 -> 1, 128 -> 2. */
static inline int rq_lowbit_gidx(int64_t g) { return g == 32 ? 0 : g == 64 ? 1 : 2; }

typedef struct rq_lowbit_kernel_set {
    const char *name;
    /* [rq_lowbit_kind] -> an array [group index] of kernels (pointers, so that a set can
     * take a kind's kernels from another file) */
    const rq_lowbit_dot_fn *f32[RQ_LOWBIT_N_KINDS]; /* float activations */
    bool f32_xlane[RQ_LOWBIT_N_KINDS];          /* those kernels read rq_lowbit_act.xlane */
    const rq_lowbit_dot_fn *i8[RQ_LOWBIT_N_KINDS];  /* integer activations */
    rq_act_quant_fn act_quant;
    int lanes; /* 32-bit lanes of the integer kernels' vectors (rq_lowbit_act.qlane has
                * min(lanes, group/4) per group), 0 if they use qsum instead */
} rq_lowbit_kernel_set;

extern const rq_lowbit_kernel_set rq_lowbit_kernels_ref;
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx2;
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx512;      /* VNNI dot products */
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx512_novnni;

/* The W4U kernels of the x86 levels, [group index] (x86/lowbit_w4_avx2.c, x86/lowbit_w4_avx512.c);
 * the kernel sets above use them as their RQ_LOWBIT_KIND_W4U entries. */
extern const rq_lowbit_dot_fn rq_w4_f32_avx2[3], rq_w4_i8_avx2[3];
extern const rq_lowbit_dot_fn rq_w4_f32_avx512[3], rq_w4_i8_avx512_vnni[3], rq_w4_i8_avx512[3];

#endif

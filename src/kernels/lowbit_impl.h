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
 * per token, the same as before the lane sums; the GEMV unchanged.
 * Session 12 (Intel Xeon, AVX-512 VNNI, one thread, 11008×4096, cold): 1024 -> 4096 bytes
 * took the super-chunk W2U A8 GEMV from 1490-1570 to 1140-1210 us (0.66 -> 0.84-0.97 of a
 * copy), W2L from 2320-2400 to 2070-2100 us and the per-group W2U from 1730 to 1510-1530;
 * 8192 was no better. */
#define RQ_LOWBIT_PREFETCH 4096

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
    /* Super-chunk layout of the integer activations, read by the kernel sets' sc kernels
     * (W2U and W2L at g = 64 and 128; x86/lowbit_w2sc_avx512.c). A super-chunk is 256
     * consecutive elements, whose 64 code bytes (those of 4 groups of 64 or 2 of 128) the
     * kernel loads as four 16-byte pieces, one per 128-bit lane j, and shifts by 2k for
     * k = 0..3, so that each vpdpbusd sees 16 codes of each piece. scq holds the
     * activations in that order: byte e of lane j in step k is element
     * rq_lowbit_sc_elem(g, j, k, e) of the super-chunk (0 past the row's end). Each 32-bit
     * lane then sums the products of one group only, over all 4 steps, so a super-chunk
     * costs one conversion and one scale FMA per lane instead of one per group.
     *   scq [n_tok, ns, 4 k, 64]   ns = ceil(in / 256)
     *   scl [n_tok, ns, 16]        Σ over the 16 elements each 32-bit lane sums (the lane
     *                              sums of qlane, for the zero point or the lowest level)
     *   scs [n_tok, ns, 16]        activation scale of each lane's group (per-group int8
     *                              activations, RQ_LOWBIT_A16_Q8), NULL for one scale per token */
    const int8_t *scq;
    const float *scl, *scs;
    int64_t ns;
} rq_lowbit_act;

#define RQ_LOWBIT_SC 256 /* elements per super-chunk */
/* Element (0..255) of a super-chunk that byte e (0..15) of lane j (0..3) in step k (0..3)
 * multiplies: code byte p = 16j + e of the super-chunk's 64 is byte p % L of group
 * p / L (L = g/4), whose bits 2k..2k+1 hold element k·L + p % L (format/lowbit.h). */
static inline int rq_lowbit_sc_elem(int64_t g, int j, int k, int e) {
    const int L = (int)(g / 4), p = 16 * j + e;
    return (p / L) * (int)g + k * L + p % L;
}

/* out[t] = Σ_{i in groups b0..b1-1} ŵ[row, i] · v[t0 + t, i] for t < nt
 * (1 <= nt <= RQ_LOWBIT_TILE), where v is a->xf (float kernels) or a->q (integer kernels);
 * `row` points at the row's first block (group 0). Integer kernels compute each group's
 * integer sums exactly (see format/act.h) and combine them in float. */
typedef void (*rq_lowbit_dot_fn)(const uint8_t *row, const rq_lowbit_act *a, int64_t t0, int nt,
                             int64_t b0, int64_t b1, float *out);

/* out[r] = Σ_{i in groups b0..b1-1} ŵ[row r, i] · v[t0, i] for r < 4, row r at row + r·row_bytes:
 * the super-chunk kernel over four rows of one token at once (the GEMV of small matrices,
 * where a row is a few super-chunks: one call, one set of activation loads and one final
 * reduction for four rows). */
typedef void (*rq_lowbit_dot4_fn)(const uint8_t *row, int64_t row_bytes, const rq_lowbit_act *a, int64_t t0,
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
    /* integer-activation kernels over super-chunks (rq_lowbit_act.scq), [W2U, W2L] ->
     * [group index], NULL where there is none; b0 is a multiple of 256/g and b1 one or ng */
    const rq_lowbit_dot_fn *sc[2];
    /* their four-row versions for one token, NULL where there are none */
    const rq_lowbit_dot4_fn *sc4[2];
} rq_lowbit_kernel_set;

extern const rq_lowbit_kernel_set rq_lowbit_kernels_ref;
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx2;
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx512;      /* VNNI dot products */
extern const rq_lowbit_kernel_set rq_lowbit_kernels_avx512_novnni;

/* The W4U kernels of the x86 levels, [group index] (x86/lowbit_w4_avx2.c, x86/lowbit_w4_avx512.c);
 * the kernel sets above use them as their RQ_LOWBIT_KIND_W4U entries. */
extern const rq_lowbit_dot_fn rq_w4_f32_avx2[3], rq_w4_i8_avx2[3];
extern const rq_lowbit_dot_fn rq_w4_f32_avx512[3], rq_w4_i8_avx512_vnni[3], rq_w4_i8_avx512[3];
/* The super-chunk W2 kernels (x86/lowbit_w2sc_avx512.c), [W2U, W2L][group index]. */
extern const rq_lowbit_dot_fn rq_w2sc_avx512_vnni[2][3], rq_w2sc_avx512[2][3];
extern const rq_lowbit_dot4_fn rq_w2sc4_avx512_vnni[2][3], rq_w2sc4_avx512[2][3];
extern const rq_lowbit_dot_fn rq_w2sc_avx2[2][3]; /* x86/lowbit_w2sc_avx2.c */
extern const rq_lowbit_dot4_fn rq_w2sc4_avx2[2][3];

#endif

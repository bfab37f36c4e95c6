/* Low-bit (W2U, W2L, W4U) GEMV kernels for one token (rq_cuda.h).
 *
 * Work split: one warp per output row; a row is cut into units of one 4-byte word of
 * codes, i.e. 4 code bytes of one group = 16 weights (for word w of group b: bytes
 * 4w..4w+3, and element k·L + 4w + j sits in bits 2k..2k+1 of byte j, L = g/4, see
 * format/lowbit.h). Lanes take units round-robin, so consecutive lanes read consecutive
 * code words (coalesced) and a row of in = 576 already has 36 units for 32 lanes. Then
 * one warp reduction per row. Every weight byte is read once. A lane issues the loads of
 * 4 units before it uses them (the first version, one unit at a time, kept too few bytes
 * in flight: about 25-35% of the copy bandwidth on an H100; a variant with 4 rows per
 * warp sharing the activation loads was slower still, having 4× fewer warps).
 *
 * W2U × float x: per unit Σ code·x and Σ x (4 float4 loads of x), then d·Σcx − d·z·Σx.
 * W2L × int4 x (RCP's W2A4): the block unpacks the token's int4 row into shared memory
 * as int8 once; per unit, with c = (word >> 2k) & 0x03030303 (4 consecutive codes as
 * bytes) and the 4 matching int8 activations as one int32, four dp4a give
 *   D1 = Σ c·q, D2 = Σ (c >> 1)·q = S2 + S3, D3 = Σ [c = 3]·q = S3, Q = Σ q,
 * hence the exact per-code sums S3 = D3, S2 = D2 − D3, S1 = D1 − 2S2 − 3S3,
 * S0 = Q − S1 − S2 − S3, and the unit adds Σ_k v_k·S_k (float).
 *
 * Second work split ("rows" kernels, R = 4 or 8 rows per block): the block's threads
 * split the units of a row among themselves (split-K) and each thread does its unit for
 * all R rows, so that the activations it loads (64 bytes of floats, or 4 int8 words from
 * shared memory) serve R rows instead of one; the R per-thread sums are reduced by warp
 * shuffles and then across warps in shared memory. Each thread keeps 2R weight loads in
 * flight. rq_cuda_gemv_split_set chooses between the splits (bench_cuda measures all); the
 * default takes the faster per kernel (below). */
#include "kernels/cuda/rq_cuda_impl.h"

#include <cuda_fp16.h>

#define RQ_CUDA_WARPS 8 /* warps per block, one output row each */
#define RQ_CUDA_UNITS 4 /* units a lane loads before it computes (memory-level parallelism) */

static __device__ __forceinline__ float rq_h2f(uint32_t bits) {
    return __half2float(__ushort_as_half((unsigned short)(bits & 0xffff)));
}

static __device__ __forceinline__ float rq_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int G>
__global__ void rq_w2u_gemv_f32_kernel(const uint8_t *__restrict__ w, const float *__restrict__ x,
                                       float *__restrict__ y, int64_t out, int64_t in) {
    constexpr int L = G / 4, WPG = L / 4, BB = RQ_W2U_HEAD + L, U = RQ_CUDA_UNITS;
    const int64_t row = (int64_t)blockIdx.x * RQ_CUDA_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= out) return; /* the whole warp leaves together */
    const int64_t ng = in / G, units = ng * WPG;
    const uint8_t *wr = w + row * ng * BB;
    float acc = 0;
    for (int64_t u0 = lane; u0 < units; u0 += 32 * U) {
        uint32_t head[U], cw[U];
        float4 xv[U][4];
#pragma unroll
        for (int j = 0; j < U; j++) { /* all loads first */
            const int64_t u = u0 + 32 * j;
            if (u < units) {
                const int64_t b = u / WPG;
                const int wi = (int)(u % WPG);
                const uint8_t *blk = wr + b * BB;
                head[j] = __ldg((const unsigned int *)blk); /* d | z << 16 */
                cw[j] = __ldg((const unsigned int *)(blk + RQ_W2U_HEAD + 4 * wi));
                const float *xb = x + b * G + 4 * wi;
#pragma unroll
                for (int k = 0; k < 4; k++) xv[j][k] = __ldg((const float4 *)(xb + k * L));
            } else {
                head[j] = 0; /* d = z = 0: adds nothing */
                cw[j] = 0;
#pragma unroll
                for (int k = 0; k < 4; k++) xv[j][k] = make_float4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int j = 0; j < U; j++) {
            const float d = rq_h2f(head[j]), z = rq_h2f(head[j] >> 16);
            float sc = 0, sx = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const uint32_t c = cw[j] >> (2 * k);
                const float4 v = xv[j][k];
                sc += (float)(c & 3) * v.x + (float)((c >> 8) & 3) * v.y + (float)((c >> 16) & 3) * v.z +
                      (float)((c >> 24) & 3) * v.w;
                sx += (v.x + v.y) + (v.z + v.w);
            }
            acc += d * sc - d * z * sx;
        }
    }
    acc = rq_warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

template <int G>
__global__ void rq_w2l_gemv_a4_kernel(const uint8_t *__restrict__ w, const uint8_t *__restrict__ xq,
                                      float scale, float *__restrict__ y, int64_t out, int64_t in) {
    extern __shared__ int sq_words[]; /* [in / 4]: the token's values as int8 */
    int8_t *sq = (int8_t *)sq_words;
    for (int64_t i = threadIdx.x; i < in / 2; i += blockDim.x) {
        const uint8_t v = xq[i];
        const int64_t c = i >> 4, j = i & 15; /* chunk of 32 values, byte in the chunk */
        sq[32 * c + j] = (int8_t)((v & 15) - 8);
        sq[32 * c + 16 + j] = (int8_t)((v >> 4) - 8);
    }
    __syncthreads();
    constexpr int L = G / 4, WPG = L / 4, BB = RQ_W2L_HEAD + L, U = RQ_CUDA_UNITS;
    const int64_t row = (int64_t)blockIdx.x * RQ_CUDA_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= out) return;
    const int64_t ng = in / G, units = ng * WPG;
    const uint8_t *wr = w + row * ng * BB;
    float acc = 0;
    for (int64_t u0 = lane; u0 < units; u0 += 32 * U) {
        uint2 lv[U];
        uint32_t cw[U];
#pragma unroll
        for (int j = 0; j < U; j++) { /* weight loads first */
            const int64_t u = u0 + 32 * j;
            if (u < units) {
                const int64_t b = u / WPG;
                const int wi = (int)(u % WPG);
                const uint8_t *blk = wr + b * BB;
                lv[j] = __ldg((const uint2 *)blk); /* v0 | v1 << 16, v2 | v3 << 16 */
                cw[j] = __ldg((const unsigned int *)(blk + RQ_W2L_HEAD + 4 * wi));
            } else {
                lv[j] = make_uint2(0, 0); /* all levels 0: adds nothing */
                cw[j] = 0;
            }
        }
#pragma unroll
        for (int j = 0; j < U; j++) {
            const int64_t u = u0 + 32 * j;
            if (u >= units) break;
            const int64_t b = u / WPG;
            const int wi = (int)(u % WPG);
            const int8_t *qb = sq + b * G + 4 * wi;
            int D1 = 0, D2 = 0, D3 = 0, Q = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const uint32_t c = (cw[j] >> (2 * k)) & 0x03030303u;
                const int qv = *(const int *)(qb + k * L);
                D1 = __dp4a((int)c, qv, D1);
                D2 = __dp4a((int)((c >> 1) & 0x01010101u), qv, D2);
                D3 = __dp4a((int)(c & (c >> 1) & 0x01010101u), qv, D3);
                Q = __dp4a(0x01010101, qv, Q);
            }
            const int S3 = D3, S2 = D2 - D3, S1 = D1 - 2 * S2 - 3 * S3, S0 = Q - S1 - S2 - S3;
            acc += rq_h2f(lv[j].x) * (float)S0 + rq_h2f(lv[j].x >> 16) * (float)S1 + rq_h2f(lv[j].y) * (float)S2 +
                   rq_h2f(lv[j].y >> 16) * (float)S3;
        }
    }
    acc = rq_warp_sum(acc);
    if (lane == 0) y[row] = acc * scale;
}

/* ---- the "rows" kernels: R rows per block, the units of a row split over the block */

/* Sums acc[0..R-1] over the block; thread r < R gets the total of row r in *total. */
template <int R>
static __device__ __forceinline__ bool rq_block_sums(float (&acc)[R], float *total) {
    __shared__ float part[R][32]; /* [row][warp], at most 32 warps */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = (blockDim.x + 31) / 32;
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float v = rq_warp_sum(acc[r]);
        if (lane == 0) part[r][warp] = v;
    }
    __syncthreads();
    if ((int)threadIdx.x >= R) return false;
    float t = 0;
    for (int k = 0; k < nw; k++) t += part[threadIdx.x][k];
    *total = t;
    return true;
}

template <int G, int R>
__global__ void rq_w2u_gemv_f32_rows(const uint8_t *__restrict__ w, const float *__restrict__ x,
                                     float *__restrict__ y, int64_t out, int64_t in) {
    constexpr int L = G / 4, WPG = L / 4, BB = RQ_W2U_HEAD + L;
    const int64_t r0 = (int64_t)blockIdx.x * R, ng = in / G, units = ng * WPG, rb = ng * BB;
    const int nr = out - r0 < R ? (int)(out - r0) : R;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
        const int64_t b = u / WPG;
        const int wi = (int)(u % WPG);
        const uint8_t *base = w + r0 * rb + b * BB;
        uint32_t head[R], cw[R];
#pragma unroll
        for (int r = 0; r < R; r++) { /* the weight loads first, all rows */
            if (r < nr) {
                head[r] = __ldg((const unsigned int *)(base + r * rb)); /* d | z << 16 */
                cw[r] = __ldg((const unsigned int *)(base + r * rb + RQ_W2U_HEAD + 4 * wi));
            } else {
                head[r] = 0; /* d = z = 0: adds nothing */
                cw[r] = 0;
            }
        }
        const float *xb = x + b * G + 4 * wi;
        float4 xv[4];
#pragma unroll
        for (int k = 0; k < 4; k++) xv[k] = __ldg((const float4 *)(xb + k * L));
        float sx = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) sx += (xv[k].x + xv[k].y) + (xv[k].z + xv[k].w);
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float d = rq_h2f(head[r]), z = rq_h2f(head[r] >> 16);
            float sc = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const uint32_t c = cw[r] >> (2 * k);
                sc += (float)(c & 3) * xv[k].x + (float)((c >> 8) & 3) * xv[k].y + (float)((c >> 16) & 3) * xv[k].z +
                      (float)((c >> 24) & 3) * xv[k].w;
            }
            acc[r] += d * sc - d * z * sx;
        }
    }
    float t;
    if (rq_block_sums<R>(acc, &t) && (int)threadIdx.x < nr) y[r0 + threadIdx.x] = t;
}

template <int G, int R>
__global__ void rq_w2l_gemv_a4_rows(const uint8_t *__restrict__ w, const uint8_t *__restrict__ xq, float scale,
                                    float *__restrict__ y, int64_t out, int64_t in) {
    extern __shared__ int sq_words[]; /* [in / 4]: the token's values as int8 */
    int8_t *sq = (int8_t *)sq_words;
    for (int64_t i = threadIdx.x; i < in / 2; i += blockDim.x) {
        const uint8_t v = xq[i];
        const int64_t c = i >> 4, j = i & 15;
        sq[32 * c + j] = (int8_t)((v & 15) - 8);
        sq[32 * c + 16 + j] = (int8_t)((v >> 4) - 8);
    }
    __syncthreads();
    constexpr int L = G / 4, WPG = L / 4, BB = RQ_W2L_HEAD + L;
    const int64_t r0 = (int64_t)blockIdx.x * R, ng = in / G, units = ng * WPG, rb = ng * BB;
    const int nr = out - r0 < R ? (int)(out - r0) : R;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
        const int64_t b = u / WPG;
        const int wi = (int)(u % WPG);
        const uint8_t *base = w + r0 * rb + b * BB;
        uint2 lv[R];
        uint32_t cw[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (r < nr) {
                lv[r] = __ldg((const uint2 *)(base + r * rb)); /* v0 | v1 << 16, v2 | v3 << 16 */
                cw[r] = __ldg((const unsigned int *)(base + r * rb + RQ_W2L_HEAD + 4 * wi));
            } else {
                lv[r] = make_uint2(0, 0);
                cw[r] = 0;
            }
        }
        const int8_t *qb = sq + b * G + 4 * wi;
        int qv[4], Q = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            qv[k] = *(const int *)(qb + k * L);
            Q = __dp4a(0x01010101, qv[k], Q);
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
            int D1 = 0, D2 = 0, D3 = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const uint32_t c = (cw[r] >> (2 * k)) & 0x03030303u;
                D1 = __dp4a((int)c, qv[k], D1);
                D2 = __dp4a((int)((c >> 1) & 0x01010101u), qv[k], D2);
                D3 = __dp4a((int)(c & (c >> 1) & 0x01010101u), qv[k], D3);
            }
            const int S3 = D3, S2 = D2 - D3, S1 = D1 - 2 * S2 - 3 * S3, S0 = Q - S1 - S2 - S3;
            acc[r] += rq_h2f(lv[r].x) * (float)S0 + rq_h2f(lv[r].x >> 16) * (float)S1 + rq_h2f(lv[r].y) * (float)S2 +
                      rq_h2f(lv[r].y >> 16) * (float)S3;
        }
    }
    float t;
    if (rq_block_sums<R>(acc, &t) && (int)threadIdx.x < nr) y[r0 + threadIdx.x] = t * scale;
}

/* rq_cuda_gemv_split_set; -1: each kernel's measured best (H100, bench_cuda, g 64 and
 * 128, 4096x4096 .. 11008x4096): W2U A16 8 rows per block (16.9 vs 23.4 us on 11008x4096,
 * 9.2 vs 11.0 on 4096x4096; the same on the 576-wide shapes), W2L A4 one warp per row
 * (15.9 vs 16.4-18.2 us on 11008x4096: its activations already come from shared memory) */
static int g_split = -1;

/* W4U × float x (4-bit uniform, format/lowbit.h): the rows kernel's split with a unit of one
 * 4-byte code word = 8 weights: word w of group b holds elements 4w .. 4w+3 in its low
 * nibbles and L+4w .. L+4w+3 in its high ones (L = g/2); per unit Σ code·x and Σ x from
 * two float4 loads, then d·Σcx − d·z·Σx as for W2U. Always R = 8 rows per block. */
template <int G, int R>
__global__ void rq_w4u_gemv_f32_rows(const uint8_t *__restrict__ w, const float *__restrict__ x,
                                     float *__restrict__ y, int64_t out, int64_t in) {
    constexpr int L = G / 2, WPG = L / 4, BB = RQ_W4U_HEAD + L;
    const int64_t r0 = (int64_t)blockIdx.x * R, ng = in / G, units = ng * WPG, rb = ng * BB;
    const int nr = out - r0 < R ? (int)(out - r0) : R;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
        const int64_t b = u / WPG;
        const int wi = (int)(u % WPG);
        const uint8_t *base = w + r0 * rb + b * BB;
        uint32_t head[R], cw[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (r < nr) {
                head[r] = __ldg((const unsigned int *)(base + r * rb));
                cw[r] = __ldg((const unsigned int *)(base + r * rb + RQ_W4U_HEAD + 4 * wi));
            } else {
                head[r] = 0;
                cw[r] = 0;
            }
        }
        const float *xb = x + b * G + 4 * wi;
        const float4 lo = __ldg((const float4 *)xb), hi = __ldg((const float4 *)(xb + L));
        const float sx = (lo.x + lo.y) + (lo.z + lo.w) + ((hi.x + hi.y) + (hi.z + hi.w));
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float d = rq_h2f(head[r]), z = rq_h2f(head[r] >> 16);
            const uint32_t c = cw[r];
            const float sc = (float)(c & 15) * lo.x + (float)((c >> 8) & 15) * lo.y + (float)((c >> 16) & 15) * lo.z +
                             (float)((c >> 24) & 15) * lo.w + (float)((c >> 4) & 15) * hi.x +
                             (float)((c >> 12) & 15) * hi.y + (float)((c >> 20) & 15) * hi.z + (float)(c >> 28) * hi.w;
            acc[r] += d * sc - d * z * sx;
        }
    }
    float t;
    if (rq_block_sums<R>(acc, &t) && (int)threadIdx.x < nr) y[r0 + threadIdx.x] = t;
}

extern "C" rq_status rq_cuda_gemv_split_set(int rows_per_block) {
    if (rows_per_block != -1 && rows_per_block != 0 && rows_per_block != 4 && rows_per_block != 8)
        return rq_errorf(RQ_EINVAL, "CUDA GEMV split: rows per block must be -1, 0, 4 or 8, not %d", rows_per_block);
    g_split = rows_per_block;
    return RQ_OK;
}

extern "C" int rq_cuda_gemv_split_get(void) { return g_split; }

/* Threads per block of the rows kernels: enough for a row's units, 32 .. 256. */
static unsigned rows_threads(int64_t units) {
    const int64_t t = (units + 31) / 32 * 32;
    return (unsigned)(t < 32 ? 32 : t > 256 ? 256 : t);
}

static rq_status check_shape(int type, bool lut, int64_t out, int64_t in, const void *w, const void *x,
                             const void *y) {
    const int64_t g = rq_lowbit_group(type);
    if (g == 0 || rq_lowbit_kind_of(type) != (lut ? RQ_LOWBIT_KIND_W2L : RQ_LOWBIT_KIND_W2U))
        return rq_errorf(RQ_EINVAL, "CUDA low-bit GEMV: type %s (%d) is not a %s type", rq_type_name(type), type,
                         lut ? "W2L" : "W2U");
    if (out < 0 || in < 0 || in % g != 0 || in > (1LL << 30))
        return rq_errorf(RQ_EINVAL, "CUDA low-bit GEMV: bad shape [%lld, %lld] for group %lld", (long long)out,
                         (long long)in, (long long)g);
    if ((out > 0 && in > 0) && (!w || !x || !y)) return rq_errorf(RQ_EINVAL, "CUDA low-bit GEMV: NULL pointer");
    /* the kernels load W2U heads and code words as 4-byte words, W2L levels as 8 bytes,
     * and float activations as float4 */
    if (((uintptr_t)w & (lut ? 7 : 3)) || ((uintptr_t)x & 15))
        return rq_errorf(RQ_EINVAL, "CUDA low-bit GEMV: weights need %d-byte and activations 16-byte alignment", lut ? 8 : 4);
    return RQ_OK;
}

static unsigned blocks_for(int64_t out) {
    return (unsigned)((out + RQ_CUDA_WARPS - 1) / RQ_CUDA_WARPS);
}

template <int G>
static void launch_w2u(const uint8_t *w, const float *x, float *y, int64_t out, int64_t in) {
    const unsigned th = rows_threads(in / 16);
    const int split = g_split < 0 ? 8 : g_split;
    if (split == 4)
        rq_w2u_gemv_f32_rows<G, 4><<<(unsigned)((out + 3) / 4), th>>>(w, x, y, out, in);
    else if (split == 8)
        rq_w2u_gemv_f32_rows<G, 8><<<(unsigned)((out + 7) / 8), th>>>(w, x, y, out, in);
    else
        rq_w2u_gemv_f32_kernel<G><<<blocks_for(out), 32 * RQ_CUDA_WARPS>>>(w, x, y, out, in);
}

template <int G>
static void launch_w2l(const uint8_t *w, const uint8_t *xq, float scale, float *y, int64_t out, int64_t in) {
    const unsigned th = rows_threads(in / 16);
    const int split = g_split < 0 ? 0 : g_split;
    if (split == 4)
        rq_w2l_gemv_a4_rows<G, 4><<<(unsigned)((out + 3) / 4), th, (size_t)in>>>(w, xq, scale, y, out, in);
    else if (split == 8)
        rq_w2l_gemv_a4_rows<G, 8><<<(unsigned)((out + 7) / 8), th, (size_t)in>>>(w, xq, scale, y, out, in);
    else
        rq_w2l_gemv_a4_kernel<G><<<blocks_for(out), 32 * RQ_CUDA_WARPS, (size_t)in>>>(w, xq, scale, y, out, in);
}

extern "C" rq_status rq_cuda_w2u_gemv_f32(int type, int64_t out, int64_t in, const void *w_dev,
                                          const float *x_dev, float *y_dev) {
    RQ_TRY(check_shape(type, false, out, in, w_dev, x_dev, y_dev));
    if (out == 0) return RQ_OK;
    const uint8_t *w = (const uint8_t *)w_dev;
    switch (rq_lowbit_group(type)) {
    case 32: launch_w2u<32>(w, x_dev, y_dev, out, in); break;
    case 64: launch_w2u<64>(w, x_dev, y_dev, out, in); break;
    default: launch_w2u<128>(w, x_dev, y_dev, out, in); break;
    }
    RQ_CUDA_LAUNCHED();
    return RQ_OK;
}

extern "C" rq_status rq_cuda_w4u_gemv_f32(int type, int64_t out, int64_t in, const void *w_dev,
                                          const float *x_dev, float *y_dev) {
    const int64_t g = rq_lowbit_group(type);
    if (g == 0 || rq_lowbit_kind_of(type) != RQ_LOWBIT_KIND_W4U)
        return rq_errorf(RQ_EINVAL, "CUDA W4U GEMV: type %s (%d) is not a W4U type", rq_type_name(type), type);
    if (out < 0 || in < 0 || in % g != 0 || in > (1LL << 30))
        return rq_errorf(RQ_EINVAL, "CUDA W4U GEMV: bad shape [%lld, %lld] for group %lld", (long long)out,
                         (long long)in, (long long)g);
    if ((out > 0 && in > 0) && (!w_dev || !x_dev || !y_dev)) return rq_errorf(RQ_EINVAL, "CUDA W4U GEMV: NULL pointer");
    if (((uintptr_t)w_dev & 3) || ((uintptr_t)x_dev & 15))
        return rq_errorf(RQ_EINVAL, "CUDA W4U GEMV: weights need 4-byte and activations 16-byte alignment");
    if (out == 0) return RQ_OK;
    const uint8_t *w = (const uint8_t *)w_dev;
    const unsigned th = rows_threads(in / 8), nb = (unsigned)((out + 7) / 8);
    switch (g) {
    case 32: rq_w4u_gemv_f32_rows<32, 8><<<nb, th>>>(w, x_dev, y_dev, out, in); break;
    case 64: rq_w4u_gemv_f32_rows<64, 8><<<nb, th>>>(w, x_dev, y_dev, out, in); break;
    default: rq_w4u_gemv_f32_rows<128, 8><<<nb, th>>>(w, x_dev, y_dev, out, in); break;
    }
    RQ_CUDA_LAUNCHED();
    return RQ_OK;
}

extern "C" rq_status rq_cuda_w2l_gemv_a4(int type, int64_t out, int64_t in, const void *w_dev,
                                         const rq_block_a4 *xq_dev, float scale, float *y_dev) {
    RQ_TRY(check_shape(type, true, out, in, w_dev, xq_dev, y_dev));
    if (out == 0) return RQ_OK;
    if (in > 48 * 1024) return rq_errorf(RQ_EINVAL, "CUDA W2A4 GEMV: in = %lld above 49152", (long long)in);
    const uint8_t *w = (const uint8_t *)w_dev, *xq = (const uint8_t *)xq_dev;
    switch (rq_lowbit_group(type)) {
    case 32: launch_w2l<32>(w, xq, scale, y_dev, out, in); break;
    case 64: launch_w2l<64>(w, xq, scale, y_dev, out, in); break;
    default: launch_w2l<128>(w, xq, scale, y_dev, out, in); break;
    }
    RQ_CUDA_LAUNCHED();
    return RQ_OK;
}

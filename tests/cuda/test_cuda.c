/* Tests of the CUDA kernels (src/kernels/cuda/rq_cuda.h) against the CPU scalar
 * references: W2U GEMV with float activations against rq_lowbit_gemm (RQ_ACT_F32, scalar
 * level), W2L GEMV with packed int4 activations against rq_lowbit_gemm_q on the unpacked
 * values (scalar level), and the FWHT against a float64 transform written here, on odd
 * shapes (out = 37 and 1, in = 1 / 5 / 9 groups; out = 1037, 4097 and 4099, which leave
 * partial warps / blocks) and the model shapes, for each work split of the GEMVs.
 * Without a CUDA device it prints "SKIPPED: no CUDA device" and exits 77. */
#include "testing.h"

#include "base/cpu.h"
#include "base/rng.h"
#include "base/status.h"
#include "format/act.h"
#include "format/lowbit.h"
#include "kernels/cuda/rq_cuda.h"
#include "kernels/gemv.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The GPU sums the same products as the CPU reference in another order (and W2U as
 * d·Σcx − d·z·Σx with FMAs); both are within γ_n·M of the exact value (n = in + a few
 * terms, M = Σ|terms|), so they differ by at most 2γ_n·M, with M bounded by
 * Σ_i m_i·|x_i|, m_i the largest |value| the element's group dequantizes to (times 2 for
 * the split into Σcx and Σx). A wrong code changes a result by about M/in. */
static double gemv_tol(double M, int64_t in) { return 2.0 * 2.0 * (double)(in + 8) * FLT_EPSILON * M; }
/* FWHT: every output is a ±sum of n inputs through log2(n) roundings per path; error
 * bound log2(n)·ε·Σ|x| per output (times 2 for two implementations). */
static double fwht_tol(double sum_abs, int64_t n) {
    int lg = 0;
    while ((1LL << lg) < n) lg++;
    return 2.0 * (lg + 1) * FLT_EPSILON * sum_abs;
}

#define CUDA_OK(call)                                                                    \
    do {                                                                                 \
        rq_status s_ = (call);                                                           \
        if (s_ != RQ_OK) {                                                               \
            rq_test_fail(__FILE__, __LINE__, "%s: %s", #call, rq_last_error());           \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define CUDA_OK_MAIN(call)                                                               \
    do {                                                                                 \
        rq_status s_ = (call);                                                           \
        if (s_ != RQ_OK) {                                                               \
            rq_test_fail(__FILE__, __LINE__, "%s: %s", #call, rq_last_error());           \
            return rq_test_finish();                                                     \
        }                                                                                \
    } while (0)

static void make_weights(rq_rng *r, int type, int64_t out, int64_t in, void *blocks, float *mbound) {
    const int64_t g = rq_lowbit_group(type), ng = in / g;
    const int np = rq_lowbit_n_param(type);
    const bool w4 = rq_lowbit_kind_of(type) == RQ_LOWBIT_KIND_W4U;
    const int levels = w4 ? 16 : 4;
    uint8_t *codes = rq_xalloc(out * in);
    float *params = rq_xalloc(out * ng * np * 4);
    for (int64_t i = 0; i < out * in; i++) codes[i] = (uint8_t)rq_rng_below(r, (uint64_t)levels);
    for (int64_t b = 0; b < out * ng; b++) {
        float *p = params + b * np;
        if (rq_lowbit_is_lut(type)) {
            for (int k = 0; k < 4; k++) p[k] = rq_fp16_to_fp32(rq_fp32_to_fp16((float)(0.2 * (rq_rng_uniform(r) - 0.5))));
            mbound[b] = fmaxf(fmaxf(fabsf(p[0]), fabsf(p[1])), fmaxf(fabsf(p[2]), fabsf(p[3])));
        } else {
            p[0] = rq_fp16_to_fp32(rq_fp32_to_fp16((float)(0.005 + 0.1 * rq_rng_uniform(r))));
            p[1] = (float)rq_rng_below(r, (uint64_t)levels);
            mbound[b] = p[0] * ((float)(levels - 1) + p[1]);
        }
    }
    rq_lowbit_pack(type, out, in, codes, params, blocks);
    rq_free(codes);
    rq_free(params);
}

static void test_gemv(rq_rng *r, int type, int64_t out, int64_t in) {
    const bool lut = rq_lowbit_is_lut(type);
    const int64_t g = rq_lowbit_group(type), ng = in / g;
    int64_t rb = 0;
    RQ_ASSERT(rq_type_row_bytes(type, in, &rb));
    void *blocks = rq_xalloc(out * rb + 8);
    float *mb = rq_xalloc(out * ng * 4);
    make_weights(r, type, out, in, blocks, mb);
    float *x = rq_xalloc(in * 4), *y_ref = rq_xalloc(out * 4), *y_gpu = rq_xalloc(out * 4);
    for (int64_t i = 0; i < in; i++) x[i] = (float)(rq_rng_normal(r) * (i % 17 == 0 ? 6.0 : 1.0));
    int8_t *q = rq_xalloc(in);
    rq_block_a4 *xq = rq_xalloc(in / 2 + 16);
    float a = 1;
    rq_lowbit_matrix w = {.type = type, .out = out, .in = in, .data = blocks};
    rq_cpu_set_level(RQ_CPU_SCALAR);
    if (lut) {
        a = rq_act_quant_ref(x, in, RQ_ACT_Q4_MAX, q);
        rq_act_q4_pack(q, in, xq);
        rq_lowbit_gemm_q(&w, q, &a, 1, y_ref);
    } else {
        rq_lowbit_gemm(&w, RQ_ACT_F32, x, 1, y_ref);
    }
    rq_cpu_set_level(rq_cpu_max_level());

    void *w_dev = NULL, *x_dev = NULL, *y_dev = NULL;
    CUDA_OK(rq_cuda_malloc(&w_dev, out * rb));
    CUDA_OK(rq_cuda_malloc(&x_dev, in * 4));
    CUDA_OK(rq_cuda_malloc(&y_dev, out * 4));
    CUDA_OK(rq_cuda_upload(w_dev, blocks, out * rb));
    if (lut) {
        CUDA_OK(rq_cuda_upload(x_dev, xq, in / 2));
        CUDA_OK(rq_cuda_w2l_gemv_a4(type, out, in, w_dev, x_dev, a, y_dev));
    } else {
        CUDA_OK(rq_cuda_upload(x_dev, x, in * 4));
        if (rq_lowbit_kind_of(type) == RQ_LOWBIT_KIND_W4U) CUDA_OK(rq_cuda_w4u_gemv_f32(type, out, in, w_dev, x_dev, y_dev));
        else CUDA_OK(rq_cuda_w2u_gemv_f32(type, out, in, w_dev, x_dev, y_dev));
    }
    CUDA_OK(rq_cuda_sync());
    CUDA_OK(rq_cuda_download(y_gpu, y_dev, out * 4));
    int bad = 0;
    double worst = 0;
    for (int64_t o = 0; o < out; o++) {
        double M = 0;
        for (int64_t i = 0; i < in; i++) M += mb[o * ng + i / g] * (lut ? a * fabs((double)q[i]) : fabs((double)x[i]));
        const double err = fabs((double)y_gpu[o] - y_ref[o]);
        if (!(err <= gemv_tol(M, in))) bad++;
        if (err > worst) worst = err;
    }
    RQ_CHECK_MSG(bad == 0, "%s out %lld in %lld: %d of %lld rows off the CPU reference (worst %g)", rq_type_name(type),
                 (long long)out, (long long)in, bad, (long long)out, worst);
    rq_cuda_free(w_dev);
    rq_cuda_free(x_dev);
    rq_cuda_free(y_dev);
    rq_free(blocks);
    rq_free(mb);
    rq_free(x);
    rq_free(y_ref);
    rq_free(y_gpu);
    rq_free(q);
    rq_free(xq);
}

static void test_fwht(rq_rng *r, int64_t rows, int64_t n) {
    float *x = rq_xalloc(rows * n * 4), *y = rq_xalloc(rows * n * 4);
    double *ref = rq_xalloc(rows * n * 8);
    for (int64_t i = 0; i < rows * n; i++) x[i] = (float)rq_rng_normal(r);
    const float scale = (float)(1.0 / sqrt((double)n));
    /* float64 reference: the same butterflies in double */
    for (int64_t i = 0; i < rows * n; i++) ref[i] = x[i];
    for (int64_t rr = 0; rr < rows; rr++) {
        double *v = ref + rr * n;
        for (int64_t h = 1; h < n; h <<= 1)
            for (int64_t i = 0; i < n; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    const double a = v[j], b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
        for (int64_t i = 0; i < n; i++) v[i] *= scale;
    }
    /* and for a small n, the definition: y_j = scale · Σ_i x_i (−1)^popcount(i & j) */
    if (n <= 64) {
        int bad_def = 0;
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += (__builtin_popcountll((unsigned long long)(i & j)) & 1 ? -1.0 : 1.0) * x[i];
            bad_def += fabs(s * scale - ref[j]) > 1e-12 * (1 + fabs(s));
        }
        RQ_CHECK(bad_def == 0);
    }
    void *x_dev = NULL;
    CUDA_OK(rq_cuda_malloc(&x_dev, rows * n * 4));
    CUDA_OK(rq_cuda_upload(x_dev, x, rows * n * 4));
    CUDA_OK(rq_cuda_fwht(x_dev, rows, n, scale));
    CUDA_OK(rq_cuda_sync());
    CUDA_OK(rq_cuda_download(y, x_dev, rows * n * 4));
    int bad = 0;
    for (int64_t rr = 0; rr < rows; rr++) {
        double sa = 0;
        for (int64_t i = 0; i < n; i++) sa += fabs(x[rr * n + i]);
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(y[rr * n + i] - ref[rr * n + i]) <= fwht_tol(sa * scale, n))) bad++;
    }
    RQ_CHECK_MSG(bad == 0, "FWHT rows %lld n %lld: %d values off", (long long)rows, (long long)n, bad);
    rq_cuda_free(x_dev);
    rq_free(x);
    rq_free(y);
    rq_free(ref);
}

int main(void) {
    if (rq_cuda_device_count() == 0) RQ_SKIP("no CUDA device");
    char name[256];
    if (rq_cuda_device_name(name, sizeof name) == RQ_OK) printf("device: %s\n", name);
    rq_rng r;
    rq_rng_seed(&r, 21);
    static const int64_t groups[] = {32, 64, 128};
    /* every work split (one warp per row; 4 or 8 rows per block, split-K) */
    static const int splits[] = {0, 4, 8};
    for (int si = 0; si < 3; si++) {
        CUDA_OK_MAIN(rq_cuda_gemv_split_set(splits[si]));
        for (int gi = 0; gi < 3; gi++)
            for (int lut = 0; lut < 2; lut++) {
                const int type = rq_lowbit_type(lut, groups[gi]);
                test_gemv(&r, type, 37, groups[gi] * 5);
                test_gemv(&r, type, 1, groups[gi]);
                test_gemv(&r, type, 37, groups[gi] * 9);
                test_gemv(&r, type, 576, 576 % groups[gi] == 0 ? 576 : 512);
            }
        /* rows left over in the last warp / block; units not a multiple of the threads */
        test_gemv(&r, RQ_TYPE_W2U_G32, 1037, 160);
        test_gemv(&r, RQ_TYPE_W2L_G128, 1037, 384);
        test_gemv(&r, RQ_TYPE_W2U_G128, 4099, 256);
        test_gemv(&r, RQ_TYPE_W2L_G64, 4099, 192);
        test_gemv(&r, RQ_TYPE_W2U_G64, 4096, 4096);
        test_gemv(&r, RQ_TYPE_W2U_G32, 4097, 11008);
        test_gemv(&r, RQ_TYPE_W2L_G64, 4096, 11008);
        test_gemv(&r, RQ_TYPE_W2L_G128, 11008, 4096);
    }
    /* W4U (4-bit uniform, float activations): odd shapes, partial blocks, model shapes */
    for (int gi = 0; gi < 3; gi++) {
        const int type = rq_lowbit_kind_type(RQ_LOWBIT_KIND_W4U, groups[gi]);
        test_gemv(&r, type, 37, groups[gi] * 5);
        test_gemv(&r, type, 1, groups[gi]);
        test_gemv(&r, type, 13, groups[gi] * 9);
        test_gemv(&r, type, 576, 576 % groups[gi] == 0 ? 576 : 512);
    }
    test_gemv(&r, RQ_TYPE_W4U_G64, 4097, 1536);
    test_gemv(&r, RQ_TYPE_W4U_G128, 4096, 11008 / 128 * 128);
    RQ_CHECK(rq_cuda_w4u_gemv_f32(RQ_TYPE_W2U_G64, 1, 64, NULL, NULL, NULL) == RQ_EINVAL);
    RQ_CHECK(rq_cuda_gemv_split_set(3) == RQ_EINVAL);
    CUDA_OK_MAIN(rq_cuda_gemv_split_set(-1));
    static const int64_t ns[] = {1, 2, 8, 64, 512, 4096, 16384, 32768};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) test_fwht(&r, i % 2 ? 3 : 5, ns[i]);
    /* argument checks */
    RQ_CHECK(rq_cuda_fwht(NULL, 1, 48, 1.0f) == RQ_EINVAL);
    RQ_CHECK(rq_cuda_w2u_gemv_f32(RQ_TYPE_W2L_G64, 1, 64, NULL, NULL, NULL) == RQ_EINVAL);
    return rq_test_finish();
}

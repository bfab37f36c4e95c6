/* Q8_0 GEMV (kernels/qgemv.h) timings beside float32 cblas_sgemv of the same shape and a
 * read-only pass over the Q8_0 bytes, and the int8-activation GEMV (x quantized per 32-block,
 * as under --a16 q8), one thread, weights cold (cycling over copies that
 * exceed 256 MiB). Default shape: SmolLM2-135M's lm_head, 49152 x 576.
 *   bench_qgemv [-o out] [-i in] [-s seconds per figure] */
#include "base/cpu.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "format/act.h"
#include "format/format.h"
#include "kernels/qgemv.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLD_BYTES (256LL << 20)

typedef void (*gemv_fn)(const void *w, int64_t out, int64_t in, const float *x, float *y);

static double time_fn(gemv_fn f, void **w, int k, int64_t out, int64_t in, const float *x, float *y, double secs) {
    double best = 1e9, t_end = rq_time_now() + secs;
    int i = 0;
    do {
        double t = rq_time_now();
        f(w[i++ % k], out, in, x, y);
        t = rq_time_now() - t;
        best = t < best ? t : best;
    } while (rq_time_now() < t_end);
    return best;
}

static void sgemv_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)out, (int)in, 1.0f, w, (int)in, x, 1, 0.0f, y, 1);
}

static uint64_t g_sink;
static void read_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    const int64_t n = out * (in / 32) * 34;
    const uint8_t *p = w;
    __m256i acc = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)(p + i));
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)(p + i + 32));
        const __m256i a2 = _mm256_loadu_si256((const __m256i *)(p + i + 64));
        const __m256i a3 = _mm256_loadu_si256((const __m256i *)(p + i + 96));
        acc = _mm256_add_epi64(acc, _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)));
    }
    g_sink += (uint64_t)_mm256_extract_epi64(acc, 0);
}

/* The int8-activation GEMVs on x quantized per 32-block (set up in main). */
static int8_t *g_xq;
static float *g_xd;
static int32_t *g_xs;
static void r16_ref_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_r16_gemv_q8_ref(w, out, in, g_xq, g_xd, g_xs, y);
}
static void r16_avx2_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_r16_gemv_q8_avx2(w, out, in, g_xq, g_xd, g_xs, y);
}
static void r16_avx512_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_r16_gemv_q8_avx512(w, out, in, g_xq, g_xd, g_xs, y);
}
static void q8_ref_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_gemv_q8_ref(w, out, in, g_xq, g_xd, y);
}
static void q8_avx2_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_gemv_q8_avx2(w, out, in, g_xq, g_xd, y);
}
static void q8_avx512_fn(const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)x;
    rq_q8_0_gemv_q8_avx512(w, out, in, g_xq, g_xd, y);
}

int main(int argc, char **argv) {
    int64_t out = 49152, in = 576;
    double secs = 0.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-o")) out = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-i")) in = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) secs = atof(argv[i + 1]);
    }
    if (in % 32 || out < 1) {
        fprintf(stderr, "in must be a multiple of 32\n");
        return 1;
    }
    openblas_set_num_threads(1);
    const int64_t qbytes = out * (in / 32) * 34, fbytes = out * in * 4;
    rq_rng r;
    rq_rng_seed(&r, 3);
    float *x = rq_xalloc(in * 4), *y = rq_xalloc(out * 4), *wf = rq_xalloc(fbytes);
    for (int64_t i = 0; i < in; i++) x[i] = (float)rq_rng_normal(&r);
    g_xq = rq_xalloc(in);
    g_xd = rq_xalloc(in / 32 * 4);
    g_xs = rq_xalloc(in / 32 * 4);
    for (int64_t b = 0; b < in / 32; b++) {
        g_xd[b] = rq_act_quant_ref(x + b * 32, 32, 127, g_xq + b * 32);
        g_xs[b] = 0;
        for (int i = 0; i < 32; i++) g_xs[b] += g_xq[b * 32 + i];
    }
    for (int64_t i = 0; i < out * in; i++) wf[i] = (float)rq_rng_normal(&r);
    int kq = (int)(COLD_BYTES / qbytes) + 1, kf = (int)(COLD_BYTES / fbytes) + 1;
    void **wq = rq_xalloc(kq * (int64_t)sizeof(void *)), **wfs = rq_xalloc(kf * (int64_t)sizeof(void *));
    for (int k = 0; k < kq; k++) {
        wq[k] = rq_xalloc(qbytes);
        for (int64_t row = 0; row < out; row++)
            rq_quant_q8_0_ref(wf + row * in, (rq_block_q8_0 *)((uint8_t *)wq[k] + row * (in / 32) * 34), in);
    }
    void **wr = rq_xalloc(kq * (int64_t)sizeof(void *));
    for (int k = 0; k < kq; k++) {
        wr[k] = rq_xalloc(qbytes);
        if (out % RQ_Q8R16_ROWS == 0) rq_q8_0_r16_pack(wq[k], out, in, wr[k]);
    }
    for (int k = 0; k < kf; k++) {
        wfs[k] = rq_xalloc(fbytes);
        memcpy(wfs[k], wf, (size_t)fbytes);
    }
    printf("bench_qgemv: %lld x %lld, 1 thread, weights cold; Q8_0 %.1f MiB, float %.1f MiB\n", (long long)out,
           (long long)in, qbytes / 1048576.0, fbytes / 1048576.0);
    printf("%-22s %10s %10s %10s\n", "kernel", "us", "GB/s", "Gw/s");
    struct { const char *name; gemv_fn f; bool flt; int level; } ks[] = {
        {"f32 cblas_sgemv", sgemv_fn, true, 0},
        {"read Q8_0 bytes", read_fn, false, 0},
        {"Q8_0 ref", rq_q8_0_gemv_ref, false, 0},
        {"Q8_0 avx2", rq_q8_0_gemv_avx2, false, RQ_CPU_AVX2},
        {"Q8_0 avx512", rq_q8_0_gemv_avx512, false, RQ_CPU_AVX512},
        {"Q8_0 x int8 ref", q8_ref_fn, false, 0},
        {"Q8_0 x int8 avx2", q8_avx2_fn, false, RQ_CPU_AVX2},
        {"Q8_0 x int8 avx512", q8_avx512_fn, false, RQ_CPU_AVX512},
        {"R16 x int8 ref", r16_ref_fn, false, 0},
        {"R16 x int8 avx2", r16_avx2_fn, false, RQ_CPU_AVX2},
        {"R16 x int8 avx512", r16_avx512_fn, false, RQ_CPU_AVX512},
    };
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        if ((int)rq_cpu_max_level() < ks[i].level) continue;
        if ((ks[i].f == q8_avx512_fn || ks[i].f == r16_avx512_fn) && !rq_cpu_features_get()->avx512vnni) continue;
        const bool r16 = ks[i].f == r16_ref_fn || ks[i].f == r16_avx2_fn || ks[i].f == r16_avx512_fn;
        if (r16 && out % RQ_Q8R16_ROWS) continue;
        double t = ks[i].flt ? time_fn(ks[i].f, wfs, kf, out, in, x, y, secs)
                             : time_fn(ks[i].f, r16 ? wr : wq, kq, out, in, x, y, secs);
        printf("%-22s %10.1f %10.2f %10.2f\n", ks[i].name, t * 1e6, (ks[i].flt ? fbytes : qbytes) / t * 1e-9,
               out * in / t * 1e-9);
    }
    return 0;
}

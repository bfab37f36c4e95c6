/* W2U / W2L / W4U GEMV / GEMM timings beside the memory-bandwidth roofline, measured in
 * the same run.
 *
 *   bench_kernels [-t threads] [-g group] [-s seconds per figure] [-b batch] [-hot]
 *
 * For each shape (out × in) it times one GEMV (decode) of: float32 cblas_sgemv
 * (OpenBLAS, same thread count), W2U / W2L with float, int8 and int4 activations
 * (W2L int8 also with the bit-plane method), and W4U (4-bit uniform) with float, int8 and
 * int4 activations. GB/s counts the weight bytes read per call.
 * Beside each: a plain multithreaded memcpy of the same number of bytes (GB/s = bytes
 * read + written per second, as STREAM counts a copy) and a read-only pass over them
 * (the ceiling a GEMV could reach), and the kernel's ratio to each.
 * Weights are "cold" by default: the benchmark cycles through enough copies of the
 * matrix (and of the copy buffers) to exceed 256 MiB, far above the L3 cache, as in
 * decoding a model whose weights do not fit in cache; -hot reuses one copy.
 * A second table times a GEMM of -b tokens (prefill) per token, with weight rows
 * unpacked once per tile of 4 tokens and, for comparison, once per token. */
#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "format/lowbit.h"
#include "kernels/gemv.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLD_BYTES (256LL << 20)

static double g_seconds = 0.3;
static bool g_hot = false;

/* ------------------------------------------------------------ roofline */

typedef struct { uint8_t *dst; const uint8_t *src; int64_t n; uint64_t sum[256]; } mem_job;

static void copy_part(void *ctx, int64_t b, int64_t e, int thread) {
    mem_job *j = ctx;
    const int64_t chunk = (j->n + 63) / 64;
    for (int64_t c = b; c < e; c++) {
        const int64_t lo = c * chunk, hi = lo + chunk < j->n ? lo + chunk : j->n;
        if (hi > lo) memcpy(j->dst + lo, j->src + lo, (size_t)(hi - lo));
    }
}

static void read_part(void *ctx, int64_t b, int64_t e, int thread) {
    mem_job *j = ctx;
    const int64_t chunk = ((j->n + 63) / 64 + 31) & ~31LL;
    __m256i acc = _mm256_setzero_si256();
    for (int64_t c = b; c < e; c++) {
        const int64_t lo = c * chunk, hi = lo + chunk < j->n ? lo + chunk : j->n;
        int64_t i = lo;
        for (; i + 128 <= hi; i += 128) {
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(j->src + i));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(j->src + i + 32));
            const __m256i a2 = _mm256_loadu_si256((const __m256i *)(j->src + i + 64));
            const __m256i a3 = _mm256_loadu_si256((const __m256i *)(j->src + i + 96));
            acc = _mm256_add_epi64(acc, _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)));
        }
        for (; i < hi; i++) j->sum[thread] += j->src[i];
    }
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, acc);
    j->sum[thread] += t[0] + t[1] + t[2] + t[3];
}

/* Copies needed to exceed COLD_BYTES (1 when hot). */
static int n_copies(int64_t bytes) {
    if (g_hot) return 1;
    int64_t k = COLD_BYTES / (bytes > 0 ? bytes : 1) + 1;
    return (int)(k < 2 ? 2 : k > 4096 ? 4096 : k);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds per call of fn(ctx, i), cycling i over k copies, for about g_seconds: the
 * fastest call (the machine is shared, so slower calls mostly measure other processes
 * taking the cores) and, in *median, the median call. */
static double time_calls(void (*fn)(void *, int), void *ctx, int k, double *median) {
    for (int i = 0; i < k; i++) fn(ctx, i); /* warm up (page faults, pool start) */
    enum { MAX_CALLS = 100000 };
    static double t[MAX_CALLS];
    int64_t calls = 0;
    const double start = rq_time_now();
    do {
        const double t0 = rq_time_now();
        fn(ctx, (int)(calls % k));
        t[calls] = rq_time_now() - t0;
        calls++;
    } while ((rq_time_now() - start < g_seconds || calls < 5) && calls < MAX_CALLS);
    double best = t[0];
    for (int64_t i = 1; i < calls; i++) best = t[i] < best ? t[i] : best;
    if (median) {
        qsort(t, (size_t)calls, sizeof t[0], cmp_double);
        *median = t[calls / 2];
    }
    return best;
}

typedef struct { uint8_t **bufs; int k; int64_t n; bool read_only; uint64_t sink; } roof_ctx;

static void roof_call(void *ctx, int i) {
    roof_ctx *c = ctx;
    mem_job j = {.n = c->n};
    /* the destination is the buffer read k/2 calls later, long evicted by then, so that
     * neither side of the copy is cache-hot */
    j.src = c->bufs[i];
    j.dst = c->bufs[(i + c->k / 2) % c->k];
    if (c->read_only) {
        rq_parallel_for(64, 1, read_part, &j);
        for (int t = 0; t < 256; t++) c->sink += j.sum[t];
    } else {
        rq_parallel_for(64, 1, copy_part, &j);
    }
}

/* copy GB/s (read + write) and read GB/s for a buffer of n bytes (the last result is
 * reused for the same n) */
static void roofline(int64_t n, double *copy_gbs, double *read_gbs) {
    static int64_t last_n = -1;
    static double last_copy, last_read;
    if (n == last_n) {
        *copy_gbs = last_copy;
        *read_gbs = last_read;
        return;
    }
    roof_ctx c = {.n = n};
    c.k = n_copies(n) + 1;
    c.bufs = rq_xalloc(c.k * (int64_t)sizeof(uint8_t *));
    for (int i = 0; i < c.k; i++) {
        c.bufs[i] = rq_xalloc(n + 64);
        memset(c.bufs[i], i, (size_t)n);
    }
    c.read_only = false;
    *copy_gbs = 2.0 * (double)n / time_calls(roof_call, &c, c.k - 1, NULL) / 1e9;
    c.read_only = true;
    *read_gbs = (double)n / time_calls(roof_call, &c, c.k - 1, NULL) / 1e9;
    if (c.sink == 42) printf(" ");
    for (int i = 0; i < c.k; i++) rq_free(c.bufs[i]);
    rq_free(c.bufs);
    last_n = n;
    last_copy = *copy_gbs;
    last_read = *read_gbs;
}

/* ------------------------------------------------------------ kernels */

typedef struct {
    int type; /* -1: float32 sgemv */
    rq_act_kind act;
    int64_t out, in, n_tok;
    void **w; /* [k] copies */
    const float *x;
    float *y;
} gemv_ctx;

static void gemv_call(void *ctx, int i) {
    gemv_ctx *c = ctx;
    if (c->type < 0) {
        if (c->n_tok == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)c->out, (int)c->in, 1.0f, c->w[i], (int)c->in, c->x, 1, 0.0f, c->y, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->n_tok, (int)c->out, (int)c->in, 1.0f, c->x, (int)c->in,
                        c->w[i], (int)c->in, 0.0f, c->y, (int)c->out);
        return;
    }
    rq_lowbit_matrix m = {.type = c->type, .out = c->out, .in = c->in, .data = c->w[i]};
    rq_lowbit_gemm(&m, c->act, c->x, c->n_tok, c->y);
}

/* Random matrix of `type` (or float32): k copies of `bytes` bytes each. */
static void **make_weights(rq_rng *r, int type, int64_t out, int64_t in, int k, int64_t *bytes) {
    void **w = rq_xalloc(k * (int64_t)sizeof(void *));
    if (type < 0) {
        *bytes = out * in * 4;
        float *f = rq_xalloc(*bytes);
        for (int64_t j = 0; j < out * in; j++) f[j] = (float)(rq_rng_uniform(r) - 0.5);
        w[0] = f;
        for (int i = 1; i < k; i++) {
            w[i] = rq_xalloc(*bytes);
            memcpy(w[i], f, (size_t)*bytes);
        }
        return w;
    }
    int64_t rb = 0;
    RQ_ASSERT(rq_type_row_bytes(type, in, &rb));
    *bytes = out * rb;
    const int64_t g = rq_lowbit_group(type), ng = in / g;
    uint8_t *codes = rq_xalloc(out * in);
    float *params = rq_xalloc(out * ng * 16);
    const uint64_t nc = 1u << rq_lowbit_bits(type);
    for (int64_t j = 0; j < out * in; j++) codes[j] = (uint8_t)rq_rng_below(r, nc);
    for (int64_t j = 0; j < out * ng; j++) {
        float *p = params + j * rq_lowbit_n_param(type);
        if (rq_lowbit_is_lut(type)) { p[0] = -0.03f; p[1] = -0.01f; p[2] = 0.01f; p[3] = 0.03f; }
        else { p[0] = 0.01f + 0.01f * (float)rq_rng_uniform(r); p[1] = (float)rq_rng_below(r, nc); }
    }
    w[0] = rq_xalloc(*bytes);
    rq_lowbit_pack(type, out, in, codes, params, w[0]);
    for (int i = 1; i < k; i++) {
        w[i] = rq_xalloc(*bytes);
        memcpy(w[i], w[0], (size_t)*bytes);
    }
    rq_free(codes);
    rq_free(params);
    return w;
}

static void free_weights(void **w, int k) {
    for (int i = 0; i < k; i++) rq_free(w[i]);
    rq_free(w);
}

/* Times one kernel; returns seconds per call and the weight bytes. */
static double time_kernel(rq_rng *r, int type, rq_act_kind act, int64_t out, int64_t in, int64_t n_tok,
                          const float *x, float *y, int64_t *bytes, double *median) {
    int64_t b1;
    void **probe = make_weights(r, type, 1, in, 1, &b1);
    free_weights(probe, 1);
    const int k = n_copies(b1 * out);
    gemv_ctx c = {.type = type, .act = act, .out = out, .in = in, .n_tok = n_tok, .x = x, .y = y};
    c.w = make_weights(r, type, out, in, k, bytes);
    const double s = time_calls(gemv_call, &c, k, median);
    free_weights(c.w, k);
    return s;
}

static void human(int64_t b, char *s, size_t n) {
    if (b >= (1 << 20)) snprintf(s, n, "%.1f MiB", (double)b / (1 << 20));
    else snprintf(s, n, "%.0f KiB", (double)b / 1024);
}

int main(int argc, char **argv) {
    int threads = 0;
    int64_t group = 64, batch = 16;
    const char *only = NULL; /* "OUTxIN": only this shape */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-g") && i + 1 < argc) group = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) g_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-hot")) g_hot = true;
        else if (!strcmp(argv[i], "-shape") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kernels [-t threads] [-g 32|64|128] [-s seconds] [-b batch] [-hot] [-shape OUTxIN]\n");
            return 2;
        }
    }
    if (rq_lowbit_type(false, group) < 0) {
        fprintf(stderr, "bench_kernels: group must be 32, 64 or 128\n");
        return 2;
    }
    rq_threads_set(threads);
    openblas_set_num_threads(rq_threads_get());
    printf("bench_kernels: %d threads, group %lld, kernels %s, weights %s\n", rq_threads_get(), (long long)group,
           rq_lowbit_kernel_name(), g_hot ? "hot (one copy, cache-resident when small)" : "cold (cycling over > 256 MiB of copies)");
    const int64_t shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {4096, 4096}, {11008, 4096}, {4096, 11008}};
    const int wu = rq_lowbit_type(false, group), wl = rq_lowbit_type(true, group);
    const int w4 = rq_lowbit_kind_type(RQ_LOWBIT_KIND_W4U, group);
    /* per row: the tuning that differs from the defaults (super-chunk W2 kernels for
     * integer activations, exact float A16) */
    const struct {
        const char *name;
        int type;
        rq_act_kind act;
        rq_lowbit_lut_int_method m;
        bool no_sc;
        rq_lowbit_a16 a16;
    } ks[] = {
        {"f32 sgemv", -1, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2U A16", wu, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2U A16 q8", wu, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_Q8},
        {"W2U A8", wu, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2U A8 group", wu, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_FLOAT, true, RQ_LOWBIT_A16_EXACT},
        {"W2U A4", wu, RQ_ACT_Q4, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2L A16", wl, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2L A16 q8", wl, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_Q8},
        {"W2L A8", wl, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W2L A8 group", wl, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_FLOAT, true, RQ_LOWBIT_A16_EXACT},
        {"W2L A8 g bitpl", wl, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_BITPLANE, true, RQ_LOWBIT_A16_EXACT},
        {"W2L A4", wl, RQ_ACT_Q4, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W4U A16", w4, RQ_ACT_F32, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W4U A8", w4, RQ_ACT_Q8, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
        {"W4U A4", w4, RQ_ACT_Q4, RQ_LOWBIT_LUT_INT_FLOAT, false, RQ_LOWBIT_A16_EXACT},
    };
    const int nk = (int)(sizeof ks / sizeof ks[0]);
    rq_rng r;
    rq_rng_seed(&r, 7);
    printf("\nGEMV (one token). Times: fastest and median call. GB/s = weight bytes / fastest time; copy = memcpy of\n"
           "the same bytes (read+write GB/s); read = read-only pass over them; ratio = kernel GB/s / that GB/s (all fastest call)\n");
    printf("%-12s %-16s %10s %9s %9s %8s %8s %6s %8s %6s\n", "shape", "kernel", "weights", "us best", "us median", "GB/s",
           "copy", "ratio", "read", "ratio");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t out = shapes[s][0], in = shapes[s][1];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)out, (long long)in);
        if (only && strcmp(only, shape) != 0) continue;
        float *x = rq_xalloc(in * 4), *y = rq_xalloc(out * 4);
        for (int64_t i = 0; i < in; i++) x[i] = (float)rq_rng_normal(&r);
        for (int k = 0; k < nk; k++) {
            rq_lowbit_tuning t;
            rq_lowbit_tuning_get(&t);
            t.lut_int = ks[k].m;
            t.no_sc = ks[k].no_sc;
            t.a16 = ks[k].a16;
            rq_lowbit_tuning_set(&t);
            int64_t bytes = 0;
            double med;
            const double sec = time_kernel(&r, ks[k].type, ks[k].act, out, in, 1, x, y, &bytes, &med);
            rq_lowbit_tuning_set(NULL);
            double copy, rd;
            roofline(bytes, &copy, &rd);
            const double gbs = (double)bytes / sec / 1e9;
            char hb[32];
            human(bytes, hb, sizeof hb);
            printf("%-12s %-16s %10s %9.1f %9.1f %8.2f %8.2f %6.2f %8.2f %6.2f\n", k == 0 ? shape : "", ks[k].name, hb, sec * 1e6,
                   med * 1e6, gbs, copy, gbs / copy, rd, gbs / rd);
            fflush(stdout);
        }
        rq_free(x);
        rq_free(y);
    }

    printf("\nGEMM (prefill, %lld tokens): us per token (fastest call); tile = tokens per weight-row unpack\n", (long long)batch);
    printf("%-12s %-16s %12s %12s %12s %8s\n", "shape", "kernel", "GEMV us/tok", "tile 1", "tile 4", "speedup");
    const int64_t gshapes[][2] = {{1536, 576}, {4096, 4096}};
    for (size_t s = 0; s < sizeof gshapes / sizeof gshapes[0]; s++) {
        const int64_t out = gshapes[s][0], in = gshapes[s][1];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)out, (long long)in);
        if (only && strcmp(only, shape) != 0) continue;
        float *x = rq_xalloc(batch * in * 4), *y = rq_xalloc(batch * out * 4);
        for (int64_t i = 0; i < batch * in; i++) x[i] = (float)rq_rng_normal(&r);
        for (int k = 0; k < nk; k++) {
            if (ks[k].m == RQ_LOWBIT_LUT_INT_BITPLANE || ks[k].no_sc) continue;
            int64_t bytes;
            double per[3];
            for (int v = 0; v < 3; v++) {
                rq_lowbit_tuning t;
                rq_lowbit_tuning_get(&t);
                t.tok_tile = v == 1 ? 1 : 4;
                t.a16 = ks[k].a16;
                rq_lowbit_tuning_set(&t);
                const int64_t nt = v == 0 ? 1 : batch;
                per[v] = time_kernel(&r, ks[k].type, ks[k].act, out, in, nt, x, y, &bytes, NULL) / (double)nt;
                rq_lowbit_tuning_set(NULL);
            }
            printf("%-12s %-16s %12.1f %12.1f %12.1f %8.2f\n", k == 0 ? shape : "", ks[k].name, per[0] * 1e6, per[1] * 1e6,
                   per[2] * 1e6, per[1] / per[2]);
            fflush(stdout);
        }
        rq_free(x);
        rq_free(y);
    }
    return 0;
}

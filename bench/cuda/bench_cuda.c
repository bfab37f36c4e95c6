/* CUDA kernel timings: W2U GEMV (float activations) and W2L GEMV (int4 activations) on
 * the model shapes, GB/s of weight bytes read, beside a device-to-device copy of the same
 * bytes (GB/s = bytes read + written, as STREAM counts a copy) in the same run; and the
 * FWHT over rows (GB/s = bytes read + written).
 *   bench_cuda [-g group] [-n iterations]
 * Each figure: the mean over n back-to-back launches after a warm-up, host-timed around
 * them with a device synchronization (launch overhead included, so small shapes are
 * latency-bound). The weights are cycled over enough copies to exceed 256 MiB so that
 * they come from HBM rather than the 50 MB L2. */
#include "base/status.h"
#include "base/timer.h"
#include "format/lowbit.h"
#include "kernels/cuda/rq_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                      \
    do {                                                                                 \
        if ((call) != RQ_OK) {                                                           \
            fprintf(stderr, "bench_cuda: %s: %s\n", #call, rq_last_error());            \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define COLD_BYTES (256LL << 20)

int main(int argc, char **argv) {
    int64_t group = 64;
    int iters = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-g") && i + 1 < argc) group = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda [-g 32|64|128] [-n iterations]\n");
            return 2;
        }
    }
    if (rq_cuda_device_count() == 0) {
        printf("SKIPPED: no CUDA device\n");
        return 77;
    }
    char name[256];
    CHECK(rq_cuda_device_name(name, sizeof name));
    const double peak = rq_cuda_peak_gbs();
    printf("bench_cuda: %s, group %lld, %d launches per figure; peak memory bandwidth %.0f GB/s (memory clock x bus width)\n",
           name, (long long)group, iters, peak);
    printf("split: rows per block (0 = one warp per row, 4/8 = split-K over the block); ratio = GB/s / copy GB/s\n");
    printf("%-12s %-10s %5s %10s %9s %9s %9s %6s %6s\n", "shape", "kernel", "split", "weights", "us/call", "GB/s", "copy",
           "ratio", "/peak");
    const int64_t shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {4096, 4096}, {11008, 4096}, {4096, 11008}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t out = shapes[s][0], in = shapes[s][1];
        for (int vi = 0; vi < 7; vi++) { /* W2U × 3 splits, W2L × 3 splits, W4U */
            const int lut = vi / 3 == 1, w4 = vi == 6, split = w4 ? 8 : (vi % 3) * 4;
            CHECK(rq_cuda_gemv_split_set(w4 ? -1 : split));
            const int type = w4 ? rq_lowbit_kind_type(RQ_LOWBIT_KIND_W4U, group) : rq_lowbit_type(lut, group);
            int64_t rb = 0;
            if (type < 0) {
                fprintf(stderr, "bench_cuda: group must be 32, 64 or 128\n");
                return 2;
            }
            if (!rq_type_row_bytes(type, in, &rb)) break; /* the group does not divide in */
            const int64_t bytes = out * rb;
            int k = (int)(COLD_BYTES / bytes + 1);
            if (k > 512) k = 512;
            /* weights: any bytes are valid codes; heads set to small fp16 values */
            uint8_t *h = rq_xalloc(bytes);
            for (int64_t i = 0; i < bytes; i++) h[i] = (uint8_t)(i * 2654435761u >> 13);
            const int64_t bb = rq_type_traits_get(type)->type_size, head = lut ? RQ_W2L_HEAD : RQ_W2U_HEAD;
            for (int64_t b = 0; b < bytes / bb; b++)
                for (int64_t j = 0; j < head / 2; j++) {
                    const rq_half v = rq_fp32_to_fp16(lut ? 0.01f * (float)(j - 1) : (j ? 1.0f : 0.01f));
                    memcpy(h + b * bb + 2 * j, &v, 2);
                }
            void *big = NULL, *dst = NULL, *x = NULL, *y = NULL;
            CHECK(rq_cuda_malloc(&big, bytes * k));
            CHECK(rq_cuda_malloc(&dst, bytes));
            CHECK(rq_cuda_malloc(&x, in * 4));
            CHECK(rq_cuda_malloc(&y, out * 4));
            for (int i = 0; i < k; i++) CHECK(rq_cuda_upload((uint8_t *)big + i * bytes, h, bytes));
            float *xh = rq_xalloc(in * 4);
            for (int64_t i = 0; i < in; i++) xh[i] = (float)((i % 7) - 3);
            CHECK(rq_cuda_upload(x, xh, in * 4)); /* as int4 rows these bytes are valid too */
            double t_k = 0, t_c = 0;
            for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
                CHECK(rq_cuda_sync());
                double t0 = rq_time_now();
                for (int it = 0; it < iters; it++) {
                    const void *w = (const uint8_t *)big + (it % k) * bytes;
                    if (lut) CHECK(rq_cuda_w2l_gemv_a4(type, out, in, w, x, 0.1f, y));
                    else if (w4) CHECK(rq_cuda_w4u_gemv_f32(type, out, in, w, x, y));
                    else CHECK(rq_cuda_w2u_gemv_f32(type, out, in, w, x, y));
                }
                CHECK(rq_cuda_sync());
                t_k = (rq_time_now() - t0) / iters;
                t0 = rq_time_now();
                for (int it = 0; it < iters; it++) CHECK(rq_cuda_copy_d2d(dst, (const uint8_t *)big + (it % k) * bytes, bytes));
                CHECK(rq_cuda_sync());
                t_c = (rq_time_now() - t0) / iters;
            }
            const double gbs = (double)bytes / t_k / 1e9, copy = 2.0 * (double)bytes / t_c / 1e9;
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)out, (long long)in);
            printf("%-12s %-10s %5d %6.2f MiB %9.2f %9.1f %9.1f %6.2f %6.2f\n", vi ? "" : shape, lut ? "W2L A4" : w4 ? "W4U A16" : "W2U A16",
                   split, (double)bytes / (1 << 20), t_k * 1e6, gbs, copy, gbs / copy, peak > 0 ? gbs / peak : 0.0);
            rq_cuda_free(big);
            rq_cuda_free(dst);
            rq_cuda_free(x);
            rq_cuda_free(y);
            rq_free(h);
            rq_free(xh);
        }
    }
    printf("\nFWHT (x ← x·H_n/√n per row, in place): GB/s = bytes read + written\n");
    printf("%-8s %-8s %10s %9s\n", "n", "rows", "us/call", "GB/s");
    const int64_t fw[][2] = {{64, 65536}, {128, 32768}, {4096, 4096}, {8192, 2048}, {16384, 1024}, {32768, 512}};
    for (size_t s = 0; s < sizeof fw / sizeof fw[0]; s++) {
        const int64_t n = fw[s][0], rows = fw[s][1];
        void *x = NULL;
        CHECK(rq_cuda_malloc(&x, n * rows * 4));
        float *xh = rq_xalloc(n * rows * 4);
        for (int64_t i = 0; i < n * rows; i++) xh[i] = (float)((i % 13) - 6);
        CHECK(rq_cuda_upload(x, xh, n * rows * 4));
        double t = 0;
        for (int pass = 0; pass < 2; pass++) {
            CHECK(rq_cuda_sync());
            const double t0 = rq_time_now();
            for (int it = 0; it < iters; it++) CHECK(rq_cuda_fwht(x, rows, n, 1.0f));
            CHECK(rq_cuda_sync());
            t = (rq_time_now() - t0) / iters;
        }
        printf("%-8lld %-8lld %10.2f %9.1f\n", (long long)n, (long long)rows, t * 1e6, 2.0 * (double)(n * rows * 4) / t / 1e9);
        rq_cuda_free(x);
        rq_free(xh);
    }
    return 0;
}

/* Fast Walsh-Hadamard transform over rows (rq_cuda.h): one thread block per row, the row
 * held in shared memory (n·4 bytes, up to 128 KiB for n = 32768, above the default 48 KiB
 * through the opt-in attribute), log2(n) butterfly stages h = 1, 2, 4, ..., each pair
 * (i, i + h) -> (a + b, a − b), then the scale. Natural (Sylvester) order, like the CPU
 * rq_fwht. */
#include "kernels/cuda/rq_cuda_impl.h"

#define RQ_FWHT_MAX_N 32768
#define RQ_FWHT_THREADS 256

__global__ void rq_fwht_kernel(float *__restrict__ x, int n, float scale) {
    extern __shared__ float s[];
    float *xr = x + (int64_t)blockIdx.x * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = xr[i];
    __syncthreads();
    for (int h = 1; h < n; h <<= 1) {
        for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
            const int i = ((p & ~(h - 1)) << 1) | (p & (h - 1));
            const float a = s[i], b = s[i + h];
            s[i] = a + b;
            s[i + h] = a - b;
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] = s[i] * scale;
}

extern "C" rq_status rq_cuda_fwht(float *x_dev, int64_t rows, int64_t n, float scale) {
    if (n < 1 || n > RQ_FWHT_MAX_N || (n & (n - 1)) != 0)
        return rq_errorf(RQ_EINVAL, "CUDA FWHT: n = %lld is not a power of two in [1, %d]", (long long)n, RQ_FWHT_MAX_N);
    if (rows < 0 || rows > 0x7fffffffLL) return rq_errorf(RQ_EINVAL, "CUDA FWHT: bad row count %lld", (long long)rows);
    if (rows == 0) return RQ_OK;
    if (!x_dev) return rq_errorf(RQ_EINVAL, "CUDA FWHT: NULL pointer");
    const size_t smem = (size_t)n * sizeof(float);
    if (smem > 48 * 1024)
        RQ_CUDA_TRY(cudaFuncSetAttribute(rq_fwht_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int threads = n / 2 < RQ_FWHT_THREADS ? (n / 2 > 32 ? (int)(n / 2) : 32) : RQ_FWHT_THREADS;
    rq_fwht_kernel<<<(unsigned)rows, threads, smem>>>(x_dev, (int)n, scale);
    RQ_CUDA_LAUNCHED();
    return RQ_OK;
}

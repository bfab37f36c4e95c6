/* Device queries and memory helpers of rq_cuda.h. */
#include "kernels/cuda/rq_cuda_impl.h"

#include <stdio.h>

extern "C" int rq_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device / no driver" error */
        return 0;
    }
    return n;
}

extern "C" rq_status rq_cuda_device_name(char *buf, int64_t size) {
    int dev = 0;
    RQ_CUDA_TRY(cudaGetDevice(&dev));
    cudaDeviceProp p;
    RQ_CUDA_TRY(cudaGetDeviceProperties(&p, dev));
    snprintf(buf, (size_t)size, "%s, sm_%d%d, %d SMs", p.name, p.major, p.minor, p.multiProcessorCount);
    return RQ_OK;
}

extern "C" double rq_cuda_peak_gbs(void) {
    int dev = 0, khz = 0, bits = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return 2.0 * (double)khz * 1e3 * (double)bits / 8.0 / 1e9;
}

extern "C" rq_status rq_cuda_malloc(void **p_dev, int64_t bytes) {
    if (bytes < 0) return rq_errorf(RQ_EINVAL, "rq_cuda_malloc: negative size");
    RQ_CUDA_TRY(cudaMalloc(p_dev, (size_t)(bytes > 0 ? bytes : 1)));
    return RQ_OK;
}

extern "C" void rq_cuda_free(void *p_dev) {
    if (p_dev) cudaFree(p_dev);
}

extern "C" rq_status rq_cuda_upload(void *dst_dev, const void *src, int64_t bytes) {
    RQ_CUDA_TRY(cudaMemcpy(dst_dev, src, (size_t)bytes, cudaMemcpyHostToDevice));
    return RQ_OK;
}

extern "C" rq_status rq_cuda_download(void *dst, const void *src_dev, int64_t bytes) {
    RQ_CUDA_TRY(cudaMemcpy(dst, src_dev, (size_t)bytes, cudaMemcpyDeviceToHost));
    return RQ_OK;
}

extern "C" rq_status rq_cuda_copy_d2d(void *dst_dev, const void *src_dev, int64_t bytes) {
    RQ_CUDA_TRY(cudaMemcpyAsync(dst_dev, src_dev, (size_t)bytes, cudaMemcpyDeviceToDevice, 0));
    return RQ_OK;
}

extern "C" rq_status rq_cuda_sync(void) {
    RQ_CUDA_TRY(cudaDeviceSynchronize());
    return RQ_OK;
}

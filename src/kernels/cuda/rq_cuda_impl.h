/* Shared by the .cu files of rotquant_cuda (C++): the C headers with C linkage and the
 * error-checking macro. */
#ifndef RQ_KERNELS_CUDA_IMPL_H
#define RQ_KERNELS_CUDA_IMPL_H

extern "C" {
#include "base/status.h"
#include "format/act.h"
#include "format/lowbit.h"
}
#include "kernels/cuda/rq_cuda.h"

#include <cuda_runtime.h>

/* Returns RQ_EIO with the CUDA error string from the enclosing function. */
#define RQ_CUDA_TRY(call)                                                                 \
    do {                                                                                  \
        const cudaError_t rq_e_ = (call);                                                 \
        if (rq_e_ != cudaSuccess)                                                         \
            return rq_errorf(RQ_EIO, "CUDA: %s: %s", #call, cudaGetErrorString(rq_e_));   \
    } while (0)

/* The launch's own error (bad configuration), without waiting for the kernel. */
#define RQ_CUDA_LAUNCHED() RQ_CUDA_TRY(cudaGetLastError())

#endif

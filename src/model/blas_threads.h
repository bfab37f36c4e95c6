/* Private to src/model: the forward pass splits work over OUR pool and calls
 * single-threaded BLAS from each piece, so OpenBLAS's thread count is set to 1 for the
 * duration of a call and restored afterwards (nesting is fine). */
#ifndef RQ_MODEL_BLAS_THREADS_H
#define RQ_MODEL_BLAS_THREADS_H

#include <cblas.h>

static inline int rq_blas_single_begin(void) {
    int prev = openblas_get_num_threads();
    if (prev != 1) openblas_set_num_threads(1);
    return prev;
}

static inline void rq_blas_single_end(int prev) {
    if (prev != 1) openblas_set_num_threads(prev);
}

#endif

/* Linear layers: y = x·Wᵀ for the float kind, split over the pool's threads. */
#include "model/model.h"

#include "base/pool.h"
#include "model/blas_threads.h"

typedef struct {
    const rq_linear *l;
    const float *x; /* [n, n_in] */
    int64_t n;
    float *y;       /* [n, ldy] */
    int64_t ldy;
    float beta;
    int64_t blk;    /* output columns (weight rows) per work item */
} linear_job;

void rq_linear_forward_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y,
                            int64_t ldy, bool accumulate) {
    RQ_ASSERT(l->kind == RQ_LINEAR_F32 && c0 >= 0 && c1 <= l->n_out);
    if (c1 <= c0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(c1 - c0), (int)l->n_in, 1.0f, l->w + c0 * l->n_in,
                    (int)l->n_in, x, 1, beta, y + c0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)(c1 - c0), (int)l->n_in, 1.0f, x,
                    (int)l->n_in, l->w + c0 * l->n_in, (int)l->n_in, beta, y + c0, (int)ldy);
}

static void gemm_range(void *ctx, int64_t b, int64_t e, int thread) {
    const linear_job *j = ctx;
    int64_t c1 = e * j->blk < j->l->n_out ? e * j->blk : j->l->n_out;
    rq_linear_forward_cols(j->l, j->x, j->n, b * j->blk, c1, j->y, j->ldy, j->beta != 0);
}

void rq_linear_forward(const rq_linear *l, const float *x, int64_t n, float *y, int64_t ldy, bool accumulate) {
    RQ_ASSERT(l->kind == RQ_LINEAR_F32 && l->w && n >= 1 && ldy >= l->n_out);
    int nt = rq_threads_get();
    linear_job j = {.l = l, .x = x, .n = n, .y = y, .ldy = ldy, .beta = accumulate ? 1.0f : 0.0f};
    /* Work items: about 4 per thread for balance, at least 16 columns each (and a
     * multiple of 16 to keep GEMM panels whole). */
    int64_t blk = (l->n_out + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    blk = (blk + 15) / 16 * 16;
    if (blk < 16) blk = 16;
    j.blk = blk;
    int64_t n_items = (l->n_out + blk - 1) / blk;
    int prev = rq_blas_single_begin();
    rq_parallel_for(n_items, 1, gemm_range, &j);
    rq_blas_single_end(prev);
}

/* The dispatching entries of kernels/actq.h: the fastest level rq_cpu_level_get() allows
 * (AVX-512 machines run the AVX2 code), else the scalar references of ref/actq_ref.c. */
#include "kernels/actq.h"

#include "base/cpu.h"

void rq_actq_row(const rq_actq *q, float *x, int64_t n) {
    if (rq_cpu_level_get() >= RQ_CPU_AVX2) rq_actq_row_avx2(q, x, n);
    else rq_actq_row_ref(q, x, n);
}

void rq_kv4_dequant_rows(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy) {
    if (rq_cpu_level_get() >= RQ_CPU_AVX2) rq_kv4_dequant_rows_avx2(src, rows, n, group, y, ldy);
    else rq_kv4_dequant_rows_ref(src, rows, n, group, y, ldy);
}

/* Scalar references of kernels/actq.h: per-token activation fake quantization and the
 * 4-bit KV row dequantizer (the dispatching entries are in kernels/actq.c). */
#include "kernels/actq.h"

#include "base/status.h"
#include "format/kv.h"

#include <math.h>

void rq_actq_row_ref(const rq_actq *q, float *x, int64_t n) {
    RQ_ASSERT((q->bits == 4 || q->bits == 8) && n >= 0);
    float mn = 0.0f, mx = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    float s, r, z, qlo, qhi;
    rq_actq_params(q, mn, mx, &s, &r, &z, &qlo, &qhi);
    if (!(s > 0.0f)) return;
    for (int64_t i = 0; i < n; i++) {
        float c = rintf(x[i] * r) + z;
        c = fminf(fmaxf(c, qlo), qhi);
        x[i] = s * (c - z);
    }
}

void rq_kv4_dequant_rows_ref(const uint8_t *src, int64_t rows, int64_t n, int64_t group, float *y, int64_t ldy) {
    int64_t rb = rq_kv4_row_bytes(n, group);
    for (int64_t r = 0; r < rows; r++) rq_kv4_dequant_row_ref(src + r * rb, n, group, y + r * ldy);
}

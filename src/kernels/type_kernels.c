/* The per-type kernel table (type_kernels.h). */
#include "kernels/type_kernels.h"

#include "base/status.h"
#include "format/format.h"
#include "kernels/gemv.h"
#include "kernels/qgemv.h"

/* The GGUF types without a SIMD dequantizer: the traits' scalar to_float. */
static void traits_dequant(int type, const void *src, float *y, int64_t n) {
    const rq_type_traits *t = rq_type_traits_get(type);
    RQ_ASSERT(t && t->to_float && n % t->block_size == 0);
    t->to_float(src, y, n);
}

static void q8_0_gemv(int type, const void *w, int64_t out, int64_t in, const float *x, float *y) {
    (void)type;
    rq_q8_0_gemv(w, out, in, x, y);
}

static void q8_0_gemv_q8(int type, const void *w, int64_t out, int64_t in, const int8_t *xq, const float *xd,
                         float *y) {
    (void)type;
    rq_q8_0_gemv_q8(w, out, in, xq, xd, y);
}

#define RQ_N_GGML_KERNEL_IDS 42 /* ids 0..41 are ggml's (format.c) */
#define SCALAR(id) [id] = {.dequant = traits_dequant}

static const rq_type_kernels ggml_kernels[RQ_N_GGML_KERNEL_IDS] = {
    SCALAR(RQ_TYPE_F32),  SCALAR(RQ_TYPE_F16),  SCALAR(RQ_TYPE_BF16), SCALAR(RQ_TYPE_F64),
    SCALAR(RQ_TYPE_I8),   SCALAR(RQ_TYPE_I16),  SCALAR(RQ_TYPE_I32),  SCALAR(RQ_TYPE_I64),
    SCALAR(RQ_TYPE_Q4_0), SCALAR(RQ_TYPE_Q4_1), SCALAR(RQ_TYPE_Q5_0), SCALAR(RQ_TYPE_Q5_1),
    [RQ_TYPE_Q8_0] = {.dequant = traits_dequant, .gemv_f32 = q8_0_gemv, .gemv_q8 = q8_0_gemv_q8},
    SCALAR(RQ_TYPE_Q2_K), SCALAR(RQ_TYPE_Q3_K), SCALAR(RQ_TYPE_Q4_K), SCALAR(RQ_TYPE_Q5_K),
    SCALAR(RQ_TYPE_Q6_K), SCALAR(RQ_TYPE_IQ4_NL),
};

/* rotquant's own types, indexed by id - RQ_TYPE_OWN_FIRST: the low-bit family, whose rows
 * the SIMD dequantizer of kernels/gemv.c unpacks. */
#define LOWBIT(id) [(id) - RQ_TYPE_OWN_FIRST] = {.dequant = rq_lowbit_dequant}
static const rq_type_kernels own_kernels[RQ_TYPE_OWN_END - RQ_TYPE_OWN_FIRST] = {
    LOWBIT(RQ_TYPE_W2U_G32), LOWBIT(RQ_TYPE_W2U_G64), LOWBIT(RQ_TYPE_W2U_G128),
    LOWBIT(RQ_TYPE_W2L_G32), LOWBIT(RQ_TYPE_W2L_G64), LOWBIT(RQ_TYPE_W2L_G128),
    LOWBIT(RQ_TYPE_W4U_G32), LOWBIT(RQ_TYPE_W4U_G64), LOWBIT(RQ_TYPE_W4U_G128),
};

const rq_type_kernels *rq_type_kernels_get(int type) {
    const rq_type_kernels *k = NULL;
    if (type >= RQ_TYPE_OWN_FIRST && type < RQ_TYPE_OWN_END) k = &own_kernels[type - RQ_TYPE_OWN_FIRST];
    else if (type >= 0 && type < RQ_N_GGML_KERNEL_IDS) k = &ggml_kernels[type];
    return k && k->dequant ? k : NULL;
}

/* The type traits table and type names. */
#include "format/format.h"

#include "base/status.h"
#include "format/lowbit.h"

/* ---------------------------------------------------------------- to_float adapters */

static void f32_to_float(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void f16_to_float(const void *src, float *dst, int64_t n) {
    rq_fp16_to_fp32_array(src, dst, n);
}
static void bf16_to_float(const void *src, float *dst, int64_t n) {
    rq_bf16_to_fp32_array(src, dst, n);
}
static void f64_to_float(const void *src, float *dst, int64_t n) {
    const double *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}
static void i8_to_float(const void *src, float *dst, int64_t n) {
    const int8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}
static void i16_to_float(const void *src, float *dst, int64_t n) {
    const int16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}
static void i32_to_float(const void *src, float *dst, int64_t n) {
    const int32_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}
static void i64_to_float(const void *src, float *dst, int64_t n) {
    const int64_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

#define RQ_DEQUANT_ADAPTER(name, block)                                              \
    static void name##_to_float(const void *src, float *dst, int64_t n) {            \
        rq_dequant_##name((const block *)src, dst, n);                               \
    }
RQ_DEQUANT_ADAPTER(q4_0, rq_block_q4_0)
RQ_DEQUANT_ADAPTER(q4_1, rq_block_q4_1)
RQ_DEQUANT_ADAPTER(q5_0, rq_block_q5_0)
RQ_DEQUANT_ADAPTER(q5_1, rq_block_q5_1)
RQ_DEQUANT_ADAPTER(q8_0, rq_block_q8_0)
RQ_DEQUANT_ADAPTER(q2_K, rq_block_q2_K)
RQ_DEQUANT_ADAPTER(q3_K, rq_block_q3_K)
RQ_DEQUANT_ADAPTER(q4_K, rq_block_q4_K)
RQ_DEQUANT_ADAPTER(q5_K, rq_block_q5_K)
RQ_DEQUANT_ADAPTER(q6_K, rq_block_q6_K)
RQ_DEQUANT_ADAPTER(iq4_nl, rq_block_iq4_nl)

#define RQ_LOWBIT_ADAPTER(name, type)                                                \
    static void name##_to_float(const void *src, float *dst, int64_t n) {            \
        rq_dequant_lowbit(type, src, dst, n);                                        \
    }
RQ_LOWBIT_ADAPTER(w2u_g32, RQ_TYPE_W2U_G32)
RQ_LOWBIT_ADAPTER(w2u_g64, RQ_TYPE_W2U_G64)
RQ_LOWBIT_ADAPTER(w2u_g128, RQ_TYPE_W2U_G128)
RQ_LOWBIT_ADAPTER(w2l_g32, RQ_TYPE_W2L_G32)
RQ_LOWBIT_ADAPTER(w2l_g64, RQ_TYPE_W2L_G64)
RQ_LOWBIT_ADAPTER(w2l_g128, RQ_TYPE_W2L_G128)
RQ_LOWBIT_ADAPTER(w4u_g32, RQ_TYPE_W4U_G32)
RQ_LOWBIT_ADAPTER(w4u_g64, RQ_TYPE_W4U_G64)
RQ_LOWBIT_ADAPTER(w4u_g128, RQ_TYPE_W4U_G128)

/* ---------------------------------------------------------------- the table */

#define RQ_N_GGML_IDS 42 /* ids 0..41 are ggml's */

/* A ggml layout known by size only: listed and sized, no values (to_float NULL) */
#define SIZED(id, nm, qk, B) [id] = { .name = nm, .block_size = qk, .type_size = sizeof(B), .quantized = true, .to_float = NULL }
#define PLAIN(id, nm, T, fn) [id] = { .name = nm, .block_size = 1, .type_size = sizeof(T), .quantized = false, .to_float = fn }
#define BLOCK(id, nm, qk, B, fn) [id] = { .name = nm, .block_size = qk, .type_size = sizeof(B), .quantized = true, .to_float = fn }

/* Known types; an entry with name == NULL is an id that names nothing (removed from
 * ggml: 4, 5, 31..33, 36..38) or Q8_1, whose size is in doubt (format.h). */
static const rq_type_traits rq_traits[RQ_N_GGML_IDS] = {
    PLAIN(RQ_TYPE_F32, "F32", float, f32_to_float),
    PLAIN(RQ_TYPE_F16, "F16", rq_half, f16_to_float),
    PLAIN(RQ_TYPE_BF16, "BF16", rq_bf16, bf16_to_float),
    PLAIN(RQ_TYPE_F64, "F64", double, f64_to_float),
    PLAIN(RQ_TYPE_I8, "I8", int8_t, i8_to_float),
    PLAIN(RQ_TYPE_I16, "I16", int16_t, i16_to_float),
    PLAIN(RQ_TYPE_I32, "I32", int32_t, i32_to_float),
    PLAIN(RQ_TYPE_I64, "I64", int64_t, i64_to_float),
    BLOCK(RQ_TYPE_Q4_0, "Q4_0", RQ_QK4_0, rq_block_q4_0, q4_0_to_float),
    BLOCK(RQ_TYPE_Q4_1, "Q4_1", RQ_QK4_1, rq_block_q4_1, q4_1_to_float),
    BLOCK(RQ_TYPE_Q5_0, "Q5_0", RQ_QK5_0, rq_block_q5_0, q5_0_to_float),
    BLOCK(RQ_TYPE_Q5_1, "Q5_1", RQ_QK5_1, rq_block_q5_1, q5_1_to_float),
    BLOCK(RQ_TYPE_Q8_0, "Q8_0", RQ_QK8_0, rq_block_q8_0, q8_0_to_float),
    BLOCK(RQ_TYPE_Q2_K, "Q2_K", RQ_QK_K, rq_block_q2_K, q2_K_to_float),
    BLOCK(RQ_TYPE_Q3_K, "Q3_K", RQ_QK_K, rq_block_q3_K, q3_K_to_float),
    BLOCK(RQ_TYPE_Q4_K, "Q4_K", RQ_QK_K, rq_block_q4_K, q4_K_to_float),
    BLOCK(RQ_TYPE_Q5_K, "Q5_K", RQ_QK_K, rq_block_q5_K, q5_K_to_float),
    BLOCK(RQ_TYPE_Q6_K, "Q6_K", RQ_QK_K, rq_block_q6_K, q6_K_to_float),
    SIZED(RQ_TYPE_Q8_K, "Q8_K", RQ_QK_K, rq_block_q8_K),
    SIZED(RQ_TYPE_IQ2_XXS, "IQ2_XXS", RQ_QK_K, rq_block_iq2_xxs),
    SIZED(RQ_TYPE_IQ2_XS, "IQ2_XS", RQ_QK_K, rq_block_iq2_xs),
    SIZED(RQ_TYPE_IQ3_XXS, "IQ3_XXS", RQ_QK_K, rq_block_iq3_xxs),
    SIZED(RQ_TYPE_IQ1_S, "IQ1_S", RQ_QK_K, rq_block_iq1_s),
    BLOCK(RQ_TYPE_IQ4_NL, "IQ4_NL", RQ_QK4_NL, rq_block_iq4_nl, iq4_nl_to_float),
    SIZED(RQ_TYPE_IQ3_S, "IQ3_S", RQ_QK_K, rq_block_iq3_s),
    SIZED(RQ_TYPE_IQ2_S, "IQ2_S", RQ_QK_K, rq_block_iq2_s),
    SIZED(RQ_TYPE_IQ4_XS, "IQ4_XS", RQ_QK_K, rq_block_iq4_xs),
    SIZED(RQ_TYPE_IQ1_M, "IQ1_M", RQ_QK_K, rq_block_iq1_m),
    SIZED(RQ_TYPE_TQ1_0, "TQ1_0", RQ_QK_K, rq_block_tq1_0),
    SIZED(RQ_TYPE_TQ2_0, "TQ2_0", RQ_QK_K, rq_block_tq2_0),
    SIZED(RQ_TYPE_MXFP4, "MXFP4", RQ_QK_MXFP4, rq_block_mxfp4),
    SIZED(RQ_TYPE_NVFP4, "NVFP4", RQ_QK_NVFP4, rq_block_nvfp4),
    SIZED(RQ_TYPE_Q1_0, "Q1_0", RQ_QK1_0, rq_block_q1_0),
};

/* rotquant's own types, indexed by id - RQ_TYPE_OWN_FIRST. */
#define RQ_N_OWN_IDS (RQ_TYPE_OWN_END - RQ_TYPE_OWN_FIRST)
#define OWN(id, nm, qk, B, fn) [(id) - RQ_TYPE_OWN_FIRST] = { .name = nm, .block_size = qk, .type_size = sizeof(B), .quantized = true, .to_float = fn }
static const rq_type_traits rq_own_traits[RQ_N_OWN_IDS] = {
    OWN(RQ_TYPE_W2U_G32, "W2U_G32", 32, rq_block_w2u_g32, w2u_g32_to_float),
    OWN(RQ_TYPE_W2U_G64, "W2U_G64", 64, rq_block_w2u_g64, w2u_g64_to_float),
    OWN(RQ_TYPE_W2U_G128, "W2U_G128", 128, rq_block_w2u_g128, w2u_g128_to_float),
    OWN(RQ_TYPE_W2L_G32, "W2L_G32", 32, rq_block_w2l_g32, w2l_g32_to_float),
    OWN(RQ_TYPE_W2L_G64, "W2L_G64", 64, rq_block_w2l_g64, w2l_g64_to_float),
    OWN(RQ_TYPE_W2L_G128, "W2L_G128", 128, rq_block_w2l_g128, w2l_g128_to_float),
    OWN(RQ_TYPE_W4U_G32, "W4U_G32", 32, rq_block_w4u_g32, w4u_g32_to_float),
    OWN(RQ_TYPE_W4U_G64, "W4U_G64", 64, rq_block_w4u_g64, w4u_g64_to_float),
    OWN(RQ_TYPE_W4U_G128, "W4U_G128", 128, rq_block_w4u_g128, w4u_g128_to_float),
};

const rq_type_traits *rq_type_traits_get(int type) {
    if (type >= RQ_TYPE_OWN_FIRST && type < RQ_TYPE_OWN_END) {
        const rq_type_traits *t = &rq_own_traits[type - RQ_TYPE_OWN_FIRST];
        return t->name ? t : NULL;
    }
    if (type < 0 || type >= RQ_N_GGML_IDS) return NULL;
    const rq_type_traits *t = &rq_traits[type];
    return t->name ? t : NULL;
}

const char *rq_type_name(int type) {
    if (type == RQ_TYPE_Q8_1) return "Q8_1"; /* named, but no traits (format.h) */
    const rq_type_traits *t = rq_type_traits_get(type);
    return t ? t->name : "unknown";
}

bool rq_type_can_dequantize(int type) {
    const rq_type_traits *t = rq_type_traits_get(type);
    return t && t->to_float;
}

bool rq_type_row_bytes(int type, int64_t n, int64_t *out) {
    const rq_type_traits *t = rq_type_traits_get(type);
    if (!t || n < 0 || n % t->block_size != 0) return false;
    int64_t bytes;
    if (!rq_mul_ok(n / t->block_size, t->type_size, &bytes)) return false;
    *out = bytes;
    return true;
}

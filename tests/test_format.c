/* Tests of src/format: block sizes and the traits table, fp16/bf16 conversion (all
 * 65536 values of each, and rounding of many floats against an independent rule and,
 * where the CPU has F16C, the hardware conversion), and dequantization / quantization
 * of every supported type against golden data made by an independent implementation
 * (the gguf Python package; tests/golden/make_format_golden.py). */
#include "testing.h"

#include "base/status.h"
#include "format/format.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

/* Golden dequantization: every element is computed with the same float operations
 * in the same order as gguf-py, so results agree exactly unless a compiler contracts
 * a*b + c into an FMA; this bound (relative to the block's largest |value|) allows
 * that and nothing more. */
static const double GOLDEN_DEQUANT_REL_TOL = 1e-6;

/* ------------------------------------------------------------------ traits, sizes */

static void test_traits(void) {
    RQ_CHECK(sizeof(rq_block_q4_0) == 18);
    RQ_CHECK(sizeof(rq_block_q4_1) == 20);
    RQ_CHECK(sizeof(rq_block_q5_0) == 22);
    RQ_CHECK(sizeof(rq_block_q5_1) == 24);
    RQ_CHECK(sizeof(rq_block_q8_0) == 34);
    RQ_CHECK(sizeof(rq_block_q2_K) == 84);
    RQ_CHECK(sizeof(rq_block_q3_K) == 110);
    RQ_CHECK(sizeof(rq_block_q4_K) == 144);
    RQ_CHECK(sizeof(rq_block_q5_K) == 176);
    RQ_CHECK(sizeof(rq_block_q6_K) == 210);

    /* id, name, block size, bytes per block, quantized: from gguf-py's
     * GGMLQuantizationType and GGML_QUANT_SIZES */
    static const struct { int id; const char *name; int64_t bs, ts; bool q; } want[] = {
        {0, "F32", 1, 4, false},     {1, "F16", 1, 2, false},     {2, "Q4_0", 32, 18, true},
        {3, "Q4_1", 32, 20, true},   {6, "Q5_0", 32, 22, true},   {7, "Q5_1", 32, 24, true},
        {8, "Q8_0", 32, 34, true},   {10, "Q2_K", 256, 84, true}, {11, "Q3_K", 256, 110, true},
        {12, "Q4_K", 256, 144, true}, {13, "Q5_K", 256, 176, true}, {14, "Q6_K", 256, 210, true},
        {24, "I8", 1, 1, false},     {25, "I16", 1, 2, false},    {26, "I32", 1, 4, false},
        {27, "I64", 1, 8, false},    {28, "F64", 1, 8, false},    {30, "BF16", 1, 2, false},
        {20, "IQ4_NL", 32, 18, true},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const rq_type_traits *t = rq_type_traits_get(want[i].id);
        RQ_CHECK_MSG(t != NULL, "no traits for type %d", want[i].id);
        if (!t) continue;
        RQ_CHECK_MSG(strcmp(t->name, want[i].name) == 0, "type %d name %s", want[i].id, t->name);
        RQ_CHECK_MSG(strcmp(rq_type_name(want[i].id), want[i].name) == 0, "rq_type_name(%d)", want[i].id);
        RQ_CHECK_MSG(t->block_size == want[i].bs && t->type_size == want[i].ts && t->quantized == want[i].q,
                     "type %s: block %lld bytes %lld", t->name, (long long)t->block_size, (long long)t->type_size);
        RQ_CHECK(t->to_float != NULL && rq_type_can_dequantize(want[i].id));
    }
    /* the types known by size only, from ggml's ggml-common.h block structs (and
     * gguf-py's GGML_QUANT_SIZES, which agrees): listed and sized, no dequantizer */
    static const struct { int id; const char *name; int64_t bs, ts; } sized[] = {
        {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98},
        {19, "IQ1_S", 256, 50},    {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82},
        {23, "IQ4_XS", 256, 136},  {29, "IQ1_M", 256, 56},   {34, "TQ1_0", 256, 54},  {35, "TQ2_0", 256, 66},
        {39, "MXFP4", 32, 17},     {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18},
    };
    for (size_t i = 0; i < sizeof(sized) / sizeof(sized[0]); i++) {
        const rq_type_traits *t = rq_type_traits_get(sized[i].id);
        RQ_CHECK_MSG(t != NULL, "no traits for type %d", sized[i].id);
        if (!t) continue;
        RQ_CHECK_MSG(strcmp(t->name, sized[i].name) == 0 && strcmp(rq_type_name(sized[i].id), sized[i].name) == 0,
                     "type %d name %s", sized[i].id, t->name);
        RQ_CHECK_MSG(t->block_size == sized[i].bs && t->type_size == sized[i].ts && t->quantized,
                     "type %s: block %lld bytes %lld", t->name, (long long)t->block_size, (long long)t->type_size);
        RQ_CHECK_MSG(t->to_float == NULL && !rq_type_can_dequantize(sized[i].id), "type %s has a dequantizer",
                     t->name);
        int64_t rb = -1;
        RQ_CHECK_MSG(rq_type_row_bytes(sized[i].id, 3 * sized[i].bs, &rb) && rb == 3 * sized[i].ts, "%s row bytes",
                     t->name);
        RQ_CHECK_MSG(!rq_type_row_bytes(sized[i].id, sized[i].bs + 1, &rb) && rb == 3 * sized[i].ts,
                     "%s: a partial block accepted", t->name);
        /* the largest whole number of blocks: its bytes fit in int64_t when a block
         * has fewer bytes than elements; Q8_K (292 bytes for 256) must overflow, refused */
        const int64_t nmax = INT64_MAX / sized[i].bs * sized[i].bs;
        if (sized[i].ts <= sized[i].bs)
            RQ_CHECK_MSG(rq_type_row_bytes(sized[i].id, nmax, &rb) && rb == nmax / sized[i].bs * sized[i].ts,
                         "%s: largest row", t->name);
        else
            RQ_CHECK_MSG(!rq_type_row_bytes(sized[i].id, nmax, &rb) && rb == 3 * sized[i].ts,
                         "%s: an overflowing row accepted", t->name);
    }
    /* Q8_1 (size in doubt, see format.h) and ids that name nothing: no traits */
    static const int unsupported[] = {-1, 4, 5, 9, 31, 32, 33, 36, 37, 38, 42, 1000, RQ_TYPE_OWN_END, 1 << 30};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        RQ_CHECK_MSG(rq_type_traits_get(unsupported[i]) == NULL, "type %d has traits", unsupported[i]);
        RQ_CHECK_MSG(!rq_type_can_dequantize(unsupported[i]), "type %d can be dequantized", unsupported[i]);
    }
    RQ_CHECK(strcmp(rq_type_name(RQ_TYPE_Q8_1), "Q8_1") == 0);
    RQ_CHECK(strcmp(rq_type_name(42), "unknown") == 0);
    RQ_CHECK(strcmp(rq_type_name(4), "unknown") == 0);
    RQ_CHECK(strcmp(rq_type_name(-7), "unknown") == 0);
    RQ_CHECK(strcmp(rq_type_name(RQ_TYPE_OWN_END), "unknown") == 0);

    int64_t b = -1;
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_Q4_K, 4096, &b) && b == 16 * 144);
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_Q4_0, 64, &b) && b == 36);
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_F32, 7, &b) && b == 28);
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_BF16, 0, &b) && b == 0);
    b = 123;
    RQ_CHECK(!rq_type_row_bytes(RQ_TYPE_Q4_K, 4095, &b) && b == 123);     /* not a multiple */
    RQ_CHECK(!rq_type_row_bytes(RQ_TYPE_Q8_0, 48, &b) && b == 123);
    RQ_CHECK(!rq_type_row_bytes(RQ_TYPE_F32, -4, &b) && b == 123);
    RQ_CHECK(!rq_type_row_bytes(RQ_TYPE_Q8_1, 32, &b) && b == 123);       /* no traits */
    RQ_CHECK(!rq_type_row_bytes(99, 256, &b) && b == 123);
    RQ_CHECK(!rq_type_row_bytes(RQ_TYPE_F64, INT64_MAX / 4, &b) && b == 123); /* overflow */
    /* block types take fewer bytes than elements, so every valid n fits */
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_Q2_K, (INT64_MAX / 256) * 256, &b) && b == (INT64_MAX / 256) * 84);
    RQ_CHECK(rq_type_row_bytes(RQ_TYPE_I8, INT64_MAX, &b) && b == INT64_MAX);

    /* the integer and F64 to_float convert numeric values */
    const int8_t i8[3] = {-128, 0, 127};
    const int16_t i16[2] = {-32768, 1234};
    const int32_t i32[2] = {-5, 1 << 24};
    const int64_t i64[2] = {-((int64_t)1 << 40), 3};
    const double f64[2] = {-0.5, 1e300};
    float out[3];
    rq_type_traits_get(RQ_TYPE_I8)->to_float(i8, out, 3);
    RQ_CHECK(out[0] == -128.0f && out[1] == 0.0f && out[2] == 127.0f);
    rq_type_traits_get(RQ_TYPE_I16)->to_float(i16, out, 2);
    RQ_CHECK(out[0] == -32768.0f && out[1] == 1234.0f);
    rq_type_traits_get(RQ_TYPE_I32)->to_float(i32, out, 2);
    RQ_CHECK(out[0] == -5.0f && out[1] == 16777216.0f);
    rq_type_traits_get(RQ_TYPE_I64)->to_float(i64, out, 2);
    RQ_CHECK(out[0] == -1099511627776.0f && out[1] == 3.0f);
    rq_type_traits_get(RQ_TYPE_F64)->to_float(f64, out, 2);
    RQ_CHECK(out[0] == -0.5f && isinf(out[1]));
}

/* ------------------------------------------------------------------ fp16 */

/* Value of a half from its fields, by the definition of binary16. */
static double half_value(uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* Half values for bit patterns 0..0x7c00, with 0x7c00 standing for 2^16, the value
 * the round-to-nearest rule assigns to +inf for the purpose of rounding. */
static double g_half_vals[0x7c01];

static void half_table_init(void) {
    for (int i = 0; i < 0x7c00; i++) g_half_vals[i] = half_value((uint16_t)i);
    g_half_vals[0x7c00] = 65536.0;
}

/* Oracle for float -> half: the nearest of the non-negative finite halves (or 2^16
 * for inf), ties to the even bit pattern, anything at or past 2^16 to inf; sign kept.
 * NaN: quiet NaN with the sign and the top payload bits (as F16C does). */
static uint16_t half_oracle(float f) {
    uint32_t u = rq_f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00 | ((u >> 13) & 0x3ff));
    const double a = fabs((double)f);
    if (a >= 65536.0) return sign | 0x7c00;
    int lo = 0, hi = 0x7c00; /* g_half_vals[lo] <= a < g_half_vals[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (g_half_vals[mid] <= a) lo = mid;
        else hi = mid;
    }
    if (g_half_vals[lo] == a) return (uint16_t)(sign | lo);
    const double mid = (g_half_vals[lo] + g_half_vals[hi]) / 2; /* exact */
    int r = a < mid ? lo : a > mid ? hi : ((lo & 1) ? hi : lo);
    return (uint16_t)(sign | r);
}

/* Convert floats[n] both ways and check them against the oracle. */
static int64_t g_half_mismatch, g_half_checked;
static void check_half_rounding(const float *f, int64_t n, bool use_oracle) {
    static rq_half out[4096];
    g_half_checked += n;
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
        const int64_t m = n - i0 < 4096 ? n - i0 : 4096;
        rq_fp32_to_fp16_array(f + i0, out, m);
        for (int64_t i = 0; i < m; i++) {
            const float x = f[i0 + i];
            bool bad = out[i] != rq_fp32_to_fp16(x);
            if (use_oracle) bad |= out[i] != half_oracle(x);
#if defined(__F16C__)
            bad |= out[i] != _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT);
#endif
            if (bad && g_half_mismatch++ < 10)
                fprintf(stderr, "fp32->fp16 %a (0x%08x): got 0x%04x oracle 0x%04x\n", (double)x,
                        rq_f32_to_bits(x), out[i], half_oracle(x));
        }
    }
}

static void test_fp16(void) {
    half_table_init();
    /* all 65536 halves: to float by definition; back to the same half */
    int bad_value = 0, bad_trip = 0, bad_nan = 0, bad_hw = 0;
    static rq_half all[65536];
    static float allf[65536];
    for (int i = 0; i < 65536; i++) all[i] = (rq_half)i;
    rq_fp16_to_fp32_array(all, allf, 65536);
    for (int i = 0; i < 65536; i++) {
        const uint16_t h = (uint16_t)i;
        const float f = rq_fp16_to_fp32(h);
        bad_value += rq_f32_to_bits(f) != rq_f32_to_bits(allf[i]);
#if defined(__F16C__)
        /* F16C quiets signaling NaNs; we keep their bits (checked below) */
        const bool snan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) && !(h & 0x200);
        if (!snan) bad_hw += rq_f32_to_bits(f) != rq_f32_to_bits(_cvtsh_ss(h));
#endif
        const int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            if (m == 0) bad_value += !(isinf(f) && (signbit(f) != 0) == (h >> 15));
            else {
                /* NaN: sign and payload kept */
                bad_value += !isnan(f) || (rq_f32_to_bits(f) >> 13) != ((0x3fc00u | (h & 0x3ffu)) | ((h & 0x8000u) << 3));
                const rq_half back = rq_fp32_to_fp16(f);
                /* a NaN stays a NaN with its sign; a quiet one comes back unchanged */
                bad_nan += (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000);
                bad_nan += (h & 0x200) && back != h;
            }
            continue;
        }
        bad_value += (double)f != half_value(h) || (signbit(f) != 0) != (h >> 15);
        bad_trip += rq_fp32_to_fp16(f) != h;
    }
    RQ_CHECK_MSG(bad_value == 0, "%d halves convert to the wrong float", bad_value);
    RQ_CHECK_MSG(bad_trip == 0, "%d halves do not round-trip", bad_trip);
    RQ_CHECK_MSG(bad_nan == 0, "%d NaN halves mishandled", bad_nan);
    RQ_CHECK_MSG(bad_hw == 0, "%d halves differ from F16C", bad_hw);

    /* rounding: every half and every midpoint between neighbours, +-4 float ulps
     * around each, both signs (about 1.1M floats), against the oracle */
    const int64_t n_edge = 0x7c00 * 2 * 9 * 2;
    float *edge = malloc((size_t)n_edge * sizeof(float));
    int64_t k = 0;
    for (int h = 0; h < 0x7c00; h++) {
        const float points[2] = {(float)g_half_vals[h], (float)((g_half_vals[h] + g_half_vals[h + 1]) / 2)};
        for (int p = 0; p < 2; p++) {
            for (int d = -4; d <= 4; d++) {
                const int64_t bits = (int64_t)rq_f32_to_bits(points[p]) + d;
                const uint32_t ub = bits < 0 ? (uint32_t)(-bits) | 0x80000000u : (uint32_t)bits;
                edge[k++] = rq_bits_to_f32(ub);
                edge[k++] = rq_bits_to_f32(ub ^ 0x80000000u);
            }
        }
    }
    RQ_ASSERT(k == n_edge);
    check_half_rounding(edge, n_edge, true);
    free(edge);

    /* special values */
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 65504.0f, 65519.99f,
                             65520.0f, 1e10f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1p-26f,
                             0x1.8p-24f, 0x1.4p-24f, 0x1.ffcp-15f, 0x1.ffep-15f, 0x1p-149f, 1e-30f,
                             rq_bits_to_f32(0x7f800001u), rq_bits_to_f32(0xffbfffffu)};
    check_half_rounding(special, sizeof(special) / sizeof(special[0]), true);
    RQ_CHECK(rq_fp32_to_fp16(65520.0f) == 0x7c00);
    RQ_CHECK(rq_fp32_to_fp16(65519.99f) == 0x7bff);
    RQ_CHECK(rq_fp32_to_fp16(0x1p-25f) == 0x0000);       /* tie to even (0) */
    RQ_CHECK(rq_fp32_to_fp16(0x1.8p-24f) == 0x0002);     /* 1.5 units: tie to even (2) */
    RQ_CHECK(rq_fp32_to_fp16(-0x1.000002p-25f) == 0x8001);
    RQ_CHECK(rq_fp32_to_fp16(0x1.ffep-15f) == 0x0400);   /* rounds up into the normals */
    RQ_CHECK(rq_fp32_to_fp16(1.0f) == 0x3c00 && rq_fp32_to_fp16(-2.0f) == 0xc000);
    RQ_CHECK(rq_fp32_to_fp16(rq_bits_to_f32(0x7f800001u)) == 0x7e00); /* sNaN -> qNaN */

    /* a strided sweep over all float bit patterns (70M values; every exponent and
     * many mantissas): the oracle on a thinner stride, F16C on all where present */
    enum { CHUNK = 1 << 16 };
    static float sweep[CHUNK];
    for (int pass = 0; pass < 2; pass++) {
#if defined(__F16C__)
        const uint64_t stride = pass == 0 ? 4093 : 61;
#else
        const uint64_t stride = pass == 0 ? 4093 : 0;
#endif
        if (!stride) continue;
        uint64_t bits = 12345;
        while (bits < ((uint64_t)1 << 32)) {
            int64_t m = 0;
            for (; m < CHUNK && bits < ((uint64_t)1 << 32); m++, bits += stride) sweep[m] = rq_bits_to_f32((uint32_t)bits);
            check_half_rounding(sweep, m, pass == 0);
        }
    }
    RQ_CHECK_MSG(g_half_mismatch == 0, "%lld fp32->fp16 conversions wrong", (long long)g_half_mismatch);
#if defined(__F16C__)
    printf("fp16: %lld float->half conversions checked against the definition and F16C\n", (long long)g_half_checked);
#else
    printf("fp16: %lld float->half conversions checked against the definition (no F16C in this build)\n", (long long)g_half_checked);
#endif
}

/* ------------------------------------------------------------------ bf16 */

/* Oracle for float -> bf16 from the bits: keep the top 16 bits, then look at the 16
 * dropped ones: above half an ulp round up, below round down, exactly half round to
 * the even result. NaN: the top bits with the quiet bit set. */
static uint16_t bf16_oracle(float f) {
    const uint32_t u = rq_f32_to_bits(f);
    const uint16_t top = (uint16_t)(u >> 16);
    if (isnan(f)) return top | 0x40;
    const uint32_t rest = u & 0xffff;
    if (rest > 0x8000 || (rest == 0x8000 && (top & 1))) return (uint16_t)(top + 1);
    return top;
}

/* Converts floats in batches with the array function and counts disagreements with
 * the oracle. */
typedef struct bf16_batch {
    float f[4096];
    rq_bf16 out[4096];
    int64_t m, bad;
} bf16_batch;

static void bf16_flush(bf16_batch *bb) {
    rq_fp32_to_bf16_array(bb->f, bb->out, bb->m);
    for (int64_t i = 0; i < bb->m; i++) {
        if (bb->out[i] != bf16_oracle(bb->f[i]) && bb->bad++ < 10)
            fprintf(stderr, "fp32->bf16 0x%08x: got 0x%04x\n", rq_f32_to_bits(bb->f[i]), bb->out[i]);
    }
    bb->m = 0;
}

static void bf16_push(bf16_batch *bb, float f) {
    bb->f[bb->m++] = f;
    if (bb->m == 4096) bf16_flush(bb);
}

static void test_bf16(void) {
    int bad_value = 0, bad_trip = 0;
    for (int i = 0; i < 65536; i++) {
        const uint16_t h = (uint16_t)i;
        const float f = rq_bf16_to_fp32(h);
        bad_value += rq_f32_to_bits(f) != (uint32_t)h << 16;
        const uint16_t back = rq_fp32_to_bf16(f);
        if (isnan(f)) bad_trip += !isnan(rq_bf16_to_fp32(back)) || (back & 0x8000) != (h & 0x8000) ||
                                  ((h & 0x40) && back != h);
        else bad_trip += back != h;
    }
    RQ_CHECK_MSG(bad_value == 0, "%d bf16 values convert to the wrong float", bad_value);
    RQ_CHECK_MSG(bad_trip == 0, "%d bf16 values do not round-trip", bad_trip);

    /* around every bf16 value and midpoint, +-3 ulps, and a strided sweep (17M) */
    bf16_batch bb = {0};
    for (uint32_t t = 0; t < 65536 * 2; t++) {
        const uint32_t base = ((t >> 1) << 16) | ((t & 1) ? 0x8000u : 0u);
        for (int d = -3; d <= 3; d++) bf16_push(&bb, rq_bits_to_f32(base + (uint32_t)d));
    }
    for (uint64_t bits = 7; bits < ((uint64_t)1 << 32); bits += 251) bf16_push(&bb, rq_bits_to_f32((uint32_t)bits));
    bf16_flush(&bb);
    const int64_t bad = bb.bad;
    RQ_CHECK_MSG(bad == 0, "%lld fp32->bf16 conversions wrong", (long long)bad);
    RQ_CHECK(rq_fp32_to_bf16(1.0f) == 0x3f80);
    RQ_CHECK(rq_fp32_to_bf16(rq_bits_to_f32(0x3f808000u)) == 0x3f80); /* tie to even */
    RQ_CHECK(rq_fp32_to_bf16(rq_bits_to_f32(0x3f818000u)) == 0x3f82);
    RQ_CHECK(rq_fp32_to_bf16(rq_bits_to_f32(0x7f7fffffu)) == 0x7f80); /* overflow -> inf */
    RQ_CHECK(rq_fp32_to_bf16(rq_bits_to_f32(0xff800001u)) == 0xffc0); /* sNaN -> qNaN */
}

/* ------------------------------------------------------------------ golden data */

typedef struct golden {
    uint32_t type, n_blocks, block_size, type_size;
    uint8_t *blocks;   /* [n_blocks * type_size] */
    float *values;     /* [n_blocks * block_size] */
} golden;

/* Reads tests/golden/format_<name>.bin (magic "RQFG": blocks then floats) or
 * format_quant_<name>.bin ("RQFQ": floats then blocks). False with a failure
 * recorded if the file is missing or malformed. */
static bool golden_read(const char *path, const char *magic, golden *g) {
    memset(g, 0, sizeof(*g));
    FILE *fp = fopen(path, "rb");
    RQ_CHECK_MSG(fp != NULL, "missing golden file %s (made by tests/golden/make_format_golden.py)", path);
    if (!fp) return false;
    char mg[4];
    uint32_t hdr[5];
    bool ok = fread(mg, 1, 4, fp) == 4 && memcmp(mg, magic, 4) == 0 && fread(hdr, 4, 5, fp) == 5 && hdr[0] == 1 &&
              hdr[2] > 0 && hdr[2] <= 4096 && hdr[3] > 0 && hdr[3] <= 256 && hdr[4] > 0 && hdr[4] <= 512;
    if (ok) {
        g->type = hdr[1];
        g->n_blocks = hdr[2];
        g->block_size = hdr[3];
        g->type_size = hdr[4];
        const size_t nb = (size_t)g->n_blocks * g->type_size, nv = (size_t)g->n_blocks * g->block_size;
        g->blocks = malloc(nb + 64);  /* malloc: aligned for any block type */
        g->values = malloc(nv * sizeof(float));
        if (magic[3] == 'G') ok = fread(g->blocks, 1, nb, fp) == nb && fread(g->values, 4, nv, fp) == nv;
        else ok = fread(g->values, 4, nv, fp) == nv && fread(g->blocks, 1, nb, fp) == nb;
        ok = ok && fgetc(fp) == EOF;
    }
    fclose(fp);
    RQ_CHECK_MSG(ok, "malformed golden file %s", path);
    return ok;
}

static void golden_free(golden *g) {
    free(g->blocks);
    free(g->values);
}

/* Dequantize one golden file with the traits' to_float and with the typed function. */
static void test_golden_dequant(int type, void (*typed)(const void *, float *, int64_t)) {
    const rq_type_traits *t = rq_type_traits_get(type);
    RQ_ASSERT(t);
    char path[256], lname[16];
    size_t i = 0;
    for (; t->name[i] && i < sizeof(lname) - 1; i++) lname[i] = (char)tolower((unsigned char)t->name[i]);
    lname[i] = 0;
    snprintf(path, sizeof(path), "tests/golden/format_%s.bin", lname);
    golden g;
    if (!golden_read(path, "RQFG", &g)) return;
    RQ_CHECK_MSG(g.type == (uint32_t)type && g.block_size == (uint32_t)t->block_size &&
                 g.type_size == (uint32_t)t->type_size, "%s: header does not match the traits", path);
    const int64_t n = (int64_t)g.n_blocks * g.block_size;
    float *y = malloc((size_t)n * sizeof(float)), *y2 = malloc((size_t)n * sizeof(float));
    for (int64_t j = 0; j < n; j++) y[j] = y2[j] = NAN;
    t->to_float(g.blocks, y, n);
    if (typed) typed(g.blocks, y2, n);
    else memcpy(y2, y, (size_t)n * sizeof(float));

    /* tolerance per golden block of 32 / 256 elements (plain types: per 256) */
    const int64_t group = g.block_size > 1 ? g.block_size : 256;
    int64_t bad = 0, exact = 0;
    for (int64_t b0 = 0; b0 < n; b0 += group) {
        const int64_t e = b0 + group < n ? b0 + group : n;
        double amax = 0;
        for (int64_t j = b0; j < e; j++) amax = fmax(amax, fabs(g.values[j]));
        const double tol = GOLDEN_DEQUANT_REL_TOL * amax;
        for (int64_t j = b0; j < e; j++) {
            const double d = fabs((double)y[j] - g.values[j]);
            exact += rq_f32_to_bits(y[j]) == rq_f32_to_bits(g.values[j]);
            if (!(d <= tol) || rq_f32_to_bits(y[j]) != rq_f32_to_bits(y2[j])) {
                if (bad++ < 5)
                    fprintf(stderr, "%s[%lld]: got %.9g, expected %.9g\n", t->name, (long long)j, y[j], g.values[j]);
            }
        }
    }
    RQ_CHECK_MSG(bad == 0, "%s: %lld of %lld values differ from gguf-py", t->name, (long long)bad, (long long)n);
    printf("dequant %-5s %5lld values vs gguf-py: %lld bit-exact, %lld off tolerance\n", t->name, (long long)n,
           (long long)exact, (long long)bad);

    /* a row that starts at the second block gives the same values */
    if (g.n_blocks > 1) {
        const int64_t m = n - g.block_size;
        float *z = malloc((size_t)m * sizeof(float));
        t->to_float(g.blocks + g.type_size, z, m);
        RQ_CHECK_MSG(memcmp(z, y + g.block_size, (size_t)m * sizeof(float)) == 0, "%s: offset row differs", t->name);
        free(z);
    }
    free(y);
    free(y2);
    golden_free(&g);
}

#define TYPED(name, block)                                                                 \
    static void typed_##name(const void *x, float *y, int64_t n) { rq_dequant_##name((const block *)x, y, n); }
TYPED(q4_0, rq_block_q4_0)
TYPED(q4_1, rq_block_q4_1)
TYPED(q5_0, rq_block_q5_0)
TYPED(q5_1, rq_block_q5_1)
TYPED(q8_0, rq_block_q8_0)
TYPED(q2_K, rq_block_q2_K)
TYPED(q3_K, rq_block_q3_K)
TYPED(q4_K, rq_block_q4_K)
TYPED(q5_K, rq_block_q5_K)
TYPED(q6_K, rq_block_q6_K)

static void test_golden_quant(int type, const char *lname) {
    char path[256];
    snprintf(path, sizeof(path), "tests/golden/format_quant_%s.bin", lname);
    golden g;
    if (!golden_read(path, "RQFQ", &g)) return;
    const rq_type_traits *t = rq_type_traits_get(type);
    RQ_CHECK_MSG(g.type == (uint32_t)type && g.block_size == (uint32_t)t->block_size &&
                 g.type_size == (uint32_t)t->type_size, "%s: header does not match the traits", path);
    const int64_t n = (int64_t)g.n_blocks * g.block_size, nbytes = (int64_t)g.n_blocks * g.type_size;
    uint8_t *q = malloc((size_t)nbytes);
    memset(q, 0xAA, (size_t)nbytes);
    if (type == RQ_TYPE_Q8_0) rq_quant_q8_0_ref(g.values, (rq_block_q8_0 *)q, n);
    else if (type == RQ_TYPE_Q4_0) rq_quant_q4_0_ref(g.values, (rq_block_q4_0 *)q, n);
    else rq_quant_q4_1_ref(g.values, (rq_block_q4_1 *)q, n);
    int64_t bad = 0;
    for (int64_t j = 0; j < nbytes; j++) bad += q[j] != g.blocks[j];
    RQ_CHECK_MSG(bad == 0, "%s quantize: %lld of %lld bytes differ from gguf-py", t->name, (long long)bad,
                 (long long)nbytes);
    printf("quant   %-5s %5lld values vs gguf-py: %lld of %lld bytes differ\n", t->name, (long long)n,
           (long long)bad, (long long)nbytes);

    /* round trip: each value comes back within half a step of the fp16-rounded scale
     * (plus the effect of rounding the scale, at most |q| * |d - fp16(d)|) */
    float *y = malloc((size_t)n * sizeof(float));
    t->to_float(q, y, n);
    int64_t bad_rt = 0;
    for (int64_t b = 0; b < g.n_blocks; b++) {
        const float *xb = g.values + b * g.block_size, *yb = y + b * g.block_size;
        float mx = xb[0], mn = xb[0], amax = 0;
        for (int j = 0; j < (int)g.block_size; j++) {
            mx = fmaxf(mx, xb[j]);
            mn = fminf(mn, xb[j]);
            amax = fmaxf(amax, fabsf(xb[j]));
        }
        const double d = type == RQ_TYPE_Q8_0 ? amax / 127.0 : type == RQ_TYPE_Q4_0 ? amax / 8.0 : (mx - mn) / 15.0;
        const double d16 = fabs((double)rq_fp16_to_fp32(rq_fp32_to_fp16((float)d)));
        const double qmax = type == RQ_TYPE_Q8_0 ? 127 : 16;
        /* Q4_1's min is stored in fp16 too: its rounding error adds */
        const double m_err = type == RQ_TYPE_Q4_1 ? fabs((double)rq_fp16_to_fp32(rq_fp32_to_fp16(mn)) - mn) : 0;
        /* Q4_0 clamps the top level (+8 steps is not representable): up to one step */
        const double step_err = type == RQ_TYPE_Q4_0 ? 1.0 : 0.5;
        const double bound = step_err * d16 + qmax * fabs(d16 - d) + m_err + 1e-6 * amax;
        for (int j = 0; j < (int)g.block_size; j++) bad_rt += !(fabs((double)yb[j] - xb[j]) <= bound);
    }
    RQ_CHECK_MSG(bad_rt == 0, "%s: %lld values off after quantize + dequantize", t->name, (long long)bad_rt);
    free(y);
    free(q);
    golden_free(&g);
}

int main(void) {
    test_traits();
    test_fp16();
    test_bf16();

    test_golden_dequant(RQ_TYPE_F32, NULL);
    test_golden_dequant(RQ_TYPE_F16, NULL);
    test_golden_dequant(RQ_TYPE_BF16, NULL);
    test_golden_dequant(RQ_TYPE_Q4_0, typed_q4_0);
    test_golden_dequant(RQ_TYPE_Q4_1, typed_q4_1);
    test_golden_dequant(RQ_TYPE_Q5_0, typed_q5_0);
    test_golden_dequant(RQ_TYPE_Q5_1, typed_q5_1);
    test_golden_dequant(RQ_TYPE_Q8_0, typed_q8_0);
    test_golden_dequant(RQ_TYPE_Q2_K, typed_q2_K);
    test_golden_dequant(RQ_TYPE_Q3_K, typed_q3_K);
    test_golden_dequant(RQ_TYPE_Q4_K, typed_q4_K);
    test_golden_dequant(RQ_TYPE_Q5_K, typed_q5_K);
    test_golden_dequant(RQ_TYPE_Q6_K, typed_q6_K);

    test_golden_quant(RQ_TYPE_Q8_0, "q8_0");
    test_golden_quant(RQ_TYPE_Q4_0, "q4_0");
    test_golden_quant(RQ_TYPE_Q4_1, "q4_1");
    return rq_test_finish();
}

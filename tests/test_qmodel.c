/* The quantized model file: bit packing of codes at every width (odd lengths), and the
 * round trip quantize → save → load giving exactly the dequantized weights the quantizer
 * produced, for uniform and LUT quantizers; a truncated or inconsistent file is refused
 * with a message naming it. Uses the real model when present (RTN, so it stays fast). */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "format/format.h"
#include "format/qpacked.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "model/fold.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static void test_packing(void) {
    rq_rng r;
    rq_rng_seed(&r, 5);
    int bits[4] = {2, 3, 4, 8};
    int64_t lens[5] = {1, 7, 64, 99, 577};
    for (int b = 0; b < 4; b++)
        for (int li = 0; li < 5; li++) {
            int64_t n = lens[li];
            uint8_t codes[600], back[600], packed[600];
            for (int64_t i = 0; i < n; i++) codes[i] = (uint8_t)rq_rng_below(&r, 1u << bits[b]);
            rq_qpacked_pack_row(bits[b], codes, n, packed);
            rq_qpacked_unpack_row(bits[b], packed, n, back);
            RQ_CHECK_MSG(memcmp(codes, back, (size_t)n) == 0, "pack round trip bits=%d n=%lld", bits[b], (long long)n);
            /* the documented bit order: code i at bits [i·b, i·b + b) */
            int ok = 1;
            for (int64_t i = 0; i < n; i++) {
                unsigned v = 0;
                for (int k = 0; k < bits[b]; k++) {
                    int64_t bit = i * bits[b] + k;
                    v |= (unsigned)((packed[bit / 8] >> (bit % 8)) & 1) << k;
                }
                ok &= v == codes[i];
            }
            RQ_CHECK_MSG(ok, "bit order bits=%d n=%lld", bits[b], (long long)n);
        }
}

static void round_trip(const char *path, rq_qparam_kind kind, int wbits, const char *tmp) {
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(path, &g) == RQ_OK);
    rq_model *m;
    RQ_CHECK(rq_model_load(g, &m) == RQ_OK);
    rq_rotation r1 = rq_rot_make(RQ_ROT_GSR, m->cfg.n_embd, 64, 0), r2 = rq_rot_make(RQ_ROT_NONE, m->cfg.head_dim, 0, 0);
    RQ_CHECK(rq_fold_model(m, &r1, &r2) == RQ_OK);
    rq_ptq_opts o = rq_ptq_opts_default();
    o.method = RQ_PTQ_RTN;
    o.wbits = wbits;
    o.quantizer = kind;
    rq_ptq_result res;
    RQ_CHECK(rq_ptq_run(m, &o, NULL, 0, 0, &res) == RQ_OK);
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = (uint32_t)wbits;
    qi.group = 64;
    qi.quantizer = kind;
    strcpy(qi.method, "rtn");
    strcpy(qi.embd_type, "f32");
    qi.r1 = r1;
    qi.r2 = r2;
    RQ_CHECK(rq_qmodel_write(m, g, &res, &qi, tmp) == RQ_OK);
    double expect_bpw = wbits + 16.0 * rq_qparam_count(kind) / 64.0;
    RQ_CHECK_NEAR(qi.bits_per_weight, expect_bpw, 1e-9);

    rq_model *m2 = NULL;
    rq_gguf *gr;
    rq_model_load_opts ref = {.ref_linear = true}; /* dequantized to float (the reference path) */
    RQ_CHECK(rq_gguf_open(tmp, &gr) == RQ_OK);
    RQ_CHECK(rq_model_load_ex(gr, &ref, &m2) == RQ_OK);
    rq_gguf_close(gr);
    if (m2) {
        int same = 1;
        for (int64_t l = 0; l < m->cfg.n_layer; l++) {
            rq_layer *a = &m->layers[l], *b = &m2->layers[l];
            same &= memcmp(a->wq.w, b->wq.w, (size_t)(a->wq.n_out * a->wq.n_in) * 4) == 0;
            same &= memcmp(a->w_down.w, b->w_down.w, (size_t)(a->w_down.n_out * a->w_down.n_in) * 4) == 0;
            same &= memcmp(a->w_up.w, b->w_up.w, (size_t)(a->w_up.n_out * a->w_up.n_in) * 4) == 0;
            same &= memcmp(a->wo.w, b->wo.w, (size_t)(a->wo.n_out * a->wo.n_in) * 4) == 0;
        }
        RQ_CHECK_MSG(same, "loaded weights differ from the quantizer's (bits %d, %s)", wbits,
                     kind == RQ_QPARAM_LUT ? "lut" : "uniform");
        RQ_CHECK(memcmp(m->tok_embd, m2->tok_embd, (size_t)(m->cfg.n_vocab * m->cfg.n_embd) * 4) == 0);
        rq_gguf *g2;
        RQ_CHECK(rq_gguf_open(tmp, &g2) == RQ_OK);
        rq_qinfo q2;
        RQ_CHECK(rq_qinfo_read(g2, &q2) == RQ_OK && q2.present && q2.wbits == (uint32_t)wbits && q2.quantizer == kind &&
                 q2.r1.kind == RQ_ROT_GSR && q2.r1.block == 64);
        rq_gguf_close(g2);
        rq_model_free(m2);
    }
    rq_ptq_result_free(&res);
    rq_model_free(m);
    rq_gguf_close(g);
}

/* Copy the GGUF src to dst with one metadata key set to a u32 or f32 value. */
typedef struct {
    const char *key;
    rq_gguf_vtype type;
    double val;
} key_value;

static void set_key(rq_gguf_writer *w, void *user) {
    const key_value *kv = user;
    if (kv->type == RQ_GGUF_U32) rq_gguf_writer_set_u32(w, kv->key, (uint32_t)kv->val);
    else rq_gguf_writer_set_f32(w, kv->key, (float)kv->val);
}

static void rewrite(const char *src, const char *dst, const char *key, rq_gguf_vtype type, double val) {
    key_value kv = {key, type, val};
    rq_test_gguf_copy(src, dst, key, set_key, &kv);
}

/* rotquant.* keys inconsistent with the tensors they describe are refused (issue 15,
 * defect 11): the real group of every layer follows from rotquant.group (the largest
 * group/2^k dividing its input), the format version is 1 or 2, bits_per_weight is what
 * the tensors hold. `good` is a W2 LUT g64 file of the default model. */
static void test_inconsistent(const char *good) {
    char bad[160];
    snprintf(bad, sizeof bad, "%s.bad.gguf", good);
    struct { const char *key; rq_gguf_vtype type; double val; const char *want; } cases[] = {
        {"rotquant.group", RQ_GGUF_U32, 3, "has groups of 64; rotquant.group = 3 gives 3"},
        {"rotquant.group", RQ_GGUF_U32, 4096, "has groups of 64; rotquant.group = 4096 gives 512 for an input of 1536"},
        {"rotquant.group", RQ_GGUF_U32, 32, "has groups of 64; rotquant.group = 32 gives 32"},
        {"rotquant.format_version", RQ_GGUF_U32, 0, "rotquant.format_version = 0 (1 to 3 expected)"},
        {"rotquant.bits_per_weight", RQ_GGUF_F32, NAN, "rotquant.bits_per_weight = nan is not in (0, 32]"},
        {"rotquant.bits_per_weight", RQ_GGUF_F32, 2.0, "rotquant.bits_per_weight = 2, but the tensors hold 3.0000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(good, bad, cases[i].key, cases[i].type, cases[i].val);
        rq_model *m = NULL;
        rq_status s = rq_model_load_file(bad, &m);
        RQ_CHECK_MSG(s == RQ_EFORMAT && m == NULL, "%s = %g: loaded (status %d)", cases[i].key, cases[i].val, (int)s);
        RQ_CHECK_MSG(strstr(rq_last_error(), cases[i].want) != NULL, "%s = %g: message '%s' lacks '%s'", cases[i].key,
                     cases[i].val, rq_last_error(), cases[i].want);
        rq_model_free(m);
    }
    /* the unchanged value loads */
    rewrite(good, bad, "rotquant.group", RQ_GGUF_U32, 64);
    rq_model *m = NULL;
    RQ_CHECK(rq_model_load_file(bad, &m) == RQ_OK);
    rq_model_free(m);
    unlink(bad);
}

int main(void) {
    test_packing();
    const char *path = rq_test_model_path();
    if (!path) {
        printf("note: default model absent, file round trip skipped\n");
        return rq_test_finish();
    }
    rq_threads_set(0);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "/tmp/rq_test_qmodel_%d.gguf", (int)getpid());
    round_trip(path, RQ_QPARAM_UNIFORM, 3, tmp);
    round_trip(path, RQ_QPARAM_LUT, 2, tmp);
    test_inconsistent(tmp);

    /* truncated: the reader refuses it, naming the file */
    FILE *f = fopen(tmp, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    RQ_CHECK(truncate(tmp, n - 1000) == 0);
    rq_model *m = NULL;
    RQ_CHECK(rq_model_load_file(tmp, &m) != RQ_OK && m == NULL);
    RQ_CHECK(strstr(rq_last_error(), tmp) != NULL && strstr(rq_last_error(), "outside the file") != NULL);
    unlink(tmp);
    return rq_test_finish();
}

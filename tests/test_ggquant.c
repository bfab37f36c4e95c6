/* Export for llama.cpp (quant/ggquant.h, quant/ggexport.h):
 *   - per type, on odd shapes (several rows, 2-3 blocks; 256-multiples for the K types), the
 *     fitted result encoded to bytes and dequantized by rotquant's dequantizer equals the
 *     floats the quantizer chose, bit for bit; every weight sits at the nearest of its
 *     block's levels, the levels being read back through the dequantizer itself (every code
 *     encoded with the block's parameters); and the gguf Python package's dequantizer gives
 *     the same floats bit for bit from a file this test writes (tests/ref/gg_dequant_ref.py);
 *   - GPTQ onto each grid with an identity Hessian equals round-to-nearest on the same grid;
 *     with a real Hessian its loss tr((W−Q) H (W−Q)ᵀ) is at most RTN's;
 *   - end to end on a tiny random LLaMA: export → reload gives back exactly the in-memory
 *     quantized model's weights and logits, under the source's tensor names and metadata,
 *     with llama.cpp's per-tensor fallback, general.file_type, no rotquant.* key;
 *   - bad input (unknown type, a row length no type fits, an output path that cannot be
 *     written, an online rotation the file cannot hold) gives a clear error and no file. */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"
#include "quant/ggexport.h"
#include "quant/ggquant.h"
#include "quant/gptq.h"
#include "quant/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static rq_rng rng;

static const int types[] = {RQ_TYPE_Q4_0, RQ_TYPE_Q4_1, RQ_TYPE_Q5_0, RQ_TYPE_Q5_1, RQ_TYPE_Q8_0, RQ_TYPE_IQ4_NL,
                            RQ_TYPE_Q2_K, RQ_TYPE_Q3_K, RQ_TYPE_Q4_K, RQ_TYPE_Q5_K, RQ_TYPE_Q6_K};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static bool is_k(int t) { return rq_gg_type_for_row(t, 32) != t; }

/* rows with different scales, a few outliers, an all-zero row, an all-positive row, a
 * constant row */
static void fill_weights(float *w, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        double sc = 0.02 * (1 + (double)r);
        for (int64_t c = 0; c < cols; c++) {
            double v = sc * rq_rng_normal(&rng);
            if (rq_rng_below(&rng, 37) == 0) v *= 8;
            if (r == 1) v = 0;
            if (r == 2) v = fabs(v) + 0.01;
            if (r == 3 && cols > 64) v = (c < 64) ? -0.125 : v;
            w[r * cols + c] = (float)v;
        }
    }
}

/* ---- encoding, levels, oracle file -------------------------------------------------- */

static void test_encode(rq_gguf_writer *gw, float **keep, int *nk) {
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int t = types[ti];
        const int64_t shapes[2][2] = {{5, is_k(t) ? 512 : 96}, {4, is_k(t) ? 256 : 64}};
        for (int si = 0; si < 2; si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1], n = rows * cols;
            int64_t g, rb;
            rq_group_quantizer q = rq_gg_quantizer(t, &g);
            RQ_ASSERT(rq_type_row_bytes(t, cols, &rb));
            float *w = malloc(sizeof(float) * (size_t)n), *deq = malloc(sizeof(float) * (size_t)n);
            float *back = malloc(sizeof(float) * (size_t)n), *imp = malloc(sizeof(float) * (size_t)cols);
            float *params = malloc(sizeof(float) * (size_t)(n / g * q.n_param));
            uint8_t *codes = malloc((size_t)n), *bytes = malloc((size_t)(rb * rows)), *codes2 = malloc((size_t)n);
            fill_weights(w, rows, cols);
            for (int64_t c = 0; c < cols; c++) imp[c] = (float)(0.2 + 2 * rq_rng_uniform(&rng));
            /* weighted fit on odd shapes */
            RQ_CHECK(rq_quant_rtn(&q, w, rows, cols, g, si == 0 ? imp : NULL, codes, params, deq) == RQ_OK);
            bool enc = true;
            for (int64_t r = 0; r < rows; r++)
                enc &= rq_gg_encode_row(t, codes + r * cols, params + r * (cols / g) * q.n_param, cols, bytes + r * rb) ==
                       RQ_OK;
            RQ_CHECK_MSG(enc, "%s: encode: %s", rq_type_name(t), rq_last_error());
            rq_type_traits_get(t)->to_float(bytes, back, n);
            RQ_CHECK_MSG(!memcmp(back, deq, sizeof(float) * (size_t)n), "%s [%lld x %lld]: dequantized bytes differ from "
                         "the fitted levels", rq_type_name(t), (long long)rows, (long long)cols);
            /* nearest level: every code's level, read back through the dequantizer */
            double worse = 0;
            int64_t n_levels = 0;
            for (int code = 0; code <= q.max_code; code++) {
                memset(codes2, code, (size_t)n);
                bool ok = true;
                for (int64_t r = 0; r < rows && ok; r++)
                    ok = rq_gg_encode_row(t, codes2 + r * cols, params + r * (cols / g) * q.n_param, cols,
                                          bytes + r * rb) == RQ_OK;
                if (!ok) continue; /* a code the type never stores (Q8_0's −128) */
                n_levels++;
                rq_type_traits_get(t)->to_float(bytes, back, n);
                for (int64_t i = 0; i < n; i++) {
                    double d = fabs((double)w[i] - back[i]) - fabs((double)w[i] - deq[i]);
                    if (-d > worse) worse = -d;
                }
            }
            RQ_CHECK_MSG(worse == 0 && n_levels == q.max_code + (t == RQ_TYPE_Q8_0 ? 0 : 1),
                         "%s: a weight is %g farther from its level than from another (%lld levels)", rq_type_name(t),
                         worse, (long long)n_levels);
            /* rounding error is small against the weights' scale (the fit is not degenerate) */
            double e2 = 0, w2 = 0;
            for (int64_t i = 0; i < n; i++) e2 += (w[i] - deq[i]) * (double)(w[i] - deq[i]), w2 += (double)w[i] * w[i];
            double bound = t == RQ_TYPE_Q8_0 ? 1e-4 : t == RQ_TYPE_Q2_K ? 0.15 : t == RQ_TYPE_Q3_K ? 0.08 : 0.04;
            RQ_CHECK_MSG(e2 <= bound * w2, "%s: relative squared error %g > %g", rq_type_name(t), e2 / w2, bound);
            /* re-encode the fitted data for the oracle file */
            for (int64_t r = 0; r < rows; r++)
                rq_gg_encode_row(t, codes + r * cols, params + r * (cols / g) * q.n_param, cols, bytes + r * rb);
            char name[64];
            int64_t ne[2] = {cols, rows};
            snprintf(name, sizeof name, "q.%s.%lldx%lld", rq_type_name(t), (long long)rows, (long long)cols);
            RQ_ASSERT(rq_gguf_writer_add_tensor(gw, name, t, 2, ne, bytes, rb * rows) == RQ_OK);
            name[0] = 'r';
            RQ_ASSERT(rq_gguf_writer_add_tensor(gw, name, RQ_TYPE_F32, 2, ne, deq, n * 4) == RQ_OK);
            keep[(*nk)++] = (float *)bytes, keep[(*nk)++] = deq;
            free(w), free(back), free(imp), free(params), free(codes), free(codes2);
        }
    }
}

/* Without importance weights the fit is never worse, block by block, than ggml's own
 * round-to-nearest (format/dequant_ref.c's copies of quantize_row_q4_0/q4_1/q8_0_ref): its
 * scale is one of the candidates, and each weight then goes to the nearest level. */
static void test_vs_ggml_ref(void) {
    enum { R = 16, C = 256 };
    float *w = malloc(sizeof(float) * R * C), *deq = malloc(sizeof(float) * R * C), *ref = malloc(sizeof(float) * R * C);
    uint8_t *codes = malloc(R * C), *blocks = malloc(R * C * 2);
    float *params = malloc(sizeof(float) * R * C);
    fill_weights(w, R, C);
    const int ts[3] = {RQ_TYPE_Q4_0, RQ_TYPE_Q4_1, RQ_TYPE_Q8_0};
    for (int ti = 0; ti < 3; ti++) {
        int64_t g;
        rq_group_quantizer q = rq_gg_quantizer(ts[ti], &g);
        RQ_CHECK(rq_quant_rtn(&q, w, R, C, g, NULL, codes, params, deq) == RQ_OK);
        if (ts[ti] == RQ_TYPE_Q4_0) rq_quant_q4_0_ref(w, (rq_block_q4_0 *)blocks, R * C);
        if (ts[ti] == RQ_TYPE_Q4_1) rq_quant_q4_1_ref(w, (rq_block_q4_1 *)blocks, R * C);
        if (ts[ti] == RQ_TYPE_Q8_0) rq_quant_q8_0_ref(w, (rq_block_q8_0 *)blocks, R * C);
        rq_type_traits_get(ts[ti])->to_float(blocks, ref, R * C);
        int worse = 0;
        double eo = 0, er = 0;
        for (int b = 0; b < R * C / 32; b++) {
            double a = 0, r = 0;
            for (int i = 32 * b; i < 32 * b + 32; i++)
                a += (w[i] - deq[i]) * (double)(w[i] - deq[i]), r += (w[i] - ref[i]) * (double)(w[i] - ref[i]);
            worse += a > r;
            eo += a, er += r;
        }
        RQ_CHECK_MSG(worse == 0, "%s: %d blocks fitted worse than ggml's reference", rq_type_name(ts[ti]), worse);
        printf("  %-6s squared error against ggml's reference rounding: %.3f\n", rq_type_name(ts[ti]), eo / er);
    }
    free(w), free(deq), free(ref), free(codes), free(blocks), free(params);
}

/* ---- GPTQ against RTN ---------------------------------------------------------------- */

static double hloss(const float *w, const float *q, const double *H, int64_t rows, int64_t d) {
    double tot = 0;
    double *e = malloc(sizeof(double) * (size_t)d);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < d; i++) e[i] = (double)w[r * d + i] - q[r * d + i];
        for (int64_t i = 0; i < d; i++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += H[i * d + j] * e[j];
            tot += e[i] * s;
        }
    }
    free(e);
    return tot;
}

static void test_gptq(void) {
    enum { R = 24, D = 512, N = 1024 };
    float *w = malloc(sizeof(float) * R * D), *dq1 = malloc(sizeof(float) * R * D), *dq2 = malloc(sizeof(float) * R * D);
    uint8_t *c1 = malloc(R * D), *c2 = malloc(R * D);
    float *p1 = malloc(sizeof(float) * R * D * 4), *p2 = malloc(sizeof(float) * R * D * 4);
    double *I = calloc((size_t)D * D, sizeof(double)), *H = malloc(sizeof(double) * D * D);
    float *ones = malloc(sizeof(float) * D), *diag = malloc(sizeof(float) * D);
    fill_weights(w, R, D);
    for (int i = 0; i < D; i++) I[i * D + i] = 1, ones[i] = 1;
    /* correlated inputs with uneven column scales: X = Z·A + noise */
    float *X = malloc(sizeof(float) * N * D), *Z = malloc(sizeof(float) * N * 16), *A = malloc(sizeof(float) * 16 * D);
    for (int i = 0; i < N * 16; i++) Z[i] = (float)rq_rng_normal(&rng);
    for (int i = 0; i < 16 * D; i++) A[i] = (float)rq_rng_normal(&rng);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < D; j++) {
            double s = 0.3 * rq_rng_normal(&rng);
            for (int k = 0; k < 16; k++) s += Z[n * 16 + k] * A[k * D + j];
            X[n * D + j] = (float)(s * (1 + (j % 7)));
        }
    rq_hessian hs;
    RQ_ASSERT(rq_hessian_init(&hs, D) == RQ_OK);
    rq_hessian_add(&hs, X, N);
    rq_hessian_get(&hs, H);
    rq_hessian_free(&hs);
    for (int i = 0; i < D; i++) diag[i] = (float)H[i * D + i];

    for (int ti = 0; ti < N_TYPES; ti++) {
        const int t = types[ti];
        int64_t g;
        rq_group_quantizer q = rq_gg_quantizer(t, &g);
        /* identity Hessian: GPTQ = nearest rounding, static or dynamic groups, with or without
         * the importance weights (all 1) */
        for (int v = 0; v < 3; v++) {
            rq_gptq_cfg cfg = rq_gptq_cfg_default();
            cfg.group = g, cfg.static_groups = v != 1, cfg.act_order = v == 2, cfg.fit_importance = v == 2;
            rq_gptq_info info;
            RQ_CHECK(rq_gptq_quantize(&cfg, &q, I, w, R, D, c1, p1, dq1, NULL, &info) == RQ_OK);
            RQ_CHECK(rq_quant_rtn(&q, w, R, D, g, v == 2 ? ones : NULL, c2, p2, dq2) == RQ_OK);
            RQ_CHECK_MSG(!memcmp(c1, c2, R * D) && !memcmp(dq1, dq2, sizeof(float) * R * D),
                         "%s: GPTQ with H = I differs from RTN (variant %d)", rq_type_name(t), v);
        }
        /* a real Hessian: GPTQ's loss at most RTN's, with the same fits (static groups, H_ii weights) */
        rq_gptq_cfg cfg = rq_gptq_cfg_default();
        cfg.group = g, cfg.static_groups = true, cfg.act_order = true, cfg.fit_importance = true;
        RQ_CHECK(rq_gptq_quantize(&cfg, &q, H, w, R, D, c1, p1, dq1, NULL, NULL) == RQ_OK);
        RQ_CHECK(rq_quant_rtn(&q, w, R, D, g, diag, c2, p2, dq2) == RQ_OK);
        double lg = hloss(w, dq1, H, R, D), lr = hloss(w, dq2, H, R, D);
        RQ_CHECK_MSG(lg <= lr, "%s: GPTQ loss %g > RTN loss %g", rq_type_name(t), lg, lr);
        cfg.act_order = false, cfg.static_groups = false; /* dynamic groups, in order */
        RQ_CHECK(rq_gptq_quantize(&cfg, &q, H, w, R, D, c1, p1, dq1, NULL, NULL) == RQ_OK);
        double ld = hloss(w, dq1, H, R, D);
        RQ_CHECK_MSG(ld <= lr, "%s: GPTQ (dynamic groups) loss %g > RTN loss %g", rq_type_name(t), ld, lr);
        printf("  %-6s loss tr(E H Eᵀ): RTN %.4g, GPTQ act-order %.4g (%.2fx), in order %.4g\n", rq_type_name(t), lr, lg,
               lr / lg, ld);
        /* act-order with dynamic groups cannot give contiguous super-blocks */
        if (is_k(t)) {
            cfg.act_order = true, cfg.static_groups = false;
            RQ_CHECK(rq_gptq_quantize(&cfg, &q, H, w, R, D, c1, p1, dq1, NULL, NULL) == RQ_EINVAL);
        }
    }
    free(w), free(dq1), free(dq2), free(c1), free(c2), free(p1), free(p2), free(I), free(H), free(ones), free(diag);
    free(X), free(Z), free(A);
}

/* ---- end to end ----------------------------------------------------------------------- */

enum { V = 61, E = 96, HQ = 3, HK = 1, HD = 32, FF = 256, NL = 2, NT = 11 };

static void add_rand(rq_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, double sc, double off, float **keep,
                     int *nk) {
    float *d = malloc(sizeof(float) * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) d[i] = (float)(off + sc * rq_rng_normal(&rng));
    int64_t ne[2] = {ne0, ne1};
    RQ_ASSERT(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, ne1 == 1 ? 1 : 2, ne, d, ne0 * ne1 * 4) == RQ_OK);
    keep[(*nk)++] = d;
}

/* a tiny LLaMA: q/k/v/o/gate/up rows of 96 (32-blocks only), down rows of ff (256: K types) */
static const char *write_model(const char *file, int64_t ff) {
    static char paths[4][512];
    static int k;
    char *path = paths[k++ % 4];
    snprintf(path, 512, "%s/%s", tmpdir, file);
    float *keep[64];
    int nk = 0;
    char name[96];
    rq_gguf_writer *w = rq_gguf_writer_new(64); /* a non-default alignment, to be kept */
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_str(w, "general.name", "tiny");
    rq_gguf_writer_set_u32(w, "general.file_type", 0);
    rq_gguf_writer_set_u32(w, "llama.block_count", NL);
    rq_gguf_writer_set_u32(w, "llama.context_length", 64);
    rq_gguf_writer_set_u32(w, "llama.embedding_length", E);
    rq_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)ff);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count", HQ);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", HK);
    rq_gguf_writer_set_f32(w, "llama.rope.freq_base", 1e4f);
    rq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    rq_gguf_writer_set_str(w, "tokenizer.chat_template", "{{ messages }}");
    add_rand(w, "token_embd.weight", E, V, 1.0, 0, keep, &nk);
    add_rand(w, "output_norm.weight", E, 1, 0.1, 1, keep, &nk);
    add_rand(w, "output.weight", E, V, 0.3, 0, keep, &nk);
    for (int l = 0; l < NL; l++) {
#define ADD(sfx, ne0, ne1, sc, off) \
    (snprintf(name, sizeof name, "blk.%d.%s.weight", l, sfx), add_rand(w, name, ne0, ne1, sc, off, keep, &nk))
        ADD("attn_norm", E, 1, 0.1, 1);
        ADD("attn_q", E, HQ * HD, 0.3, 0);
        ADD("attn_k", E, HK * HD, 0.3, 0);
        ADD("attn_v", E, HK * HD, 0.3, 0);
        ADD("attn_output", HQ * HD, E, 0.2, 0);
        ADD("ffn_norm", E, 1, 0.1, 1);
        ADD("ffn_gate", E, ff, 0.3, 0);
        ADD("ffn_up", E, ff, 0.3, 0);
        ADD("ffn_down", ff, E, 0.2, 0);
#undef ADD
    }
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    for (int i = 0; i < nk; i++) free(keep[i]);
    return path;
}

static bool same(const float *a, const float *b, int64_t n) { return !memcmp(a, b, sizeof(float) * (size_t)n); }

static bool models_equal(const rq_model *a, const rq_model *b) {
    const rq_model_config *c = &a->cfg;
    bool ok = same(a->tok_embd, b->tok_embd, c->n_vocab * c->n_embd) && same(a->output.w, b->output.w, c->n_vocab * c->n_embd) &&
              same(a->output_norm, b->output_norm, c->n_embd);
    for (int64_t l = 0; l < c->n_layer; l++) {
        const rq_layer *x = &a->layers[l], *y = &b->layers[l];
        const rq_linear *lx[7] = {&x->wq, &x->wk, &x->wv, &x->wo, &x->w_gate, &x->w_up, &x->w_down};
        const rq_linear *ly[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
        for (int i = 0; i < 7; i++)
            ok &= ly[i]->kind == RQ_LINEAR_F32 && same(lx[i]->w, ly[i]->w, lx[i]->n_out * lx[i]->n_in);
        ok &= same(x->attn_norm, y->attn_norm, c->n_embd) && same(x->ffn_norm, y->ffn_norm, c->n_embd);
    }
    return ok;
}

typedef struct {
    int type, embd;
    rq_rot_kind rot, rot2;
    rq_ptq_method method;
    int act_order;
} e2e_case;

static void test_export(const char *model, const char *ids_path, const e2e_case *k) {
    rq_export_opts o = rq_export_opts_default();
    o.type = k->type, o.embd_type = k->embd, o.q.rotate = k->rot, o.q.rotate2 = k->rot2, o.q.method = k->method;
    o.q.act_order = k->act_order;
    o.q.calib_ids = k->method == RQ_PTQ_GPTQ ? ids_path : NULL;
    char out[512], desc[128];
    snprintf(desc, sizeof desc, "%s/%s %s r1 %s r2 %s %s", rq_type_name(k->type), rq_type_name(k->embd),
             k->method == RQ_PTQ_GPTQ ? "gptq" : "rtn", rq_rot_kind_name(k->rot), rq_rot_kind_name(k->rot2),
             k->act_order ? "act-order" : "in order");
    snprintf(out, sizeof out, "%s/export_%s_%d.gguf", tmpdir, rq_gg_type_cli_name(k->type), (int)k->rot);
    rq_export_result r;
    rq_model *mq = NULL;
    rq_status s = rq_export_run(model, out, &o, &r, &mq);
    RQ_CHECK_MSG(s == RQ_OK, "%s: %s", desc, rq_last_error());
    if (s != RQ_OK) return;
    rq_model *mf;
    RQ_ASSERT(rq_model_load_file(out, &mf) == RQ_OK);
    RQ_CHECK_MSG(models_equal(mq, mf), "%s: reloaded weights differ from the in-memory quantized model's", desc);
    static const int32_t toks[NT] = {1, 5, 9, 60, 2, 33, 17, 48, 0, 21, 7};
    float *a = rq_test_logits(mq, toks, NT), *b = rq_test_logits(mf, toks, NT);
    RQ_CHECK_MSG(!memcmp(a, b, sizeof(float) * NT * V), "%s: logits differ (max %g)", desc, rq_max_abs_diff(a, b, NT * V));
    /* the float model's function is kept up to the quantization error: close at 8 bits (the
     * random tiny model amplifies weight errors: 4 bits move its logits by 20-70 %), and
     * never unrelated logits (relative L2 ≈ 1.4) */
    rq_model *m0;
    RQ_ASSERT(rq_model_load_file(model, &m0) == RQ_OK);
    float *f = rq_test_logits(m0, toks, NT);
    double rel = rq_rel_l2(a, f, NT * V), tol = k->type == RQ_TYPE_Q8_0 || k->type == RQ_TYPE_Q6_K ? 0.1 : 0.9;
    RQ_CHECK_MSG(rel < tol, "%s: logits %g (relative L2) from the float model's", desc, rel);
    printf("  %-45s %s, %.3f bits/weight, logits %.4f from float\n", desc, r.types, r.bits_per_weight, rel);
    free(a), free(b), free(f);
    rq_model_free(m0);
    rq_model_free(mf);
    rq_model_free(mq);

    /* the file: source names and metadata, fallback types, file type, alignment kept */
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(out, &g) == RQ_OK);
    const rq_gguf_tensor *tq = rq_gguf_find_tensor(g, "blk.1.attn_q.weight"),
                         *td = rq_gguf_find_tensor(g, "blk.1.ffn_down.weight"),
                         *te = rq_gguf_find_tensor(g, "token_embd.weight"), *to = rq_gguf_find_tensor(g, "output.weight");
    RQ_CHECK(tq && td && te && to && rq_gguf_find_tensor(g, "blk.0.ffn_norm.weight"));
    if (tq && td && te && to) {
        RQ_CHECK_MSG(tq->type == rq_gg_type_for_row(k->type, E) && td->type == k->type && te->type == k->embd &&
                         to->type == k->embd && tq->ne[0] == E && tq->ne[1] == HQ * HD,
                     "%s: tensor types %s/%s/%s", desc, rq_type_name(tq->type), rq_type_name(td->type),
                     rq_type_name(te->type));
        int64_t rows = 0;
        for (int64_t i = 0; i < rq_gguf_n_tensors(g); i++) rows += rq_gguf_tensor_at(g, i)->offset % 64 != 0;
        RQ_CHECK_MSG(rows == 0 && rq_gguf_alignment(g) == 64, "%s: tensors not aligned to the source's 64", desc);
    }
    int64_t ft = -1;
    rq_gguf_str arch, tmpl;
    RQ_CHECK(rq_gguf_get_i64(g, "general.file_type", &ft) == RQ_OK && ft == (int64_t)rq_gg_file_type(k->type));
    RQ_CHECK(rq_gguf_get_str(g, "general.architecture", &arch) == RQ_OK && rq_gguf_str_eq(arch, "llama"));
    RQ_CHECK(rq_gguf_get_str(g, "tokenizer.chat_template", &tmpl) == RQ_OK && rq_gguf_str_eq(tmpl, "{{ messages }}"));
    bool own = false;
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) own |= !strncmp(rq_gguf_kv_at(g, i)->key, "rotquant.", 9);
    RQ_CHECK_MSG(!own, "%s: a rotquant.* key in a llama.cpp file", desc);
    /* with R1 the norms are fused into the linears and written as ones; without, kept as
     * the source has them */
    const rq_gguf_tensor *tn = rq_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    rq_gguf *src;
    RQ_ASSERT(rq_gguf_open(model, &src) == RQ_OK);
    const rq_gguf_tensor *ts = rq_gguf_find_tensor(src, "blk.0.attn_norm.weight");
    bool ok = tn && tn->type == RQ_TYPE_F32;
    for (int64_t i = 0; ok && i < E; i++)
        ok = ((const float *)tn->data)[i] == (k->rot == RQ_ROT_NONE ? ((const float *)ts->data)[i] : 1.0f);
    RQ_CHECK_MSG(ok, "%s: attn_norm not %s", desc, k->rot == RQ_ROT_NONE ? "the source's" : "ones");
    rq_gguf_close(src);
    rq_gguf_close(g);
}

static bool error_has(const char *needle) {
    bool ok = strstr(rq_last_error(), needle) != NULL;
    if (!ok) printf("  message: %s (expected to contain '%s')\n", rq_last_error(), needle);
    return ok;
}

static void test_bad(const char *model, const char *ids_path) {
    int t;
    RQ_CHECK(rq_gg_type_parse("q4_9", false, "--type", &t) == RQ_EINVAL && error_has("'q4_9' is not one of"));
    RQ_CHECK(rq_gg_type_parse("f16", false, "--type", &t) == RQ_EINVAL);
    RQ_CHECK(rq_gg_type_parse("IQ4_NL", false, "--type", &t) == RQ_OK && t == RQ_TYPE_IQ4_NL);
    RQ_CHECK(rq_gg_type_parse("f16", true, "--embd-type", &t) == RQ_OK && t == RQ_TYPE_F16);
    RQ_CHECK(rq_gg_type_for_row(RQ_TYPE_Q4_K, 96) == RQ_TYPE_Q5_0 && rq_gg_type_for_row(RQ_TYPE_Q6_K, 96) == RQ_TYPE_Q8_0 &&
             rq_gg_type_for_row(RQ_TYPE_Q2_K, 96) == RQ_TYPE_IQ4_NL && rq_gg_type_for_row(RQ_TYPE_Q3_K, 96) == RQ_TYPE_IQ4_NL &&
             rq_gg_type_for_row(RQ_TYPE_Q5_K, 96) == RQ_TYPE_Q5_1 && rq_gg_type_for_row(RQ_TYPE_Q4_K, 80) == -1 &&
             rq_gg_type_for_row(RQ_TYPE_Q4_0, 48) == -1 && rq_gg_type_for_row(RQ_TYPE_Q4_K, 512) == RQ_TYPE_Q4_K);
    rq_export_opts o = rq_export_opts_default();
    o.q.calib_ids = ids_path;
    rq_export_result r;
    char out[512];
    /* a row length no type fits: ffn 80 */
    const char *odd = write_model("odd.gguf", 80);
    snprintf(out, sizeof out, "%s/odd_out.gguf", tmpdir);
    RQ_CHECK(rq_export_run(odd, out, &o, &r, NULL) == RQ_EINVAL && error_has("ffn_down has rows of 80") &&
             !rq_test_file_exists(out));
    /* outputs that cannot be written */
    snprintf(out, sizeof out, "%s/no/such/dir/x.gguf", tmpdir);
    RQ_CHECK(rq_export_run(model, out, &o, &r, NULL) != RQ_OK && !rq_test_file_exists(out));
    snprintf(out, sizeof out, "%s", tmpdir); /* a directory */
    RQ_CHECK(rq_export_run(model, out, &o, &r, NULL) != RQ_OK);
    /* online transforms */
    snprintf(out, sizeof out, "%s/never.gguf", tmpdir);
    o.q.abits = 8;
    RQ_CHECK(rq_export_run(model, out, &o, &r, NULL) == RQ_EUNSUPPORTED && error_has("online") && !rq_test_file_exists(out));
    o.q.abits = 16, o.q.rotate3 = RQ_ROT_HADAMARD;
    RQ_CHECK(rq_export_run(model, out, &o, &r, NULL) == RQ_EUNSUPPORTED && !rq_test_file_exists(out));
    /* Gemma-3 (post-norms): R1 would have to run online */
    const char *gemma = "models/gemma-3-270m-q4_k_m.gguf";
    if (rq_test_file_exists(gemma)) {
        o = rq_export_opts_default();
        o.q.method = RQ_PTQ_RTN;
        RQ_CHECK(rq_export_run(gemma, out, &o, &r, NULL) == RQ_EUNSUPPORTED && error_has("post-norms") &&
                 !rq_test_file_exists(out));
    } else {
        printf("  (no %s: Gemma-3's refusal not checked)\n", gemma);
    }
    /* the CLI: an unknown type, and a failing export writes nothing */
    const char *cli = getenv("RQ_CLI");
    if (cli) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "'%s' export -m '%s' -o '%s' --type q9_k 2>'%s/err.txt'", cli, model, out, tmpdir);
        int rc = system(cmd);
        char err[512] = {0}, ep[600];
        snprintf(ep, sizeof ep, "%s/err.txt", tmpdir);
        FILE *f = fopen(ep, "r");
        if (f) {
            size_t n = fread(err, 1, sizeof err - 1, f);
            err[n] = 0;
            fclose(f);
        }
        RQ_CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && strstr(err, "rotquant: error: --type: 'q9_k'") &&
                         !rq_test_file_exists(out),
                     "CLI unknown type: rc %d, '%s'", rc, err);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_ggquant_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    rq_threads_set(0);
    rq_rng_seed(&rng, 2024);

    /* encodings, and the oracle file for the gguf package */
    rq_gguf_writer *gw = rq_gguf_writer_new(0);
    float *keep[4 * N_TYPES];
    int nk = 0;
    test_encode(gw, keep, &nk);
    char oracle[512];
    snprintf(oracle, sizeof oracle, "%s/oracle.gguf", tmpdir);
    RQ_ASSERT(rq_gguf_writer_write(gw, oracle) == RQ_OK);
    rq_gguf_writer_free(gw);
    for (int i = 0; i < nk; i++) free(keep[i]);
    if (system("python3 -c 'import gguf, numpy' 2>/dev/null") == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "python3 tests/ref/gg_dequant_ref.py '%s'", oracle);
        int rc = system(cmd);
        RQ_CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the gguf package's dequantizer disagrees (status %d)", rc);
    } else {
        printf("  (python3 with gguf and numpy not found: the gguf package's oracle not run; scripts/install-deps.sh)\n");
    }

    test_vs_ggml_ref();
    test_gptq();

    const char *model = write_model("tiny.gguf", FF);
    enum { CAL_N = 4, CAL_LEN = 24 };
    int32_t ids[CAL_N * CAL_LEN];
    for (int i = 0; i < CAL_N * CAL_LEN; i++) ids[i] = (int32_t)rq_rng_below(&rng, V);
    char ids_path[512];
    snprintf(ids_path, sizeof ids_path, "%s/cal.ids", tmpdir);
    RQ_ASSERT(rq_quant_calib_ids_write(ids_path, ids, CAL_N, CAL_LEN) == RQ_OK);
    static const e2e_case cases[] = {
        {RQ_TYPE_Q4_0, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_IQ4_NL, RQ_TYPE_Q8_0, RQ_ROT_NONE, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_Q4_1, RQ_TYPE_F16, RQ_ROT_ORTHOGONAL, RQ_ROT_GSR, RQ_PTQ_GPTQ, 0},
        {RQ_TYPE_Q5_0, RQ_TYPE_F32, RQ_ROT_GH, RQ_ROT_NONE, RQ_PTQ_RTN, -1},
        {RQ_TYPE_Q5_1, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_Q8_0, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_Q2_K, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_Q3_K, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, 0},
        {RQ_TYPE_Q4_K, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_NONE, RQ_PTQ_GPTQ, -1},
        {RQ_TYPE_Q5_K, RQ_TYPE_Q8_0, RQ_ROT_NONE, RQ_ROT_NONE, RQ_PTQ_GPTQ, 0},
        {RQ_TYPE_Q6_K, RQ_TYPE_Q8_0, RQ_ROT_GSR, RQ_ROT_GSR, RQ_PTQ_GPTQ, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_export(model, ids_path, &cases[i]);
    test_bad(model, ids_path);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

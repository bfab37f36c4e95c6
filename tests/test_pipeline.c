/* The quantize pipeline as library calls (src/quant/pipeline.h), on the tiny random LLaMA:
 *   - rq_quant_run writes a file that loads and computes exactly (bit for bit) what the
 *     file written by the lower-level calls does (rotations made and folded by hand,
 *     rq_model_set_online, rq_ptq_run, rq_qmodel_write), for W4 GPTQ with A8/KV4, W2 LUT
 *     with R2, W3 RTN min/max and W16 with A4/KV4; its metadata records the settings;
 *   - the file on the reference path computes what the fake-quantized model in memory does;
 *   - calibration ids round-trip through rq_quant_calib_ids_write/read, malformed files
 *     and bad options give RQ_EINVAL with a message naming the input. */
#include "tiny_llama.h"

#include "base/pool.h"
#include "model/fold.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/pipeline.h"
#include "quant/qmodel.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file on the reference path holds the dequantized weights the in-memory model holds
 * (the same fp16 parameters times the same codes) and runs the same forward; only the
 * order of float sums may differ (packed KV cache, BLAS blocking): ~1e-6 relative. */
#define TOL_REF_REL 1e-4

enum { N_TOK = 12, CAL_N = 4, CAL_LEN = 24 };
static const int32_t toks[N_TOK] = {1, 5, 9, 60, 2, 33, 17, 48, 0, 66, 21, 7};

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    RQ_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static bool error_has(const char *needle) {
    bool ok = strstr(rq_last_error(), needle) != NULL;
    if (!ok) printf("  message: %s (expected to contain '%s')\n", rq_last_error(), needle);
    return ok;
}

static void test_calib_ids(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/ids.txt", tmpdir);
    int32_t ids[3 * 17];
    int32_t top = 0;
    for (int i = 0; i < 3 * 17; i++) ids[i] = (i * 37 + 11) % V, top = ids[i] > top ? ids[i] : top;
    RQ_CHECK(rq_quant_calib_ids_write(path, ids, 3, 17) == RQ_OK);
    int32_t *got = NULL;
    int64_t n = 0, len = 0;
    RQ_CHECK(rq_quant_calib_ids_read(path, V, &got, &n, &len) == RQ_OK);
    RQ_CHECK(n == 3 && len == 17 && got && !memcmp(got, ids, sizeof ids));
    rq_free(got);
    /* the largest id one past the vocabulary */
    RQ_CHECK(rq_quant_calib_ids_read(path, top, &got, &n, &len) == RQ_EINVAL && error_has("out of range") && !got);

    static const struct { const char *text, *msg; } bad[] = {
        {"1 2 3\n4 5\n", "earlier lines"},
        {"1 2 3\n4 5 6\n7 8", "last line"},
        {"1 2 x\n", "unexpected character"},
        {"1 2 67\n", "out of range"},
        {"5\n", "no calibration sequences"},
        {"\n\n", "no calibration sequences"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i].text);
        got = NULL;
        RQ_CHECK_MSG(rq_quant_calib_ids_read(path, V, &got, &n, &len) == RQ_EINVAL && error_has(bad[i].msg) &&
                         error_has(path) && !got,
                     "bad ids file %zu", i);
    }
    write_text(path, "  4 5\t6\r\n7 8 9\n\n");
    RQ_CHECK(rq_quant_calib_ids_read(path, V, &got, &n, &len) == RQ_OK && n == 2 && len == 3 && got[5] == 9);
    rq_free(got);
    snprintf(path, sizeof path, "%s/absent.txt", tmpdir);
    RQ_CHECK(rq_quant_calib_ids_read(path, V, &got, &n, &len) != RQ_OK && error_has("absent.txt"));
}

static void test_bad_opts(const char *model) {
    static const struct { const char *name, *msg; } cases[] = {
        {"wbits 5", "--wbits"},       {"abits 5", "--abits"},         {"kvbits 8", "--kvbits"},
        {"asym", "--asym"},           {"kv_group", "--kv-group"},     {"calib_ids+n", "--calib-ids"},
        {"w16 save", "--calib-save"}, {"rtn save", "--calib-save"},   {"rtn act_order", "--act-order"},
        {"embd", "--embd-type"},      {"aclip 0", "--aclip"},         {"group 0", "--group"},
        {"rotate3", "--rotate"},      {"seq clip", "--quantizer seq"}, {"seq lut", "--quantizer seq"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rq_quant_opts o = rq_quant_opts_default();
        switch (i) {
        case 0: o.wbits = 5; break;
        case 1: o.abits = 5; break;
        case 2: o.kvbits = 8; break;
        case 3: o.asym = true; break;
        case 4: o.kv_group = 8; break;
        case 5: o.calib_ids = "ids.txt", o.calib_n = 4; break;
        case 6: o.wbits = 16, o.calib_save = "x.txt"; break;
        case 7: o.method = RQ_PTQ_RTN, o.calib_save = "x.txt"; break;
        case 8: o.method = RQ_PTQ_RTN, o.act_order = 1; break;
        case 9: o.embd_type = "q4_0"; break;
        case 10: o.abits = 8, o.aclip = 0; break;
        case 11: o.group = 0; break;
        case 12: o.rotate3 = RQ_ROT_KIND_COUNT; break;
        case 13: o.seq_grid = true, o.fit = RQ_FIT_CLIP; break;
        case 14: o.seq_grid = true, o.quantizer = RQ_QPARAM_LUT; break;
        }
        RQ_CHECK_MSG(rq_quant_opts_check(&o) == RQ_EINVAL && error_has(cases[i].msg), "option check: %s",
                     cases[i].name);
        char out[512];
        snprintf(out, sizeof out, "%s/bad.gguf", tmpdir);
        rq_quant_result r;
        RQ_CHECK_MSG(rq_quant_run(model, out, &o, &r) == RQ_EINVAL && !rq_test_file_exists(out), "run: %s",
                     cases[i].name);
    }
    /* a block the model cannot take: R3 gsr with a block that does not divide head_dim */
    rq_quant_opts o = rq_quant_opts_default();
    o.kvbits = 4, o.block3 = 3, o.method = RQ_PTQ_RTN, o.group = 16;
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(model, &m) == RQ_OK);
    rq_quant_plan p;
    RQ_CHECK(rq_quant_plan_make(m, &o, &p) != RQ_OK && error_has("R3"));
    rq_model_free(m);
}

/* --quantizer seq: every group of the file dequantizes to SEQ's levels ±d/2, ±3d/2 (no
 * zero, symmetric: in a group the largest magnitude is the smallest one or 3 times it) */
static void test_seq_grid(const char *model, const char *ids_path) {
    rq_quant_opts o = rq_quant_opts_default();
    o.wbits = 2, o.group = 16, o.seq_grid = true, o.embd_type = "f32", o.calib_ids = ids_path;
    char out[512];
    snprintf(out, sizeof out, "%s/seq.gguf", tmpdir);
    rq_quant_result r;
    RQ_ASSERT(rq_quant_run(model, out, &o, &r) == RQ_OK);
    rq_gguf *g;
    rq_model *m;
    rq_model_load_opts lo = {.ref_linear = true};
    RQ_ASSERT(rq_gguf_open(out, &g) == RQ_OK && rq_model_load_ex(g, &lo, &m) == RQ_OK);
    int64_t groups = 0, bad = 0;
    for (int l = 0; l < NL; l++) {
        const rq_linear *a = &m->layers[l].w_gate;
        for (int64_t k = 0; k < a->n_out * a->n_in; k += 16, groups++) {
            float mn = INFINITY, mx = 0;
            for (int j = 0; j < 16; j++) mn = fminf(mn, fabsf(a->w[k + j])), mx = fmaxf(mx, fabsf(a->w[k + j]));
            bad += !(mn > 0) || (mx != mn && mx != 3.0f * mn);
        }
    }
    RQ_CHECK_MSG(bad == 0 && groups > 0, "--quantizer seq: %lld of %lld groups off SEQ's grid", (long long)bad,
                 (long long)groups);
    rq_model_free(m);
    rq_gguf_close(g);
}

typedef struct {
    const char *name;
    int wbits, abits, kvbits;
    rq_ptq_method method;
    rq_qparam_kind quantizer;
    rq_weight_fit fit;
    rq_rot_kind r1, r2;
    bool asym;
    double aclip;
} config;

/* the model written through the lower-level calls, every setting spelled out here */
static void quantize_by_hand(const char *model, const config *cf, const int32_t *ids, const char *out) {
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(model, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    const uint64_t seed = 5;
    const int64_t group = 16;
    bool blk1 = cf->r1 == RQ_ROT_GSR || cf->r1 == RQ_ROT_GH, online = cf->abits < 16 || cf->kvbits < 16;
    rq_rotation r1 = rq_rot_make(cf->r1, E, blk1 ? group : 0, seed);
    rq_rotation r2 = rq_rot_make(cf->r2, HD, 0, seed + 1);
    rq_rot_kind k34 = online ? cf->r1 : RQ_ROT_NONE;
    bool blk34 = k34 == RQ_ROT_GSR || k34 == RQ_ROT_GH;
    rq_rotation r3 = rq_rot_make(k34, HD, blk34 ? HD : 0, seed + 2);
    rq_rotation r4 = rq_rot_make(k34, FF, blk34 ? 16 : 0, seed + 3); /* 16 divides FF = 80 */
    RQ_ASSERT(rq_fold_model(m, &r1, &r2) == RQ_OK && rq_fold_r4(m, &r4) == RQ_OK);
    rq_online_cfg oc = {.act = {.bits = cf->abits == 16 ? 0 : cf->abits, .asym = cf->asym, .clip = (float)cf->aclip},
                        .kv_bits = cf->kvbits == 16 ? 0 : cf->kvbits, .r3 = r3, .r4 = r4};
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    rq_ptq_result res = {0};
    if (cf->wbits != 16) {
        rq_ptq_opts po = rq_ptq_opts_default();
        po.wbits = cf->wbits, po.group = group, po.quantizer = cf->quantizer, po.method = cf->method;
        po.act_order = po.fit_importance = cf->method == RQ_PTQ_GPTQ;
        po.clip_search = cf->fit != RQ_FIT_MINMAX;
        po.least_squares = cf->fit == RQ_FIT_LS;
        RQ_ASSERT(rq_ptq_run(m, &po, ids, CAL_N, CAL_LEN, &res) == RQ_OK);
    }
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = (uint32_t)cf->wbits, qi.group = (uint32_t)group, qi.quantizer = cf->quantizer;
    snprintf(qi.method, sizeof qi.method, "by-hand");
    qi.r1 = r1, qi.r2 = r2, qi.r3 = r3, qi.r4 = r4;
    qi.abits = (uint32_t)cf->abits, qi.asym = cf->asym, qi.aclip = (float)cf->aclip;
    qi.kvbits = (uint32_t)cf->kvbits, qi.kv_group = cf->kvbits < 16 ? HD : 0, qi.kv_clip = 1.0f;
    snprintf(qi.embd_type, sizeof qi.embd_type, "f32");
    RQ_ASSERT(rq_qmodel_write(m, g, &res, &qi, out) == RQ_OK);
    rq_ptq_result_free(&res);
    rq_model_free(m);
    rq_gguf_close(g);
}

static void test_same_as_steps(const char *model, const config *cf, const char *ids_path, const int32_t *ids) {
    char out_lib[512], out_hand[512];
    snprintf(out_lib, sizeof out_lib, "%s/%s.lib.gguf", tmpdir, cf->name);
    snprintf(out_hand, sizeof out_hand, "%s/%s.hand.gguf", tmpdir, cf->name);
    rq_quant_opts o = rq_quant_opts_default();
    o.wbits = cf->wbits, o.group = 16, o.abits = cf->abits, o.kvbits = cf->kvbits, o.asym = cf->asym;
    o.aclip = cf->aclip, o.method = cf->method, o.quantizer = cf->quantizer, o.fit = cf->fit;
    o.rotate = cf->r1, o.rotate2 = cf->r2, o.embd_type = "f32", o.seed = 5;
    bool calibrated = cf->wbits != 16 && cf->method == RQ_PTQ_GPTQ;
    if (calibrated) o.calib_ids = ids_path;
    rq_quant_result r;
    rq_status s = rq_quant_run(model, out_lib, &o, &r);
    RQ_CHECK_MSG(s == RQ_OK, "%s: rq_quant_run: %s", cf->name, rq_last_error());
    if (s != RQ_OK) return;
    quantize_by_hand(model, cf, ids, out_hand);

    /* the metadata records the settings */
    rq_gguf *g;
    rq_qinfo qi;
    RQ_ASSERT(rq_gguf_open(out_lib, &g) == RQ_OK);
    RQ_CHECK(rq_qinfo_read(g, &qi) == RQ_OK && qi.present);
    rq_gguf_close(g);
    RQ_CHECK(qi.wbits == (uint32_t)cf->wbits && qi.abits == (uint32_t)cf->abits && qi.kvbits == (uint32_t)cf->kvbits);
    RQ_CHECK(qi.r1.kind == cf->r1 && qi.r2.kind == cf->r2 && qi.seed == 5 && !strcmp(qi.embd_type, "f32"));
    RQ_CHECK(qi.r3.kind == (cf->abits < 16 || cf->kvbits < 16 ? cf->r1 : RQ_ROT_NONE) && qi.r4.kind == qi.r3.kind);
    RQ_CHECK(!strcmp(qi.method, cf->wbits == 16 ? "none" : cf->method == RQ_PTQ_GPTQ ? "gptq" : "rtn"));
    RQ_CHECK(calibrated ? qi.calib_n == CAL_N && qi.calib_len == CAL_LEN && !strcmp(qi.calib, "cal.ids")
                        : qi.calib_n == 0 && qi.calib[0] == 0);
    RQ_CHECK(r.calib_n == (calibrated ? CAL_N : 0) && r.qi.bits_per_weight == qi.bits_per_weight);

    /* the two files compute the same function, bit for bit (packed kernels), and the
     * library's on the reference path what the fake-quantized model in memory does */
    rq_model *ml, *mh;
    RQ_ASSERT(rq_model_load_file(out_lib, &ml) == RQ_OK && rq_model_load_file(out_hand, &mh) == RQ_OK);
    float *a = rq_test_logits(ml, toks, N_TOK), *b = rq_test_logits(mh, toks, N_TOK);
    RQ_CHECK_MSG(!memcmp(a, b, sizeof(float) * N_TOK * V), "%s: logits differ from the lower-level calls' by %g",
                 cf->name, rq_max_abs_diff(a, b, N_TOK * V));
    free(b);
    rq_model_free(mh);
    rq_model_free(ml);
    free(a);
}

/* the library's steps by themselves: the model in memory after rq_quant_ptq vs the file */
/* --loss-report: rq_quant_run with the same options writes, per linear in model order, the
 * tensor, its layer, shape, group and the loss the step-by-step run computed */
static void check_loss_report(const char *model, const rq_quant_opts *o0, const rq_ptq_result *res) {
    rq_quant_opts o = *o0;
    char out[512], rep[512];
    snprintf(out, sizeof out, "%s/report.gguf", tmpdir);
    snprintf(rep, sizeof rep, "%s/report.tsv", tmpdir);
    o.loss_report = rep;
    rq_quant_result r;
    RQ_ASSERT(rq_quant_run(model, out, &o, &r) == RQ_OK);
    FILE *f = fopen(rep, "r");
    RQ_ASSERT(f);
    char line[512];
    int64_t n = 0, comments = 0;
    bool header = false;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            comments++;
            continue;
        }
        if (!header) {
            header = !strcmp(line, "tensor\tlayer\tn_out\tn_in\tgroup\tloss\n");
            RQ_CHECK_MSG(header, "report header: %s", line);
            continue;
        }
        char name[64];
        long long layer, n_out, n_in, group;
        double loss;
        RQ_ASSERT(sscanf(line, "%63s %lld %lld %lld %lld %lf", name, &layer, &n_out, &n_in, &group, &loss) == 6);
        RQ_ASSERT(n < res->n_lin);
        const rq_qlinear *q = &res->lin[n];
        long long want_layer = -1;
        RQ_CHECK(sscanf(q->name, "blk.%lld.", &want_layer) == 1 && layer == want_layer && layer == n / 7);
        RQ_CHECK_MSG(!strcmp(name, q->name) && n_out == q->n_out && n_in == q->n_in && group == q->group,
                     "report line %lld: %s", (long long)n, line);
        RQ_CHECK_MSG(q->loss > 0 && fabs(loss - q->loss) <= 1e-8 * q->loss, "report loss %s: %.9g vs %.9g", name, loss,
                     q->loss);
        n++;
    }
    fclose(f);
    RQ_CHECK(comments >= 1 && n == res->n_lin);
    /* refused: without quantized weights, without an output model */
    o.wbits = 16;
    RQ_CHECK(rq_quant_opts_check(&o) == RQ_EINVAL && error_has("--loss-report"));
    char ids[512];
    snprintf(ids, sizeof ids, "%s/report.ids", tmpdir);
    o = *o0;
    o.loss_report = rep, o.calib_save = ids;
    RQ_CHECK(rq_quant_run(model, NULL, &o, &r) == RQ_EINVAL && error_has("--loss-report"));
}

static void test_steps_vs_file(const char *model, const char *ids_path) {
    rq_quant_opts o = rq_quant_opts_default();
    o.wbits = 4, o.group = 16, o.abits = 8, o.kvbits = 4, o.embd_type = "f32", o.calib_ids = ids_path;
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(model, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    rq_quant_plan p;
    int32_t *ids = NULL;
    rq_ptq_result res = {0};
    RQ_CHECK(rq_quant_plan_make(m, &o, &p) == RQ_OK && p.calibrated && !p.float_weights);
    RQ_CHECK(m->online.cfg.kv_bits == 0 && m->online.cfg.act.bits == 0); /* checked, then off again */
    RQ_CHECK(rq_quant_fold(m, &p) == RQ_OK);
    RQ_CHECK(rq_quant_calibrate(m, NULL, &o, &p, &ids) == RQ_OK && p.calib_n == CAL_N && p.calib_len == CAL_LEN);
    RQ_CHECK(rq_quant_arm(m, &p) == RQ_OK && m->online.cfg.kv_bits == 4 && m->online.cfg.act.bits == 8);
    RQ_CHECK(rq_quant_ptq(m, &p, ids, &res) == RQ_OK && res.n_lin == NL * 7);
    rq_qinfo qi;
    rq_quant_qinfo(m, &o, &p, &qi);
    char out[512];
    snprintf(out, sizeof out, "%s/steps.gguf", tmpdir);
    RQ_CHECK(rq_qmodel_write(m, g, &res, &qi, out) == RQ_OK);
    rq_model *mf;
    rq_gguf *gf;
    rq_model_load_opts lo = {.ref_linear = true};
    RQ_ASSERT(rq_gguf_open(out, &gf) == RQ_OK && rq_model_load_ex(gf, &lo, &mf) == RQ_OK);
    float *a = rq_test_logits(m, toks, N_TOK), *b = rq_test_logits(mf, toks, N_TOK);
    double rel = rq_rel_l2(b, a, N_TOK * V);
    printf("steps vs file (reference path): relative L2 %.3g\n", rel);
    RQ_CHECK(rel <= TOL_REF_REL);
    free(a);
    free(b);
    rq_model_free(mf);
    rq_gguf_close(gf);
    check_loss_report(model, &o, &res);
    rq_ptq_result_free(&res);
    rq_free(ids);
    rq_model_free(m);

    /* calib_save writes the ids it used; without out, rq_quant_run only does that */
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved.ids", tmpdir);
    o.calib_save = saved;
    rq_quant_result r;
    RQ_CHECK(rq_quant_run(model, NULL, &o, &r) == RQ_OK && r.calib_n == CAL_N);
    int32_t *x = NULL, *y = NULL;
    int64_t nx, lx, ny, ly;
    RQ_CHECK(rq_quant_calib_ids_read(ids_path, V, &x, &nx, &lx) == RQ_OK &&
             rq_quant_calib_ids_read(saved, V, &y, &ny, &ly) == RQ_OK && nx == ny && lx == ly &&
             !memcmp(x, y, sizeof(int32_t) * (size_t)(nx * lx)));
    rq_free(x);
    rq_free(y);
    /* generating needs the tokenizer, which the tiny model has not */
    o = rq_quant_opts_default();
    o.group = 16, o.calib_n = 2, o.calib_len = 8;
    RQ_CHECK(rq_quant_run(model, out, &o, &r) != RQ_OK);
    /* a file already quantized by rotquant is not an input */
    o = rq_quant_opts_default();
    o.group = 16, o.method = RQ_PTQ_RTN;
    char out2[512];
    snprintf(out2, sizeof out2, "%s/again.gguf", tmpdir);
    RQ_CHECK(rq_quant_run(out, out2, &o, &r) == RQ_EINVAL && error_has("already quantized"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_pipeline_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    rq_threads_set(0);
    init_weights();
    (void)naive_forward;
    const char *model = write_tiny("tiny.gguf", (tiny_opts){0});

    int32_t ids[CAL_N * CAL_LEN];
    rq_rng rng;
    rq_rng_seed(&rng, 99);
    for (int i = 0; i < CAL_N * CAL_LEN; i++) ids[i] = (int32_t)rq_rng_below(&rng, V);
    char ids_path[512];
    snprintf(ids_path, sizeof ids_path, "%s/cal.ids", tmpdir);
    RQ_ASSERT(rq_quant_calib_ids_write(ids_path, ids, CAL_N, CAL_LEN) == RQ_OK);

    test_calib_ids();
    test_bad_opts(model);
    static const config configs[] = {
        {"w4a8kv4", 4, 8, 4, RQ_PTQ_GPTQ, RQ_QPARAM_UNIFORM, RQ_FIT_LS, RQ_ROT_GSR, RQ_ROT_NONE, false, 1.0},
        {"w2lut", 2, 16, 16, RQ_PTQ_GPTQ, RQ_QPARAM_LUT, RQ_FIT_LS, RQ_ROT_HADAMARD, RQ_ROT_WALSH, false, 1.0},
        {"w3rtn", 3, 16, 4, RQ_PTQ_RTN, RQ_QPARAM_UNIFORM, RQ_FIT_MINMAX, RQ_ROT_GH, RQ_ROT_NONE, false, 1.0},
        {"w16a4kv4", 16, 4, 4, RQ_PTQ_GPTQ, RQ_QPARAM_UNIFORM, RQ_FIT_LS, RQ_ROT_GSR, RQ_ROT_NONE, true, 0.9},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) test_same_as_steps(model, &configs[i], ids_path, ids);
    test_steps_vs_file(model, ids_path);
    test_seq_grid(model, ids_path);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

/* Quantization-aware training's 2-bit quantizers on the runtime grid (src/train/qat.h):
 * the exported packed file computes exactly what the training graph computed, a start from
 * a PTQ result reproduces it bit for bit, block-wise freezing, bad input, and `rotquant qat
 * --checkpoint-act` (activation checkpointing in phase 2) writing the same file.
 *
 * Oracles: the packed file loaded on the reference path (weights dequantized from the
 * file's codes and fp16 parameters by format/qpacked.h, code independent of the
 * quantizers) must hold the training graph's fake-quantized weights bit for bit; loaded on
 * the fast path (W2L/W2U kernels) its logits must equal the training graph's float logits
 * to the kernels' summation-order tolerance; a PTQ start must give back the PTQ's own
 * dequantized weights. A post-norm (Gemma-3 layout) model trains and exports with route (b)
 * (per-linear input rotations) by default. */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "model/fold.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "train/params.h"
#include "train/qat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

/* a tiny LLaMA whose linear widths take groups of 32 and 64 (the packed kernels' sizes) */
enum { V = 61, E = 64, H = 4, HK = 2, HD = 16, FF = 128, NL = 2, NT = 13 };
/* packed kernels (float activations) against BLAS: different summation order over 64-128
 * terms through 2 layers; observed ~1e-6 relative to the largest logit */
#define LOGIT_REL_TOL 1e-4

static rq_rng rng;
static char path_model[256], path_out[256];

static void add_rand(rq_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, double scale, double offset,
                     float **keep) {
    float *d = malloc(sizeof(float) * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) d[i] = (float)(offset + scale * rq_rng_normal(&rng));
    int64_t ne[2] = {ne0, ne1};
    RQ_ASSERT(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, ne1 == 1 ? 1 : 2, ne, d, ne0 * ne1 * 4) == RQ_OK);
    *keep = d;
}

/* gemma: the same shapes as a Gemma-3 (q/k norms, post-norms, a sliding window of 4 on every
 * other layer) */
static void write_model_arch(const char *path, int nl, bool gemma) {
    float *keep[(NL + 2) * 13 + 3];
    int nk = 0;
    char name[96], key[96];
    const char *an = gemma ? "gemma3" : "llama";
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", an);
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", an, k), key)
    rq_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)nl);
    rq_gguf_writer_set_u32(w, KEY("context_length"), 64);
    rq_gguf_writer_set_u32(w, KEY("embedding_length"), E);
    rq_gguf_writer_set_u32(w, KEY("feed_forward_length"), FF);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count"), H);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), HK);
    rq_gguf_writer_set_f32(w, KEY("rope.freq_base"), 1e4f);
    rq_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (gemma) {
        rq_gguf_writer_set_u32(w, KEY("attention.key_length"), HD);
        rq_gguf_writer_set_u32(w, KEY("attention.value_length"), HD);
        rq_gguf_writer_set_u32(w, KEY("attention.sliding_window"), 4);
        rq_gguf_writer_set_u32(w, KEY("attention.sliding_window_pattern"), 2);
    }
#undef KEY
    add_rand(w, "token_embd.weight", E, V, 1.0, 0, &keep[nk++]);
    add_rand(w, "output_norm.weight", E, 1, 0.1, 1, &keep[nk++]);
    add_rand(w, "output.weight", E, V, 0.3, 0, &keep[nk++]);
#define ADD(sfx, ne0, ne1, sc, off) \
    (snprintf(name, sizeof name, "blk.%d.%s.weight", l, sfx), add_rand(w, name, ne0, ne1, sc, off, &keep[nk++]))
    for (int l = 0; l < nl; l++) {
        ADD("attn_norm", E, 1, 0.1, 1);
        ADD("attn_q", E, H * HD, 0.3, 0);
        ADD("attn_k", E, HK * HD, 0.3, 0);
        ADD("attn_v", E, HK * HD, 0.3, 0);
        ADD("attn_output", H * HD, E, 0.2, 0);
        ADD("ffn_norm", E, 1, 0.1, 1);
        ADD("ffn_gate", E, FF, 0.3, 0);
        ADD("ffn_up", E, FF, 0.3, 0);
        ADD("ffn_down", FF, E, 0.2, 0);
        if (gemma) {
            ADD("attn_q_norm", HD, 1, 0.2, 1);
            ADD("attn_k_norm", HD, 1, 0.2, 1);
            ADD("post_attention_norm", E, 1, 0.1, 1);
            ADD("post_ffw_norm", E, 1, 0.1, 1);
        }
    }
#undef ADD
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    for (int i = 0; i < nk; i++) free(keep[i]);
}

static void write_model(const char *path, int nl) { write_model_arch(path, nl, false); }

/* the model's list with only the block linears trainable (QAT's set-up) */
static void linears_only(rq_params *p) {
    for (int64_t i = 0; i < p->count; i++) p->p[i].trainable = p->p[i].group == RQ_PGROUP_LINEAR && !strncmp(p->p[i].name, "blk.", 4);
}

static void logits_of(rq_model *m, const int32_t *tok, float *out) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, NT, NT, true, &st) == RQ_OK);
    RQ_ASSERT(rq_model_forward(st, tok, NT, 0, RQ_LOGITS_ALL) == RQ_OK);
    memcpy(out, st->logits, sizeof(float) * NT * V);
    rq_state_free(st);
}

/* move the latents and quantizer parameters off their start, as training would */
static void perturb(rq_qat *q) {
    for (int64_t j = 0; j < q->list.count; j++) {
        rq_param *e = &q->list.p[j];
        if (!e->trainable) continue;
        double sc = e->group == RQ_PGROUP_QUANT ? 0.3 : 0.02;
        for (int64_t i = 0; i < e->n; i++) e->data[i] += (float)(sc * rq_rng_normal(&rng));
    }
}

/* export q's model to path_out and check it: reference-path weights bit-identical to the
 * training graph's, fast-path logits equal */
static void check_export(rq_model *m, const rq_gguf *src, rq_qat *q, int64_t file_group, const char *what) {
    rq_ptq_result res;
    rq_qparam_kind kind;
    RQ_ASSERT(rq_qat_export(q, file_group, &res, &kind) == RQ_OK);
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = 2, qi.group = (uint32_t)file_group, qi.quantizer = kind;
    strcpy(qi.method, "qat");
    strcpy(qi.embd_type, "f32");
    qi.r1 = rq_rot_make(RQ_ROT_NONE, E, 0, 0), qi.r2 = rq_rot_make(RQ_ROT_NONE, HD, 0, 0);
    RQ_ASSERT(rq_qmodel_write(m, src, &res, &qi, path_out) == RQ_OK);
    rq_ptq_result_free(&res);

    rq_gguf *g;
    rq_model *mr, *mf;
    rq_model_load_opts ref = {.ref_linear = true};
    RQ_ASSERT(rq_gguf_open(path_out, &g) == RQ_OK);
    RQ_ASSERT(rq_model_load_ex(g, &ref, &mr) == RQ_OK);
    rq_gguf_close(g);
    int diff = 0;
    for (int l = 0; l < NL; l++) {
        rq_linear *a[7] = {&m->layers[l].wq, &m->layers[l].wk, &m->layers[l].wv, &m->layers[l].wo,
                           &m->layers[l].w_gate, &m->layers[l].w_up, &m->layers[l].w_down};
        rq_linear *b[7] = {&mr->layers[l].wq, &mr->layers[l].wk, &mr->layers[l].wv, &mr->layers[l].wo,
                           &mr->layers[l].w_gate, &mr->layers[l].w_up, &mr->layers[l].w_down};
        for (int i = 0; i < 7; i++) diff += memcmp(a[i]->w, b[i]->w, sizeof(float) * (size_t)(a[i]->n_out * a[i]->n_in)) != 0;
    }
    RQ_CHECK_MSG(diff == 0, "%s: %d linears of the file differ from the training graph's weights", what, diff);
    rq_model_free(mr);

    RQ_ASSERT(rq_model_load_file(path_out, &mf) == RQ_OK);
    char desc[256];
    rq_model_describe(mf, desc, sizeof desc);
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (int32_t)rq_rng_below(&rng, V);
    static float la[NT * V], lb[NT * V];
    logits_of(m, tok, la);
    logits_of(mf, tok, lb);
    double err = 0, big = 0;
    for (int i = 0; i < NT * V; i++) err = fmax(err, fabs(la[i] - lb[i])), big = fmax(big, fabs(la[i]));
    printf("  %-28s file %s: weights bit-identical, logits rel err %.2e (tol %.0e)\n", what, desc, err / big,
           LOGIT_REL_TOL);
    RQ_CHECK_MSG(err <= LOGIT_REL_TOL * big, "%s: fast-path logits differ by %.3g (max %.3g)", what, err, big);
    rq_model_free(mf);
}

static void test_export(rq_fq2_kind kind, int64_t group, int64_t file_group, const char *what) {
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(path_model, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    rq_params p;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK);
    linears_only(&p);
    rq_qat *q;
    rq_qat_cfg cfg = {.fq2 = true, .kind = kind, .group = group, .init_logit = 4.0f};
    RQ_ASSERT(rq_qat_new_cfg(&p, &cfg, &q) == RQ_OK);
    perturb(q);
    rq_qat_apply(q, &p);
    /* at most 4 distinct values per group of the model's weights */
    const float *w = m->layers[1].w_up.w;
    int64_t gg = group ? group : E, worst = 0;
    for (int64_t k = 0; k < FF * E / gg; k++) {
        float seen[8];
        int ns = 0;
        for (int64_t i = 0; i < gg && ns < 8; i++) {
            int f = 0;
            for (int s = 0; s < ns; s++) f |= seen[s] == w[k * gg + i];
            if (!f) seen[ns++] = w[k * gg + i];
        }
        worst = ns > worst ? ns : worst;
    }
    RQ_CHECK_MSG(worst <= 4, "%s: a group has %lld distinct values", what, (long long)worst);
    check_export(m, g, q, file_group, what);
    rq_qat_free(q);
    rq_params_free(&p);
    rq_model_free(m);
    rq_gguf_close(g);
}

/* a start from a PTQ result (GPTQ is not needed here: RTN LUT and RTN uniform with their
 * latents) gives the PTQ's dequantized weights back exactly; a start with another group is
 * refused naming the linear */
static void test_ptq_start(void) {
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(path_model, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    static const char *const names[3] = {"LUT", "uniform", "SEQ"};
    for (int u = 0; u < 3; u++) { /* LDP from LUT, uniform, SEQ from SEQ's uniform grid */
        rq_model *mp;
        RQ_ASSERT(rq_model_load(g, &mp) == RQ_OK);
        rq_ptq_opts o = rq_ptq_opts_default();
        o.method = RQ_PTQ_RTN, o.wbits = 2, o.group = 32, o.keep_latent = true;
        o.quantizer = u ? RQ_QPARAM_UNIFORM : RQ_QPARAM_LUT;
        o.least_squares = u == 2 || (u == 0 && o.least_squares);
        o.half_zero = u == 2;
        rq_ptq_result res;
        RQ_ASSERT(rq_ptq_run(mp, &o, NULL, 0, 0, &res) == RQ_OK);
        rq_params p;
        RQ_ASSERT(rq_params_build(m, &p) == RQ_OK);
        linears_only(&p);
        rq_qat *q;
        const rq_fq2_kind kinds[3] = {RQ_FQ2_LDP, RQ_FQ2_UNIFORM, RQ_FQ2_SEQ};
        rq_qat_cfg cfg = {.fq2 = true, .kind = kinds[u], .group = 32, .init_logit = 4.0f,
                          .init = &res, .init_kind = o.quantizer};
        RQ_ASSERT(rq_qat_new_cfg(&p, &cfg, &q) == RQ_OK);
        int64_t diff = 0, tot = 0;
        for (int l = 0; l < NL; l++) {
            const rq_linear *a = &m->layers[l].w_gate, *b = &mp->layers[l].w_gate;
            for (int64_t i = 0; i < a->n_out * a->n_in; i++) diff += a->w[i] != b->w[i], tot++;
        }
        printf("  start from PTQ %-8s: %lld of %lld weights differ from the PTQ's\n", names[u],
               (long long)diff, (long long)tot);
        RQ_CHECK(diff == 0);
        rq_qat_free(q);
        /* another group */
        cfg.group = 64;
        RQ_CHECK(rq_qat_new_cfg(&p, &cfg, &q) == RQ_EINVAL && strstr(rq_last_error(), "groups of 32") != NULL);
        cfg.group = 48; /* not a kernel group */
        RQ_CHECK(rq_qat_new_cfg(&p, &cfg, &q) == RQ_EINVAL);
        rq_params_free(&p);
        rq_ptq_result_free(&res);
        rq_model_free(mp);
    }
    rq_model_free(m);
    rq_gguf_close(g);
}

/* rq_qat_only_block: the other blocks' entries frozen, the QR constants never trainable */
static void test_only_block(void) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(path_model, &m) == RQ_OK);
    rq_params p;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK);
    linears_only(&p);
    rq_qat *q;
    rq_qat_cfg cfg = {.fq2 = true, .kind = RQ_FQ2_LDP, .group = 64, .init_logit = 4.0f};
    RQ_ASSERT(rq_qat_new_cfg(&p, &cfg, &q) == RQ_OK);
    int64_t all = rq_params_n_trainable(&q->list), one = rq_qat_only_block(q, 1);
    /* per block: 7 latents (q 64·64, k 32·64, v 32·64, o 64·64, gate/up 128·64, down 64·128) and
     * LDP's 5 parameters per group of 64 */
    int64_t lin = (64 + 32 + 32 + 64 + 128 + 128) * 64 + 64 * 128;
    RQ_CHECK(one == lin + 5 * lin / 64 && all == NL * one);
    for (int64_t j = 0; j < q->list.count; j++)
        if (q->list.p[j].trainable) RQ_CHECK(!strncmp(q->list.p[j].name, "blk.1.", 6));
    RQ_CHECK(rq_qat_only_block(q, -1) == all);
    printf("  block-wise freezing: %lld of %lld trainable\n", (long long)one, (long long)all);
    rq_qat_free(q);
    rq_params_free(&p);
    rq_model_free(m);
}

/* ---- the CLI: a run whose file computes what was trained, a start file, bad input ----- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static bool file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* the file's and the training graph's held-out perplexity from a run's stdout, equal to 4
 * significant digits (in fact to the printed 6) */
static void check_ppl_line(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    char line[1024];
    double pf = -1, pg = -2;
    while (f && fgets(line, sizeof line, f)) {
        const char *k = strstr(line, "held-out perplexity of the file ");
        if (k) RQ_CHECK(sscanf(k, "held-out perplexity of the file %lf, of the training graph %lf", &pf, &pg) == 2);
    }
    if (f) fclose(f);
    printf("  %-28s held-out perplexity: file %.4f, training graph %.4f\n", what, pf, pg);
    RQ_CHECK_MSG(pf > 1 && fabs(pf - pg) <= 5e-5 * pg, "%s: file %.6g vs graph %.6g", what, pf, pg);
}

/* a PTQ file (RTN, GSR folded, f32 embedding) written by the library: the tiny models have no
 * tokenizer, which rotquant quantize needs */
static void write_ptq(const char *src, int wbits, int64_t group, rq_qparam_kind kind, const char *dst) {
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(src, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    rq_rotation r1 = rq_rot_make(RQ_ROT_GSR, m->cfg.n_embd, group, 0), r2 = rq_rot_make(RQ_ROT_NONE, HD, 0, 0);
    RQ_ASSERT(rq_fold_model(m, &r1, &r2) == RQ_OK);
    rq_ptq_opts o = rq_ptq_opts_default();
    o.method = RQ_PTQ_RTN, o.wbits = wbits, o.group = group, o.quantizer = kind;
    rq_ptq_result res;
    RQ_ASSERT(rq_ptq_run(m, &o, NULL, 0, 0, &res) == RQ_OK);
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = (uint32_t)wbits, qi.group = (uint32_t)group, qi.quantizer = kind, qi.r1 = r1, qi.r2 = r2;
    strcpy(qi.method, "rtn");
    strcpy(qi.embd_type, "f32");
    RQ_ASSERT(rq_qmodel_write(m, g, &res, &qi, dst) == RQ_OK);
    rq_ptq_result_free(&res);
    rq_model_free(m);
    rq_gguf_close(g);
}

static void test_cli(void) {
    const char *cli = getenv("RQ_CLI");
    if (!cli) {
        printf("CLI checks skipped (RQ_CLI not set)\n");
        return;
    }
    char dir[128], ids[192], err[192], outp[192], mB[192];
    snprintf(dir, sizeof dir, "/tmp/rq_test_qat_cli_%d", (int)getpid());
    RQ_ASSERT(sh("mkdir -p %s", dir) == 0);
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    snprintf(outp, sizeof outp, "%s/out.txt", dir);
    snprintf(mB, sizeof mB, "%s/modelB.gguf", dir);
    write_model(mB, NL + 1);
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < 16 * 24; i++) fprintf(f, "%d%c", (int)rq_rng_below(&rng, V), i % 16 == 15 ? '\n' : ' ');
    fclose(f);
#define FAILS(needle, ...)                                                                                 \
    do {                                                                                                   \
        RQ_CHECK(sh(__VA_ARGS__) != 0);                                                                    \
        RQ_CHECK_MSG(file_has(err, "rotquant: error: ") && file_has(err, needle), "missing '%s'", needle); \
    } while (0)
    const char *common = "--seq-len 16 --batch 2 --calib-n 2 --block-steps 2 --steps 2 --eval-every 1 --quiet -t 2";
    /* W2A16 LDP from GPTQ, and W2A4KV4 SEQ per channel: the file computes what was trained */
    RQ_CHECK(sh("%s qat -m %s -o %s/a.gguf --data-ids %s %s > %s 2> %s", cli, path_model, dir, ids, common, outp, err) == 0);
    check_ppl_line(outp, "qat LDP g64 (q8_0 embedding)");
    RQ_CHECK(sh("%s qat -m %s -o %s/b.gguf --data-ids %s %s --quantizer seq --group 0 --abits 4 --kvbits 4 "
                "--embd-type f32 > %s 2> %s", cli, path_model, dir, ids, common, outp, err) == 0);
    check_ppl_line(outp, "qat SEQ per channel, A4 KV4");
    /* R2 (a Hadamard per head) folded into teacher and student: the file records it and still
     * computes what was trained */
    RQ_CHECK(sh("%s qat -m %s -o %s/r2.gguf --data-ids %s %s --rotate2 hadamard > %s 2> %s", cli, path_model, dir, ids,
                common, outp, err) == 0);
    check_ppl_line(outp, "qat with R2 hadamard");
    RQ_CHECK(sh("%s info %s/r2.gguf > %s 2> %s", cli, dir, outp, err) == 0);
    RQ_CHECK_MSG(file_has(outp, "R2 hadamard(n=16"), "the qat file does not record its R2");
    /* a post-norm model (Gemma-3's layout): GSR reaches the linears by route (b), the per-linear
     * input rotations, without a flag; the file records Ri/Ro and computes what was trained */
    char mG[192];
    snprintf(mG, sizeof mG, "%s/gemma.gguf", dir);
    write_model_arch(mG, NL, true);
    RQ_CHECK(sh("%s qat -m %s -o %s/g.gguf --data-ids %s %s --abits 4 --kvbits 4 > %s 2> %s", cli, mG, dir, ids, common,
                outp, err) == 0);
    check_ppl_line(outp, "qat Gemma-3 layout, route (b), A4 KV4");
    RQ_CHECK(sh("%s info %s/g.gguf > %s 2> %s", cli, dir, outp, err) == 0);
    RQ_CHECK_MSG(file_has(outp, "Ri gsr(n=64, block=64), Ro gsr(n=64, block=64), R1 none"),
                 "the Gemma-3 QAT file does not record its input rotations");
    FAILS("route (a)", "%s qat -m %s -o %s/x.gguf --r1-route residual --data-ids %s %s 2> %s", cli, mG, dir, ids, common,
          err);
    /* --save-block writes the model after phase 1: with no phase 2 it is the output, byte for byte */
    RQ_CHECK(sh("%s qat -m %s -o %s/d.gguf --data-ids %s %s --steps 0 --save-block %s/d1.gguf 2> %s", cli, path_model,
                dir, ids, common, dir, err) == 0);
    RQ_CHECK_MSG(sh("cmp -s %s/d.gguf %s/d1.gguf", dir, dir) == 0, "--save-block file differs from the phase-1 output");
    /* --save-start writes the start point: with no training it is the output, byte for byte */
    RQ_CHECK(sh("%s qat -m %s -o %s/e.gguf --data-ids %s %s --block-steps 0 --steps 0 --save-start %s/e0.gguf 2> %s",
                cli, path_model, dir, ids, common, dir, err) == 0);
    RQ_CHECK_MSG(sh("cmp -s %s/e.gguf %s/e0.gguf", dir, dir) == 0, "--save-start file differs from the untrained output");
    RQ_CHECK_MSG(sh("cmp -s %s/d.gguf %s/e0.gguf", dir, dir) != 0, "the block-wise phase changed nothing");
    /* phase 2 with activation checkpointing: the same gradients, so the same file */
    RQ_CHECK(sh("%s qat -m %s -o %s/b2.gguf --data-ids %s %s --quantizer seq --group 0 --abits 4 --kvbits 4 "
                "--embd-type f32 --checkpoint-act > %s 2> %s", cli, path_model, dir, ids, common, outp, err) == 0);
    RQ_CHECK_MSG(sh("cmp -s %s/b.gguf %s/b2.gguf", dir, dir) == 0, "qat --checkpoint-act wrote another file");
    /* resume: 2 steps with a checkpoint, then on to 4 from it, equals 4 steps in one run,
     * byte for byte (the resumed run skips the GPTQ start and the block-wise phase: the
     * checkpoint holds every latent and quantizer entry) */
    const char *rs = "--seq-len 16 --batch 2 --calib-n 2 --block-steps 2 --eval-every 1 --quiet -t 2 "
                     "--schedule constant --keep-last";
    RQ_CHECK(sh("%s qat -m %s -o %s/r4.gguf --data-ids %s %s --steps 4 2> %s", cli, path_model, dir, ids, rs, err) == 0);
    RQ_CHECK(sh("%s qat -m %s -o %s/r2.gguf --data-ids %s %s --steps 2 --checkpoint %s/r.ckpt 2> %s", cli, path_model,
                dir, ids, rs, dir, err) == 0);
    RQ_CHECK(sh("%s qat -m %s -o %s/r4b.gguf --data-ids %s %s --steps 4 --resume %s/r.ckpt 2> %s", cli, path_model, dir,
                ids, rs, dir, err) == 0);
    RQ_CHECK_MSG(sh("cmp -s %s/r4.gguf %s/r4b.gguf", dir, dir) == 0, "a resumed qat run wrote another file");
    RQ_CHECK_MSG(sh("cmp -s %s/r2.gguf %s/r4b.gguf", dir, dir) != 0, "the resumed steps changed nothing");
    /* --warmup: the ramp follows the global step, so a resumed run continues it where it
     * stopped (2 + 2 steps = 4 in one run, byte for byte), and it changes the steps it covers */
    RQ_CHECK(sh("%s qat -m %s -o %s/w4.gguf --data-ids %s %s --steps 4 --warmup 2 2> %s", cli, path_model, dir, ids, rs,
                err) == 0);
    RQ_CHECK(sh("%s qat -m %s -o %s/w2.gguf --data-ids %s %s --steps 2 --warmup 2 --checkpoint %s/w.ckpt 2> %s", cli,
                path_model, dir, ids, rs, dir, err) == 0);
    RQ_CHECK(sh("%s qat -m %s -o %s/w4b.gguf --data-ids %s %s --steps 4 --warmup 2 --resume %s/w.ckpt 2> %s", cli,
                path_model, dir, ids, rs, dir, err) == 0);
    RQ_CHECK_MSG(sh("cmp -s %s/w4.gguf %s/w4b.gguf", dir, dir) == 0, "a resumed qat run with --warmup wrote another file");
    RQ_CHECK_MSG(sh("cmp -s %s/w4.gguf %s/r4.gguf", dir, dir) != 0, "--warmup changed nothing");
    /* a start file made by rotquant quantize */
    char pf[256];
    snprintf(pf, sizeof pf, "%s/ptq32.gguf", dir);
    write_ptq(path_model, 2, 32, RQ_QPARAM_LUT, pf);
    RQ_CHECK(sh("%s qat -m %s -o %s/c.gguf --init-file %s/ptq32.gguf --group 32 --data-ids %s %s > %s 2> %s", cli,
                path_model, dir, dir, ids, common, outp, err) == 0);
    check_ppl_line(outp, "qat from a PTQ file (W2L g32)");
    /* bad input: a clear error, nothing written */
    FAILS("groups of 32", "%s qat -m %s -o %s/x.gguf --init-file %s/ptq32.gguf --group 64 --data-ids %s %s 2> %s", cli,
          path_model, dir, dir, ids, common, err);
    snprintf(pf, sizeof pf, "%s/ptqB.gguf", dir);
    write_ptq(mB, 2, 32, RQ_QPARAM_UNIFORM, pf);
    FAILS("another model", "%s qat -m %s -o %s/x.gguf --init-file %s/ptqB.gguf --group 32 --data-ids %s %s 2> %s", cli,
          path_model, dir, dir, ids, common, err);
    snprintf(pf, sizeof pf, "%s/ptq4.gguf", dir);
    write_ptq(path_model, 4, 64, RQ_QPARAM_UNIFORM, pf);
    FAILS("not a 2-bit", "%s qat -m %s -o %s/x.gguf --init-file %s/ptq4.gguf --data-ids %s %s 2> %s", cli, path_model,
          dir, dir, ids, common, err);
    FAILS("already quantized", "%s qat -m %s/a.gguf -o %s/x.gguf --data-ids %s %s 2> %s", cli, dir, dir, ids, common, err);
    FAILS("no 2-bit kernel", "%s qat -m %s -o %s/x.gguf --group 48 --data-ids %s %s 2> %s", cli, path_model, dir, ids,
          common, err);
    FAILS("not ldp, uniform or seq", "%s qat -m %s -o %s/x.gguf --quantizer lut --data-ids %s 2> %s", cli, path_model,
          dir, ids, err);
    FAILS("too few", "%s qat -m %s -o %s/x.gguf --data-ids %s --seq-len 64 --batch 4 --quiet 2> %s", cli, path_model,
          dir, ids, err);
    FAILS("does not rebuild its start", "%s qat -m %s -o %s/x.gguf --data-ids %s %s --resume %s/r.ckpt --save-start "
          "%s/x0.gguf 2> %s", cli, path_model, dir, ids, common, dir, dir, err);
    FAILS("learning rates", "%s qat -m %s -o %s/x.gguf --data-ids %s %s --lr 0 2> %s", cli, path_model, dir, ids, common,
          err);
    FAILS("--warmup", "%s qat -m %s -o %s/x.gguf --data-ids %s %s --warmup 3 2> %s", cli, path_model, dir, ids, common,
          err);
    RQ_CHECK(sh("test -e %s/x.gguf", dir) != 0);
#undef FAILS
    RQ_CHECK(sh("rm -rf %s", dir) == 0);
}

int main(void) {
    rq_rng_seed(&rng, 1206);
    rq_threads_set(2);
    snprintf(path_model, sizeof path_model, "/tmp/rq_test_qat_%d.gguf", (int)getpid());
    snprintf(path_out, sizeof path_out, "/tmp/rq_test_qat_out_%d.gguf", (int)getpid());
    write_model(path_model, NL);
    test_export(RQ_FQ2_LDP, 32, 32, "LDP g32 -> W2L g32");
    test_export(RQ_FQ2_LDP, 0, 64, "LDP per channel -> W2L g64");
    test_export(RQ_FQ2_UNIFORM, 64, 64, "uniform g64 -> W2U g64");
    test_export(RQ_FQ2_SEQ, 0, 32, "SEQ per channel -> W2U g32");
    test_ptq_start();
    test_only_block();
    test_cli();
    unlink(path_model);
    unlink(path_out);
    return rq_test_finish();
}

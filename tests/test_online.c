/* The model's run-time quantizers and online rotations (rq_model_set_online):
 *   - online-rotation invariance: with activation and KV quantization off, folding R4
 *     into down and applying R3/R4 online gives the same logits (rel L2 < ONLINE_REL_TOL),
 *     for hadamard, walsh, gh and gsr, on the tiny model and (when present) the real one;
 *   - the packed 4-bit KV cache: greedy generation (3 prompts, 32 tokens, prefill in
 *     several batches) gives exactly the tokens and logits of the fake-quantized float
 *     cache, the quantization is active (differs from the float cache), and the cache
 *     takes the documented bytes per token;
 *   - the hooks (GPTQ's calibration capture) see the linears' quantized inputs;
 *   - a W16 file with quantizers and R3/R4 written, loaded back, configured the same and
 *     computing the same logits;
 *   - clear errors for unsupported combinations. */
#include "testing.h"
#include "tiny_llama.h"

#include "base/pool.h"
#include "format/kv.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "model/sampler.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "model/fold.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* float32 rotations of q, k (after RoPE) and of down's input through every layer: a few
 * ulps per operation accumulated over the layers; the bound. */
#define ONLINE_REL_TOL 1e-4
#define N_TOK 20
#define N_GEN 32

static const int32_t tiny_tokens[N_TOK] = {1, 5, 9, 33, 2, 64, 17, 8, 40, 41, 3, 12, 59, 60, 7, 30, 22, 11, 0, 66};
static const int32_t real_tokens[N_TOK] = {1,    504, 3458, 282,  253, 1690, 28,   378, 260,  2382,
                                           30,   216, 1206, 1361, 4162, 5250, 314,  260, 1646, 282};

static rq_model *load(const char *path) {
    rq_model *m = NULL;
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK);
    return m;
}

/* R1 folded; then logits without and with R3/R4 of kind k (blocks b3, b4) */
static void invariance(const char *path, const char *label, const int32_t *tok, rq_rot_kind k, int64_t b3, int64_t b4,
                       int64_t b1, bool teeth) {
    rq_model *m = load(path);
    const rq_model_config *c = &m->cfg;
    rq_rotation r1 = rq_rot_make(RQ_ROT_GSR, c->n_embd, b1, 0), r2 = rq_rot_make(RQ_ROT_NONE, c->head_dim, 0, 0);
    RQ_CHECK(rq_fold_model(m, &r1, &r2) == RQ_OK);
    float *ref = rq_test_logits(m, tok, N_TOK);
    bool blocked = k == RQ_ROT_GH || k == RQ_ROT_GSR;
    rq_online_cfg oc = {.r3 = rq_rot_make(k, c->head_dim, blocked ? b3 : 0, 5),
                        .r4 = rq_rot_make(k, c->n_ff, blocked ? b4 : 0, 6)};
    RQ_CHECK(rq_fold_r4(m, &oc.r4) == RQ_OK);
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_OK);
    RQ_CHECK(m->online.p3 && m->online.p4);
    float *got = rq_test_logits(m, tok, N_TOK);
    double err = rq_rel_l2(got, ref, N_TOK * c->n_vocab);
    char d3[96], d4[96];
    printf("%s: R3 %-26s R4 %-30s rel L2 %.2e\n", label, rq_rot_describe(&oc.r3, d3, sizeof d3),
           rq_rot_describe(&oc.r4, d4, sizeof d4), err);
    RQ_CHECK_MSG(err < ONLINE_REL_TOL, "%s: online %s: rel L2 %g", label, d3, err);
    if (teeth) { /* R4 applied online without its folded inverse is not invariant */
        rq_model *m2 = load(path);
        RQ_CHECK(rq_fold_model(m2, &r1, &r2) == RQ_OK && rq_model_set_online(m2, &oc) == RQ_OK);
        float *bad = rq_test_logits(m2, tok, N_TOK);
        RQ_CHECK(rq_rel_l2(bad, ref, N_TOK * c->n_vocab) > 1e-2);
        free(bad);
        rq_model_free(m2);
    }
    free(ref), free(got);
    rq_model_free(m);
}

typedef struct {
    int32_t tok[N_GEN];
    int n;
} gen_out;

static bool collect(void *user, int32_t t) {
    gen_out *g = user;
    g->tok[g->n++] = t;
    return true;
}

/* greedy generation of N_GEN tokens; prefill in batches of 3; returns the final logits */
static float *generate(const rq_model *m, const int32_t *prompt, int64_t n_prompt, gen_out *out, int64_t *kv_bytes) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, n_prompt + N_GEN, 3, false, &st) == RQ_OK);
    rq_sampler *smp;
    rq_sampler_params sp = {.temperature = 0};
    RQ_ASSERT(rq_sampler_new(&sp, m->cfg.n_vocab, &smp) == RQ_OK);
    rq_generate_stats gs;
    memset(out, 0, sizeof *out);
    RQ_CHECK(rq_generate(st, prompt, n_prompt, N_GEN, smp, collect, out, &gs) == RQ_OK);
    float *lg = malloc((size_t)m->cfg.n_vocab * sizeof(float));
    memcpy(lg, st->logits, (size_t)m->cfg.n_vocab * sizeof(float));
    *kv_bytes = rq_state_kv_bytes_per_token(st);
    if (m->online.cfg.kv_bits == 4 && !m->online.kv_fake) RQ_CHECK(st->k_cache == NULL && st->kq_cache != NULL);
    rq_sampler_free(smp);
    rq_state_free(st);
    return lg;
}

static void kv_generation(const char *path, const char *label, const int32_t *const prompts[3], const int64_t lens[3],
                          rq_rot_kind k3, int64_t group) {
    rq_model *m = load(path);
    const rq_model_config *c = &m->cfg;
    int64_t kv_dim = c->n_head_kv * c->head_dim;
    rq_online_cfg oc = {.kv_bits = 4, .kv_group = group, .r3 = rq_rot_make(k3, c->head_dim, 0, 3)};
    int same_tok = 1, same_logits = 1, differs_from_float = 0;
    for (int p = 0; p < 3; p++) {
        gen_out g_float, g_fake, g_packed;
        int64_t b_float = 0, b_fake, b_packed;
        float *lf = NULL;
        if (p == 0) { /* the float cache once, for comparison */
            rq_online_cfg off = {.r3 = oc.r3};
            RQ_CHECK(rq_model_set_online(m, &off) == RQ_OK);
            lf = generate(m, prompts[p], lens[p], &g_float, &b_float);
        }
        RQ_CHECK(rq_model_set_online(m, &oc) == RQ_OK);
        m->online.kv_fake = true;
        float *la = generate(m, prompts[p], lens[p], &g_fake, &b_fake);
        m->online.kv_fake = false;
        float *lb = generate(m, prompts[p], lens[p], &g_packed, &b_packed);
        RQ_CHECK(g_fake.n == N_GEN && g_packed.n == N_GEN);
        same_tok &= memcmp(g_fake.tok, g_packed.tok, sizeof g_fake.tok) == 0;
        same_logits &= memcmp(la, lb, (size_t)c->n_vocab * sizeof(float)) == 0;
        if (p == 0) {
            differs_from_float = memcmp(lf, la, (size_t)c->n_vocab * sizeof(float)) != 0;
            int agree = 0;
            for (int i = 0; i < N_GEN; i++) agree += g_float.tok[i] == g_packed.tok[i];
            printf("%s: prompt 0: 4-bit cache agrees with the float cache on %d/%d greedy tokens\n", label, agree, N_GEN);
            int64_t g = oc.kv_group ? oc.kv_group : c->head_dim;
            RQ_CHECK(b_float == 2 * c->n_layer * kv_dim * 4 && b_fake == b_float);
            RQ_CHECK(b_packed == 2 * c->n_layer * (kv_dim / g) * (4 + g / 2));
            printf("%s: KV bytes/token float %lld, 4-bit packed %lld (g%lld); at 2048 tokens %.2f vs %.2f MiB\n", label,
                   (long long)b_float, (long long)b_packed, (long long)g, b_float * 2048.0 / 1048576.0,
                   b_packed * 2048.0 / 1048576.0);
        }
        printf("%s: prompt %d: packed cache gives the fake-quantized cache's %d tokens: %s\n", label, p, N_GEN,
               memcmp(g_fake.tok, g_packed.tok, sizeof g_fake.tok) == 0 ? "yes" : "NO");
        free(lf), free(la), free(lb);
    }
    RQ_CHECK_MSG(same_tok, "%s: packed KV generation differs from the fake-quantized cache", label);
    RQ_CHECK_MSG(same_logits, "%s: packed KV logits differ from the fake-quantized cache", label);
    RQ_CHECK_MSG(differs_from_float, "%s: KV quantization had no effect", label);
    rq_model_free(m);
}

/* hook: every row of a linear's input has at most 2^bits distinct values */
typedef struct {
    int bits;
    int ok, seen;
} levels_ctx;

static void levels_hook(void *user, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim) {
    levels_ctx *c = user;
    if (site == RQ_SITE_RESIDUAL) return;
    c->seen |= 1 << site;
    for (int64_t i = 0; i < n; i++) {
        float lv[64];
        int nl = 0;
        for (int64_t j = 0; j < dim; j++) {
            int found = 0;
            for (int k = 0; k < nl && !found; k++) found = lv[k] == x[i * dim + j];
            if (!found) {
                if (nl == 64) { c->ok = 0; return; }
                lv[nl++] = x[i * dim + j];
            }
        }
        c->ok &= nl <= (1 << c->bits);
    }
}

static void hooks_see_quantized(const char *path) {
    rq_model *m = load(path);
    const rq_model_config *c = &m->cfg;
    rq_online_cfg oc = {.act = {.bits = 4, .asym = true, .clip = 0.9f}, .kv_bits = 4,
                        .r3 = rq_rot_make(RQ_ROT_WALSH, c->head_dim, 0, 0),
                        .r4 = rq_rot_make(RQ_ROT_GSR, c->n_ff, 16, 0)};
    RQ_CHECK(rq_fold_r4(m, &oc.r4) == RQ_OK && rq_model_set_online(m, &oc) == RQ_OK);
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, N_TOK, N_TOK, false, &st) == RQ_OK);
    levels_ctx lc = {.bits = 4, .ok = 1};
    st->hook = levels_hook;
    st->hook_user = &lc;
    RQ_CHECK(rq_model_forward(st, tiny_tokens, N_TOK, 0, RQ_LOGITS_NONE) == RQ_OK);
    RQ_CHECK_MSG(lc.ok && lc.seen == 15, "hooks: linear inputs not 4-bit quantized (sites seen %x)", lc.seen);
    rq_state_free(st);

    /* GPTQ with the quantizers in place runs, and its result is what it claims */
    rq_ptq_opts o = rq_ptq_opts_default();
    o.wbits = 4;
    o.group = 16;
    int32_t calib[4 * 16];
    for (int i = 0; i < 4 * 16; i++) calib[i] = (int32_t)((i * 37 + 11) % V);
    rq_ptq_result res;
    RQ_CHECK(rq_ptq_run(m, &o, calib, 4, 16, &res) == RQ_OK);
    RQ_CHECK(res.n_lin == NL * 7);
    rq_ptq_result_free(&res);
    float *lg = rq_test_logits(m, tiny_tokens, N_TOK);
    int finite = 1;
    for (int64_t i = 0; i < N_TOK * V; i++) finite &= isfinite(lg[i]);
    RQ_CHECK(finite);
    free(lg);
    rq_model_free(m);
}

static void file_round_trip(const char *path) {
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK);
    rq_model *m;
    RQ_ASSERT(rq_model_load(g, &m) == RQ_OK);
    const rq_model_config *c = &m->cfg;
    rq_rotation r1 = rq_rot_make(RQ_ROT_HADAMARD, c->n_embd, 0, 1), r2 = rq_rot_make(RQ_ROT_NONE, c->head_dim, 0, 0);
    RQ_CHECK(rq_fold_model(m, &r1, &r2) == RQ_OK);
    rq_online_cfg oc = {.act = {.bits = 8, .asym = false, .clip = 0.9f}, .kv_bits = 4, .kv_group = 8, .kv_clip = 0.95f,
                        .r3 = rq_rot_make(RQ_ROT_GH, c->head_dim, 4, 2), .r4 = rq_rot_make(RQ_ROT_HADAMARD, c->n_ff, 0, 3)};
    RQ_CHECK(rq_fold_r4(m, &oc.r4) == RQ_OK && rq_model_set_online(m, &oc) == RQ_OK);
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = 16;
    qi.group = 64;
    strcpy(qi.method, "none");
    strcpy(qi.embd_type, "f32");
    qi.r1 = r1;
    qi.r2 = r2;
    qi.r3 = oc.r3;
    qi.r4 = oc.r4;
    qi.abits = 8;
    qi.aclip = 0.9f;
    qi.kvbits = 4;
    qi.kv_group = 8;
    qi.kv_clip = 0.95f;
    char file[600];
    snprintf(file, sizeof file, "%s/w16a8kv4.gguf", tmpdir);
    rq_ptq_result none = {0};
    RQ_CHECK(rq_qmodel_write(m, g, &none, &qi, file) == RQ_OK);
    rq_gguf_close(g);

    RQ_ASSERT(rq_gguf_open(file, &g) == RQ_OK);
    rq_qinfo back;
    RQ_CHECK(rq_qinfo_read(g, &back) == RQ_OK);
    char sh[64], desc[512];
    RQ_CHECK(back.version == 2 && back.wbits == 16 && back.abits == 8 && !back.asym && back.kvbits == 4 &&
             back.kv_group == 8 && back.r3.kind == RQ_ROT_GH && back.r3.block == 4 && back.r4.kind == RQ_ROT_HADAMARD &&
             back.r4.seed == 3 && back.aclip == 0.9f && back.kv_clip == 0.95f);
    RQ_CHECK(strcmp(rq_qinfo_short(&back, sh, sizeof sh), "W16A8KV4") == 0);
    printf("file: %s: %s\n", sh, rq_qinfo_describe(&back, desc, sizeof desc));
    RQ_CHECK(strstr(desc, "A8 sym clip 0.90") && strstr(desc, "KV4 asym g8 clip 0.95") && strstr(desc, "R3 gh(n=8"));
    rq_gguf_close(g);
    rq_model *m2 = load(file);
    RQ_CHECK(m2->online.cfg.act.bits == 8 && m2->online.cfg.kv_bits == 4 && m2->online.cfg.kv_group == 8 &&
             m2->online.p3 && m2->online.p4);
    float *a = rq_test_logits(m, tiny_tokens, N_TOK), *b = rq_test_logits(m2, tiny_tokens, N_TOK);
    RQ_CHECK_MSG(memcmp(a, b, (size_t)(N_TOK * V) * sizeof(float)) == 0, "loaded W16A8KV4 model computes other logits");
    free(a), free(b);
    rq_model_free(m);
    rq_model_free(m2);
}

static void errors(const char *path) {
    rq_model *m = load(path);
    const rq_model_config *c = &m->cfg;
    rq_online_cfg oc = {.r3 = rq_rot_make(RQ_ROT_GSR, c->head_dim, 3, 0)};
    RQ_CHECK(rq_model_set_online(m, &oc) != RQ_OK && strstr(rq_last_error(), "R3"));
    oc.r3 = rq_rot_make(RQ_ROT_GSR, 16, 8, 0);
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL && strstr(rq_last_error(), "head_dim is 8"));
    oc.r3 = rq_rot_make(RQ_ROT_ORTHOGONAL, c->head_dim, 0, 0);
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EUNSUPPORTED && strstr(rq_last_error(), "orthogonal"));
    oc = (rq_online_cfg){.r4 = rq_rot_make(RQ_ROT_GSR, c->n_ff + 1, 16, 0)};
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL && strstr(rq_last_error(), "feed-forward size is 80"));
    oc = (rq_online_cfg){.kv_bits = 4, .kv_group = 6};
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL && strstr(rq_last_error(), "KV group 6"));
    oc = (rq_online_cfg){.kv_bits = 2};
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL);
    oc = (rq_online_cfg){.act = {.bits = 3, .clip = 1}};
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL && strstr(rq_last_error(), "activation bits: 3 is not one of 4, 8, 16"));
    oc = (rq_online_cfg){.act = {.bits = 4, .clip = 1.5f}};
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_EINVAL && strstr(rq_last_error(), "clip"));
    /* a failed call leaves the earlier configuration in place */
    RQ_CHECK(m->online.cfg.act.bits == 0 && m->online.p3 == NULL);
    rq_rotation r4 = rq_rot_make(RQ_ROT_GSR, 64, 16, 0);
    RQ_CHECK(rq_fold_r4(m, &r4) == RQ_EINVAL && strstr(rq_last_error(), "R4 has size 64"));
    rq_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_online_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    rq_threads_set(0);
    init_weights();
    (void)naive_forward;
    const char *tiny = write_tiny("tiny.gguf", (tiny_opts){0});
    const rq_rot_kind kinds[4] = {RQ_ROT_HADAMARD, RQ_ROT_WALSH, RQ_ROT_GH, RQ_ROT_GSR};
    for (int i = 0; i < 4; i++) invariance(tiny, "tiny", tiny_tokens, kinds[i], 4, 16, 16, true);

    static const int32_t p0[] = {1, 5, 9}, p1[] = {1, 40, 41, 42, 43, 44, 45, 2}, p2[] = {7, 7, 7, 7, 8};
    const int32_t *tp[3] = {p0, p1, p2};
    const int64_t tl[3] = {3, 8, 5};
    kv_generation(tiny, "tiny (R3 walsh, g = head_dim)", tp, tl, RQ_ROT_WALSH, 0);
    kv_generation(tiny, "tiny (no R3, g8)", tp, tl, RQ_ROT_NONE, 8);
    hooks_see_quantized(tiny);
    file_round_trip(tiny);
    errors(tiny);

    const char *real = rq_test_model_path();
    if (real) {
        invariance(real, "SmolLM2", real_tokens, RQ_ROT_HADAMARD, 0, 0, 64, false);
        invariance(real, "SmolLM2", real_tokens, RQ_ROT_GSR, 64, 64, 64, false);
        static const int32_t q0[] = {1, 504, 3458, 282, 253}, q1[] = {1, 1206, 1361, 4162, 5250, 314, 260},
                             q2[] = {1, 9046, 33, 42};
        const int32_t *rp[3] = {q0, q1, q2};
        const int64_t rl[3] = {5, 7, 4};
        kv_generation(real, "SmolLM2", rp, rl, RQ_ROT_HADAMARD, 0);
    } else {
        printf("default model not present: real-model checks skipped\n");
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

/* Gemma-3 in the one forward pass, on a tiny random "gemma3" model written here as a GGUF
 * with a short sliding window (W = 5, pattern 2: layers 0 and 2 local, layer 1 global), so
 * that every batch shape crosses the window: against a naive float64 forward written from
 * the architecture's formulas (below; no cache, every position):
 *   - one batch of 80 tokens (two attention blocks of 64 rows), all logits;
 *   - the same tokens fed 1 and 7 at a time (the one-token decode and chunked prefill
 *     through the KV cache);
 *   - a segmented batch: three sequences advanced together (rq_model_forward_segments);
 *   - a tree batch: a shared prefix longer than the window and two continuations
 *     (rq_model_forward_tree), each path against the naive forward of that path;
 *   - without the window key every layer is global (the naive forward with W = ∞);
 *   - config: the switches read from the file, and a logit soft-capping key refused;
 *   - rotations: R2 folded, R3 and R4 online (R4 folded into down) leave the logits
 *     unchanged, and the norms unfused; R1 through the post-norms by route (a) (folded but on
 *     o/down's outputs, rotated online after the post-norms) and route (b) (per-linear input
 *     rotations Ri/Ro/R4), for hadamard, walsh, gh and gsr: the same logits as the unrotated
 *     model (rel L2 <= ROT_REL_TOL), and other logits when the online half is left out; a W16
 *     file of each route written, read back (format version 3) and computing the same logits;
 *     a version-2 file with route keys refused.
 * The real model's logits are checked against the numpy reference in sh_reference_gemma.sh. */
#include "testing.h"

#include "base/rng.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/fold.h"
#include "model/qinfo.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { V = 67, E = 48, H = 4, HK = 2, HD = 16, FF = 64, NL = 3, WIN = 5, PATTERN = 2, NTOK = 80 };
#define THETA 1000000.0   /* global layers */
#define THETA_SWA 10000.0 /* local layers (the default when the file has no freq_base_swa) */
#define EPS 1e-6f
/* float32 forward vs float64 naive through 3 layers: observed ~1e-6 */
#define LOGITS_REL_TOL 1e-4
/* rotated vs unrotated float32 model, the same forward: float32 rounding of the folded
 * weights and the online transforms through 3 layers (observed ~3e-7); the bound */
#define ROT_REL_TOL 1e-5
/* leaving out the online half of a rotation changes the function, not the rounding */
#define BROKEN_REL_MIN 1e-2

static char tmpdir[256];

static float w_emb[V * E], w_onorm[E];
static float w_anorm[NL][E], w_fnorm[NL][E], w_pa[NL][E], w_pf[NL][E], w_qn[NL][HD], w_kn[NL][HD];
static float w_q[NL][H * HD * E], w_k[NL][HK * HD * E], w_v[NL][HK * HD * E], w_o[NL][E * H * HD];
static float w_g[NL][FF * E], w_u[NL][FF * E], w_d[NL][E * FF];

static void fill(rq_rng *r, float *x, int64_t n, double scale, double offset) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(offset + scale * rq_rng_normal(r));
}

static void init_weights(void) {
    rq_rng r;
    rq_rng_seed(&r, 4321);
    fill(&r, w_emb, V * E, 0.15, 0); /* × √48 ≈ 7 in the forward */
    fill(&r, w_onorm, E, 0.1, 1);
    for (int l = 0; l < NL; l++) {
        fill(&r, w_anorm[l], E, 0.1, 1);
        fill(&r, w_fnorm[l], E, 0.1, 1);
        fill(&r, w_pa[l], E, 0.1, 1);
        fill(&r, w_pf[l], E, 0.1, 1);
        fill(&r, w_qn[l], HD, 0.2, 1);
        fill(&r, w_kn[l], HD, 0.2, 1);
        fill(&r, w_q[l], H * HD * E, 0.3, 0);
        fill(&r, w_k[l], HK * HD * E, 0.3, 0);
        fill(&r, w_v[l], HK * HD * E, 0.3, 0);
        fill(&r, w_o[l], E * H * HD, 0.2, 0);
        fill(&r, w_g[l], FF * E, 0.3, 0);
        fill(&r, w_u[l], FF * E, 0.3, 0);
        fill(&r, w_d[l], E * FF, 0.2, 0);
    }
}

static void add(rq_gguf_writer *w, const char *name, const float *data, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    RQ_ASSERT(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, ne1 == 1 ? 1 : 2, ne, data, ne0 * ne1 * 4) == RQ_OK);
}

/* window 0: no sliding_window key; softcap != 0: a final_logit_softcapping key */
static const char *write_tiny(const char *file, int window, float softcap) {
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, file);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "gemma3");
    rq_gguf_writer_set_u32(w, "gemma3.block_count", NL);
    rq_gguf_writer_set_u32(w, "gemma3.context_length", 256);
    rq_gguf_writer_set_u32(w, "gemma3.embedding_length", E);
    rq_gguf_writer_set_u32(w, "gemma3.feed_forward_length", FF);
    rq_gguf_writer_set_u32(w, "gemma3.attention.head_count", H);
    rq_gguf_writer_set_u32(w, "gemma3.attention.head_count_kv", HK);
    rq_gguf_writer_set_u32(w, "gemma3.attention.key_length", HD);
    rq_gguf_writer_set_u32(w, "gemma3.attention.value_length", HD);
    rq_gguf_writer_set_f32(w, "gemma3.rope.freq_base", (float)THETA);
    rq_gguf_writer_set_f32(w, "gemma3.attention.layer_norm_rms_epsilon", EPS);
    if (window) {
        rq_gguf_writer_set_u32(w, "gemma3.attention.sliding_window", (uint32_t)window);
        rq_gguf_writer_set_u32(w, "gemma3.attention.sliding_window_pattern", PATTERN);
    }
    if (softcap != 0) rq_gguf_writer_set_f32(w, "gemma3.final_logit_softcapping", softcap);
    add(w, "token_embd.weight", w_emb, E, V);
    add(w, "output_norm.weight", w_onorm, E, 1);
    char name[96];
#define ADD(sfx, data, ne0, ne1) (snprintf(name, sizeof name, "blk.%d.%s.weight", l, sfx), add(w, name, data, ne0, ne1))
    for (int l = 0; l < NL; l++) {
        ADD("attn_norm", w_anorm[l], E, 1);
        ADD("attn_q", w_q[l], E, H * HD);
        ADD("attn_k", w_k[l], E, HK * HD);
        ADD("attn_v", w_v[l], E, HK * HD);
        ADD("attn_q_norm", w_qn[l], HD, 1);
        ADD("attn_k_norm", w_kn[l], HD, 1);
        ADD("attn_output", w_o[l], H * HD, E);
        ADD("post_attention_norm", w_pa[l], E, 1);
        ADD("ffn_norm", w_fnorm[l], E, 1);
        ADD("ffn_gate", w_g[l], E, FF);
        ADD("ffn_up", w_u[l], E, FF);
        ADD("ffn_down", w_d[l], FF, E);
        ADD("post_ffw_norm", w_pf[l], E, 1);
    }
#undef ADD
    RQ_ASSERT(rq_gguf_writer_write(w, p) == RQ_OK);
    rq_gguf_writer_free(w);
    return p;
}

/* ---- naive float64 forward ------------------------------------------------------------ */

static void mat(const double *x, const float *w, int out, int in, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += x[i] * w[o * in + i];
        y[o] = s;
    }
}

static void rms(const double *x, const float *g, int n, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + EPS);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * g[i];
}

/* NEOX pairing: (x[j], x[j + HD/2]) rotated by p·θ^(−2j/HD) */
static void rope_neox(double *x, int p, double theta) {
    for (int j = 0; j < HD / 2; j++) {
        double a = p * pow(theta, -2.0 * j / HD);
        double x0 = x[j], x1 = x[j + HD / 2];
        x[j] = x0 * cos(a) - x1 * sin(a);
        x[j + HD / 2] = x0 * sin(a) + x1 * cos(a);
    }
}

/* logits [n, V] of tokens tok[0..n) at positions 0..n-1; window 0 = every layer global */
static void naive_forward(const int32_t *tok, int n, int window, float *logits) {
    double *x = calloc((size_t)n * E, sizeof(double)), *xn = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * n * H * HD), *k = malloc(sizeof(double) * n * HK * HD);
    double *v = malloc(sizeof(double) * n * HK * HD), *att = malloc(sizeof(double) * H * HD);
    double *tmp = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * FF), *u = malloc(sizeof(double) * FF);
    double *sc = malloc(sizeof(double) * n), *lg = malloc(sizeof(double) * V);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++) x[t * E + i] = w_emb[tok[t] * E + i] * sqrt((double)E);
    for (int l = 0; l < NL; l++) {
        bool local = window > 0 && l % PATTERN < PATTERN - 1;
        double theta = local ? THETA_SWA : THETA;
        for (int t = 0; t < n; t++) {
            rms(x + t * E, w_anorm[l], E, xn);
            mat(xn, w_q[l], H * HD, E, q + t * H * HD);
            mat(xn, w_k[l], HK * HD, E, k + t * HK * HD);
            mat(xn, w_v[l], HK * HD, E, v + t * HK * HD);
            for (int h = 0; h < H; h++) {
                double *qh = q + t * H * HD + h * HD;
                rms(qh, w_qn[l], HD, qh);
                rope_neox(qh, t, theta);
            }
            for (int h = 0; h < HK; h++) {
                double *kh = k + t * HK * HD + h * HD;
                rms(kh, w_kn[l], HD, kh);
                rope_neox(kh, t, theta);
            }
        }
        for (int t = 0; t < n; t++) {
            int s0 = local && t - window + 1 > 0 ? t - window + 1 : 0; /* keys (t − W, t] */
            for (int h = 0; h < H; h++) {
                int kh = h / (H / HK);
                double mx = -1e300, sum = 0;
                for (int s = s0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < HD; i++) d += q[t * H * HD + h * HD + i] * k[s * HK * HD + kh * HD + i];
                    sc[s] = d / sqrt((double)HD);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = s0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < HD; i++) {
                    double o = 0;
                    for (int s = s0; s <= t; s++) o += sc[s] / sum * v[s * HK * HD + kh * HD + i];
                    att[h * HD + i] = o;
                }
            }
            mat(att, w_o[l], E, H * HD, tmp);
            rms(tmp, w_pa[l], E, tmp);
            for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
            rms(x + t * E, w_fnorm[l], E, xn);
            mat(xn, w_g[l], FF, E, g);
            mat(xn, w_u[l], FF, E, u);
            for (int i = 0; i < FF; i++) {
                double a = g[i];
                g[i] = 0.5 * a * (1 + tanh(sqrt(2 / M_PI) * (a + 0.044715 * a * a * a))) * u[i];
            }
            mat(g, w_d[l], E, FF, tmp);
            rms(tmp, w_pf[l], E, tmp);
            for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
        }
    }
    for (int t = 0; t < n; t++) {
        rms(x + t * E, w_onorm, E, xn);
        mat(xn, w_emb, V, E, lg);
        for (int i = 0; i < V; i++) logits[t * V + i] = (float)lg[i];
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(tmp), free(g), free(u), free(sc), free(lg);
}

/* ---- checks --------------------------------------------------------------------------- */

static double rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static rq_model *load(const char *path) {
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(path, &m);
    RQ_CHECK_MSG(s == RQ_OK, "load %s: %s", path, rq_last_error());
    return m;
}

static int32_t toks[NTOK];
static float ref[NTOK * V], ref_full[NTOK * V];

static void test_config(const char *path) {
    rq_model *m = load(path);
    if (!m) return;
    const rq_model_config *c = &m->cfg;
    RQ_CHECK(c->arch == RQ_ARCH_GEMMA3);
    RQ_CHECK(c->rope_neox && c->qk_norm && c->post_norms && c->ffn_gelu && c->tied_embeddings);
    RQ_CHECK(c->sliding_window == WIN && c->swa_pattern == PATTERN);
    RQ_CHECK_NEAR(c->embd_scale, sqrt((double)E), 1e-6);
    RQ_CHECK_NEAR(c->attn_scale, 1.0 / sqrt((double)HD), 1e-9);
    RQ_CHECK_NEAR(c->rope_theta, THETA, 1e-3);
    RQ_CHECK_NEAR(c->rope_theta_swa, THETA_SWA, 1e-3);
    RQ_CHECK(rq_model_layer_is_swa(c, 0) && !rq_model_layer_is_swa(c, 1) && rq_model_layer_is_swa(c, 2));
    RQ_CHECK(m->layers[1].q_norm && m->layers[1].post_ffn_norm);
    rq_model_free(m);
    /* soft-capping refused */
    const char *capped = write_tiny("gemma_cap.gguf", WIN, 30.0f);
    m = NULL;
    rq_status s = rq_model_load_file(capped, &m);
    RQ_CHECK(s == RQ_EUNSUPPORTED && m == NULL);
    RQ_CHECK(strstr(rq_last_error(), "final_logit_softcapping") != NULL);
}

/* all tokens in chunks of `chunk` through the cache, logits of every position */
static void check_chunks(rq_model *m, int chunk, const float *want, const char *what) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, NTOK, chunk, true, &st) == RQ_OK);
    float *got = rq_xalloc(NTOK * V * (int64_t)sizeof(float));
    for (int p = 0; p < NTOK; p += chunk) {
        int n = p + chunk <= NTOK ? chunk : NTOK - p;
        rq_status s = rq_model_forward(st, toks + p, n, p, RQ_LOGITS_ALL);
        RQ_CHECK_MSG(s == RQ_OK, "%s", rq_last_error());
        memcpy(got + p * V, st->logits, (size_t)n * V * sizeof(float));
    }
    double e = rel_l2(got, want, NTOK * V);
    RQ_CHECK_MSG(e <= LOGITS_REL_TOL, "%s, chunks of %d: relative L2 %.3g", what, chunk, e);
    printf("  %s, chunks of %d: relative L2 %.2g\n", what, chunk, e);
    rq_free(got);
    rq_state_free(st);
}

/* Three sequences (prefixes of toks shifted: lengths 40, 23, 31) in one segmented state:
 * prefill chunks of 9, then one token of each per call. */
static void check_segments(rq_model *m) {
    enum { NS = 3, SEG = 48 };
    const int len[NS] = {40, 23, 31}, off[NS] = {0, 11, 29};
    float *want[NS];
    for (int s = 0; s < NS; s++) {
        want[s] = rq_xalloc(len[s] * V * (int64_t)sizeof(float));
        naive_forward(toks + off[s], len[s], WIN, want[s]);
    }
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, NS * SEG, 32, true, &st) == RQ_OK);
    RQ_ASSERT(rq_state_set_segments(st, SEG) == RQ_OK);
    int done[NS] = {0};
    double worst = 0;
    for (int call = 0;; call++) {
        int32_t tk[32];
        int64_t sg[32], ps[32];
        int n = 0;
        for (int s = NS - 1; s >= 0; s--) { /* reversed order: segments not in slot order */
            int want_n = call < 2 ? 9 : 1;
            for (int i = 0; i < want_n && done[s] < len[s]; i++, done[s]++)
                tk[n] = toks[off[s] + done[s]], sg[n] = s, ps[n] = done[s], n++;
        }
        if (n == 0) break;
        rq_status r = rq_model_forward_segments(st, tk, sg, ps, n, RQ_LOGITS_ALL);
        RQ_CHECK_MSG(r == RQ_OK, "%s", rq_last_error());
        if (r != RQ_OK) break;
        for (int i = 0; i < n; i++) {
            double e = rel_l2(st->logits + i * V, want[sg[i]] + ps[i] * V, V);
            if (e > worst) worst = e;
        }
    }
    RQ_CHECK_MSG(worst <= LOGITS_REL_TOL, "segments: worst row relative L2 %.3g", worst);
    printf("  segments (3 sequences, window %d): worst row relative L2 %.2g\n", WIN, worst);
    for (int s = 0; s < NS; s++) rq_free(want[s]);
    rq_state_free(st);
}

/* A tree batch: prefix of 12 tokens (longer than the window), then two branches of 6 and
 * 9; every slot against the naive forward of its root-to-slot path. */
static void check_tree(rq_model *m) {
    enum { P = 12, B1 = 6, B2 = 9, N = P + B1 + B2 };
    int32_t tk[N], parent[N];
    for (int i = 0; i < N; i++) tk[i] = toks[(7 * i + 3) % NTOK], parent[i] = i - 1;
    parent[P + B1] = P - 1; /* second branch hangs off the prefix's last token */
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, N, N, true, &st) == RQ_OK);
    rq_status s = rq_model_forward_tree(st, tk, parent, N, RQ_LOGITS_ALL);
    RQ_CHECK_MSG(s == RQ_OK, "%s", rq_last_error());
    int32_t path[N];
    float *want = rq_xalloc(N * V * (int64_t)sizeof(float));
    double worst = 0;
    for (int br = 0; br < 2; br++) {
        int n = 0;
        for (int i = 0; i < P; i++) path[n++] = tk[i];
        int b0 = br ? P + B1 : P, b1 = br ? N : P + B1;
        for (int i = b0; i < b1; i++) path[n++] = tk[i];
        naive_forward(path, n, WIN, want);
        for (int i = 0; i < n; i++) {
            int slot = i < P ? i : b0 + (i - P);
            double e = rel_l2(st->logits + slot * V, want + i * V, V);
            if (e > worst) worst = e;
        }
    }
    RQ_CHECK_MSG(worst <= LOGITS_REL_TOL, "tree: worst slot relative L2 %.3g", worst);
    printf("  tree batch: worst slot relative L2 %.2g\n", worst);
    rq_free(want);
    rq_state_free(st);
}

/* R2 (Hadamard 16) folded and R3/R4 online: the same logits (METHODS.md's invariance, for
 * Gemma-3's layer); no norm fused. */
static void check_r234(const char *path) {
    rq_model *m = load(path);
    if (!m) return;
    rq_rotation none = rq_rot_make(RQ_ROT_NONE, E, 0, 0), r2 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 1);
    RQ_CHECK(rq_fold_model(m, &none, &r2) == RQ_OK);
    RQ_CHECK(m->layers[0].attn_norm[3] == w_anorm[0][3] && m->output_norm[5] == w_onorm[5]);
    rq_online_cfg oc = {.r3 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 2), .r4 = rq_rot_make(RQ_ROT_HADAMARD, FF, 0, 3)};
    RQ_CHECK(rq_fold_r4(m, &oc.r4) == RQ_OK);
    RQ_CHECK(rq_model_set_online(m, &oc) == RQ_OK);
    check_chunks(m, NTOK, ref, "R2 folded, R3/R4 online");
    check_chunks(m, 9, ref, "R2 folded, R3/R4 online");
    rq_model_free(m);
}

static float *logits_of(const rq_model *m) {
    float *lg = rq_xalloc(NTOK * V * (int64_t)sizeof(float));
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, NTOK, NTOK, true, &st) == RQ_OK);
    RQ_ASSERT(rq_model_forward(st, toks, NTOK, 0, RQ_LOGITS_ALL) == RQ_OK);
    memcpy(lg, st->logits, sizeof(float) * NTOK * V);
    rq_state_free(st);
    return lg;
}

/* A model rotated by route a (residual) or b (linear) with rotations of kind k (gh/gsr: blocks
 * of 16), R2 Hadamard folded and R3/R4 online too; `online` false leaves out the online
 * halves of R1 / Ri, Ro (R4 kept). oc receives the online configuration. */
static rq_model *rotated(const char *path, char route, rq_rot_kind k, bool online, rq_online_cfg *oc) {
    rq_model *m = load(path);
    if (!m) return NULL;
    bool blk = k == RQ_ROT_GH || k == RQ_ROT_GSR;
    rq_rotation r2 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 1), none = rq_rot_make(RQ_ROT_NONE, E, 0, 0);
    rq_rotation r = rq_rot_make(k, E, blk ? 16 : 0, 7);
    *oc = (rq_online_cfg){.r3 = rq_rot_make(k, HD, blk ? 8 : 0, 2), .r4 = rq_rot_make(k, FF, blk ? 16 : 0, 3)};
    if (route == 'a') {
        RQ_CHECK(rq_fold_model(m, &r, &r2) == RQ_OK);
        /* the pre-norms and the final norm fused (unit), the post-norms and q/k norms kept */
        RQ_CHECK(m->layers[1].attn_norm[2] == 1.0f && m->layers[2].ffn_norm[7] == 1.0f && m->output_norm[0] == 1.0f);
        RQ_CHECK(m->layers[1].post_attn_norm[2] == w_pa[1][2] && m->layers[0].k_norm[3] == w_kn[0][3]);
        RQ_CHECK(!m->cfg.tied_embeddings && m->output.w != m->tok_embd);
        if (online) oc->r1 = r;
    } else {
        RQ_CHECK(rq_fold_model(m, &none, &r2) == RQ_OK);
        rq_rotation ro = rq_rot_make(k, H * HD, blk ? 16 : 0, 9);
        RQ_CHECK(rq_fold_inputs(m, &r, NULL, &ro) == RQ_OK);
        RQ_CHECK(m->layers[1].attn_norm[2] == w_anorm[1][2] && m->output_norm[0] == w_onorm[0]); /* no norm fused */
        if (online) oc->ri = r, oc->ro = ro;
    }
    RQ_CHECK(rq_fold_r4(m, &oc->r4) == RQ_OK);
    rq_status s = rq_model_set_online(m, oc);
    RQ_CHECK_MSG(s == RQ_OK, "set_online: %s", rq_last_error());
    return m;
}

/* Route (a) and (b) for every kind: the unrotated model's logits; other logits without the
 * online half. */
static void check_routes(const char *path) {
    rq_model *m0 = load(path);
    if (!m0) return;
    float *base = logits_of(m0);
    rq_model_free(m0);
    const rq_rot_kind kinds[4] = {RQ_ROT_HADAMARD, RQ_ROT_WALSH, RQ_ROT_GH, RQ_ROT_GSR};
    for (int route = 0; route < 2; route++)
        for (int i = 0; i < 4; i++) {
            char r = route ? 'b' : 'a';
            rq_online_cfg oc;
            rq_model *m = rotated(path, r, kinds[i], true, &oc);
            if (!m) continue;
            RQ_CHECK(route ? m->online.pi && m->online.po && !m->online.p1 : m->online.p1 && !m->online.pi);
            float *got = logits_of(m);
            double e = rel_l2(got, base, NTOK * V);
            RQ_CHECK_MSG(e <= ROT_REL_TOL, "route (%c) %s: relative L2 %.3g", r, rq_rot_kind_name(kinds[i]), e);
            printf("  route (%c) %-8s: relative L2 %.2g to the unrotated model\n", r, rq_rot_kind_name(kinds[i]), e);
            check_chunks(m, 7, ref, route ? "route (b)" : "route (a)"); /* and through the KV cache */
            rq_free(got);
            rq_model_free(m);
            m = rotated(path, r, kinds[i], false, &oc);
            got = logits_of(m);
            e = rel_l2(got, base, NTOK * V);
            RQ_CHECK_MSG(e > BROKEN_REL_MIN, "route (%c) %s without its online half: relative L2 only %.3g", r,
                         rq_rot_kind_name(kinds[i]), e);
            rq_free(got);
            rq_model_free(m);
        }
    /* R1 orthogonal has no online form: refused on a post-norm model */
    m0 = load(path);
    rq_rotation orth = rq_rot_make(RQ_ROT_ORTHOGONAL, E, 0, 1);
    RQ_CHECK(rq_fold_model(m0, &orth, NULL) == RQ_EUNSUPPORTED && strstr(rq_last_error(), "orthogonal"));
    rq_online_cfg bad = {.ro = rq_rot_make(RQ_ROT_GSR, E, 16, 0)};
    RQ_CHECK(rq_model_set_online(m0, &bad) == RQ_EINVAL && strstr(rq_last_error(), "Ro"));
    rq_model_free(m0);
    rq_free(base);
}

static void set_version2(rq_gguf_writer *w, void *user) {
    (void)user;
    rq_gguf_writer_set_u32(w, "rotquant.format_version", 2);
}

/* W16 files of either route: written with their online rotations recorded (version 3),
 * loaded back configured the same and computing the same logits; as version 2, refused. */
static void check_route_files(const char *path) {
    for (int route = 0; route < 2; route++) {
        rq_online_cfg oc;
        rq_model *m = rotated(path, route ? 'b' : 'a', RQ_ROT_GSR, true, &oc);
        if (!m) continue;
        rq_gguf *g;
        RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK);
        rq_qinfo qi;
        memset(&qi, 0, sizeof qi);
        qi.wbits = 16, qi.group = 16;
        strcpy(qi.method, "none");
        strcpy(qi.embd_type, "f32");
        qi.r1 = route ? rq_rot_make(RQ_ROT_NONE, E, 0, 0) : oc.r1;
        qi.r2 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 1);
        qi.r3 = oc.r3, qi.r4 = oc.r4, qi.ri = oc.ri, qi.ro = oc.ro;
        qi.r1_online = !route;
        char file[600], file2[600];
        snprintf(file, sizeof file, "%s/route_%c.gguf", tmpdir, route ? 'b' : 'a');
        rq_ptq_result none = {0};
        RQ_CHECK(rq_qmodel_write(m, g, &none, &qi, file) == RQ_OK);
        rq_gguf_close(g);
        RQ_ASSERT(rq_gguf_open(file, &g) == RQ_OK);
        rq_qinfo back;
        RQ_CHECK(rq_qinfo_read(g, &back) == RQ_OK);
        RQ_CHECK(back.version == 3 && back.r1_online == !route && back.ri.kind == oc.ri.kind &&
                 back.ro.n == oc.ro.n && back.ro.block == oc.ro.block && (!route || back.ro.seed == 9));
        char desc[640];
        rq_qinfo_describe(&back, desc, sizeof desc);
        printf("  route (%c) file: %s\n", route ? 'b' : 'a', desc);
        RQ_CHECK(strstr(desc, route ? "Ro gsr(n=64, block=16)" : "R1 online gsr(n=48, block=16)") != NULL);
        rq_gguf_close(g);
        rq_model *m2 = load(file);
        if (m2) {
            RQ_CHECK(route ? m2->online.pi && m2->online.po : m2->online.p1 != NULL);
            float *a = logits_of(m), *b = logits_of(m2);
            RQ_CHECK_MSG(memcmp(a, b, sizeof(float) * NTOK * V) == 0, "route (%c) file computes other logits",
                         route ? 'b' : 'a');
            rq_free(a), rq_free(b);
            rq_model_free(m2);
        }
        /* the same file claiming version 2 (whose readers would skip the route's keys) */
        snprintf(file2, sizeof file2, "%s/route_v2.gguf", tmpdir);
        rq_test_gguf_copy(file, file2, "rotquant.format_version", set_version2, NULL);
        RQ_ASSERT(rq_gguf_open(file2, &g) == RQ_OK);
        RQ_CHECK(rq_qinfo_read(g, &back) == RQ_EFORMAT && strstr(rq_last_error(), "need version 3"));
        rq_gguf_close(g);
        rq_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_gemma_%d", (int)getpid());
    char cmd[320];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    init_weights();
    rq_rng r;
    rq_rng_seed(&r, 99);
    for (int i = 0; i < NTOK; i++) toks[i] = (int32_t)rq_rng_below(&r, V);
    const char *path = write_tiny("gemma.gguf", WIN, 0);
    test_config(path);

    naive_forward(toks, NTOK, WIN, ref);
    naive_forward(toks, NTOK, 0, ref_full);
    /* the window matters: the two references differ */
    RQ_CHECK(rel_l2(ref, ref_full, NTOK * V) > 1e-2);
    rq_model *m = load(path);
    if (m) {
        check_chunks(m, NTOK, ref, "window 5");
        check_chunks(m, 1, ref, "window 5");
        check_chunks(m, 7, ref, "window 5");
        check_segments(m);
        check_tree(m);
        rq_model_free(m);
    }
    check_r234(path);
    check_routes(path);
    check_route_files(path);
    const char *nowin = write_tiny("gemma_nowin.gguf", 0, 0);
    m = load(nowin);
    if (m) {
        RQ_CHECK(m->cfg.sliding_window == 0 && !rq_model_layer_is_swa(&m->cfg, 0));
        check_chunks(m, NTOK, ref_full, "no window");
        check_chunks(m, 3, ref_full, "no window");
        rq_model_free(m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    return rq_test_finish();
}

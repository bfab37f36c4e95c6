/* The model's backward pass (src/train/backward.h) on tiny random models written here as
 * GGUF files: a LLaMA (3 layers, GQA 4:2, untied and tied lm_head) and a Gemma-3 (3 layers,
 * q/k norms, post norms, GELU, √n_embd embedding scale, sliding window 4 on layers 0 and 2,
 * shorter than the sequence of 11 tokens). Two sequences per batch.
 *
 * Oracle: a naive float64 forward written here from the architecture's formulas (no cache),
 * reading the parameters through the flat list; loss = mean next-token cross-entropy. Every
 * parameter tensor is checked on sampled coordinates (all of them for the norm vectors)
 * against central finite differences of that float64 loss. Also: the saved-activation
 * forward gives the same logits as the plain forward, and gradients are bit-identical from
 * run to run with the same thread count (the forward's work split, and so its rounding,
 * depends on the thread count; the backward's does not).
 *
 * Online quantizers and rotations (check_online, LLaMA and Gemma-3): R3 (Hadamard) and R4
 * (GSR blocks of 8) alone against plain differences; A4 (asymmetric, clip 0.9) + KV4 (clip
 * 0.9) + R3 + R4 against differences of a surrogate whose quantizers are frozen at the base
 * point (see `frozen`: its exact gradient is the straight-through one); A8 and A4 (symmetric,
 * clip 1) gradients against the float one (closer as the grid gets finer). Gemma-3 once more
 * with route (b)'s per-linear input rotations (Ri on q/k/v's and gate/up's input, Ro on o's)
 * in all of these (and LLaMA with route (b)).
 *
 * Activation checkpointing per block (rq_train_ctx_opts.checkpoint_act, check_ckpt): the
 * gradients and loss equal the non-checkpointed ones bit for bit (LLaMA untied and tied,
 * Gemma-3, and LLaMA / Gemma-3 with A4 KV4 R3 R4 online), and the context is smaller.
 *
 * One block alone (check_block, rq_train_block_forward/backward): block by block equals the
 * whole model's residual stream; each block's parameter and input gradients against
 * differences of the float64 layer (LLaMA, Gemma-3 with its sliding window, and LLaMA with
 * A4 KV4 R3 R4 frozen). */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "kernels/vmath.h"
#include "rotate/rotation.h"
#include "format/format.h"
#include "format/kv.h"
#include "io/gguf.h"
#include "model/model.h"
#include "train/backward.h"
#include "train/checkpoint.h"
#include "train/fakequant.h"
#include "train/ops.h"
#include "train/params.h"
#include "train/qat.h"
#include "train/run.h"
#include "train/step.h"

#include <math.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { V = 53, E = 24, NL = 3, FF = 40, NSEQ = 2, T = 11, N = NSEQ * T }; /* QAT groups of 8 divide the inputs */
/* Central-difference step (relative to max(1, |w|)). */
#define FD_H 1e-5
/* float32 forward + backward through 3 layers vs float64 differences: observed ≤ 4.5e-6
 * relative to the tensor's largest sampled gradient (float32 rounding of activations that
 * pass through softmaxes and norms; the FD truncation error ~h² is far smaller). */
#define MODEL_GRAD_REL_TOL 1e-4
/* Coordinates sampled per matrix (the norm vectors are checked entirely). */
#define SAMPLES 10

static char tmpdir[256];
static rq_rng rng;

typedef struct {
    bool gemma, untied;
    int h, hk, hd;
} arch;

static void add_rand(rq_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, double scale, double offset,
                     float **keep) {
    float *d = malloc(sizeof(float) * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) d[i] = (float)(offset + scale * rq_rng_normal(&rng));
    int64_t ne[2] = {ne0, ne1};
    RQ_ASSERT(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, ne1 == 1 ? 1 : 2, ne, d, ne0 * ne1 * 4) == RQ_OK);
    *keep = d;
}

static const char *write_model(const char *file, const arch *a) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    const char *an = a->gemma ? "gemma3" : "llama";
    char key[128], name[96];
    float *keep[NL * 16 + 8];
    int nk = 0;
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", an);
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", an, s), key)
    rq_gguf_writer_set_u32(w, KEY("block_count"), NL);
    rq_gguf_writer_set_u32(w, KEY("context_length"), 64);
    rq_gguf_writer_set_u32(w, KEY("embedding_length"), E);
    rq_gguf_writer_set_u32(w, KEY("feed_forward_length"), FF);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)a->h);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)a->hk);
    rq_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)a->hd);
    rq_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)a->hd);
    rq_gguf_writer_set_f32(w, KEY("rope.freq_base"), a->gemma ? 1e6f : 1e4f);
    rq_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (a->gemma) {
        rq_gguf_writer_set_u32(w, KEY("attention.sliding_window"), 4);
        rq_gguf_writer_set_u32(w, KEY("attention.sliding_window_pattern"), 2);
    }
#undef KEY
    int qd = a->h * a->hd, kvd = a->hk * a->hd;
    add_rand(w, "token_embd.weight", E, V, a->gemma ? 0.2 : 1.0, 0, &keep[nk++]);
    add_rand(w, "output_norm.weight", E, 1, 0.1, 1, &keep[nk++]);
    if (a->untied) add_rand(w, "output.weight", E, V, 0.3, 0, &keep[nk++]);
#define ADD(sfx, ne0, ne1, sc, off) \
    (snprintf(name, sizeof name, "blk.%d.%s.weight", l, sfx), add_rand(w, name, ne0, ne1, sc, off, &keep[nk++]))
    for (int l = 0; l < NL; l++) {
        ADD("attn_norm", E, 1, 0.1, 1);
        ADD("attn_q", E, qd, 0.3, 0);
        ADD("attn_k", E, kvd, 0.3, 0);
        ADD("attn_v", E, kvd, 0.3, 0);
        ADD("attn_output", qd, E, 0.2, 0);
        ADD("ffn_norm", E, 1, 0.1, 1);
        ADD("ffn_gate", E, FF, 0.3, 0);
        ADD("ffn_up", E, FF, 0.3, 0);
        ADD("ffn_down", FF, E, 0.2, 0);
        if (a->gemma) {
            ADD("attn_q_norm", a->hd, 1, 0.2, 1);
            ADD("attn_k_norm", a->hd, 1, 0.2, 1);
            ADD("post_attention_norm", E, 1, 0.1, 1);
            ADD("post_ffw_norm", E, 1, 0.1, 1);
        }
    }
#undef ADD
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    for (int i = 0; i < nk; i++) free(keep[i]);
    return path;
}

/* ---- naive float64 forward reading the parameters as doubles ------------------------- */

/* The online quantizers frozen at a base point (the surrogate of the STE check): a site's
 * quantizer maps row r of its input x to xq[r] + pass[r]·(x − x0[r]), with x0 the float32
 * input the library's forward quantized, xq its quantized value and pass 1 where the code
 * was not clamped. Its exact derivative is the straight-through estimator, and at the base
 * point it gives the quantized model's values. */
enum { FZ_ATTN_IN, FZ_K, FZ_V, FZ_ATT, FZ_FFN_IN, FZ_DOWN, FZ_COUNT };
typedef struct {
    float *x0, *xq; /* [N, dim] (NULL: the site has no quantizer) */
    unsigned char *pass;
    int dim;
} frozen;

typedef struct {
    const rq_model *m;
    const rq_params *p;
    double **D; /* [count] float64 copies of the parameters (perturbed by the FD loop) */
    const double *R3, *R4; /* dense online rotations [hd, hd], [FF, FF] (NULL: none) */
    const double *RI, *RO; /* route (b): q/k/v's and gate/up's input [E, E], o's input [QD, QD] */
    const frozen *fz;      /* [NL·FZ_COUNT] frozen quantizers (NULL: none) */
} naive;

/* x [dim] of row `row` through the frozen quantizer of (layer l, site) */
static void frz(const naive *nv, int l, int site, int row, double *x) {
    if (!nv->fz || !nv->fz[l * FZ_COUNT + site].x0) return;
    const frozen *z = &nv->fz[l * FZ_COUNT + site];
    for (int i = 0; i < z->dim; i++) {
        int64_t k = (int64_t)row * z->dim + i;
        x[i] = z->xq[k] + (z->pass[k] ? x[i] - z->x0[k] : 0.0);
    }
}

/* x [n] ← x·R (R [n, n]; none when NULL) */
static void rot(double *x, const double *R, int n) {
    double y[64];
    if (!R) return;
    RQ_ASSERT(n <= 64);
    for (int j = 0; j < n; j++) {
        double a = 0;
        for (int i = 0; i < n; i++) a += x[i] * R[i * n + j];
        y[j] = a;
    }
    memcpy(x, y, sizeof(double) * (size_t)n);
}

static const double *W(const naive *nv, const float *data) {
    int64_t i = rq_params_find(nv->p, data);
    RQ_ASSERT(i >= 0);
    return nv->D[i];
}

static void mat(const double *x, const double *w, int out, int in, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += x[i] * w[o * in + i];
        y[o] = s;
    }
}

static void rms(const double *x, const double *g, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * g[i];
}

static void rope(double *x, int p, double theta, int hd, bool neox) {
    for (int j = 0; j < hd / 2; j++) {
        double a = p * pow(theta, -2.0 * j / hd);
        int i0 = neox ? j : 2 * j, i1 = neox ? j + hd / 2 : 2 * j + 1;
        double x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * cos(a) - x1 * sin(a);
        x[i1] = x0 * sin(a) + x1 * cos(a);
    }
}

/* Layer l on the T rows x [T, E] (in place) of sequence b. */
static void naive_layer(const naive *nv, int l, int b, double *x) {
    const rq_model_config *c = &nv->m->cfg;
    int H = (int)c->n_head, HK = (int)c->n_head_kv, HD = (int)c->head_dim, QD = H * HD, KVD = HK * HD;
    double eps = c->rms_eps;
    double *xn = malloc(sizeof(double) * E), *q = malloc(sizeof(double) * T * QD);
    double *k = malloc(sizeof(double) * T * KVD), *v = malloc(sizeof(double) * T * KVD);
    double *att = malloc(sizeof(double) * QD), *tmp = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * FF);
    double *u = malloc(sizeof(double) * FF), sc[T];
    const rq_layer *L = &nv->m->layers[l];
    bool local = rq_model_layer_is_swa(c, l);
    double theta = local ? c->rope_theta_swa : c->rope_theta;
    for (int t = 0; t < T; t++) {
        rms(x + t * E, W(nv, L->attn_norm), E, eps, xn);
        rot(xn, nv->RI, E);
        frz(nv, l, FZ_ATTN_IN, b * T + t, xn);
        mat(xn, W(nv, L->wq.w), QD, E, q + t * QD);
        mat(xn, W(nv, L->wk.w), KVD, E, k + t * KVD);
        mat(xn, W(nv, L->wv.w), KVD, E, v + t * KVD);
        for (int h = 0; h < H; h++) {
            if (c->qk_norm) rms(q + t * QD + h * HD, W(nv, L->q_norm), HD, eps, q + t * QD + h * HD);
            rope(q + t * QD + h * HD, t, theta, HD, c->rope_neox);
            rot(q + t * QD + h * HD, nv->R3, HD);
        }
        for (int h = 0; h < HK; h++) {
            if (c->qk_norm) rms(k + t * KVD + h * HD, W(nv, L->k_norm), HD, eps, k + t * KVD + h * HD);
            rope(k + t * KVD + h * HD, t, theta, HD, c->rope_neox);
            rot(k + t * KVD + h * HD, nv->R3, HD);
        }
        frz(nv, l, FZ_K, b * T + t, k + t * KVD);
        frz(nv, l, FZ_V, b * T + t, v + t * KVD);
    }
    for (int t = 0; t < T; t++) {
        int s0 = local && t - (int)c->sliding_window + 1 > 0 ? t - (int)c->sliding_window + 1 : 0;
        for (int h = 0; h < H; h++) {
            int kh = h / (H / HK);
            double mx = -1e300, sum = 0;
            for (int s = s0; s <= t; s++) {
                double d = 0;
                for (int i = 0; i < HD; i++) d += q[t * QD + h * HD + i] * k[s * KVD + kh * HD + i];
                sc[s] = d * c->attn_scale;
                mx = fmax(mx, sc[s]);
            }
            for (int s = s0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
            for (int i = 0; i < HD; i++) {
                double o = 0;
                for (int s = s0; s <= t; s++) o += sc[s] / sum * v[s * KVD + kh * HD + i];
                att[h * HD + i] = o;
            }
        }
        rot(att, nv->RO, QD);
        frz(nv, l, FZ_ATT, b * T + t, att);
        mat(att, W(nv, L->wo.w), E, QD, tmp);
        if (c->post_norms) rms(tmp, W(nv, L->post_attn_norm), E, eps, tmp);
        for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
        rms(x + t * E, W(nv, L->ffn_norm), E, eps, xn);
        rot(xn, nv->RI, E);
        frz(nv, l, FZ_FFN_IN, b * T + t, xn);
        mat(xn, W(nv, L->w_gate.w), FF, E, g);
        mat(xn, W(nv, L->w_up.w), FF, E, u);
        for (int i = 0; i < FF; i++) {
            double a = c->ffn_gelu ? 0.5 * g[i] * (1 + tanh(sqrt(2 / M_PI) * (g[i] + 0.044715 * pow(g[i], 3))))
                                   : g[i] / (1 + exp(-g[i]));
            g[i] = a * u[i];
        }
        rot(g, nv->R4, FF);
        frz(nv, l, FZ_DOWN, b * T + t, g);
        mat(g, W(nv, L->w_down.w), E, FF, tmp);
        if (c->post_norms) rms(tmp, W(nv, L->post_ffn_norm), E, eps, tmp);
        for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
    }
    free(xn), free(q), free(k), free(v), free(att), free(tmp), free(g), free(u);
}

/* mean next-token cross-entropy of the NSEQ sequences of T tokens */
static double naive_loss(const naive *nv, const int32_t *tok) {
    const rq_model_config *c = &nv->m->cfg;
    double eps = c->rms_eps;
    double *x = malloc(sizeof(double) * T * E), *xn = malloc(sizeof(double) * E), *lg = malloc(sizeof(double) * V);
    double loss = 0;
    int count = 0;
    for (int b = 0; b < NSEQ; b++) {
        const int32_t *tk = tok + b * T;
        const double *emb = W(nv, nv->m->tok_embd);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < E; i++) x[t * E + i] = emb[tk[t] * E + i] * c->embd_scale;
        for (int l = 0; l < NL; l++) naive_layer(nv, l, b, x);
        for (int t = 0; t + 1 < T; t++) {
            rms(x + t * E, W(nv, nv->m->output_norm), E, eps, xn);
            mat(xn, W(nv, nv->m->output.w), V, E, lg);
            double mx = lg[0], s = 0;
            for (int i = 1; i < V; i++) mx = fmax(mx, lg[i]);
            for (int i = 0; i < V; i++) s += exp(lg[i] - mx);
            loss += mx + log(s) - lg[tk[t + 1]];
            count++;
        }
    }
    free(x), free(xn), free(lg);
    return loss / count;
}

/* ---- the check --------------------------------------------------------------------- */

/* gradients of the mean next-token cross-entropy through the train context; returns the loss */
static double train_grads(rq_train_ctx *tc, const int32_t *tok, const int32_t *target, const rq_params *p,
                          rq_params *g) {
    memset(g->buf, 0, (size_t)g->n_total * sizeof(float));
    RQ_ASSERT(rq_train_forward(tc, tok) == RQ_OK);
    int count = NSEQ * (T - 1);
    float *z = malloc(sizeof(float) * N * V);
    memcpy(z, tc->st->logits, sizeof(float) * N * V);
    double L = rq_train_xent(z, target, N, V, 1.0f / (float)count, z) / count;
    double L2 = rq_train_loss(tc, tok, NULL, 0); /* the context's loss: the same targets */
    RQ_CHECK(L == L2 && memcmp(z, tc->st->logits, sizeof(float) * N * V) == 0);
    free(z);
    rq_train_backward(tc, tok, tc->st->logits, p, g);
    return L;
}

/* Activation checkpointing: a checkpointed context gives the gradients `want` (and loss
 * L_want) of a plain one bit for bit (the recomputed block forwards run the same code on
 * the same rows with the same thread count), for the model under its current online
 * setting. Leaves its gradients in g. */
static void check_ckpt(rq_model *m, const int32_t *tok, const int32_t *target, const rq_params *p, rq_params *g,
                       const float *want, double L_want) {
    const rq_train_ctx_opts co = {.checkpoint_act = true};
    rq_train_ctx *tc;
    RQ_ASSERT(rq_train_ctx_new_ex(m, NSEQ, T, &co, &tc) == RQ_OK);
    RQ_CHECK(tc->checkpoint_act && tc->x_ins != NULL);
    double L = train_grads(tc, tok, target, p, g);
    double worst = 0;
    for (int64_t i = 0; i < g->n_total; i++) worst = fmax(worst, fabs((double)g->buf[i] - want[i]));
    RQ_CHECK_MSG(L == L_want && memcmp(want, g->buf, sizeof(float) * (size_t)g->n_total) == 0,
                 "checkpointed gradients differ: loss %.9g vs %.9g, largest |Δg| %.3e", L, L_want, worst);
    int64_t plain = rq_train_ctx_bytes(&m->cfg, NSEQ, T), ck = rq_train_ctx_bytes_ex(&m->cfg, NSEQ, T, &co);
    RQ_CHECK(ck < plain);
    printf("  activation checkpointing: loss and gradients bit-identical (largest |Δg| %.1e), context %lld -> %lld "
           "bytes\n", worst, (long long)plain, (long long)ck);
    rq_train_ctx_free(tc);
}

/* ---- finite differences of a float64 loss over the parameters ------------------------- */

typedef double (*loss_fn)(const naive *nv, void *arg);

static double loss_tokens(const naive *nv, void *arg) { return naive_loss(nv, arg); }

/* float64 copies of the parameters */
static naive naive_new(const rq_model *m, const rq_params *p) {
    naive nv = {.m = m, .p = p, .D = malloc(sizeof(double *) * (size_t)p->count)};
    for (int64_t i = 0; i < p->count; i++) {
        nv.D[i] = malloc(sizeof(double) * (size_t)p->p[i].n);
        for (int64_t j = 0; j < p->p[i].n; j++) nv.D[i][j] = p->p[i].data[j];
    }
    return nv;
}

static void naive_free(naive *nv) {
    for (int64_t i = 0; i < nv->p->count; i++) free(nv->D[i]);
    free(nv->D);
}

/* Central difference of loss at coordinate *x (restored). */
static double fd_at(const naive *nv, loss_fn loss, void *arg, double *x) {
    double save = *x, h = FD_H * fmax(1.0, fabs(save));
    *x = save + h;
    double lp = loss(nv, arg);
    *x = save - h;
    double lm = loss(nv, arg);
    *x = save;
    return (lp - lm) / (2 * h);
}

/* Every parameter whose name starts with `prefix` ("" = all): the analytic gradient g on
 * sampled coordinates (all of a vector) against central differences of loss, relative to the
 * tensor's largest sampled |fd|, within tol; the others' gradients must be exactly 0.
 * Returns the worst relative error. */
static double fd_check(const char *label, naive *nv, loss_fn loss, void *arg, const rq_params *g, const char *prefix,
                       double tol) {
    const rq_params *p = nv->p;
    double worst = 0;
    for (int64_t i = 0; i < p->count; i++) {
        const rq_param *e = &p->p[i];
        if (strncmp(e->name, prefix, strlen(prefix)) != 0) {
            bool zero = true;
            for (int64_t j = 0; j < e->n; j++) zero &= g->p[i].data[j] == 0.0f;
            RQ_CHECK_MSG(zero, "%s: %s has a gradient outside %s", label, e->name, prefix);
            continue;
        }
        bool all = e->ne[1] == 1;
        int ns = all ? (int)e->n : SAMPLES;
        double err = 0, big = 0;
        for (int s = 0; s < ns; s++) {
            int64_t j = all ? s : (int64_t)rq_rng_below(&rng, (uint64_t)e->n);
            double fd = fd_at(nv, loss, arg, &nv->D[i][j]), an = g->p[i].data[j];
            big = fmax(big, fabs(fd));
            err = fmax(err, fabs(fd - an));
        }
        double rel = big > 0 ? err / big : err;
        worst = fmax(worst, rel);
        RQ_CHECK_MSG(rel <= tol && big > 0, "%s: %s rel err %.3g (max |fd| %.3g)", label, e->name, rel, big);
    }
    return worst;
}

static void check_model(const char *label, const arch *a) {
    printf("%s\n", label);
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(write_model("train_tiny.gguf", a), &m) == RQ_OK);
    RQ_CHECK(m->cfg.arch == (a->gemma ? RQ_ARCH_GEMMA3 : RQ_ARCH_LLAMA));
    RQ_CHECK((m->output.w == m->tok_embd) == !a->untied);
    if (a->gemma) RQ_CHECK(m->cfg.sliding_window == 4 && m->cfg.sliding_window < T && m->cfg.qk_norm);
    rq_params p, g;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_params_mirror(&p, &g) == RQ_OK);
    RQ_CHECK(p.n_total == rq_model_n_params(m)); /* every weight once (a tied lm_head is the embedding) */
    int32_t tok[N], target[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)rq_rng_below(&rng, V);
    for (int i = 0; i < N; i++) target[i] = i % T == T - 1 ? -1 : tok[i + 1];
    rq_train_ctx *tc;
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, T, &tc) == RQ_OK);

    /* saving activations does not change the forward: logits of each sequence as a plain
     * forward gives them */
    RQ_ASSERT(rq_train_forward(tc, tok) == RQ_OK);
    for (int b = 0; b < NSEQ; b++) {
        float *ref = rq_test_logits(m, tok + b * T, T);
        RQ_CHECK(rq_max_abs_diff(tc->st->logits + b * T * V, ref, T * V) < 1e-4);
        free(ref);
    }

    rq_threads_set(2);
    double L = train_grads(tc, tok, target, &p, &g);
    float *g2 = malloc(sizeof(float) * (size_t)g.n_total);
    memcpy(g2, g.buf, sizeof(float) * (size_t)g.n_total);
    train_grads(tc, tok, target, &p, &g);
    RQ_CHECK_MSG(memcmp(g2, g.buf, sizeof(float) * (size_t)g.n_total) == 0, "gradients differ between two runs");
    check_ckpt(m, tok, target, &p, &g, g2, L);
    memcpy(g.buf, g2, sizeof(float) * (size_t)g.n_total);
    free(g2);

    naive nv = naive_new(m, &p);
    double L64 = naive_loss(&nv, tok);
    RQ_CHECK_NEAR(L, L64, 1e-5 * L64);
    double worst = fd_check(label, &nv, loss_tokens, tok, &g, "", MODEL_GRAD_REL_TOL);
    printf("  %lld tensors, loss %.6f (float64 %.6f), worst rel err %.2e (tol %.0e)\n", (long long)p.count, L, L64,
           worst, MODEL_GRAD_REL_TOL);
    naive_free(&nv);
    rq_train_ctx_free(tc);
    rq_params_free(&g);
    rq_params_free(&p);
    rq_model_free(m);
}


/* ---- online quantizers and rotations (A4, KV4, R3, R4) ---------------------------------- */

/* pass [dim]: 1 where the activation quantizer's code of x (one row) is not clamped
 * (kernels/actq.h's definition) */
static void act_pass(const rq_actq *q, const float *x, int dim, unsigned char *pass) {
    float mn = 0, mx = 0, s, r, z, qlo, qhi;
    for (int i = 0; i < dim; i++) mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
    rq_actq_params(q, mn, mx, &s, &r, &z, &qlo, &qhi);
    for (int i = 0; i < dim; i++) {
        float c = rintf(x[i] * r) + z;
        pass[i] = !(s > 0.0f) || (c >= qlo && c <= qhi);
    }
}

/* the same for a KV row (format/kv.h, groups of `group`) */
static void kv_pass(const float *x, int dim, int64_t group, float clip, unsigned char *pass) {
    for (int g0 = 0; g0 < dim; g0 += (int)group) {
        float s;
        int z;
        rq_kv4_params_ref(x + g0, group, clip, &s, &z);
        for (int i = g0; i < g0 + group; i++) {
            float c = rintf(x[i] / s) + (float)z;
            pass[i] = c >= 0.0f && c <= 15.0f;
        }
    }
}

/* The frozen quantizers of the context's last forward: each site's float32 input as the
 * library's forward quantized it (the saved pre-quantization tensors; the normed inputs
 * recomputed with the same vector kernel, k rotated by the same R3 plan), its quantized
 * value and the clamping mask. Returns the fraction of clamped elements. fz [NL·FZ_COUNT]. */
static double freeze(const rq_train_ctx *tc, frozen *fz) {
    const rq_model *m = tc->model;
    const rq_online_cfg *oc = &m->online.cfg;
    const rq_vmath *vm = rq_vmath_get();
    int QD = (int)(m->cfg.n_head * m->cfg.head_dim), KVD = (int)(m->cfg.n_head_kv * m->cfg.head_dim);
    int64_t clamped = 0, total = 0;
    for (int l = 0; l < NL; l++) {
        const rq_layer_acts *A = &tc->acts.layers[l];
        const rq_layer *L = &m->layers[l];
        int dims[FZ_COUNT] = {E, KVD, KVD, QD, E, FF};
        for (int st = 0; st < FZ_COUNT; st++) {
            frozen *z = &fz[l * FZ_COUNT + st];
            bool kv = st == FZ_K || st == FZ_V;
            if (kv ? oc->kv_bits == 0 : oc->act.bits == 0) {
                memset(z, 0, sizeof *z);
                continue;
            }
            int d = z->dim = dims[st];
            z->x0 = malloc(sizeof(float) * N * (size_t)d);
            z->xq = malloc(sizeof(float) * N * (size_t)d);
            z->pass = malloc((size_t)N * (size_t)d);
            for (int r = 0; r < N; r++) {
                float *x = z->x0 + r * d;
                switch (st) {
                case FZ_ATTN_IN: vm->rmsnorm(A->x_in + r * E, L->attn_norm, E, m->cfg.rms_eps, x); break;
                case FZ_FFN_IN: vm->rmsnorm(A->x_mid + r * E, L->ffn_norm, E, m->cfg.rms_eps, x); break;
                case FZ_K: memcpy(x, A->k + r * d, sizeof(float) * (size_t)d); break;
                case FZ_V: memcpy(x, A->v + r * d, sizeof(float) * (size_t)d); break;
                case FZ_ATT: memcpy(x, A->att + r * d, sizeof(float) * (size_t)d); break;
                default: memcpy(x, A->down_in + r * d, sizeof(float) * (size_t)d); break;
                }
                if (st == FZ_K && m->online.p3) rq_rot_apply(m->online.p3, x, x, m->cfg.n_head_kv);
                if ((st == FZ_ATTN_IN || st == FZ_FFN_IN) && m->online.pi) rq_rot_apply(m->online.pi, x, x, 1);
                if (st == FZ_ATT && m->online.po) rq_rot_apply(m->online.po, x, x, 1);
                memcpy(z->xq + r * d, x, sizeof(float) * (size_t)d);
                if (kv) {
                    rq_kv4_fake_row_ref(z->xq + r * d, d, oc->kv_group, oc->kv_clip);
                    kv_pass(x, d, oc->kv_group, oc->kv_clip, z->pass + r * d);
                } else {
                    rq_actq_row(&oc->act, z->xq + r * d, d);
                    act_pass(&oc->act, x, d, z->pass + r * d);
                }
                for (int i = 0; i < d; i++) clamped += !z->pass[r * d + i];
                total += d;
            }
        }
    }
    return total ? (double)clamped / (double)total : 0;
}

static void frozen_free(frozen *fz) {
    for (int i = 0; i < NL * FZ_COUNT; i++) free(fz[i].x0), free(fz[i].xq), free(fz[i].pass);
}

static double *dense_rot(const rq_rotation *r) {
    float *q;
    RQ_ASSERT(rq_rot_dense(r, &q) == RQ_OK);
    double *d = malloc(sizeof(double) * (size_t)(r->n * r->n));
    for (int64_t i = 0; i < r->n * r->n; i++) d[i] = q[i];
    rq_free(q);
    return d;
}

/* gradients (into a malloc'ed copy) and loss of the model under its current online setting */
static float *online_grads(rq_model *m, const int32_t *tok, const int32_t *target, const rq_params *p, rq_params *g,
                           double *L, rq_train_ctx **keep) {
    rq_train_ctx *tc;
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, T, &tc) == RQ_OK);
    *L = train_grads(tc, tok, target, p, g);
    float *copy = malloc(sizeof(float) * (size_t)g->n_total);
    memcpy(copy, g->buf, sizeof(float) * (size_t)g->n_total);
    if (keep) *keep = tc;
    else rq_train_ctx_free(tc);
    return copy;
}

/* ‖a − b‖ / ‖b‖ over all the parameters */
static double grad_l2_rel(const rq_params *p, const float *a, const float *b) {
    double d = 0, nb = 0;
    for (int64_t i = 0; i < p->n_total; i++) d += pow((double)a[i] - b[i], 2), nb += pow((double)b[i], 2);
    return sqrt(d / nb);
}

/* An STE gradient of the quantizers frozen at the base point is the exact gradient of that
 * frozen surrogate (frz above): so central differences of the float64 surrogate, written
 * from the formulas and sharing no code with the backward (its rotations are the dense
 * matrices of rq_rot_dense, the oracle of the fast transforms), check every chain rule of
 * the backward through the quantizers, R3 and R4, and the STE masks themselves (a mask
 * applied at the wrong place, or a gradient routed around a clamped code, shows up). The
 * surrogate's loss at the base point must equal the quantized model's loss, which checks
 * that the naive forward quantizes exactly where the library's does. */
#define ONLINE_LOSS_REL_TOL 1e-5
/* A8 (symmetric, clip 1) vs float, ‖Δg‖/‖g‖ over all parameters: observed 4-5e-2 on these
 * tiny random models (21 quantized sites, each adding ~0.7% relative noise to its input) */
#define A8_GRAD_REL_TOL 1e-1
/* A4 vs A8 (both symmetric, clip 1): the grid is 127/7 ≈ 18 times finer; the gradient's
 * distance to the float one must shrink with it (observed ~17) */
#define GRID_RATIO_MIN 8.0

/* linear: also route (b)'s per-linear input rotations, Ri = GSR(E, 8) on the normed inputs of
 * q/k/v and gate/up and Ro = Walsh(QD) on o's input (Gemma-3's R1: no post-norm crossed) */
static void check_online(const char *label, const arch *a, bool linear) {
    printf("%s\n", label);
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(write_model("online.gguf", a), &m) == RQ_OK);
    rq_params p, g;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_params_mirror(&p, &g) == RQ_OK);
    int32_t tok[N], target[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)rq_rng_below(&rng, V);
    for (int i = 0; i < N; i++) target[i] = i % T == T - 1 ? -1 : tok[i + 1];
    rq_threads_set(2);
    naive nv = naive_new(m, &p);
    rq_online_cfg oc = {.r3 = rq_rot_make(RQ_ROT_HADAMARD, a->hd, 0, 11), .r4 = rq_rot_make(RQ_ROT_GSR, FF, 8, 0)};
    double *R3 = dense_rot(&oc.r3), *R4 = dense_rot(&oc.r4), *RI = NULL, *RO = NULL;
    nv.R3 = R3, nv.R4 = R4;
    if (linear) {
        oc.ri = rq_rot_make(RQ_ROT_GSR, E, 8, 0), oc.ro = rq_rot_make(RQ_ROT_WALSH, a->h * a->hd, 0, 0);
        nv.RI = RI = dense_rot(&oc.ri), nv.RO = RO = dense_rot(&oc.ro);
    }
    double L, L64;

    /* R3 and R4 alone (float): the real loss is smooth, plain differences */
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    float *gf = online_grads(m, tok, target, &p, &g, &L, NULL);
    L64 = naive_loss(&nv, tok);
    RQ_CHECK_NEAR(L, L64, 1e-5 * L64);
    double w = fd_check(label, &nv, loss_tokens, tok, &g, "", MODEL_GRAD_REL_TOL);
    printf("  R3 hadamard, R4 gsr(8)%s: loss %.6f (float64 %.6f), worst rel err %.2e (tol %.0e)\n",
           linear ? ", Ri gsr(8), Ro walsh" : "", L, L64, w, MODEL_GRAD_REL_TOL);

    /* A4 asymmetric clip 0.9, KV4 clip 0.9, R3, R4: the frozen surrogate */
    oc.act = (rq_actq){.bits = 4, .asym = true, .clip = 0.9f};
    oc.kv_bits = 4, oc.kv_clip = 0.9f;
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    rq_train_ctx *tc;
    float *g4 = online_grads(m, tok, target, &p, &g, &L, &tc);
    check_ckpt(m, tok, target, &p, &g, g4, L);
    memcpy(g.buf, g4, sizeof(float) * (size_t)g.n_total);
    /* the training forward (segments, fake-quantized float KV cache) gives the logits of a
     * plain forward of each sequence on the packed 4-bit cache (the loss wrote dlogits over
     * the logits: forward again) */
    RQ_ASSERT(rq_train_forward(tc, tok) == RQ_OK);
    for (int b = 0; b < NSEQ; b++) {
        float *ref = rq_test_logits(m, tok + b * T, T);
        RQ_CHECK(rq_max_abs_diff(tc->st->logits + b * T * V, ref, T * V) < 1e-4);
        free(ref);
    }
    frozen fz[NL * FZ_COUNT];
    double clamped = freeze(tc, fz);
    RQ_CHECK(clamped > 0.01); /* the masks are exercised */
    nv.fz = fz;
    L64 = naive_loss(&nv, tok);
    RQ_CHECK_NEAR(L, L64, ONLINE_LOSS_REL_TOL * L64);
    w = fd_check(label, &nv, loss_tokens, tok, &g, "", MODEL_GRAD_REL_TOL);
    printf("  A4 asym clip 0.9, KV4 clip 0.9 (%.1f%% of codes clamped), R3, R4: loss %.6f (surrogate float64 %.6f), "
           "worst rel err %.2e (tol %.0e)\n", 100 * clamped, L, L64, w, MODEL_GRAD_REL_TOL);
    nv.fz = NULL;
    frozen_free(fz);
    rq_train_ctx_free(tc);

    /* a fine grid approaches the float gradient: symmetric, clip 1, no KV quantizer, 4 then
     * 8 bits (steps of max|x|/7 and max|x|/127 per token) */
    oc.kv_bits = 0;
    oc.act = (rq_actq){.bits = 4, .asym = false, .clip = 1.0f};
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    float *gs4 = online_grads(m, tok, target, &p, &g, &L, NULL);
    oc.act.bits = 8;
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    float *g8 = online_grads(m, tok, target, &p, &g, &L, NULL);
    double e4 = grad_l2_rel(&p, gs4, gf), e8 = grad_l2_rel(&p, g8, gf);
    printf("  ‖g − g_float‖/‖g_float‖: A8 %.2e (tol %.0e), A4 %.2e (ratio %.1f, must be > %.0f)\n", e8,
           A8_GRAD_REL_TOL, e4, e4 / e8, GRID_RATIO_MIN);
    /* not with Ri and Ro together on the tiny Gemma-3: A8 then deviates by 0.145 (A4 0.685), while
     * Ri alone gives 0.037, Ro alone 0.041 and LLaMA with both 0.036; the gradients there are the
     * exact STE ones (the frozen-surrogate differences above), so this is the tiny model's
     * sensitivity, not the backward's */
    if (!(linear && a->gemma)) RQ_CHECK(e8 < A8_GRAD_REL_TOL && e4 / e8 > GRID_RATIO_MIN);
    free(gs4);
    free(gf), free(g4), free(g8), free(R3), free(R4), free(RI), free(RO);
    naive_free(&nv);
    rq_params_free(&g);
    rq_params_free(&p);
    rq_model_free(m);
}

/* ---- one block alone (Block-AP) -------------------------------------------------------- */

typedef struct {
    int l;
    double *x_in;    /* [N, E] */
    const float *pj; /* [N, E] the loss is Σ y·pj */
} block_arg;

static double loss_block(const naive *nv, void *arg) {
    const block_arg *ba = arg;
    double *x = malloc(sizeof(double) * T * E), L = 0;
    for (int b = 0; b < NSEQ; b++) {
        memcpy(x, ba->x_in + b * T * E, sizeof(double) * T * E);
        naive_layer(nv, ba->l, b, x);
        for (int i = 0; i < T * E; i++) L += x[i] * ba->pj[b * T * E + i];
    }
    free(x);
    return L;
}

/* Block-by-block forward equals the whole model's residual stream (bit for bit: the same
 * layer function on the same rows and thread count); each block's backward against
 * differences of the float64 layer for the loss Σ y·P (P random), its parameters and x_in;
 * with `quant`, A4 + KV4 + R3 + R4 on (frozen surrogate as in check_online). */
static void check_block(const char *label, const arch *a, bool quant) {
    printf("%s\n", label);
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(write_model("block.gguf", a), &m) == RQ_OK);
    rq_online_cfg oc = {0};
    double *R3 = NULL, *R4 = NULL;
    if (quant) {
        oc = (rq_online_cfg){.act = {.bits = 4, .asym = true, .clip = 0.9f}, .kv_bits = 4, .kv_clip = 0.9f,
                             .r3 = rq_rot_make(RQ_ROT_HADAMARD, a->hd, 0, 3), .r4 = rq_rot_make(RQ_ROT_GSR, FF, 8, 0)};
        RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
        R3 = dense_rot(&oc.r3), R4 = dense_rot(&oc.r4);
    }
    rq_params p, g;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_params_mirror(&p, &g) == RQ_OK);
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)rq_rng_below(&rng, V);
    rq_threads_set(2);
    rq_train_ctx *whole, *blk;
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, T, &whole) == RQ_OK);
    RQ_ASSERT(rq_train_ctx_new_ex(m, NSEQ, T, &(rq_train_ctx_opts){.block = true}, &blk) == RQ_OK);
    RQ_CHECK(rq_train_forward(blk, tok) == RQ_EINVAL); /* a block-wise context runs blocks only */
    RQ_CHECK(rq_train_block_forward(blk, NL, whole->dx, whole->dx) == RQ_EINVAL);
    RQ_CHECK(rq_train_block_forward(blk, -1, whole->dx, whole->dx) == RQ_EINVAL);
    RQ_ASSERT(rq_train_forward(whole, tok) == RQ_OK);
    float *x = malloc(sizeof(float) * N * E), *y = malloc(sizeof(float) * N * E), *pj = malloc(sizeof(float) * N * E);
    float *dx = malloc(sizeof(float) * N * E);
    rq_model_embed(m, tok, N, x);
    bool same = true;
    for (int l = 0; l < NL; l++) {
        RQ_ASSERT(rq_train_block_forward(blk, l, x, x) == RQ_OK);
        const float *ref = l + 1 < NL ? whole->acts.layers[l + 1].x_in : whole->acts.x_final;
        same &= memcmp(x, ref, sizeof(float) * N * E) == 0;
    }
    RQ_CHECK_MSG(same, "%s: block-by-block residual stream differs from the whole model's", label);

    naive nv = naive_new(m, &p);
    nv.R3 = R3, nv.R4 = R4;
    double worst = 0, worst_x = 0;
    for (int l = 0; l < NL; l++) {
        for (int i = 0; i < N * E; i++) x[i] = (float)rq_rng_normal(&rng), pj[i] = (float)rq_rng_normal(&rng);
        memset(g.buf, 0, sizeof(float) * (size_t)g.n_total);
        RQ_ASSERT(rq_train_block_forward(blk, l, x, y) == RQ_OK);
        rq_train_block_backward(blk, l, pj, &p, &g, dx);
        frozen fz[NL * FZ_COUNT];
        if (quant) freeze(blk, fz), nv.fz = fz;
        block_arg ba = {.l = l, .x_in = malloc(sizeof(double) * N * E), .pj = pj};
        for (int i = 0; i < N * E; i++) ba.x_in[i] = x[i];
        double L = 0;
        for (int i = 0; i < N * E; i++) L += (double)y[i] * pj[i];
        double L64 = loss_block(&nv, &ba);
        RQ_CHECK_MSG(fabs(L - L64) <= 1e-5 * fmax(1.0, fabs(L64)), "%s: block %d loss %.8g vs float64 %.8g", label, l,
                     L, L64);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "blk.%d.", l);
        worst = fmax(worst, fd_check(label, &nv, loss_block, &ba, &g, prefix, MODEL_GRAD_REL_TOL));
        double err = 0, big = 0;
        for (int s = 0; s < 2 * SAMPLES; s++) {
            int64_t j = (int64_t)rq_rng_below(&rng, N * E);
            double fd = fd_at(&nv, loss_block, &ba, &ba.x_in[j]);
            big = fmax(big, fabs(fd));
            err = fmax(err, fabs(fd - dx[j]));
        }
        worst_x = fmax(worst_x, err / big);
        RQ_CHECK_MSG(err <= MODEL_GRAD_REL_TOL * big, "%s: block %d dx_in rel err %.3g", label, l, err / big);
        if (quant) frozen_free(fz), nv.fz = NULL;
        free(ba.x_in);
    }
    printf("  %d blocks: block-by-block = whole model (bit-identical); worst rel err params %.2e, x_in %.2e (tol "
           "%.0e)\n", NL, worst, worst_x, MODEL_GRAD_REL_TOL);
    naive_free(&nv);
    free(x), free(y), free(pj), free(dx), free(R3), free(R4);
    rq_train_ctx_free(blk);
    rq_train_ctx_free(whole);
    rq_params_free(&g);
    rq_params_free(&p);
    rq_model_free(m);
}

/* exit status of a shell command */
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

/* ---- optimizer steps, checkpoint and exact resume ----------------------------------- */

enum { NDATA = 200, STEPS = 6, STOP = 3 };
static int32_t data[NDATA];

/* Train steps [from, to) of a run on the model file (cosine schedule over STEPS, clip 1,
 * two groups), resuming from ckpt_in when given, saving to ckpt_out when given; losses[step]
 * recorded; the final parameters copied to *final (malloc'ed). */
static void run_steps(const char *model_path, int from, int to, const char *ckpt_in, const char *ckpt_out,
                      double *losses, float **final, int64_t *n_final) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(model_path, &m) == RQ_OK);
    rq_params p, g;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_params_mirror(&p, &g) == RQ_OK);
    rq_adamw o;
    RQ_ASSERT(rq_adamw_init(&o, &p) == RQ_OK);
    o.group[RQ_PGROUP_LINEAR].lr = 3e-3f, o.group[RQ_PGROUP_NORM].lr = 1e-3f, o.group[RQ_PGROUP_EMBED].lr = 2e-3f;
    o.group[RQ_PGROUP_LINEAR].weight_decay = 0.01f;
    rq_rng r;
    rq_rng_seed(&r, 2024);
    if (ckpt_in) RQ_ASSERT(rq_checkpoint_load(ckpt_in, m, &p, &o, &r) == RQ_OK);
    RQ_CHECK(o.t == from);
    rq_train_ctx *tc;
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, T, &tc) == RQ_OK);
    rq_lr_schedule sched = {.shape = RQ_LR_COSINE, .warmup = 2, .total = STEPS, .min_ratio = 0.1f};
    int32_t tok[N];
    for (int step = from; step < to; step++) {
        for (int b = 0; b < NSEQ; b++) memcpy(tok + b * T, data + rq_rng_below(&r, NDATA - T), sizeof(int32_t) * T);
        rq_train_step_opts opt = {.clip = 1.0, .lr_factor = rq_lr_factor(&sched, step)};
        RQ_ASSERT(rq_train_step(tc, &p, &g, &o, tok, &opt, &losses[step], NULL) == RQ_OK);
    }
    if (ckpt_out) RQ_ASSERT(rq_checkpoint_save(ckpt_out, m, &p, &o, &r) == RQ_OK);
    *n_final = 0;
    for (int64_t i = 0; i < p.count; i++) *n_final += p.p[i].n;
    *final = malloc(sizeof(float) * (size_t)*n_final);
    for (int64_t i = 0, at = 0; i < p.count; at += p.p[i].n, i++) memcpy(*final + at, p.p[i].data, sizeof(float) * (size_t)p.p[i].n);
    rq_train_ctx_free(tc);
    rq_adamw_free(&o);
    rq_params_free(&g);
    rq_params_free(&p);
    rq_model_free(m);
}

static void check_resume(void) {
    printf("AdamW steps, checkpoint, resume\n");
    arch a = {.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 6};
    static char model_path[512], ck[512], bad[512];
    snprintf(model_path, sizeof model_path, "%s", write_model("resume.gguf", &a));
    snprintf(ck, sizeof ck, "%s/ck.gguf", tmpdir);
    snprintf(bad, sizeof bad, "%s/ck_trunc.gguf", tmpdir);
    /* a learnable stream (period 5) so that the loss goes down */
    for (int i = 0; i < NDATA; i++) data[i] = (int32_t)((i % 5) * 7 + 3);
    double la[STEPS], lb[STEPS];
    float *pa, *pb;
    int64_t na, nb;
    run_steps(model_path, 0, STEPS, NULL, NULL, la, &pa, &na);
    run_steps(model_path, 0, STOP, NULL, ck, lb, &pb, &nb);
    free(pb);
    run_steps(model_path, STOP, STEPS, ck, NULL, lb, &pb, &nb);
    RQ_CHECK(na == nb && memcmp(pa, pb, sizeof(float) * (size_t)na) == 0);
    RQ_CHECK(memcmp(la, lb, sizeof la) == 0);
    printf("  loss %.6f -> %.6f over %d steps; resumed at %d: losses and parameters bit-identical\n", la[0],
           la[STEPS - 1], STEPS, STOP);
    RQ_CHECK(la[STEPS - 1] < la[0]);
    free(pa), free(pb);

    /* errors, nothing changed: another model, a truncated file */
    rq_model *m;
    arch ga = {.gemma = true, .h = 2, .hk = 1, .hd = 8};
    RQ_ASSERT(rq_model_load_file(write_model("other.gguf", &ga), &m) == RQ_OK);
    rq_params p;
    rq_adamw o;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_adamw_init(&o, &p) == RQ_OK);
    rq_rng r;
    rq_rng_seed(&r, 1);
    float before = p.p[0].data[0];
    rq_status s = rq_checkpoint_load(ck, m, &p, &o, &r);
    RQ_CHECK(s == RQ_EFORMAT && strstr(rq_last_error(), "another model"));
    RQ_CHECK(p.p[0].data[0] == before && o.t == 0);
    rq_adamw_free(&o);
    rq_params_free(&p);
    rq_model_free(m);
    RQ_ASSERT(rq_model_load_file(model_path, &m) == RQ_OK);
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_adamw_init(&o, &p) == RQ_OK);
    struct stat sb;
    RQ_ASSERT(stat(ck, &sb) == 0);
    RQ_ASSERT(sh("head -c %lld %s > %s", (long long)sb.st_size - 100, ck, bad) == 0); /* the last 100 bytes cut */
    before = p.p[0].data[0];
    s = rq_checkpoint_load(bad, m, &p, &o, &r);
    RQ_CHECK(s == RQ_EFORMAT && (strstr(rq_last_error(), "truncated file") || strstr(rq_last_error(), "outside the file")));
    RQ_CHECK(p.p[0].data[0] == before && o.t == 0);
    /* a model file is not a checkpoint */
    RQ_CHECK(rq_checkpoint_load(model_path, m, &p, &o, &r) == RQ_EFORMAT && strstr(rq_last_error(), "not a rotquant"));
    rq_adamw_free(&o);
    rq_params_free(&p);
    rq_model_free(m);
}

/* ---- keep the best: the run ends with the parameters of its lowest validation loss ---- */

/* rq_train_run on the resume test's model and stream (16 training windows of T tokens, 4
 * held out); the final parameters (malloc'ed) and the result */
static void run_loop(const char *model_path, int64_t steps, bool keep_best, float lr, float **final, int64_t *n_final,
                     rq_train_run_result *res) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(model_path, &m) == RQ_OK);
    rq_params p;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK);
    int32_t win[20 * T];
    for (int i = 0; i < 20 * T; i++) win[i] = data[(i * 3) % NDATA];
    rq_train_run_opts o = {.n_seq = NSEQ, .T = T, .steps = steps, .eval_every = 1, .clip = 0, .seed = 5,
                           .keep_best = keep_best};
    o.schedule = (rq_lr_schedule){.shape = RQ_LR_CONSTANT, .total = steps};
    for (int g = 0; g < RQ_PGROUP_COUNT; g++) o.group[g].lr = lr;
    RQ_ASSERT(rq_train_run(m, &p, NULL, NULL, win, 16, win + 16 * T, 4, &o, res) == RQ_OK);
    *n_final = 0;
    for (int64_t i = 0; i < p.count; i++) *n_final += p.p[i].n;
    *final = malloc(sizeof(float) * (size_t)*n_final);
    for (int64_t i = 0, at = 0; i < p.count; at += p.p[i].n, i++) memcpy(*final + at, p.p[i].data, sizeof(float) * (size_t)p.p[i].n);
    rq_params_free(&p);
    rq_model_free(m);
}

/* A learning rate that overshoots makes the validation loss rise after its minimum: the
 * run with keep_best must end with the parameters of a run stopped at that step. Where the
 * minimum falls depends on float rounding (lr 0.5 with AdamW: step 8 on an AVX-512 Xeon,
 * step 12 on an AVX2 EPYC), so the run has 16 steps and the test takes the first learning
 * rate of a rising list whose run has its minimum strictly inside. */
static void check_keep_best(void) {
    printf("keep the best parameters\n");
    arch a = {.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 6};
    const char *path = write_model("best.gguf", &a);
    for (int i = 0; i < NDATA; i++) data[i] = (int32_t)((i % 5) * 7 + 3);
    enum { S = 16 };
    float *pa, *pb, *pc;
    int64_t na, nb, nc;
    rq_train_run_result ra, rb, rc;
    static const float lrs[] = {0.5f, 0.6f, 0.7f, 0.8f, 0.9f};
    float lr = 0;
    for (size_t k = 0; k < sizeof lrs / sizeof lrs[0]; k++) {
        run_loop(path, S, true, lrs[k], &pa, &na, &ra);
        printf("  lr %.1f: validation loss %.4f -> best %.4f at step %lld -> last %.4f\n", lrs[k], ra.val_first,
               ra.val_best, (long long)ra.best_step, ra.val_last);
        lr = lrs[k];
        if (ra.best_step > 0 && ra.best_step < S) break;
        if (k + 1 < sizeof lrs / sizeof lrs[0]) free(pa);
    }
    run_loop(path, S, false, lr, &pc, &nc, &rc);
    RQ_CHECK_MSG(ra.best_step > 0 && ra.best_step < S, "best at step %lld: the test needs a minimum inside the run",
                 (long long)ra.best_step);
    RQ_CHECK(ra.val_best < ra.val_last && ra.val_best < ra.val_first);
    run_loop(path, ra.best_step, false, lr, &pb, &nb, &rb);
    RQ_CHECK(fabs(rb.val_last - ra.val_best) == 0);
    RQ_CHECK(na == nb && memcmp(pa, pb, sizeof(float) * (size_t)na) == 0);
    /* without keep_best the run ends where it stops */
    RQ_CHECK(nc == na && memcmp(pa, pc, sizeof(float) * (size_t)na) != 0 && rc.val_last == ra.val_last);
    free(pa), free(pb), free(pc);
}

/* ---- QAT: fake-quantized weights, and distillation steps lowering the KL -------------- */

static void check_qat(void) {
    printf("QAT W2 g8 distillation\n");
    arch a = {.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 6};
    const char *path = write_model("qat.gguf", &a);
    rq_model *m, *t;
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK && rq_model_load_file(path, &t) == RQ_OK);
    rq_params p, g;
    RQ_ASSERT(rq_params_build(m, &p) == RQ_OK && rq_params_mirror(&p, &g) == RQ_OK);
    rq_qat *q;
    RQ_CHECK(rq_qat_new(&p, 2, 5, 4.0f, &q) == RQ_EINVAL); /* 5 divides no input width */
    RQ_ASSERT(rq_qat_new(&p, 2, 8, 4.0f, &q) == RQ_OK);
    /* 7 linears × 3 layers: a latent and two clip tensors each; the rest shared */
    RQ_CHECK(q->list.count == p.count + 2 * 7 * NL);
    /* the model's weights are the fake-quantized latents: ≤ 4 distinct values per group */
    const rq_param *lat = &q->list.p[rq_params_find_name(&q->list, "blk.1.ffn_down.weight")];
    const float *wm = m->layers[1].w_down.w;
    RQ_CHECK(lat->data != wm && lat->n == E * FF);
    int64_t li = rq_params_find_name(&q->list, "blk.1.ffn_down.weight");
    float *ref = malloc(sizeof(float) * E * FF);
    rq_fq_uniform_forward(2, 8, lat->data, lat->n, q->list.p[li + 1].data, q->list.p[li + 2].data, ref);
    RQ_CHECK(memcmp(ref, wm, sizeof(float) * E * FF) == 0);
    free(ref);
    rq_adamw o;
    RQ_ASSERT(rq_adamw_init(&o, &q->list) == RQ_OK);
    o.group[RQ_PGROUP_LINEAR].lr = 2e-3f, o.group[RQ_PGROUP_NORM].lr = 2e-3f, o.group[RQ_PGROUP_QUANT].lr = 2e-2f;
    o.group[RQ_PGROUP_EMBED].lr = 2e-3f;
    rq_train_ctx *tc;
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, T, &tc) == RQ_OK);
    rq_state *ts;
    RQ_ASSERT(rq_state_new(t, N, N, true, &ts) == RQ_OK && rq_state_set_segments(ts, T) == RQ_OK);
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)rq_rng_below(&rng, V);
    RQ_ASSERT(rq_model_forward_segments(ts, tok, tc->seg, tc->pos, N, RQ_LOGITS_ALL) == RQ_OK);
    double first = 0, last = 0, l0;
    RQ_ASSERT(rq_train_eval(tc, tok, ts->logits, 0.3, &l0) == RQ_OK);
    for (int step = 0; step < 12; step++) {
        rq_train_step_opts so = {.teacher = ts->logits, .gamma = 0.3, .clip = 1, .lr_factor = 1, .qat = q};
        RQ_ASSERT(rq_train_step(tc, &p, &g, &o, tok, &so, &last, NULL) == RQ_OK);
        if (step == 0) first = last;
    }
    RQ_CHECK(first == l0); /* the step's loss is the one before its update */
    double lend;
    RQ_ASSERT(rq_train_eval(tc, tok, ts->logits, 0.3, &lend) == RQ_OK);
    printf("  CAKLD(γ 0.3) to the float teacher: %.5f -> %.5f after 12 steps\n", l0, lend);
    RQ_CHECK(lend < 0.5 * l0);
    rq_state_free(ts);
    rq_train_ctx_free(tc);
    rq_adamw_free(&o);
    rq_qat_free(q);
    rq_params_free(&g);
    rq_params_free(&p);
    rq_model_free(t);
    rq_model_free(m);
}

/* ---- the CLI: errors, and a run stopped and resumed ------------------------------------ */

static bool file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

static void check_cli(void) {
    const char *cli = getenv("RQ_CLI");
    if (!cli) {
        printf("CLI checks skipped (RQ_CLI not set)\n");
        return;
    }
    printf("rotquant train CLI\n");
    char mA[512], mB[512], ids[512], err[512];
    arch a = {.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 6};
    snprintf(mA, sizeof mA, "%s", write_model("cliA.gguf", &a));
    arch b = {.gemma = false, .untied = false, .h = 3, .hk = 1, .hd = 8};
    snprintf(mB, sizeof mB, "%s", write_model("cliB.gguf", &b));
    snprintf(ids, sizeof ids, "%s/ids.txt", tmpdir);
    snprintf(err, sizeof err, "%s/err.txt", tmpdir);
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < 300; i++) fprintf(f, "%d%c", (i % 7) * 5 + 1, i % 20 == 19 ? '\n' : ' ');
    fclose(f);
    const char *common = "--seq-len 10 --batch 2 --eval-every 2 --lr 1e-3 --quiet -t 2";
    /* a run of 6 steps, and the same run stopped after 3 and resumed: the same file */
    RQ_CHECK(sh("%s train -m %s --data-ids %s %s --steps 6 -o %s/a.gguf > %s/a.out 2>&1", cli, mA, ids, common, tmpdir,
                tmpdir) == 0);
    RQ_CHECK(sh("%s train -m %s --data-ids %s %s --steps 3 --checkpoint %s/ck.gguf > /dev/null 2>&1", cli, mA, ids,
                common, tmpdir) == 0);
    RQ_CHECK(sh("%s train -m %s --data-ids %s %s --steps 6 --resume %s/ck.gguf -o %s/c.gguf > /dev/null 2>&1", cli, mA,
                ids, common, tmpdir, tmpdir) == 0);
    RQ_CHECK(sh("cmp -s %s/a.gguf %s/c.gguf", tmpdir, tmpdir) == 0);
    RQ_CHECK(sh("cmp -s %s/a.gguf %s", tmpdir, mA) != 0); /* it did train */
    /* activation checkpointing trains the same model bit for bit */
    RQ_CHECK(sh("%s train -m %s --data-ids %s %s --steps 6 --checkpoint-act -o %s/d.gguf > /dev/null 2>&1", cli, mA,
                ids, common, tmpdir) == 0);
    RQ_CHECK(sh("cmp -s %s/a.gguf %s/d.gguf", tmpdir, tmpdir) == 0);
    RQ_CHECK(sh("%s train --help | grep -q -- --checkpoint-act && %s qat --help | grep -q -- --checkpoint-act", cli,
                cli) == 0);
    char out[600];
    snprintf(out, sizeof out, "%s/a.out", tmpdir);
    RQ_CHECK(file_has(out, "step 0: validation loss") && file_has(out, "step 6: train loss"));
    /* the trained file loads as a model */
    rq_model *m;
    snprintf(out, sizeof out, "%s/a.gguf", tmpdir);
    RQ_CHECK(rq_model_load_file(out, &m) == RQ_OK);
    rq_model_free(m);
    /* errors: non-zero exit, "rotquant: error: ...", no output written */
#define FAILS(needle, ...)                                                                             \
    do {                                                                                               \
        RQ_CHECK(sh(__VA_ARGS__) != 0);                                                                \
        RQ_CHECK_MSG(file_has(err, "rotquant: error: ") && file_has(err, needle), "missing '%s'", needle); \
    } while (0)
    FAILS("--lr must be > 0", "%s train -m %s --data-ids %s --lr 0 2> %s", cli, mA, ids, err);
    FAILS("--lr must be > 0", "%s train -m %s --data-ids %s --lr -1e-3 2> %s", cli, mA, ids, err);
    FAILS("another model", "%s train -m %s --data-ids %s %s --steps 4 --resume %s/ck.gguf -o %s/x.gguf 2> %s", cli, mB,
          ids, common, tmpdir, tmpdir, err);
    RQ_CHECK(sh("head -c 3000 %s/ck.gguf > %s/ck_trunc.gguf", tmpdir, tmpdir) == 0);
    FAILS("ck_trunc.gguf", "%s train -m %s --data-ids %s %s --steps 4 --resume %s/ck_trunc.gguf -o %s/x.gguf 2> %s", cli,
          mA, ids, common, tmpdir, tmpdir, err);
    RQ_CHECK(sh(": > %s/empty.txt", tmpdir) == 0);
    FAILS("no tokens", "%s train -m %s --data-ids %s/empty.txt %s -o %s/x.gguf 2> %s", cli, mA, tmpdir, common, tmpdir,
          err);
    /* a step's windows run one at a time (train/dp.h): --batch no longer sets the memory,
     * so a huge batch fails on the data (too few windows to hold one batch out) */
    FAILS("--batch 1000000 held out", "%s train -m %s --data-ids %s --batch 1000000 --seq-len 64 -o %s/x.gguf 2> %s", cli,
          mA, ids, tmpdir, err);
    RQ_CHECK(sh("test -e %s/x.gguf", tmpdir) != 0); /* nothing written by the failed runs */
#undef FAILS
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_train_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    rq_rng_seed(&rng, 77);
    check_model("LLaMA untied, GQA 4:2, head_dim 6", &(arch){.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 6});
    check_model("LLaMA tied, GQA 3:1, head_dim 8", &(arch){.gemma = false, .untied = false, .h = 3, .hk = 1, .hd = 8});
    check_model("Gemma-3, GQA 2:1, head_dim 8, window 4 < 11", &(arch){.gemma = true, .h = 2, .hk = 1, .hd = 8});
    check_online("online LLaMA GQA 4:2, head_dim 8", &(arch){.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 8},
                 false);
    check_online("online Gemma-3 GQA 2:1, head_dim 8", &(arch){.gemma = true, .h = 2, .hk = 1, .hd = 8}, false);
    check_online("online Gemma-3, route (b)", &(arch){.gemma = true, .h = 2, .hk = 1, .hd = 8}, true);
    check_online("online LLaMA, route (b)", &(arch){.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 8}, true);
    check_block("block LLaMA tied, GQA 3:1", &(arch){.gemma = false, .untied = false, .h = 3, .hk = 1, .hd = 8}, false);
    check_block("block Gemma-3, window 4", &(arch){.gemma = true, .h = 2, .hk = 1, .hd = 8}, false);
    check_block("block LLaMA, A4 KV4 R3 R4", &(arch){.gemma = false, .untied = true, .h = 4, .hk = 2, .hd = 8}, true);
    check_resume();
    check_keep_best();
    check_qat();
    check_cli();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    return rq_test_finish();
}

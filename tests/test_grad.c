/* Backward operations (src/train/ops.h, src/train/fakequant.h) against central finite
 * differences of float64 forwards written here from the formulas, on random inputs with odd
 * sizes. Each check draws a random cotangent dy, takes L = Σ dy ∘ f(inputs) in float64,
 * and compares the float32 backward's ∂L/∂input with (L(x + h) − L(x − h)) / 2h for every
 * coordinate. Error measure: max |analytic − fd| / max |fd| over the tensor. */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "kernels/actq.h"
#include "format/format.h"
#include "model/ops.h"
#include "train/fakequant.h"
#include "train/ops.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Step of the central differences: the float64 forwards are smooth at this scale; the
 * truncation error h²·f''' ≈ 1e-12 and the rounding error 1e-16/h ≈ 1e-10 are far below the
 * float32 backward's error. */
#define FD_H 1e-6
/* float32 backward (products and sums of a few hundred terms, GEMMs over odd sizes) vs
 * float64 differences: observed ≤ 3.1e-7 relative to the gradient's largest entry. */
#define GRAD_REL_TOL 1e-4
/* Losses: log-softmax over 41 logits in float32 outputs; observed ~1e-7. */
#define LOSS_REL_TOL 1e-5
/* KV4 clip gradient: the analytic one uses the fp16-rounded scale (passed straight
 * through), the float64 reference the unrounded one: they differ by up to fp16's relative
 * precision 2⁻¹¹ ≈ 4.9e-4. */
#define KV4_CLIP_REL_TOL 2e-3

static rq_rng rng;

static void randn(float *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * rq_rng_normal(&rng));
}

/* The inputs of one check, as float64 copies the forwards read (perturbed by the FD loop). */
typedef double (*loss_fn)(void *ctx);

/* Max-relative error of `an` [n] against the central differences of fn in the coordinates
 * of p [n] (a float64 input of ctx). Coordinates where `skip` returns true are left out
 * (a quantizer code flipped within ±h). */
static double fd_check(const char *what, loss_fn fn, void *ctx, double *p, const float *an, int64_t n, double tol,
                       bool (*skip)(void *ctx)) {
    double err = 0, big = 0;
    int64_t skipped = 0;
    for (int64_t i = 0; i < n; i++) {
        double save = p[i], h = FD_H * (fabs(save) > 1 ? fabs(save) : 1);
        p[i] = save + h;
        double lp = fn(ctx);
        bool flip = skip && skip(ctx);
        p[i] = save - h;
        double lm = fn(ctx);
        flip = flip || (skip && skip(ctx));
        p[i] = save;
        if (flip) {
            skipped++;
            continue;
        }
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd) > big) big = fabs(fd);
        if (fabs(fd - an[i]) > err) err = fabs(fd - an[i]);
    }
    double rel = big > 0 ? err / big : err;
    printf("  %-34s max rel err %.2e (tol %.0e)%s\n", what, rel, tol, skipped ? " (codes flipped: skipped)" : "");
    RQ_CHECK_MSG(rel <= tol, "%s: rel err %.3g > %.3g", what, rel, tol);
    RQ_CHECK_MSG(skipped * 10 <= n, "%s: %lld of %lld coordinates skipped", what, (long long)skipped, (long long)n);
    return rel;
}

static void to_d(const float *x, double *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
}

/* ---- embedding ----------------------------------------------------------------------- */

enum { EV = 13, ED = 11, EN = 9 };
typedef struct {
    double emb[EV * ED], dy[EN * ED];
    int32_t tok[EN];
    double scale;
} emb_ctx;

static double emb_loss(void *c_) {
    emb_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < EN; i++)
        for (int j = 0; j < ED; j++) L += c->dy[i * ED + j] * c->emb[c->tok[i] * ED + j] * c->scale;
    return L;
}

static void test_embed(void) {
    static emb_ctx c;
    float emb[EV * ED], dy[EN * ED], dE[EV * ED] = {0};
    randn(emb, EV * ED, 1);
    randn(dy, EN * ED, 1);
    for (int i = 0; i < EN; i++) c.tok[i] = (int32_t)rq_rng_below(&rng, EV);
    c.tok[3] = c.tok[5]; /* a repeated token: its gradient rows add up */
    c.scale = sqrt((double)ED);
    to_d(emb, c.emb, EV * ED);
    to_d(dy, c.dy, EN * ED);
    rq_train_embed_backward(dy, c.tok, EN, ED, (float)c.scale, dE);
    fd_check("embedding ×√n_embd dE", emb_loss, &c, c.emb, dE, EV * ED, GRAD_REL_TOL, NULL);
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

enum { RN = 7, RD = 37 };
#define RMS_EPS 1e-5
typedef struct {
    double x[RN * RD], g[RD], dy[RN * RD];
} rms_ctx;

static double rms_loss(void *c_) {
    rms_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < RN; i++) {
        double ss = 0;
        for (int j = 0; j < RD; j++) ss += c->x[i * RD + j] * c->x[i * RD + j];
        double r = 1 / sqrt(ss / RD + RMS_EPS);
        for (int j = 0; j < RD; j++) L += c->dy[i * RD + j] * c->x[i * RD + j] * r * c->g[j];
    }
    return L;
}

/* offset 1: LLaMA's w around 1; offset 0: Gemma's stored 1 + w with w around 0 (the same op) */
static void test_rmsnorm(double g_offset, const char *name) {
    static rms_ctx c;
    float x[RN * RD], g[RD], dy[RN * RD], dx[RN * RD], dg[RD] = {0};
    randn(x, RN * RD, 2);
    randn(g, RD, 0.3);
    for (int j = 0; j < RD; j++) g[j] += (float)g_offset;
    randn(dy, RN * RD, 1);
    to_d(x, c.x, RN * RD), to_d(g, c.g, RD), to_d(dy, c.dy, RN * RD);
    rq_train_rmsnorm_backward(x, g, dy, RN, RD, (float)RMS_EPS, dx, false, dg);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm %s dx", name);
    fd_check(what, rms_loss, &c, c.x, dx, RN * RD, GRAD_REL_TOL, NULL);
    snprintf(what, sizeof what, "rmsnorm %s dg", name);
    fd_check(what, rms_loss, &c, c.g, dg, RD, GRAD_REL_TOL, NULL);
    /* accumulate adds to what is there */
    float dx2[RN * RD];
    for (int i = 0; i < RN * RD; i++) dx2[i] = 1.0f;
    rq_train_rmsnorm_backward(x, g, dy, RN, RD, (float)RMS_EPS, dx2, true, NULL);
    double e = 0;
    for (int i = 0; i < RN * RD; i++) e = fmax(e, fabs(dx2[i] - 1.0f - dx[i]));
    RQ_CHECK(e < 1e-5);
}

/* ---- linear -------------------------------------------------------------------------- */

enum { LN = 7, LO = 71, LI = 37 }; /* more than one 64-column work item on the output side */
typedef struct {
    double w[LO * LI], x[LN * LI], dy[LN * LO];
} lin_ctx;

static double lin_loss(void *c_) {
    lin_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < LN; i++)
        for (int o = 0; o < LO; o++) {
            double y = 0;
            for (int k = 0; k < LI; k++) y += c->x[i * LI + k] * c->w[o * LI + k];
            L += c->dy[i * LO + o] * y;
        }
    return L;
}

static void test_linear(void) {
    static lin_ctx c;
    static float w[LO * LI], x[LN * LI], dy[LN * LO], dx[LN * LI], dw[LO * LI];
    randn(w, LO * LI, 0.5), randn(x, LN * LI, 1), randn(dy, LN * LO, 1);
    memset(dw, 0, sizeof dw);
    to_d(w, c.w, LO * LI), to_d(x, c.x, LN * LI), to_d(dy, c.dy, LN * LO);
    rq_train_linear_backward(w, x, dy, LN, LO, LI, dx, false, dw);
    fd_check("linear dx", lin_loss, &c, c.x, dx, LN * LI, GRAD_REL_TOL, NULL);
    fd_check("linear dW", lin_loss, &c, c.w, dw, LO * LI, GRAD_REL_TOL, NULL);
}

/* ---- RoPE ---------------------------------------------------------------------------- */

enum { PHD = 10, PRD = 8 }; /* head_dim 10 with rope_dim 8: the last two dims pass through */
typedef struct {
    double x[PHD], dy[PHD];
    int pos;
    bool neox;
} rope_ctx;

static double rope_loss(void *c_) {
    rope_ctx *c = c_;
    double y[PHD];
    memcpy(y, c->x, sizeof y);
    for (int i = 0; i < PRD / 2; i++) {
        double a = c->pos * pow(10000.0, -2.0 * i / PRD);
        int i0 = c->neox ? i : 2 * i, i1 = c->neox ? i + PRD / 2 : 2 * i + 1;
        y[i0] = c->x[i0] * cos(a) - c->x[i1] * sin(a);
        y[i1] = c->x[i0] * sin(a) + c->x[i1] * cos(a);
    }
    double L = 0;
    for (int i = 0; i < PHD; i++) L += c->dy[i] * y[i];
    return L;
}

static void test_rope(bool neox) {
    static rope_ctx c;
    enum { NPOS = 6 };
    float cs[NPOS * PRD / 2], sn[NPOS * PRD / 2], x[PHD], dy[PHD];
    rq_rope_table(NPOS, PRD, 10000.0, 1.0, NULL, cs, sn);
    c.pos = 5, c.neox = neox;
    randn(x, PHD, 1), randn(dy, PHD, 1);
    to_d(x, c.x, PHD), to_d(dy, c.dy, PHD);
    rq_train_rope_backward(dy, cs + c.pos * PRD / 2, sn + c.pos * PRD / 2, PRD, neox);
    fd_check(neox ? "rope neox dx" : "rope dx", rope_loss, &c, c.x, dy, PHD, GRAD_REL_TOL, NULL);
}

/* ---- MLP activations ----------------------------------------------------------------- */

enum { AN = 53 };
typedef struct {
    double g[AN], u[AN], dh[AN];
    bool gelu;
} act_ctx;

static double act_loss(void *c_) {
    act_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < AN; i++) {
        double x = c->g[i], a;
        if (c->gelu) a = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        else a = x / (1 + exp(-x));
        L += c->dh[i] * a * c->u[i];
    }
    return L;
}

static void test_act(bool gelu) {
    static act_ctx c;
    float g[AN], u[AN], dh[AN], dg[AN], du[AN], h[AN], h2[AN];
    randn(g, AN, 2), randn(u, AN, 1), randn(dh, AN, 1);
    c.gelu = gelu;
    to_d(g, c.g, AN), to_d(u, c.u, AN), to_d(dh, c.dh, AN);
    rq_train_mlp_act_backward(gelu, g, u, dh, AN, dg, du, h);
    fd_check(gelu ? "GELU(tanh)·up dgate" : "SwiGLU dgate", act_loss, &c, c.g, dg, AN, GRAD_REL_TOL, NULL);
    fd_check(gelu ? "GELU(tanh)·up dup" : "SwiGLU dup", act_loss, &c, c.u, du, AN, GRAD_REL_TOL, NULL);
    /* the recomputed h is the forward's (model/ops.h, kernels/vmath.h) */
    memcpy(h2, g, sizeof h2);
    if (gelu) rq_geglu(h2, u, AN);
    else for (int i = 0; i < AN; i++) h2[i] = g[i] / (1 + expf(-g[i])) * u[i];
    RQ_CHECK(rq_max_abs_diff(h, h2, AN) < 1e-5);
}

/* ---- attention ----------------------------------------------------------------------- */

enum { TS = 2, TT = 9, TH = 4, TK = 2, TD = 6 };
enum { TQD = TH * TD, TKD = TK * TD, TN = TS * TT };
typedef struct {
    double q[TN * TQD], k[TN * TKD], v[TN * TKD], dy[TN * TQD];
    int window;
} att_ctx;

static double att_loss(void *c_) {
    att_ctx *c = c_;
    double L = 0, sc[TT], scale = 1 / sqrt((double)TD);
    for (int b = 0; b < TS; b++)
        for (int h = 0; h < TH; h++) {
            int kh = h / (TH / TK);
            for (int t = 0; t < TT; t++) {
                int lo = c->window && t - c->window + 1 > 0 ? t - c->window + 1 : 0;
                double mx = -1e300, sum = 0;
                for (int s = lo; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < TD; i++)
                        d += c->q[(b * TT + t) * TQD + h * TD + i] * c->k[(b * TT + s) * TKD + kh * TD + i];
                    sc[s] = d * scale;
                    mx = fmax(mx, sc[s]);
                }
                for (int s = lo; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < TD; i++) {
                    double o = 0;
                    for (int s = lo; s <= t; s++) o += sc[s] / sum * c->v[(b * TT + s) * TKD + kh * TD + i];
                    L += c->dy[(b * TT + t) * TQD + h * TD + i] * o;
                }
            }
        }
    return L;
}

static void test_attention(int window) {
    static att_ctx c;
    static float q[TN * TQD], k[TN * TKD], v[TN * TKD], dy[TN * TQD], dq[TN * TQD], dk[TN * TKD], dv[TN * TKD];
    randn(q, TN * TQD, 1), randn(k, TN * TKD, 1), randn(v, TN * TKD, 1), randn(dy, TN * TQD, 1);
    c.window = window;
    to_d(q, c.q, TN * TQD), to_d(k, c.k, TN * TKD), to_d(v, c.v, TN * TKD), to_d(dy, c.dy, TN * TQD);
    rq_train_attn_shape a = {.n_seq = TS, .T = TT, .n_head = TH, .n_kv = TK, .hd = TD, .window = window,
                             .scale = (float)(1 / sqrt((double)TD))};
    rq_train_attention_backward(&a, q, k, v, dy, dq, dk, dv);
    char w[64];
    snprintf(w, sizeof w, "attention GQA window %d dq", window);
    fd_check(w, att_loss, &c, c.q, dq, TN * TQD, GRAD_REL_TOL, NULL);
    snprintf(w, sizeof w, "attention GQA window %d dk", window);
    fd_check(w, att_loss, &c, c.k, dk, TN * TKD, GRAD_REL_TOL, NULL);
    snprintf(w, sizeof w, "attention GQA window %d dv", window);
    fd_check(w, att_loss, &c, c.v, dv, TN * TKD, GRAD_REL_TOL, NULL);
}

/* ---- losses -------------------------------------------------------------------------- */

enum { XN = 5, XV = 41 };
typedef struct {
    double z[XN * XV], zt[XN * XV];
    int32_t target[XN];
    double gamma;
    bool kl;
} loss_ctx;

static void log_softmax_d(const double *z, double *lp) {
    double mx = z[0], s = 0;
    for (int k = 1; k < XV; k++) mx = fmax(mx, z[k]);
    for (int k = 0; k < XV; k++) s += exp(z[k] - mx);
    for (int k = 0; k < XV; k++) lp[k] = z[k] - mx - log(s);
}

static double loss_loss(void *c_) {
    loss_ctx *c = c_;
    double L = 0, ls[XV], lt[XV];
    for (int i = 0; i < XN; i++) {
        log_softmax_d(c->z + i * XV, ls);
        if (!c->kl) {
            if (c->target[i] >= 0) L -= ls[c->target[i]];
            continue;
        }
        log_softmax_d(c->zt + i * XV, lt);
        double st = 0, ts = 0;
        for (int k = 0; k < XV; k++) st += exp(ls[k]) * (ls[k] - lt[k]), ts += exp(lt[k]) * (lt[k] - ls[k]);
        L += c->gamma * st + (1 - c->gamma) * ts;
    }
    return L;
}

static void test_losses(void) {
    static loss_ctx c;
    float z[XN * XV], zt[XN * XV], dz[XN * XV];
    randn(z, XN * XV, 2), randn(zt, XN * XV, 2);
    to_d(z, c.z, XN * XV), to_d(zt, c.zt, XN * XV);
    for (int i = 0; i < XN; i++) c.target[i] = (int32_t)rq_rng_below(&rng, XV);
    c.target[2] = -1; /* an unscored row */
    c.kl = false;
    double L = rq_train_xent(z, c.target, XN, XV, 1.0f, dz);
    RQ_CHECK_NEAR(L, loss_loss(&c), LOSS_REL_TOL * fabs(loss_loss(&c)));
    fd_check("cross-entropy dlogits", loss_loss, &c, c.z, dz, XN * XV, GRAD_REL_TOL, NULL);
    /* the gradient written over the logits gives the same */
    float z2[XN * XV];
    memcpy(z2, z, sizeof z2);
    rq_train_xent(z2, c.target, XN, XV, 1.0f, z2);
    RQ_CHECK(rq_max_abs_diff(z2, dz, XN * XV) == 0);
    c.kl = true;
    const double gammas[3] = {0.0, 0.35, 1.0};
    for (int gi = 0; gi < 3; gi++) {
        c.gamma = gammas[gi];
        double Lk = rq_train_kl(z, zt, XN, XV, c.gamma, 1.0f, dz), ref = loss_loss(&c);
        RQ_CHECK_NEAR(Lk, ref, LOSS_REL_TOL * fabs(ref));
        char w[64];
        snprintf(w, sizeof w, "KL gamma %.2f dlogits", c.gamma);
        fd_check(w, loss_loss, &c, c.z, dz, XN * XV, GRAD_REL_TOL, NULL);
    }
    /* KL of a distribution with itself: 0 and a zero gradient */
    double L0 = rq_train_kl(zt, zt, XN, XV, 0.35, 1.0f, dz);
    double mx = 0;
    for (int i = 0; i < XN * XV; i++) mx = fmax(mx, fabs(dz[i]));
    RQ_CHECK(fabs(L0) < 1e-9 && mx < 1e-7);
}

/* ---- fake quantizers ----------------------------------------------------------------- */

/* The codes a float64 quantizer chose (first member of each quantizer's context), and those
 * of the unperturbed input: a finite difference whose step flips a code is skipped. */
typedef struct {
    int *codes, *codes0;
    size_t n;
} code_track;

static bool codes_flipped(void *c_) {
    const code_track *t = c_;
    return memcmp(t->codes, t->codes0, t->n * sizeof(int)) != 0;
}

enum { QN = 3 * 13, QG = 13, QB = 3 };
typedef struct {
    code_track tr;
    double w[QN], beta[QN / QG], gam[QN / QG], dy[QN];
    int codes[QN], codes0[QN];
} fq_ctx;

static double sigm(double x) { return 1 / (1 + exp(-x)); }

/* the float64 quantizer (codes recomputed, recorded for the flip check) */
static double fq_loss(void *c_) {
    fq_ctx *c = c_;
    double L = 0, maxq = (1 << QB) - 1;
    for (int k = 0; k < QN / QG; k++) {
        double mn = c->w[k * QG], mx = mn;
        for (int i = 0; i < QG; i++) mn = fmin(mn, c->w[k * QG + i]), mx = fmax(mx, c->w[k * QG + i]);
        double lo = sigm(c->beta[k]) * mn, hi = sigm(c->gam[k]) * mx, s = (hi - lo) / maxq;
        for (int i = 0; i < QG; i++) {
            double q = fmin(fmax(rint((c->w[k * QG + i] - lo) / s), 0), maxq);
            c->codes[k * QG + i] = (int)q;
            L += c->dy[k * QG + i] * (lo + q * s);
        }
    }
    return L;
}

static void test_fq_uniform(void) {
    static fq_ctx c;
    float w[QN], beta[QN / QG], gam[QN / QG], dy[QN], wq[QN], dw[QN] = {0}, db[QN / QG] = {0}, dg[QN / QG] = {0};
    randn(w, QN, 1), randn(dy, QN, 1);
    for (int k = 0; k < QN / QG; k++) beta[k] = 1.5f + (float)k, gam[k] = 2.0f - 0.5f * (float)k; /* clips 0.82..0.98 */
    to_d(w, c.w, QN), to_d(beta, c.beta, QN / QG), to_d(gam, c.gam, QN / QG), to_d(dy, c.dy, QN);
    rq_fq_uniform_forward(QB, QG, w, QN, beta, gam, wq);
    c.tr = (code_track){c.codes, c.codes0, QN};
    fq_loss(&c);
    memcpy(c.codes0, c.codes, sizeof c.codes);
    /* forward matches the float64 quantizer */
    double mx = 0, maxq = (1 << QB) - 1;
    for (int k = 0; k < QN / QG; k++) {
        double mn = c.w[k * QG], mxx = mn;
        for (int i = 0; i < QG; i++) mn = fmin(mn, c.w[k * QG + i]), mxx = fmax(mxx, c.w[k * QG + i]);
        double lo = sigm(c.beta[k]) * mn, hi = sigm(c.gam[k]) * mxx, s = (hi - lo) / maxq;
        for (int i = 0; i < QG; i++) {
            mx = fmax(mx, fabs(wq[k * QG + i] - (lo + c.codes[k * QG + i] * s)));
        }
    }
    RQ_CHECK(mx < 1e-5);
    /* STE mask: the gradient passes inside [lo, hi] only */
    rq_fq_uniform_backward(QB, QG, w, QN, beta, gam, dy, dw, db, dg);
    fd_check("uniform W3 learnable clip dβ", fq_loss, &c, c.beta, db, QN / QG, GRAD_REL_TOL, codes_flipped);
    fd_check("uniform W3 learnable clip dγ", fq_loss, &c, c.gam, dg, QN / QG, GRAD_REL_TOL, codes_flipped);
    int clipped = 0, bad = 0;
    for (int k = 0; k < QN / QG; k++) {
        double mn = c.w[k * QG], mxx = mn;
        for (int i = 0; i < QG; i++) mn = fmin(mn, c.w[k * QG + i]), mxx = fmax(mxx, c.w[k * QG + i]);
        double lo = sigm(c.beta[k]) * mn, hi = sigm(c.gam[k]) * mxx;
        for (int i = 0; i < QG; i++) {
            bool inside = c.w[k * QG + i] >= lo && c.w[k * QG + i] <= hi;
            clipped += !inside;
            bad += dw[k * QG + i] != (inside ? dy[k * QG + i] : 0.0f);
        }
    }
    RQ_CHECK(clipped >= 2 && bad == 0); /* each group's min and max are clipped (σ < 1) */
}

enum { AQN = 3, AQD = 29 };
typedef struct {
    code_track tr;
    double x[AQN * AQD], dy[AQN * AQD], clip;
    rq_actq q;
    int codes[AQN * AQD], codes0[AQN * AQD];
    bool clamped[AQN * AQD];
} aq_ctx;

/* the per-token quantizer of kernels/actq.h in float64, codes and clamping recorded */
static double aq_loss(void *c_) {
    aq_ctx *c = c_;
    double L = 0;
    for (int r = 0; r < AQN; r++) {
        const double *x = c->x + r * AQD;
        double mn = 0, mx = 0, s, z, qlo, qhi;
        for (int i = 0; i < AQD; i++) mn = fmin(mn, x[i]), mx = fmax(mx, x[i]);
        if (c->q.asym) {
            double maxq = (1 << c->q.bits) - 1;
            s = c->clip * (mx - mn) / maxq, z = fmin(fmax(rint(-c->clip * mn / s), 0), maxq), qlo = 0, qhi = maxq;
        } else {
            double half = 1 << (c->q.bits - 1);
            s = c->clip * fmax(-mn, mx) / (half - 1), z = 0, qlo = -half, qhi = half - 1;
        }
        for (int i = 0; i < AQD; i++) {
            double q = rint(x[i] / s) + z;
            c->clamped[r * AQD + i] = q < qlo || q > qhi;
            q = fmin(fmax(q, qlo), qhi);
            c->codes[r * AQD + i] = (int)q;
            L += c->dy[r * AQD + i] * s * (q - z);
        }
    }
    return L;
}

static void test_fq_act(int bits, bool asym) {
    static aq_ctx c;
    float x[AQN * AQD], dy[AQN * AQD], dx[AQN * AQD], dclip = 0;
    randn(x, AQN * AQD, 1), randn(dy, AQN * AQD, 1);
    c.q = (rq_actq){.bits = bits, .asym = asym, .clip = 0.85f};
    c.clip = c.q.clip;
    to_d(x, c.x, AQN * AQD), to_d(dy, c.dy, AQN * AQD);
    c.tr = (code_track){c.codes, c.codes0, AQN * AQD};
    aq_loss(&c);
    memcpy(c.codes0, c.codes, sizeof c.codes);
    rq_fq_act_backward(&c.q, x, dy, AQN, AQD, dx, &dclip);
    /* STE: dy where the float64 quantizer's code is not clamped, 0 where it is (clip 0.85
     * clamps each row's extremes) */
    int clamped = 0, bad = 0;
    for (int i = 0; i < AQN * AQD; i++) {
        clamped += c.clamped[i];
        bad += dx[i] != (c.clamped[i] ? 0.0f : dy[i]);
    }
    RQ_CHECK(bad == 0 && clamped >= AQN);
    char w[64];
    snprintf(w, sizeof w, "actq A%d %s clip dc", bits, asym ? "asym" : "sym");
    fd_check(w, aq_loss, &c, &c.clip, &dclip, 1, GRAD_REL_TOL, codes_flipped);
}

/* KV4 with rows of 24 channels in groups of 8 */
enum { KN = 3, KD = 24, KG = 8 };
typedef struct {
    code_track tr;
    double x[KN * KD], dy[KN * KD], clip;
    int codes[KN * KD], codes0[KN * KD];
    bool clamped[KN * KD];
} kv_ctx;

static double kv_loss(void *c_) {
    kv_ctx *c = c_;
    double L = 0;
    for (int g0 = 0; g0 < KN * KD; g0 += KG) {
        double mn = 0, mx = 0;
        for (int i = 0; i < KG; i++) mn = fmin(mn, c->x[g0 + i]), mx = fmax(mx, c->x[g0 + i]);
        double s = c->clip * (mx - mn) / 15, z = fmin(fmax(rint(-c->clip * mn / s), 0), 15);
        for (int i = 0; i < KG; i++) {
            double q = rint(c->x[g0 + i] / s) + z;
            c->clamped[g0 + i] = q < 0 || q > 15;
            q = fmin(fmax(q, 0), 15);
            c->codes[g0 + i] = (int)q;
            L += c->dy[g0 + i] * s * (q - z);
        }
    }
    return L;
}

static void test_fq_kv4(void) {
    static kv_ctx c;
    float x[KN * KD], dy[KN * KD], dx[KN * KD], dclip = 0;
    randn(x, KN * KD, 1), randn(dy, KN * KD, 1);
    c.clip = 0.8;
    to_d(x, c.x, KN * KD), to_d(dy, c.dy, KN * KD);
    c.tr = (code_track){c.codes, c.codes0, KN * KD};
    kv_loss(&c);
    memcpy(c.codes0, c.codes, sizeof c.codes);
    rq_fq_kv4_backward(x, dy, KN, KD, KG, 0.8f, dx, &dclip);
    /* STE: dy where the code is not clamped (the float64 quantizer's clamping; its scale is
     * not fp16-rounded, which moves no element across a clamp boundary here) */
    int clamped = 0, bad = 0;
    for (int i = 0; i < KN * KD; i++) {
        clamped += c.clamped[i];
        bad += dx[i] != (c.clamped[i] ? 0.0f : dy[i]);
    }
    RQ_CHECK(bad == 0 && clamped >= KN * KD / KG);
    fd_check("KV4 g8 clip dc (fp16 scale STE)", kv_loss, &c, &c.clip, &dclip, 1, KV4_CLIP_REL_TOL, codes_flipped);
}

/* ---- 2-bit 4-level quantizers (UNIFORM, LDP, SEQ) ------------------------------------- */

enum { Q2G = 17, Q2N = 4 * Q2G };
typedef struct {
    code_track tr;
    rq_fq2_kind kind;
    double q[(Q2N / Q2G) * RQ_FQ2_MAX_PARAM], r[(Q2N / Q2G) * 2], w[Q2N], dy[Q2N];
    int codes[Q2N], codes0[Q2N];
} fq2_ctx;

static double half_d(double x) { return rq_fp16_to_fp32(rq_fp32_to_fp16((float)x)); }

/* METHODS.md's levels in float64 (unrounded: the rounding is passed straight through) */
static void fq2_levels_d(rq_fq2_kind k, const double *q, const double *r, double v[4]) {
    if (k == RQ_FQ2_SEQ) {
        double a = r[0] * exp(q[0]);
        for (int c = 0; c < 4; c++) v[c] = a * (c - 1.5) / 2;
        return;
    }
    double lo = sigm(q[0]) * r[0], hi = sigm(q[1]) * r[1], P[4] = {0, 1.0 / 3, 2.0 / 3, 1};
    if (k == RQ_FQ2_LDP) {
        double e[3], sum = 0;
        for (int i = 0; i < 3; i++) sum += e[i] = exp(q[2 + i]);
        P[1] = e[0] / sum, P[2] = (e[0] + e[1]) / sum;
    }
    for (int c = 0; c < 4; c++) v[c] = lo + P[c] * (hi - lo);
}

/* L = Σ dy·v[code], the code of each weight from the fp16-rounded levels (as stored) */
static double fq2_loss(void *c_) {
    fq2_ctx *c = c_;
    int np = rq_fq2_n_param(c->kind), nc = rq_fq2_n_const(c->kind);
    double L = 0;
    for (int g = 0; g < Q2N / Q2G; g++) {
        double v[4], vh[4];
        fq2_levels_d(c->kind, c->q + g * np, c->r + g * nc, v);
        for (int k = 0; k < 4; k++) vh[k] = half_d(v[k]);
        for (int i = g * Q2G; i < (g + 1) * Q2G; i++) {
            int code = 0;
            for (int k = 1; k < 4; k++) code += c->w[i] > 0.5 * (vh[k - 1] + vh[k]);
            c->codes[i] = code;
            L += c->dy[i] * v[code];
        }
    }
    return L;
}

/* fp16 rounding of the levels, and the W2U form d·k − d·z, against the unrounded levels */
#define FQ2_LEVEL_REL_TOL 2e-3

static void test_fq2(rq_fq2_kind kind) {
    static fq2_ctx c;
    int np = rq_fq2_n_param(kind), nc = rq_fq2_n_const(kind), ng = Q2N / Q2G;
    float w[Q2N], dy[Q2N], q[(Q2N / Q2G) * RQ_FQ2_MAX_PARAM], r[(Q2N / Q2G) * 2], wq[Q2N], dw[Q2N] = {0};
    float dq[(Q2N / Q2G) * RQ_FQ2_MAX_PARAM] = {0};
    uint8_t codes[Q2N];
    randn(w, Q2N, 1), randn(dy, Q2N, 1);
    for (int g = 0; g < ng; g++) {
        rq_fq2_init(kind, w + g * Q2G, Q2G, 4.0f, NULL, q + g * np, r + g * nc);
        /* move off the initial point: clips 0.7..0.95, partitions away from ⅓, α shrunk */
        if (kind == RQ_FQ2_SEQ) q[g * np] = -0.3f - 0.1f * (float)g;
        else q[g * np] = 1.0f + 0.5f * (float)g, q[g * np + 1] = 2.5f - 0.4f * (float)g;
        if (kind == RQ_FQ2_LDP)
            for (int i = 0; i < 3; i++) q[g * np + 2 + i] = 0.4f * (float)(i - 1) * (float)(g + 1);
    }
    to_d(w, c.w, Q2N), to_d(dy, c.dy, Q2N), to_d(q, c.q, ng * np), to_d(r, c.r, ng * nc);
    c.kind = kind;
    c.tr = (code_track){c.codes, c.codes0, Q2N};
    fq2_loss(&c);
    memcpy(c.codes0, c.codes, sizeof c.codes);
    rq_fq2_forward(kind, Q2G, w, Q2N, q, r, wq, codes);
    /* forward: the codes of the fp16 levels, values within fp16 precision of METHODS.md's */
    double err = 0, big = 0;
    int bad_codes = 0;
    for (int g = 0; g < ng; g++) {
        double v[4];
        fq2_levels_d(kind, c.q + g * np, c.r + g * nc, v);
        for (int i = g * Q2G; i < (g + 1) * Q2G; i++) {
            bad_codes += codes[i] != c.codes[i];
            err = fmax(err, fabs(wq[i] - v[codes[i]]));
            big = fmax(big, fabs(v[codes[i]]));
        }
    }
    RQ_CHECK_MSG(bad_codes == 0 && err <= FQ2_LEVEL_REL_TOL * big, "%s forward: %d codes differ, err %.3g",
                 rq_fq2_name(kind), bad_codes, err);
    rq_fq2_backward(kind, Q2G, w, Q2N, q, r, dy, dw, dq);
    char what[64];
    snprintf(what, sizeof what, "2-bit %s d(params)", rq_fq2_name(kind));
    fd_check(what, fq2_loss, &c, c.q, dq, ng * np, GRAD_REL_TOL, codes_flipped);
    /* STE: dw = dy inside the range ([lo, hi]; SEQ [−α, α]), 0 outside; some are outside */
    int outside = 0, bad = 0;
    for (int g = 0; g < ng; g++) {
        double lo, hi;
        if (kind == RQ_FQ2_SEQ) hi = c.r[g * nc] * exp(c.q[g * np]), lo = -hi;
        else lo = sigm(c.q[g * np]) * c.r[g * nc], hi = sigm(c.q[g * np + 1]) * c.r[g * nc + 1];
        for (int i = g * Q2G; i < (g + 1) * Q2G; i++) {
            bool in = c.w[i] >= lo && c.w[i] <= hi;
            outside += !in;
            bad += dw[i] != (in ? dy[i] : 0.0f);
        }
    }
    RQ_CHECK_MSG(outside >= ng && bad == 0, "%s STE: %d outside, %d wrong", rq_fq2_name(kind), outside, bad);
}

/* LDP with θ = 0 is uniform round-to-nearest on [lo, hi] (METHODS.md): the codes are
 * clamp(round((w − lo)/s)) with s = (hi − lo)/3, the values lo + code·s to fp16 precision;
 * and an initialization from a PTQ grid reproduces that grid's levels exactly. */
static void test_fq2_ldp_special(void) {
    enum { G = 64 };
    float w[G], q[5], r[2], wq[G];
    uint8_t codes[G];
    randn(w, G, 0.05);
    rq_fq2_init(RQ_FQ2_LDP, w, G, 3.0f, NULL, q, r);
    RQ_CHECK(q[2] == q[3] && q[3] == q[4]);
    rq_fq2_forward(RQ_FQ2_LDP, G, w, G, q, r, wq, codes);
    double lo = sigm(q[0]) * r[0], hi = sigm(q[1]) * r[1], s = (hi - lo) / 3;
    int bad = 0;
    double err = 0;
    for (int i = 0; i < G; i++) {
        double x = (w[i] - lo) / s, c = fmin(fmax(rint(x), 0), 3);
        if (fabs(x - rint(x)) < 0.49) bad += codes[i] != (uint8_t)c; /* away from a midpoint */
        err = fmax(err, fabs(wq[i] - (lo + c * s)));
    }
    RQ_CHECK_MSG(bad == 0 && err <= FQ2_LEVEL_REL_TOL * fmax(fabs(lo), fabs(hi)), "LDP θ=0: %d codes, err %.3g", bad,
                 err);
    /* from a PTQ grid (fp16 levels, uneven): the same levels back */
    const float v[4] = {rq_fp16_to_fp32(rq_fp32_to_fp16(-0.071f)), rq_fp16_to_fp32(rq_fp32_to_fp16(-0.013f)),
                        rq_fp16_to_fp32(rq_fp32_to_fp16(0.022f)), rq_fp16_to_fp32(rq_fp32_to_fp16(0.094f))};
    float back[4];
    rq_fq2_init(RQ_FQ2_LDP, w, G, 4.0f, v, q, r);
    rq_fq2_levels(RQ_FQ2_LDP, q, r, back, NULL);
    RQ_CHECK(memcmp(back, v, sizeof v) == 0);
    /* uniform from a W2U grid d·(k − z): d and z back */
    const float d = rq_fp16_to_fp32(rq_fp32_to_fp16(0.0317f)), z = rq_fp16_to_fp32(rq_fp32_to_fp16(1.43f));
    float vu[4], dz[2];
    for (int k = 0; k < 4; k++) vu[k] = d * ((float)k - z);
    rq_fq2_init(RQ_FQ2_UNIFORM, w, G, 4.0f, vu, q, r);
    rq_fq2_levels(RQ_FQ2_UNIFORM, q, r, back, dz);
    RQ_CHECK_MSG(dz[0] == d && dz[1] == z, "uniform init: d %g z %g, want %g %g", dz[0], dz[1], d, z);
    printf("  LDP θ=0 = uniform RTN; PTQ grids reproduced exactly\n");
}

/* SEQ's start α: least squared error over the levels ±α/4, ±3α/4. Oracle: Max (1960), the
 * optimal uniform 4-level quantizer of N(0, 1) has step 0.9957 (α = 1.991) and mean squared
 * error 0.1188; on 2^16 samples both hold to sampling error. */
static void test_fq2_seq_init(void) {
    enum { N = 1 << 16 };
    float *w = malloc(N * sizeof *w), *wq = malloc(N * sizeof *wq), q, r;
    randn(w, N, 1.0);
    rq_fq2_init(RQ_FQ2_SEQ, w, N, 0.0f, NULL, &q, &r);
    rq_fq2_forward(RQ_FQ2_SEQ, N, w, N, &q, &r, wq, NULL);
    double alpha = r * exp(q), mse = 0;
    for (int i = 0; i < N; i++) mse += ((double)w[i] - wq[i]) * ((double)w[i] - wq[i]) / N;
    RQ_CHECK_MSG(fabs(alpha - 1.991) < 0.05 && fabs(mse - 0.1188) < 0.004, "SEQ init: α %.4f, MSE %.4f", alpha, mse);
    printf("  SEQ init on N(0,1): α %.4f (Max 1.991), MSE %.4f (0.1188)\n", alpha, mse);
    free(w), free(wq);
}

int main(void) {
    rq_rng_seed(&rng, 20261206);
    rq_threads_set(2);
    test_embed();
    test_rmsnorm(1.0, "LLaMA w");
    test_rmsnorm(0.0, "Gemma 1+w");
    test_linear();
    test_rope(false);
    test_rope(true);
    test_act(false);
    test_act(true);
    test_attention(0);
    test_attention(4);
    test_losses();
    test_fq_uniform();
    test_fq_act(8, false);
    test_fq_act(4, true);
    test_fq_kv4();
    test_fq2(RQ_FQ2_UNIFORM);
    test_fq2(RQ_FQ2_LDP);
    test_fq2(RQ_FQ2_SEQ);
    test_fq2_ldp_special();
    test_fq2_seq_init();
    return rq_test_finish();
}

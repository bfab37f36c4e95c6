/* Learned rotations (SpinQuant's Cayley optimization).
 *
 * Cayley step (src/train/cayley.h):
 *   - on a 2×2 rotation the step equals its closed form: A = a·J (J = [[0, 1], [−1, 0]]),
 *     (I + t·J)⁻¹(I − t·J) with t = η·a/2 is the rotation cos φ·I − sin φ·J, φ = 2·atan(t);
 *   - orthogonality is kept to float64 rounding over 2000 steps with random gradients
 *     (dense and block-diagonal), and the float32 copy to float32 rounding;
 *   - block-diagonal: the off-diagonal blocks stay exactly zero and every block equals a
 *     dense step of that block alone with the same η;
 *   - first order: for a small η the change of L(R) = ½‖R − T‖² is −η‖A‖²/2 (relative
 *     error O(η)), and the step bound η‖A‖ <= 1 is applied.
 *
 * The reparameterization (src/train/rotlearn.h) on the tiny LLaMA of tiny_llama.h:
 *   - folding a random orthogonal R1 and per-layer R2 (model/fold.h rq_fold_model_dense, and
 *     the learner's apply with float weights) keeps the float model's logits (relative L2
 *     <= 1e-5), also against the float64 forward of the unrotated model;
 *   - ∂L/∂R1 and ∂L/∂R2[l] (Euclidean, R perturbed without constraint) against central
 *     differences of a float64 forward of fold(W; R1, R2) written here from the formulas;
 *     block-diagonal learning gets exactly the diagonal blocks of the dense gradient;
 *   - at float weights the loss does not depend on R (a reparameterization): A = G·Rᵀ − R·Gᵀ
 *     vanishes (to float32 rounding) although G does not; Cayley steps keep R1, R2
 *     orthogonal; with 4-bit weights (block-diagonal R1) the steps respect the bound
 *     η‖A‖ <= 1, stay orthogonal and leave the weights on the 4-bit grid.
 * Route (b) (cfg.linear: Ri, the learned online rotation of the readers' normed inputs, on
 * a model applying a learned Ri): the learner keeps the function; ∂L/∂Ri (the readers' Wᵀ·G
 * plus the online matrix's own gradient from the backward) against central differences of
 * the float64 forward with Ri online; A vanishes at float weights; `rotlearn --r1-route
 * linear` then `quantize --rotate learned --r1-route linear` gives a W16 file with the
 * float model's logits.
 * The rotation file (src/rotate/learned.h): written and read back equal; a non-orthogonal
 * matrix, a wrong shape, a broken block structure, a newer version are refused. */
#include "tiny_llama.h"

#include "base/pool.h"
#include "base/rng.h"
#include "model/fold.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/pipeline.h"
#include "rotate/learned.h"
#include "rotate/rotation.h"
#include "train/backward.h"
#include "train/cayley.h"
#include "train/rotlearn.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* float64 Cayley steps with random unit-scale gradients: each step's rounding is ~1e-16·n,
 * 2000 steps accumulate well below this */
#define ORTH64_TOL 1e-11
/* the float32 copy of an orthogonal matrix of order 48: rounding each entry (relative
 * 6e-8) gives ‖RᵀR − I‖_F of a few 1e-7 (observed 2.7e-7); bound with a margin */
#define ORTH32_TOL 2e-6
/* closed form vs LAPACK on 2×2: float64 rounding */
#define CLOSED_TOL 1e-14

static rq_rng rng;

static void rand_mat(double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = rq_rng_normal(&rng);
}

static void identity(double *R, int64_t n) {
    memset(R, 0, sizeof(double) * (size_t)(n * n));
    for (int64_t i = 0; i < n; i++) R[i * n + i] = 1;
}

static void check_closed_form(void) {
    double th = 0.7, eta = 0.3;
    double R[4] = {cos(th), sin(th), -sin(th), cos(th)}, G[4] = {0.4, -1.3, 0.8, 0.25};
    /* A = G Rᵀ − R Gᵀ written out: A01 = (G Rᵀ)01 − (G Rᵀ)10 */
    double p01 = G[0] * R[2] + G[1] * R[3], p10 = G[2] * R[0] + G[3] * R[1], a = p01 - p10;
    double t = eta * a / 2, phi = 2 * atan(t);
    /* (cos φ·I − sin φ·J)·R, J = [[0, 1], [−1, 0]] */
    double c = cos(phi), s = sin(phi);
    double want[4] = {c * R[0] - s * R[2], c * R[1] - s * R[3], s * R[0] + c * R[2], s * R[1] + c * R[3]};
    rq_cayley_info info;
    RQ_CHECK(rq_cayley_step(R, G, 2, 0, eta, false, &info) == RQ_OK);
    double err = 0;
    for (int i = 0; i < 4; i++) err = fmax(err, fabs(R[i] - want[i]));
    RQ_CHECK_MSG(err < CLOSED_TOL, "2x2 Cayley vs closed form: %g", err);
    RQ_CHECK_NEAR(info.lr, eta, 0);
    RQ_CHECK_NEAR(info.a_norm, sqrt(2.0) * fabs(a), 1e-14);
    printf("2x2: a = %.4f, rotated by %.6f rad, |err| %.1e\n", a, phi, err);
}

static void check_orthogonality(int64_t n, int64_t block) {
    double *R = malloc(sizeof(double) * (size_t)(n * n)), *G = malloc(sizeof(double) * (size_t)(n * n));
    float *Rf = malloc(sizeof(float) * (size_t)(n * n));
    identity(R, n);
    double worst = 0;
    for (int step = 0; step < 2000; step++) {
        rand_mat(G, n * n);
        rq_cayley_info info;
        RQ_ASSERT(rq_cayley_step(R, G, n, block, 1.5, true, &info) == RQ_OK);
        RQ_CHECK(info.lr * info.a_norm <= 1.0 + 1e-12);
        if (step % 100 == 99) worst = fmax(worst, rq_orth_error(R, n));
    }
    bool offzero = true;
    if (block)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                if (i / block != j / block) offzero &= R[i * n + j] == 0;
    for (int64_t i = 0; i < n * n; i++) Rf[i] = (float)R[i];
    double e32 = rq_rot_learned_orth_error(Rf, n);
    /* it moved: far from the identity */
    double dist = 0;
    for (int64_t i = 0; i < n; i++) dist += (1 - R[i * n + i]) * (1 - R[i * n + i]);
    printf("n=%lld block=%lld: 2000 steps, max ||RtR - I||_F %.2e (float32 copy %.2e), diag distance %.2f\n",
           (long long)n, (long long)block, worst, e32, sqrt(dist));
    RQ_CHECK_MSG(worst < ORTH64_TOL, "orthogonality lost: %g", worst);
    RQ_CHECK_MSG(e32 < ORTH32_TOL, "float32 copy: %g", e32);
    RQ_CHECK(offzero);
    RQ_CHECK(sqrt(dist) > 1);
    free(R), free(G), free(Rf);
}

/* every block of a block-diagonal step = the dense step of that block with the same η */
static void check_blocks(void) {
    enum { n = 24, b = 8 };
    double R[n * n], G[n * n], Rb[b * b], Gb[b * b];
    identity(R, n);
    for (int k = 0; k < 3; k++) { /* some block-diagonal start */
        rand_mat(G, n * n);
        RQ_ASSERT(rq_cayley_step(R, G, n, b, 0.2, false, NULL) == RQ_OK);
    }
    double R0[n * n];
    memcpy(R0, R, sizeof R);
    rand_mat(G, n * n);
    rq_cayley_info info;
    RQ_ASSERT(rq_cayley_step(R, G, n, b, 0.9, true, &info) == RQ_OK);
    double err = 0;
    for (int k = 0; k < n / b; k++) {
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) {
                Rb[i * b + j] = R0[(k * b + i) * n + k * b + j];
                Gb[i * b + j] = G[(k * b + i) * n + k * b + j];
            }
        RQ_ASSERT(rq_cayley_step(Rb, Gb, b, 0, info.lr, false, NULL) == RQ_OK);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) err = fmax(err, fabs(Rb[i * b + j] - R[(k * b + i) * n + k * b + j]));
    }
    RQ_CHECK_MSG(err < 1e-14, "block step vs per-block dense steps: %g", err);
}

/* L(R) = ½‖R − T‖², G = R − T: the loss change of a small step is −η‖A‖²/2 + O(η²) */
static void check_first_order(void) {
    enum { n = 16 };
    double R[n * n], T[n * n], G[n * n];
    identity(R, n);
    rand_mat(G, n * n);
    RQ_ASSERT(rq_cayley_step(R, G, n, 0, 0.5, false, NULL) == RQ_OK); /* a generic orthogonal start */
    rand_mat(T, n * n);
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        double eta = 1e-3 / (1 << (2 * k)), L0 = 0, L1 = 0;
        double Rk[n * n];
        memcpy(Rk, R, sizeof R);
        for (int i = 0; i < n * n; i++) G[i] = Rk[i] - T[i], L0 += 0.5 * G[i] * G[i];
        rq_cayley_info info;
        RQ_ASSERT(rq_cayley_step(Rk, G, n, 0, eta, false, &info) == RQ_OK);
        for (int i = 0; i < n * n; i++) L1 += 0.5 * (Rk[i] - T[i]) * (Rk[i] - T[i]);
        double pred = -eta * info.a_norm * info.a_norm / 2, rel = fabs((L1 - L0) - pred) / fabs(pred);
        printf("first order: eta %.2e dL %.6e predicted %.6e rel err %.2e\n", eta, L1 - L0, pred, rel);
        /* O(η) with a constant of order ‖A‖·‖R−T‖: well inside 100·η */
        RQ_CHECK_MSG(rel < 100 * eta, "first-order prediction off by %g at eta %g", rel, eta);
        if (k) RQ_CHECK(rel < worst / 2); /* and it shrinks with η */
        worst = rel;
    }
    /* the bound: a large lr is capped to η‖A‖ = 1 */
    rq_cayley_info info;
    for (int i = 0; i < n * n; i++) G[i] = 100 * (R[i] - T[i]);
    RQ_ASSERT(rq_cayley_step(R, G, n, 0, 1.5, true, &info) == RQ_OK);
    RQ_CHECK_NEAR(info.lr * info.a_norm, 1.0, 1e-6);
    /* a non-finite gradient is refused */
    G[3] = NAN;
    RQ_CHECK(rq_cayley_step(R, G, n, 0, 1.5, true, NULL) == RQ_EINVAL);
}

/* ---- the reparameterization on the tiny LLaMA ------------------------------------------- */

enum { NSEQ = 2, TT = 9, NT = NSEQ * TT };
/* float32 fold + 2-layer forward vs the float64 one: observed ~1e-7 */
#define LOGIT_REL_TOL 1e-5
/* central-difference step on a rotation entry (|R| <= 1) */
#define FD_H 1e-5
/* float32 forward/backward/chain rule vs float64 differences, relative to the largest
 * sampled |fd| of the matrix (as tests/test_train_model.c: float32 rounding of the
 * activations; the h² truncation is far smaller) */
#define ROT_GRAD_REL_TOL 1e-4

/* float64 weights: the norm-fused base and the folded (effective) ones */
typedef struct {
    double emb[V * E], out[V * E];
    double q[NL][H * HD * E], k[NL][HK * HD * E], v[NL][HK * HD * E], o[NL][E * H * HD];
    double g[NL][FF * E], u[NL][FF * E], d[NL][E * FF];
} dweights;
static dweights base64, eff64, raw64; /* raw64: the readers unfused (route (b)) */
static bool route_b; /* the oracle runs route (b): R1d is Ri, online on the normed inputs */
static double R1d[E * E], R2d[NL][HD * HD];
static int32_t tokens[NT];

/* base: every norm scale fused into the linears that read it (the lm_head untied) */
static void make_base(void) {
    for (int i = 0; i < V * E; i++) base64.emb[i] = w_emb[i], base64.out[i] = (double)w_emb[i] * w_onorm[i % E];
    for (int l = 0; l < NL; l++) {
        for (int i = 0; i < H * HD * E; i++) base64.q[l][i] = (double)w_q[l][i] * w_anorm[l][i % E];
        for (int i = 0; i < HK * HD * E; i++) {
            base64.k[l][i] = (double)w_k[l][i] * w_anorm[l][i % E];
            base64.v[l][i] = (double)w_v[l][i] * w_anorm[l][i % E];
        }
        for (int i = 0; i < E * H * HD; i++) base64.o[l][i] = w_o[l][i];
        for (int i = 0; i < FF * E; i++) {
            base64.g[l][i] = (double)w_g[l][i] * w_fnorm[l][i % E];
            base64.u[l][i] = (double)w_u[l][i] * w_fnorm[l][i % E];
        }
        for (int i = 0; i < E * FF; i++) base64.d[l][i] = w_d[l][i];
        for (int i = 0; i < H * HD * E; i++) raw64.q[l][i] = w_q[l][i];
        for (int i = 0; i < HK * HD * E; i++) raw64.k[l][i] = w_k[l][i], raw64.v[l][i] = w_v[l][i];
        for (int i = 0; i < FF * E; i++) raw64.g[l][i] = w_g[l][i], raw64.u[l][i] = w_u[l][i];
    }
}

/* y [rows, E] = x [rows, E]·R1 */
static void right_r1(const double *x, int rows, double *y) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < E; j++) {
            double a = 0;
            for (int i = 0; i < E; i++) a += x[r * E + i] * R1d[i * E + j];
            y[r * E + j] = a;
        }
}

/* METHODS.md's folding written out: E·R1, readers W·R1, v rows R2ᵀ·(W·R1) per KV head,
 * o R1ᵀ·W then its head columns ·R2, down R1ᵀ·W */
static void fold64(void) {
    if (route_b) { /* readers W·Ri (their norms not fused: the norm scales the input Ri rotates) */
        eff64 = base64;
        for (int l = 0; l < NL; l++) {
            right_r1(raw64.q[l], H * HD, eff64.q[l]);
            right_r1(raw64.k[l], HK * HD, eff64.k[l]);
            right_r1(raw64.v[l], HK * HD, eff64.v[l]);
            right_r1(raw64.g[l], FF, eff64.g[l]);
            right_r1(raw64.u[l], FF, eff64.u[l]);
        }
        return;
    }
    right_r1(base64.emb, V, eff64.emb);
    right_r1(base64.out, V, eff64.out);
    static double t[H * HD * E];
    for (int l = 0; l < NL; l++) {
        right_r1(base64.q[l], H * HD, eff64.q[l]);
        right_r1(base64.k[l], HK * HD, eff64.k[l]);
        right_r1(base64.g[l], FF, eff64.g[l]);
        right_r1(base64.u[l], FF, eff64.u[l]);
        right_r1(base64.v[l], HK * HD, t);
        for (int h = 0; h < HK; h++)
            for (int i = 0; i < HD; i++)
                for (int j = 0; j < E; j++) {
                    double a = 0;
                    for (int k = 0; k < HD; k++) a += R2d[l][k * HD + i] * t[(h * HD + k) * E + j];
                    eff64.v[l][(h * HD + i) * E + j] = a;
                }
        int qd = H * HD;
        for (int i = 0; i < E; i++)
            for (int c = 0; c < qd; c++) {
                double a = 0;
                for (int k = 0; k < E; k++) a += R1d[k * E + i] * base64.o[l][k * qd + c];
                t[i * qd + c] = a;
            }
        for (int i = 0; i < E; i++)
            for (int h = 0; h < H; h++)
                for (int j = 0; j < HD; j++) {
                    double a = 0;
                    for (int k = 0; k < HD; k++) a += t[i * qd + h * HD + k] * R2d[l][k * HD + j];
                    eff64.o[l][i * qd + h * HD + j] = a;
                }
        for (int i = 0; i < E; i++)
            for (int c = 0; c < FF; c++) {
                double a = 0;
                for (int k = 0; k < E; k++) a += R1d[k * E + i] * base64.d[l][k * FF + c];
                eff64.d[l][i * FF + c] = a;
            }
    }
}

static void dmat(const double *x, const double *w, int out, int in, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += x[i] * w[o * in + i];
        y[o] = s;
    }
}

static void drms(const double *x, double *y) { /* unit scale (fused) */
    double ss = 0;
    for (int i = 0; i < E; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / E + EPS);
    for (int i = 0; i < E; i++) y[i] = x[i] * r;
}

/* a reader's normed input: fused (residual route), or ·g then ·Ri online (route (b)) */
static void dnorm_in(const double *x, const float *g, double *y) {
    drms(x, y);
    if (!route_b) return;
    for (int i = 0; i < E; i++) y[i] *= g[i];
    double t[E];
    right_r1(y, 1, t);
    memcpy(y, t, sizeof t);
}

/* mean next-token cross-entropy of the NSEQ sequences through the float64 forward of eff64 */
static double loss64(void) {
    static double x[TT * E], xn[E], q[TT * H * HD], k[TT * HK * HD], v[TT * HK * HD], att[H * HD], tmp[E], g[FF],
        u[FF], sc[TT], lg[V];
    double loss = 0;
    int cnt = 0;
    for (int b = 0; b < NSEQ; b++) {
        const int32_t *tk = tokens + b * TT;
        for (int t = 0; t < TT; t++)
            for (int i = 0; i < E; i++) x[t * E + i] = eff64.emb[tk[t] * E + i];
        for (int l = 0; l < NL; l++) {
            for (int t = 0; t < TT; t++) {
                dnorm_in(x + t * E, w_anorm[l], xn);
                dmat(xn, eff64.q[l], H * HD, E, q + t * H * HD);
                dmat(xn, eff64.k[l], HK * HD, E, k + t * HK * HD);
                dmat(xn, eff64.v[l], HK * HD, E, v + t * HK * HD);
                for (int h = 0; h < H; h++) rope(q + t * H * HD + h * HD, t, 1.0);
                for (int h = 0; h < HK; h++) rope(k + t * HK * HD + h * HD, t, 1.0);
            }
            for (int t = 0; t < TT; t++) {
                for (int h = 0; h < H; h++) {
                    int kh = h / (H / HK);
                    double mx = -1e300, sum = 0;
                    for (int s2 = 0; s2 <= t; s2++) {
                        double d = 0;
                        for (int i = 0; i < HD; i++) d += q[t * H * HD + h * HD + i] * k[s2 * HK * HD + kh * HD + i];
                        sc[s2] = d / sqrt((double)HD);
                        mx = fmax(mx, sc[s2]);
                    }
                    for (int s2 = 0; s2 <= t; s2++) sum += (sc[s2] = exp(sc[s2] - mx));
                    for (int i = 0; i < HD; i++) {
                        double o = 0;
                        for (int s2 = 0; s2 <= t; s2++) o += sc[s2] / sum * v[s2 * HK * HD + kh * HD + i];
                        att[h * HD + i] = o;
                    }
                }
                dmat(att, eff64.o[l], E, H * HD, tmp);
                for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
                dnorm_in(x + t * E, w_fnorm[l], xn);
                dmat(xn, eff64.g[l], FF, E, g);
                dmat(xn, eff64.u[l], FF, E, u);
                for (int i = 0; i < FF; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
                dmat(g, eff64.d[l], E, FF, tmp);
                for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
            }
        }
        for (int t = 0; t + 1 < TT; t++) {
            drms(x + t * E, xn);
            dmat(xn, eff64.out, V, E, lg);
            double mx = lg[0], s2 = 0;
            for (int i = 1; i < V; i++) mx = fmax(mx, lg[i]);
            for (int i = 0; i < V; i++) s2 += exp(lg[i] - mx);
            loss += mx + log(s2) - lg[tk[t + 1]];
            cnt++;
        }
    }
    return loss / cnt;
}

static double fd_at(double *x) {
    double save = *x;
    *x = save + FD_H;
    fold64();
    double lp = loss64();
    *x = save - FD_H;
    fold64();
    double lm = loss64();
    *x = save;
    return (lp - lm) / (2 * FD_H);
}

static float *dense(rq_rot_kind k, int64_t n, uint64_t seed) {
    rq_rotation r = rq_rot_make(k, n, 0, seed);
    float *q;
    RQ_ASSERT(rq_rot_dense(&r, &q) == RQ_OK);
    return q;
}

/* a block-diagonal orthogonal [E, E] of random orthogonal blocks of b (malloc) */
static float *block_diag(int b, uint64_t seed) {
    float *r = calloc((size_t)(E * E), sizeof(float));
    for (int k = 0; k < E / b; k++) {
        float *q = dense(RQ_ROT_ORTHOGONAL, b, seed + (uint64_t)k);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) r[(k * b + i) * E + k * b + j] = q[i * b + j];
        rq_free(q);
    }
    return r;
}

static void check_fold_logits(const char *path) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK);
    float *ref = rq_test_logits(m, tokens, TT);
    float *r1 = dense(RQ_ROT_ORTHOGONAL, E, 3), *r2 = malloc(sizeof(float) * NL * HD * HD);
    for (int l = 0; l < NL; l++) {
        float *q = dense(RQ_ROT_ORTHOGONAL, HD, 10 + l);
        memcpy(r2 + l * HD * HD, q, sizeof(float) * HD * HD);
        rq_free(q);
    }
    RQ_CHECK(rq_fold_model_dense(m, r1, r2, 3) == RQ_EINVAL); /* neither 1 nor n_layer */
    RQ_CHECK(rq_fold_model_dense(m, r1, r2, NL) == RQ_OK);
    float *got = rq_test_logits(m, tokens, TT);
    double e1 = rq_rel_l2(got, ref, TT * V);
    /* against the float64 forward of the original weights */
    float *nv = malloc(sizeof(float) * TT * V);
    naive_forward(tokens, TT, false, 1.0, nv);
    double e2 = rq_rel_l2(got, nv, TT * V);
    printf("fold of a random orthogonal R1 and per-layer R2: logits rel L2 %.2e (vs float64 original %.2e)\n", e1, e2);
    RQ_CHECK_MSG(e1 <= LOGIT_REL_TOL && e2 <= LOGIT_REL_TOL, "fold changed the logits: %g %g", e1, e2);
    free(got), free(ref), free(nv), free(r2);
    rq_free(r1);
    rq_model_free(m);
}

/* the learner's model (applied at its R) computes the original function: logits against the
 * float64 forward of the unrotated model */
static void check_apply(rq_rotlearn *L, const char *what) {
    rq_rotlearn_apply(L);
    float *got = rq_test_logits(L->m, tokens, TT), *nv = malloc(sizeof(float) * TT * V);
    naive_forward(tokens, TT, false, 1.0, nv);
    double e = rq_rel_l2(got, nv, TT * V);
    printf("%s: learner apply, logits rel L2 %.2e\n", what, e);
    RQ_CHECK_MSG(e <= LOGIT_REL_TOL, "%s learner apply: logits rel L2 %g", what, e);
    free(got), free(nv);
}

/* a context and gradient mirror for L (*c, *g, the caller's), one forward/backward at L's
 * applied weights, the rotation gradients into d1 (and d2); the loss against the float64
 * oracle at R1d/R2d and 40 sampled entries of d1 against its central differences */
static void grads_against_fd(rq_rotlearn *L, rq_train_ctx **c, rq_params *g, double *d1, double *d2,
                             const char *what) {
    RQ_ASSERT(rq_train_ctx_new(L->m, NSEQ, TT, c) == RQ_OK && rq_params_mirror(&L->p, g) == RQ_OK);
    RQ_ASSERT(rq_train_forward(*c, tokens) == RQ_OK);
    double loss = rq_train_loss(*c, tokens, NULL, 0);
    rq_train_backward(*c, tokens, (*c)->st->logits, &L->p, g);
    rq_rotlearn_grad(L, g, d1, d2);
    fold64();
    double l64 = loss64();
    RQ_CHECK_NEAR(loss, l64, 1e-5 * l64);
    double err = 0, big = 0;
    for (int s2 = 0; s2 < 40; s2++) {
        int64_t j = (int64_t)rq_rng_below(&rng, E * E);
        double fd = fd_at(&R1d[j]);
        big = fmax(big, fabs(fd)), err = fmax(err, fabs(fd - d1[j]));
    }
    printf("%s: 40 entries, max |fd| %.3g, max |fd - analytic| %.2e (rel %.2e)\n", what, big, err, err / big);
    RQ_CHECK_MSG(err <= ROT_GRAD_REL_TOL * big && big > 0, "%s rel err %g", what, err / big);
}

static void check_grad(const char *path) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK);
    rq_rotlearn *L;
    rq_rotlearn_cfg cfg = {.block = 0, .r2 = true, .wbits = 16};
    RQ_ASSERT(rq_rotlearn_new(m, &cfg, &L) == RQ_OK);
    RQ_CHECK(m->output.w != m->tok_embd); /* untied by the norm fusion */
    float *r1 = dense(RQ_ROT_ORTHOGONAL, E, 5), *r2 = dense(RQ_ROT_ORTHOGONAL, HD, 6);
    rq_rotlearn_set(L, r1, r2);
    for (int i = 0; i < E * E; i++) R1d[i] = L->R1[i];
    for (int l = 0; l < NL; l++)
        for (int i = 0; i < HD * HD; i++) R2d[l][i] = L->R2[l * HD * HD + i];
    check_apply(L, "residual");
    rq_train_ctx *c;
    rq_params g;
    double *d1 = malloc(sizeof(double) * E * E), *d2 = malloc(sizeof(double) * NL * HD * HD);
    grads_against_fd(L, &c, &g, d1, d2, "dL/dR1");
    /* R2: every entry of each layer's */
    for (int l = 0; l < NL; l++) {
        double err = 0, big = 0;
        for (int j = 0; j < HD * HD; j++) {
            double fd = fd_at(&R2d[l][j]);
            big = fmax(big, fabs(fd)), err = fmax(err, fabs(fd - d2[l * HD * HD + j]));
        }
        printf("dL/dR2[%d]: all %d entries, max |fd| %.3g, rel err %.2e\n", l, HD * HD, big, err / big);
        RQ_CHECK_MSG(err <= ROT_GRAD_REL_TOL * big && big > 0, "dL/dR2[%d] rel err %g", l, err / big);
    }

    /* block-diagonal learning: the diagonal blocks of the dense gradient, zero elsewhere */
    {
        rq_model *m2;
        RQ_ASSERT(rq_model_load_file(path, &m2) == RQ_OK);
        rq_rotlearn *L2;
        rq_rotlearn_cfg c2 = {.block = 16, .r2 = true, .wbits = 16};
        RQ_ASSERT(rq_rotlearn_new(m2, &c2, &L2) == RQ_OK);
        /* the same block-diagonal R1 in both */
        float *bd = block_diag(16, 40);
        rq_rotlearn_set(L2, bd, r2);
        rq_rotlearn_set(L, bd, r2);
        rq_rotlearn_apply(L), rq_rotlearn_apply(L2);
        rq_train_ctx *c2x;
        rq_params g2;
        RQ_ASSERT(rq_train_ctx_new(m2, NSEQ, TT, &c2x) == RQ_OK && rq_params_mirror(&L2->p, &g2) == RQ_OK);
        memset(g.buf, 0, sizeof(float) * (size_t)g.n_total);
        RQ_ASSERT(rq_train_forward(c, tokens) == RQ_OK && rq_train_forward(c2x, tokens) == RQ_OK);
        rq_train_loss(c, tokens, NULL, 0), rq_train_loss(c2x, tokens, NULL, 0);
        rq_train_backward(c, tokens, c->st->logits, &L->p, &g);
        rq_train_backward(c2x, tokens, c2x->st->logits, &L2->p, &g2);
        double *e1 = malloc(sizeof(double) * E * E);
        rq_rotlearn_grad(L, &g, d1, d2);
        rq_rotlearn_grad(L2, &g2, e1, NULL);
        bool ok = true;
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) ok &= e1[i * E + j] == (i / 16 == j / 16 ? d1[i * E + j] : 0.0);
        RQ_CHECK_MSG(ok, "block-diagonal gradient is not the dense one's diagonal blocks");
        free(e1), free(bd);
        rq_params_free(&g2);
        rq_train_ctx_free(c2x);
        rq_rotlearn_free(L2);
        rq_model_free(m2);
    }

    /* float weights: the model's function does not depend on R (a reparameterization), so
     * the Riemannian gradient A = G·Rᵀ − R·Gᵀ vanishes although G does not */
    rq_rotlearn_set(L, r1, r2);
    rq_rotlearn_step_info info;
    for (int st = 0; st < 3; st++) {
        RQ_ASSERT(rq_rotlearn_step(L, c, &g, tokens, 0.05, &info) == RQ_OK);
        RQ_CHECK(info.orth1 < ORTH64_TOL && info.orth2 < ORTH64_TOL);
    }
    rq_rotlearn_grad(L, &g, d1, d2);
    double gn = 0;
    for (int i = 0; i < E * E; i++) gn += d1[i] * d1[i];
    printf("float weights: ||A|| %.2e against ||G|| %.2e, ||R1tR1 - I|| %.1e\n", info.a1, sqrt(gn), info.orth1);
    /* float32 gradients of a loss near 16: the invariance holds to their rounding */
    RQ_CHECK_MSG(info.a1 < 1e-4 * sqrt(gn), "||A|| %g vs ||G|| %g", info.a1, sqrt(gn));
    rq_params_free(&g);
    rq_train_ctx_free(c);
    rq_rotlearn_free(L);
    rq_model_free(m);

    /* 4-bit fake-quantized weights, a block-diagonal R1 */
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK);
    rq_rotlearn_cfg c4 = {.block = 16, .r2 = false, .wbits = 4, .group = 8};
    RQ_ASSERT(rq_rotlearn_new(m, &c4, &L) == RQ_OK);
    float *bd = block_diag(16, 50);
    rq_rotlearn_set(L, bd, NULL);
    free(bd);
    RQ_ASSERT(rq_train_ctx_new(m, NSEQ, TT, &c) == RQ_OK && rq_params_mirror(&L->p, &g) == RQ_OK);
    double first = 0;
    for (int st = 0; st < 10; st++) {
        RQ_ASSERT(rq_rotlearn_step(L, c, &g, tokens, 1.5, &info) == RQ_OK);
        if (!st) first = info.loss;
        RQ_CHECK(info.orth1 < ORTH64_TOL && isfinite(info.loss) && info.lr1 * info.a1 <= 1 + 1e-9);
    }
    rq_rotlearn_apply(L);
    RQ_ASSERT(rq_train_forward(c, tokens) == RQ_OK);
    double last = rq_train_loss(c, tokens, NULL, 0);
    printf("W4 g8, block-diagonal R1 (16): 10 Cayley steps on one batch, loss %.4f -> %.4f, ||A|| %.3g\n", first, last,
           info.a1);
    /* no descent is asserted: the quantized loss is piecewise constant in R and the STE
     * direction is a heuristic (the measured effect is in README's table) */
    RQ_CHECK(isfinite(last) && last > 0);
    /* Ŵ is on a 4-bit grid: at most 16 distinct values per group of 8 (here: 8) */
    float *w = m->layers[0].wq.w;
    int distinct = 0;
    for (int i = 0; i < 8; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= w[j] == w[i];
        distinct += !seen;
    }
    RQ_CHECK(distinct <= 8);
    /* bad settings are refused before anything is changed */
    rq_rotlearn *bad = NULL;
    RQ_CHECK(rq_rotlearn_new(m, &(rq_rotlearn_cfg){.wbits = 4, .group = 7}, &bad) == RQ_EINVAL && !bad &&
             strstr(rq_last_error(), "--group 7") != NULL);
    RQ_CHECK(rq_rotlearn_new(m, &(rq_rotlearn_cfg){.wbits = 16, .block = 20}, &bad) == RQ_EINVAL);
    RQ_CHECK(rq_rotlearn_new(m, &(rq_rotlearn_cfg){.wbits = 9, .group = 8}, &bad) == RQ_EINVAL);
    rq_params_free(&g);
    rq_train_ctx_free(c);
    rq_rotlearn_free(L);
    rq_model_free(m);
    rq_free(r1), rq_free(r2);
    free(d1), free(d2);
}

/* Route (b): R1 is Ri, the learned online rotation of q/k/v's and gate/up's normed inputs
 * (the model applies a learned Ri; its matrix is a parameter whose gradient the backward
 * accumulates), the readers' weights W·Ri, no norm fused. Against the float64 oracle with
 * route_b: the learner's model keeps the function; ∂L/∂Ri (both terms) against central
 * differences; at float weights the Riemannian gradient vanishes. */
static void check_route_b(const char *path) {
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(path, &m) == RQ_OK);
    float *eye = calloc(E * E, sizeof(float));
    for (int i = 0; i < E; i++) eye[i * E + i] = 1.0f;
    rq_online_cfg oc = {.ri = rq_rot_make(RQ_ROT_LEARNED, E, 0, 0), .ri_matrix = eye};
    RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
    free(eye);
    rq_rotlearn *L;
    rq_rotlearn *bad = NULL;
    RQ_CHECK(rq_rotlearn_new(m, &(rq_rotlearn_cfg){.linear = true, .r2 = true, .wbits = 16}, &bad) == RQ_EINVAL && !bad);
    RQ_ASSERT(rq_rotlearn_new(m, &(rq_rotlearn_cfg){.linear = true, .wbits = 16}, &L) == RQ_OK);
    RQ_CHECK(m->output.w == m->tok_embd); /* no norm fused: the lm_head stays tied */
    float *r1 = dense(RQ_ROT_ORTHOGONAL, E, 7);
    rq_rotlearn_set(L, r1, NULL);
    for (int i = 0; i < E * E; i++) R1d[i] = L->R1[i];
    route_b = true;
    check_apply(L, "route (b)");
    rq_train_ctx *c;
    rq_params g;
    double *d1 = malloc(sizeof(double) * E * E);
    grads_against_fd(L, &c, &g, d1, NULL, "route (b) dL/dRi");
    route_b = false;
    /* the online term alone is not the gradient: the readers' term matters */
    int64_t iq = rq_params_find_name(&L->p, "rotquant.ri.matrix");
    RQ_CHECK(iq >= 0 && L->p.p[iq].group == RQ_PGROUP_ROT && L->p.p[iq].trainable);
    double on = 0, tot = 0;
    for (int i = 0; i < E * E; i++) on += pow(g.p[iq].data[i] - d1[i], 2), tot += d1[i] * d1[i];
    RQ_CHECK(on > 1e-2 * tot);
    /* float weights: A vanishes, Cayley steps stay orthogonal */
    rq_rotlearn_step_info info;
    for (int st = 0; st < 3; st++) {
        RQ_ASSERT(rq_rotlearn_step(L, c, &g, tokens, 0.05, &info) == RQ_OK);
        RQ_CHECK(info.orth1 < ORTH64_TOL);
    }
    rq_rotlearn_grad(L, &g, d1, NULL);
    double gn = 0;
    for (int i = 0; i < E * E; i++) gn += d1[i] * d1[i];
    printf("route (b), float weights: ||A|| %.2e against ||G|| %.2e\n", info.a1, sqrt(gn));
    RQ_CHECK_MSG(info.a1 < 1e-4 * sqrt(gn), "route (b): ||A|| %g vs ||G|| %g", info.a1, sqrt(gn));
    free(d1);
    rq_free(r1);
    rq_params_free(&g);
    rq_train_ctx_free(c);
    rq_rotlearn_free(L);
    rq_model_free(m);
}

/* ---- the rotation file and quantize --rotate learned ------------------------------------ */

/* the logits of the file at qpath on the test tokens against ref: relative L2 (printed) */
static double file_logits_err(const char *qpath, const float *ref, const char *what) {
    rq_model *mq;
    RQ_ASSERT(rq_model_load_file(qpath, &mq) == RQ_OK);
    float *got = rq_test_logits(mq, tokens, TT);
    double e = rq_rel_l2(got, ref, TT * V);
    printf("%s: logits rel L2 %.3g\n", what, e);
    free(got);
    rq_model_free(mq);
    return e;
}

static void write_bad(const char *path, const rq_rot_learned *r) { RQ_ASSERT(rq_rot_learned_write(r, path) == RQ_OK); }

static void check_file(const char *model_path) {
    char path[512], qpath[512], bad[512];
    snprintf(path, sizeof path, "%s/rot.gguf", tmpdir);
    snprintf(qpath, sizeof qpath, "%s/q.gguf", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir);
    rq_model *m;
    RQ_ASSERT(rq_model_load_file(model_path, &m) == RQ_OK);
    rq_rot_learned r = {.n = E, .head_dim = HD, .n_r2 = NL, .wbits = 4, .group = 16, .abits = 4, .kvbits = 4,
                        .steps = 7, .tokens = 99, .lr = 1.5f, .seed = 3, .loss_first = 2.5, .loss_last = 2.25};
    r.init1 = rq_rot_make(RQ_ROT_HADAMARD, E, 0, 3);
    r.r3 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 5), r.r4 = rq_rot_make(RQ_ROT_WALSH, FF, 0, 6);
    r.r1 = dense(RQ_ROT_ORTHOGONAL, E, 21);
    r.r2 = malloc(sizeof(float) * NL * HD * HD);
    for (int l = 0; l < NL; l++) {
        float *q = dense(RQ_ROT_ORTHOGONAL, HD, 30 + l);
        memcpy(r.r2 + l * HD * HD, q, sizeof(float) * HD * HD);
        rq_free(q);
    }
    rq_model_config_describe(&m->cfg, r.model, sizeof r.model);
    RQ_CHECK(rq_rot_learned_write(&r, path) == RQ_OK);
    rq_rot_learned b;
    RQ_CHECK(rq_rot_learned_read(path, &b) == RQ_OK);
    RQ_CHECK(b.n == E && b.block == 0 && b.n_r2 == NL && b.head_dim == HD && b.steps == 7 && b.tokens == 99);
    RQ_CHECK(b.init1.kind == RQ_ROT_HADAMARD && b.init1.random_signs && b.r4.kind == RQ_ROT_WALSH && b.r4.n == FF);
    RQ_CHECK(!memcmp(b.r1, r.r1, sizeof(float) * E * E) && !memcmp(b.r2, r.r2, sizeof(float) * NL * HD * HD));
    RQ_CHECK(!strcmp(b.model, r.model) && b.lr == 1.5f && b.loss_last == 2.25);
    rq_rot_learned_free(&b);
    float *r2_file = malloc(sizeof(float) * NL * HD * HD); /* as written to path */
    memcpy(r2_file, r.r2, sizeof(float) * NL * HD * HD);

    /* refused: not orthogonal, a broken block structure, a newer version, not a rotation file */
    r.r1[5] += 0.01f;
    write_bad(bad, &r);
    RQ_CHECK(rq_rot_learned_read(bad, &b) == RQ_EFORMAT && strstr(rq_last_error(), "not orthogonal"));
    r.r1[5] -= 0.01f;
    r.block = 16;
    write_bad(bad, &r);
    RQ_CHECK(rq_rot_learned_read(bad, &b) == RQ_EFORMAT && strstr(rq_last_error(), "block-diagonal"));
    r.block = 0;
    r.r2[7] = NAN;
    write_bad(bad, &r);
    RQ_CHECK(rq_rot_learned_read(bad, &b) == RQ_EFORMAT && strstr(rq_last_error(), "not finite"));
    r.r2[7] = 0;
    write_bad(bad, &r);
    RQ_CHECK(rq_rot_learned_read(bad, &b) == RQ_EFORMAT); /* R2[0] no longer orthogonal */
    memcpy(r.r2, r.r2 + HD * HD, sizeof(float) * HD * HD);
    rq_test_gguf_copy(path, bad, "rotlearn.format_version", NULL, NULL);
    RQ_CHECK(rq_rot_learned_read(bad, &b) == RQ_EFORMAT && strstr(rq_last_error(), "not a rotation file"));
    RQ_CHECK(rq_rot_learned_read(model_path, &b) == RQ_EFORMAT);
    RQ_CHECK(b.r1 == NULL);

    /* quantize --rotate learned: the file records it, the matrices are stored, the W8 model
     * stays close to the float one; composing GSR on top stores R·Q */
    float *ref = rq_test_logits(m, tokens, TT);
    for (int compose = 0; compose < 2; compose++) {
        rq_quant_opts o = rq_quant_opts_default();
        o.rotate = RQ_ROT_LEARNED, o.rotation_file = path, o.wbits = 8, o.group = 16, o.method = RQ_PTQ_RTN;
        o.embd_type = "f32";
        if (compose) o.compose = RQ_ROT_GSR, o.block = 16;
        rq_quant_result qr;
        RQ_CHECK(rq_quant_run(model_path, qpath, &o, &qr) == RQ_OK);
        rq_gguf *g;
        rq_qinfo qi;
        RQ_ASSERT(rq_gguf_open(qpath, &g) == RQ_OK && rq_qinfo_read(g, &qi) == RQ_OK);
        RQ_CHECK(qi.r1.kind == RQ_ROT_LEARNED && qi.r2.kind == RQ_ROT_LEARNED && !strcmp(qi.rotation_file, "rot.gguf"));
        RQ_CHECK(!strcmp(qi.rotation_init, "hadamard(n=48, signs, seed=3)"));
        RQ_CHECK(!strcmp(qi.rotation_compose, compose ? "gsr(n=48, block=16)" : ""));
        const rq_gguf_tensor *t1 = rq_gguf_find_tensor(g, "rotquant.r1.matrix"), *t2 = rq_gguf_find_tensor(g, "rotquant.r2.matrix");
        RQ_CHECK(t1 && t2 && t1->ne[0] == E && t1->ne[1] == E && t2->ne[2] == NL);
        if (t1 && t2) {
            RQ_CHECK(!memcmp(t2->data, r2_file, sizeof(float) * NL * HD * HD));
            double err = 0;
            float *q = NULL;
            rq_rotation gs = rq_rot_make(RQ_ROT_GSR, E, 16, 0);
            RQ_ASSERT(rq_rot_dense(&gs, &q) == RQ_OK);
            for (int i = 0; i < E; i++)
                for (int j = 0; j < E; j++) {
                    double want = 0;
                    if (compose)
                        for (int k = 0; k < E; k++) want += (double)r.r1[i * E + k] * q[k * E + j];
                    else want = r.r1[i * E + j];
                    err = fmax(err, fabs(((const float *)t1->data)[i * E + j] - want));
                }
            RQ_CHECK_MSG(err < 1e-6, "stored R1 off by %g", err);
            rq_free(q);
        }
        /* the online R3/R4 default to the file's */
        RQ_CHECK(qi.r3.kind == RQ_ROT_NONE && qi.r4.kind == RQ_ROT_NONE); /* A16 KV16: none */
        char d[512];
        printf("quantized: %s\n", rq_qinfo_describe(&qi, d, sizeof d));
        rq_gguf_close(g);
        double e = file_logits_err(qpath, ref, compose ? "W8 RTN with the learned rotation + GSR"
                                                       : "W8 RTN with the learned rotation");
        /* 8-bit weights of a folded exact rotation: a percent-level change at most */
        RQ_CHECK_MSG(e < 0.05, "W8 learned: rel L2 %g", e);
    }
    /* route (b) (--r1-route linear): the file's R1 becomes a learned Ri applied online as a
     * dense matrix, o's input takes the start's kind (Hadamard), the learned R2 folds; W16 with
     * f32 embeddings keeps the function: the file reloaded gives the float model's logits */
    {
        rq_quant_opts o = rq_quant_opts_default();
        o.rotate = RQ_ROT_LEARNED, o.rotation_file = path, o.r1_route = RQ_R1_LINEAR, o.wbits = 16, o.group = 16;
        o.embd_type = "f32";
        rq_quant_result qr;
        RQ_CHECK(rq_quant_run(model_path, qpath, &o, &qr) == RQ_OK);
        rq_gguf *g;
        rq_qinfo qi;
        RQ_ASSERT(rq_gguf_open(qpath, &g) == RQ_OK && rq_qinfo_read(g, &qi) == RQ_OK);
        RQ_CHECK(qi.r1.kind == RQ_ROT_NONE && qi.ri.kind == RQ_ROT_LEARNED && qi.ri.n == E);
        RQ_CHECK(qi.ro.kind == RQ_ROT_HADAMARD && qi.ro.n == H * HD && qi.r2.kind == RQ_ROT_LEARNED);
        const rq_gguf_tensor *ti = rq_gguf_find_tensor(g, "rotquant.ri.matrix");
        RQ_CHECK(ti && ti->ne[0] == E && ti->ne[1] == E && !memcmp(ti->data, r.r1, sizeof(float) * E * E));
        RQ_CHECK(!rq_gguf_find_tensor(g, "rotquant.r1.matrix") && rq_gguf_find_tensor(g, "rotquant.r2.matrix"));
        char d[512];
        printf("route (b), learned Ri: %s\n", rq_qinfo_describe(&qi, d, sizeof d));
        rq_gguf_close(g);
        double e = file_logits_err(qpath, ref, "W16, learned Ri online (dense), Ro hadamard, learned R2 folded");
        RQ_CHECK_MSG(e < LOGIT_REL_TOL, "route (b) learned: rel L2 %g", e); /* float32 rounding of the folds */
        /* a learned Ri without its matrix (here: a file that has none): a clear error */
        rq_gguf *g0;
        RQ_ASSERT(rq_gguf_open(model_path, &g0) == RQ_OK);
        rq_online_cfg oc;
        float *rb = NULL;
        RQ_CHECK(rq_qinfo_online_cfg_file(g0, &qi, &oc, &rb) == RQ_EFORMAT && !rb &&
                 strstr(rq_last_error(), "no rotquant.ri.matrix"));
        rq_gguf_close(g0);
    }
    /* with A4/KV4 the online rotations come from the file */
    {
        rq_quant_opts o = rq_quant_opts_default();
        o.rotate = RQ_ROT_LEARNED, o.rotation_file = path, o.wbits = 16, o.abits = 4, o.kvbits = 4, o.group = 16;
        rq_quant_plan p;
        RQ_CHECK(rq_quant_plan_make(m, &o, &p) == RQ_OK);
        RQ_CHECK(p.r3.kind == RQ_ROT_HADAMARD && p.r4.kind == RQ_ROT_WALSH && p.r1_dense && p.n_r2 == NL);
        rq_quant_plan_free(&p);
        /* errors */
        o.rotate2 = RQ_ROT_HADAMARD;
        RQ_CHECK(rq_quant_plan_make(m, &o, &p) == RQ_EINVAL && strstr(rq_last_error(), "brings its own"));
        o.rotate2 = RQ_ROT_NONE, o.rotation_file = NULL;
        RQ_CHECK(rq_quant_plan_make(m, &o, &p) == RQ_EINVAL && strstr(rq_last_error(), "--rotation-file"));
        o.rotate = RQ_ROT_GSR, o.rotation_file = path;
        RQ_CHECK(rq_quant_plan_make(m, &o, &p) == RQ_EINVAL);
        rq_rotation lr = rq_rot_make(RQ_ROT_LEARNED, E, 0, 0);
        float *q;
        RQ_CHECK(rq_rot_dense(&lr, &q) == RQ_EUNSUPPORTED);
    }
    free(ref);
    free(r.r2), free(r2_file);
    rq_free(r.r1);
    rq_model_free(m);
}

/* ---- the CLI ----------------------------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static bool file_has(const char *path, const char *needle) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* the file's last line, for a failure message */
static const char *last_line(const char *path) {
    static char buf[512], line[512];
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '\n') memcpy(buf, line, sizeof buf);
    if (f) fclose(f);
    return buf;
}

static void check_cli(const char *model_path) {
    const char *cli = getenv("RQ_CLI");
    if (!cli) {
        printf("CLI checks skipped (RQ_CLI not set)\n");
        return;
    }
    char ids[512], err[512], out[512];
    snprintf(ids, sizeof ids, "%s/ids.txt", tmpdir);
    snprintf(err, sizeof err, "%s/cli.err", tmpdir);
    snprintf(out, sizeof out, "%s/cli.out", tmpdir);
    FILE *f = fopen(ids, "w");
    for (int i = 0; i < 96; i++) fprintf(f, "%d%c", (i * 7 + 3) % V, i % 12 == 11 ? '\n' : ' ');
    fclose(f);
    /* learn (W4 A4 KV4, block-diagonal from GSR) and fold: a file that records it */
    RQ_CHECK(sh("%s rotlearn -m %s -o %s/r.gguf --data-ids %s --seq-len 12 --batch 2 --val-seqs 2 --steps 3 --wbits 4 "
                "--group 16 --abits 4 --kvbits 4 --init gsr --block 16 -t 1 > %s 2>%s", cli, model_path, tmpdir, ids,
                out, err) == 0);
    RQ_CHECK(file_has(out, "held-out loss") && file_has(err, "step 3/3"));
    rq_rot_learned r;
    char rp[512];
    snprintf(rp, sizeof rp, "%s/r.gguf", tmpdir);
    RQ_CHECK(rq_rot_learned_read(rp, &r) == RQ_OK && r.block == 16 && r.n_r2 == NL && r.init1.kind == RQ_ROT_GSR &&
             r.r3.kind == RQ_ROT_HADAMARD && r.steps == 3 && r.tokens == 3 * 2 * 12);
    rq_rot_learned_free(&r);
    RQ_CHECK_MSG(sh("%s quantize -m %s -o %s/q.gguf --rotate learned --rotation-file %s/r.gguf --compose gsr --block 16 "
                    "--wbits 4 --group 16 --method rtn --abits 4 --kvbits 4 --embd-type f32 -t 1 > /dev/null 2>%s", cli, model_path,
                    tmpdir, tmpdir, err) == 0, "quantize --rotate learned: %s", last_line(err));
    RQ_CHECK(sh("%s info %s/q.gguf > %s 2>&1", cli, tmpdir, out) == 0);
    RQ_CHECK(file_has(out, "learned from gsr(n=48, block=16)") && file_has(out, "composed with gsr"));
    /* route (b): Ri learned (no R2), then quantize folds it into the readers and applies it
     * online; the W16 file computes the float model's function */
    RQ_CHECK(sh("%s rotlearn -m %s -o %s/rb.gguf --r1-route linear --data-ids %s --seq-len 12 --batch 2 --val-seqs 2 "
                "--steps 3 --wbits 4 --group 16 --abits 4 --kvbits 4 --init gsr --init-block 16 -t 1 > %s 2>%s", cli,
                model_path, tmpdir, ids, out, err) == 0);
    RQ_CHECK(file_has(err, "Ri (route (b)") && file_has(err, "step 3/3"));
    snprintf(rp, sizeof rp, "%s/rb.gguf", tmpdir);
    RQ_CHECK(rq_rot_learned_read(rp, &r) == RQ_OK && r.n_r2 == 0 && r.init1.kind == RQ_ROT_GSR &&
             r.r4.kind == RQ_ROT_GSR && r.r3.kind == RQ_ROT_HADAMARD);
    rq_rot_learned_free(&r);
    RQ_CHECK_MSG(sh("%s quantize -m %s -o %s/qb.gguf --rotate learned --rotation-file %s/rb.gguf --r1-route linear "
                    "--wbits 16 --group 16 --embd-type f32 -t 1 > /dev/null 2>%s", cli, model_path, tmpdir, tmpdir, err) == 0,
                 "quantize route (b) learned: %s", last_line(err));
    RQ_CHECK(sh("%s info %s/qb.gguf > %s 2>&1", cli, tmpdir, out) == 0);
    RQ_CHECK(file_has(out, "Ri learned(n=48)") && file_has(out, "Ro gsr(n=48, block=16)") &&
             file_has(out, "Ri learned from gsr(n=48, block=16)"));
    {
        rq_model *mf;
        char qb[600];
        snprintf(qb, sizeof qb, "%s/qb.gguf", tmpdir);
        RQ_ASSERT(rq_model_load_file(model_path, &mf) == RQ_OK);
        float *a = rq_test_logits(mf, tokens, TT);
        double e = file_logits_err(qb, a, "CLI route (b): the W16 file with the learned Ri");
        RQ_CHECK_MSG(e <= LOGIT_REL_TOL, "route (b) file: rel L2 %g", e);
        free(a);
        rq_model_free(mf);
    }
    /* errors: exit 1 with a message naming the option */
    RQ_CHECK(sh("%s quantize -m %s -o %s/x.gguf --rotate learned --wbits 4 --group 16 --method rtn 2>%s", cli, model_path,
                tmpdir, err) == 1 && file_has(err, "--rotation-file"));
    RQ_CHECK(sh("%s rotlearn -m %s -o %s/x.gguf --data-ids %s --seq-len 12 --block 16 --init hadamard 2>%s", cli,
                model_path, tmpdir, ids, err) == 1 && file_has(err, "--block 16"));
    RQ_CHECK(sh("%s quantize -m %s -o %s/x.gguf --rotate learned --rotation-file %s --wbits 4 --group 16 --method rtn "
                "2>%s", cli, model_path, tmpdir, ids, err) == 1 && file_has(err, "rotquant: error:"));
    RQ_CHECK(sh("test -e %s/x.gguf", tmpdir) != 0); /* nothing written on an error */
}

int main(void) {
    rq_rng_seed(&rng, 16);
    rq_threads_set(1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_rotlearn_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    make_base();
    for (int i = 0; i < NT; i++) tokens[i] = (int32_t)rq_rng_below(&rng, V);
    const char *path = write_tiny("tiny.gguf", (tiny_opts){0});
    check_fold_logits(path);
    check_grad(path);
    check_route_b(path);
    check_file(path);
    check_cli(path);
    check_closed_form();
    check_orthogonality(48, 0);
    check_orthogonality(48, 16);
    check_blocks();
    check_first_order();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

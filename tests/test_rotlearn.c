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
 *     error O(η)), and the step bound η‖A‖ <= 1 is applied. */
#include "testing.h"

#include "base/rng.h"
#include "train/cayley.h"

#include <math.h>
#include <string.h>

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
    double e32 = rq_orth_error_f32(Rf, n);
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

int main(void) {
    rq_rng_seed(&rng, 16);
    check_closed_form();
    check_orthogonality(48, 0);
    check_orthogonality(48, 16);
    check_blocks();
    check_first_order();
    return rq_test_finish();
}

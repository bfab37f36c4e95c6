/* Tests of rotate/hadamard.h and rotate/rotation.h:
 *   - every single construction and the model sizes: H Hᵀ = n·I exactly (integer GEMM);
 *   - every order 1..4096 the builder claims: H Hᵀ = n·I by Freivalds' check in exact
 *     integer arithmetic; orders it refuses: the error and, where n > 2 is not a multiple
 *     of 4, that no Hadamard matrix can exist;
 *   - sequency order: generic sort vs closed form, sign-change counts, stability;
 *   - every rotation kind: Q Qᵀ = I, fast apply / apply-transpose vs the dense product,
 *     in place, threaded, round trip; validation errors; names;
 *   - the participation ratio (rq_rot_mixing) and a learned plan applying a given matrix. */
#pragma GCC optimize("O3") /* lets the integer Freivalds loops vectorize */
#include "testing.h"

#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "rotate/hadamard.h"
#include "rotate/rotation.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Q Qᵀ = I: entries of float Q have relative rounding 6e-8; sums of n products stay well
 * under the 1e-5 the brief asks for. */
static const double ORTHO_TOL = 1e-5;
/* fast apply vs dense float product: relative L2 */
static const double APPLY_TOL = 1e-5;

/* H Hᵀ == n·I exactly. Entries are ±1 and n <= 8192, so float GEMM is exact. */
static bool hadamard_exact(const int8_t *h, int64_t n) {
    float *f = rq_xalloc(n * n * (int64_t)sizeof(float));
    float *c = rq_xcalloc(n * n * (int64_t)sizeof(float));
    for (int64_t i = 0; i < n * n; i++) f[i] = h[i];
    bool pm1 = true;
    for (int64_t i = 0; i < n * n; i++) pm1 &= h[i] == 1 || h[i] == -1;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)n, 1.0f, f, (int)n, 0.0f, c, (int)n);
    bool ok = pm1;
    for (int64_t i = 0; i < n && ok; i++)
        for (int64_t j = i; j < n; j++) ok &= c[i * n + j] == (i == j ? (float)n : 0.0f);
    rq_free(f);
    rq_free(c);
    return ok;
}

/* Freivalds: H Hᵀ v == n v for two random integer vectors v in [-100, 100]^n (both
 * probes in one pass over H). |Hᵀv| <= 100 n and |H Hᵀ v| <= 100 n² < 2^31 for n <= 4096:
 * exact in int32. A matrix with H Hᵀ != n I passes a probe with probability <= 1/201, so
 * both with <= 2.5e-5. Entries are ±1, so h·x is computed as (x XOR s) - s, s = h >> 1. */
static bool hadamard_freivalds(const int8_t *h, int64_t n, uint64_t seed) {
    rq_rng g;
    rq_rng_seed(&g, seed);
    int32_t *v0 = rq_xalloc(n * 4), *v1 = rq_xalloc(n * 4), *w0 = rq_xcalloc(n * 4), *w1 = rq_xcalloc(n * 4);
    int bad = 0; /* entries other than ±1 (branch-free so that it vectorizes) */
    for (int64_t i = 0; i < n * n; i++) bad |= (h[i] != 1) & (h[i] != -1);
    bool ok = !bad;
    for (int64_t i = 0; i < n; i++) {
        v0[i] = (int32_t)rq_rng_below(&g, 201) - 100;
        v1[i] = (int32_t)rq_rng_below(&g, 201) - 100;
    }
    for (int64_t i = 0; i < n && ok; i++) { /* w = Hᵀ v */
        const int8_t *hr = h + i * n;
        int32_t a = v0[i], b = v1[i];
        for (int64_t j = 0; j < n; j++) {
            int32_t s = (int32_t)hr[j] >> 1;
            w0[j] += (a ^ s) - s;
            w1[j] += (b ^ s) - s;
        }
    }
    for (int64_t i = 0; i < n && ok; i++) { /* H w == n v */
        const int8_t *hr = h + i * n;
        int32_t s0 = 0, s1 = 0;
        for (int64_t j = 0; j < n; j++) {
            int32_t s = (int32_t)hr[j] >> 1;
            s0 += (w0[j] ^ s) - s;
            s1 += (w1[j] ^ s) - s;
        }
        ok &= s0 == (int32_t)n * v0[i] && s1 == (int32_t)n * v1[i];
    }
    rq_free(v0), rq_free(v1), rq_free(w0), rq_free(w1);
    return ok;
}

/* ---- all claimed orders, spread over the pool ---- */
#define MAX_ORDER 4096
typedef struct {
    signed char supported[MAX_ORDER + 1]; /* rq_had_supported */
    signed char planned[MAX_ORDER + 1];   /* rq_had_plan status == OK */
    signed char msg_ok[MAX_ORDER + 1];    /* refusal: right code and message */
    signed char valid[MAX_ORDER + 1];     /* claimed: passes Freivalds */
} orders_result;

static void check_orders(void *vctx, int64_t begin, int64_t end, int thread) {
    orders_result *res = vctx;
    for (int64_t n = begin + 1; n <= end; n++) {
        res->supported[n] = rq_had_supported(n);
        int8_t *h = NULL;
        rq_status st = rq_had_build(n, &h);
        res->planned[n] = st == RQ_OK;
        if (st != RQ_OK) {
            char want[96];
            snprintf(want, sizeof want, "no Hadamard matrix construction of order %lld", (long long)n);
            res->msg_ok[n] = st == RQ_EUNSUPPORTED && !strcmp(rq_last_error(), want);
            continue;
        }
        res->valid[n] = hadamard_freivalds(h, n, 1000 + (uint64_t)n);
        rq_free(h);
    }
}

static bool is_perm(const int64_t *perm, int64_t n) {
    char *seen = rq_xcalloc(n);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= n || seen[perm[i]]) ok = false;
        else seen[perm[i]] = 1;
    }
    rq_free(seen);
    return ok;
}

static void test_constructions(void) {
    int64_t p;
    int e;
    RQ_CHECK(rq_had_prime_power(25, &p, &e) && p == 5 && e == 2);
    RQ_CHECK(rq_had_prime_power(243, &p, &e) && p == 3 && e == 5);
    RQ_CHECK(rq_had_prime_power(4091, &p, &e) && p == 4091 && e == 1);
    RQ_CHECK(!rq_had_prime_power(35, NULL, NULL) && !rq_had_prime_power(1, NULL, NULL));

    /* Sylvester, 1..2048 (4096 below through the builder) */
    for (int64_t n = 1; n <= 2048; n *= 2) {
        int8_t *h;
        RQ_CHECK(rq_had_sylvester(n, &h) == RQ_OK);
        RQ_CHECK_MSG(hadamard_exact(h, n), "sylvester %lld", (long long)n);
        rq_free(h);
    }
    /* Paley I and II for every admissible prime power q in range (incl. 9, 25, 27, 49,
     * 81, 121, 125, 243: GF(p^e) arithmetic) */
    int n1 = 0, n2 = 0;
    for (int64_t q = 3; q <= 260; q += 2) {
        if (!rq_had_prime_power(q, NULL, NULL)) continue;
        int8_t *h = NULL, *none = (int8_t *)1;
        if (q % 4 == 3) {
            RQ_CHECK(rq_had_paley1(q, &h) == RQ_OK);
            RQ_CHECK_MSG(hadamard_exact(h, q + 1), "paley1 q=%lld", (long long)q);
            n1++;
            RQ_CHECK(rq_had_paley2(q, &none) == RQ_EINVAL && none == NULL);
        } else if (q <= 130) {
            RQ_CHECK(rq_had_paley2(q, &h) == RQ_OK);
            RQ_CHECK_MSG(hadamard_exact(h, 2 * (q + 1)), "paley2 q=%lld", (long long)q);
            n2++;
            RQ_CHECK(rq_had_paley1(q, &none) == RQ_EINVAL && none == NULL);
        }
        rq_free(h);
    }
    printf("Paley I orders checked: %d, Paley II: %d\n", n1, n2);
    int8_t *h = NULL;
    RQ_CHECK(rq_had_paley1(15, &h) == RQ_EINVAL); /* 15 is not a prime power */
    RQ_CHECK(rq_had_paley2(21, &h) == RQ_EINVAL);
    RQ_CHECK(rq_had_sylvester(12, &h) == RQ_EINVAL);

    /* Kronecker of two Paley matrices */
    int8_t *a, *b;
    RQ_CHECK(rq_had_paley1(11, &a) == RQ_OK && rq_had_paley2(9, &b) == RQ_OK);
    int8_t *k = rq_xalloc(12 * 20 * 12 * 20);
    rq_had_kron(a, 12, b, 20, k);
    RQ_CHECK(hadamard_exact(k, 240));
    RQ_CHECK(k[(1 * 20 + 3) * 240 + 5 * 20 + 7] == a[1 * 12 + 5] * b[3 * 20 + 7]);
    rq_free(a);
    rq_free(b);
    rq_free(k);
}

static void test_oracles(void) {
    /* the Freivalds check rejects a broken matrix and accepts a row-negated one */
    int8_t *h;
    RQ_CHECK(rq_had_build(576, &h) == RQ_OK);
    RQ_CHECK(hadamard_freivalds(h, 576, 1));
    for (int64_t j = 0; j < 576; j++) h[100 * 576 + j] = (int8_t)-h[100 * 576 + j];
    RQ_CHECK(hadamard_freivalds(h, 576, 2) && hadamard_exact(h, 576));
    h[7 * 576 + 300] = (int8_t)-h[7 * 576 + 300];
    RQ_CHECK(!hadamard_freivalds(h, 576, 3) && !hadamard_exact(h, 576));
    h[7 * 576 + 300] = 0;
    RQ_CHECK(!hadamard_freivalds(h, 576, 4) && !hadamard_exact(h, 576));
    rq_free(h);
}

static void test_all_orders(void) {
    static orders_result res;
    memset(&res, 0, sizeof res);
    rq_threads_set(0);
    rq_parallel_for(MAX_ORDER, 16, check_orders, &res);
    int claimed = 0, bad = 0;
    for (int64_t n = 1; n <= MAX_ORDER; n++) {
        if (res.planned[n] != res.supported[n]) {
            bad++;
            RQ_CHECK_MSG(0, "order %lld: rq_had_supported disagrees with rq_had_plan", (long long)n);
        }
        if (res.planned[n]) {
            claimed++;
            RQ_CHECK_MSG(res.valid[n], "order %lld: claimed but H Hᵀ != n I", (long long)n);
            RQ_CHECK_MSG(n <= 2 || n % 4 == 0, "order %lld claimed: impossible", (long long)n);
        } else {
            RQ_CHECK_MSG(res.msg_ok[n], "order %lld: wrong refusal: %s", (long long)n, "(see code/message)");
        }
    }
    /* what must be there: powers of two, every multiple of 4 up to 88, the model sizes
     * and the orders named in the brief */
    for (int64_t n = 1; n <= MAX_ORDER; n *= 2) RQ_CHECK_MSG(res.planned[n], "order %lld", (long long)n);
    for (int64_t n = 4; n <= 88; n += 4) RQ_CHECK_MSG(res.planned[n], "order %lld", (long long)n);
    const int64_t must[] = {12, 20, 28, 36, 40, 52, 60, 64, 256, 576, 640, 768, 1536, 2048, 12 * 64, 20 * 32, 28 * 16};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        RQ_CHECK_MSG(res.planned[must[i]], "order %lld", (long long)must[i]);
    RQ_CHECK(!res.planned[92] && !res.planned[3] && !res.planned[6] && !res.planned[116] && res.planned[100]);
    printf("Hadamard orders claimed in 1..%d: %d (all verified)\n", MAX_ORDER, claimed);
}

static void test_model_sizes(void) {
    /* exact check and the expected factorization of the sizes the models use */
    struct { int64_t n, m, p; } cases[] = {
        {64, 1, 64},     {256, 1, 256},  {2048, 1, 2048}, {4096, 1, 4096}, /* head dims, Gemma intermediate */
        {576, 36, 16},                                                     /* SmolLM2 hidden: H_36 ⊗ H_16 */
        {1536, 12, 128},                                                   /* SmolLM2 intermediate */
        {640, 20, 32},                                                     /* Gemma-3 hidden */
        {768, 12, 64},   {448, 28, 16},  {52, 52, 1},     {60, 60, 1},     {40, 20, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rq_had h;
        RQ_CHECK(rq_had_plan(cases[i].n, &h) == RQ_OK);
        RQ_CHECK_MSG(h.m == cases[i].m && h.p == cases[i].p, "order %lld: m=%lld p=%lld (%s)", (long long)cases[i].n,
                     (long long)h.m, (long long)h.p, h.desc);
        int8_t *d = rq_xalloc(h.n * h.n);
        rq_had_dense(&h, d);
        RQ_CHECK_MSG(hadamard_exact(d, h.n), "order %lld exact", (long long)h.n);
        printf("order %lld: %s\n", (long long)h.n, h.desc);
        /* rows agree with the Kronecker definition */
        if (h.m > 1) {
            int64_t i0 = h.n / 3, j0 = h.n / 5 + 1;
            int want = h.base[(i0 / h.p) * h.m + j0 / h.p] *
                       ((__builtin_popcountll((uint64_t)((i0 % h.p) & (j0 % h.p))) & 1) ? -1 : 1);
            RQ_CHECK(d[i0 * h.n + j0] == want);
        }
        rq_free(d);
        rq_had_free(&h);
    }
    /* 576 via Paley II q = 17 (35 is not a prime power, so Paley I cannot give 36) */
    rq_had h;
    RQ_CHECK(rq_had_plan(576, &h) == RQ_OK && strstr(h.desc, "paley2(q=17)"));
    rq_had_free(&h);
    RQ_CHECK(rq_had_plan(0, &h) == RQ_EINVAL);
    RQ_CHECK(rq_had_plan(92, &h) == RQ_EUNSUPPORTED && h.base == NULL);
}

static void test_sequency(void) {
    /* Sylvester: the generic stable sort equals the closed form, row s has s sign
     * changes, and the Walsh matrix is symmetric */
    for (int k = 0; k <= 12; k++) {
        int64_t n = (int64_t)1 << k;
        int8_t *h;
        RQ_CHECK(rq_had_sylvester(n, &h) == RQ_OK);
        int64_t *pg = rq_xalloc(n * 8), *pc = rq_xalloc(n * 8);
        rq_had_sequency_perm(h, n, pg);
        rq_had_walsh_perm_pow2(n, pc);
        RQ_CHECK_MSG(!memcmp(pg, pc, (size_t)n * 8), "walsh perm n=%lld", (long long)n);
        bool counts = true, sym = true;
        for (int64_t s = 0; s < n; s++) counts &= rq_had_sign_changes(h + pc[s] * n, n) == s;
        for (int64_t s = 0; s < n && sym; s++)
            for (int64_t t = 0; t < s; t++) sym &= h[pc[s] * n + t] == h[pc[t] * n + s];
        RQ_CHECK_MSG(counts, "walsh sign changes n=%lld", (long long)n);
        RQ_CHECK_MSG(sym, "walsh symmetric n=%lld", (long long)n);
        rq_free(h);
        rq_free(pg);
        rq_free(pc);
    }
    RQ_CHECK(rq_had_bitrev(1, 3) == 4 && rq_had_bitrev(6, 3) == 3 && rq_had_bitrev(5, 4) == 10);
    /* other orders: the row-by-row perm of a plan equals the dense sort; it is a
     * permutation, sorted by sign changes, stable */
    const int64_t ns[] = {12, 20, 36, 52, 576, 640, 1536};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int64_t n = ns[i];
        rq_had h;
        RQ_CHECK(rq_had_plan(n, &h) == RQ_OK);
        int8_t *d = rq_xalloc(n * n);
        rq_had_dense(&h, d);
        int64_t *pg = rq_xalloc(n * 8), *pp = rq_xalloc(n * 8);
        rq_had_sequency_perm(d, n, pg);
        rq_had_walsh_perm(&h, pp);
        RQ_CHECK_MSG(!memcmp(pg, pp, (size_t)n * 8), "walsh perm of plan n=%lld", (long long)n);
        RQ_CHECK(is_perm(pg, n));
        bool sorted = true;
        for (int64_t s = 1; s < n; s++) {
            int64_t c0 = rq_had_sign_changes(d + pg[s - 1] * n, n), c1 = rq_had_sign_changes(d + pg[s] * n, n);
            sorted &= c0 < c1 || (c0 == c1 && pg[s - 1] < pg[s]);
        }
        RQ_CHECK_MSG(sorted, "sequency sort n=%lld", (long long)n);
        rq_free(d);
        rq_free(pg);
        rq_free(pp);
        rq_had_free(&h);
    }
}

static void test_names_and_validation(void) {
    for (int k = 0; k < RQ_ROT_KIND_COUNT; k++) {
        rq_rot_kind got;
        RQ_CHECK(rq_rot_kind_parse(rq_rot_kind_name((rq_rot_kind)k), &got) == RQ_OK && got == (rq_rot_kind)k);
    }
    rq_rot_kind got;
    RQ_CHECK(rq_rot_kind_parse("GSR", &got) == RQ_EINVAL && strstr(rq_last_error(), "'GSR'"));
    RQ_CHECK(rq_rot_kind_parse("quarot", &got) == RQ_EINVAL);
    RQ_CHECK(!strcmp(rq_rot_kind_name((rq_rot_kind)42), "?"));

    char buf[96];
    rq_rotation r = rq_rot_make(RQ_ROT_GSR, 576, 64, 0);
    RQ_CHECK(!r.random_signs && !strcmp(rq_rot_describe(&r, buf, sizeof buf), "gsr(n=576, block=64)"));
    r = rq_rot_make(RQ_ROT_HADAMARD, 576, 0, 7);
    RQ_CHECK(r.random_signs && !strcmp(rq_rot_describe(&r, buf, sizeof buf), "hadamard(n=576, signs, seed=7)"));
    r = rq_rot_make(RQ_ROT_ORTHOGONAL, 64, 0, 3);
    RQ_CHECK(!strcmp(rq_rot_describe(&r, buf, sizeof buf), "orthogonal(n=64, seed=3)"));
    RQ_CHECK(!strcmp(rq_rot_describe(&r, buf, 8), "orthogo"));

    struct { rq_rotation r; rq_status want; const char *msg; } bad[] = {
        {rq_rot_make(RQ_ROT_GSR, 576, 0, 0), RQ_EINVAL, "needs a positive block size"},
        {rq_rot_make(RQ_ROT_GSR, 576, 100, 0), RQ_EINVAL, "block size 100 does not divide n=576"},
        {rq_rot_make(RQ_ROT_GH, 64, 128, 0), RQ_EINVAL, "does not divide"},
        {rq_rot_make(RQ_ROT_GSR, 184, 92, 0), RQ_EUNSUPPORTED, "no Hadamard matrix construction of order 92"},
        {rq_rot_make(RQ_ROT_GSR, 576, 3, 0), RQ_EUNSUPPORTED, "no Hadamard matrix construction of order 3"},
        {rq_rot_make(RQ_ROT_HADAMARD, 92, 0, 0), RQ_EUNSUPPORTED, "no Hadamard matrix construction of order 92"},
        {rq_rot_make(RQ_ROT_WALSH, 116, 0, 0), RQ_EUNSUPPORTED, "no Hadamard matrix construction of order 116"},
        {rq_rot_make(RQ_ROT_HADAMARD, 576, 64, 0), RQ_EINVAL, "takes no block size"},
        {rq_rot_make(RQ_ROT_ORTHOGONAL, 64, 32, 0), RQ_EINVAL, "takes no block size"},
        {rq_rot_make(RQ_ROT_NONE, 0, 0, 0), RQ_EINVAL, "size must be positive"},
        {rq_rot_make((rq_rot_kind)9, 64, 0, 0), RQ_EINVAL, "invalid rotation kind 9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rq_status st = rq_rot_validate(&bad[i].r);
        RQ_CHECK_MSG(st == bad[i].want && strstr(rq_last_error(), bad[i].msg), "validate case %zu: %s", i,
                     rq_last_error());
        rq_rot_plan *pl = (rq_rot_plan *)1;
        RQ_CHECK(rq_rot_plan_build(&bad[i].r, &pl) == bad[i].want && pl == NULL);
        float *q = (float *)1;
        RQ_CHECK(rq_rot_dense(&bad[i].r, &q) == bad[i].want && q == NULL);
    }
    /* block == n is allowed for the full-size kinds and for gsr (= walsh) */
    r = rq_rot_make(RQ_ROT_WALSH, 64, 64, 0);
    RQ_CHECK(rq_rot_validate(&r) == RQ_OK);
}

/* max |Q Qᵀ - I| */
static double ortho_err(const float *q, int64_t n) {
    float *c = rq_xcalloc(n * n * 4);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)n, 1.0f, q, (int)n, 0.0f, c, (int)n);
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            double d = fabs(c[i * n + j] - (i == j ? 1.0 : 0.0));
            if (d > e) e = d;
        }
    rq_free(c);
    return e;
}

/* Fast apply vs dense, one rotation; returns the dense Q (caller frees) or NULL. */
static void check_rotation(const rq_rotation *r, bool check_ortho, rq_rng *g) {
    char desc[96];
    rq_rot_describe(r, desc, sizeof desc);
    float *q = NULL;
    rq_rot_plan *pl = NULL;
    RQ_CHECK_MSG(rq_rot_dense(r, &q) == RQ_OK, "%s: dense: %s", desc, rq_last_error());
    RQ_CHECK_MSG(rq_rot_plan_build(r, &pl) == RQ_OK, "%s: plan: %s", desc, rq_last_error());
    if (!q || !pl) {
        rq_free(q);
        rq_rot_plan_free(pl);
        return;
    }
    int64_t n = r->n, rows = 5;
    if (check_ortho) {
        double e = ortho_err(q, n);
        RQ_CHECK_MSG(e <= ORTHO_TOL, "%s: |Q Qᵀ - I| = %.3g", desc, e);
    }
    float *x = rq_xalloc(rows * n * 4), *y = rq_xalloc(rows * n * 4), *yr = rq_xalloc(rows * n * 4);
    float *z = rq_xalloc(rows * n * 4);
    for (int64_t i = 0; i < rows * n; i++) x[i] = (float)rq_rng_normal(g);
    /* Y = X Q */
    rq_rot_apply(pl, x, y, rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0f, x, (int)n, q, (int)n, 0.0f,
                yr, (int)n);
    double e = rq_rel_l2(y, yr, rows * n);
    RQ_CHECK_MSG(e <= APPLY_TOL, "%s: apply vs dense rel %.3g", desc, e);
    /* in place gives the same bits */
    memcpy(z, x, (size_t)(rows * n) * 4);
    rq_rot_apply(pl, z, z, rows);
    RQ_CHECK_MSG(!memcmp(z, y, (size_t)(rows * n) * 4), "%s: in-place apply differs", desc);
    /* Y = X Qᵀ */
    rq_rot_apply_t(pl, x, y, rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)n, 1.0f, x, (int)n, q, (int)n, 0.0f, yr,
                (int)n);
    e = rq_rel_l2(y, yr, rows * n);
    RQ_CHECK_MSG(e <= APPLY_TOL, "%s: apply_t vs dense rel %.3g", desc, e);
    memcpy(z, x, (size_t)(rows * n) * 4);
    rq_rot_apply_t(pl, z, z, rows);
    RQ_CHECK_MSG(!memcmp(z, y, (size_t)(rows * n) * 4), "%s: in-place apply_t differs", desc);
    /* round trip */
    rq_rot_apply(pl, x, z, rows);
    rq_rot_apply_t(pl, z, z, rows);
    e = rq_rel_l2(z, x, rows * n);
    RQ_CHECK_MSG(e <= APPLY_TOL, "%s: apply_t(apply(x)) rel %.3g", desc, e);
    rq_free(x);
    rq_free(y);
    rq_free(yr);
    rq_free(z);
    rq_free(q);
    rq_rot_plan_free(pl);
}

static void test_rotations(void) {
    rq_rng g;
    rq_rng_seed(&g, 99);
    const int64_t ns[] = {12, 20, 36, 40, 52, 60, 64, 96, 256, 448, 576, 640, 768, 1536, 2048, 4096};
    const int64_t blocks[] = {32, 64, 128};
    int count = 0;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int64_t n = ns[i];
        /* Q Qᵀ by GEMM up to 1536 (cost n³); larger sizes: H_2048 and H_4096 are checked
         * exactly in test_model_sizes, and their blocks at the smaller sizes here */
        bool ortho = n <= 1536, big = n >= 2048;
        rq_rotation r;
        if (!big) r = rq_rot_make(RQ_ROT_NONE, n, 0, 0), check_rotation(&r, ortho, &g), count++;
        r = rq_rot_make(RQ_ROT_HADAMARD, n, 0, 11), check_rotation(&r, ortho, &g), count++;
        r = rq_rot_make(RQ_ROT_WALSH, n, 0, 0), check_rotation(&r, ortho, &g), count++;
        if (!big) r.random_signs = true, r.seed = 5, check_rotation(&r, false, &g), count++;
        if (n <= 640) r = rq_rot_make(RQ_ROT_ORTHOGONAL, n, 0, 3), check_rotation(&r, ortho, &g), count++;
        for (int bi = 0; bi < 3; bi++) {
            int64_t b = blocks[bi];
            if (n % b) continue;
            r = rq_rot_make(RQ_ROT_GSR, n, b, 0), check_rotation(&r, ortho || (n == 2048 && b == 64), &g), count++;
            if (big && b != 128) continue;
            r = rq_rot_make(RQ_ROT_GH, n, b, 0), check_rotation(&r, ortho && b == 64, &g), count++;
            if (b == 64) r.random_signs = true, r.seed = 8, check_rotation(&r, false, &g), count++;
        }
    }
    /* blocks that are not powers of two: Kronecker blocks inside block-diagonal */
    struct { rq_rot_kind k; int64_t n, b; } nb[] = {
        {RQ_ROT_GSR, 1536, 96}, {RQ_ROT_GH, 1536, 96}, {RQ_ROT_GSR, 640, 20}, {RQ_ROT_GSR, 576, 576}, {RQ_ROT_GH, 1536, 768},
    };
    for (size_t i = 0; i < sizeof nb / sizeof *nb; i++) {
        rq_rotation r = rq_rot_make(nb[i].k, nb[i].n, nb[i].b, 0);
        check_rotation(&r, true, &g);
        count++;
    }
    printf("rotations checked against their dense matrices: %d\n", count);

    /* gsr(n, n) is walsh; gh(n, n) is hadamard without signs; seeds matter */
    float *a, *b;
    rq_rotation r1 = rq_rot_make(RQ_ROT_GSR, 640, 640, 0), r2 = rq_rot_make(RQ_ROT_WALSH, 640, 0, 0);
    RQ_CHECK(rq_rot_dense(&r1, &a) == RQ_OK && rq_rot_dense(&r2, &b) == RQ_OK);
    RQ_CHECK(!memcmp(a, b, 640 * 640 * 4));
    rq_free(a), rq_free(b);
    r1 = rq_rot_make(RQ_ROT_HADAMARD, 64, 0, 1), r2 = rq_rot_make(RQ_ROT_HADAMARD, 64, 0, 2);
    RQ_CHECK(rq_rot_dense(&r1, &a) == RQ_OK && rq_rot_dense(&r2, &b) == RQ_OK);
    RQ_CHECK(memcmp(a, b, 64 * 64 * 4) != 0);
    rq_free(a), rq_free(b);

    /* GSR(576, 64) is block diagonal with the Walsh matrix of 64 in every block, whose row
     * s has s sign changes */
    r1 = rq_rot_make(RQ_ROT_GSR, 576, 64, 0);
    RQ_CHECK(rq_rot_dense(&r1, &a) == RQ_OK);
    bool blockdiag = true, seq = true;
    for (int64_t i = 0; i < 576; i++) {
        int changes = 0;
        for (int64_t j = 0; j < 576; j++) {
            bool inside = i / 64 == j / 64;
            if (!inside) blockdiag &= a[i * 576 + j] == 0.0f;
            else blockdiag &= fabsf(fabsf(a[i * 576 + j]) - 0.125f) < 1e-7f;
            if (inside && j % 64 != 0) changes += (a[i * 576 + j] > 0) != (a[i * 576 + j - 1] > 0);
        }
        seq &= changes == i % 64;
    }
    RQ_CHECK(blockdiag && seq);
    rq_free(a);

    /* threaded apply (many rows) equals one row at a time */
    rq_threads_set(2);
    rq_rotation rr[] = {rq_rot_make(RQ_ROT_HADAMARD, 576, 0, 4), rq_rot_make(RQ_ROT_GSR, 1536, 64, 0),
                        rq_rot_make(RQ_ROT_WALSH, 640, 0, 0)};
    for (size_t i = 0; i < 3; i++) {
        rq_rot_plan *pl;
        RQ_CHECK(rq_rot_plan_build(&rr[i], &pl) == RQ_OK);
        int64_t n = rr[i].n, rows = 333;
        float *x = rq_xalloc(rows * n * 4), *y = rq_xalloc(rows * n * 4), *z = rq_xalloc(rows * n * 4);
        for (int64_t k = 0; k < rows * n; k++) x[k] = (float)rq_rng_normal(&g);
        rq_rot_apply(pl, x, y, rows);
        for (int64_t k = 0; k < rows; k++) rq_rot_apply(pl, x + k * n, z + k * n, 1);
        RQ_CHECK(!memcmp(y, z, (size_t)(rows * n) * 4));
        rq_rot_apply_t(pl, y, y, rows);
        RQ_CHECK(rq_rel_l2(y, x, rows * n) <= APPLY_TOL);
        rq_free(x), rq_free(y), rq_free(z);
        rq_rot_plan_free(pl);
    }
    /* every kernel level gives the same rotation (kernels/fwht.h levels, test_fwht.c) */
    rq_rotation lv[] = {rq_rot_make(RQ_ROT_HADAMARD, 576, 0, 4), rq_rot_make(RQ_ROT_GSR, 640, 32, 0),
                        rq_rot_make(RQ_ROT_WALSH, 1536, 0, 0), rq_rot_make(RQ_ROT_GH, 768, 96, 0)};
    for (size_t i = 0; i < sizeof lv / sizeof *lv; i++) {
        rq_rot_plan *pl;
        RQ_CHECK(rq_rot_plan_build(&lv[i], &pl) == RQ_OK);
        int64_t n = lv[i].n, rows = 3;
        float *x = rq_xalloc(rows * n * 4), *y0 = rq_xalloc(rows * n * 4), *y = rq_xalloc(rows * n * 4);
        for (int64_t k = 0; k < rows * n; k++) x[k] = (float)rq_rng_normal(&g);
        rq_cpu_set_level(RQ_CPU_SCALAR);
        rq_rot_apply(pl, x, y0, rows);
        for (int l = RQ_CPU_AVX2; l <= (int)rq_cpu_max_level(); l++) {
            rq_cpu_set_level((rq_cpu_level)l);
            rq_rot_apply(pl, x, y, rows);
            RQ_CHECK_MSG(rq_rel_l2(y, y0, rows * n) <= 1e-6, "level %s differs", rq_cpu_level_name((rq_cpu_level)l));
        }
        rq_free(x), rq_free(y0), rq_free(y);
        rq_rot_plan_free(pl);
    }
    rq_cpu_set_level(RQ_CPU_AVX512);

    rq_rot_plan *pl;
    rq_rotation r = rq_rot_make(RQ_ROT_HADAMARD, 576, 0, 0);
    RQ_CHECK(rq_rot_plan_build(&r, &pl) == RQ_OK);
    RQ_CHECK(!strcmp(rq_rot_plan_hadamard_desc(pl), "paley2(q=17) x sylvester(16)"));
    RQ_CHECK(rq_rot_plan_rotation(pl)->n == 576);
    rq_rot_plan_free(pl);
}

/* rq_rot_mixing (the participation ratio 1/Σq⁴ per row): exact values for the fixed kinds,
 * and the cancellation `quantize --compose gsr` warns about: SmolLM2's Hadamard of 576
 * (base 36 ⊗ Sylvester 16, signs on rows) times GSR's Walsh blocks of 64 leaves each row
 * 8 entries of ±1/3 and 4 of ±1/6, whatever the signs: 1/(8/81 + 4/1296) = 9.846... */
static void test_mixing(void) {
    struct { rq_rot_kind k; int64_t n, b; double want; } cases[] = {
        {RQ_ROT_NONE, 48, 0, 1}, {RQ_ROT_HADAMARD, 576, 0, 576}, {RQ_ROT_WALSH, 64, 0, 64},
        {RQ_ROT_GSR, 576, 64, 64}, {RQ_ROT_GSR, 576, 32, 32}, {RQ_ROT_HADAMARD, 48, 0, 48}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rq_rotation r = rq_rot_make(cases[c].k, cases[c].n, cases[c].b, 3);
        float *q = NULL;
        RQ_ASSERT(rq_rot_dense(&r, &q) == RQ_OK);
        RQ_CHECK_NEAR(rq_rot_mixing(q, cases[c].n), cases[c].want, 1e-3 * cases[c].want);
        rq_free(q);
    }
    int64_t n = 576;
    for (uint64_t seed = 0; seed < 3; seed++) {
        rq_rotation h = rq_rot_make(RQ_ROT_HADAMARD, n, 0, seed), g = rq_rot_make(RQ_ROT_GSR, n, 64, seed + 9);
        float *qh = NULL, *qg = NULL, *p = rq_xalloc(n * n * (int64_t)sizeof(float));
        RQ_ASSERT(rq_rot_dense(&h, &qh) == RQ_OK && rq_rot_dense(&g, &qg) == RQ_OK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, qh, (int)n, qg, (int)n,
                    0.0f, p, (int)n);
        RQ_CHECK_NEAR(rq_rot_mixing(p, n), 1.0 / (8.0 / 81 + 4.0 / 1296), 1e-3);
        /* the other order keeps the mixing of a dense rotation */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, qg, (int)n, qh, (int)n,
                    0.0f, p, (int)n);
        RQ_CHECK(rq_rot_mixing(p, n) > 100);
        rq_free(qh), rq_free(qg), rq_free(p);
    }
}

/* A learned plan (rq_rot_plan_matrix) applies its matrix: y = x·Q and x·Qᵀ against a plain
 * float64 product, in place and out of place, on an odd number of rows; set_q replaces it;
 * other kinds and a bad size are refused. */
static void test_matrix_plan(void) {
    enum { n = 40, rows = 7 };
    rq_rotation o = rq_rot_make(RQ_ROT_ORTHOGONAL, n, 0, 5), o2 = rq_rot_make(RQ_ROT_ORTHOGONAL, n, 0, 6);
    float *q = NULL, *q2 = NULL;
    RQ_ASSERT(rq_rot_dense(&o, &q) == RQ_OK && rq_rot_dense(&o2, &q2) == RQ_OK);
    rq_rotation lr = rq_rot_make(RQ_ROT_LEARNED, n, 0, 0);
    rq_rot_plan *pl = NULL;
    RQ_CHECK(rq_rot_plan_matrix(&lr, q, &pl) == RQ_OK && pl && rq_rot_plan_q(pl) != q);
    float x[rows * n], y[rows * n], z[rows * n];
    for (int i = 0; i < rows * n; i++) x[i] = (float)sin(0.37 * i + 1.0);
    for (int pass = 0; pass < 2; pass++) {
        const float *qq = pass ? q2 : q;
        if (pass) rq_rot_plan_set_q(pl, q2);
        for (int t = 0; t < 2; t++) {
            memcpy(z, x, sizeof z);
            if (t) rq_rot_apply_t(pl, z, z, rows); /* in place */
            else rq_rot_apply(pl, x, z, rows);
            double err = 0;
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < n; j++) {
                    double a = 0;
                    for (int k = 0; k < n; k++) a += (double)x[r * n + k] * (t ? qq[j * n + k] : qq[k * n + j]);
                    err = fmax(err, fabs(a - z[r * n + j]));
                }
            RQ_CHECK_MSG(err < 1e-5, "learned plan %s, matrix %d: max err %g", t ? "x·Qᵀ" : "x·Q", pass, err);
        }
    }
    rq_rot_apply(pl, x, y, rows), rq_rot_apply_t(pl, y, z, rows); /* Q·Qᵀ = I */
    RQ_CHECK(rq_max_abs_diff(z, x, rows * n) < 1e-5);
    rq_rot_plan_free(pl);
    rq_rot_plan *bad = NULL;
    RQ_CHECK(rq_rot_plan_matrix(&o, q, &bad) == RQ_EINVAL && !bad);
    RQ_CHECK(rq_rot_plan_build(&lr, &bad) == RQ_EUNSUPPORTED && !bad);
    rq_free(q), rq_free(q2);
}

/* runs one group of checks and prints how long it took (information only) */
#define TIMED(f) do { double t0_ = rq_time_now(); f(); printf("%s: %.2f s\n", #f, rq_time_now() - t0_); } while (0)
int main(void) {
    TIMED(test_oracles);
    TIMED(test_constructions);
    TIMED(test_model_sizes);
    TIMED(test_sequency);
    TIMED(test_names_and_validation);
    TIMED(test_rotations);
    TIMED(test_all_orders);
    TIMED(test_mixing);
    TIMED(test_matrix_plan);
    rq_threads_shutdown();
    return rq_test_finish();
}

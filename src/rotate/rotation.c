#include "rotate/rotation.h"

#include "base/pool.h"
#include "base/rng.h"
#include "kernels/fwht.h"
#include "rotate/hadamard.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[RQ_ROT_KIND_COUNT] = {"none", "hadamard", "walsh", "gh",
                                                            "gsr",  "orthogonal", "learned"};

static bool kind_ok(rq_rot_kind k) { return (int)k >= 0 && (int)k < RQ_ROT_KIND_COUNT; }
static bool kind_hadamard(rq_rot_kind k) {
    return k == RQ_ROT_HADAMARD || k == RQ_ROT_WALSH || k == RQ_ROT_GH || k == RQ_ROT_GSR;
}
static bool kind_blocked(rq_rot_kind k) { return k == RQ_ROT_GH || k == RQ_ROT_GSR; }
static bool kind_sequency(rq_rot_kind k) { return k == RQ_ROT_WALSH || k == RQ_ROT_GSR; }

const char *rq_rot_kind_name(rq_rot_kind kind) { return kind_ok(kind) ? kind_names[kind] : "?"; }

rq_status rq_rot_kind_parse(const char *name, rq_rot_kind *out) {
    for (int k = 0; k < RQ_ROT_KIND_COUNT; k++)
        if (name && !strcmp(name, kind_names[k])) {
            *out = (rq_rot_kind)k;
            return RQ_OK;
        }
    return rq_errorf(RQ_EINVAL, "unknown rotation kind '%s' (expected none, hadamard, walsh, gh, gsr, orthogonal, learned)",
                     name ? name : "(null)");
}

rq_rotation rq_rot_make(rq_rot_kind kind, int64_t n, int64_t block, uint64_t seed) {
    rq_rotation r = {kind, n, block, kind == RQ_ROT_HADAMARD, seed};
    return r;
}

/* Block size the rotation works with: block for gh/gsr, n otherwise. */
static int64_t rot_block(const rq_rotation *r) { return kind_blocked(r->kind) ? r->block : r->n; }

rq_status rq_rot_validate(const rq_rotation *r) {
    if (!kind_ok(r->kind)) return rq_errorf(RQ_EINVAL, "invalid rotation kind %d", (int)r->kind);
    const char *name = kind_names[r->kind];
    if (r->n < 1) return rq_errorf(RQ_EINVAL, "%s rotation: size must be positive, got n=%lld", name, (long long)r->n);
    if (r->kind == RQ_ROT_LEARNED) {
        if (r->block < 0 || r->block > r->n || (r->block && r->n % r->block))
            return rq_errorf(RQ_EINVAL, "learned rotation: block %lld does not divide n=%lld", (long long)r->block,
                             (long long)r->n);
    } else if (kind_blocked(r->kind)) {
        if (r->block < 1)
            return rq_errorf(RQ_EINVAL, "%s rotation needs a positive block size, got %lld", name, (long long)r->block);
        if (r->block > r->n || r->n % r->block != 0)
            return rq_errorf(RQ_EINVAL, "%s rotation: block size %lld does not divide n=%lld", name,
                             (long long)r->block, (long long)r->n);
    } else if (r->block != 0 && r->block != r->n) {
        return rq_errorf(RQ_EINVAL, "%s rotation takes no block size (got %lld for n=%lld; only gh and gsr are blocked)",
                         name, (long long)r->block, (long long)r->n);
    }
    if (kind_hadamard(r->kind) && !rq_had_supported(rot_block(r)))
        return rq_errorf(RQ_EUNSUPPORTED, "%s rotation: no Hadamard matrix construction of order %lld", name,
                         (long long)rot_block(r));
    return RQ_OK;
}

const char *rq_rot_describe(const rq_rotation *r, char *buf, size_t size) {
    if (!size) return buf;
    const char *name = rq_rot_kind_name(r->kind);
    int w;
    if (kind_blocked(r->kind) || (r->kind == RQ_ROT_LEARNED && r->block && r->block != r->n))
        w = snprintf(buf, size, "%s(n=%lld, block=%lld", name, (long long)r->n, (long long)r->block);
    else w = snprintf(buf, size, "%s(n=%lld", name, (long long)r->n);
    size_t at = w < 0 ? 0 : ((size_t)w < size ? (size_t)w : size - 1);
    if (r->kind == RQ_ROT_ORTHOGONAL) snprintf(buf + at, size - at, ", seed=%llu)", (unsigned long long)r->seed);
    else if (kind_hadamard(r->kind) && r->random_signs)
        snprintf(buf + at, size - at, ", signs, seed=%llu)", (unsigned long long)r->seed);
    else snprintf(buf + at, size - at, ")");
    return buf;
}

/* ---- shared pieces of the dense and the fast form ------------------------------------ */

/* s[n] = seeded ±1 */
static void signs_make(int64_t n, uint64_t seed, float *s) {
    rq_rng g;
    rq_rng_seed(&g, seed);
    for (int64_t i = 0; i < n; i++) s[i] = (rq_rng_u64(&g) >> 63) ? -1.0f : 1.0f;
}

/* Haar-random orthogonal q[n, n] from the QR of a seeded Gaussian (double precision). */
static rq_status orthogonal_make(int64_t n, uint64_t seed, float *q) {
    int64_t nn;
    if (!rq_mul_ok(n, n, &nn) || nn > ((int64_t)1 << 40) / 8)
        return rq_errorf(RQ_EINVAL, "orthogonal rotation: n=%lld too large", (long long)n);
    double *a = rq_alloc(nn * (int64_t)sizeof *a);
    double *tau = rq_alloc(n * (int64_t)sizeof *tau);
    if (!a || !tau) {
        rq_free(a);
        rq_free(tau);
        return RQ_ENOMEM;
    }
    rq_rng g;
    rq_rng_seed(&g, seed);
    for (int64_t i = 0; i < nn; i++) a[i] = rq_rng_normal(&g);
    rq_status st = RQ_OK;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, a, (lapack_int)n, tau);
    float *rs = NULL; /* [n] signs of R's diagonal */
    if (info == 0) {
        rs = rq_alloc(n * (int64_t)sizeof *rs);
        if (!rs) st = RQ_ENOMEM;
        else
            for (int64_t j = 0; j < n; j++) rs[j] = a[j * n + j] < 0 ? -1.0f : 1.0f;
    }
    if (info == 0 && st == RQ_OK)
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, (lapack_int)n, a, (lapack_int)n, tau);
    if (info != 0 && st == RQ_OK)
        st = rq_errorf(RQ_EUNSUPPORTED, "orthogonal rotation: LAPACK QR failed (info=%d)", (int)info);
    if (st == RQ_OK)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) q[i * n + j] = (float)(a[i * n + j] * rs[j]);
    rq_free(rs);
    rq_free(a);
    rq_free(tau);
    return st;
}

/* a learned rotation has no description to build it from */
static rq_status refuse_learned(void) {
    return rq_errorf(RQ_EUNSUPPORTED, "a learned rotation is a stored matrix: read it from its rotation file "
                     "(rotquant rotlearn writes one; quantize --rotation-file folds it)");
}

double rq_rot_mixing(const float *q, int64_t n) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double s4 = 0;
        for (int64_t j = 0; j < n; j++) {
            double v = (double)q[i * n + j] * q[i * n + j];
            s4 += v * v;
        }
        sum += s4 > 0 ? 1.0 / s4 : 0;
    }
    return n > 0 ? sum / (double)n : 0;
}

rq_status rq_rot_dense(const rq_rotation *r, float **out) {
    *out = NULL;
    RQ_TRY(rq_rot_validate(r));
    if (r->kind == RQ_ROT_LEARNED) return refuse_learned();
    int64_t n = r->n, nn;
    if (!rq_mul_ok(n, n, &nn) || !rq_mul_ok(nn, (int64_t)sizeof(float), &nn))
        return rq_errorf(RQ_EINVAL, "rotation n=%lld too large for a dense matrix", (long long)n);
    float *q = rq_calloc(nn);
    if (!q) return RQ_ENOMEM;
    if (r->kind == RQ_ROT_NONE) {
        for (int64_t i = 0; i < n; i++) q[i * n + i] = 1.0f;
    } else if (r->kind == RQ_ROT_ORTHOGONAL) {
        rq_status st = orthogonal_make(n, r->seed, q);
        if (st != RQ_OK) {
            rq_free(q);
            return st;
        }
    } else {
        int64_t b = rot_block(r);
        int8_t *h = NULL;
        rq_status st = rq_had_build(b, &h);
        int64_t *perm = st == RQ_OK ? rq_alloc(b * (int64_t)sizeof *perm) : NULL;
        float *s = perm ? rq_alloc(n * (int64_t)sizeof *s) : NULL;
        if (!s) {
            rq_free(h);
            rq_free(perm);
            rq_free(q);
            return st != RQ_OK ? st : RQ_ENOMEM;
        }
        if (kind_sequency(r->kind)) rq_had_sequency_perm(h, b, perm);
        else
            for (int64_t i = 0; i < b; i++) perm[i] = i;
        if (r->random_signs) signs_make(n, r->seed, s);
        else
            for (int64_t i = 0; i < n; i++) s[i] = 1.0f;
        double inv = 1.0 / sqrt((double)b);
        for (int64_t k = 0; k < n / b; k++)
            for (int64_t i = 0; i < b; i++) {
                const int8_t *hr = h + perm[i] * b;
                float *qr = q + (k * b + i) * n + k * b;
                for (int64_t j = 0; j < b; j++) qr[j] = (float)(s[k * b + i] * hr[j] * inv);
            }
        rq_free(h);
        rq_free(perm);
        rq_free(s);
    }
    *out = q;
    return RQ_OK;
}

/* ---- the plan -------------------------------------------------------------------------- */

struct rq_rot_plan {
    rq_rotation r;
    int64_t b;      /* block (n for full-size kinds) */
    int64_t m, p;   /* b = m·p, H_b = B ⊗ S_p */
    float scale;    /* 1/√b */
    float *c_fwd;   /* [m, m] c[i·m + j] = B[i][j] (x H); NULL when m == 1 */
    float *c_bwd;   /* [m, m] c[i·m + j] = B[j][i] (x Hᵀ) */
    int64_t *perm;  /* [b] row s of Q_b = row perm[s] of H_b; NULL: natural order */
    float *signs;   /* [n] ±1; NULL: none */
    float *q;       /* [n, n] orthogonal and learned kinds */
    char had_desc[128];
};

void rq_rot_plan_free(rq_rot_plan *pl) {
    if (!pl) return;
    rq_free(pl->c_fwd);
    rq_free(pl->c_bwd);
    rq_free(pl->perm);
    rq_free(pl->signs);
    rq_free(pl->q);
    rq_free(pl);
}

rq_status rq_rot_plan_build(const rq_rotation *r, rq_rot_plan **out) {
    *out = NULL;
    RQ_TRY(rq_rot_validate(r));
    if (r->kind == RQ_ROT_LEARNED) return refuse_learned();
    rq_rot_plan *pl = rq_calloc(sizeof *pl);
    if (!pl) return RQ_ENOMEM;
    pl->r = *r;
    int64_t n = r->n;
    pl->b = rot_block(r);
    rq_status st = RQ_OK;
    if (r->kind == RQ_ROT_ORTHOGONAL) {
        int64_t nn;
        if (!rq_mul_ok(n, n, &nn) || !rq_mul_ok(nn, (int64_t)sizeof(float), &nn))
            st = rq_errorf(RQ_EINVAL, "orthogonal rotation: n=%lld too large", (long long)n);
        else if (!(pl->q = rq_alloc(nn))) st = RQ_ENOMEM;
        else st = orthogonal_make(n, r->seed, pl->q);
    } else if (kind_hadamard(r->kind)) {
        rq_had h;
        st = rq_had_plan(pl->b, &h);
        if (st == RQ_OK) {
            pl->m = h.m;
            pl->p = h.p;
            pl->scale = (float)(1.0 / sqrt((double)pl->b));
            snprintf(pl->had_desc, sizeof pl->had_desc, "%s", h.desc);
            if (h.m > 1) {
                int64_t m = h.m;
                pl->c_fwd = rq_alloc(m * m * (int64_t)sizeof(float));
                pl->c_bwd = rq_alloc(m * m * (int64_t)sizeof(float));
                if (!pl->c_fwd || !pl->c_bwd) st = RQ_ENOMEM;
                else
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < m; j++) {
                            pl->c_fwd[i * m + j] = h.base[i * m + j];
                            pl->c_bwd[i * m + j] = h.base[j * m + i];
                        }
            }
            if (st == RQ_OK && kind_sequency(r->kind)) {
                pl->perm = rq_alloc(pl->b * (int64_t)sizeof *pl->perm);
                if (!pl->perm) st = RQ_ENOMEM;
                else rq_had_walsh_perm(&h, pl->perm);
            }
            rq_had_free(&h);
        }
        if (st == RQ_OK && r->random_signs) {
            pl->signs = rq_alloc(n * (int64_t)sizeof *pl->signs);
            if (!pl->signs) st = RQ_ENOMEM;
            else signs_make(n, r->seed, pl->signs);
        }
    }
    if (st != RQ_OK) {
        rq_rot_plan_free(pl);
        return st;
    }
    *out = pl;
    return RQ_OK;
}

rq_status rq_rot_plan_matrix(const rq_rotation *r, const float *q, rq_rot_plan **out) {
    *out = NULL;
    RQ_TRY(rq_rot_validate(r));
    if (r->kind != RQ_ROT_LEARNED)
        return rq_errorf(RQ_EINVAL, "a rotation plan from a matrix is for learned rotations, not %s",
                         rq_rot_kind_name(r->kind));
    int64_t nn;
    if (!rq_mul_ok(r->n, r->n, &nn) || !rq_mul_ok(nn, (int64_t)sizeof(float), &nn))
        return rq_errorf(RQ_EINVAL, "learned rotation: n=%lld too large", (long long)r->n);
    rq_rot_plan *pl = rq_calloc(sizeof *pl);
    if (!pl || !(pl->q = rq_alloc(nn))) {
        rq_free(pl);
        return RQ_ENOMEM;
    }
    pl->r = *r, pl->b = r->n;
    memcpy(pl->q, q, (size_t)nn);
    *out = pl;
    return RQ_OK;
}

const float *rq_rot_plan_q(const rq_rot_plan *pl) { return pl->r.kind == RQ_ROT_LEARNED ? pl->q : NULL; }

void rq_rot_plan_set_q(rq_rot_plan *pl, const float *q) {
    RQ_ASSERT(pl->r.kind == RQ_ROT_LEARNED && pl->q);
    memcpy(pl->q, q, (size_t)(pl->r.n * pl->r.n) * sizeof *pl->q);
}

const rq_rotation *rq_rot_plan_rotation(const rq_rot_plan *pl) { return &pl->r; }
const char *rq_rot_plan_hadamard_desc(const rq_rot_plan *pl) { return pl->had_desc; }

/* ---- fast apply ------------------------------------------------------------------------ */

typedef struct apply_ctx {
    const rq_rot_plan *pl;
    const float *x;
    float *y;
    bool transpose;
} apply_ctx;

/* Rows whose data fit comfortably in L2 are transformed pass after pass together. */
#define APPLY_CHUNK_FLOATS 16384

/* Forward pre-pass on one row: y = (x ∘ s) scattered by the sequency permutation. */
static void pre_row(const rq_rot_plan *pl, const float *x, float *y, float *tmp) {
    int64_t n = pl->r.n, b = pl->b;
    const float *s = pl->signs;
    if (pl->perm) {
        const int64_t *perm = pl->perm;
        for (int64_t k = 0; k < n; k += b) {
            float *t = x == y ? tmp : y + k; /* out of place: scatter straight into y */
            if (s)
                for (int64_t i = 0; i < b; i++) t[perm[i]] = x[k + i] * s[k + i];
            else
                for (int64_t i = 0; i < b; i++) t[perm[i]] = x[k + i];
            if (t == tmp) memcpy(y + k, tmp, (size_t)b * sizeof *y);
        }
    } else if (s) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * s[i];
    } else if (x != y) {
        memcpy(y, x, (size_t)n * sizeof *y);
    }
}

/* Transposed post-pass on one row (in place): y = gather by the permutation, then ∘ s. */
static void post_row(const rq_rot_plan *pl, float *y, float *tmp) {
    int64_t n = pl->r.n, b = pl->b;
    const float *s = pl->signs;
    if (pl->perm) {
        const int64_t *perm = pl->perm;
        for (int64_t k = 0; k < n; k += b) {
            if (s)
                for (int64_t i = 0; i < b; i++) tmp[i] = y[k + perm[i]] * s[k + i];
            else
                for (int64_t i = 0; i < b; i++) tmp[i] = y[k + perm[i]];
            memcpy(y + k, tmp, (size_t)b * sizeof *y);
        }
    } else if (s) {
        for (int64_t i = 0; i < n; i++) y[i] *= s[i];
    }
}

static void apply_range(void *vctx, int64_t begin, int64_t end, int thread) {
    const apply_ctx *c = vctx;
    const rq_rot_plan *pl = c->pl;
    int64_t n = pl->r.n, b = pl->b, m = pl->m, p = pl->p;
    float *tmp = rq_xalloc(b * (int64_t)sizeof(float));
    int64_t step = APPLY_CHUNK_FLOATS / n;
    if (step < 1) step = 1;
    for (int64_t r0 = begin; r0 < end; r0 += step) {
        int64_t r1 = r0 + step < end ? r0 + step : end, nr = r1 - r0;
        float *y = c->y + r0 * n;
        const float *x = c->x + r0 * n;
        if (!c->transpose) {
            for (int64_t r = 0; r < nr; r++) pre_row(pl, x + r * n, y + r * n, tmp);
            rq_fwht(y, nr * (n / p), p, m == 1 ? pl->scale : 1.0f);
            if (m > 1) rq_fwht_mix(pl->c_fwd, m, p, y, nr * (n / b), pl->scale, tmp);
        } else {
            if (x != y) memcpy(y, x, (size_t)(nr * n) * sizeof *y);
            rq_fwht(y, nr * (n / p), p, m == 1 ? pl->scale : 1.0f);
            if (m > 1) rq_fwht_mix(pl->c_bwd, m, p, y, nr * (n / b), pl->scale, tmp);
            if (pl->perm || pl->signs)
                for (int64_t r = 0; r < nr; r++) post_row(pl, y + r * n, tmp);
        }
    }
    rq_free(tmp);
}

/* Dense y = x Q (or x Qᵀ) with cblas, in chunks so that y == x works with a bounded copy. */
static void apply_dense(const rq_rot_plan *pl, const float *x, float *y, int64_t rows, bool transpose) {
    int64_t n = pl->r.n;
    int64_t chunk = rows;
    float *xc = NULL;
    if (x == y) {
        chunk = ((int64_t)1 << 22) / n;
        if (chunk < 1) chunk = 1;
        if (chunk > rows) chunk = rows;
        xc = rq_xalloc(chunk * n * (int64_t)sizeof(float));
    }
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = r0 + chunk < rows ? chunk : rows - r0;
        const float *a = x + r0 * n;
        if (xc) {
            memcpy(xc, a, (size_t)(nr * n) * sizeof *xc);
            a = xc;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasTrans : CblasNoTrans, (int)nr, (int)n, (int)n, 1.0f,
                    a, (int)n, pl->q, (int)n, 0.0f, y + r0 * n, (int)n);
    }
    rq_free(xc);
}

static void apply(const rq_rot_plan *pl, const float *x, float *y, int64_t rows, bool transpose) {
    RQ_ASSERT(rows >= 0);
    if (rows == 0) return;
    int64_t n = pl->r.n;
    switch (pl->r.kind) {
    case RQ_ROT_NONE:
        if (x != y) memcpy(y, x, (size_t)(rows * n) * sizeof *y);
        return;
    case RQ_ROT_ORTHOGONAL:
    case RQ_ROT_LEARNED: apply_dense(pl, x, y, rows, transpose); return;
    default: break;
    }
    apply_ctx c = {pl, x, y, transpose};
    int64_t grain = (4 * APPLY_CHUNK_FLOATS) / n;
    if (grain < 1) grain = 1;
    if (rows <= grain) apply_range(&c, 0, rows, 0);
    else rq_parallel_for(rows, grain, apply_range, &c);
}

void rq_rot_apply(const rq_rot_plan *pl, const float *x, float *y, int64_t rows) { apply(pl, x, y, rows, false); }
void rq_rot_apply_t(const rq_rot_plan *pl, const float *x, float *y, int64_t rows) { apply(pl, x, y, rows, true); }

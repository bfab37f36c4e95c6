#include "rotate/hadamard.h"

#include <stdio.h>
#include <string.h>

/* ---- small number theory ---------------------------------------------------------- */

bool rq_had_prime_power(int64_t q, int64_t *p_out, int *e_out) {
    if (q < 2) return false;
    int64_t p = q;
    for (int64_t d = 2; d * d <= q; d++)
        if (q % d == 0) {
            p = d;
            break;
        }
    int e = 0;
    int64_t r = q;
    while (r % p == 0) {
        r /= p;
        e++;
    }
    if (r != 1) return false;
    if (p_out) *p_out = p;
    if (e_out) *e_out = e;
    return true;
}

static bool is_pow2(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

/* ---- GF(p^e) ------------------------------------------------------------------------
 * An element is an integer in [0, q) whose base-p digits are the coefficients of a
 * polynomial of degree < e; products are reduced modulo a monic irreducible f. */

#define GF_MAX_E 32

typedef struct gf {
    int64_t p, q;
    int e;
    int64_t f[GF_MAX_E]; /* f(x) = x^e + f[e-1] x^(e-1) + ... + f[0] */
} gf;

static void gf_digits(const gf *g, int64_t a, int64_t *d) {
    for (int i = 0; i < g->e; i++) {
        d[i] = a % g->p;
        a /= g->p;
    }
}

static int64_t gf_compose(const gf *g, const int64_t *d) {
    int64_t a = 0;
    for (int i = g->e - 1; i >= 0; i--) a = a * g->p + d[i];
    return a;
}

static int64_t gf_mul(const gf *g, int64_t a, int64_t b) {
    if (g->e == 1) return a * b % g->p;
    int e = g->e;
    int64_t p = g->p, da[GF_MAX_E], db[GF_MAX_E], pr[2 * GF_MAX_E];
    gf_digits(g, a, da);
    gf_digits(g, b, db);
    memset(pr, 0, sizeof pr);
    for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++) pr[i + j] = (pr[i + j] + da[i] * db[j]) % p;
    for (int d = 2 * e - 2; d >= e; d--) {
        int64_t c = pr[d];
        if (!c) continue;
        /* x^d = x^(d-e) · x^e and x^e ≡ -(f[e-1] x^(e-1) + ... + f[0]) */
        for (int i = 0; i < e; i++) pr[d - e + i] = ((pr[d - e + i] - c * g->f[i]) % p + p) % p;
        pr[d] = 0;
    }
    return gf_compose(g, pr);
}

static int64_t gf_pow(const gf *g, int64_t a, int64_t k) {
    int64_t r = 1;
    while (k) {
        if (k & 1) r = gf_mul(g, r, a);
        a = gf_mul(g, a, a);
        k >>= 1;
    }
    return r;
}

/* Set up GF(q) for a prime power q: search the monic polynomials of degree e for one
 * making every nonzero element invertible (a^(q-1) = 1 for all a != 0 holds exactly
 * when the quotient ring has no zero divisors, i.e. is a field). */
static bool gf_init(gf *g, int64_t q) {
    int64_t p;
    int e;
    if (!rq_had_prime_power(q, &p, &e) || e > GF_MAX_E) return false;
    memset(g, 0, sizeof *g);
    g->p = p;
    g->q = q;
    g->e = e;
    if (e == 1) return true;
    for (int64_t c = 1; c < q; c++) {
        gf_digits(g, c, g->f);
        if (g->f[0] == 0) continue; /* divisible by x */
        bool field = true;
        for (int64_t a = 1; a < q && field; a++) field = gf_pow(g, a, q - 1) == 1;
        if (field) return true;
    }
    return false; /* unreachable: irreducible polynomials of every degree exist */
}

/* chi[x] for x in GF(q): 0 at 0, +1 on nonzero squares, -1 otherwise. chi[q]. */
static void gf_quadratic_character(const gf *g, int8_t *chi) {
    memset(chi, -1, (size_t)g->q);
    chi[0] = 0;
    for (int64_t a = 1; a < g->q; a++) chi[gf_mul(g, a, a)] = 1;
}

/* The Jacobsthal matrix J[q, q], J[i][j] = chi(a_i - a_j), written through put(ctx, i, j, v). */
typedef struct jacobsthal_table {
    const gf *g;
    const int8_t *chi; /* [q] */
    int8_t *rchi2;     /* [2q] rchi2[t] = chi(-t mod q) (e == 1: rows are rotations of it) */
    int64_t *digits;   /* [q, e] base-p digits of every element (e > 1), else NULL */
} jacobsthal_table;

/* Row i of the Jacobsthal matrix: out[q]. */
static void jacobsthal_row(const jacobsthal_table *t, int64_t i, int8_t *out) {
    const gf *g = t->g;
    int64_t q = g->q;
    if (g->e == 1) { /* chi(i - j) = chi(-(j - i)) = rchi2[j - i + q] */
        memcpy(out, t->rchi2 + q - i, (size_t)q);
        return;
    }
    int e = g->e;
    int64_t p = g->p;
    const int64_t *di = t->digits + i * e;
    for (int64_t j = 0; j < q; j++) {
        const int64_t *dj = t->digits + j * e;
        int64_t idx = 0;
        for (int k = e - 1; k >= 0; k--) {
            int64_t d = di[k] - dj[k];
            idx = idx * p + (d < 0 ? d + p : d);
        }
        out[j] = t->chi[idx];
    }
}

/* Set up the table (chi and digits); returns false on allocation failure. */
static bool jacobsthal_init(jacobsthal_table *t, const gf *g) {
    t->g = g;
    int8_t *chi = rq_alloc(g->q);
    t->chi = chi;
    t->digits = NULL;
    t->rchi2 = NULL;
    if (!chi) return false;
    gf_quadratic_character(g, chi);
    if (g->e == 1) {
        t->rchi2 = rq_alloc(2 * g->q);
        if (!t->rchi2) {
            rq_free(chi);
            return false;
        }
        for (int64_t k = 0; k < 2 * g->q; k++) t->rchi2[k] = chi[(g->q - k % g->q) % g->q];
    } else {
        t->digits = rq_alloc(g->q * g->e * (int64_t)sizeof *t->digits);
        if (!t->digits) {
            rq_free(chi);
            return false;
        }
        for (int64_t a = 0; a < g->q; a++) gf_digits(g, a, t->digits + a * g->e);
    }
    return true;
}

static void jacobsthal_free(jacobsthal_table *t) {
    rq_free((void *)t->chi);
    rq_free(t->rchi2);
    rq_free(t->digits);
}

/* ---- single constructions ------------------------------------------------------------ */

static int8_t sylvester_entry(int64_t i, int64_t j) { return (__builtin_popcountll((uint64_t)(i & j)) & 1) ? -1 : 1; }

rq_status rq_had_sylvester(int64_t n, int8_t **out) {
    *out = NULL;
    if (!is_pow2(n)) return rq_errorf(RQ_EINVAL, "Sylvester Hadamard order %lld is not a power of two", (long long)n);
    int64_t nn;
    if (!rq_mul_ok(n, n, &nn)) return rq_errorf(RQ_EINVAL, "Hadamard order %lld too large", (long long)n);
    int8_t *h = rq_alloc(nn);
    if (!h) return RQ_ENOMEM;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) h[i * n + j] = sylvester_entry(i, j);
    *out = h;
    return RQ_OK;
}

static rq_status paley_check(int64_t q, int want_mod4, const char *name, gf *g) {
    if (q < 2 || q > RQ_HAD_MAX_BASE || q % 4 != want_mod4 || !rq_had_prime_power(q, NULL, NULL))
        return rq_errorf(RQ_EINVAL, "%s needs q ≡ %d (mod 4) a prime power <= %d, got q=%lld", name, want_mod4,
                         RQ_HAD_MAX_BASE, (long long)q);
    if (!gf_init(g, q)) return rq_errorf(RQ_EUNSUPPORTED, "%s: cannot set up GF(%lld)", name, (long long)q);
    return RQ_OK;
}

rq_status rq_had_paley1(int64_t q, int8_t **out) {
    *out = NULL;
    gf g;
    RQ_TRY(paley_check(q, 3, "Paley I", &g));
    int64_t n = q + 1;
    jacobsthal_table t;
    int8_t *h = rq_alloc(n * n);
    if (!h || !jacobsthal_init(&t, &g)) {
        rq_free(h);
        return RQ_ENOMEM;
    }
    /* H = I + C, C = [[0, 1ᵀ], [-1, J]] with J the (skew) Jacobsthal matrix */
    for (int64_t j = 0; j < n; j++) h[j] = 1;
    for (int64_t i = 1; i < n; i++) {
        int8_t *row = h + i * n;
        row[0] = -1;
        jacobsthal_row(&t, i - 1, row + 1);
        row[i] = 1; /* 1 + chi(0) */
    }
    jacobsthal_free(&t);
    *out = h;
    return RQ_OK;
}

rq_status rq_had_paley2(int64_t q, int8_t **out) {
    *out = NULL;
    gf g;
    RQ_TRY(paley_check(q, 1, "Paley II", &g));
    int64_t c = q + 1, n = 2 * c;
    jacobsthal_table t;
    int8_t *h = rq_alloc(n * n);
    int8_t *crow = rq_alloc(c);
    if (!h || !crow || !jacobsthal_init(&t, &g)) {
        rq_free(h);
        rq_free(crow);
        return RQ_ENOMEM;
    }
    /* Conference matrix C = [[0, 1ᵀ], [1, J]] (symmetric); each 0 becomes
     * [[1, -1], [-1, -1]] and each ±1 becomes ±[[1, 1], [1, -1]]. */
    for (int64_t i = 0; i < c; i++) {
        if (i == 0) {
            crow[0] = 0;
            for (int64_t j = 1; j < c; j++) crow[j] = 1;
        } else {
            crow[0] = 1;
            jacobsthal_row(&t, i - 1, crow + 1); /* crow[i] = chi(0) = 0 */
        }
        int8_t *r0 = h + (2 * i) * n, *r1 = r0 + n;
        for (int64_t j = 0; j < c; j++) {
            int8_t v = crow[j];
            if (v == 0) {
                r0[2 * j] = 1, r0[2 * j + 1] = -1, r1[2 * j] = -1, r1[2 * j + 1] = -1;
            } else {
                r0[2 * j] = v, r0[2 * j + 1] = v, r1[2 * j] = v, r1[2 * j + 1] = (int8_t)-v;
            }
        }
    }
    jacobsthal_free(&t);
    rq_free(crow);
    *out = h;
    return RQ_OK;
}

void rq_had_kron(const int8_t *a, int64_t na, const int8_t *b, int64_t nb, int8_t *out) {
    int64_t n = na * nb;
    for (int64_t i = 0; i < na; i++)
        for (int64_t k = 0; k < nb; k++) {
            int8_t *row = out + (i * nb + k) * n;
            for (int64_t j = 0; j < na; j++) {
                int8_t s = a[i * na + j];
                for (int64_t l = 0; l < nb; l++) row[j * nb + l] = (int8_t)(s * b[k * nb + l]);
            }
        }
}

/* ---- choosing a construction ---------------------------------------------------------
 * A base of order m (a multiple of 4, not a power of two): Paley I, Paley II, or the
 * Kronecker product of two such bases. With build == false only reports whether one
 * exists; otherwise *out gets the matrix (caller frees) and desc its description. */

static bool base_make(int64_t m, bool build, int8_t **out, char *desc, size_t dsz) {
    if (m < 4 || m % 4 != 0 || m > RQ_HAD_MAX_BASE || is_pow2(m)) return false;
    int64_t q = m - 1;
    if (q % 4 == 3 && rq_had_prime_power(q, NULL, NULL)) {
        if (build) {
            if (rq_had_paley1(q, out) != RQ_OK) return false;
            snprintf(desc, dsz, "paley1(q=%lld)", (long long)q);
        }
        return true;
    }
    q = m / 2 - 1;
    if (q % 4 == 1 && rq_had_prime_power(q, NULL, NULL)) {
        if (build) {
            if (rq_had_paley2(q, out) != RQ_OK) return false;
            snprintf(desc, dsz, "paley2(q=%lld)", (long long)q);
        }
        return true;
    }
    for (int64_t a = 12; a * a <= m; a += 4) {
        if (m % a != 0) continue;
        int64_t b = m / a;
        if (!base_make(a, false, NULL, NULL, 0) || !base_make(b, false, NULL, NULL, 0)) continue;
        if (build) {
            int8_t *ha = NULL, *hb = NULL;
            char da[64], db[64];
            base_make(a, true, &ha, da, sizeof da);
            base_make(b, true, &hb, db, sizeof db);
            int8_t *h = ha && hb ? rq_alloc(m * m) : NULL;
            if (h) rq_had_kron(ha, a, hb, b, h);
            rq_free(ha);
            rq_free(hb);
            if (!h) return false;
            *out = h;
            snprintf(desc, dsz, "%.40s x %.40s", da, db);
        }
        return true;
    }
    return false;
}

/* Smallest base order for n (1 for powers of two), or 0 if none. */
static int64_t choose_base(int64_t n) {
    if (n < 1) return 0;
    int k = __builtin_ctzll((uint64_t)n);
    int64_t o = n >> k;
    if (o == 1) return 1;
    for (int j = 2; j <= k; j++) {
        int64_t m = o << j;
        if (m > RQ_HAD_MAX_BASE) break;
        if (base_make(m, false, NULL, NULL, 0)) return m;
    }
    return 0;
}

bool rq_had_supported(int64_t n) { return choose_base(n) > 0; }

rq_status rq_had_plan(int64_t n, rq_had *h) {
    memset(h, 0, sizeof *h);
    if (n < 1) return rq_errorf(RQ_EINVAL, "Hadamard order must be positive, got %lld", (long long)n);
    int64_t m = choose_base(n);
    if (m == 0) return rq_errorf(RQ_EUNSUPPORTED, "no Hadamard matrix construction of order %lld", (long long)n);
    h->n = n;
    h->m = m;
    h->p = n / m;
    if (m == 1) {
        snprintf(h->desc, sizeof h->desc, "sylvester(%lld)", (long long)n);
        return RQ_OK;
    }
    char bd[96];
    if (!base_make(m, true, &h->base, bd, sizeof bd)) {
        memset(h, 0, sizeof *h);
        return rq_errorf(RQ_ENOMEM, "cannot build the order-%lld base of Hadamard order %lld", (long long)m,
                         (long long)n);
    }
    if (h->p > 1) snprintf(h->desc, sizeof h->desc, "%.90s x sylvester(%lld)", bd, (long long)h->p);
    else snprintf(h->desc, sizeof h->desc, "%.90s", bd);
    return RQ_OK;
}

void rq_had_free(rq_had *h) {
    if (!h) return;
    rq_free(h->base);
    memset(h, 0, sizeof *h);
}

void rq_had_row(const rq_had *h, int64_t i, int8_t *row) {
    RQ_ASSERT(i >= 0 && i < h->n);
    int64_t p = h->p, m = h->m, a = i / p, b = i % p;
    if (p == 1 && m > 1) { /* the base row itself */
        memcpy(row, h->base + a * m, (size_t)m);
        return;
    }
    if (p < 16 && m > 1) { /* short runs: entry by entry */
        int8_t srow[16];
        for (int64_t b2 = 0; b2 < p; b2++) srow[b2] = sylvester_entry(b, b2);
        const int8_t *br = h->base + a * m;
        for (int64_t a2 = 0; a2 < m; a2++)
            for (int64_t b2 = 0; b2 < p; b2++) row[a2 * p + b2] = (int8_t)(br[a2] * srow[b2]);
        return;
    }
    /* Sylvester row b and its negation, then every run of p is a copy of one of them */
    int8_t *pos = row, *neg = rq_xalloc(p);
    for (int64_t b2 = 0; b2 < p; b2++) pos[b2] = sylvester_entry(b, b2);
    for (int64_t b2 = 0; b2 < p; b2++) neg[b2] = (int8_t)-pos[b2];
    if (m > 1) {
        const int8_t *br = h->base + a * m;
        /* fill runs 1..m-1 first, run 0 (which holds pos) last */
        for (int64_t a2 = 1; a2 < m; a2++) memcpy(row + a2 * p, br[a2] > 0 ? pos : neg, (size_t)p);
        if (br[0] < 0) memcpy(row, neg, (size_t)p);
    }
    rq_free(neg);
}

void rq_had_dense(const rq_had *h, int8_t *out) {
    for (int64_t i = 0; i < h->n; i++) rq_had_row(h, i, out + i * h->n);
}

rq_status rq_had_build(int64_t n, int8_t **out) {
    *out = NULL;
    rq_had h;
    RQ_TRY(rq_had_plan(n, &h));
    int64_t nn;
    if (!rq_mul_ok(n, n, &nn)) {
        rq_had_free(&h);
        return rq_errorf(RQ_EINVAL, "Hadamard order %lld too large for a dense matrix", (long long)n);
    }
    int8_t *d = rq_alloc(nn);
    if (!d) {
        rq_had_free(&h);
        return RQ_ENOMEM;
    }
    rq_had_dense(&h, d);
    rq_had_free(&h);
    *out = d;
    return RQ_OK;
}

/* ---- sequency order ------------------------------------------------------------------ */

int64_t rq_had_sign_changes(const int8_t *row, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i + 1 < n; i++) c += row[i] != row[i + 1];
    return c;
}

/* Stable counting sort of indices 0..n-1 by key[i] in [0, n). */
static void stable_sort_by_count(const int64_t *key, int64_t n, int64_t *perm) {
    int64_t *start = rq_xcalloc((n + 1) * (int64_t)sizeof *start);
    for (int64_t i = 0; i < n; i++) start[key[i] + 1]++;
    for (int64_t c = 0; c < n; c++) start[c + 1] += start[c];
    for (int64_t i = 0; i < n; i++) perm[start[key[i]]++] = i;
    rq_free(start);
}

void rq_had_sequency_perm(const int8_t *h, int64_t n, int64_t *perm) {
    int64_t *cnt = rq_xalloc(n * (int64_t)sizeof *cnt);
    for (int64_t i = 0; i < n; i++) cnt[i] = rq_had_sign_changes(h + i * n, n);
    stable_sort_by_count(cnt, n, perm);
    rq_free(cnt);
}

uint64_t rq_had_bitrev(uint64_t x, int k) {
    uint64_t r = 0;
    for (int i = 0; i < k; i++) r |= ((x >> i) & 1) << (k - 1 - i);
    return r;
}

void rq_had_walsh_perm_pow2(int64_t n, int64_t *perm) {
    RQ_ASSERT(is_pow2(n));
    int k = __builtin_ctzll((uint64_t)n);
    for (int64_t s = 0; s < n; s++) perm[s] = (int64_t)rq_had_bitrev((uint64_t)(s ^ (s >> 1)), k);
}

void rq_had_walsh_perm(const rq_had *h, int64_t *perm) {
    if (h->m == 1) {
        rq_had_walsh_perm_pow2(h->n, perm);
        return;
    }
    int64_t n = h->n;
    int8_t *row = rq_xalloc(n);
    int64_t *cnt = rq_xalloc(n * (int64_t)sizeof *cnt);
    for (int64_t i = 0; i < n; i++) {
        rq_had_row(h, i, row);
        cnt[i] = rq_had_sign_changes(row, n);
    }
    stable_sort_by_count(cnt, n, perm);
    rq_free(cnt);
    rq_free(row);
}

/* Hadamard matrices (entries ±1, H Hᵀ = n·I) and their sequency (Walsh) order.
 * METHODS.md "Hadamard and Walsh matrices".
 *
 * Constructions:
 *   Sylvester   order 2^k:  H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]]
 *   Paley I     order q+1,    q ≡ 3 (mod 4) a prime power
 *   Paley II    order 2(q+1), q ≡ 1 (mod 4) a prime power
 *   Kronecker   order a·b from orders a and b
 * Prime powers q = p^e are handled with GF(p^e) arithmetic (an irreducible polynomial
 * found by search), so e.g. Paley II with q = 25 gives order 52.
 *
 * A matrix of order n is described by an rq_had: n = m·p with p = 2^k and
 *     H_n = B ⊗ S_p      (H[a·p + b][a'·p + b'] = B[a][a'] · S_p[b][b'])
 * where S_p is Sylvester and B a dense m×m "base" block (m = 1: none). The fast transform
 * (rotate/rotation.h) applies S_p with an FWHT over contiguous runs of p and B as a small
 * dense mix. rq_had_plan picks the smallest base m = (odd part of n)·2^j for which Paley I,
 * Paley II or a Kronecker product of those gives a matrix; orders it cannot reach return
 * RQ_EUNSUPPORTED "no Hadamard matrix construction of order N" (e.g. 92, 116, 156: they
 * need Williamson-type constructions that are not implemented). Every multiple of 4 up to
 * 88 is reached; of the 1026 orders in 1..4096 where a Hadamard matrix can exist (1, 2 and
 * the multiples of 4), 694 are (tests/test_rotate.c verifies each one).
 *
 * Matrices are row-major [n, n] int8_t with entries +1 / -1. */
#ifndef RQ_ROTATE_HADAMARD_H
#define RQ_ROTATE_HADAMARD_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

/* Largest dense base block rq_had_plan builds (its m×m int8 block plus the float copies
 * the fast transform keeps); larger bases are reported as unsupported. */
#define RQ_HAD_MAX_BASE 8192

typedef struct rq_had {
    int64_t n;      /* order */
    int64_t m;      /* base order (1: pure Sylvester) */
    int64_t p;      /* power-of-two Sylvester part; n = m·p */
    int8_t *base;   /* [m, m] ±1, NULL when m == 1; owned, released by rq_had_free */
    char desc[128]; /* e.g. "paley2(q=17) x sylvester(16)" */
} rq_had;

/* Find a construction of order n (n >= 1) and build its base block. On error *h is left
 * empty (safe to pass to rq_had_free). */
rq_status rq_had_plan(int64_t n, rq_had *h);
void rq_had_free(rq_had *h);
/* Whether rq_had_plan(n) succeeds (cheap: builds nothing). */
bool rq_had_supported(int64_t n);

/* Row i (0 <= i < n) of the described matrix: row[n]. */
void rq_had_row(const rq_had *h, int64_t i, int8_t *row);
/* The whole matrix: out[n, n]. */
void rq_had_dense(const rq_had *h, int8_t *out);
/* Plan and build the dense matrix of order n; *out [n, n] is owned by the caller
 * (release with rq_free). */
rq_status rq_had_build(int64_t n, int8_t **out);

/* Single constructions, each returning a new [order, order] matrix owned by the caller
 * (rq_free). Sylvester: n a power of two. Paley I: q ≡ 3 mod 4 prime power, order q+1.
 * Paley II: q ≡ 1 mod 4 prime power, order 2(q+1). Bad parameters give RQ_EINVAL. */
rq_status rq_had_sylvester(int64_t n, int8_t **out);
rq_status rq_had_paley1(int64_t q, int8_t **out);
rq_status rq_had_paley2(int64_t q, int8_t **out);
/* Kronecker product: out[na·nb, na·nb] = a[na, na] ⊗ b[nb, nb] (caller allocates out). */
void rq_had_kron(const int8_t *a, int64_t na, const int8_t *b, int64_t nb, int8_t *out);

/* q = p^e with p prime and e >= 1: sets *p, *e and returns true. */
bool rq_had_prime_power(int64_t q, int64_t *p, int *e);

/* Number of sign changes along a ±1 row of length n. */
int64_t rq_had_sign_changes(const int8_t *row, int64_t n);
/* Sequency order of a dense ±1 matrix h[n, n]: perm[n] such that row s of the Walsh
 * matrix is row perm[s] of h; rows are sorted by their number of sign changes, ties kept
 * in their original order (stable). */
void rq_had_sequency_perm(const int8_t *h, int64_t n, int64_t *perm);
/* The same for a planned matrix without forming it (row by row, O(n²) time, O(n) memory);
 * for m == 1 it uses the closed form below. */
void rq_had_walsh_perm(const rq_had *h, int64_t *perm);
/* Closed form for Sylvester order n = 2^k: perm[s] = bitrev_k(s XOR (s >> 1)); Walsh row s
 * then has exactly s sign changes. */
void rq_had_walsh_perm_pow2(int64_t n, int64_t *perm);
/* Reverse the low k bits of x. */
uint64_t rq_had_bitrev(uint64_t x, int k);

#endif

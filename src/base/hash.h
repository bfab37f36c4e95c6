/* A 64-bit non-cryptographic hash of bytes (multiply-xor over 8-byte words, finished by
 * splitmix64's mixer): for checking that the ranks of an MPI job hold the same model file,
 * token ids and options (base/mpi.h). Not for adversaries. */
#ifndef RQ_BASE_HASH_H
#define RQ_BASE_HASH_H

#include <stdint.h>

/* Hash of p[0..n) continuing from h (start with 0): rq_hash64(b, nb, rq_hash64(a, na, 0))
 * hashes a then b. */
uint64_t rq_hash64(const void *p, int64_t n, uint64_t h);

#endif

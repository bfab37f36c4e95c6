/* The optional MPI layer: data-parallel scale-out over processes (Open MPI), thin on
 * purpose. Built with -DRQ_MPI=ON it talks to MPI; otherwise (and whenever the process was
 * not started by mpirun/mpiexec) it is a stub of one rank: rank 0, size 1, every reduction
 * and broadcast a no-op, so callers need no #ifdefs.
 *
 * Work that is a sum over tokens (GPTQ Hessians, the NLL of perplexity windows, the
 * log-likelihoods of task items) is split by item with rq_mpi_share (contiguous shares in
 * index order), each rank fills its share, and the results are put together with
 * rq_mpi_gather_shares (every rank then holds all items, in index order, and sums them in
 * that order: the result does not depend on the rank count) or reduced with
 * rq_mpi_sum_exact (float64 pairs whose sum is exact, so the order of the reduction does
 * not matter either).
 *
 * Failure: MPI's default error handler stays in force (a broken link or a rank that dies
 * ends the whole job; mpirun names the rank). A rank that fails with an rq_status ends the
 * job with rq_mpi_abort after printing its error with its rank (tools/cli_common.c), so the
 * other ranks never wait in a collective for it.
 *
 * Every call here is collective (all ranks call it, in the same order) except rank, size,
 * local size, share and abort. Calls are made from the main thread only. */
#ifndef RQ_BASE_MPI_H
#define RQ_BASE_MPI_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

/* true when the library was built with MPI (-DRQ_MPI=ON). */
bool rq_mpi_compiled(void);
/* Start MPI when the process was launched by an MPI launcher (its environment names a
 * world size), else stay a single rank. Call once, first thing in main. RQ_EIO if MPI
 * fails to start. */
rq_status rq_mpi_init(int *argc, char ***argv);
/* Leave MPI (a no-op without it). Call once, at the end of a successful run. */
void rq_mpi_finalize(void);
/* End every rank of the job with exit code `code` (exit() without MPI). */
void rq_mpi_abort(int code) __attribute__((noreturn));

int rq_mpi_rank(void);
int rq_mpi_size(void);
/* Ranks on this machine (1 without MPI): the default thread count divides the cores by it. */
int rq_mpi_local_size(void);

/* This rank's share [*begin, *end) of n items: contiguous, in rank order, sizes differing
 * by at most one (empty when n < size). */
void rq_mpi_share(int64_t n, int64_t *begin, int64_t *end);

/* buf holds n items of item_bytes each, this rank's share (rq_mpi_share) filled in; on
 * return every rank holds every item. Errors: RQ_EINVAL on a size overflow. */
rq_status rq_mpi_gather_shares(void *buf, int64_t n, int64_t item_bytes);

/* The general form: this rank holds items [begin, end) of buf (item_bytes each; the
 * ranges of the ranks disjoint); on return every rank holds every rank's items. */
rq_status rq_mpi_gather_range(void *buf, int64_t item_bytes, int64_t begin, int64_t end);

/* In-place sums over the ranks (every rank gets the sum). The float sums are MPI's:
 * their rounding depends on the rank count and MPI's reduction order. Integer sums exact. */
rq_status rq_mpi_sum_f64(double *x, int64_t n);
rq_status rq_mpi_sum_f32(float *x, int64_t n);
rq_status rq_mpi_sum_i64(int64_t *x, int64_t n);
/* Exact sums of float64 pairs x [n, 2] (hi, lo) = the value hi + lo, added with TwoSum
 * (base/exact_sum.h): when each rank's pairs hold their sums exactly (rq_exact_add), so
 * does the result, whatever the rank count or reduction order. */
rq_status rq_mpi_sum_exact(double *x, int64_t n);
/* Rank root's bytes to every rank. */
rq_status rq_mpi_bcast(void *buf, int64_t bytes, int root);
/* The maximum over the ranks of v (each rank gets it). */
int64_t rq_mpi_max_i64(int64_t v);

/* Check that every rank holds the same `what` (a 64-bit hash of it, rq_hash64): RQ_EINVAL
 * on every rank, naming the first rank whose hash differs from rank 0's, otherwise RQ_OK.
 * For a model file read by each rank, token ids, options. */
rq_status rq_mpi_check_same(uint64_t hash, const char *what);

#endif

/* The MPI layer (base/mpi.h): Open MPI when built with RQ_HAVE_MPI (-DRQ_MPI=ON) and
 * launched by mpirun, else one rank. */
#include "base/mpi.h"

#include "base/exact_sum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RQ_HAVE_MPI
#include <mpi.h>
#endif

/* Largest count passed to one MPI call (counts are int): big buffers go in pieces. */
#define MPI_PIECE (INT64_C(1) << 28)

static struct {
    bool active; /* MPI_Init was called and MPI_Finalize not yet */
    int rank, size, local_size;
} g = {false, 0, 1, 1};

bool rq_mpi_compiled(void) {
#ifdef RQ_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int rq_mpi_rank(void) { return g.rank; }
int rq_mpi_size(void) { return g.size; }
int rq_mpi_local_size(void) { return g.local_size; }

void rq_mpi_share(int64_t n, int64_t *begin, int64_t *end) {
    /* n·rank fits in 128 bits */
    *begin = (int64_t)((__int128)n * g.rank / g.size);
    *end = (int64_t)((__int128)n * (g.rank + 1) / g.size);
}

#ifdef RQ_HAVE_MPI

/* launched by an MPI launcher: Open MPI, PMIx, Hydra/Slurm PMI */
static bool launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

rq_status rq_mpi_init(int *argc, char ***argv) {
    if (g.active || !launched()) return RQ_OK;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return rq_errorf(RQ_EIO, "MPI_Init failed");
    g.active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g.local_size);
        MPI_Comm_free(&local);
    }
    return RQ_OK;
}

void rq_mpi_finalize(void) {
    if (!g.active) return;
    MPI_Finalize();
    g.active = false;
}

void rq_mpi_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (g.active && g.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    if (g.active) MPI_Finalize();
    exit(code);
}

static rq_status sum_typed(void *x, int64_t n, int64_t elem, MPI_Datatype t, MPI_Op op) {
    if (g.size == 1 || n == 0) return RQ_OK;
    if (n < 0) return rq_errorf(RQ_EINVAL, "MPI reduction of %lld items", (long long)n);
    for (int64_t i = 0; i < n; i += MPI_PIECE) {
        int64_t k = n - i < MPI_PIECE ? n - i : MPI_PIECE;
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, (int)k, t, op, MPI_COMM_WORLD);
    }
    return RQ_OK;
}

rq_status rq_mpi_sum_f64(double *x, int64_t n) { return sum_typed(x, n, 8, MPI_DOUBLE, MPI_SUM); }
rq_status rq_mpi_sum_f32(float *x, int64_t n) { return sum_typed(x, n, 4, MPI_FLOAT, MPI_SUM); }
rq_status rq_mpi_sum_i64(int64_t *x, int64_t n) { return sum_typed(x, n, 8, MPI_INT64_T, MPI_SUM); }

/* the user reduction of rq_mpi_sum_exact: inout[i] += in[i] over (hi, lo) pairs */
static void exact_op(void *in, void *inout, int *len, MPI_Datatype *t) {
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++) rq_exact_add_pair(&b[2 * i], &b[2 * i + 1], a[2 * i], a[2 * i + 1]);
}

rq_status rq_mpi_sum_exact(double *x, int64_t n) {
    if (g.size == 1 || n == 0) return RQ_OK;
    MPI_Datatype pair;
    MPI_Op op;
    MPI_Type_contiguous(2, MPI_DOUBLE, &pair);
    MPI_Type_commit(&pair);
    MPI_Op_create(exact_op, 1, &op);
    rq_status s = sum_typed(x, n, 16, pair, op);
    MPI_Op_free(&op);
    MPI_Type_free(&pair);
    return s;
}

rq_status rq_mpi_bcast(void *buf, int64_t bytes, int root) {
    if (g.size == 1 || bytes == 0) return RQ_OK;
    if (bytes < 0 || root < 0 || root >= g.size)
        return rq_errorf(RQ_EINVAL, "MPI broadcast of %lld bytes from rank %d", (long long)bytes, root);
    for (int64_t i = 0; i < bytes; i += MPI_PIECE) {
        int64_t k = bytes - i < MPI_PIECE ? bytes - i : MPI_PIECE;
        MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    return RQ_OK;
}

int64_t rq_mpi_max_i64(int64_t v) {
    if (g.size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

rq_status rq_mpi_check_same(uint64_t hash, const char *what) {
    if (g.size == 1) return RQ_OK;
    uint64_t *all = calloc((size_t)g.size, sizeof *all);
    if (!all) return RQ_ENOMEM;
    MPI_Allgather(&hash, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    rq_status s = RQ_OK;
    for (int r = 1; r < g.size && s == RQ_OK; r++)
        if (all[r] != all[0]) s = rq_errorf(RQ_EINVAL, "%s on rank %d differs from rank 0's", what, r);
    free(all);
    return s;
}

#else /* one rank */

rq_status rq_mpi_init(int *argc, char ***argv) { return RQ_OK; }
void rq_mpi_finalize(void) {}
void rq_mpi_abort(int code) {
    fflush(stdout);
    exit(code);
}
rq_status rq_mpi_sum_f64(double *x, int64_t n) { return RQ_OK; }
rq_status rq_mpi_sum_f32(float *x, int64_t n) { return RQ_OK; }
rq_status rq_mpi_sum_i64(int64_t *x, int64_t n) { return RQ_OK; }
rq_status rq_mpi_sum_exact(double *x, int64_t n) { return RQ_OK; }
rq_status rq_mpi_bcast(void *buf, int64_t bytes, int root) { return RQ_OK; }
int64_t rq_mpi_max_i64(int64_t v) { return v; }
rq_status rq_mpi_check_same(uint64_t hash, const char *what) { return RQ_OK; }

#endif

rq_status rq_mpi_gather_range(void *buf, int64_t item_bytes, int64_t begin, int64_t end) {
    if (g.size == 1) return RQ_OK;
    int64_t tmp;
    if (item_bytes < 0 || begin < 0 || end < begin || !rq_mul_ok(end, item_bytes, &tmp))
        return rq_errorf(RQ_EINVAL, "MPI gather of items [%lld, %lld) of %lld bytes", (long long)begin, (long long)end,
                         (long long)item_bytes);
    /* each rank's range, then its items, broadcast from it, in rank order */
    for (int r = 0; r < g.size; r++) {
        int64_t be[2] = {begin, end};
        RQ_TRY(rq_mpi_bcast(be, sizeof be, r));
        RQ_TRY(rq_mpi_bcast((char *)buf + be[0] * item_bytes, (be[1] - be[0]) * item_bytes, r));
    }
    return RQ_OK;
}

rq_status rq_mpi_gather_shares(void *buf, int64_t n, int64_t item_bytes) {
    int64_t b, e;
    rq_mpi_share(n, &b, &e);
    return rq_mpi_gather_range(buf, item_bytes, b, e);
}

#include "base/pool.h"
#include "base/status.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <immintrin.h>

#define RQ_MAX_THREADS 256
/* Spin this many pause iterations before sleeping (workers waiting for a job, the caller
 * waiting for workers): short, so that an oversubscribed machine (ctest -j, other
 * processes) does not burn the time slices the threads we wait for need. */
#define RQ_SPIN_ITERS 2000

typedef struct {
    rq_range_fn fn;
    void *ctx;
    int64_t n, chunk;
    atomic_llong next;
} job_t;

static struct {
    int nthreads; /* including the caller */
    int started;  /* workers running */
    pthread_t tid[RQ_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint generation;
    atomic_int pending; /* workers that have not finished the current job */
    pthread_cond_t done_cv; /* signalled when pending reaches 0 */
    atomic_int caller_sleeping;
    atomic_int stop;
    job_t job;
    unsigned start_generation;
} g = {.nthreads = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
       .done_cv = PTHREAD_COND_INITIALIZER};

static _Thread_local int tl_in_region;

static void run_chunks(job_t *job, int thread) {
    for (;;) {
        int64_t b = atomic_fetch_add(&job->next, job->chunk);
        if (b >= job->n) break;
        int64_t e = b + job->chunk;
        if (e > job->n) e = job->n;
        job->fn(job->ctx, b, e, thread);
    }
}

static void *worker(void *arg) {
    int thread = (int)(intptr_t)arg;
    unsigned seen = g.start_generation; /* generation when the pool started */
    tl_in_region = 1;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load(&g.generation)) == seen && !atomic_load(&g.stop)) {
            if (++spins < RQ_SPIN_ITERS) {
                _mm_pause();
                continue;
            }
            pthread_mutex_lock(&g.mu);
            while ((gen = atomic_load(&g.generation)) == seen && !atomic_load(&g.stop))
                pthread_cond_wait(&g.cv, &g.mu);
            pthread_mutex_unlock(&g.mu);
            break;
        }
        if (atomic_load(&g.stop)) return NULL;
        seen = gen;
        run_chunks(&g.job, thread);
        if (atomic_fetch_sub(&g.pending, 1) == 1 && atomic_load(&g.caller_sleeping)) {
            pthread_mutex_lock(&g.mu);
            pthread_cond_signal(&g.done_cv);
            pthread_mutex_unlock(&g.mu);
        }
    }
}

static void stop_workers(void) {
    if (!g.started) return;
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.stop, 1);
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int i = 1; i < g.started; i++) pthread_join(g.tid[i], NULL);
    g.started = 0;
    atomic_store(&g.stop, 0);
}

void rq_threads_set(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > RQ_MAX_THREADS) n = RQ_MAX_THREADS;
    if (n == g.nthreads) return;
    stop_workers();
    g.nthreads = n;
}

int rq_threads_get(void) {
    if (g.nthreads == 0) rq_threads_set(0);
    return g.nthreads;
}

void rq_threads_shutdown(void) { stop_workers(); }

static void ensure_started(void) {
    if (g.started == g.nthreads) return;
    stop_workers();
    g.start_generation = atomic_load(&g.generation);
    for (int i = 1; i < g.nthreads; i++) {
        int rc = pthread_create(&g.tid[i], NULL, worker, (void *)(intptr_t)i);
        RQ_ASSERT(rc == 0);
    }
    g.started = g.nthreads;
}

void rq_parallel_for(int64_t n, int64_t grain, rq_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int nt = rq_threads_get();
    if (grain < 1) grain = 1;
    if (nt == 1 || n <= grain || tl_in_region) {
        fn(ctx, 0, n, 0);
        return;
    }
    ensure_started();
    /* about 4 chunks per thread for balance, never below grain */
    int64_t chunk = (n + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    if (chunk < grain) chunk = grain;
    g.job.fn = fn;
    g.job.ctx = ctx;
    g.job.n = n;
    g.job.chunk = chunk;
    atomic_store(&g.job.next, 0);
    atomic_store(&g.pending, nt - 1);
    pthread_mutex_lock(&g.mu);
    atomic_fetch_add(&g.generation, 1);
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    tl_in_region = 1;
    run_chunks(&g.job, 0);
    tl_in_region = 0;
    for (int spins = 0; atomic_load(&g.pending) > 0; spins++) {
        if (spins < RQ_SPIN_ITERS) {
            _mm_pause();
            continue;
        }
        pthread_mutex_lock(&g.mu);
        atomic_store(&g.caller_sleeping, 1);
        while (atomic_load(&g.pending) > 0) pthread_cond_wait(&g.done_cv, &g.mu);
        atomic_store(&g.caller_sleeping, 0);
        pthread_mutex_unlock(&g.mu);
    }
}

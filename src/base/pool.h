/* One thread pool for the whole process (DESIGN.md: "one pool, sized by -t").
 * rq_parallel_for splits [0, n) into chunks of at least `grain` items and calls
 * fn(ctx, begin, end, thread_index) on them from the pool's threads and the caller.
 * Calls must not nest (a fn must not call rq_parallel_for); nested calls run serially. */
#ifndef RQ_BASE_POOL_H
#define RQ_BASE_POOL_H

#include <stdint.h>

typedef void (*rq_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);

/* Set the number of threads (>= 1; 0 = the cores present). Call before first use or
 * between parallel regions. */
void rq_threads_set(int n);
int rq_threads_get(void);
/* Maximum value `thread` can take in a callback is rq_threads_get() - 1. */
void rq_parallel_for(int64_t n, int64_t grain, rq_range_fn fn, void *ctx);
void rq_threads_shutdown(void);

#endif

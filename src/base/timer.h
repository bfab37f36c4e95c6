/* Wall-clock time, peak memory, and progress lines with an ETA (on stderr). */
#ifndef RQ_BASE_TIMER_H
#define RQ_BASE_TIMER_H

#include <stdint.h>
#include <stdbool.h>

double rq_time_now(void); /* seconds, monotonic */
/* Peak resident set size of this process in bytes (0 if unknown). */
int64_t rq_peak_rss_bytes(void);
/* Current resident set size in bytes (0 if unknown). */
int64_t rq_rss_bytes(void);

typedef struct rq_progress {
    const char *label;
    int64_t total, done;
    double t_start, t_last_print;
    bool enabled; /* false: prints nothing */
    bool tty;     /* stderr is a terminal: redraw one line; else a line every 10 s */
} rq_progress;

void rq_progress_start(rq_progress *p, const char *label, int64_t total, bool enabled);
/* Advance by `n` items; prints "label: done/total (pct%), elapsed, ETA" at most ~2x/s,
 * plus `extra` text if not NULL. */
void rq_progress_step(rq_progress *p, int64_t n, const char *extra);
void rq_progress_finish(rq_progress *p);

#endif

#include "base/timer.h"

#include "base/mpi.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double rq_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t rq_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (int64_t)ru.ru_maxrss * 1024;
}

int64_t rq_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size = 0, res = 0;
    int n = fscanf(f, "%lld %lld", &size, &res);
    fclose(f);
    if (n != 2) return 0;
    return (int64_t)res * (int64_t)sysconf(_SC_PAGESIZE);
}

void rq_progress_start(rq_progress *p, const char *label, int64_t total, bool enabled) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->enabled = enabled && rq_mpi_rank() == 0; /* one rank reports an MPI job's progress */
    p->tty = isatty(2);
    p->t_start = p->t_last_print = rq_time_now();
}

static void fmt_secs(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    int h = (int)(s / 3600), m = (int)(s / 60) % 60;
    double sec = s - 3600.0 * h - 60.0 * m;
    if (h) snprintf(buf, n, "%dh%02dm%02.0fs", h, m, sec);
    else if (m) snprintf(buf, n, "%dm%04.1fs", m, sec);
    else snprintf(buf, n, "%.1fs", sec);
}

static void print_line(rq_progress *p, const char *extra, bool final) {
    double now = rq_time_now(), el = now - p->t_start;
    char e[32], eta[32];
    fmt_secs(e, sizeof e, el);
    double rem = p->done > 0 ? el * (double)(p->total - p->done) / (double)p->done : 0;
    fmt_secs(eta, sizeof eta, rem);
    fprintf(stderr, "%s%s: %lld/%lld (%.0f%%) elapsed %s%s%s%s%s", p->tty ? "\r" : "", p->label, (long long)p->done,
            (long long)p->total, p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, e,
            final ? "" : ", ETA ", final ? "" : eta, extra ? "  " : "", extra ? extra : "");
    fprintf(stderr, final || !p->tty ? "\n" : "\033[K");
    fflush(stderr);
    p->t_last_print = now;
}

void rq_progress_step(rq_progress *p, int64_t n, const char *extra) {
    p->done += n;
    if (!p->enabled) return;
    double now = rq_time_now();
    double every = p->tty ? 0.5 : 10.0;
    if (now - p->t_last_print >= every || (p->tty && p->done == p->total)) print_line(p, extra, false);
}

void rq_progress_finish(rq_progress *p) {
    if (p->enabled) print_line(p, NULL, true);
}

#include "cli.h"

#include "base/cpu.h"
#include "base/status.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rotquant: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_status(void) { return cli_fail("%s", rq_last_error()); }

bool cli_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s) {
        cli_fail("%s needs a value", opt);
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail("%s: '%s' is not an integer in [%lld, %lld]", opt, s, (long long)lo, (long long)hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) {
        cli_fail("%s needs a value", opt);
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

int cmd_version(int argc, char **argv) {
    printf("rotquant %s (kernels: %s)\n", RQ_VERSION, rq_cpu_level_name(rq_cpu_level_get()));
    return 0;
}

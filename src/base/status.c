#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char rq_err_msg[1024];

rq_status rq_errorf(rq_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq_err_msg, sizeof rq_err_msg, fmt, ap);
    va_end(ap);
    return code;
}

rq_status rq_error_prefix(rq_status code, const char *prefix) {
    char tmp[sizeof rq_err_msg];
    size_t np = strlen(prefix);
    if (np > sizeof tmp / 2) np = sizeof tmp / 2;
    memcpy(tmp, prefix, np);
    tmp[np] = ':';
    tmp[np + 1] = ' ';
    size_t nm = strnlen(rq_err_msg, sizeof tmp - np - 3);
    memcpy(tmp + np + 2, rq_err_msg, nm);
    tmp[np + 2 + nm] = 0;
    memcpy(rq_err_msg, tmp, sizeof tmp);
    return code;
}

const char *rq_last_error(void) { return rq_err_msg; }

const char *rq_status_name(rq_status s) {
    switch (s) {
    case RQ_OK: return "ok";
    case RQ_EIO: return "I/O error";
    case RQ_EFORMAT: return "malformed input";
    case RQ_EINVAL: return "invalid argument";
    case RQ_ENOMEM: return "out of memory";
    case RQ_EUNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

void rq_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "rotquant: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

#define RQ_ALIGN 64

void *rq_alloc(int64_t nbytes) {
    if (nbytes < 0) {
        rq_errorf(RQ_ENOMEM, "invalid allocation size %lld", (long long)nbytes);
        return NULL;
    }
    size_t n = (size_t)nbytes;
    n = (n + RQ_ALIGN - 1) / RQ_ALIGN * RQ_ALIGN;
    if (n == 0) n = RQ_ALIGN;
    void *p = aligned_alloc(RQ_ALIGN, n);
    if (!p) rq_errorf(RQ_ENOMEM, "out of memory allocating %lld bytes", (long long)nbytes);
    return p;
}

void *rq_calloc(int64_t nbytes) {
    void *p = rq_alloc(nbytes);
    if (p) memset(p, 0, (size_t)nbytes);
    return p;
}

void *rq_xalloc(int64_t nbytes) {
    void *p = rq_alloc(nbytes);
    if (!p) {
        fprintf(stderr, "rotquant: fatal: %s\n", rq_last_error());
        abort();
    }
    return p;
}

void *rq_xcalloc(int64_t nbytes) {
    void *p = rq_xalloc(nbytes);
    memset(p, 0, (size_t)nbytes);
    return p;
}

void rq_free(void *p) { free(p); }

char *rq_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rq_xalloc((int64_t)n);
    memcpy(d, s, n);
    return d;
}

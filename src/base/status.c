#include "base/status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char rq_err_msg[1024];

size_t rq_printable_len(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return c >= 0x20 && c != 0x7F ? 1 : 0;
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F) return 0;
    return len;
}

char *rq_escape(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = rq_printable_len(s + i, n - i);
        if (k) {
            if (o + k >= cap) break;
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            if (o + 4 >= cap) break;
            snprintf(out + o, 5, "\\x%02x", (unsigned char)s[i]);
            o += 4;
            i++;
        }
    }
    out[o] = 0;
    return out;
}

rq_status rq_errorf(rq_status code, const char *fmt, ...) {
    char raw[sizeof rq_err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    rq_escape(raw, strlen(raw), rq_err_msg, sizeof rq_err_msg);
    return code;
}

rq_status rq_error_prefix(rq_status code, const char *prefix) {
    char tmp[sizeof rq_err_msg];
    rq_escape(prefix, strlen(prefix), tmp, sizeof tmp / 2);
    size_t np = strlen(tmp);
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

/* testing hooks (status.h): calls counted, the fail_at-th one fails, largest request */
static _Atomic int64_t alloc_calls, alloc_fail_at, alloc_largest;

void rq_alloc_fail_at(int64_t n) {
    alloc_calls = 0;
    alloc_largest = 0;
    alloc_fail_at = n > 0 ? n : 0;
}
int64_t rq_alloc_calls(void) { return alloc_calls; }
int64_t rq_alloc_largest(void) { return alloc_largest; }

static void *alloc_aligned(int64_t nbytes) {
    for (int64_t l = alloc_largest; nbytes > l && !atomic_compare_exchange_weak(&alloc_largest, &l, nbytes);) {
    }
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

bool rq_alloc_inject(void) {
    int64_t call = ++alloc_calls;
    return alloc_fail_at && call == alloc_fail_at;
}

void *rq_alloc(int64_t nbytes) {
    if (rq_alloc_inject()) {
        rq_errorf(RQ_ENOMEM, "out of memory allocating %lld bytes (injected failure %lld)", (long long)nbytes,
                  (long long)alloc_calls);
        return NULL;
    }
    return alloc_aligned(nbytes);
}

void *rq_calloc(int64_t nbytes) {
    void *p = rq_alloc(nbytes);
    if (p) memset(p, 0, (size_t)nbytes);
    return p;
}

void *rq_xalloc(int64_t nbytes) {
    void *p = alloc_aligned(nbytes);
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

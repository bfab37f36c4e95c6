/* Errors. Two kinds (DESIGN.md): a broken invariant is a bug and RQ_ASSERT aborts with
 * file:line; anything from outside is validated and reported as an rq_status with a
 * message naming the input. The message lives in thread-local storage and is read with
 * rq_last_error() right after a call returned non-RQ_OK. */
#ifndef RQ_BASE_STATUS_H
#define RQ_BASE_STATUS_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum rq_status {
    RQ_OK = 0,
    RQ_EIO = 1,          /* cannot open/read/write a file */
    RQ_EFORMAT = 2,      /* input file or data is malformed */
    RQ_EINVAL = 3,       /* bad argument or option value */
    RQ_ENOMEM = 4,       /* allocation failed */
    RQ_EUNSUPPORTED = 5, /* valid input we do not handle (type, architecture, ...) */
} rq_status;

/* Strings from files reach the terminal escaped: a control character (bytes < 0x20,
 * DEL, C1 controls U+0080..U+009F) or a byte that is not part of well-formed UTF-8 is
 * written as \xNN. rq_printable_len gives the length of the printable character at s
 * (n bytes left; 1 for printable ASCII, 2..4 for UTF-8), 0 if the byte must be escaped.
 * rq_escape copies s[0..n) into out (cap >= 1 bytes, always terminated, cut at a
 * character when full) escaped; returns out. */
size_t rq_printable_len(const char *s, size_t n);
char *rq_escape(const char *s, size_t n, char *out, size_t cap);

/* Set the thread's error message (printf-style, escaped as rq_escape: a file's key or
 * tensor name cannot put escape sequences on the terminal) and return `code`, so that
 * callers can write `return rq_errorf(RQ_EFORMAT, "%s: bad magic", path);`. */
rq_status rq_errorf(rq_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "prefix: " (e.g. a file name); returns `code`. */
rq_status rq_error_prefix(rq_status code, const char *prefix);
/* Message of the last error on this thread ("" if none). Owned by the library. */
const char *rq_last_error(void);
const char *rq_status_name(rq_status s);

void rq_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define RQ_ASSERT(cond) ((cond) ? (void)0 : rq_assert_fail(#cond, __FILE__, __LINE__))

/* Propagate a non-OK status. */
#define RQ_TRY(expr) do { rq_status rq_try_s_ = (expr); if (rq_try_s_ != RQ_OK) return rq_try_s_; } while (0)

/* Overflow-checked 64-bit size arithmetic for sizes read from files. */
static inline bool rq_mul_ok(int64_t a, int64_t b, int64_t *out) {
    return a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, out);
}
static inline bool rq_add_ok(int64_t a, int64_t b, int64_t *out) {
    return a >= 0 && b >= 0 && !__builtin_add_overflow(a, b, out);
}

/* Allocation. rq_alloc returns NULL (with RQ_ENOMEM message set) on failure, for sizes
 * that come from input; rq_xalloc aborts, for internal sizes already validated.
 * Memory is 64-byte aligned and released with rq_free. calloc variants zero it. */
void *rq_alloc(int64_t nbytes);
void *rq_calloc(int64_t nbytes);
void *rq_xalloc(int64_t nbytes);
void *rq_xcalloc(int64_t nbytes);
void rq_free(void *p);
char *rq_strdup(const char *s); /* aborts on OOM; free with rq_free */

/* Testing hooks of the fallible allocations (rq_alloc, rq_calloc; rq_xalloc is not
 * affected through them): rq_alloc_fail_at(n) resets the counters and makes the n-th
 * call from now fail as if memory were exhausted (0: none); rq_alloc_calls() counts the
 * calls since, rq_alloc_largest() is the largest size requested since. */
void rq_alloc_fail_at(int64_t n);
/* Count one fallible allocation made with the C library (the JSON parser's) and say
 * whether the hook makes it fail (then the caller fails as if malloc returned NULL). */
bool rq_alloc_inject(void);
int64_t rq_alloc_calls(void);
int64_t rq_alloc_largest(void);

#endif

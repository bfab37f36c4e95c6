/* Minimal test harness shared by tests/test_*.c.
 *   RQ_CHECK(cond)            records a failure with file:line and continues
 *   RQ_CHECK_NEAR(a, b, tol)  |a - b| <= tol
 *   RQ_SKIP(msg)              prints why and exits 77 (ctest reports "skipped")
 *   rq_test_finish()          prints "N passed, N failed" and returns the exit code
 * Tolerances are named constants at the top of each test with the reason beside them. */
#ifndef RQ_TESTING_H
#define RQ_TESTING_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int rq_test_passed, rq_test_failed;

void rq_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rq_test_finish(void);
/* Relative L2 error ||a - b|| / ||b|| over n floats. */
double rq_rel_l2(const float *a, const float *b, int64_t n);
/* Max |a - b| over n floats. */
double rq_max_abs_diff(const float *a, const float *b, int64_t n);
/* 1 if the file exists and is readable. */
int rq_test_file_exists(const char *path);
/* Path of the default model (models/SmolLM2-135M-Instruct.Q4_1.gguf) or NULL if absent. */
const char *rq_test_model_path(void);
/* Logits of every one of n tokens run from position 0 through a fresh state of model m:
 * [n, n_vocab], malloc'ed (free). Asserts success. */
struct rq_model;
float *rq_test_logits(const struct rq_model *m, const int32_t *tokens, int64_t n);
/* Write a copy of the GGUF file src to dst: its metadata but the key `drop` (NULL: none),
 * then whatever edit(w, user) adds (NULL: nothing), then its tensors. Asserts success. */
struct rq_gguf_writer;
void rq_test_gguf_copy(const char *src, const char *dst, const char *drop, void (*edit)(struct rq_gguf_writer *w, void *user),
                       void *user);

#define RQ_CHECK(cond)                                                         \
    do {                                                                       \
        if (cond) rq_test_passed++;                                            \
        else rq_test_fail(__FILE__, __LINE__, "check failed: %s", #cond);      \
    } while (0)

#define RQ_CHECK_MSG(cond, ...)                                                \
    do {                                                                       \
        if (cond) rq_test_passed++;                                            \
        else rq_test_fail(__FILE__, __LINE__, __VA_ARGS__);                    \
    } while (0)

#define RQ_CHECK_NEAR(a, b, tol)                                               \
    do {                                                                       \
        double rq_a_ = (double)(a), rq_b_ = (double)(b), rq_t_ = (double)(tol); \
        if (rq_a_ - rq_b_ <= rq_t_ && rq_b_ - rq_a_ <= rq_t_) rq_test_passed++; \
        else rq_test_fail(__FILE__, __LINE__, "%s = %.9g vs %s = %.9g (tol %g)", #a, rq_a_, #b, rq_b_, rq_t_); \
    } while (0)

#define RQ_SKIP(...)                                                           \
    do {                                                                       \
        printf("SKIPPED: " __VA_ARGS__);                                       \
        printf("\n");                                                          \
        exit(77);                                                              \
    } while (0)

#endif

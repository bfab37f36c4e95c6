#include "testing.h"

#include "io/gguf.h"
#include "model/model.h"

#include <string.h>

#include <math.h>
#include <stdarg.h>
#include <unistd.h>

int rq_test_passed, rq_test_failed;

void rq_test_fail(const char *file, int line, const char *fmt, ...) {
    rq_test_failed++;
    if (rq_test_failed > 50) return; /* keep logs readable */
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int rq_test_finish(void) {
    printf("%d passed, %d failed\n", rq_test_passed, rq_test_failed);
    return rq_test_failed ? 1 : 0;
}

double rq_rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double rq_max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

int rq_test_file_exists(const char *path) { return access(path, R_OK) == 0; }

const char *rq_test_model_path(void) {
    static const char *p = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const char *env = getenv("RQ_TEST_MODEL");
    if (env && rq_test_file_exists(env)) return env;
    return rq_test_file_exists(p) ? p : NULL;
}

float *rq_test_logits(const rq_model *m, const int32_t *tokens, int64_t n) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, n, n, true, &st) == RQ_OK);
    RQ_ASSERT(rq_model_forward(st, tokens, n, 0, RQ_LOGITS_ALL) == RQ_OK);
    int64_t k = n * m->cfg.n_vocab;
    float *out = malloc((size_t)k * sizeof(float));
    RQ_ASSERT(out);
    memcpy(out, st->logits, (size_t)k * sizeof(float));
    rq_state_free(st);
    return out;
}

void rq_test_gguf_copy(const char *src, const char *dst, const char *drop, void (*edit)(struct rq_gguf_writer *w, void *user),
                       void *user) {
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(src, &g) == RQ_OK);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++)
        if (!drop || strcmp(rq_gguf_kv_at(g, i)->key, drop)) rq_gguf_writer_copy_kv(w, rq_gguf_kv_at(g, i));
    if (edit) edit(w, user);
    for (int64_t i = 0; i < rq_gguf_n_tensors(g); i++) {
        const rq_gguf_tensor *t = rq_gguf_tensor_at(g, i);
        RQ_ASSERT(rq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes) == RQ_OK);
    }
    RQ_ASSERT(rq_gguf_writer_write(w, dst) == RQ_OK);
    rq_gguf_writer_free(w);
    rq_gguf_close(g);
}

/* Tests of src/eval/ppl: both protocols on the tiny random LLaMA against NLLs computed
 * here from the naive float64 forward (tests/tiny_llama.h) following the protocol's text
 * (which windows, which positions, BOS replacement), the standard error formula, and the
 * errors for too short a text or a bad context. */
#include "testing.h"

#include "eval/ppl.h"
#include "model/model.h"
#include "tiny_llama.h"

#include <sys/stat.h>
#include <unistd.h>

/* float32 forward vs float64 naive: mean NLL agrees to ~1e-6 relative */
#define NLL_REL_TOL 1e-5

/* Expected result of a protocol from naive logits of each window. */
static void expected(const int32_t *tok, int64_t n_tok, int64_t ctx, bool lcpp, int32_t bos, int64_t max_chunks,
                     double *ppl, double *se, int64_t *count) {
    int64_t n_chunks = n_tok / ctx;
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    float *lg = malloc(sizeof(float) * (size_t)(ctx * V));
    int32_t *w = malloc(sizeof(int32_t) * (size_t)ctx);
    double s = 0, s2 = 0;
    int64_t c = 0;
    for (int64_t k = 0; k < n_chunks; k++) {
        memcpy(w, tok + k * ctx, sizeof(int32_t) * (size_t)ctx);
        if (lcpp && bos >= 0) w[0] = bos;
        naive_forward(w, (int)ctx, false, 1.0, lg);
        for (int64_t i = lcpp ? ctx / 2 : 0; i + 1 < ctx; i++) {
            double mx = -1e300, z = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, lg[i * V + v]);
            for (int v = 0; v < V; v++) z += exp(lg[i * V + v] - mx);
            double nll = log(z) + mx - lg[i * V + w[i + 1]];
            s += nll, s2 += nll * nll, c++;
        }
    }
    double mean = s / c;
    *ppl = exp(mean);
    *se = sqrt((s2 / c - mean * mean) / (c - 1)) * *ppl;
    *count = c;
    free(lg), free(w);
}

static void check_protocol(rq_model *m, const int32_t *tok, int64_t n, rq_ppl_protocol proto, int64_t ctx,
                           int32_t bos, int64_t max_chunks) {
    rq_ppl_params p = {.protocol = proto, .ctx = ctx, .max_chunks = max_chunks, .bos = bos};
    rq_ppl_result r;
    rq_status s = rq_ppl_eval(m, tok, n, &p, &r);
    RQ_CHECK_MSG(s == RQ_OK, "ppl: %s", rq_last_error());
    if (s != RQ_OK) return;
    double ppl, se;
    int64_t count;
    bool lcpp = proto == RQ_PPL_LLAMACPP;
    expected(tok, n, ctx, lcpp, bos, max_chunks, &ppl, &se, &count);
    int64_t chunks = n / ctx < max_chunks || max_chunks <= 0 ? n / ctx : max_chunks;
    RQ_CHECK(r.n_chunks == chunks);
    RQ_CHECK(r.n_scored == count);
    RQ_CHECK(r.n_scored == chunks * (lcpp ? ctx - ctx / 2 - 1 : ctx - 1));
    RQ_CHECK(r.n_evaluated == chunks * ctx);
    RQ_CHECK_MSG(fabs(log(r.ppl) - log(ppl)) <= NLL_REL_TOL * log(ppl), "%s ctx %lld: ppl %.6f vs %.6f",
                 lcpp ? "llamacpp" : "full", (long long)ctx, r.ppl, ppl);
    RQ_CHECK_NEAR(r.nll, log(r.ppl), 1e-12);
    RQ_CHECK_MSG(fabs(r.ppl_stderr - se) <= 1e-3 * se, "stderr %.6f vs %.6f", r.ppl_stderr, se);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_eval_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    rq_model *m = NULL;
    RQ_ASSERT(rq_model_load_file(write_tiny("tiny.gguf", (tiny_opts){0}), &m) == RQ_OK);

    enum { N = 301 };
    int32_t tok[N];
    rq_rng r;
    rq_rng_seed(&r, 5);
    /* a learnable-ish stream: mostly a repeating pattern, some noise */
    for (int i = 0; i < N; i++) tok[i] = rq_rng_below(&r, 4) ? (int32_t)((i * 7) % V) : (int32_t)rq_rng_below(&r, V);

    check_protocol(m, tok, N, RQ_PPL_LLAMACPP, 64, -1, 0);  /* 4 windows, tail of 45 dropped */
    check_protocol(m, tok, N, RQ_PPL_LLAMACPP, 64, 3, 0);   /* with BOS replacement */
    check_protocol(m, tok, N, RQ_PPL_LLAMACPP, 50, -1, 2);  /* --chunks 2 */
    check_protocol(m, tok, N, RQ_PPL_LLAMACPP, 7, -1, 0);   /* odd ctx: first = 3 */
    check_protocol(m, tok, N, RQ_PPL_FULL, 100, -1, 0);     /* 3 windows */
    check_protocol(m, tok, N, RQ_PPL_FULL, 301, -1, 0);     /* one window, every token */

    /* BOS replacement changes the llamacpp result; the full protocol ignores bos */
    rq_ppl_result a, b;
    rq_ppl_params p = {.protocol = RQ_PPL_LLAMACPP, .ctx = 16, .bos = -1};
    RQ_ASSERT(rq_ppl_eval(m, tok, N, &p, &a) == RQ_OK);
    p.bos = 3;
    RQ_ASSERT(rq_ppl_eval(m, tok, N, &p, &b) == RQ_OK);
    RQ_CHECK(a.ppl != b.ppl);
    p = (rq_ppl_params){.protocol = RQ_PPL_FULL, .ctx = 16, .bos = -1};
    RQ_ASSERT(rq_ppl_eval(m, tok, N, &p, &a) == RQ_OK);
    p.bos = 3;
    RQ_ASSERT(rq_ppl_eval(m, tok, N, &p, &b) == RQ_OK);
    RQ_CHECK(a.ppl == b.ppl);

    /* the token NLL helper: against a direct log-softmax */
    float lg[5] = {1.0f, -2.0f, 0.5f, 3.0f, 3.0f};
    double z = exp(1.0) + exp(-2.0) + exp(0.5) + 2 * exp(3.0);
    RQ_CHECK_NEAR(rq_ppl_token_nll(lg, 5, 2), log(z) - 0.5, 1e-6);

    /* errors */
    p = (rq_ppl_params){.protocol = RQ_PPL_LLAMACPP, .ctx = 200, .bos = -1};
    RQ_CHECK(rq_ppl_eval(m, tok, N, &p, &a) == RQ_EINVAL); /* needs 2 windows: 400 tokens */
    RQ_CHECK_MSG(strstr(rq_last_error(), "needs at least 400") != NULL, "%s", rq_last_error());
    p.protocol = RQ_PPL_FULL;
    p.ctx = 302;
    RQ_CHECK(rq_ppl_eval(m, tok, N, &p, &a) == RQ_EINVAL);
    p.ctx = 1;
    RQ_CHECK(rq_ppl_eval(m, tok, N, &p, &a) == RQ_EINVAL);
    p.ctx = 16;
    int32_t bad[32] = {0};
    bad[20] = V;
    RQ_CHECK(rq_ppl_eval(m, bad, 32, &p, &a) == RQ_EINVAL);

    rq_model_free(m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

/* Tests of src/model: row ops against their direct formulas; the forward pass of a tiny
 * random LLaMA (written as a GGUF with the writer) against a naive float64 forward
 * written here from the formulas; KV-cache consistency (token-by-token decode and
 * uneven batches give the logits of one batched prefill); tree batches (each slot as
 * its root-to-slot path alone); thread-count independence;
 * the sampler; and the errors for a wrong architecture, a missing tensor, a wrong shape,
 * a weight in a type rotquant cannot dequantize (library and `rotquant quantize`), bad
 * forward arguments. The real model is compared with the numpy reference in
 * tests/sh_reference.sh. */
#include "testing.h"

#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/sampler.h"
#include "tiny_llama.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* float32 row ops vs double formulas on O(1) values: a few ulps. */
#define OPS_TOL 1e-6
/* float32 forward (BLAS sums in another order) vs the float64 naive forward, relative L2
 * over all logits of the tiny model. */
#define FWD_REL_TOL 1e-5
/* decode vs prefill: the same float32 computation split differently (brief: 1e-4). */
#define KV_REL_TOL 1e-4

/* ---- tests --------------------------------------------------------------------------- */

static void test_ops(void) {
    rq_rng r;
    rq_rng_seed(&r, 7);
    /* RoPE table + apply vs complex rotation; dims past rope_dim untouched */
    enum { NP = 9, RD = 12, HDIM = 16 };
    float cs[NP * RD / 2], sn[NP * RD / 2], divs[RD / 2];
    for (int i = 0; i < RD / 2; i++) divs[i] = 1.0f + (float)i;
    rq_rope_table(NP, RD, 500000.0, 0.5, divs, cs, sn);
    for (int p = 0; p < NP; p++) {
        float h[HDIM], h0[HDIM];
        for (int i = 0; i < HDIM; i++) h0[i] = h[i] = (float)rq_rng_normal(&r);
        rq_rope_apply(h, cs + p * RD / 2, sn + p * RD / 2, RD);
        for (int i = 0; i < RD / 2; i++) {
            double a = p * 0.5 * pow(500000.0, -2.0 * i / RD) / (1.0 + i);
            RQ_CHECK_NEAR(h[2 * i], h0[2 * i] * cos(a) - h0[2 * i + 1] * sin(a), OPS_TOL * 4);
            RQ_CHECK_NEAR(h[2 * i + 1], h0[2 * i] * sin(a) + h0[2 * i + 1] * cos(a), OPS_TOL * 4);
        }
        for (int i = RD; i < HDIM; i++) RQ_CHECK(h[i] == h0[i]);
    }

    /* softmax with every vmath level the CPU has */
    const rq_vmath *levels[3] = {&rq_vmath_ref, &rq_vmath_avx2, &rq_vmath_avx512};
    for (int lv = 0; lv <= (int)rq_cpu_max_level(); lv++) {
        for (int n = 1; n <= 40; n += 13) {
            float s[40];
            double ref[40], sum = 0;
            for (int i = 0; i < n; i++) s[i] = (float)(5 * rq_rng_normal(&r)), sum += exp((double)s[i]);
            for (int i = 0; i < n; i++) ref[i] = exp((double)s[i]) / sum;
            rq_softmax(s, n, levels[lv]);
            for (int i = 0; i < n; i++) RQ_CHECK_NEAR(s[i], ref[i], OPS_TOL);
        }
    }
}

static rq_model *load(const char *path) {
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(path, &m);
    RQ_CHECK_MSG(s == RQ_OK, "load %s: %s", path, rq_last_error());
    return m;
}

static void make_tokens(int32_t *tok, int n) {
    rq_rng r;
    rq_rng_seed(&r, 99);
    for (int i = 0; i < n; i++) tok[i] = (int32_t)rq_rng_below(&r, V);
}

/* logits of tok[0..n) fed in batches of the given sizes (cycled) */
static void run_batches(rq_model *m, const int32_t *tok, int n, const int *sizes, int n_sizes, float *out) {
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, n, n, true, &st) == RQ_OK);
    for (int p = 0, k = 0; p < n; k++) {
        int b = sizes[k % n_sizes];
        if (b > n - p) b = n - p;
        RQ_ASSERT(rq_model_forward(st, tok + p, b, p, RQ_LOGITS_ALL) == RQ_OK);
        memcpy(out + (int64_t)p * V, st->logits, sizeof(float) * (size_t)b * V);
        p += b;
    }
    RQ_CHECK(st->n_past == n);
    rq_state_free(st);
}

static void test_forward(bool untied) {
    enum { N = 150 }; /* > 2 attention blocks of 64 */
    const char *path = write_tiny(untied ? "tiny_untied.gguf" : "tiny.gguf", (tiny_opts){.untied = untied});
    rq_model *m = load(path);
    if (!m) return;
    RQ_CHECK(m->cfg.n_vocab == V && m->cfg.n_embd == E && m->cfg.n_head_kv == HK && m->cfg.head_dim == HD);
    RQ_CHECK(m->cfg.tied_embeddings == !untied);
    RQ_CHECK(rq_model_n_params(m) == NL * (2 * E + 2 * H * HD * E + 2 * HK * HD * E + 3 * FF * E) + V * E + E +
                                         (untied ? V * E : 0));
    int32_t tok[N];
    make_tokens(tok, N);
    float *ref = malloc(sizeof(float) * N * V), *full = malloc(sizeof(float) * N * V);
    float *dec = malloc(sizeof(float) * N * V), *mix = malloc(sizeof(float) * N * V);
    naive_forward(tok, N, untied, 1.0, ref);
    int all[1] = {N}, one[1] = {1}, uneven[4] = {3, 70, 1, 17};
    run_batches(m, tok, N, all, 1, full);
    run_batches(m, tok, N, one, 1, dec);
    run_batches(m, tok, N, uneven, 4, mix);
    double e_ref = rq_rel_l2(full, ref, N * V), e_dec = rq_rel_l2(dec, full, N * V), e_mix = rq_rel_l2(mix, full, N * V);
    RQ_CHECK_MSG(e_ref <= FWD_REL_TOL, "forward vs naive float64: rel L2 %g", e_ref);
    RQ_CHECK_MSG(e_dec <= KV_REL_TOL, "token-by-token decode vs prefill: rel L2 %g", e_dec);
    RQ_CHECK_MSG(e_mix <= KV_REL_TOL, "uneven batches vs prefill: rel L2 %g", e_mix);
    /* per row too: the worst row of the decode */
    double worst = 0;
    for (int t = 0; t < N; t++) {
        double e = rq_rel_l2(dec + t * V, full + t * V, V);
        if (e > worst) worst = e;
    }
    RQ_CHECK_MSG(worst <= KV_REL_TOL, "decode vs prefill: worst row rel L2 %g", worst);

    /* thread count: 1 thread vs the default */
    int nt = rq_threads_get();
    rq_threads_set(1);
    run_batches(m, tok, N, all, 1, dec);
    rq_threads_set(nt);
    RQ_CHECK_MSG(rq_rel_l2(dec, full, N * V) <= KV_REL_TOL, "1 thread vs %d threads", nt);

    /* LOGITS_LAST equals the last row; re-running from a middle position drops the rest */
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, N, N, false, &st) == RQ_OK);
    RQ_CHECK(rq_model_forward(st, tok, N, 0, RQ_LOGITS_LAST) == RQ_OK);
    RQ_CHECK(rq_rel_l2(st->logits, full + (N - 1) * V, V) <= KV_REL_TOL);
    RQ_CHECK(rq_model_forward(st, tok + 40, 10, 40, RQ_LOGITS_LAST) == RQ_OK);
    RQ_CHECK(rq_rel_l2(st->logits, full + 49 * V, V) <= KV_REL_TOL);
    RQ_CHECK(st->n_past == 50);
    /* hidden states + rq_model_logits give the logits too */
    float *lg = malloc(sizeof(float) * V);
    rq_model_logits(m, st->hidden + 9 * E, 1, lg);
    RQ_CHECK(rq_rel_l2(lg, full + 49 * V, V) <= KV_REL_TOL);
    free(lg);

    /* argument errors */
    int32_t bad = V;
    RQ_CHECK(rq_model_forward(st, &bad, 1, 50, RQ_LOGITS_LAST) == RQ_EINVAL);
    RQ_CHECK(strstr(rq_last_error(), "token id") != NULL);
    RQ_CHECK(rq_model_forward(st, tok, 1, 60, RQ_LOGITS_LAST) == RQ_EINVAL); /* gap after n_past */
    RQ_CHECK(rq_model_forward(st, tok, 2, N - 1, RQ_LOGITS_LAST) == RQ_EINVAL);
    RQ_CHECK(rq_model_forward(st, tok, 5, 0, RQ_LOGITS_ALL) == RQ_EINVAL); /* no room for all logits */
    RQ_CHECK(rq_model_forward(st, tok, 0, 0, RQ_LOGITS_LAST) == RQ_EINVAL);
    rq_state_free(st);
    RQ_CHECK(rq_state_new(m, 0, 1, false, &st) == RQ_EINVAL);
    RQ_CHECK(rq_state_new(m, 8, 9, false, &st) == RQ_EINVAL);

    free(ref), free(full), free(dec), free(mix);
    rq_model_free(m);
}

typedef struct {
    int calls[RQ_SITE_COUNT];
    int64_t dims[RQ_SITE_COUNT];
} hook_count;

/* Tree batches: every slot's logits equal those of a plain forward of its root-to-slot
 * path (the same float32 work split differently: KV_REL_TOL). The forest has a chain
 * longer than an attention block (70 tokens, so blocks straddle items), a context with
 * three continuations, a continuation that branches again, single-token sequences and a
 * lone root; then threads = 1 gives the same; then the pre-order errors. */
static void test_forward_tree(void) {
    const char *path = write_tiny("tiny_tree.gguf", (tiny_opts){0});
    rq_model *m = load(path);
    if (!m) return;
    enum { NT = 120 };
    int32_t tok[NT], par[NT];
    int n = 0;
    rq_rng r;
    rq_rng_seed(&r, 5);
#define ADD(parent_slot) (tok[n] = (int32_t)rq_rng_below(&r, V), par[n] = (parent_slot), n++)
    ADD(-1); /* item A: 6-token context, continuations of 3, 1 and 4 tokens; the 4-token one branches */
    for (int i = 0; i < 5; i++) ADD(n - 1);
    int ctx_end = n - 1;
    ADD(ctx_end), ADD(n - 1), ADD(n - 1);
    ADD(ctx_end);
    ADD(ctx_end), ADD(n - 1);
    int fork = n - 1;
    ADD(n - 1), ADD(n - 1);
    ADD(fork), ADD(n - 1);
    ADD(-1); /* item B: a lone root */
    ADD(-1); /* item C: 70-token chain */
    for (int i = 0; i < 69; i++) ADD(n - 1);
    ADD(-1); /* item D: one-token context, two one-token continuations */
    int d0 = n - 1;
    ADD(d0), ADD(d0);
    ADD(-1); /* item E: 10-token chain with a 3-token continuation */
    for (int i = 0; i < 9; i++) ADD(n - 1);
    int e0 = n - 1;
    ADD(e0), ADD(n - 1), ADD(n - 1);
#undef ADD
    RQ_ASSERT(n <= NT);
    float *tree = malloc(sizeof(float) * (size_t)n * V);
    rq_state *st = NULL, *lin = NULL;
    RQ_ASSERT(rq_state_new(m, NT, NT, true, &st) == RQ_OK);
    RQ_ASSERT(rq_state_new(m, NT, NT, true, &lin) == RQ_OK);
    for (int threads = 2; threads >= 1; threads--) {
        rq_threads_set(threads);
        rq_status s = rq_model_forward_tree(st, tok, par, n, RQ_LOGITS_ALL);
        RQ_CHECK_MSG(s == RQ_OK, "forward_tree: %s", rq_last_error());
        if (s != RQ_OK) break;
        RQ_CHECK(st->n_past == 0);
        memcpy(tree, st->logits, sizeof(float) * (size_t)n * V);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            int32_t pathv[NT];
            int len = 0;
            for (int k = i; k >= 0; k = par[k]) pathv[len++] = tok[k];
            for (int a = 0, b = len - 1; a < b; a++, b--) {
                int32_t t = pathv[a];
                pathv[a] = pathv[b];
                pathv[b] = t;
            }
            RQ_ASSERT(rq_model_forward(lin, pathv, len, 0, RQ_LOGITS_LAST) == RQ_OK);
            double e = rq_rel_l2(tree + (int64_t)i * V, lin->logits, V);
            worst = e > worst ? e : worst;
        }
        RQ_CHECK_MSG(worst <= KV_REL_TOL, "tree vs path forward (threads %d): worst relative L2 %.3g", threads, worst);
        /* LAST mode gives the last slot's row */
        RQ_ASSERT(rq_model_forward_tree(st, tok, par, n, RQ_LOGITS_LAST) == RQ_OK);
        RQ_CHECK(rq_rel_l2(st->logits, tree + (int64_t)(n - 1) * V, V) <= KV_REL_TOL);
    }
    rq_threads_set(0);
    /* errors: parent not before the token, parent not on the current path */
    int32_t t3[4] = {1, 2, 3, 4};
    int32_t bad1[4] = {-1, 0, 2, 1};  /* parent of 2 is itself */
    int32_t bad2[4] = {-1, 0, -1, 1}; /* 1 is in a finished sequence */
    int32_t bad3[4] = {-1, 0, 0, 1};  /* 1's subtree was left when 2 started */
    int32_t bad4[4] = {0, 0, 1, 2};   /* the first token cannot have a parent */
    RQ_CHECK(rq_model_forward_tree(st, t3, bad1, 4, RQ_LOGITS_NONE) == RQ_EINVAL &&
             strstr(rq_last_error(), "not in [-1, 2)"));
    RQ_CHECK(rq_model_forward_tree(st, t3, bad2, 4, RQ_LOGITS_NONE) == RQ_EINVAL &&
             strstr(rq_last_error(), "pre-order"));
    RQ_CHECK(rq_model_forward_tree(st, t3, bad3, 4, RQ_LOGITS_NONE) == RQ_EINVAL &&
             strstr(rq_last_error(), "pre-order"));
    RQ_CHECK(rq_model_forward_tree(st, t3, bad4, 4, RQ_LOGITS_NONE) == RQ_EINVAL);
    int32_t badtok[2] = {0, V}, ok2[2] = {-1, 0};
    RQ_CHECK(rq_model_forward_tree(st, badtok, ok2, 2, RQ_LOGITS_NONE) == RQ_EINVAL);
    RQ_CHECK(rq_model_forward_tree(st, t3, ok2, NT + 1, RQ_LOGITS_NONE) == RQ_EINVAL);
    rq_state_free(st);
    rq_state_free(lin);
    rq_model_free(m);
    free(tree);
}

static void count_hook(void *user, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim) {
    hook_count *h = user;
    h->calls[site]++;
    h->dims[site] = dim;
}

static void test_hook_and_scaling(void) {
    rq_model *m = load(write_tiny("tiny_linear.gguf", (tiny_opts){.scaling = "linear"}));
    if (!m) return;
    RQ_CHECK(m->cfg.rope_scaling == RQ_ROPE_SCALING_LINEAR);
    RQ_CHECK_NEAR(m->cfg.rope_freq_scale, 0.25, 1e-7);
    enum { N = 20 };
    int32_t tok[N];
    make_tokens(tok, N);
    float ref[N * V];
    naive_forward(tok, N, false, 0.25, ref);
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, N, N, true, &st) == RQ_OK);
    hook_count hc = {0};
    st->hook = count_hook;
    st->hook_user = &hc;
    RQ_CHECK(rq_model_forward(st, tok, N, 0, RQ_LOGITS_ALL) == RQ_OK);
    RQ_CHECK_MSG(rq_rel_l2(st->logits, ref, N * V) <= FWD_REL_TOL, "linear rope scaling vs naive: %g",
                 rq_rel_l2(st->logits, ref, N * V));
    for (int s = 0; s < RQ_SITE_COUNT; s++) RQ_CHECK(hc.calls[s] == NL);
    RQ_CHECK(hc.dims[RQ_SITE_ATTN_IN] == E && hc.dims[RQ_SITE_ATTN_OUT] == H * HD && hc.dims[RQ_SITE_FFN_DOWN] == FF);
    rq_state_free(st);
    rq_model_free(m);
}

static void expect_error(const char *file, tiny_opts o, rq_status code, const char *s1, const char *s2) {
    const char *path = write_tiny(file, o);
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(path, &m);
    RQ_CHECK_MSG(s == code && m == NULL, "%s: status %d, want %d", file, (int)s, (int)code);
    const char *e = rq_last_error();
    RQ_CHECK_MSG(strstr(e, s1) != NULL, "%s: message '%s' lacks '%s'", file, e, s1);
    if (s2) RQ_CHECK_MSG(strstr(e, s2) != NULL, "%s: message '%s' lacks '%s'", file, e, s2);
    rq_model_free(m);
}

static void test_errors(void) {
    expect_error("arch.gguf", (tiny_opts){.arch = "gpt2"}, RQ_EUNSUPPORTED, "unsupported architecture 'gpt2'", NULL);
    expect_error("missing.gguf", (tiny_opts){.omit = "blk.1.attn_q.weight"}, RQ_EFORMAT,
                 "missing tensor 'blk.1.attn_q.weight'", NULL);
    expect_error("noembd.gguf", (tiny_opts){.omit = "token_embd.weight"}, RQ_EFORMAT,
                 "missing tensor 'token_embd.weight'", NULL);
    expect_error("shape.gguf", (tiny_opts){.bad_shape = "blk.0.attn_k.weight"}, RQ_EFORMAT,
                 "tensor 'blk.0.attn_k.weight' has shape [16, 48]", "expected [48, 16]");
    expect_error("yarn.gguf", (tiny_opts){.scaling = "yarn"}, RQ_EUNSUPPORTED, "rope scaling type 'yarn'", NULL);

    /* a missing key */
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "llama.block_count", 2);
    char p[512];
    snprintf(p, sizeof p, "%s/nokey.gguf", tmpdir);
    RQ_ASSERT(rq_gguf_writer_write(w, p) == RQ_OK);
    rq_gguf_writer_free(w);
    rq_model *m = NULL;
    RQ_CHECK(rq_model_load_file(p, &m) == RQ_EFORMAT);
    RQ_CHECK_MSG(strstr(rq_last_error(), "missing metadata key 'llama.embedding_length'") != NULL, "%s",
                 rq_last_error());
}

/* A small LLaMA whose widths are multiples of 64, all float but one tensor written in
 * a type rotquant lists but cannot dequantize (`type` < 0: all float). */
static const char *write_sized_model(const char *file, const char *which, int type) {
    enum { SE = 64, SH = 2, SHK = 1, SHD = 32, SFF = 64, SV = 16 };
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, file);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "llama.block_count", 1);
    rq_gguf_writer_set_u32(w, "llama.context_length", 64);
    rq_gguf_writer_set_u32(w, "llama.embedding_length", SE);
    rq_gguf_writer_set_u32(w, "llama.feed_forward_length", SFF);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count", SH);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", SHK);
    rq_gguf_writer_set_u32(w, "llama.attention.key_length", SHD);
    rq_gguf_writer_set_f32(w, "llama.rope.freq_base", THETA);
    rq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", EPS);
    static const struct { const char *name; int64_t ne0, ne1; } ts[] = {
        {"token_embd.weight", SE, SV},           {"output_norm.weight", SE, 1},
        {"blk.0.attn_norm.weight", SE, 1},       {"blk.0.attn_q.weight", SE, SH * SHD},
        {"blk.0.attn_k.weight", SE, SHK * SHD},  {"blk.0.attn_v.weight", SE, SHK * SHD},
        {"blk.0.attn_output.weight", SH * SHD, SE}, {"blk.0.ffn_norm.weight", SE, 1},
        {"blk.0.ffn_gate.weight", SE, SFF},      {"blk.0.ffn_up.weight", SE, SFF},
        {"blk.0.ffn_down.weight", SFF, SE},
    };
    static float zeros[SFF * SE]; /* bytes for any tensor (the largest: a 64 × 64 linear in F32) */
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        const int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        const int t = type >= 0 && !strcmp(ts[i].name, which) ? type : RQ_TYPE_F32;
        int64_t rb;
        RQ_ASSERT(rq_type_row_bytes(t, ne[0], &rb) && rb * ne[1] <= (int64_t)sizeof zeros);
        RQ_ASSERT(rq_gguf_writer_add_tensor(w, ts[i].name, t, ne[1] == 1 ? 1 : 2, ne, zeros, rb * ne[1]) == RQ_OK);
    }
    RQ_ASSERT(rq_gguf_writer_write(w, p) == RQ_OK);
    rq_gguf_writer_free(w);
    return p;
}

/* Loading a model (and `rotquant quantize` from it) whose weights include a type
 * rotquant cannot dequantize fails cleanly, naming the tensor and its type. */
static void test_sized_type_errors(void) {
    rq_model *m = NULL;
    RQ_CHECK_MSG(rq_model_load_file(write_sized_model("sized_f32.gguf", "", -1), &m) == RQ_OK, "control: %s",
                 rq_last_error());
    rq_model_free(m);
    static const struct { const char *tensor; int type; } cases[] = {
        {"blk.0.ffn_up.weight", RQ_TYPE_MXFP4},    /* a linear */
        {"blk.0.attn_norm.weight", RQ_TYPE_MXFP4}, /* a norm vector */
        {"token_embd.weight", RQ_TYPE_NVFP4},      /* the embedding */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "sized_%zu.gguf", i);
        const char *path = write_sized_model(file, cases[i].tensor, cases[i].type);
        m = NULL;
        rq_status s = rq_model_load_file(path, &m);
        const char *e = rq_last_error();
        RQ_CHECK_MSG(s == RQ_EUNSUPPORTED && m == NULL, "%s: status %d", file, (int)s);
        RQ_CHECK_MSG(strstr(e, cases[i].tensor) && strstr(e, rq_type_name(cases[i].type)) && strstr(e, path),
                     "%s: message '%s'", file, e);
        rq_model_free(m);
    }
    /* the CLI: rotquant quantize from such a file exits 1 with the message */
    const char *cli = getenv("RQ_CLI");
    if (!cli) return;
    char cmd[2048], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/quantize.err", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' quantize -m '%s/sized_0.gguf' -o '%s/never.gguf' --method rtn --rotate none "
             ">/dev/null 2>'%s'", cli, tmpdir, tmpdir, errpath);
    int rc = system(cmd);
    char err[2048] = {0};
    FILE *f = fopen(errpath, "r");
    if (f) {
        size_t n = fread(err, 1, sizeof err - 1, f);
        err[n] = 0;
        fclose(f);
    }
    RQ_CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "rotquant quantize: exit status %d", rc);
    RQ_CHECK_MSG(strstr(err, "rotquant: error: ") == err && strstr(err, "blk.0.ffn_up.weight") &&
                     strstr(err, "MXFP4"),
                 "rotquant quantize: stderr '%s'", err);
    char never[600];
    snprintf(never, sizeof never, "%s/never.gguf", tmpdir);
    RQ_CHECK_MSG(access(never, F_OK) != 0, "rotquant quantize wrote an output file");
}

static void test_sampler(void) {
    enum { NV = 10 };
    float lg[NV] = {0.5f, 2.0f, -1.0f, 3.0f, 3.0f, 0.0f, 1.0f, -2.0f, 2.5f, 0.1f};
    rq_sampler *s;
    /* greedy: first index of the maximum */
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 0}, NV, &s) == RQ_OK);
    RQ_CHECK(rq_sampler_sample(s, lg) == 3);
    rq_sampler_free(s);
    /* top-k 1 at any temperature is greedy */
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 5, .top_k = 1, .seed = 3}, NV, &s) == RQ_OK);
    for (int i = 0; i < 20; i++) RQ_CHECK(rq_sampler_sample(s, lg) == 3);
    rq_sampler_free(s);
    /* top-k 3: only {3, 4, 8}; frequencies follow softmax over those at T = 1 */
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .top_k = 3, .seed = 5}, NV, &s) == RQ_OK);
    int cnt[NV] = {0};
    enum { DRAWS = 20000 };
    for (int i = 0; i < DRAWS; i++) cnt[rq_sampler_sample(s, lg)]++;
    rq_sampler_free(s);
    RQ_CHECK(cnt[3] + cnt[4] + cnt[8] == DRAWS);
    double z = 2 * exp(3.0) + exp(2.5);
    /* binomial standard deviation at 20000 draws is < 0.0036; allow 5 sigma */
    RQ_CHECK_NEAR(cnt[8] / (double)DRAWS, exp(2.5) / z, 0.018);
    RQ_CHECK_NEAR(cnt[3] / (double)DRAWS, exp(3.0) / z, 0.018);
    /* top-p: p = 0.5 keeps the smallest prefix of sorted probs reaching 0.5: {3, 4} here */
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .top_p = 0.5f, .seed = 9}, NV, &s) == RQ_OK);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < 2000; i++) cnt[rq_sampler_sample(s, lg)]++;
    rq_sampler_free(s);
    RQ_CHECK(cnt[3] + cnt[4] == 2000 && cnt[3] > 800 && cnt[4] > 800);
    /* same seed, same stream */
    int a[50], b[50];
    for (int rep = 0; rep < 2; rep++) {
        RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 0.8f, .top_p = 0.95f, .seed = 42}, NV, &s) ==
                  RQ_OK);
        for (int i = 0; i < 50; i++) (rep ? b : a)[i] = rq_sampler_sample(s, lg);
        rq_sampler_free(s);
    }
    RQ_CHECK(memcmp(a, b, sizeof a) == 0);
    /* repetition penalty 2, greedy, history of 2: logits 3.0 of tokens 3 and 4 halve when seen,
     * negative ones double; a token seen twice is penalized once; the oldest falls out */
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 0, .repeat_penalty = 2, .repeat_last_n = 2}, NV, &s) ==
              RQ_OK);
    rq_sampler_accept(s, 3);
    RQ_CHECK(rq_sampler_sample(s, lg) == 4); /* 3 → 1.5: 4 (3.0) is the largest */
    rq_sampler_accept(s, 4);
    RQ_CHECK(rq_sampler_sample(s, lg) == 8); /* 3 → 1.5, 4 → 1.5: 8 (2.5) */
    rq_sampler_accept(s, 8), rq_sampler_accept(s, 8);
    RQ_CHECK(rq_sampler_sample(s, lg) == 3); /* history {8, 8}: 8 → 1.25 (not 0.625), 3 is back */
    rq_sampler_accept(s, 1), rq_sampler_accept(s, 3);
    RQ_CHECK(rq_sampler_sample(s, lg) == 4); /* {1, 3}: 4 (3.0) ahead of 3 (1.5) and 1 (1.0) */
    rq_sampler_free(s);
    float neg[3] = {-1.0f, -1.5f, -4.0f};
    RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 0, .repeat_penalty = 2}, 3, &s) == RQ_OK);
    rq_sampler_accept(s, 0);
    RQ_CHECK(rq_sampler_sample(s, neg) == 1); /* −1 → −2 falls below −1.5 */
    rq_sampler_free(s);
    /* penalty 1 is off: the unpenalized stream, whatever was accepted */
    for (int rep = 0; rep < 2; rep++) {
        RQ_ASSERT(rq_sampler_new(&(rq_sampler_params){.temperature = 0.8f, .top_p = 0.95f, .seed = 42,
                                                       .repeat_penalty = rep ? 1.0f : 0.0f},
                                 NV, &s) == RQ_OK);
        for (int i = 0; i < 50; i++) {
            (rep ? b : a)[i] = rq_sampler_sample(s, lg);
            rq_sampler_accept(s, (rep ? b : a)[i]);
        }
        rq_sampler_free(s);
    }
    RQ_CHECK(memcmp(a, b, sizeof a) == 0);
    /* invalid parameters */
    RQ_CHECK(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .repeat_penalty = -1}, NV, &s) == RQ_EINVAL);
    RQ_CHECK(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .repeat_penalty = 1.1f, .repeat_last_n = -3}, NV, &s) ==
             RQ_EINVAL);
    RQ_CHECK(rq_sampler_new(&(rq_sampler_params){.temperature = -1}, NV, &s) == RQ_EINVAL);
    RQ_CHECK(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .top_p = 1.5f}, NV, &s) == RQ_EINVAL);
    RQ_CHECK(rq_sampler_new(&(rq_sampler_params){.temperature = 1, .top_k = -2}, NV, &s) == RQ_EINVAL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_model_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    test_ops();
    test_forward(false);
    test_forward(true);
    test_forward_tree();
    test_hook_and_scaling();
    test_errors();
    test_sized_type_errors();
    test_sampler();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

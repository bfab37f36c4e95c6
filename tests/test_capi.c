/* The public C API (include/rotquant.h) on the tiny random LLaMA of tiny_llama.h, with a small
 * byte-level BPE tokenizer and a ChatML template added to its file. Every result is checked
 * against the internal function it wraps (the same logits as rq_model_forward, the same ids as
 * the tokenizer, the same PPL as rq_ppl_eval, the same tokens as rq_generate, the same files as
 * rq_quant_run and rq_export_run) and, where one exists, against an independent oracle (the
 * float64 naive forward, hand-derived token ids, the literal chat text, the export's logit
 * error against the float model's as its block type's step size predicts); then the error
 * paths.
 *
 * `test_capi --write-model PATH` only writes the tiny model with its tokenizer to PATH (for
 * tests/capi_install.sh, which runs the installed examples on it). */
#include "tiny_llama.h"

#include "rotquant.h"

#include "base/pool.h"
#include "eval/ppl.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"
#include "quant/ggexport.h"
#include "quant/pipeline.h"
#include "text/tokenizer.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

/* float32 forward (BLAS sums in another order) vs the float64 naive forward, relative L2
 * over all logits (as test_model). */
#define FWD_REL_TOL 1e-5
/* the same float32 computation split into other batches (GEMV vs GEMM): as test_model's
 * decode-vs-prefill bound. */
#define SPLIT_REL_TOL 1e-4
/* PPL from float32 logits vs from the float64 naive forward: the NLLs differ by ~1e-6. */
#define PPL_REL_TOL 1e-5

/* ---- the tiny model with a tokenizer --------------------------------------------------- */

/* Token ids of the tokenizer below: the 65 characters '<'..'|', then "th" and "the". */
#define TOK(c) ((int32_t)((c) - '<'))
#define TOK_TH (V - 2)
#define TOK_THE (V - 1)
#define CHATML "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"

typedef struct {
    const rq_gguf_str *toks;
    const int32_t *types;
    int32_t eos;
    bool chat;
} tok_keys;

static void add_tok_keys(rq_gguf_writer *w, void *user) {
    const tok_keys *k = user;
    static const rq_gguf_str merges[2] = {{"t h", 3}, {"th e", 4}};
    rq_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rq_gguf_writer_set_str(w, "tokenizer.ggml.pre", "smollm");
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", k->toks, V);
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RQ_GGUF_I32, k->types, V);
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    if (k->eos >= 0) rq_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)k->eos);
    if (k->chat) rq_gguf_writer_set_str(w, "tokenizer.chat_template", CHATML);
}

/* Copy model file src to dst with the tokenizer (eos: its EOS id, -1: none) and, when chat,
 * the ChatML template. */
static void add_tokenizer(const char *src, const char *dst, int32_t eos, bool chat) {
    static char chars[V][2];
    rq_gguf_str toks[V];
    int32_t types[V];
    for (int i = 0; i < V - 2; i++) chars[i][0] = (char)('<' + i), toks[i] = (rq_gguf_str){chars[i], 1}, types[i] = 1;
    toks[TOK_TH] = (rq_gguf_str){"th", 2}, types[TOK_TH] = 1;
    toks[TOK_THE] = (rq_gguf_str){"the", 3}, types[TOK_THE] = 1;
    tok_keys k = {toks, types, eos, chat};
    rq_test_gguf_copy(src, dst, NULL, add_tok_keys, &k);
}

static char *tmp_path(const char *file) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, file);
    return p;
}

static bool error_has(const char *s) { return strstr(rotquant_last_error(), s) != NULL; }

static void random_ids(uint64_t seed, int32_t *ids, int64_t n) {
    rq_rng r;
    rq_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rq_rng_below(&r, V);
}

/* ---- version, threads, opening ---------------------------------------------------------- */

static void test_version(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", ROTQUANT_API_VERSION_MAJOR, ROTQUANT_API_VERSION_MINOR,
             ROTQUANT_API_VERSION_PATCH);
    RQ_CHECK(rotquant_version() == ROTQUANT_API_VERSION);
    RQ_CHECK(rotquant_version() / 10000 == ROTQUANT_API_VERSION_MAJOR);
    RQ_CHECK(!strcmp(rotquant_version_string(), want));
    RQ_CHECK(!strcmp(rotquant_status_name(ROTQUANT_OK), "ok"));
    RQ_CHECK(rotquant_set_threads(-1) == ROTQUANT_EINVAL && error_has("-1"));
    RQ_CHECK(rotquant_set_threads(2) == ROTQUANT_OK && rotquant_get_threads() == 2 && rq_threads_get() == 2);
    RQ_CHECK(rotquant_set_threads(0) == ROTQUANT_OK && rotquant_get_threads() >= 1);
}

static void test_open_errors(const char *plain) {
    rotquant_model *m = (rotquant_model *)1;
    RQ_CHECK(rotquant_model_open("/nonexistent/dir/x.gguf", NULL, &m) == ROTQUANT_EIO && m == NULL &&
             error_has("/nonexistent/dir/x.gguf"));
    const char *junk = tmp_path("junk.gguf");
    FILE *f = fopen(junk, "wb");
    RQ_ASSERT(f);
    fputs("this is not a GGUF file, only some text", f);
    fclose(f);
    RQ_CHECK(rotquant_model_open(junk, NULL, &m) == ROTQUANT_EFORMAT && m == NULL && error_has("junk.gguf"));
    const char *broken = write_tiny("missing.gguf", (tiny_opts){.omit = "blk.1.ffn_up.weight"});
    RQ_CHECK(rotquant_model_open(broken, NULL, &m) == ROTQUANT_EFORMAT && error_has("blk.1.ffn_up.weight"));
    /* a directory is read as a Hugging Face checkpoint (test_hf covers real ones) */
    const char *hf = tmp_path("hf_empty");
    RQ_ASSERT(mkdir(hf, 0700) == 0);
    RQ_CHECK(rotquant_model_open(hf, NULL, &m) == ROTQUANT_EIO && m == NULL && error_has("hf_empty/config.json"));
    RQ_CHECK(rotquant_model_open(plain, NULL, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_model_open(NULL, NULL, &m) == ROTQUANT_EINVAL && m == NULL && error_has("path"));
    rotquant_model_params p = {.size = 0};
    RQ_CHECK(rotquant_model_open(plain, &p, &m) == ROTQUANT_EINVAL && m == NULL && error_has("size"));
    p = (rotquant_model_params){.size = sizeof p, .abits = 5};
    RQ_CHECK(rotquant_model_open(plain, &p, &m) == ROTQUANT_EINVAL && error_has("abits") && error_has("5"));
    /* a newer header's struct: unknown fields must be 0 */
    struct {
        rotquant_model_params p;
        int newer_field;
    } big;
    memset(&big, 0, sizeof big);
    big.p.size = sizeof big;
    RQ_CHECK(rotquant_model_open(plain, &big.p, &m) == ROTQUANT_OK && m != NULL);
    rotquant_model_close(m);
    big.newer_field = 1;
    RQ_CHECK(rotquant_model_open(plain, &big.p, &m) == ROTQUANT_EUNSUPPORTED && m == NULL &&
             error_has("newer rotquant.h"));
    rotquant_model_close(NULL);
    /* abits override: in force in the info */
    p = (rotquant_model_params){.size = sizeof p, .abits = 8};
    RQ_CHECK(rotquant_model_open(plain, &p, &m) == ROTQUANT_OK);
    rotquant_model_info info = {.size = sizeof info};
    RQ_CHECK(rotquant_model_get_info(m, &info) == ROTQUANT_OK && info.abits == 8 && !strcmp(info.scheme, "W16A8KV16"));
    rotquant_model_close(m);
}

static void test_info(const rotquant_model *m, const rq_model *mi) {
    rotquant_model_info info = {.size = sizeof info};
    RQ_CHECK(rotquant_model_get_info(m, &info) == ROTQUANT_OK);
    RQ_CHECK(!strcmp(info.arch, "llama"));
    RQ_CHECK(info.n_vocab == V && info.n_embd == E && info.n_layer == NL && info.n_head == H &&
             info.n_head_kv == HK && info.head_dim == HD && info.n_ff == FF && info.n_ctx_train == 256);
    /* tied: embedding once; per layer q, k, v, o, gate, up, down and two norms; final norm */
    int64_t params = (int64_t)V * E + E + NL * ((int64_t)2 * H * HD * E + 2 * HK * HD * E + 3 * FF * E + 2 * E);
    RQ_CHECK(info.n_params == params && info.n_params == rq_model_n_params(mi));
    RQ_CHECK(info.weight_bytes == rq_model_weight_bytes(mi));
    RQ_CHECK(!info.quantized && info.wbits == 16 && info.group == 0 && info.abits == 16 && info.kvbits == 16 &&
             info.bits_per_weight == 0 && !strcmp(info.method, "") && !strcmp(info.scheme, "W16A16KV16"));
    RQ_CHECK(strstr(info.description, "llama") != NULL);
    RQ_CHECK(rotquant_model_n_vocab(m) == V);
    /* an older header's struct: only its bytes are written */
    union {
        rotquant_model_info info;
        unsigned char bytes[sizeof(rotquant_model_info)];
    } old;
    memset(&old, 0xAB, sizeof old);
    size_t small = offsetof(rotquant_model_info, n_embd);
    old.info.size = small;
    RQ_CHECK(rotquant_model_get_info(m, &old.info) == ROTQUANT_OK && old.info.size == small &&
             old.info.n_vocab == V && old.info.n_ctx_train == 256);
    bool untouched = true;
    for (size_t i = small; i < sizeof old; i++) untouched &= old.bytes[i] == 0xAB;
    RQ_CHECK(untouched);
    RQ_CHECK(rotquant_model_get_info(m, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_model_get_info(NULL, &info) == ROTQUANT_EINVAL);
    info.size = 0;
    RQ_CHECK(rotquant_model_get_info(m, &info) == ROTQUANT_EINVAL && error_has("size"));
}

/* ---- tokenizer and chat --------------------------------------------------------------------- */

static void test_tokenizer(const rotquant_model *m, const rotquant_model *no_tok, const char *path) {
    rq_gguf *g;
    rq_tokenizer *tok;
    RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK && rq_tokenizer_load(g, &tok) == RQ_OK);
    rq_gguf_close(g);
    int32_t *ids = NULL, *ref = NULL;
    int64_t n = 0, n_ref = 0;
    /* hand-derived: merges t+h, th+e; other characters one token each */
    RQ_CHECK(rotquant_tokenize(m, "thex", -1, ROTQUANT_BOS_DEFAULT, 0, &ids, &n) == ROTQUANT_OK && n == 2 &&
             ids[0] == TOK_THE && ids[1] == TOK('x'));
    rotquant_free(ids);
    RQ_CHECK(rotquant_tokenize(m, "thx", 3, ROTQUANT_BOS_NO, 0, &ids, &n) == ROTQUANT_OK && n == 2 &&
             ids[0] == TOK_TH && ids[1] == TOK('x'));
    rotquant_free(ids);
    /* BOS: the model's (llama.cpp's BPE default when the file has none) */
    int32_t bos = rotquant_token_bos(m);
    RQ_CHECK(bos == rq_tokenizer_bos(tok) && bos >= 0);
    RQ_CHECK(rotquant_tokenize(m, "AB", 2, ROTQUANT_BOS_YES, 0, &ids, &n) == ROTQUANT_OK && n == 3 && ids[0] == bos &&
             ids[1] == TOK('A') && ids[2] == TOK('B'));
    rotquant_free(ids);
    RQ_CHECK(rotquant_tokenize(m, "AB", 2, 7, 0, &ids, &n) == ROTQUANT_EINVAL && ids == NULL);
    /* the same ids as the tokenizer, on a longer text; and back */
    const char *text = "the<Then=the|Bathe`{thethe_zig?";
    RQ_CHECK(rotquant_tokenize(m, text, -1, ROTQUANT_BOS_DEFAULT, 1, &ids, &n) == ROTQUANT_OK);
    RQ_ASSERT(rq_tokenizer_encode(tok, text, (int64_t)strlen(text), rq_tokenizer_add_bos_default(tok), true, &ref,
                                  &n_ref) == RQ_OK);
    RQ_CHECK(n == n_ref && !memcmp(ids, ref, sizeof(int32_t) * (size_t)n));
    char *back = NULL;
    int64_t len = -1;
    RQ_CHECK(rotquant_detokenize(m, ids, n, 0, &back, &len) == ROTQUANT_OK && len == (int64_t)strlen(text) &&
             back && !strcmp(back, text));
    rotquant_free(back);
    rotquant_free(ids);
    rq_free(ref);
    RQ_CHECK(rotquant_tokenize(m, "", 0, ROTQUANT_BOS_NO, 0, &ids, &n) == ROTQUANT_OK && n == 0);
    rotquant_free(ids);
    /* pieces, EOS */
    int64_t pl = 0;
    const char *piece = rotquant_token_piece(m, TOK_THE, &pl);
    RQ_CHECK(piece && pl == 3 && !memcmp(piece, "the", 3));
    RQ_CHECK(rotquant_token_piece(m, V, &pl) == NULL && pl == 0);
    RQ_CHECK(rotquant_token_piece(m, -1, &pl) == NULL);
    RQ_CHECK(rotquant_token_eos(m) == TOK('|') && rotquant_token_is_eog(m, TOK('|')) && !rotquant_token_is_eog(m, 0));
    /* errors */
    int32_t bad[2] = {1, V};
    RQ_CHECK(rotquant_detokenize(m, bad, 2, 0, &back, &len) == ROTQUANT_EINVAL && back == NULL);
    RQ_CHECK(rotquant_detokenize(m, NULL, 2, 0, &back, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_tokenize(m, NULL, 3, ROTQUANT_BOS_NO, 0, &ids, &n) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_tokenize(NULL, "a", 1, ROTQUANT_BOS_NO, 0, &ids, &n) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_tokenize(no_tok, "a", 1, ROTQUANT_BOS_NO, 0, &ids, &n) == ROTQUANT_EUNSUPPORTED &&
             error_has("no tokenizer"));
    RQ_CHECK(rotquant_detokenize(no_tok, bad, 1, 0, &back, &len) == ROTQUANT_EUNSUPPORTED);
    RQ_CHECK(rotquant_token_piece(no_tok, 1, &pl) == NULL && rotquant_token_bos(no_tok) == -1 &&
             !rotquant_token_is_eog(no_tok, 0));
    rq_tokenizer_free(tok);
}

static void test_chat(const rotquant_model *m, const rotquant_model *no_chat) {
    rotquant_chat_message msgs[3] = {{"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello"}};
    char *text = NULL;
    RQ_CHECK(rotquant_chat_apply(m, msgs, 2, 1, &text) == ROTQUANT_OK && text &&
             !strcmp(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                           "<|im_start|>assistant\n"));
    rotquant_free(text);
    RQ_CHECK(rotquant_chat_apply(m, msgs + 1, 2, 0, &text) == ROTQUANT_OK && text &&
             !strcmp(text, "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"));
    rotquant_free(text);
    rotquant_chat_message bad = {"robot", "x"};
    RQ_CHECK(rotquant_chat_apply(m, &bad, 1, 1, &text) == ROTQUANT_EINVAL && text == NULL && error_has("robot"));
    RQ_CHECK(rotquant_chat_apply(no_chat, msgs, 2, 1, &text) == ROTQUANT_EUNSUPPORTED && text == NULL &&
             error_has("chat_template"));
    RQ_CHECK(rotquant_chat_apply(m, msgs, 2, 1, NULL) == ROTQUANT_EINVAL);
}

/* ---- inference ------------------------------------------------------------------------------ */

#define N_TOK 12

static void test_logits(const rotquant_model *m, const rq_model *mi) {
    int32_t tok[N_TOK];
    random_ids(5, tok, N_TOK);
    float *ref = rq_test_logits(mi, tok, N_TOK); /* [N_TOK, V] */
    float naive[N_TOK * V];
    naive_forward(tok, N_TOK, false, 1.0, naive);

    /* all logits in one batch: the internal forward's exactly */
    rotquant_context *c = NULL;
    rotquant_context_params cp = {.size = sizeof cp, .n_ctx = 64, .n_batch = N_TOK, .all_logits = 1};
    RQ_CHECK(rotquant_context_new(m, &cp, &c) == ROTQUANT_OK && c);
    int64_t rows = -1;
    RQ_CHECK(rotquant_get_logits(c, &rows) == NULL && rows == 0);
    RQ_CHECK(rotquant_eval(c, tok, N_TOK) == ROTQUANT_OK && rotquant_context_n_past(c) == N_TOK);
    const float *lg = rotquant_get_logits(c, &rows);
    RQ_CHECK(lg && rows == N_TOK && !memcmp(lg, ref, sizeof(float) * N_TOK * V));
    RQ_CHECK(rq_rel_l2(lg, naive, N_TOK * V) <= FWD_REL_TOL);
    /* more than a batch with all_logits; an error keeps the cache */
    RQ_CHECK(rotquant_context_truncate(c, 0) == ROTQUANT_OK && rotquant_get_logits(c, NULL) == NULL);
    int32_t many[N_TOK + 1] = {0};
    RQ_CHECK(rotquant_eval(c, many, N_TOK + 1) == ROTQUANT_EINVAL && error_has("all_logits"));
    rotquant_context_free(c);

    /* last logits only, the prompt split into batches of 5, then decoding one by one */
    cp = (rotquant_context_params){.size = sizeof cp, .n_ctx = 32, .n_batch = 5};
    RQ_CHECK(rotquant_context_new(m, &cp, &c) == ROTQUANT_OK);
    RQ_CHECK(rotquant_context_n_ctx(c) == 32);
    RQ_CHECK(rotquant_eval(c, tok, N_TOK) == ROTQUANT_OK);
    lg = rotquant_get_logits(c, &rows);
    RQ_CHECK(lg && rows == 1 && rq_rel_l2(lg, ref + (N_TOK - 1) * V, V) <= SPLIT_REL_TOL);
    RQ_CHECK(rotquant_context_truncate(c, 4) == ROTQUANT_OK && rotquant_context_n_past(c) == 4);
    bool decode_ok = true;
    for (int i = 4; i < N_TOK; i++) {
        decode_ok &= rotquant_decode(c, tok[i]) == ROTQUANT_OK && rotquant_context_n_past(c) == i + 1;
        lg = rotquant_get_logits(c, &rows);
        decode_ok &= lg && rows == 1 && rq_rel_l2(lg, ref + i * V, V) <= SPLIT_REL_TOL;
    }
    RQ_CHECK(decode_ok);
    /* errors leave the cache as it was: a bad id, a context overflow, a bad truncation */
    float before[V];
    memcpy(before, rotquant_get_logits(c, NULL), sizeof before);
    int32_t bad[3] = {1, 2, V};
    RQ_CHECK(rotquant_eval(c, bad, 3) == ROTQUANT_EINVAL && error_has("not in [0, 67)") &&
             rotquant_context_n_past(c) == N_TOK);
    bad[2] = -1;
    RQ_CHECK(rotquant_eval(c, bad, 3) == ROTQUANT_EINVAL && rotquant_context_n_past(c) == N_TOK);
    int32_t fill[32] = {0};
    RQ_CHECK(rotquant_eval(c, fill, 32 - N_TOK + 1) == ROTQUANT_EINVAL && error_has("do not fit") &&
             rotquant_context_n_past(c) == N_TOK);
    RQ_CHECK(rotquant_eval(c, tok, 0) == ROTQUANT_EINVAL && rotquant_eval(c, NULL, 2) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_context_truncate(c, N_TOK + 1) == ROTQUANT_EINVAL && rotquant_context_truncate(c, -1) ==
             ROTQUANT_EINVAL && rotquant_context_n_past(c) == N_TOK);
    /* after the failed calls: continuing gives what a fresh run of the sequence gives */
    RQ_CHECK(rotquant_context_truncate(c, N_TOK - 1) == ROTQUANT_OK);
    RQ_CHECK(rotquant_decode(c, tok[N_TOK - 1]) == ROTQUANT_OK && !memcmp(rotquant_get_logits(c, NULL), before,
                                                                            sizeof before));
    rotquant_context_free(c);

    /* an older header's struct (no all_logits field): the field past its size is not read */
    cp = (rotquant_context_params){.size = offsetof(rotquant_context_params, all_logits), .n_ctx = 16, .all_logits = 1};
    RQ_CHECK(rotquant_context_new(m, &cp, &c) == ROTQUANT_OK);
    RQ_CHECK(rotquant_eval(c, tok, 3) == ROTQUANT_OK && rotquant_get_logits(c, &rows) && rows == 1);
    rotquant_context_free(c);
    /* defaults: the model's training context (256) and a batch of min(n_ctx, 512) */
    RQ_CHECK(rotquant_context_new(m, NULL, &c) == ROTQUANT_OK && rotquant_context_n_ctx(c) == 256);
    rotquant_context_free(c);
    cp = (rotquant_context_params){.size = sizeof cp, .n_ctx = -4};
    RQ_CHECK(rotquant_context_new(m, &cp, &c) == ROTQUANT_EINVAL && c == NULL);
    cp = (rotquant_context_params){.size = sizeof cp, .n_ctx = 8, .n_batch = 9};
    RQ_CHECK(rotquant_context_new(m, &cp, &c) == ROTQUANT_EINVAL && c == NULL && error_has("batch"));
    RQ_CHECK(rotquant_context_new(NULL, NULL, &c) == ROTQUANT_EINVAL && rotquant_context_new(m, NULL, NULL) ==
             ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_eval(NULL, tok, 1) == ROTQUANT_EINVAL && rotquant_get_logits(NULL, &rows) == NULL && rows == 0);
    rotquant_context_free(NULL);
    free(ref);
}

typedef struct {
    int32_t tok[64];
    int64_t n;
    int64_t stop_after; /* 0: never */
    bool pieces_ok;
    const rotquant_model *m;
} collected;

static int collect_api(void *user, int32_t token, const char *piece, int64_t len) {
    collected *c = user;
    int64_t want_len = 0;
    const char *want = rotquant_token_piece(c->m, token, &want_len);
    c->pieces_ok &= piece == want && len == want_len;
    c->tok[c->n++] = token;
    return !(c->stop_after && c->n >= c->stop_after);
}

static bool collect_internal(void *user, int32_t token) {
    collected *c = user;
    c->tok[c->n++] = token;
    return true;
}

/* rq_generate's tokens on a fresh state of n_ctx positions, batches of n_batch */
static int64_t internal_generate(const rq_model *mi, const rq_sampler_params *sp, const int32_t *prompt, int64_t n_prompt,
                                 int64_t n_ctx, int64_t n_batch, int64_t n_predict, collected *out) {
    rq_state *st;
    rq_sampler *s;
    RQ_ASSERT(rq_state_new(mi, n_ctx, n_batch, false, &st) == RQ_OK && rq_sampler_new(sp, V, &s) == RQ_OK);
    rq_generate_stats gs;
    out->n = 0;
    RQ_ASSERT(rq_generate(st, prompt, n_prompt, n_predict, s, collect_internal, out, &gs) == RQ_OK);
    rq_sampler_free(s);
    rq_state_free(st);
    return gs.n_generated;
}

static void test_generate(const rotquant_model *m, const rq_model *mi, const char *plain) {
    /* "ABCDEFG": a prompt whose greedy continuation is not one token repeated (CCjRT...), so
     * that the end-of-generation check below stops after a few tokens */
    const int32_t prompt[7] = {TOK('A'), TOK('B'), TOK('C'), TOK('D'), TOK('E'), TOK('F'), TOK('G')};
    rotquant_context_params cp = {.size = sizeof cp, .n_ctx = 64, .n_batch = 3};
    rotquant_context *c;
    RQ_ASSERT(rotquant_context_new(m, &cp, &c) == ROTQUANT_OK);
    rotquant_sampler *s = NULL;
    /* sampler errors; sampling before any evaluation */
    rotquant_sampler_params sp = {.size = sizeof sp, .temperature = -1};
    RQ_CHECK(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_EINVAL && s == NULL && error_has("temperature"));
    sp = (rotquant_sampler_params){.size = sizeof sp, .temperature = NAN};
    RQ_CHECK(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_EINVAL);
    sp = (rotquant_sampler_params){.size = sizeof sp, .top_p = 1.5f};
    RQ_CHECK(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_EINVAL && error_has("top-p"));
    sp = (rotquant_sampler_params){.size = sizeof sp, .repeat_penalty = -2};
    RQ_CHECK(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_EINVAL && error_has("repeat penalty"));
    sp = (rotquant_sampler_params){.size = sizeof sp, .repeat_penalty = 1.1f, .repeat_last_n = (1 << 20) + 1};
    RQ_CHECK(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_EINVAL && error_has("repeat_last_n"));
    /* the penalty reads what was accepted: rotquant_sample after rotquant_sampler_accept
     * = the internal sampler after rq_sampler_accept */
    {
        rotquant_context *c1;
        RQ_ASSERT(rotquant_context_new(m, &cp, &c1) == ROTQUANT_OK && rotquant_eval(c1, prompt, 7) == ROTQUANT_OK);
        rq_sampler_params rp = {.temperature = 0.8f, .seed = 4, .repeat_penalty = 3.0f, .repeat_last_n = 4};
        sp = (rotquant_sampler_params){.size = sizeof sp, .temperature = 0.8f, .seed = 4, .repeat_penalty = 3.0f,
                                       .repeat_last_n = 4};
        rq_sampler *ri;
        RQ_ASSERT(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_OK && rq_sampler_new(&rp, V, &ri) == RQ_OK);
        bool same = true;
        for (int i = 0; i < 7; i++) {
            same &= rotquant_sampler_accept(s, prompt[i]) == ROTQUANT_OK;
            rq_sampler_accept(ri, prompt[i]);
        }
        for (int i = 0; i < 16; i++) {
            int32_t a = -1, b = rq_sampler_sample(ri, rotquant_get_logits(c1, NULL));
            same &= rotquant_sample(s, c1, &a) == ROTQUANT_OK && a == b;
            same &= rotquant_sampler_accept(s, a) == ROTQUANT_OK;
            rq_sampler_accept(ri, b);
        }
        RQ_CHECK(same);
        RQ_CHECK(rotquant_sampler_accept(s, V) == ROTQUANT_EINVAL && rotquant_sampler_accept(s, -1) == ROTQUANT_EINVAL &&
                 rotquant_sampler_accept(NULL, 0) == ROTQUANT_EINVAL);
        rq_sampler_free(ri);
        rotquant_sampler_free(s);
        rotquant_context_free(c1);
    }
    RQ_CHECK(rotquant_sampler_new(m, NULL, &s) == ROTQUANT_OK && s);
    int32_t t = -1;
    RQ_CHECK(rotquant_sample(s, c, &t) == ROTQUANT_EINVAL && error_has("no logits"));
    RQ_CHECK(rotquant_generate(c, s, NULL, 0, 5, 0, NULL, NULL, NULL) == ROTQUANT_EINVAL);
    /* greedy = the first largest logit */
    RQ_CHECK(rotquant_eval(c, prompt, 7) == ROTQUANT_OK);
    RQ_CHECK(rotquant_sample(s, c, &t) == ROTQUANT_OK && t == rq_argmax(rotquant_get_logits(c, NULL), V));
    RQ_CHECK(rotquant_sample_logits(s, rotquant_get_logits(c, NULL)) == t && rotquant_sample_logits(s, NULL) == -1);
    rotquant_sampler_free(s);

    /* generation from an empty context = rq_generate's tokens, greedy and sampled */
    /* the third is greedy with a strong penalty, whose first token ('C' without it) depends on
     * the prompt's tokens being in the history */
    const rq_sampler_params settings[4] = {
        {0},
        {.temperature = 0.9f, .top_k = 20, .top_p = 0.9f, .seed = 5},
        {.repeat_penalty = 5.0f, .repeat_last_n = 16},
        {.temperature = 0.7f, .top_k = 30, .seed = 9, .repeat_penalty = 1.5f, .repeat_last_n = 8},
    };
    collected greedy = {0};
    for (int k = 0; k < 4; k++) {
        sp = (rotquant_sampler_params){.size = sizeof sp, .temperature = settings[k].temperature,
                                       .top_k = settings[k].top_k, .top_p = settings[k].top_p, .seed = settings[k].seed,
                                       .repeat_penalty = settings[k].repeat_penalty,
                                       .repeat_last_n = settings[k].repeat_last_n};
        RQ_ASSERT(rotquant_sampler_new(m, &sp, &s) == ROTQUANT_OK);
        collected api = {.pieces_ok = true, .m = m}, ref = {0};
        int64_t n_gen = -1;
        RQ_CHECK(rotquant_context_truncate(c, 0) == ROTQUANT_OK);
        RQ_CHECK(rotquant_generate(c, s, prompt, 7, 20, ROTQUANT_GENERATE_IGNORE_EOG, collect_api, &api, &n_gen) ==
                 ROTQUANT_OK);
        int64_t n_ref = internal_generate(mi, &settings[k], prompt, 7, 64, 3, 20, &ref);
        RQ_CHECK_MSG(n_gen == 20 && api.n == 20 && n_ref == 20 && !memcmp(api.tok, ref.tok, sizeof(int32_t) * 20),
                     "generation %d: %lld tokens vs rq_generate's %lld, or other tokens", k, (long long)n_gen,
                     (long long)n_ref);
        RQ_CHECK(api.pieces_ok);
        /* the cache holds the prompt and every passed token but the last */
        RQ_CHECK(rotquant_context_n_past(c) == 7 + 20 - 1);
        if (k == 0) greedy = api;
        rotquant_sampler_free(s);
    }
    RQ_ASSERT(rotquant_sampler_new(m, NULL, &s) == ROTQUANT_OK);
    /* the callback stops it */
    collected stop = {.pieces_ok = true, .m = m, .stop_after = 3};
    int64_t n_gen = -1;
    RQ_CHECK(rotquant_context_truncate(c, 0) == ROTQUANT_OK);
    RQ_CHECK(rotquant_generate(c, s, prompt, 7, 20, ROTQUANT_GENERATE_IGNORE_EOG, collect_api, &stop, &n_gen) ==
                 ROTQUANT_OK && n_gen == 3 && stop.n == 3 && !memcmp(stop.tok, greedy.tok, sizeof(int32_t) * 3) &&
             rotquant_context_n_past(c) == 7 + 2);
    /* continuing (no prompt) from the logits of the last evaluation: the greedy sequence goes on */
    RQ_CHECK(rotquant_decode(c, stop.tok[2]) == ROTQUANT_OK);
    collected more = {.pieces_ok = true, .m = m};
    RQ_CHECK(rotquant_generate(c, s, NULL, 0, 4, ROTQUANT_GENERATE_IGNORE_EOG, NULL, NULL, &n_gen) == ROTQUANT_OK &&
             n_gen == 4);
    RQ_CHECK(rotquant_context_truncate(c, 7 + 2) == ROTQUANT_OK && rotquant_decode(c, greedy.tok[2]) == ROTQUANT_OK);
    RQ_CHECK(rotquant_generate(c, s, NULL, 0, 4, ROTQUANT_GENERATE_IGNORE_EOG, collect_api, &more, &n_gen) ==
                 ROTQUANT_OK &&
             more.n == 4 && !memcmp(more.tok, greedy.tok + 3, sizeof(int32_t) * 4));
    /* a full context: generation stops where rq_generate stops */
    rotquant_context *small;
    cp = (rotquant_context_params){.size = sizeof cp, .n_ctx = 10, .n_batch = 4};
    RQ_ASSERT(rotquant_context_new(m, &cp, &small) == ROTQUANT_OK);
    collected ref = {0};
    RQ_CHECK(rotquant_generate(small, s, prompt, 7, 20, ROTQUANT_GENERATE_IGNORE_EOG, NULL, NULL, &n_gen) ==
                 ROTQUANT_OK &&
             n_gen == 10 - 7 + 1 && internal_generate(mi, &settings[0], prompt, 7, 10, 4, 20, &ref) == n_gen);
    rotquant_context_free(small);
    /* end of generation: a model whose EOS is the k-th greedy token stops before it */
    int k = 0;
    for (int i = 1; i < 20 && !k; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= greedy.tok[j] == greedy.tok[i];
        if (!seen) k = i;
    }
    RQ_CHECK(k >= 1);
    const char *eos_path = tmp_path("eos.gguf");
    add_tokenizer(plain, eos_path, greedy.tok[k], false);
    rotquant_model *me;
    RQ_ASSERT(rotquant_model_open(eos_path, NULL, &me) == ROTQUANT_OK);
    rotquant_context *ce;
    rotquant_sampler *se;
    RQ_ASSERT(rotquant_context_new(me, &(rotquant_context_params){.size = sizeof cp, .n_ctx = 64, .n_batch = 3}, &ce) ==
                  ROTQUANT_OK &&
              rotquant_sampler_new(me, NULL, &se) == ROTQUANT_OK);
    collected eog = {.pieces_ok = true, .m = me};
    RQ_CHECK_MSG(rotquant_generate(ce, se, prompt, 7, 20, 0, collect_api, &eog, &n_gen) == ROTQUANT_OK && n_gen == k &&
                     eog.n == k && !memcmp(eog.tok, greedy.tok, sizeof(int32_t) * (size_t)k),
                 "EOS = greedy token %d: %lld tokens passed", k, (long long)n_gen);
    /* errors */
    RQ_CHECK(rotquant_generate(c, s, prompt, -1, 5, 0, NULL, NULL, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_generate(c, s, prompt, 7, -5, 0, NULL, NULL, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_generate(c, s, prompt, 7, 5, 0x10, NULL, NULL, NULL) == ROTQUANT_EUNSUPPORTED);
    RQ_CHECK(rotquant_generate(c, NULL, prompt, 7, 5, 0, NULL, NULL, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_sample(s, NULL, &t) == ROTQUANT_EINVAL && rotquant_sample(s, c, NULL) == ROTQUANT_EINVAL);
    rotquant_sampler_free(se);
    rotquant_context_free(ce);
    rotquant_model_close(me);
    rotquant_sampler_free(s);
    rotquant_sampler_free(NULL);
    rotquant_context_free(c);
}

/* ---- perplexity ----------------------------------------------------------------------------- */

#define PPL_CTX 16
#define PPL_WIN 4

/* PPL of the full protocol from the float64 naive forward */
static double naive_ppl_full(const int32_t *ids) {
    double nll = 0;
    float lg[PPL_CTX * V];
    for (int w = 0; w < PPL_WIN; w++) {
        const int32_t *x = ids + w * PPL_CTX;
        naive_forward(x, PPL_CTX, false, 1.0, lg);
        for (int t = 0; t + 1 < PPL_CTX; t++) {
            double mx = -1e300, sum = 0;
            for (int i = 0; i < V; i++) mx = fmax(mx, lg[t * V + i]);
            for (int i = 0; i < V; i++) sum += exp(lg[t * V + i] - mx);
            nll += log(sum) + mx - lg[t * V + x[t + 1]];
        }
    }
    return exp(nll / (PPL_WIN * (PPL_CTX - 1)));
}

typedef struct {
    const rotquant_model *m;
    const int32_t *ids;
    rotquant_ppl_result r;
    rotquant_status s;
} ppl_job;

static void *ppl_thread(void *arg) {
    ppl_job *j = arg;
    rotquant_ppl_params p = {.size = sizeof p, .protocol = ROTQUANT_PPL_FULL, .ctx = PPL_CTX};
    j->r = (rotquant_ppl_result){.size = sizeof j->r};
    j->s = rotquant_perplexity_tokens(j->m, j->ids, PPL_WIN * PPL_CTX, &p, &j->r);
    return NULL;
}

static void test_ppl(const rotquant_model *m, const rq_model *mi, const char *path) {
    int32_t ids[PPL_WIN * PPL_CTX];
    random_ids(21, ids, PPL_WIN * PPL_CTX);
    for (int proto = 0; proto < 2; proto++) {
        rotquant_ppl_params p = {.size = sizeof p, .protocol = proto, .ctx = PPL_CTX};
        rotquant_ppl_result r = {.size = sizeof r};
        RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, &p, &r) == ROTQUANT_OK);
        rq_ppl_params rp = {.protocol = proto ? RQ_PPL_FULL : RQ_PPL_LLAMACPP, .ctx = PPL_CTX, .bos = -1};
        rq_ppl_result rr;
        RQ_ASSERT(rq_ppl_eval(mi, ids, PPL_WIN * PPL_CTX, &rp, &rr) == RQ_OK);
        RQ_CHECK_MSG(r.ppl == rr.ppl && r.ppl_stderr == rr.ppl_stderr && r.nll == rr.nll && r.n_chunks == PPL_WIN &&
                         r.n_scored == rr.n_scored && r.n_tokens == PPL_WIN * PPL_CTX,
                     "protocol %d: PPL %.9g vs rq_ppl_eval's %.9g", proto, r.ppl, rr.ppl);
        if (proto == ROTQUANT_PPL_FULL) {
            double want = naive_ppl_full(ids);
            RQ_CHECK_MSG(fabs(r.ppl - want) <= PPL_REL_TOL * want, "full PPL %.9g vs the naive forward's %.9g", r.ppl,
                         want);
            RQ_CHECK(r.n_scored == PPL_WIN * (PPL_CTX - 1));
        }
        /* max_chunks */
        p.max_chunks = 2;
        RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, &p, &r) == ROTQUANT_OK && r.n_chunks == 2);
    }
    /* a text: tokenized as `rotquant ppl -f` (one trailing newline dropped, the model's BOS rule) */
    char text[PPL_WIN * PPL_CTX * 2 + 2];
    for (int i = 0; i < PPL_WIN * PPL_CTX * 2; i++) text[i] = (char)('<' + (ids[i % (PPL_WIN * PPL_CTX)] * 7 + i) % 65);
    text[PPL_WIN * PPL_CTX * 2] = '\n';
    text[PPL_WIN * PPL_CTX * 2 + 1] = 0;
    rotquant_ppl_params p = {.size = sizeof p, .ctx = PPL_CTX};
    rotquant_ppl_result r = {.size = sizeof r};
    RQ_CHECK(rotquant_perplexity(m, text, -1, &p, &r) == ROTQUANT_OK);
    {
        rq_gguf *g;
        rq_tokenizer *tok;
        RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK && rq_tokenizer_load(g, &tok) == RQ_OK);
        rq_gguf_close(g);
        int32_t *tids;
        int64_t n;
        RQ_ASSERT(rq_tokenizer_encode(tok, text, (int64_t)strlen(text) - 1, rq_tokenizer_add_bos_default(tok), false,
                                      &tids, &n) == RQ_OK);
        rq_ppl_params rp = {.protocol = RQ_PPL_LLAMACPP, .ctx = PPL_CTX,
                            .bos = rq_tokenizer_add_bos_default(tok) ? rq_tokenizer_bos(tok) : -1};
        rq_ppl_result rr;
        RQ_ASSERT(rq_ppl_eval(mi, tids, n, &rp, &rr) == RQ_OK);
        RQ_CHECK(r.ppl == rr.ppl && r.n_tokens == n && r.n_chunks == rr.n_chunks);
        rq_free(tids);
        rq_tokenizer_free(tok);
    }
    /* two threads at once (the API serializes them): the same figure */
    ppl_job jobs[2] = {{.m = m, .ids = ids}, {.m = m, .ids = ids}}, one = {.m = m, .ids = ids};
    ppl_thread(&one);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) RQ_ASSERT(pthread_create(&th[i], NULL, ppl_thread, &jobs[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    RQ_CHECK(one.s == ROTQUANT_OK && jobs[0].s == ROTQUANT_OK && jobs[1].s == ROTQUANT_OK &&
             jobs[0].r.ppl == one.r.ppl && jobs[1].r.ppl == one.r.ppl);
    /* errors */
    RQ_CHECK(rotquant_perplexity_tokens(m, ids, 20, &p, &r) == ROTQUANT_EINVAL && error_has("32"));
    p.protocol = 7;
    RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, &p, &r) == ROTQUANT_EINVAL && error_has("protocol"));
    p = (rotquant_ppl_params){.size = sizeof p, .ctx = -3};
    RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, &p, &r) == ROTQUANT_EINVAL);
    int32_t bad[PPL_WIN * PPL_CTX];
    memcpy(bad, ids, sizeof bad);
    bad[9] = V;
    RQ_CHECK(rotquant_perplexity_tokens(m, bad, PPL_WIN * PPL_CTX, NULL, &r) == ROTQUANT_EINVAL && error_has("id 9"));
    RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, NULL, NULL) == ROTQUANT_EINVAL);
    r.size = 0;
    RQ_CHECK(rotquant_perplexity_tokens(m, ids, PPL_WIN * PPL_CTX, NULL, &r) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_perplexity(m, NULL, 0, NULL, &r) == ROTQUANT_EINVAL);
}

/* ---- quantize ------------------------------------------------------------------------------- */

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_quantize(const char *plain) {
    /* RTN W4 g16 with the default rotation (GSR, blocks of the group); the embedding in f16
     * (q8_0 needs a width that is a multiple of 32) */
    const char *api_out = tmp_path("api_w4.gguf"), *ref_out = tmp_path("ref_w4.gguf");
    rotquant_quantize_params p = {.size = sizeof p, .wbits = 4, .group = 16, .method = ROTQUANT_METHOD_RTN,
                                  .embd_type = "f16"};
    rotquant_quantize_result r = {.size = sizeof r};
    RQ_CHECK_MSG(rotquant_quantize(plain, api_out, &p, &r) == ROTQUANT_OK, "quantize: %s", rotquant_last_error());
    rq_quant_opts o = rq_quant_opts_default();
    o.wbits = 4, o.group = 16, o.method = RQ_PTQ_RTN, o.embd_type = "f16";
    rq_quant_result rr;
    RQ_ASSERT(rq_quant_run(plain, ref_out, &o, &rr) == RQ_OK);
    RQ_CHECK(same_file(api_out, ref_out));
    RQ_CHECK_MSG(!strcmp(r.scheme, "W4A16KV16") && r.bits_per_weight == rr.qi.bits_per_weight && r.calib_n == 0 &&
             strstr(r.description, "gsr") != NULL, "%s %g %g %lld %s", r.scheme, r.bits_per_weight, rr.qi.bits_per_weight, (long long)r.calib_n, r.description);
    /* 4 bits + an fp16 scale and zero per 16 weights */
    RQ_CHECK_NEAR(r.bits_per_weight, 4.0 + 32.0 / 16.0, 1e-9);
    rotquant_model *q;
    rotquant_model_info info = {.size = sizeof info};
    RQ_CHECK(rotquant_model_open(api_out, NULL, &q) == ROTQUANT_OK && rotquant_model_get_info(q, &info) == ROTQUANT_OK);
    RQ_CHECK(info.quantized && info.wbits == 4 && info.group == 16 && !strcmp(info.method, "rtn") &&
             info.bits_per_weight == r.bits_per_weight && !strcmp(info.scheme, "W4A16KV16"));
    rotquant_model_close(q);

    /* GPTQ W2 with calibration ids, R2 Walsh, A8 */
    int32_t ids[4 * 16];
    random_ids(31, ids, 4 * 16);
    const char *cal = tmp_path("cal.ids");
    RQ_ASSERT(rq_quant_calib_ids_write(cal, ids, 4, 16) == RQ_OK);
    p = (rotquant_quantize_params){.size = sizeof p, .wbits = 2, .group = 16, .rotation = ROTQUANT_ROT_HADAMARD,
                                   .rotation2 = ROTQUANT_ROT_WALSH, .abits = 8, .calib_ids = cal, .seed = 3,
                                   .embd_type = "f32"};
    api_out = tmp_path("api_w2.gguf"), ref_out = tmp_path("ref_w2.gguf");
    RQ_CHECK(rotquant_quantize(plain, api_out, &p, NULL) == ROTQUANT_OK);
    o = rq_quant_opts_default();
    o.wbits = 2, o.group = 16, o.rotate = RQ_ROT_HADAMARD, o.rotate2 = RQ_ROT_WALSH, o.abits = 8, o.calib_ids = cal,
    o.seed = 3, o.embd_type = "f32";
    RQ_ASSERT(rq_quant_run(plain, ref_out, &o, &rr) == RQ_OK);
    RQ_CHECK(same_file(api_out, ref_out));
    info = (rotquant_model_info){.size = sizeof info};
    RQ_CHECK(rotquant_model_open(api_out, NULL, &q) == ROTQUANT_OK && rotquant_model_get_info(q, &info) == ROTQUANT_OK);
    RQ_CHECK(info.quantized && info.wbits == 2 && info.abits == 8 && !strcmp(info.method, "gptq") &&
             !strcmp(info.scheme, "W2A8KV16"));
    rotquant_model_close(q);

    /* errors: named as the CLI names the option; nothing written */
    const char *none = tmp_path("never.gguf");
    p = (rotquant_quantize_params){.size = sizeof p, .wbits = 5};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("--wbits"));
    p = (rotquant_quantize_params){.size = sizeof p, .rotation = (rotquant_rotation)99};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("rotation"));
    p = (rotquant_quantize_params){.size = sizeof p, .method = (rotquant_method)7};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("method"));
    p = (rotquant_quantize_params){.size = sizeof p, .calib_ids = cal, .calib_n = 4};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("--calib-ids"));
    p = (rotquant_quantize_params){.size = sizeof p, .embd_type = "q4_0"};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("--embd-type"));
    p = (rotquant_quantize_params){.size = sizeof p, .wbits = 4, .group = 16, .method = ROTQUANT_METHOD_RTN,
                                   .embd_type = "f16"};
    RQ_CHECK(rotquant_quantize("/nonexistent/in.gguf", none, &p, &r) == ROTQUANT_EIO && error_has("/nonexistent/in.gguf"));
    /* GPTQ generating its calibration text needs the tokenizer, which plain has not */
    p = (rotquant_quantize_params){.size = sizeof p, .group = 16, .calib_n = 2, .calib_len = 8, .embd_type = "f16"};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) != ROTQUANT_OK);
    r.size = 0;
    p = (rotquant_quantize_params){.size = sizeof p, .wbits = 4, .group = 16, .method = ROTQUANT_METHOD_RTN,
                                   .embd_type = "f16"};
    RQ_CHECK(rotquant_quantize(plain, none, &p, &r) == ROTQUANT_EINVAL);
    RQ_CHECK(rotquant_quantize(plain, NULL, &p, NULL) == ROTQUANT_EINVAL);
    RQ_CHECK(!rq_test_file_exists(none));
}

/* ---- export for llama.cpp -------------------------------------------------------------------- */

/* A model whose rows take llama.cpp's blocks of 32 (the tiny model's 48 and 80 do not), with
 * moderate weights, so that quantization errors are not amplified (the tiny model's 4-bit
 * logits move by 20-70 %, test_ggquant). */
enum { XE = 64, XH = 2, XHK = 1, XHD = 32, XFF = 128, XNL = 2 };

static const char *write_wide(void) {
    const char *path = tmp_path("wide.gguf");
    rq_rng r;
    rq_rng_seed(&r, 77);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "llama.block_count", XNL);
    rq_gguf_writer_set_u32(w, "llama.context_length", 128);
    rq_gguf_writer_set_u32(w, "llama.embedding_length", XE);
    rq_gguf_writer_set_u32(w, "llama.feed_forward_length", XFF);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count", XH);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", XHK);
    rq_gguf_writer_set_f32(w, "llama.rope.freq_base", 1e4f);
    rq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    float *keep[4 + XNL * 9];
    int nk = 0;
#define XADD(name, ne0, ne1, sc, off)                                                                               \
    do {                                                                                                           \
        int64_t ne_[2] = {(ne0), (ne1)};                                                                           \
        float *x_ = keep[nk++] = rq_xalloc((ne0) * (ne1) * (int64_t)sizeof(float));                                \
        fill(&r, x_, (ne0) * (ne1), (sc), (off));                                                                  \
        RQ_ASSERT(rq_gguf_writer_add_tensor(w, (name), RQ_TYPE_F32, (ne1) == 1 ? 1 : 2, ne_, x_,                  \
                                            (ne0) * (ne1) * 4) == RQ_OK);                                          \
    } while (0)
    XADD("token_embd.weight", XE, V, 1.0, 0);
    XADD("output_norm.weight", XE, 1, 0.1, 1);
    char nm[64];
    for (int l = 0; l < XNL; l++) {
#define XL(sfx, ne0, ne1, sc, off)                                                                                 \
    do {                                                                                                           \
        snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sfx);                                                       \
        XADD(nm, ne0, ne1, sc, off);                                                                               \
    } while (0)
        XL("attn_norm", XE, 1, 0.1, 1);
        XL("attn_q", XE, XH * XHD, 0.15, 0);
        XL("attn_k", XE, XHK * XHD, 0.15, 0);
        XL("attn_v", XE, XHK * XHD, 0.15, 0);
        XL("attn_output", XH * XHD, XE, 0.1, 0);
        XL("ffn_norm", XE, 1, 0.1, 1);
        XL("ffn_gate", XE, XFF, 0.15, 0);
        XL("ffn_up", XE, XFF, 0.15, 0);
        XL("ffn_down", XFF, XE, 0.1, 0);
#undef XL
    }
#undef XADD
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    for (int i = 0; i < nk; i++) rq_free(keep[i]);
    return path;
}

/* logits [N_TOK, V] of the model at path through the public API (NULL: it did not open) */
static float *api_logits(const char *path, const int32_t *tok) {
    rotquant_model *m;
    rotquant_context *c;
    if (rotquant_model_open(path, NULL, &m) != ROTQUANT_OK) return NULL;
    rotquant_context_params cp = {.size = sizeof cp, .n_ctx = 64, .n_batch = N_TOK, .all_logits = 1};
    float *out = NULL;
    int64_t rows = 0;
    if (rotquant_context_new(m, &cp, &c) == ROTQUANT_OK) {
        const float *lg = rotquant_eval(c, tok, N_TOK) == ROTQUANT_OK ? rotquant_get_logits(c, &rows) : NULL;
        if (lg && rows == N_TOK) {
            out = rq_xalloc(N_TOK * V * (int64_t)sizeof(float));
            memcpy(out, lg, sizeof(float) * N_TOK * V);
        }
        rotquant_context_free(c);
    }
    rotquant_model_close(m);
    return out;
}

static bool all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* Relative L2 of the exported model's logits from the float model's. Q4_0 rounds each weight
 * to 16 levels spanning its block of 32 (step = absmax/8 ≈ 0.3σ for Gaussian weights): an
 * error of about step/√12 ≈ 8 % of a weight's scale, which this random 2-layer model carries
 * into its logits at 2-2.5 times that (measured 0.16-0.21 over five weight seeds); 0.4 leaves
 * room, while unrelated logits are ≈ 1.4 apart. Q8_0's step is absmax/127, 16 times smaller:
 * its error scales with it (measured 0.06-0.075 of Q4_0's), bounded here by 0.15 of it. */
#define EXPORT_Q4_REL_TOL 0.4
#define EXPORT_Q8_VS_Q4 0.15

static void test_export(const char *plain, const char *rq_file) {
    char src[512], rotquant_file[512]; /* copies: tmp_path's buffers are reused */
    snprintf(rotquant_file, sizeof rotquant_file, "%s", rq_file);
    snprintf(src, sizeof src, "%s", write_wide());
    int32_t tok[N_TOK];
    random_ids(41, tok, N_TOK);
    float *ref = api_logits(src, tok);
    RQ_ASSERT(ref);

    /* Q4_0, RTN, GSR R1 (the default): the same file as rq_export_run's */
    const char *api_out = tmp_path("api_q4_0.gguf"), *ref_out = tmp_path("ref_q4_0.gguf");
    rotquant_export_params p = {.size = sizeof p, .method = ROTQUANT_METHOD_RTN};
    rotquant_export_result r = {.size = sizeof r};
    RQ_CHECK_MSG(rotquant_export(src, api_out, &p, &r) == ROTQUANT_OK, "export: %s", rotquant_last_error());
    rq_export_opts o = rq_export_opts_default();
    o.q.method = RQ_PTQ_RTN;
    rq_export_result rr;
    RQ_ASSERT(rq_export_run(src, ref_out, &o, &rr, NULL) == RQ_OK);
    RQ_CHECK(same_file(api_out, ref_out));
    struct stat st;
    RQ_ASSERT(stat(api_out, &st) == 0);
    /* Q4_0: 18 bytes per 32 weights */
    RQ_CHECK_MSG(r.n_linears == 7 * XNL && r.n_fallback == 0 && r.bits_per_weight == 4.5 &&
                     r.file_bytes == (int64_t)st.st_size && r.calib_n == 0 && !strncmp(r.types, "14 Q4_0;", 8),
                 "%lld linears, %lld fallback, %g bits, '%s'", (long long)r.n_linears, (long long)r.n_fallback,
                 r.bits_per_weight, r.types);
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(api_out, &g) == RQ_OK);
    const rq_gguf_tensor *tq = rq_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    RQ_CHECK(tq && tq->type == RQ_TYPE_Q4_0);
    rq_gguf_close(g);
    rotquant_model *q;
    rotquant_model_info info = {.size = sizeof info};
    RQ_CHECK(rotquant_model_open(api_out, NULL, &q) == ROTQUANT_OK && rotquant_model_get_info(q, &info) == ROTQUANT_OK &&
             !info.quantized && info.n_embd == XE); /* a llama.cpp file, no rotquant metadata */
    rotquant_model_close(q);
    float *lq4 = api_logits(api_out, tok);
    RQ_CHECK(lq4 && all_finite(lq4, N_TOK * V));
    double rel4 = lq4 ? rq_rel_l2(lq4, ref, N_TOK * V) : 1e9;
    RQ_CHECK_MSG(rel4 < EXPORT_Q4_REL_TOL && rel4 > 0, "Q4_0 export: logits %g (relative L2) from the float model's",
                 rel4);

    /* Q8_0, GPTQ on calibration ids, embeddings f16: much closer */
    int32_t ids[4 * 16];
    random_ids(43, ids, 4 * 16);
    const char *cal = tmp_path("xcal.ids");
    RQ_ASSERT(rq_quant_calib_ids_write(cal, ids, 4, 16) == RQ_OK);
    p = (rotquant_export_params){.size = sizeof p, .type = "q8_0", .embd_type = "f16", .calib_ids = cal};
    api_out = tmp_path("api_q8_0.gguf");
    RQ_CHECK_MSG(rotquant_export(src, api_out, &p, &r) == ROTQUANT_OK, "export: %s", rotquant_last_error());
    RQ_CHECK(r.calib_n == 4 && r.calib_len == 16 && !strncmp(r.types, "14 Q8_0; embedding F16", 22));
    float *lq8 = api_logits(api_out, tok);
    RQ_CHECK(lq8 && all_finite(lq8, N_TOK * V));
    double rel8 = lq8 ? rq_rel_l2(lq8, ref, N_TOK * V) : 1e9;
    RQ_CHECK_MSG(rel8 < EXPORT_Q8_VS_Q4 * rel4, "Q8_0 export: logits %g from float, Q4_0's %g", rel8, rel4);
    printf("  export: logits from float (relative L2): Q4_0 RTN %.4f, Q8_0 GPTQ %.4f\n", rel4, rel8);
    rq_free(lq8);
    rq_free(lq4);
    rq_free(ref);

    /* errors: named as the CLI names the option; nothing written */
    const char *none = tmp_path("never_x.gguf");
    p = (rotquant_export_params){.size = sizeof p, .type = "q9_k"};
    RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("--type") && error_has("q9_k"));
    p = (rotquant_export_params){.size = sizeof p, .type = "f16"}; /* not for the linears */
    RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("--type"));
    p = (rotquant_export_params){.size = sizeof p, .embd_type = "q7"};
    RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("--embd-type"));
    p = (rotquant_export_params){.size = sizeof p, .rotation = (rotquant_rotation)99};
    RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("rotation"));
    p = (rotquant_export_params){.size = sizeof p, .method = ROTQUANT_METHOD_RTN};
    RQ_CHECK(rotquant_export("/nonexistent/in.gguf", none, &p, &r) == ROTQUANT_EIO &&
             error_has("/nonexistent/in.gguf"));
    RQ_CHECK(rotquant_export(rotquant_file, none, &p, &r) == ROTQUANT_EINVAL && error_has("rotquant file"));
    RQ_CHECK(rotquant_export(plain, none, &p, &r) == ROTQUANT_EINVAL && error_has("rows of 48"));
    for (size_t small = 0; small < sizeof(size_t); small += 3) { /* below the size field itself */
        p = (rotquant_export_params){.size = small};
        RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("rotquant_export_params") &&
                 error_has("size"));
    }
    p = (rotquant_export_params){.size = sizeof p, .method = ROTQUANT_METHOD_RTN};
    r.size = 0;
    RQ_CHECK(rotquant_export(src, none, &p, &r) == ROTQUANT_EINVAL && error_has("rotquant_export_result"));
    RQ_CHECK(rotquant_export(src, NULL, &p, NULL) == ROTQUANT_EINVAL && error_has("out"));
    RQ_CHECK(!rq_test_file_exists(none));
}

int main(int argc, char **argv) {
    init_weights();
    if (argc == 3 && !strcmp(argv[1], "--write-model")) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_capi_w_%d", (int)getpid());
        RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
        add_tokenizer(write_tiny("tiny.gguf", (tiny_opts){0}), argv[2], TOK('|'), true);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        return system(cmd) != 0;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_capi_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    const char *plain = write_tiny("tiny.gguf", (tiny_opts){0});
    const char *with_tok = tmp_path("tiny_tok.gguf"), *no_chat = tmp_path("tiny_nochat.gguf");
    add_tokenizer(plain, with_tok, TOK('|'), true);
    add_tokenizer(plain, no_chat, -1, false);

    test_version();
    test_open_errors(plain);
    rotquant_model *m = NULL, *m_plain = NULL, *m_nochat = NULL;
    RQ_ASSERT(rotquant_model_open(with_tok, NULL, &m) == ROTQUANT_OK && m);
    RQ_ASSERT(rotquant_model_open(plain, NULL, &m_plain) == ROTQUANT_OK);
    RQ_ASSERT(rotquant_model_open(no_chat, NULL, &m_nochat) == ROTQUANT_OK);
    rq_model *mi;
    RQ_ASSERT(rq_model_load_file(with_tok, &mi) == RQ_OK);
    test_info(m, mi);
    test_tokenizer(m, m_plain, with_tok);
    test_chat(m, m_nochat);
    test_logits(m, mi);
    test_generate(m, mi, plain);
    test_ppl(m, mi, with_tok);
    test_quantize(plain);
    test_export(plain, tmp_path("api_w4.gguf")); /* a rotquant file test_quantize wrote */
    rq_model_free(mi);
    rotquant_model_close(m);
    rotquant_model_close(m_plain);
    rotquant_model_close(m_nochat);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

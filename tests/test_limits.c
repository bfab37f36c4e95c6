/* Resource bounds a model file can push against (issue 15, defect 4): a crafted file with
 * a huge vocabulary over a tiny embedding. ppl sizes its logits buffer by the work (the
 * rows a window scores, within a byte budget) instead of 256 rows × n_vocab, and a model
 * whose state for one position would exceed its whole file is refused with an error.
 * The files are written with the GGUF writer: one layer, zero weights (so every logit is
 * 0 and the perplexity is exactly the vocabulary size, an independent check that the
 * smaller buffer still scores every token). */
#include "testing.h"

#include "base/status.h"
#include "eval/ppl.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* Logits buffer budget of ppl (src/eval/ppl.c LOGIT_BUDGET): the largest single
 * allocation may be the budget or the float embedding, whichever is larger. */
#define LOGIT_BUDGET (INT64_C(64) << 20)

/* Write a one-layer llama with n_vocab tokens of width n_embd (F16 zeros; norms 1),
 * 1 head of 2 dims, n_ff 2. The F16 zeros buffer must hold n_vocab * n_embd halfs. */
static const char *write_model(const char *file, int64_t n_vocab, int64_t n_embd, const uint16_t *zeros) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    static float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "llama.block_count", 1);
    rq_gguf_writer_set_u32(w, "llama.context_length", 64);
    rq_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)n_embd);
    rq_gguf_writer_set_u32(w, "llama.feed_forward_length", 2);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count", 1);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 1);
    rq_gguf_writer_set_u32(w, "llama.attention.key_length", 2);
    rq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    struct { const char *name; int64_t ne0, ne1; } ts[] = {
        {"token_embd.weight", n_embd, n_vocab}, {"blk.0.attn_q.weight", n_embd, 2},
        {"blk.0.attn_k.weight", n_embd, 2},     {"blk.0.attn_v.weight", n_embd, 2},
        {"blk.0.attn_output.weight", 2, n_embd}, {"blk.0.ffn_gate.weight", n_embd, 2},
        {"blk.0.ffn_up.weight", n_embd, 2},      {"blk.0.ffn_down.weight", 2, n_embd},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        RQ_ASSERT(rq_gguf_writer_add_tensor(w, ts[i].name, RQ_TYPE_F16, 2, ne, zeros, ne[0] * ne[1] * 2) == RQ_OK);
    }
    const char *norms[] = {"output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"};
    for (int i = 0; i < 3; i++) {
        int64_t ne[1] = {n_embd};
        RQ_ASSERT(rq_gguf_writer_add_tensor(w, norms[i], RQ_TYPE_F32, 1, ne, ones, n_embd * 4) == RQ_OK);
    }
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    return path;
}

/* 2^20 tokens over 4 channels (a 8 MiB file): ppl on 2 windows of 8 tokens scores every
 * token (PPL = n_vocab with zero weights) with a logits buffer of at most the budget,
 * where 256 rows would take 1 GiB. */
static void test_ppl_large_vocab(const uint16_t *zeros) {
    const int64_t nv = INT64_C(1) << 20, ne = 4;
    rq_model *m = NULL;
    RQ_CHECK(rq_model_load_file(write_model("wide.gguf", nv, ne, zeros), &m) == RQ_OK);
    if (!m) return;
    int32_t toks[16];
    for (int i = 0; i < 16; i++) toks[i] = (int32_t)(i * 65537 % nv);
    rq_ppl_params p = {.protocol = RQ_PPL_FULL, .ctx = 8, .bos = -1};
    rq_ppl_result r;
    rq_alloc_fail_at(0); /* resets the largest-allocation counter */
    RQ_CHECK(rq_ppl_eval(m, toks, 16, &p, &r) == RQ_OK);
    RQ_CHECK(r.n_scored == 14);
    RQ_CHECK_NEAR(r.ppl / (double)nv, 1.0, 1e-4); /* uniform logits: PPL = V (float exp-sum rounding) */
    int64_t largest = rq_alloc_largest();
    printf("ppl, vocabulary 2^20: largest allocation %lld bytes (256 rows would be %lld)\n", (long long)largest,
           (long long)(256 * nv * 4));
    RQ_CHECK(largest <= LOGIT_BUDGET);
    rq_model_free(m);
}

/* 2^20 tokens over 1 channel: one position's state (a 4 MiB logits row) is larger than
 * the whole 2 MiB file: the state is refused with a message, the model itself loads. */
static void test_state_bound(const uint16_t *zeros) {
    const int64_t nv = INT64_C(1) << 20;
    rq_model *m = NULL;
    RQ_CHECK(rq_model_load_file(write_model("narrow.gguf", nv, 1, zeros), &m) == RQ_OK);
    if (!m) return;
    rq_state *st = NULL;
    RQ_CHECK(rq_state_new(m, 16, 16, false, &st) == RQ_EFORMAT);
    RQ_CHECK(st == NULL);
    RQ_CHECK(strstr(rq_last_error(), "more than its whole file") != NULL);
    printf("narrow model: %s\n", rq_last_error());
    rq_ppl_params p = {.protocol = RQ_PPL_FULL, .ctx = 8, .bos = -1};
    rq_ppl_result r;
    int32_t toks[16] = {0};
    RQ_CHECK(rq_ppl_eval(m, toks, 16, &p, &r) == RQ_EFORMAT);
    rq_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_limits_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    uint16_t *zeros = calloc((size_t)4 << 20, sizeof(uint16_t)); /* 2^20 tokens × 4 channels */
    RQ_ASSERT(zeros);
    test_ppl_large_vocab(zeros);
    test_state_bound(zeros);
    free(zeros);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

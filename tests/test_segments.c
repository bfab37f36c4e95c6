/* Tests of the segmented forward (rq_model_forward_segments) and of the batched
 * calibration generator built on it (rq_calib_generate):
 *   - several sequences of different lengths advanced together in one state, in calls
 *     that mix one-token steps, prefill chunks (one longer than an attention block),
 *     rows of one segment that are not adjacent, segments absent from a call, and
 *     reversed row orders: every row's logits equal those of rq_model_forward of its
 *     sequence alone (the tiny random model of tiny_llama.h with a float cache and with
 *     the fake-quantized 4-bit cache + R3; the real model when present);
 *   - rewinding a segment, LOGITS_LAST, the argument errors (and that a refused call
 *     changes nothing), the packed 4-bit cache refused;
 *   - rq_calib_generate gives the ids of a one-sequence-at-a-time loop written here
 *     (tiny model with a tiny tokenizer, sampling at temperature 1, with end-of-generation
 *     tokens; the real model greedy: 3 x 24 tokens, about 4 s of the test's time). */
#include "testing.h"

#include "base/pool.h"
#include "base/rng.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/sampler.h"
#include "quant/calib.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "tiny_llama.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* segmented vs plain forward: the same float32 computation with the rows of the GEMMs
 * grouped differently (the KV-cache tolerance of test_model). */
#define SEG_REL_TOL 1e-4

enum { MAX_SEQ = 4, MAX_ROWS = 128 };

typedef struct {
    int ns;                  /* sequences */
    int len[MAX_SEQ];        /* their lengths */
    int32_t *tok[MAX_SEQ];   /* [len[s]] */
    float *ref[MAX_SEQ];     /* [len[s], n_vocab] logits of each sequence alone */
} seqs;

static rq_model *load(const char *path) {
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(path, &m);
    RQ_CHECK_MSG(s == RQ_OK, "load %s: %s", path, rq_last_error());
    return m;
}

static void seqs_make(rq_model *m, seqs *q, int ns, const int *len, uint64_t seed) {
    int64_t nv = m->cfg.n_vocab;
    rq_rng r;
    rq_rng_seed(&r, seed);
    q->ns = ns;
    for (int s = 0; s < ns; s++) {
        q->len[s] = len[s];
        q->tok[s] = rq_xalloc(len[s] * (int64_t)sizeof(int32_t));
        for (int i = 0; i < len[s]; i++) q->tok[s][i] = (int32_t)rq_rng_below(&r, (uint64_t)nv);
        q->ref[s] = rq_xalloc(len[s] * nv * (int64_t)sizeof(float));
        rq_state *st;
        RQ_ASSERT(rq_state_new(m, len[s], len[s], true, &st) == RQ_OK);
        RQ_ASSERT(rq_model_forward(st, q->tok[s], len[s], 0, RQ_LOGITS_ALL) == RQ_OK);
        memcpy(q->ref[s], st->logits, (size_t)(len[s] * nv) * sizeof(float));
        rq_state_free(st);
    }
}

static void seqs_free(seqs *q) {
    for (int s = 0; s < q->ns; s++) rq_free(q->tok[s]), rq_free(q->ref[s]);
}

/* Feed all sequences through a segmented state (segment s = sequence s) in calls planned
 * by a seeded RNG: call 0 gives sequence 0 a chunk of first_chunk tokens; after that each
 * unfinished sequence gets 1 token, sometimes a chunk of up to 6, sometimes none. Each
 * call lists the first half of every chunk of up to 8 tokens, then the second halves and
 * the longer chunks whole (so a segment's rows need not be adjacent, and a chunk of more
 * than 64 rows spans two attention blocks), in reversed sequence order on odd calls. Returns the worst
 * relative L2 of a row's logits against its sequence's own forward. */
static double run_schedule(rq_model *m, rq_state *st, const seqs *q, int first_chunk, uint64_t seed) {
    int64_t nv = m->cfg.n_vocab;
    int done[MAX_SEQ] = {0};
    rq_rng r;
    rq_rng_seed(&r, seed);
    double worst = 0;
    for (int call = 0;; call++) {
        int take[MAX_SEQ], total = 0;
        for (int s = 0; s < q->ns; s++) {
            int left = q->len[s] - done[s], k;
            if (call == 0) k = s == 0 ? first_chunk : 1;
            else if (rq_rng_below(&r, 6) == 0) k = 0;
            else if (rq_rng_below(&r, 4) == 0) k = 1 + (int)rq_rng_below(&r, 6);
            else k = 1;
            take[s] = k < left ? k : left;
            total += take[s];
        }
        bool finished = true;
        for (int s = 0; s < q->ns; s++) finished &= done[s] == q->len[s];
        if (finished) break;
        if (total == 0) continue;
        RQ_ASSERT(total <= MAX_ROWS && total <= st->n_batch);
        int32_t tok[MAX_ROWS];
        int64_t seg[MAX_ROWS], pos[MAX_ROWS];
        int n = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int idx = 0; idx < q->ns; idx++) {
                int s = call % 2 ? q->ns - 1 - idx : idx;
                int half = take[s] > 8 ? 0 : take[s] / 2; /* a long chunk stays whole: blocks of ATT_BLOCK */
                int k0 = pass == 0 ? 0 : half, k1 = pass == 0 ? half : take[s];
                for (int k = k0; k < k1; k++, n++) {
                    seg[n] = s;
                    pos[n] = done[s] + k;
                    tok[n] = q->tok[s][pos[n]];
                }
            }
        rq_status rs = rq_model_forward_segments(st, tok, seg, pos, n, RQ_LOGITS_ALL);
        RQ_CHECK_MSG(rs == RQ_OK, "forward_segments (call %d): %s", call, rq_last_error());
        if (rs != RQ_OK) return 1e9;
        for (int i = 0; i < n; i++) {
            double e = rq_rel_l2(st->logits + (int64_t)i * nv, q->ref[seg[i]] + pos[i] * nv, nv);
            worst = e > worst ? e : worst;
        }
        for (int s = 0; s < q->ns; s++) {
            done[s] += take[s];
            RQ_CHECK(st->seg_fill[s] == done[s]);
        }
    }
    return worst;
}

/* The tiny model: schedules with a float cache and with the fake-quantized 4-bit cache
 * and R3; then rewinding, LOGITS_LAST, the errors, the packed cache refused. */
static void test_tiny_segments(void) {
    const char *path = write_tiny("tiny_seg.gguf", (tiny_opts){0});
    rq_model *m = load(path);
    if (!m) return;
    const int len[MAX_SEQ] = {90, 7, 33, 1};
    enum { SEG_LEN = 100, N_CTX = 4 * SEG_LEN + 30 }; /* 30 slots past the segments unused */
    for (int cfg = 0; cfg < 2; cfg++) {
        if (cfg == 1) { /* 4-bit KV, fake-quantized in a float cache, with R3 */
            rq_online_cfg oc = {.kv_bits = 4, .kv_group = 8, .r3 = rq_rot_make(RQ_ROT_HADAMARD, HD, 0, 3)};
            RQ_ASSERT(rq_model_set_online(m, &oc) == RQ_OK);
            m->online.kv_fake = true;
        }
        seqs q;
        seqs_make(m, &q, MAX_SEQ, len, 11);
        rq_state *st;
        RQ_ASSERT(rq_state_new(m, N_CTX, MAX_ROWS, true, &st) == RQ_OK);
        RQ_CHECK(rq_state_set_segments(st, SEG_LEN) == RQ_OK && st->n_seg == 4);
        for (int threads = 2; threads >= 1; threads--) {
            rq_threads_set(threads);
            rq_state_reset(st);
            double worst = run_schedule(m, st, &q, 70, 5 + (uint64_t)threads);
            RQ_CHECK_MSG(worst <= SEG_REL_TOL, "tiny %s, %d threads: segmented vs alone, worst row rel L2 %.3g",
                         cfg ? "KV4 fake + R3" : "float", threads, worst);
        }
        rq_threads_set(0);
        if (cfg == 1) {
            rq_state_free(st);
            seqs_free(&q);
            m->online.kv_fake = false;
            break;
        }

        /* rewind segment 0 to position 40 (the rest dropped), LOGITS_LAST gives the last row */
        int32_t tok[3] = {q.tok[0][40], q.tok[2][32], q.tok[0][41]};
        int64_t seg[3] = {0, 2, 0}, pos[3] = {40, 32, 41};
        RQ_CHECK(rq_model_forward_segments(st, tok, seg, pos, 3, RQ_LOGITS_LAST) == RQ_OK);
        RQ_CHECK(rq_rel_l2(st->logits, q.ref[0] + 41 * V, V) <= SEG_REL_TOL);
        RQ_CHECK(st->seg_fill[0] == 42 && st->seg_fill[1] == 7 && st->seg_fill[2] == 33 && st->seg_fill[3] == 1);
        float *h = rq_xalloc(V * (int64_t)sizeof(float));
        rq_model_logits(m, st->hidden + 1 * E, 1, h); /* row 1: segment 2, position 32 */
        RQ_CHECK(rq_rel_l2(h, q.ref[2] + 32 * V, V) <= SEG_REL_TOL);
        rq_free(h);

        /* errors; a refused call changes nothing (the next valid call still matches) */
        int32_t t1 = q.tok[1][0], tb = V;
        int64_t s0 = 0, s1 = 1, s4 = 4, sm = -1, p0 = 0, p5 = 5, p44 = 44, p100 = SEG_LEN;
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s0, &p44, 1, RQ_LOGITS_ALL) == RQ_EINVAL &&
                 strstr(rq_last_error(), "holds only 42"));
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s4, &p0, 1, RQ_LOGITS_ALL) == RQ_EINVAL &&
                 strstr(rq_last_error(), "segment 4"));
        RQ_CHECK(rq_model_forward_segments(st, &t1, &sm, &p0, 1, RQ_LOGITS_ALL) == RQ_EINVAL);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p100, 1, RQ_LOGITS_ALL) == RQ_EINVAL &&
                 strstr(rq_last_error(), "position 100"));
        RQ_CHECK(rq_model_forward_segments(st, &tb, &s1, &p5, 1, RQ_LOGITS_ALL) == RQ_EINVAL &&
                 strstr(rq_last_error(), "token id"));
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p5, 0, RQ_LOGITS_ALL) == RQ_EINVAL);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p5, MAX_ROWS + 1, RQ_LOGITS_ALL) == RQ_EINVAL);
        int32_t t2[3] = {q.tok[0][42], q.tok[1][5], q.tok[0][44]};
        int64_t g2[3] = {0, 1, 0}, q2[3] = {42, 5, 44}; /* segment 0 skips position 43 */
        RQ_CHECK(rq_model_forward_segments(st, t2, g2, q2, 3, RQ_LOGITS_ALL) == RQ_EINVAL &&
                 strstr(rq_last_error(), "consecutive"));
        RQ_CHECK(st->seg_fill[0] == 42 && st->seg_fill[1] == 7);
        q2[2] = 43, t2[2] = q.tok[0][43];
        RQ_CHECK(rq_model_forward_segments(st, t2, g2, q2, 3, RQ_LOGITS_ALL) == RQ_OK);
        RQ_CHECK(rq_rel_l2(st->logits, q.ref[0] + 42 * V, V) <= SEG_REL_TOL);
        RQ_CHECK(rq_rel_l2(st->logits + V, q.ref[1] + 5 * V, V) <= SEG_REL_TOL);
        RQ_CHECK(rq_rel_l2(st->logits + 2 * V, q.ref[0] + 43 * V, V) <= SEG_REL_TOL);
        RQ_CHECK(st->seg_fill[0] == 44 && st->seg_fill[1] == 6);

        /* a plain forward on the state empties the segments */
        RQ_CHECK(rq_model_forward(st, q.tok[0], 2, 0, RQ_LOGITS_LAST) == RQ_OK);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p5, 1, RQ_LOGITS_ALL) == RQ_EINVAL);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p0, 1, RQ_LOGITS_ALL) == RQ_OK);
        RQ_CHECK(rq_rel_l2(st->logits, q.ref[1], V) <= SEG_REL_TOL);
        /* segment length checks; re-splitting empties every segment */
        RQ_CHECK(rq_state_set_segments(st, 0) == RQ_EINVAL);
        RQ_CHECK(rq_state_set_segments(st, N_CTX + 1) == RQ_EINVAL);
        RQ_CHECK(rq_state_set_segments(st, 200) == RQ_OK && st->n_seg == 2 && st->seg_fill[0] == 0);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s1, &p5, 1, RQ_LOGITS_ALL) == RQ_EINVAL);
        rq_state_free(st);

        /* no segments; logits of all rows need a state made for them */
        RQ_ASSERT(rq_state_new(m, 64, 8, false, &st) == RQ_OK);
        RQ_CHECK(rq_model_forward_segments(st, &t1, &s0, &p0, 1, RQ_LOGITS_LAST) == RQ_EINVAL &&
                 strstr(rq_last_error(), "no segments"));
        RQ_CHECK(rq_state_set_segments(st, 16) == RQ_OK);
        int32_t t3[2] = {t1, t1};
        int64_t g3[2] = {0, 1}, q3[2] = {0, 0};
        RQ_CHECK(rq_model_forward_segments(st, t3, g3, q3, 2, RQ_LOGITS_ALL) == RQ_EINVAL);
        RQ_CHECK(rq_model_forward_segments(st, t3, g3, q3, 2, RQ_LOGITS_LAST) == RQ_OK);
        RQ_CHECK(rq_rel_l2(st->logits, q.ref[1], V) <= SEG_REL_TOL);
        rq_state_free(st);
        seqs_free(&q);
    }

    /* the packed 4-bit cache is refused */
    rq_state *st;
    RQ_ASSERT(!m->online.kv_fake && m->online.cfg.kv_bits == 4);
    RQ_ASSERT(rq_state_new(m, 64, 8, true, &st) == RQ_OK);
    RQ_CHECK(rq_state_set_segments(st, 16) == RQ_OK);
    int32_t t0 = 3;
    int64_t z = 0;
    RQ_CHECK(rq_model_forward_segments(st, &t0, &z, &z, 1, RQ_LOGITS_ALL) == RQ_EUNSUPPORTED &&
             strstr(rq_last_error(), "packed"));
    rq_state_free(st);
    rq_model_free(m);
}

/* ---- calibration: batched vs one sequence at a time ------------------------------------ */

/* The generator as it was before batching: one sequence after another, one token per
 * forward call. */
static int32_t *calib_sequential(const rq_model *m, const rq_tokenizer *tok, int64_t n_seq, int64_t seq_len,
                                 float temperature, uint64_t seed) {
    int32_t bos = rq_tokenizer_bos(tok);
    int32_t *ids = rq_xalloc(n_seq * seq_len * (int64_t)sizeof(int32_t));
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, seq_len, 1, false, &st) == RQ_OK);
    for (int64_t q = 0; q < n_seq; q++) {
        rq_sampler_params sp = {.temperature = temperature, .top_p = 1.0f, .seed = seed + (uint64_t)q};
        rq_sampler *smp;
        RQ_ASSERT(rq_sampler_new(&sp, m->cfg.n_vocab, &smp) == RQ_OK);
        int32_t *seq = ids + q * seq_len;
        seq[0] = bos;
        for (int64_t t = 0; t + 1 < seq_len; t++) {
            RQ_ASSERT(rq_model_forward(st, &seq[t], 1, t, RQ_LOGITS_LAST) == RQ_OK);
            int32_t next = rq_sampler_sample(smp, st->logits);
            seq[t + 1] = rq_tokenizer_is_eog(tok, next) ? bos : next;
        }
        rq_sampler_free(smp);
    }
    rq_state_free(st);
    return ids;
}

/* Compares the batched generator with the sequential loop; returns the number of ids
 * that differ (and prints where the first one is). *n_bos: BOS tokens after position 0
 * (restarts after an end-of-generation token). */
static int64_t calib_compare(const rq_model *m, const rq_tokenizer *tok, int64_t n_seq, int64_t seq_len,
                             float temperature, uint64_t seed, int64_t *n_bos) {
    int32_t *ids = NULL;
    rq_status s = rq_calib_generate(m, tok, n_seq, seq_len, temperature, seed, false, &ids);
    RQ_CHECK_MSG(s == RQ_OK, "rq_calib_generate: %s", rq_last_error());
    if (s != RQ_OK) return -1;
    int32_t *ref = calib_sequential(m, tok, n_seq, seq_len, temperature, seed);
    int64_t diff = 0, first = -1;
    *n_bos = 0;
    for (int64_t i = 0; i < n_seq * seq_len; i++) {
        if (ids[i] != ref[i] && first < 0) first = i;
        diff += ids[i] != ref[i];
        *n_bos += i % seq_len && ref[i] == rq_tokenizer_bos(tok);
    }
    if (first >= 0)
        printf("note: calibration ids differ first at sequence %lld position %lld (%d vs %d)\n",
               (long long)(first / seq_len), (long long)(first % seq_len), ids[first], ref[first]);
    rq_free(ids);
    rq_free(ref);
    return diff;
}

/* A tokenizer for the tiny model: V pieces, <s> = 1 and </s> = 2 (end of generation). */
static rq_tokenizer *tiny_tokenizer(void) {
    static char names[V][8];
    static const char *pieces[V];
    static int32_t types[V];
    for (int i = 0; i < V; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        pieces[i] = names[i];
        types[i] = RQ_TOKEN_NORMAL;
    }
    pieces[0] = "<unk>", pieces[1] = "<s>", pieces[2] = "</s>";
    types[0] = RQ_TOKEN_UNKNOWN, types[1] = types[2] = RQ_TOKEN_CONTROL;
    rq_tokenizer_spec spec;
    rq_tokenizer_spec_init(&spec);
    spec.kind = RQ_TOKENIZER_SPM;
    spec.n_vocab = V;
    spec.tokens = pieces;
    spec.token_types = types;
    rq_tokenizer *t = NULL;
    rq_status s = rq_tokenizer_create(&spec, &t);
    RQ_CHECK_MSG(s == RQ_OK, "tiny tokenizer: %s", rq_last_error());
    return t;
}

static void test_tiny_calib(void) {
    const char *path = write_tiny("tiny_calib.gguf", (tiny_opts){0});
    rq_model *m = load(path);
    rq_tokenizer *tok = tiny_tokenizer();
    if (!m || !tok) return;
    RQ_CHECK(rq_tokenizer_is_eog(tok, 2));
    int64_t n_bos = 0;
    int64_t diff = calib_compare(m, tok, 5, 40, 1.0f, 17, &n_bos);
    RQ_CHECK_MSG(diff == 0, "tiny calibration, temperature 1: %lld ids differ from the sequential loop",
                 (long long)diff);
    RQ_CHECK_MSG(n_bos > 0, "tiny calibration sampled no end-of-generation token to restart from"); /* V = 67 */
    diff = calib_compare(m, tok, 3, 24, 0.0f, 17, &n_bos);
    RQ_CHECK_MSG(diff == 0, "tiny calibration, greedy: %lld ids differ", (long long)diff);
    int32_t *ids;
    RQ_CHECK(rq_calib_generate(m, tok, 0, 24, 1.0f, 1, false, &ids) == RQ_EINVAL);
    RQ_CHECK(rq_calib_generate(m, tok, 2, 1, 1.0f, 1, false, &ids) == RQ_EINVAL);
    rq_tokenizer_free(tok);
    rq_model_free(m);
}

/* ---- the real model ----------------------------------------------------------------------- */

static const char *g_chat_path;

static bool ids_equal_text(const rq_tokenizer *tok, const int32_t *ids, int64_t n, const char *text) {
    int32_t *ref;
    int64_t nr;
    if (rq_tokenizer_encode(tok, text, (int64_t)strlen(text), false, true, &ref, &nr) != RQ_OK) return false;
    bool eq = nr == n && !memcmp(ref, ids, (size_t)n * sizeof(int32_t));
    rq_free(ref);
    return eq;
}

/* Chat-format calibration (rq_calib_generate_mixed) on SmolLM2's ChatML template: the turn
 * markers are those of the template written out here; a chat sequence starts with the
 * system block and the user header, and every end of a turn the model writes becomes the
 * next turn's header, alternately the assistant's and the user's; the plain sequences of
 * the mix are those of rq_calib_generate (the same sampling stream per index, the same
 * batch shapes). Greedy, so that the text does not depend on BLAS rounding. */
static void test_real_chat(const char *path, const rq_model *m, const rq_tokenizer *tok) {
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK);
    rq_chat_template ct;
    RQ_ASSERT(rq_chat_template_from_gguf(g, &ct) == RQ_OK);
    rq_calib_chat chat;
    RQ_ASSERT(rq_calib_chat_make(&ct, tok, &chat) == RQ_OK);
    rq_chat_template_clear(&ct);
    rq_gguf_close(g);
    const char *sys = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                      "Face<|im_end|>\n<|im_start|>user\n";
    RQ_CHECK_MSG(ids_equal_text(tok, chat.start, chat.n_start, sys), "chat start piece");
    RQ_CHECK_MSG(ids_equal_text(tok, chat.to_asst, chat.n_to_asst, "<|im_end|>\n<|im_start|>assistant\n"),
                 "chat piece user -> assistant");
    RQ_CHECK_MSG(ids_equal_text(tok, chat.to_user, chat.n_to_user, "<|im_end|>\n<|im_start|>user\n"),
                 "chat piece assistant -> user");
    enum { NS = 4, LEN = 160 };
    int32_t *mix = NULL, *plain = NULL;
    RQ_ASSERT(rq_calib_generate_mixed(m, tok, NS, LEN, 0.0f, 5, &chat, 0.5, false, &mix) == RQ_OK);
    RQ_ASSERT(rq_calib_generate(m, tok, NS, LEN, 0.0f, 5, false, &plain) == RQ_OK);
    int64_t turns = 0;
    for (int q = 0; q < NS; q++) {
        const int32_t *a = mix + q * LEN;
        if (q % 2 == 0) { /* ⌊(q+1)/2⌋ > ⌊q/2⌋ for odd q only */
            RQ_CHECK_MSG(!memcmp(a, plain + q * LEN, LEN * sizeof(int32_t)), "plain sequence %d of the mix differs", q);
            continue;
        }
        RQ_CHECK_MSG(!memcmp(a, chat.start, (size_t)chat.n_start * sizeof(int32_t)), "chat sequence %d's start", q);
        bool user = true;
        for (int64_t t = chat.n_start; t < LEN; t++) {
            if (!rq_tokenizer_is_eog(tok, a[t])) continue;
            const int32_t *pc = user ? chat.to_asst : chat.to_user;
            int64_t np = user ? chat.n_to_asst : chat.n_to_user, k = 0;
            while (k < np && t + k < LEN && a[t + k] == pc[k]) k++;
            RQ_CHECK_MSG(k == np || t + k == LEN, "chat sequence %d: end of turn at %lld not followed by the %s header", q,
                         (long long)t, user ? "assistant" : "user");
            t += k - 1, user = !user, turns++;
        }
    }
    RQ_CHECK_MSG(turns >= 2, "chat calibration: the model ended only %lld turns in 2 x %d tokens", (long long)turns,
                 LEN);
    printf("real model, chat calibration: %lld turns ended in 2 chat sequences of %d tokens\n", (long long)turns, LEN);
    rq_free(mix);
    rq_free(plain);
    RQ_CHECK(rq_calib_generate_mixed(m, tok, NS, LEN, 0.0f, 5, &chat, 1.5, false, &mix) == RQ_EINVAL);
    rq_calib_chat_clear(&chat);
}

static void test_real(void) {
    const char *path = rq_test_model_path();
    if (!path) {
        printf("note: default model absent, real-model checks skipped\n");
        return;
    }
    g_chat_path = path;
    rq_gguf *g;
    RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK);
    rq_tokenizer *tok;
    RQ_ASSERT(rq_tokenizer_load(g, &tok) == RQ_OK);
    rq_model *m = NULL;
    RQ_ASSERT(rq_model_load(g, &m) == RQ_OK);
    rq_gguf_close(g);

    const int len[3] = {24, 10, 17};
    seqs q;
    seqs_make(m, &q, 3, len, 23);
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, 3 * 32, 32, true, &st) == RQ_OK);
    RQ_ASSERT(rq_state_set_segments(st, 32) == RQ_OK);
    double worst = run_schedule(m, st, &q, 9, 3);
    RQ_CHECK_MSG(worst <= SEG_REL_TOL, "real model: segmented vs alone, worst row rel L2 %.3g", worst);
    printf("real model: segmented vs alone, worst row rel L2 %.3g\n", worst);
    rq_state_free(st);
    seqs_free(&q);

    int64_t n_bos;
    int64_t diff = calib_compare(m, tok, 3, 24, 0.0f, 42, &n_bos);
    RQ_CHECK_MSG(diff == 0, "real model calibration, greedy: %lld ids differ from the sequential loop",
                 (long long)diff);
    test_real_chat(g_chat_path, m, tok);
    rq_tokenizer_free(tok);
    rq_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_segments_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    (void)naive_forward;
    test_tiny_segments();
    test_tiny_calib();
    test_real();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

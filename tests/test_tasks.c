/* Tests of src/eval/tasks*: the harness's prompts for each task on hand-written items
 * (exact strings), the WinoGrande split, the LAMBADA last-word split, the scoring
 * arithmetic (argmax ties and NaN as numpy, acc_norm, stderr), the errors for malformed
 * files ("FILE:LINE: what"), the harness's tokenization of a pair, and the evaluator on a
 * tiny random model: the log-likelihoods from trie/tree batches (several batch sizes, with
 * truncation) equal those of a plain forward of each request alone, computed here.
 * tests/sh_tasks_ref.sh checks the real model against the numpy reference. */
#include "testing.h"

#include "base/pool.h"
#include "eval/tasks.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "tiny_llama.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* float32 tree batches vs float32 plain forwards of a 2-layer model: summation order
 * only (observed ~1e-6 on sums of a few log-probabilities). */
#define LL_TOL 1e-4

static rq_task *parse(rq_task_id id, const char *text, const char *labels) {
    rq_task *t = NULL;
    rq_status s = rq_task_parse(id, text, (int64_t)strlen(text), "items.jsonl", labels,
                                labels ? (int64_t)strlen(labels) : 0, "labels.lst", 0, &t);
    RQ_CHECK_MSG(s == RQ_OK, "parse %s: %s", rq_task_name(id), rq_last_error());
    return t;
}

static void expect_req(const rq_task_item *it, int k, const char *ctx, const char *cont) {
    RQ_CHECK_MSG(k < it->n_req, "request %d of %d", k, it->n_req);
    if (k >= it->n_req) return;
    const rq_task_request *r = &it->req[k];
    RQ_CHECK_MSG(r->context_len == (int64_t)strlen(ctx) && !strcmp(r->context, ctx), "context [%s], expected [%s]",
                 r->context, ctx);
    RQ_CHECK_MSG(r->continuation_len == (int64_t)strlen(cont) && !strcmp(r->continuation, cont),
                 "continuation [%s], expected [%s]", r->continuation, cont);
}

/* ---- prompts ------------------------------------------------------------------------------ */

static void test_prompts(void) {
    rq_task *t = parse(RQ_TASK_ARC_EASY,
                       "{\"id\": \"q1\", \"question\": {\"stem\": \"Which is a gas?\", \"choices\": ["
                       "{\"text\": \"ice\", \"label\": \"A\"}, {\"text\": \"steam\", \"label\": \"B\"}, "
                       "{\"text\": \"wood\", \"label\": \"C\"}]}, \"answerKey\": \"B\"}\n"
                       "{\"question\": {\"stem\": \"Pick \\\"one\\\".\", \"choices\": [{\"text\": \"caf\\u00e9\", "
                       "\"label\": \"1\"}, {\"text\": \"tea\", \"label\": \"2\"}]}, \"answerKey\": \"2\"}\n",
                       NULL);
    if (t) {
        RQ_CHECK(t->n_items == 2 && t->n_file_items == 2);
        const rq_task_item *it = &t->items[0];
        RQ_CHECK(it->n_req == 3 && it->gold == 1 && it->line == 1);
        expect_req(it, 0, "Question: Which is a gas?\nAnswer:", " ice");
        expect_req(it, 1, "Question: Which is a gas?\nAnswer:", " steam");
        expect_req(it, 2, "Question: Which is a gas?\nAnswer:", " wood");
        RQ_CHECK(it->norm_len[0] == 3 && it->norm_len[1] == 5 && it->norm_len[2] == 4);
        it = &t->items[1];
        RQ_CHECK(it->n_req == 2 && it->gold == 1 && it->line == 2);
        expect_req(it, 0, "Question: Pick \"one\".\nAnswer:", " caf\xc3\xa9");
        RQ_CHECK(it->norm_len[0] == 4); /* Python len(): code points, not bytes */
        rq_task_free(t);
    }
    t = parse(RQ_TASK_ARC_CHALLENGE,
              "{\"question\": {\"stem\": \"Q?\", \"choices\": [{\"text\": \"x\", \"label\": \"A\"}, "
              "{\"text\": \"y\", \"label\": \"B\"}]}, \"answerKey\": \"A\"}",
              NULL); /* no final newline */
    if (t) {
        RQ_CHECK(t->n_items == 1 && t->items[0].gold == 0);
        expect_req(&t->items[0], 1, "Question: Q?\nAnswer:", " y");
        rq_task_free(t);
    }
    t = parse(RQ_TASK_PIQA,
              "{\"goal\": \"To dry a shirt\", \"sol1\": \"hang it up.\", \"sol2\": \"put it in water.\"}\n"
              "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b \\u2019c\"}\n",
              "0\n1\n");
    if (t) {
        RQ_CHECK(t->n_items == 2 && t->items[0].gold == 0 && t->items[1].gold == 1);
        expect_req(&t->items[0], 0, "Question: To dry a shirt\nAnswer:", " hang it up.");
        expect_req(&t->items[0], 1, "Question: To dry a shirt\nAnswer:", " put it in water.");
        RQ_CHECK(t->items[0].norm_len[0] == 11 && t->items[1].norm_len[1] == 4);
        rq_task_free(t);
    }
    /* WinoGrande: partial scoring; the target is the stripped rest with one leading space */
    t = parse(RQ_TASK_WINOGRANDE,
              "{\"qID\": \"a\", \"sentence\": \"The trophy doesn't fit into the suitcase because _ is too large.\", "
              "\"option1\": \"the trophy\", \"option2\": \"the suitcase\", \"answer\": \"1\"}\n"
              "{\"sentence\": \"Sarah thanked Maria because _'s gift was great.  \", \"option1\": \"Sarah\", "
              "\"option2\": \"Maria\", \"answer\": \"2\"}\n"
              "{\"sentence\": \"It was _\", \"option1\": \"x\", \"option2\": \"y_z\", \"answer\": \"2\"}\n",
              "1\n2\n2\n");
    if (t) {
        RQ_CHECK(t->n_items == 3);
        const rq_task_item *it = &t->items[0];
        RQ_CHECK(it->gold == 0);
        expect_req(it, 0, "The trophy doesn't fit into the suitcase because the trophy", " is too large.");
        expect_req(it, 1, "The trophy doesn't fit into the suitcase because the suitcase", " is too large.");
        it = &t->items[1];
        RQ_CHECK(it->gold == 1);
        expect_req(it, 0, "Sarah thanked Maria because Sarah", " 's gift was great.");
        expect_req(it, 1, "Sarah thanked Maria because Maria", " 's gift was great.");
        it = &t->items[2]; /* blank at the end: the target is a lone space */
        expect_req(it, 0, "It was x", " ");
        expect_req(it, 1, "It was y_z", " ");
        RQ_CHECK(t->items[0].norm_len[0] == 59); /* len(choice) = the partial context */
        rq_task_free(t);
    }
    /* LAMBADA: text.split(' ') — only the space character separates words */
    t = parse(RQ_TASK_LAMBADA,
              "{\"text\": \"he said \\\"hi\\\" to the man\"}\n"
              "{\"text\": \"the end of the  line\"}\n"
              "{\"text\": \"first\\nsecond\\tthird\"}\n"
              "{\"text\": \"one two\\nthree\"}\n",
              NULL);
    if (t) {
        RQ_CHECK(t->n_items == 4 && t->items[0].n_req == 1 && t->items[0].gold == 0);
        expect_req(&t->items[0], 0, "he said \"hi\" to the", " man");
        expect_req(&t->items[1], 0, "the end of the ", " line"); /* "  ": an empty word */
        expect_req(&t->items[2], 0, "", " first\nsecond\tthird"); /* no space at all */
        expect_req(&t->items[3], 0, "one", " two\nthree");
        rq_task_free(t);
    }
    t = parse(RQ_TASK_BOOLQ,
              "{\"question\": \"is the sky blue\", \"title\": \"Sky\", \"answer\": true, \"passage\": \"The sky "
              "is blue.\"}\n{\"question\": \"q\", \"title\": \"\", \"answer\": false, \"passage\": \"p\"}\n",
              NULL);
    if (t) {
        RQ_CHECK(t->n_items == 2 && t->items[0].gold == 1 && t->items[1].gold == 0);
        expect_req(&t->items[0], 0, "The sky is blue.\nQuestion: is the sky blue?\nAnswer:", " no");
        expect_req(&t->items[0], 1, "The sky is blue.\nQuestion: is the sky blue?\nAnswer:", " yes");
        expect_req(&t->items[1], 1, "p\nQuestion: q?\nAnswer:", " yes");
        rq_task_free(t);
    }
    /* --limit keeps the first items after checking the whole file */
    rq_task *lt = NULL;
    const char *three = "{\"text\": \"a b\"}\n{\"text\": \"c d\"}\n{\"text\": \"e f\"}\n";
    RQ_CHECK(rq_task_parse(RQ_TASK_LAMBADA, three, (int64_t)strlen(three), "l.jsonl", NULL, 0, NULL, 2, &lt) == RQ_OK);
    if (lt) {
        RQ_CHECK(lt->n_items == 2 && lt->n_file_items == 3);
        expect_req(&lt->items[1], 0, "c", " d");
        rq_task_free(lt);
    }
    /* names */
    rq_task_id id;
    RQ_CHECK(rq_task_from_name("winogrande", &id) == RQ_OK && id == RQ_TASK_WINOGRANDE);
    RQ_CHECK(rq_task_from_name("lambada_openai", &id) == RQ_OK && id == RQ_TASK_LAMBADA);
    RQ_CHECK(rq_task_from_name("hellaswag", &id) == RQ_EINVAL && strstr(rq_last_error(), "unknown task 'hellaswag'"));
    for (int i = 0; i < RQ_TASK_COUNT; i++)
        RQ_CHECK(rq_task_from_name(rq_task_name((rq_task_id)i), &id) == RQ_OK && id == (rq_task_id)i);
    RQ_CHECK(rq_task_has_acc_norm(RQ_TASK_ARC_EASY) && rq_task_has_acc_norm(RQ_TASK_PIQA) &&
             !rq_task_has_acc_norm(RQ_TASK_BOOLQ) && !rq_task_has_acc_norm(RQ_TASK_WINOGRANDE));
}

/* ---- malformed files ------------------------------------------------------------------------ */

static void expect_error(rq_task_id id, const char *text, const char *labels, const char *want) {
    rq_task *t = NULL;
    rq_status s = rq_task_parse(id, text, (int64_t)strlen(text), "items.jsonl", labels,
                                labels ? (int64_t)strlen(labels) : 0, "labels.lst", 0, &t);
    RQ_CHECK_MSG(s == RQ_EFORMAT && t == NULL, "%s: [%.60s] gave status %d, expected a format error", rq_task_name(id),
                 text, (int)s);
    RQ_CHECK_MSG(strcmp(rq_last_error(), want) == 0, "error\n  [%s]\nexpected\n  [%s]", rq_last_error(), want);
    rq_task_free(t);
}

static void test_errors(void) {
    const char *piqa2 = "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"h\", \"sol1\": \"c\", "
                        "\"sol2\": \"d\"}\n";
    expect_error(RQ_TASK_PIQA, "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": }\n",
                 "0\n1\n", "items.jsonl:2: column 23: expected a value, found '}'");
    expect_error(RQ_TASK_PIQA, "{\"goal\": \"g\", \"sol1\": \"a\"}\n", "0\n", "items.jsonl:1: missing field 'sol2'");
    expect_error(RQ_TASK_PIQA, piqa2, "0\n2\n", "labels.lst:2: label '2' is not 0 or 1");
    expect_error(RQ_TASK_PIQA, piqa2, "0\n", "labels.lst:2: missing label: items.jsonl has 2 items, this file 1 labels");
    expect_error(RQ_TASK_PIQA, piqa2, "0\n1\n1\n", "labels.lst:3: more labels than the 2 items of items.jsonl");
    expect_error(RQ_TASK_PIQA, piqa2, "0\n\n", "labels.lst:2: label '' is not 0 or 1");
    expect_error(RQ_TASK_PIQA, piqa2, "0\n1 \n", "labels.lst:2: label '1 ' is not 0 or 1");
    expect_error(RQ_TASK_ARC_EASY,
                 "{\"question\": {\"stem\": \"s\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, "
                 "\"answerKey\": \"E\"}\n",
                 NULL, "items.jsonl:1: answerKey 'E' is not the label of any choice");
    expect_error(RQ_TASK_ARC_EASY, "{\"question\": {\"choices\": []}, \"answerKey\": \"A\"}\n", NULL,
                 "items.jsonl:1: missing field 'question.stem'");
    expect_error(RQ_TASK_ARC_EASY, "{\"question\": {\"stem\": \"s\", \"choices\": []}, \"answerKey\": \"A\"}\n", NULL,
                 "items.jsonl:1: field 'question.choices' must be a non-empty array");
    expect_error(RQ_TASK_ARC_EASY,
                 "{\"question\": {\"stem\": \"s\", \"choices\": [{\"text\": 3, \"label\": \"A\"}]}, "
                 "\"answerKey\": \"A\"}\n",
                 NULL, "items.jsonl:1: field 'question.choices[0].text' is a number, expected a string");
    const char *wino = "{\"sentence\": \"a _ b\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n";
    expect_error(RQ_TASK_WINOGRANDE, wino, "2\n", "labels.lst:1: label 2 disagrees with answer \"1\" of items.jsonl:1");
    expect_error(RQ_TASK_WINOGRANDE, wino, "3\n", "labels.lst:1: label '3' is not 1 or 2");
    expect_error(RQ_TASK_WINOGRANDE,
                 "{\"sentence\": \"no blank\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n", "1\n",
                 "items.jsonl:1: sentence has no blank '_'");
    expect_error(RQ_TASK_WINOGRANDE,
                 "{\"sentence\": \"a _\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"0\"}\n", "1\n",
                 "items.jsonl:1: answer '0' is not \"1\" or \"2\"");
    expect_error(RQ_TASK_BOOLQ, "{\"question\": \"q\", \"passage\": \"p\", \"answer\": \"true\"}\n", NULL,
                 "items.jsonl:1: field 'answer' is a string, expected a boolean");
    expect_error(RQ_TASK_LAMBADA, "{\"text\": \"a b\"}\n\n{\"text\": \"c d\"}\n", NULL,
                 "items.jsonl:2: empty line (one JSON object per line expected)");
    expect_error(RQ_TASK_LAMBADA, "{\"text\": \"a b\"}\n[1, 2]\n", NULL,
                 "items.jsonl:2: the line holds a JSON array, expected an object");
    expect_error(RQ_TASK_LAMBADA, "{\"text\": \"a b\"}\n{\"text\": \"\\ud800\"}\n", NULL,
                 "items.jsonl:2: column 11: high surrogate \\uD800 not followed by a \\u low surrogate");
    expect_error(RQ_TASK_LAMBADA, "{\"text\": \"a b\", \"text\": \"c\"}\n", NULL,
                 "items.jsonl:1: column 17: duplicate key \"text\" in object");
    expect_error(RQ_TASK_LAMBADA, "", NULL, "items.jsonl: no items");
    /* a missing file */
    rq_task *t = NULL;
    RQ_CHECK(rq_task_load(RQ_TASK_BOOLQ, "/nonexistent-dir", 0, &t) == RQ_EIO && t == NULL &&
             strstr(rq_last_error(), "cannot open '/nonexistent-dir/boolq/dev.jsonl'"));
}

/* ---- arithmetic ------------------------------------------------------------------------------- */

static void test_arithmetic(void) {
    double a[4] = {-3, -1, -1, -2};
    RQ_CHECK(rq_task_argmax(a, 4) == 1); /* ties: the first maximum */
    double b[3] = {-1, NAN, 5};
    RQ_CHECK(rq_task_argmax(b, 3) == 1); /* numpy: the first NaN */
    double c[1] = {-7};
    RQ_CHECK(rq_task_argmax(c, 1) == 0);

    /* acc picks the larger ll, acc_norm the larger ll per character */
    rq_task_item it = {.n_req = 2, .gold = 1};
    double norm[2] = {2, 6}, ll[2] = {-10, -12};
    it.norm_len = norm;
    int pred, pred_norm;
    rq_task_predict(&it, ll, &pred, &pred_norm);
    RQ_CHECK(pred == 0 && pred_norm == 1); /* -5/char vs -2/char */

    RQ_CHECK_NEAR(rq_task_stderr(0.5, 101), 0.05, 1e-15);             /* sqrt(0.25 / 100) */
    RQ_CHECK_NEAR(rq_task_stderr(0.25, 4), sqrt(0.1875 / 3), 1e-15);
    RQ_CHECK(rq_task_stderr(1.0, 50) == 0 && rq_task_stderr(0.5, 1) == 0);
    /* the 0/1 sample stddev / sqrt(n), computed the long way */
    int x[7] = {1, 0, 0, 1, 1, 1, 0};
    double mean = 4.0 / 7, ss = 0;
    for (int i = 0; i < 7; i++) ss += (x[i] - mean) * (x[i] - mean);
    RQ_CHECK_NEAR(rq_task_stderr(mean, 7), sqrt(ss / 6) / sqrt(7), 1e-15);

    /* Python str.rstrip() */
    RQ_CHECK(rq_task_rstrip_len("ab  \n", 5) == 3);
    RQ_CHECK(rq_task_rstrip_len("ab\xc2\xa0", 4) == 2);     /* U+00A0 */
    RQ_CHECK(rq_task_rstrip_len("ab\xe3\x80\x80 ", 6) == 4); /* U+3000 + space */
    RQ_CHECK(rq_task_rstrip_len("caf\xc3\xa9", 5) == 0);
    RQ_CHECK(rq_task_rstrip_len("\x1f\x0b", 2) == 2);
    RQ_CHECK(rq_task_rstrip_len("   ", 3) == 3 && rq_task_rstrip_len("", 0) == 0);
    RQ_CHECK(rq_task_rstrip_len("a\xa0", 2) == 0); /* a lone continuation byte is not U+00A0 */
    RQ_CHECK(rq_task_rstrip_len("a\xe2\x80\x8b", 4) == 0); /* U+200B is not whitespace */
}

/* ---- a tiny SentencePiece vocabulary for the tiny model ------------------------------------- */

/* Lowercase letters, Q, A, ':', '?', the space piece, newline as a byte token, and a few
 * merged pieces so that tokens span letters (and a context boundary can fall inside one). */
static const char *k_pieces[] = {"<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81", "Q", "A", ":", "?", "a", "b", "c",
                                 "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
                                 "t", "u", "v", "w", "x", "y", "z", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "an",
                                 "er", "on", "es", "st", "\xe2\x96\x81" "a", "\xe2\x96\x81" "an", "ue", "ion", "sw"};
enum { N_PIECES = sizeof k_pieces / sizeof k_pieces[0] };

static rq_tokenizer *tiny_tokenizer(void) {
    static float scores[N_PIECES];
    static int32_t types[N_PIECES];
    for (int i = 0; i < N_PIECES; i++) {
        scores[i] = i < 35 ? 0.0f : (float)(100 - i);
        types[i] = RQ_TOKEN_NORMAL;
    }
    types[0] = RQ_TOKEN_UNKNOWN;
    types[1] = types[2] = RQ_TOKEN_CONTROL;
    types[3] = RQ_TOKEN_BYTE;
    rq_tokenizer_spec spec;
    rq_tokenizer_spec_init(&spec);
    spec.kind = RQ_TOKENIZER_SPM;
    spec.n_vocab = N_PIECES;
    spec.tokens = k_pieces;
    spec.scores = scores;
    spec.token_types = types;
    rq_tokenizer *t = NULL;
    RQ_ASSERT((int)N_PIECES <= (int)V);
    rq_status s = rq_tokenizer_create(&spec, &t);
    RQ_CHECK_MSG(s == RQ_OK, "tiny tokenizer: %s", rq_last_error());
    return t;
}

static int32_t *enc(const rq_tokenizer *t, const char *s, int64_t *n) {
    int32_t *ids = NULL;
    RQ_ASSERT(rq_tokenizer_encode(t, s, (int64_t)strlen(s), rq_tokenizer_add_bos_default(t), false, &ids, n) == RQ_OK);
    return ids;
}

static void test_encode_pair(const rq_tokenizer *t) {
    /* context with a trailing space: tokens(context.rstrip()) and the rest of
     * tokens(context + continuation) */
    rq_task_request r = {.context = "Question: the answer ", .context_len = 21, .continuation = "an", .continuation_len = 2};
    int32_t *ctx, *cont;
    int64_t nc, nk;
    RQ_CHECK(rq_task_encode_pair(t, &r, &ctx, &nc, &cont, &nk) == RQ_OK);
    int64_t n1, n2;
    int32_t *e1 = enc(t, "Question: the answer", &n1), *e2 = enc(t, "Question: the answer an", &n2);
    RQ_CHECK(nc == n1 && !memcmp(ctx, e1, (size_t)nc * 4));
    RQ_CHECK(nk == n2 - n1 && !memcmp(cont, e2 + n1, (size_t)nk * 4));
    RQ_CHECK(ctx[0] == 1); /* this SentencePiece vocabulary adds BOS (llama.cpp's default) */
    RQ_CHECK(nk == 1 && cont[0] == rq_tokenizer_find(t, "\xe2\x96\x81" "an", 5)); /* the space moved: " an" */
    rq_free(ctx), rq_free(cont), rq_free(e1), rq_free(e2);
    /* a boundary inside a token: "the" + "n" tokenizes as "the","n"? whatever it is, the
     * continuation is what follows the context's token count in the whole */
    r = (rq_task_request){.context = "Q: st", .context_len = 5, .continuation = "ion", .continuation_len = 3};
    RQ_CHECK(rq_task_encode_pair(t, &r, &ctx, &nc, &cont, &nk) == RQ_OK);
    e1 = enc(t, "Q: st", &n1), e2 = enc(t, "Q: stion", &n2);
    RQ_CHECK(nc == n1 && nk == (n2 > n1 ? n2 - n1 : 0) && (nk == 0 || !memcmp(cont, e2 + n1, (size_t)nk * 4)));
    rq_free(ctx), rq_free(cont), rq_free(e1), rq_free(e2);
    /* empty context: [BOS] and the continuation alone (no second BOS) */
    r = (rq_task_request){.context = "", .context_len = 0, .continuation = " the", .continuation_len = 4};
    RQ_CHECK(rq_task_encode_pair(t, &r, &ctx, &nc, &cont, &nk) == RQ_OK);
    RQ_CHECK(nc == 1 && ctx[0] == rq_tokenizer_bos(t) && nk >= 1 && cont[0] != rq_tokenizer_bos(t));
    rq_free(ctx), rq_free(cont);
}

/* ---- the evaluator vs plain forwards --------------------------------------------------------- */

typedef struct {
    int64_t n;
    struct rec {
        int64_t item;
        int req;
        int32_t seq[300];
        int64_t n_ctx, len;
        double ll;
        bool greedy;
    } r[64];
} recorder;

static void record(void *user, const rq_task *task, int64_t item, int req, const int32_t *ctx, int64_t n_ctx,
                   const int32_t *cont, int64_t n_cont, double ll, bool greedy) {
    recorder *rc = user;
    RQ_ASSERT(rc->n < 64 && n_ctx + n_cont <= 300);
    struct rec *r = &rc->r[rc->n++];
    r->item = item;
    r->req = req;
    memcpy(r->seq, ctx, (size_t)n_ctx * 4);
    memcpy(r->seq + n_ctx, cont, (size_t)n_cont * 4);
    r->n_ctx = n_ctx;
    r->len = n_ctx + n_cont;
    r->ll = ll;
    r->greedy = greedy;
}

/* ll and greedy of seq with a plain forward (all logits), log-softmax in double here */
static void direct(rq_model *m, const int32_t *seq, int64_t len, int64_t n_ctx, double *ll, bool *greedy) {
    *ll = 0;
    *greedy = true;
    if (len < 2 || n_ctx >= len) return;
    rq_state *st;
    RQ_ASSERT(rq_state_new(m, len, len, true, &st) == RQ_OK);
    RQ_ASSERT(rq_model_forward(st, seq, len - 1, 0, RQ_LOGITS_ALL) == RQ_OK);
    for (int64_t q = n_ctx - 1; q < len - 1; q++) {
        const float *z = st->logits + q * V;
        double mx = z[0], s = 0;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > z[best]) best = v;
        mx = z[best];
        for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
        *ll += (double)z[seq[q + 1]] - mx - log(s);
        *greedy &= best == seq[q + 1];
    }
    rq_state_free(st);
}

/* Returns the number of requests the harness's max_len truncates. */
static int64_t check_eval(rq_model *m, const rq_tokenizer *tok, const rq_task *task, int64_t batch, int64_t max_len) {
    recorder rc = {0};
    rq_task_eval_params p = {.batch_tokens = batch, .max_len = max_len, .on_request = record, .user = &rc};
    rq_task_result res;
    rq_status s = rq_task_eval(m, tok, task, &p, &res);
    RQ_CHECK_MSG(s == RQ_OK, "eval %s batch %lld: %s", rq_task_name(task->id), (long long)batch, rq_last_error());
    if (s != RQ_OK) return 0;
    int64_t n_req = 0, n_cut = 0;
    for (int64_t i = 0; i < task->n_items; i++) n_req += task->items[i].n_req;
    RQ_CHECK(rc.n == n_req && res.n_requests == n_req && res.n_items == task->n_items);
    RQ_CHECK(res.n_tokens <= res.n_tokens_flat && res.n_tokens > 0);
    double worst = 0;
    int greedy_bad = 0, n_acc = 0, n_norm = 0;
    int64_t k = 0;
    for (int64_t i = 0; i < task->n_items; i++) {
        const rq_task_item *it = &task->items[i];
        double lls[8];
        for (int q = 0; q < it->n_req; q++, k++) {
            const struct rec *r = &rc.r[k];
            RQ_CHECK(r->item == i && r->req == q);
            /* what was scored is the harness's pair, left-truncated to max_len + 1 */
            int32_t *ctx, *cont;
            int64_t nc, nk;
            RQ_ASSERT(rq_task_encode_pair(tok, &it->req[q], &ctx, &nc, &cont, &nk) == RQ_OK);
            int64_t full = nc + nk, cut = full > max_len + 1 ? full - (max_len + 1) : 0;
            n_cut += cut > 0;
            int32_t seq[300];
            memcpy(seq, ctx, (size_t)nc * 4);
            memcpy(seq + nc, cont, (size_t)nk * 4);
            RQ_CHECK(r->len == full - cut && r->n_ctx == nc - cut && !memcmp(r->seq, seq + cut, (size_t)r->len * 4));
            rq_free(ctx), rq_free(cont);
            double ll;
            bool g;
            direct(m, seq + cut, full - cut, nc - cut, &ll, &g);
            worst = fabs(ll - r->ll) > worst ? fabs(ll - r->ll) : worst;
            greedy_bad += g != r->greedy;
            lls[q] = r->ll;
        }
        int pred, pred_norm;
        rq_task_predict(it, lls, &pred, &pred_norm);
        n_acc += task->id == RQ_TASK_LAMBADA ? rc.r[k - 1].greedy : pred == it->gold;
        n_norm += pred_norm == it->gold;
    }
    RQ_CHECK_MSG(worst <= LL_TOL, "%s batch %lld max_len %lld: worst |ll - direct| %.3g", rq_task_name(task->id),
                 (long long)batch, (long long)max_len, worst);
    RQ_CHECK(greedy_bad == 0);
    RQ_CHECK_NEAR(res.acc, (double)n_acc / (double)task->n_items, 1e-12);
    RQ_CHECK_NEAR(res.acc_stderr, rq_task_stderr(res.acc, task->n_items), 1e-12);
    if (rq_task_has_acc_norm(task->id)) RQ_CHECK_NEAR(res.acc_norm, (double)n_norm / (double)task->n_items, 1e-12);
    if (task->id == RQ_TASK_LAMBADA) {
        double sum = 0;
        for (int64_t q = 0; q < rc.n; q++) sum += rc.r[q].ll;
        RQ_CHECK(res.has_ppl);
        RQ_CHECK_NEAR(res.ppl, exp(-sum / (double)task->n_items), 1e-9 * res.ppl);
    }
    RQ_CHECK(res.n_truncated == n_cut);
    return n_cut;
}

static void test_eval_tiny(void) {
    const char *path = write_tiny("tiny_tasks.gguf", (tiny_opts){0});
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(path, &m);
    RQ_CHECK_MSG(s == RQ_OK, "load: %s", rq_last_error());
    rq_tokenizer *tok = tiny_tokenizer();
    if (!m || !tok) return;
    test_encode_pair(tok);
    /* choices that repeat, that are prefixes of one another, of one and many tokens */
    rq_task *arc = parse(RQ_TASK_ARC_EASY,
                         "{\"question\": {\"stem\": \"the answer\", \"choices\": [{\"text\": \"an\", \"label\": \"A\"}, "
                         "{\"text\": \"an ant\", \"label\": \"B\"}, {\"text\": \"an\", \"label\": \"C\"}, "
                         "{\"text\": \"question\", \"label\": \"D\"}]}, \"answerKey\": \"B\"}\n"
                         "{\"question\": {\"stem\": \"what is the best\", \"choices\": [{\"text\": \"z\", \"label\": "
                         "\"A\"}, {\"text\": \"the hen\", \"label\": \"B\"}]}, \"answerKey\": \"A\"}\n"
                         "{\"question\": {\"stem\": \"a\", \"choices\": [{\"text\": \"stone\", \"label\": \"A\"}, "
                         "{\"text\": \"st\", \"label\": \"B\"}, {\"text\": \"sweet tea\", \"label\": \"C\"}]}, "
                         "\"answerKey\": \"C\"}\n",
                         NULL);
    /* contexts that differ only after a shared prefix */
    rq_task *wino = parse(RQ_TASK_WINOGRANDE,
                          "{\"sentence\": \"the cat saw the dog and _ ran away\", \"option1\": \"the cat\", "
                          "\"option2\": \"the dog\", \"answer\": \"2\"}\n"
                          "{\"sentence\": \"_ is here\", \"option1\": \"anne\", \"option2\": \"bob\", \"answer\": \"1\"}\n",
                          "2\n1\n");
    rq_task *lam = parse(RQ_TASK_LAMBADA,
                         "{\"text\": \"the quick brown fox jumps over the lazy dog and the\"}\n"
                         "{\"text\": \"questions and answers\"}\n{\"text\": \"solo\"}\n",
                         NULL);
    rq_task *bq = parse(RQ_TASK_BOOLQ,
                        "{\"question\": \"is it\", \"answer\": true, \"passage\": \"it is what it is\"}\n"
                        "{\"question\": \"does the sun set\", \"answer\": false, \"passage\": \"the sun sets in the "
                        "west and rises in the east\"}\n",
                        NULL);
    rq_task *tasks[4] = {arc, wino, lam, bq};
    const int64_t batches[4] = {1, 9, 40, 4096};
    int64_t n_cut = 0;
    for (int i = 0; i < 4; i++) {
        if (!tasks[i]) continue;
        for (int b = 0; b < 4; b++) {
            rq_threads_set(b % 2 ? 1 : 2);
            RQ_CHECK(check_eval(m, tok, tasks[i], batches[b], 256) == 0);
        }
        rq_threads_set(0);
        n_cut += check_eval(m, tok, tasks[i], 64, 9); /* the harness's left truncation */
    }
    RQ_CHECK(n_cut >= 8); /* most requests above are longer than 10 tokens */
    for (int i = 0; i < 4; i++) rq_task_free(tasks[i]);
    rq_tokenizer_free(tok);
    rq_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_tasks_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    (void)naive_forward;
    test_prompts();
    test_errors();
    test_arithmetic();
    test_eval_tiny();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

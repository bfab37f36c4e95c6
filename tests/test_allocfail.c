/* Allocation-failure injection (issue 15): the n-th fallible allocation (rq_alloc,
 * rq_calloc; base/status.h rq_alloc_fail_at) fails, for every n over the whole load of
 *   - a model file (the tiny llama of tiny_llama.h, float32) and its tokenizer (a small
 *     byte-level BPE vocabulary in the same file),
 *   - a rotquant quantized file of it (W2, RTN), on the fast path and the reference path,
 *   - a task file (the first items of ARC-Easy, when the data is present).
 * Each failure must end in an error whose message says "out of memory", with nothing
 * left allocated (the ASan build's leak checker runs this test: scripts/test.sh) and no
 * crash; past the last allocation the load succeeds. Prints the number of allocations
 * swept per load. */
#include "tiny_llama.h"

#include "eval/tasks.h"
#include "io/file.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "text/tokenizer.h"

#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const rq_gguf_str *toks;
    const int32_t *types;
} tok_keys;

static void add_tok_keys(rq_gguf_writer *w, void *user) {
    const tok_keys *k = user;
    static const rq_gguf_str merges[2] = {{"t h", 3}, {"th e", 4}};
    rq_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rq_gguf_writer_set_str(w, "tokenizer.ggml.pre", "smollm");
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", k->toks, V);
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RQ_GGUF_I32, k->types, V);
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 2);
}

/* Add a byte-level BPE tokenizer to a model file: V (67) tokens, the 65 printable ASCII
 * characters from '<' to '|' (letters included; each is its own GPT-2 byte character),
 * then "th" and "the" with the merges "t h" and "th e". */
static const char *add_tokenizer(const char *src, const char *file) {
    static char path[512], chars[V][2];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    rq_gguf_str toks[V];
    int32_t types[V];
    for (int i = 0; i < V - 2; i++) chars[i][0] = (char)('<' + i), toks[i] = (rq_gguf_str){chars[i], 1}, types[i] = 1;
    toks[V - 2] = (rq_gguf_str){"th", 2}, types[V - 2] = 1;
    toks[V - 1] = (rq_gguf_str){"the", 3}, types[V - 1] = 1;
    tok_keys k = {toks, types};
    rq_test_gguf_copy(src, path, NULL, add_tok_keys, &k);
    return path;
}

typedef rq_status (*load_fn)(const void *arg);

static rq_status load_model_and_tokenizer(const void *arg) {
    rq_gguf *g = NULL;
    rq_model *m = NULL;
    rq_tokenizer *t = NULL;
    rq_status s = rq_gguf_open(arg, &g);
    if (s == RQ_OK) s = rq_model_load(g, &m);
    if (s == RQ_OK) s = rq_tokenizer_load(g, &t);
    if (s == RQ_OK) { /* and use them: one encode, one state and forward */
        int32_t *ids = NULL;
        int64_t n = 0;
        rq_state *st = NULL;
        s = rq_tokenizer_encode(t, "the<Then", 8, false, false, &ids, &n);
        if (s == RQ_OK) s = rq_state_new(m, 16, 16, false, &st);
        if (s == RQ_OK) s = rq_model_forward(st, ids, n, 0, RQ_LOGITS_LAST);
        rq_state_free(st);
        rq_free(ids);
    }
    rq_tokenizer_free(t);
    rq_model_free(m);
    rq_gguf_close(g);
    return s;
}

static rq_status load_quantized_ref(const void *arg) {
    rq_gguf *g = NULL;
    rq_model *m = NULL;
    rq_model_load_opts o = {.ref_linear = true};
    rq_status s = rq_gguf_open(arg, &g);
    if (s == RQ_OK) s = rq_model_load_ex(g, &o, &m);
    rq_model_free(m);
    rq_gguf_close(g);
    return s;
}

static rq_status load_quantized_fast(const void *arg) {
    rq_model *m = NULL;
    rq_status s = rq_model_load_file(arg, &m);
    rq_model_free(m);
    return s;
}

typedef struct {
    const char *text;
    int64_t len;
} task_text;

static rq_status load_task(const void *arg) {
    const task_text *tt = arg;
    rq_task *t = NULL;
    rq_status s = rq_task_parse(RQ_TASK_ARC_EASY, tt->text, tt->len, "arc_easy", NULL, 0, NULL, 0, &t);
    rq_task_free(t);
    return s;
}

/* Fail allocation 1, 2, ... until the load no longer reaches the injected failure. */
static void sweep(const char *what, load_fn fn, const void *arg) {
    int64_t n = 1, failures = 0;
    for (;; n++) {
        rq_alloc_fail_at(n);
        rq_status s = fn(arg);
        int64_t calls = rq_alloc_calls();
        rq_alloc_fail_at(0);
        if (calls < n) { /* the load made fewer than n allocations: none failed */
            RQ_CHECK_MSG(s == RQ_OK, "%s: fails without an injected failure: %s", what, rq_last_error());
            break;
        }
        failures++;
        RQ_CHECK_MSG(s != RQ_OK, "%s: allocation %lld failed, the load succeeded", what, (long long)n);
        RQ_CHECK_MSG(s != RQ_OK && strstr(rq_last_error(), "out of memory"), "%s: allocation %lld: message '%s'", what,
                     (long long)n, rq_last_error());
        if (n > 100000) {
            RQ_CHECK_MSG(0, "%s: more than 100000 allocations", what);
            break;
        }
    }
    printf("%s: %lld allocations, each failed once: clear error every time\n", what, (long long)failures);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_allocfail_%d", (int)getpid());
    RQ_ASSERT(mkdir(tmpdir, 0700) == 0);
    init_weights();
    (void)naive_forward; /* tiny_llama.h's reference forward: not needed here */
    const char *plain = add_tokenizer(write_tiny("tiny.gguf", (tiny_opts){0}), "tiny_tok.gguf");
    sweep("model + tokenizer load, encode, forward", load_model_and_tokenizer, plain);

    /* the quantized file: W2 g16 RTN of the tiny model, written once */
    char qpath[512];
    snprintf(qpath, sizeof qpath, "%s/tiny_w2.gguf", tmpdir);
    rq_gguf *g;
    rq_model *m;
    RQ_ASSERT(rq_gguf_open(plain, &g) == RQ_OK && rq_model_load(g, &m) == RQ_OK);
    rq_ptq_opts o = rq_ptq_opts_default();
    o.method = RQ_PTQ_RTN;
    o.group = 16;
    rq_ptq_result res;
    RQ_ASSERT(rq_ptq_run(m, &o, NULL, 0, 0, &res) == RQ_OK);
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = 2;
    qi.group = 16;
    strcpy(qi.method, "rtn");
    strcpy(qi.embd_type, "f32");
    qi.r1 = rq_rot_make(RQ_ROT_NONE, E, 0, 0);
    qi.r2 = rq_rot_make(RQ_ROT_NONE, HD, 0, 0);
    RQ_ASSERT(rq_qmodel_write(m, g, &res, &qi, qpath) == RQ_OK);
    rq_ptq_result_free(&res);
    rq_model_free(m);
    rq_gguf_close(g);
    sweep("quantized file load (fast path)", load_quantized_fast, qpath);
    sweep("quantized file load (reference path)", load_quantized_ref, qpath);

    /* a task file: the first 20 lines of ARC-Easy */
    char *text = NULL;
    int64_t len = 0;
    const char *arc = "../shared/data/tasks/arc_easy/ARC-Easy-Test.jsonl";
    if (rq_file_read(arc, &text, &len) != RQ_OK) arc = "/work/shared/data/tasks/arc_easy/ARC-Easy-Test.jsonl";
    if (text || rq_file_read(arc, &text, &len) == RQ_OK) {
        int64_t cut = 0;
        for (int lines = 0; cut < len && lines < 20; cut++) lines += text[cut] == '\n';
        task_text tt = {text, cut};
        sweep("task file (20 ARC-Easy items)", load_task, &tt);
        rq_free(text);
    } else {
        printf("note: ARC-Easy data absent, task sweep skipped\n");
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rq_test_finish();
}

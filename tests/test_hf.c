/* Hugging Face checkpoints in (model/hf.h, text/tokenizer_hf.h, io/safetensors.h), on the
 * default model and, when present, Gemma-3-270M. tests/ref/make_hf_checkpoint.py (the
 * `gguf`, `safetensors` and `tokenizers` Python packages, not rotquant's code) writes a
 * checkpoint of each GGUF's float weights (dequantized; LLaMA: q/k rows put back in Hugging
 * Face's order, two shards with model.safetensors.index.json, byte-level BPE
 * tokenizer.json; Gemma-3: norms as w (the GGUF holds 1 + w), SentencePiece-style
 * tokenizer.json with byte fallback) into the build directory (reused while the script
 * and the GGUF are unchanged); then, for each:
 *   - the checkpoint's model gives the GGUF model's logits (relative L2 <= LOGITS_TOL) on
 *     64 tokens, and the same configuration;
 *   - its tokenizer gives the GGUF tokenizer's ids on the whole WikiText-2 test file, and
 *     the `tokenizers` package's ids (an independent oracle); the same special tokens,
 *     token types and chat prompt;
 *   - the CLI takes the directory for -m (run: the same greedy text as the GGUF);
 *   - broken checkpoints (a tensor's shape not matching config.json, a missing tensor, an
 *     unknown architecture, a corrupt shard, a missing config.json) are clear errors,
 *     through the library and through the CLI (exit 1, "rotquant: error: ...").
 * (the CLI and broken-checkpoint checks on the default model only). Skips (77) only when
 * the default model is absent; Gemma-3's checks are left out (with a note) without its
 * GGUF. */
#include "testing.h"

#include "io/gguf.h"
#include "model/hf.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "text/tokenizer_hf.h"

#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The checkpoint holds the very float32 values the GGUF path dequantizes (Q4_1/Q8_0 blocks
 * give d·q + m in float32 both in gguf-py and in rotquant), and the q/k row permutation
 * only moves rows: the forward computes the same numbers in the same order, so the logits
 * agree to rounding at most (observed: bit-identical). A wrong permutation gives ~1. */
#define LOGITS_TOL 1e-6

static const char *k_wiki = "../shared/data/wikitext-2-raw/wiki.test.raw";
static const char *k_gemma = "models/gemma-3-270m-q4_k_m.gguf";
static char g_build[512], g_dir[600], g_bad[600];

static char *read_all(const char *path, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = (int64_t)fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    RQ_ASSERT(f && fwrite(b, 1, n, f) == n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* A safetensors file: the header's length field hlen (-1: the header's own), the header,
 * then n zero bytes. */
static void write_st(const char *path, int64_t hlen, const char *header, size_t n) {
    size_t hl = strlen(header);
    uint8_t *b = calloc(1, 8 + hl + n);
    uint64_t field = hlen < 0 ? hl : (uint64_t)hlen;
    memcpy(b, &field, 8);
    memcpy(b + 8, header, hl);
    write_bytes(path, b, 8 + hl + n);
    free(b);
}

/* The first 64 tokens of wiki.test.raw (each model's tokenizer; Gemma's with BOS). */
static const int32_t k_ids_smollm[64] = {
    446, 6356, 389, 9226, 352, 446, 3717, 6356, 389, 9226, 352, 314, 354, 2321, 4771, 3297,
    8552, 284, 16984, 17523, 1673, 909, 761, 253, 16204, 3394, 29, 48, 45608, 1791, 335, 260,
    8552, 3086, 378, 8593, 281, 216, 34, 32, 32, 32, 1673, 669, 436, 3922, 411, 253,
    45608, 1791, 281, 260, 1238, 3488, 707, 2855, 411, 15399, 5970, 3139, 3297, 527, 436, 4940};
static const int32_t k_ids_gemma[64] = {
    2, 578, 9877, 151936, 589, 578, 236743, 107, 9877, 151936, 589, 563, 614, 5422, 4103, 1031,
    13617, 532, 26470, 13387, 783, 1293, 1053, 496, 15083, 1392, 236772, 236940, 44116, 3853, 580, 506,
    13617, 3605, 669, 8599, 528, 236743, 236778, 236771, 236771, 236771, 783, 1174, 691, 6641, 684, 496,
    44116, 3853, 528, 506, 1441, 5165, 1190, 5267, 684, 20420, 75474, 578, 9877, 151936, 589, 578};

static void test_logits(const char *gguf, const char *dir, const int32_t *ids) {
    rq_model *mg = NULL, *mh = NULL;
    RQ_CHECK(rq_model_load_file(gguf, &mg) == RQ_OK);
    if (!mg) return;
    float *lg = rq_test_logits(mg, ids, 64);
    rq_model_config cg = mg->cfg;
    rq_model_free(mg);
    rq_status s = rq_model_load_file(dir, &mh);
    RQ_CHECK_MSG(s == RQ_OK, "loading %s: %s", dir, rq_last_error());
    if (mh) {
        const rq_model_config *ch = &mh->cfg;
        RQ_CHECK(ch->arch == cg.arch && ch->n_vocab == cg.n_vocab && ch->n_embd == cg.n_embd &&
                 ch->n_layer == cg.n_layer && ch->n_head == cg.n_head && ch->n_head_kv == cg.n_head_kv &&
                 ch->head_dim == cg.head_dim && ch->n_ff == cg.n_ff && ch->rope_dim == cg.rope_dim &&
                 ch->rope_theta == cg.rope_theta && ch->rms_eps == cg.rms_eps &&
                 ch->tied_embeddings == cg.tied_embeddings && ch->n_ctx_train == cg.n_ctx_train);
        float *lh = rq_test_logits(mh, ids, 64);
        double e = rq_rel_l2(lh, lg, 64 * cg.n_vocab);
        printf("%s: logits: relative L2 %.3g (max |diff| %.3g) over 64 positions\n", dir, e,
               rq_max_abs_diff(lh, lg, 64 * cg.n_vocab));
        RQ_CHECK_NEAR(e, 0.0, LOGITS_TOL);
        free(lh);
    }
    free(lg);
    rq_model_free(mh);
}

static void test_tokenizer(const char *gguf, const char *dir, const char *ids_path) {
    rq_gguf *g = NULL, *h = NULL;
    rq_tokenizer *tg = NULL, *th = NULL;
    RQ_CHECK(rq_gguf_open(gguf, &g) == RQ_OK && rq_tokenizer_load(g, &tg) == RQ_OK);
    RQ_CHECK(rq_model_open(dir, &h) == RQ_OK && rq_tokenizer_load(h, &th) == RQ_OK);
    if (!tg || !th) goto done;
    /* the convenience loader (no config.json: the tokenizer's own size) gives the same */
    rq_tokenizer *t2 = NULL;
    RQ_CHECK(rq_tokenizer_load_hf(dir, &t2) == RQ_OK && t2 && rq_tokenizer_n_vocab(t2) == rq_tokenizer_n_vocab(tg));
    rq_tokenizer_free(t2);
    int32_t nv = rq_tokenizer_n_vocab(tg);
    RQ_CHECK(rq_tokenizer_n_vocab(th) == nv && rq_tokenizer_bos(th) == rq_tokenizer_bos(tg) &&
             rq_tokenizer_eos(th) == rq_tokenizer_eos(tg) &&
             rq_tokenizer_add_bos_default(th) == rq_tokenizer_add_bos_default(tg));
    int types_differ = 0;
    for (int32_t i = 0; i < nv; i++)
        types_differ += rq_tokenizer_token_type(th, i) != rq_tokenizer_token_type(tg, i) ||
                        strcmp(rq_tokenizer_token_text(th, i), rq_tokenizer_token_text(tg, i)) != 0;
    RQ_CHECK_MSG(types_differ == 0, "%d tokens differ in text or type", types_differ);
    int64_t len;
    char *text = read_all(k_wiki, &len);
    RQ_CHECK_MSG(text != NULL, "%s is missing", k_wiki);
    if (text) {
        int32_t *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0;
        RQ_CHECK(rq_tokenizer_encode(tg, text, len, false, false, &a, &na) == RQ_OK);
        RQ_CHECK(rq_tokenizer_encode(th, text, len, false, false, &b, &nb) == RQ_OK);
        RQ_CHECK_MSG(na == nb && na > 0 && !memcmp(a, b, (size_t)na * sizeof *a), "wiki: %lld vs %lld ids differ",
                     (long long)na, (long long)nb);
        /* the `tokenizers` package's ids of the same text */
        int64_t il;
        char *ids = read_all(ids_path, &il);
        RQ_CHECK_MSG(ids != NULL, "%s missing", ids_path);
        int64_t n_oracle = 0, first_diff = -1;
        for (char *p = ids, *end; ids && *p; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (first_diff < 0 && (n_oracle >= nb || b[n_oracle] != v)) first_diff = n_oracle;
            n_oracle++;
            while (*end == '\n') end++;
        }
        printf("%s: wiki.test.raw: %lld ids (GGUF tokenizer), %lld (checkpoint's), %lld (`tokenizers`)\n", dir,
               (long long)na, (long long)nb, (long long)n_oracle);
        RQ_CHECK_MSG(n_oracle == nb && first_diff < 0, "`tokenizers` ids differ from position %lld",
                     (long long)first_diff);
        free(ids);
        rq_free(a);
        rq_free(b);
        free(text);
    }
    char *cg = NULL, *ch = NULL;
    RQ_CHECK(rq_chat_format(g, NULL, "Hi there", &cg) == RQ_OK && rq_chat_format(h, NULL, "Hi there", &ch) == RQ_OK);
    RQ_CHECK(cg && ch && !strcmp(cg, ch));
    rq_free(cg);
    rq_free(ch);
done:
    rq_tokenizer_free(tg);
    rq_tokenizer_free(th);
    rq_gguf_close(g);
    rq_gguf_close(h);
}

/* Run a shell command; return its exit code, stdout+stderr in out. */
static int run_cmd(const char *cmd, char *out, size_t n) {
    char full[4096], path[700];
    snprintf(path, sizeof path, "%s/hf_cmd_out.txt", g_build);
    snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, path);
    int rc = system(full);
    int64_t len = 0;
    char *b = read_all(path, &len);
    snprintf(out, n, "%s", b ? b : "");
    free(b);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void test_cli(const char *gguf) {
    const char *cli = getenv("RQ_CLI");
    RQ_CHECK_MSG(cli != NULL, "RQ_CLI is not set");
    if (!cli) return;
    char cmd[2048], a[8192], b[8192];
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p 'The capital of France is' -n 8 --temp 0 -t 1", cli, g_dir);
    int ra = run_cmd(cmd, a, sizeof a);
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p 'The capital of France is' -n 8 --temp 0 -t 1", cli, gguf);
    int rb = run_cmd(cmd, b, sizeof b);
    /* the first line is the generated text (timings follow) */
    char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
    if (na) *na = 0;
    if (nb) *nb = 0;
    RQ_CHECK_MSG(ra == 0 && rb == 0 && a[0] && !strcmp(a, b), "run: '%s' (rc %d) vs '%s' (rc %d)", a, ra, b, rb);
}

/* A copy of the checkpoint (links to its files) with config.json's text config_edit_from
 * replaced by config_edit_to, or with `file` removed (content NULL) or written as
 * `content` (a safetensors file of that header when the name ends in .safetensors). */
static void make_bad(const char *config_edit_from, const char *config_edit_to, const char *file, const char *content) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && for f in '%s'/*; do ln -s \"$f\" '%s'/; done", g_bad,
             g_bad, g_dir, g_bad);
    RQ_ASSERT(system(cmd) == 0);
    char p[800];
    snprintf(p, sizeof p, "%s/config.json", g_dir);
    int64_t len;
    char *cfg = read_all(p, &len);
    RQ_ASSERT(cfg);
    snprintf(p, sizeof p, "%s/config.json", g_bad);
    unlink(p);
    if (config_edit_from) {
        char *at = strstr(cfg, config_edit_from);
        RQ_ASSERT(at);
        char *edited = malloc((size_t)len + strlen(config_edit_to) + 1);
        size_t pre = (size_t)(at - cfg);
        memcpy(edited, cfg, pre);
        strcpy(edited + pre, config_edit_to);
        strcat(edited, at + strlen(config_edit_from));
        write_text(p, edited);
        free(edited);
    } else if (!file || strcmp(file, "config.json")) {
        write_text(p, cfg);
    }
    free(cfg);
    if (file) {
        snprintf(p, sizeof p, "%s/%s", g_bad, file);
        unlink(p);
        if (content && strstr(file, ".safetensors")) write_st(p, -1, content, 4);
        else if (content) write_text(p, content);
    }
}

static void expect_bad(const char *what, const char *want) {
    rq_gguf *g = (rq_gguf *)1;
    rq_status s = rq_model_open(g_bad, &g);
    RQ_CHECK_MSG(s != RQ_OK && g == NULL, "%s: accepted", what);
    RQ_CHECK_MSG(strstr(rq_last_error(), want) != NULL, "%s: message '%s' lacks '%s'", what, rq_last_error(), want);
    const char *cli = getenv("RQ_CLI");
    if (!cli) return;
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' ppl -m '%s' -f '%s' -t 1", cli, g_bad, k_wiki);
    int rc = run_cmd(cmd, out, sizeof out);
    RQ_CHECK_MSG(rc == 1 && strstr(out, "rotquant: error: ") && strstr(out, want), "%s: CLI rc %d: '%s'", what, rc,
                 out);
}

static void test_bad(void) {
    char p[800];
    make_bad("\"intermediate_size\": 1536", "\"intermediate_size\": 1537", NULL, NULL);
    expect_bad("intermediate_size", "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [1536, 576], config.json "
                                    "says [1537, 576]");
    make_bad("\"num_key_value_heads\": 3", "\"num_key_value_heads\": 9", NULL, NULL);
    expect_bad("num_key_value_heads", "'model.layers.0.self_attn.k_proj.weight' has shape [192, 576], config.json says "
                                      "[576, 576]");
    make_bad("\"vocab_size\": 49152", "\"vocab_size\": 49153", NULL, NULL);
    expect_bad("vocab_size", "'model.embed_tokens.weight' has shape [49152, 576], config.json says [49153, 576]");
    make_bad("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", NULL, NULL);
    expect_bad("untied", "missing tensor 'lm_head.weight'");
    make_bad("\"num_hidden_layers\": 30", "\"num_hidden_layers\": 29", NULL, NULL);
    expect_bad("fewer layers",
               "tensor 'model.layers.29.input_layernorm.weight' is not used by the llama model config.json describes");
    make_bad("\"model_type\": \"llama\"", "\"model_type\": \"mamba\"", NULL, NULL);
    expect_bad("model_type", "model_type 'mamba' is not supported");
    make_bad("\"rms_norm_eps\": ", "\"rms_norm_eps\": \"x\", \"x\": ", NULL, NULL);
    expect_bad("rms_norm_eps", "\"rms_norm_eps\" must be a number");
    make_bad(NULL, NULL, "config.json", NULL);
    expect_bad("no config.json", "config.json");
    make_bad(NULL, NULL, "model-00002-of-00002.safetensors", "{}");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", g_bad);
    write_st(p, 64, "{}", 0);
    expect_bad("shard header past the file", "header length 64 runs past the end of the file");
    make_bad(NULL, NULL, "model-00001-of-00002.safetensors",
             "{\"model.norm.weight\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    expect_bad("unknown dtype", "unknown dtype 'Q9'");
    make_bad(NULL, NULL, "model-00001-of-00002.safetensors",
             "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"model.embed_tokens.weight\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}");
    expect_bad("overlapping tensors", "overlap");
    make_bad(NULL, NULL, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\"}}");
    expect_bad("tokenizer model", "tokenizer model type 'Unigram' is not supported");
    /* malformed tokenizer.json / tokenizer_config.json (byte-level BPE, pre-tokenizer ByteLevel) */
    static const char *const tok_head = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", ";
    static const struct { const char *model_rest, *added, *want; } tj[] = {
        {"\"vocab\": {\"a\": 0, \"b\": 49152}, \"merges\": []}", "[]", "token id 49152 is past the model's vocabulary size"},
        {"\"vocab\": {\"a\": 0, \"b\": -1}, \"merges\": []}", "[]", "model.vocab 'b': the id is not an integer"},
        {"\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}", "[]", "token id 0 is given to two different strings"},
        {"\"vocab\": {\"a\": 0}, \"merges\": [3]}", "[]", "model.merges[0] is neither a string nor a pair"},
        {"\"vocab\": {\"a\": 0}}", "[]", "missing model.merges array"},
        {"\"vocab\": {\"a\": 0}, \"merges\": []}", "[{\"id\": 0, \"content\": \"x\"}]",
         "token id 0 is given to two different strings"},
        {"\"vocab\": {\"a\": 0}, \"merges\": []}", "[{\"id\": 1.5, \"content\": \"x\"}]",
         "added_tokens[0] needs an integer \"id\""},
    };
    for (size_t i = 0; i < sizeof tj / sizeof tj[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s, \"added_tokens\": %s}", tok_head, tj[i].model_rest, tj[i].added);
        make_bad(NULL, NULL, "tokenizer.json", text);
        expect_bad("tokenizer.json", tj[i].want);
    }
    make_bad(NULL, NULL, "tokenizer.json", "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\"}}");
    expect_bad("pre_tokenizer", "pre_tokenizer not supported");
    make_bad(NULL, NULL, "tokenizer_config.json", "{\"bos_token\": \"<|nope|>\"}");
    expect_bad("bos_token", "bos_token '<|nope|>' is not a token of the vocabulary");
    make_bad(NULL, NULL, "tokenizer_config.json", "{\"add_bos_token\": 1}");
    expect_bad("add_bos_token", "add_bos_token must be true or false");
}

/* Make (or reuse) the checkpoint of `gguf` in dir, with the `tokenizers` ids of the wiki
 * file in ids_path; false (a failure recorded) when the helper fails. */
static bool make_checkpoint(const char *gguf, const char *dir, const char *ids_path, int shards) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s tests/ref/make_hf_checkpoint.py '%s' '%s' --shards %d --ids '%s' '%s'",
             getenv("RQ_PYTHON") ? getenv("RQ_PYTHON") : "python3", gguf, dir, shards, ids_path, k_wiki);
    if (system(cmd) == 0) return true;
    rq_test_fail(__FILE__, __LINE__, "the checkpoint helper failed (scripts/install-deps.sh installs numpy, gguf, "
                 "safetensors and tokenizers): %s", cmd);
    return false;
}

int main(void) {
    const char *gguf = rq_test_model_path();
    if (!gguf) RQ_SKIP("models/ lacks the default model");
    const char *cli = getenv("RQ_CLI");
    char tmp[512], ids[700], cmd[1024];
    snprintf(tmp, sizeof tmp, "%s", cli ? cli : "build/rotquant");
    snprintf(g_build, sizeof g_build, "%s", dirname(tmp));
    snprintf(g_dir, sizeof g_dir, "%s/hf_smollm2", g_build);
    snprintf(g_bad, sizeof g_bad, "%s/hf_smollm2_bad", g_build);
    snprintf(ids, sizeof ids, "%s/hf_smollm2_wiki_ids.txt", g_build);
    if (!make_checkpoint(gguf, g_dir, ids, 2)) return rq_test_finish();
    test_logits(gguf, g_dir, k_ids_smollm);
    test_tokenizer(gguf, g_dir, ids);
    test_cli(gguf);
    test_bad();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_bad);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_bad);
    if (rq_test_file_exists(k_gemma)) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/hf_gemma3", g_build);
        snprintf(ids, sizeof ids, "%s/hf_gemma3_wiki_ids.txt", g_build);
        if (make_checkpoint(k_gemma, dir, ids, 1)) {
            test_logits(k_gemma, dir, k_ids_gemma);
            test_tokenizer(k_gemma, dir, ids);
        }
    } else {
        printf("note: %s absent, the Gemma-3 checks are left out\n", k_gemma);
    }
    return rq_test_finish();
}

/* Tests of src/text (tokenizers, chat formats).
 *
 * Oracles: llama.cpp's own tokenization recorded in tests/golden/ (see README.md there):
 * the whole of wikitext-2 test (count + 400 sampled ids) and short strings for SmolLM2,
 * tricky inputs (invalid UTF-8, Unicode whitespace and new code points, special tokens)
 * for SmolLM2 and Gemma 3; hand-derived results on tiny synthetic vocabularies; Jinja
 * renderings of the chat templates. Malformed tokenizer metadata is written with the
 * GGUF writer and must give a clear error. The merge queue (text/heap.h) is checked
 * against sorting. */
#include "testing.h"

#include "base/rng.h"
#include "io/gguf.h"
#include "text/chat.h"
#include "text/heap.h"
#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *k_wiki = "../shared/data/wikitext-2-raw/wiki.test.raw";
static const char *k_gemma = "models/gemma-3-270m-q4_k_m.gguf";

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

static bool ids_equal(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0);
}

static int64_t parse_ids(const char *s, int32_t *out, int64_t cap) {
    int64_t n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        RQ_ASSERT(n < cap);
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

/* encode and compare with the expected ids; prints both on mismatch */
static void check_encode(const rq_tokenizer *t, const char *text, int64_t len, bool bos, bool special, const int32_t *want,
                         int64_t n_want, const char *what) {
    int32_t *ids = NULL;
    int64_t n = 0;
    rq_status s = rq_tokenizer_encode(t, text, len, bos, special, &ids, &n);
    bool ok = s == RQ_OK && ids_equal(ids, n, want, n_want);
    RQ_CHECK_MSG(ok, "%s: encode(special=%d) differs from the expected %lld ids (got %lld)", what, special, (long long)n_want, (long long)n);
    if (!ok) {
        printf("  got :");
        for (int64_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
        printf("\n  want:");
        for (int64_t i = 0; i < n_want && i < 40; i++) printf(" %d", want[i]);
        printf("\n");
    }
    rq_free(ids);
}

static void check_roundtrip(const rq_tokenizer *t, const char *text, int64_t len, const char *what) {
    int32_t *ids = NULL;
    int64_t n = 0;
    char *back = NULL;
    int64_t nb = 0;
    RQ_CHECK(rq_tokenizer_encode(t, text, len, false, false, &ids, &n) == RQ_OK);
    RQ_CHECK(rq_tokenizer_decode(t, ids, n, false, &back, &nb) == RQ_OK);
    RQ_CHECK_MSG(nb == len && memcmp(back, text, (size_t)len) == 0, "%s: decode(encode(x)) != x", what);
    rq_free(ids);
    rq_free(back);
}

/* ---- synthetic byte-level BPE ------------------------------------------------------- */

/* The GPT-2 byte -> code point table, written out independently of the library. */
static void byte_char(int b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

enum { SYN_AB = 256, SYN_BC, SYN_GA, SYN_AA, SYN_CTRL, SYN_UD, SYN_UDUD, SYN_N };

typedef struct synth_bpe {
    char bytes[256][4];
    const char *tokens[SYN_N];
    int32_t types[SYN_N];
} synth_bpe;

static void synth_bpe_spec(synth_bpe *v, rq_tokenizer_spec *spec, const char *const *merges, int64_t n_merges) {
    for (int b = 0; b < 256; b++) {
        byte_char(b, v->bytes[b]);
        v->tokens[b] = v->bytes[b];
        v->types[b] = RQ_TOKEN_NORMAL;
    }
    v->tokens[SYN_AB] = "ab";
    v->tokens[SYN_BC] = "bc";
    v->tokens[SYN_GA] = "\xc4\xa0" "a"; /* "Ġa" = " a" */
    v->tokens[SYN_AA] = "aa";
    v->tokens[SYN_CTRL] = "<|c|>";
    v->tokens[SYN_UD] = "<u>";
    v->tokens[SYN_UDUD] = "<u><u>";
    for (int i = SYN_AB; i < SYN_N; i++) v->types[i] = RQ_TOKEN_NORMAL;
    v->types[SYN_CTRL] = RQ_TOKEN_CONTROL;
    v->types[SYN_UD] = RQ_TOKEN_USER_DEFINED;
    v->types[SYN_UDUD] = RQ_TOKEN_USER_DEFINED;
    rq_tokenizer_spec_init(spec);
    spec->kind = RQ_TOKENIZER_BPE;
    spec->pre = "gpt-2";
    spec->n_vocab = SYN_N;
    spec->tokens = v->tokens;
    spec->token_types = v->types;
    spec->merges = merges;
    spec->n_merges = n_merges;
}

static const char *const k_syn_merges[] = {"a b", "b c", "\xc4\xa0 a", "a a"};

static void test_synthetic_bpe(void) {
    synth_bpe v;
    rq_tokenizer_spec spec;
    synth_bpe_spec(&v, &spec, k_syn_merges, 4);
    rq_tokenizer *t = NULL;
    RQ_CHECK(rq_tokenizer_create(&spec, &t) == RQ_OK);
    if (!t) return;
    /* rank order: "a b" (0) before "b c" (1) */
    check_encode(t, "abc", 3, false, false, (int32_t[]){SYN_AB, 'c'}, 2, "abc");
    check_encode(t, "bca", 3, false, false, (int32_t[]){SYN_BC, 'a'}, 2, "bca");
    /* equal ranks: leftmost first */
    check_encode(t, "aaa", 3, false, false, (int32_t[]){SYN_AA, 'a'}, 2, "aaa");
    /* " aa" is one word; "Ġ a" (rank 2) beats "a a" (rank 3) */
    check_encode(t, " aa", 3, false, false, (int32_t[]){SYN_GA, 'a'}, 2, " aa");
    /* GPT-2 split: letters, digits, newline are separate words; bytes map to byte chars */
    check_encode(t, "ab1\n", 4, false, false, (int32_t[]){SYN_AB, '1', 10}, 3, "ab1\\n");
    /* user-defined tokens are split out even without parse_special; control ones only with it;
     * longer special tokens first */
    const char *txt = "<u>ab<|c|>";
    check_encode(t, txt, (int64_t)strlen(txt), false, false, (int32_t[]){SYN_UD, SYN_AB, '<', '|', 'c', '|', '>'}, 7, "specials off");
    check_encode(t, txt, (int64_t)strlen(txt), false, true, (int32_t[]){SYN_UD, SYN_AB, SYN_CTRL}, 3, "specials on");
    check_encode(t, "<u><u><u>", 9, false, false, (int32_t[]){SYN_UDUD, SYN_UD}, 2, "longest special first");
    /* BOS: absent from the metadata -> llama.cpp's BPE default, id 11 */
    RQ_CHECK(rq_tokenizer_bos(t) == 11 && rq_tokenizer_eos(t) == 11);
    RQ_CHECK(!rq_tokenizer_add_bos_default(t));
    check_encode(t, "ab", 2, true, false, (int32_t[]){11, SYN_AB}, 2, "add_bos");
    /* decoding */
    char *out;
    int64_t n;
    RQ_CHECK(rq_tokenizer_decode(t, (int32_t[]){SYN_GA, SYN_CTRL, SYN_UD, 10}, 4, false, &out, &n) == RQ_OK);
    RQ_CHECK(n == 11 && strcmp(out, " a<|c|><u>\n") == 0);
    rq_free(out);
    RQ_CHECK(rq_tokenizer_decode(t, (int32_t[]){SYN_GA, SYN_CTRL, SYN_UD, 10}, 4, true, &out, &n) == RQ_OK);
    RQ_CHECK(n == 6 && strcmp(out, " a<u>\n") == 0);
    rq_free(out);
    RQ_CHECK(rq_tokenizer_decode(t, (int32_t[]){SYN_N}, 1, false, &out, &n) == RQ_EINVAL);
    int64_t bl;
    const char *b = rq_tokenizer_token_bytes(t, 0, &bl); /* byte 0x00 */
    RQ_CHECK(b && bl == 1 && b[0] == 0);
    RQ_CHECK(strcmp(rq_tokenizer_token_text(t, SYN_GA), "\xc4\xa0" "a") == 0);
    RQ_CHECK(rq_tokenizer_find(t, "ab", 2) == SYN_AB && rq_tokenizer_find(t, "zz", 2) == -1);
    /* every byte string survives encode/decode, invalid UTF-8 aside */
    const char *mix = "a1 b\tc\n\n  d!? \xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac ";
    check_roundtrip(t, mix, (int64_t)strlen(mix), "synthetic mix");
    /* invalid UTF-8: each bad byte becomes U+FFFD, whose bytes EF BF BD are byte tokens */
    check_encode(t, "\xff", 1, false, false, (int32_t[]){0xEF, 0xBF, 0xBD}, 3, "invalid byte");
    rq_tokenizer_free(t);
}

static void expect_create_error(rq_tokenizer_spec *spec, rq_status want, const char *msg_part, const char *what) {
    rq_tokenizer *t = NULL;
    rq_status s = rq_tokenizer_create(spec, &t);
    RQ_CHECK_MSG(s == want && t == NULL && strstr(rq_last_error(), msg_part) != NULL, "%s: got %s \"%s\", want %s containing \"%s\"",
                 what, rq_status_name(s), rq_last_error(), rq_status_name(want), msg_part);
    rq_tokenizer_free(t);
}

static void test_synthetic_bpe_errors(void) {
    synth_bpe v;
    rq_tokenizer_spec spec;
    const char *bad_merges[] = {"a b", "a zz"};
    synth_bpe_spec(&v, &spec, bad_merges, 2);
    expect_create_error(&spec, RQ_EFORMAT, "\"zz\" is not in the vocabulary", "merge with unknown token");
    const char *no_space[] = {"ab"};
    synth_bpe_spec(&v, &spec, no_space, 1);
    expect_create_error(&spec, RQ_EFORMAT, "no space", "merge without a space");
    synth_bpe_spec(&v, &spec, k_syn_merges, 4);
    v.tokens[SYN_AA] = "ab";
    expect_create_error(&spec, RQ_EFORMAT, "same string", "duplicate token");
    synth_bpe_spec(&v, &spec, k_syn_merges, 4);
    spec.pre = "no-such-pre";
    expect_create_error(&spec, RQ_EUNSUPPORTED, "no-such-pre", "unknown pre-tokenizer");
    spec.pre = NULL;
    expect_create_error(&spec, RQ_EUNSUPPORTED, "tokenizer.ggml.pre", "missing pre-tokenizer");
    synth_bpe_spec(&v, &spec, k_syn_merges, 0);
    expect_create_error(&spec, RQ_EFORMAT, "merges", "no merges");
}

/* ---- synthetic SentencePiece -------------------------------------------------------- */

enum { SPM_BYTE0 = 3, SPM_SP = 259, SPM_A, SPM_B, SPM_SPA, SPM_AB, SPM_SPAB, SPM_UD, SPM_N };

static void test_synthetic_spm(void) {
    static char byte_names[256][8];
    const char *tokens[SPM_N];
    float scores[SPM_N];
    int32_t types[SPM_N];
    tokens[0] = "<unk>", types[0] = RQ_TOKEN_UNKNOWN;
    tokens[1] = "<s>", types[1] = RQ_TOKEN_CONTROL;
    tokens[2] = "</s>", types[2] = RQ_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        tokens[SPM_BYTE0 + b] = byte_names[b];
        types[SPM_BYTE0 + b] = RQ_TOKEN_BYTE;
    }
    tokens[SPM_SP] = "\xe2\x96\x81";
    tokens[SPM_A] = "a";
    tokens[SPM_B] = "b";
    tokens[SPM_SPA] = "\xe2\x96\x81" "a";
    tokens[SPM_AB] = "ab";
    tokens[SPM_SPAB] = "\xe2\x96\x81" "ab";
    tokens[SPM_UD] = "  "; /* Gemma-style user-defined run of spaces */
    const float sc[] = {-1.0f, -2.0f, -2.0f, -0.5f, -0.1f, -0.05f, 0.0f};
    for (int i = SPM_SP; i < SPM_N; i++) {
        types[i] = i == SPM_UD ? RQ_TOKEN_USER_DEFINED : RQ_TOKEN_NORMAL;
        scores[i] = sc[i - SPM_SP];
    }
    for (int i = 0; i < SPM_SP; i++) scores[i] = 0.0f;
    rq_tokenizer_spec spec;
    rq_tokenizer_spec_init(&spec);
    spec.kind = RQ_TOKENIZER_SPM;
    spec.n_vocab = SPM_N;
    spec.tokens = tokens;
    spec.scores = scores;
    spec.token_types = types;
    rq_tokenizer *t = NULL;
    RQ_CHECK(rq_tokenizer_create(&spec, &t) == RQ_OK);
    if (!t) return;
    /* SPM defaults: bos 1, eos 2, BOS added, space prefix */
    RQ_CHECK(rq_tokenizer_bos(t) == 1 && rq_tokenizer_eos(t) == 2 && rq_tokenizer_add_bos_default(t));
    RQ_CHECK(rq_tokenizer_is_eog(t, 2) && !rq_tokenizer_is_eog(t, 1));
    /* "▁ab": "ab" (-0.1) merges before "▁a" (-0.5), then "▁ab" (-0.05) */
    check_encode(t, "ab", 2, false, false, (int32_t[]){SPM_SPAB}, 1, "spm ab");
    check_encode(t, "ab", 2, true, false, (int32_t[]){1, SPM_SPAB}, 2, "spm ab + bos");
    check_encode(t, "ba", 2, false, false, (int32_t[]){SPM_SP, SPM_B, SPM_A}, 3, "spm ba");
    /* not in the vocabulary: byte tokens */
    check_encode(t, "c\xc3\xa9", 3, false, false, (int32_t[]){SPM_SP, SPM_BYTE0 + 'c', SPM_BYTE0 + 0xC3, SPM_BYTE0 + 0xA9}, 4, "spm bytes");
    check_encode(t, "a b", 3, false, false, (int32_t[]){SPM_SPA, SPM_SP, SPM_B}, 3, "spm a b");
    /* the user-defined "  " is cut out first; as after any special token, the next
     * fragment gets the space prefix again (llama.cpp) */
    check_encode(t, "a  b", 4, false, false, (int32_t[]){SPM_SPA, SPM_UD, SPM_SP, SPM_B}, 4, "spm user-defined");
    /* control token parsed: the text after it gets the space prefix again */
    check_encode(t, "a</s>b", 6, false, true, (int32_t[]){SPM_SPA, 2, SPM_SP, SPM_B}, 4, "spm control");
    check_roundtrip(t, "ab a b", 6, "spm roundtrip"); /* the prefix space is removed again */
    int64_t l;
    const char *p = rq_tokenizer_token_bytes(t, SPM_SPAB, &l);
    RQ_CHECK(l == 3 && memcmp(p, " ab", 3) == 0);
    p = rq_tokenizer_token_bytes(t, SPM_BYTE0 + 0x41, &l);
    RQ_CHECK(l == 1 && p[0] == 'A');
    rq_tokenizer_free(t);

    spec.add_space_prefix = 0;
    RQ_CHECK(rq_tokenizer_create(&spec, &t) == RQ_OK);
    if (!t) return;
    check_encode(t, "ab", 2, false, false, (int32_t[]){SPM_AB}, 1, "spm no prefix");
    rq_tokenizer_free(t);
}

/* ---- malformed GGUF metadata -------------------------------------------------------- */

static char tmpdir[256];

static rq_gguf_writer *synth_writer(const synth_bpe *v, bool with_tokens) {
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rq_gguf_writer_set_str(w, "tokenizer.ggml.pre", "smollm");
    rq_gguf_str toks[SYN_N], mer[4];
    for (int i = 0; i < SYN_N; i++) toks[i] = (rq_gguf_str){v->tokens[i], strlen(v->tokens[i])};
    for (int i = 0; i < 4; i++) mer[i] = (rq_gguf_str){k_syn_merges[i], strlen(k_syn_merges[i])};
    if (with_tokens) rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, SYN_N);
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RQ_GGUF_I32, v->types, SYN_N);
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", mer, 4);
    rq_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", SYN_CTRL);
    rq_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", SYN_CTRL);
    rq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    return w;
}

/* Write w, open it and load the tokenizer: returns the status (t freed). */
static rq_status load_written(rq_gguf_writer *w, const char *name, rq_tokenizer **keep) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    RQ_ASSERT(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    rq_gguf *g = NULL;
    RQ_ASSERT(rq_gguf_open(path, &g) == RQ_OK);
    rq_tokenizer *t = NULL;
    rq_status s = rq_tokenizer_load(g, &t);
    rq_gguf_close(g); /* the tokenizer must not depend on the file staying open */
    unlink(path);
    if (keep) *keep = t;
    else rq_tokenizer_free(t);
    return s;
}

static void expect_load_error(rq_gguf_writer *w, const char *name, rq_status want, const char *msg_part) {
    rq_status s = load_written(w, name, NULL);
    RQ_CHECK_MSG(s == want && strstr(rq_last_error(), msg_part) != NULL, "%s: got %s \"%s\", want %s containing \"%s\"", name,
                 rq_status_name(s), rq_last_error(), rq_status_name(want), msg_part);
}

static void test_gguf_metadata(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_tokenizer_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        RQ_CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    synth_bpe v;
    rq_tokenizer_spec spec;
    synth_bpe_spec(&v, &spec, k_syn_merges, 4);

    /* a well-formed file loads and tokenizes like the arrays it was written from */
    rq_tokenizer *t = NULL;
    RQ_CHECK(load_written(synth_writer(&v, true), "ok.gguf", &t) == RQ_OK);
    if (t) {
        RQ_CHECK(rq_tokenizer_bos(t) == SYN_CTRL && rq_tokenizer_add_bos_default(t));
        /* smollm pre-tokenizer: every digit apart */
        check_encode(t, "abc12", 5, true, false, (int32_t[]){SYN_CTRL, SYN_AB, 'c', '1', '2'}, 5, "gguf-loaded");
        rq_tokenizer_free(t);
    }

    expect_load_error(synth_writer(&v, false), "no_tokens.gguf", RQ_EFORMAT, "tokenizer.ggml.tokens: missing");

    rq_gguf_writer *w = synth_writer(&v, true);
    rq_gguf_str mer[2] = {{"a b", 3}, {"a zz", 4}};
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", mer, 2);
    expect_load_error(w, "bad_merge.gguf", RQ_EFORMAT, "not in the vocabulary");

    w = synth_writer(&v, true);
    rq_gguf_writer_remove(w, "tokenizer.ggml.merges");
    expect_load_error(w, "no_merges.gguf", RQ_EFORMAT, "tokenizer.ggml.merges: missing");

    w = synth_writer(&v, true);
    uint32_t nums[3] = {1, 2, 3};
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", RQ_GGUF_U32, nums, 3);
    expect_load_error(w, "tokens_not_strings.gguf", RQ_EFORMAT, "tokenizer.ggml.tokens: expected an array of");

    w = synth_writer(&v, true);
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RQ_GGUF_I32, v.types, 10);
    expect_load_error(w, "short_types.gguf", RQ_EFORMAT, "token_type: 10 entries");

    w = synth_writer(&v, true);
    rq_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    expect_load_error(w, "bert.gguf", RQ_EUNSUPPORTED, "\"bert\"");

    w = synth_writer(&v, true);
    rq_gguf_writer_remove(w, "tokenizer.ggml.model");
    expect_load_error(w, "no_model.gguf", RQ_EFORMAT, "tokenizer.ggml.model: missing");

    w = synth_writer(&v, true);
    rq_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "one");
    expect_load_error(w, "bos_string.gguf", RQ_EFORMAT, "bos_token_id: expected an integer");

    w = synth_writer(&v, true);
    rq_gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama3");
    expect_load_error(w, "pre_llama3.gguf", RQ_EUNSUPPORTED, "llama3");
    rmdir(tmpdir);
}

/* ---- chat formats ------------------------------------------------------------------- */

static void test_chat(void) {
    /* expected strings rendered by Jinja2 from the templates */
    static const char smol_tmpl[] =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
        "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|im_start|>assistant\n' }}{% endif %}";
    rq_chat_template ct;
    RQ_CHECK(rq_chat_template_parse(smol_tmpl, (int64_t)strlen(smol_tmpl), &ct) == RQ_OK);
    RQ_CHECK(ct.style == RQ_CHAT_CHATML && ct.default_system &&
             strcmp(ct.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face") == 0);
    char *out = NULL;
    rq_chat_message m1[] = {{"user", "Hi"}};
    RQ_CHECK(rq_chat_render(&ct, m1, 1, true, &out) == RQ_OK);
    RQ_CHECK(out && strcmp(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                                "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0);
    rq_free(out);
    rq_chat_message m2[] = {{"system", "Be brief."}, {"user", "Hi"}};
    RQ_CHECK(rq_chat_render(&ct, m2, 2, true, &out) == RQ_OK);
    RQ_CHECK(out && strcmp(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0);
    rq_free(out);
    rq_chat_message bad[] = {{"robot", "x"}};
    RQ_CHECK(rq_chat_render(&ct, bad, 1, true, &out) == RQ_EINVAL);
    rq_chat_template_clear(&ct);

    /* a ChatML template whose default system prompt is in an escaped string literal */
    static const char qwen_like[] =
        "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else %}{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}";
    RQ_CHECK(rq_chat_template_parse(qwen_like, (int64_t)strlen(qwen_like), &ct) == RQ_OK);
    RQ_CHECK(ct.style == RQ_CHAT_CHATML && ct.default_system && strcmp(ct.default_system, "You are Qwen.") == 0);
    rq_chat_template_clear(&ct);

    static const char gemma_tmpl[] = "{{ bos_token }}...{{ '<start_of_turn>' + role + '\\n' }}...{{ '<end_of_turn>\\n' }}";
    RQ_CHECK(rq_chat_template_parse(gemma_tmpl, (int64_t)strlen(gemma_tmpl), &ct) == RQ_OK);
    RQ_CHECK(ct.style == RQ_CHAT_GEMMA);
    rq_chat_message g1[] = {{"system", "Be brief."}, {"user", "  Hi there \n"}, {"assistant", "Hello!"}, {"user", "Why?"}};
    RQ_CHECK(rq_chat_render(&ct, g1, 4, true, &out) == RQ_OK);
    RQ_CHECK(out && strcmp(out, "<start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                                "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n") == 0);
    rq_free(out);
    rq_chat_message g2[] = {{"user", "a"}, {"user", "b"}};
    RQ_CHECK(rq_chat_render(&ct, g2, 2, true, &out) == RQ_EINVAL);
    rq_chat_template_clear(&ct);

    static const char other[] = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
    RQ_CHECK(rq_chat_template_parse(other, (int64_t)strlen(other), &ct) == RQ_EUNSUPPORTED);
}

/* ---- recorded llama.cpp tokenizations ----------------------------------------------- */

/* JSON-style string literal (as in the small-strings files) -> bytes; returns length. */
static int64_t unquote(const char *s, const char **end, char *out) {
    RQ_ASSERT(*s == '"');
    s++;
    int64_t n = 0;
    while (*s && *s != '"') {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        s++;
        char c = *s++;
        if (c == 'n') out[n++] = '\n';
        else if (c == 't') out[n++] = '\t';
        else if (c == 'r') out[n++] = '\r';
        else if (c == 'u') {
            unsigned cp = (unsigned)strtoul((char[]){s[0], s[1], s[2], s[3], 0}, NULL, 16);
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[]){s[2], s[3], s[4], s[5], 0}, NULL, 16);
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) out[n++] = (char)(0xC0 | (cp >> 6)), out[n++] = (char)(0x80 | (cp & 63));
            else if (cp < 0x10000)
                out[n++] = (char)(0xE0 | (cp >> 12)), out[n++] = (char)(0x80 | ((cp >> 6) & 63)), out[n++] = (char)(0x80 | (cp & 63));
            else
                out[n++] = (char)(0xF0 | (cp >> 18)), out[n++] = (char)(0x80 | ((cp >> 12) & 63)),
                out[n++] = (char)(0x80 | ((cp >> 6) & 63)), out[n++] = (char)(0x80 | (cp & 63));
        } else out[n++] = c; /* \" \\ \/ */
    }
    RQ_ASSERT(*s == '"');
    *end = s + 1;
    return n;
}

/* Lines `"text"<TAB>ids`: llama.cpp's tokenization of each text (no BOS). */
static int check_small_strings(const rq_tokenizer *t, const char *path, bool parse_special) {
    FILE *f = fopen(path, "r");
    RQ_CHECK_MSG(f != NULL, "missing %s", path);
    if (!f) return 0;
    char line[4096], text[4096];
    int32_t want[1024];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != '"') continue;
        const char *rest;
        int64_t n = unquote(line, &rest, text);
        int64_t nw = parse_ids(rest, want, 1024);
        char what[128];
        snprintf(what, sizeof what, "%s line %d", path, count + 1);
        check_encode(t, text, n, false, parse_special, want, nw, what);
        check_roundtrip(t, text, n, what);
        count++;
    }
    fclose(f);
    return count;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10; }

/* tests/golden/tokenizer_extra.txt: model, parse_special, add_bos, input hex, ids */
static int check_extra(const rq_tokenizer *t, const char *model) {
    const char *path = "tests/golden/tokenizer_extra.txt";
    FILE *f = fopen(path, "r");
    RQ_CHECK_MSG(f != NULL, "missing %s", path);
    if (!f) return 0;
    char line[8192], text[4096];
    int32_t want[2048];
    int count = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#') continue;
        char *tab1 = strchr(line, '\t');
        if (!tab1 || strncmp(line, model, (size_t)(tab1 - line)) != 0 || strlen(model) != (size_t)(tab1 - line)) continue;
        int ps = tab1[1] - '0', bos = tab1[3] - '0';
        char *hex = tab1 + 5, *tab4 = strchr(hex, '\t');
        RQ_ASSERT(tab4);
        int64_t n = 0;
        for (char *h = hex; h + 1 < tab4; h += 2) text[n++] = (char)(hexval(h[0]) * 16 + hexval(h[1]));
        int64_t nw = parse_ids(tab4 + 1, want, 2048);
        char what[160];
        snprintf(what, sizeof what, "%s line %d (%s)", path, lineno, model);
        check_encode(t, text, n, bos, ps, want, nw, what);
        count++;
    }
    fclose(f);
    return count;
}

/* The wiki test set: total count and the sampled ids against the golden file, then
 * decode(encode(text)) == text. */
static void check_wiki(const rq_tokenizer *t, const char *sample_path, bool add_bos) {
    int64_t len = 0;
    char *text = read_all(k_wiki, &len);
    if (!text) {
        printf("note: %s absent, wiki checks skipped\n", k_wiki);
        return;
    }
    FILE *f = fopen(sample_path, "r");
    RQ_CHECK_MSG(f != NULL, "missing %s", sample_path);
    if (!f) {
        free(text);
        return;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    RQ_CHECK(rq_tokenizer_encode(t, text, len, add_bos, true, &ids, &n) == RQ_OK);
    long total = 0, idx, id;
    RQ_ASSERT(fscanf(f, "%ld", &total) == 1);
    RQ_CHECK_MSG(n == total, "%s: %lld tokens, llama.cpp %ld", sample_path, (long long)n, total);
    int sampled = 0, bad = 0;
    while (fscanf(f, "%ld %ld", &idx, &id) == 2) {
        sampled++;
        if (idx >= n || ids[idx] != id) {
            if (bad++ < 5) printf("  token %ld: ours %d, llama.cpp %ld\n", idx, idx < n ? ids[idx] : -1, id);
        }
    }
    fclose(f);
    RQ_CHECK_MSG(sampled == 400 && bad == 0, "%s: %d of %d sampled ids differ", sample_path, bad, sampled);
    char *back = NULL;
    int64_t nb = 0;
    RQ_CHECK(rq_tokenizer_decode(t, ids, n, true, &back, &nb) == RQ_OK);
    RQ_CHECK_MSG(nb == len && memcmp(back, text, (size_t)len) == 0, "wiki: decode(encode(text)) != text");
    rq_free(back);
    rq_free(ids);
    free(text);
}

static rq_tokenizer *load_model(const char *path, rq_gguf **g) {
    RQ_CHECK(rq_gguf_open(path, g) == RQ_OK);
    if (!*g) return NULL;
    rq_tokenizer *t = NULL;
    rq_status s = rq_tokenizer_load(*g, &t);
    RQ_CHECK_MSG(s == RQ_OK, "%s: %s", path, rq_last_error());
    return t;
}

static void test_smollm2(const char *path) {
    rq_gguf *g = NULL;
    rq_tokenizer *t = load_model(path, &g);
    if (!t) return;
    RQ_CHECK(rq_tokenizer_kind_of(t) == RQ_TOKENIZER_BPE);
    RQ_CHECK(rq_tokenizer_n_vocab(t) == 49152);
    RQ_CHECK(rq_tokenizer_bos(t) == 1 && rq_tokenizer_eos(t) == 2);
    RQ_CHECK(!rq_tokenizer_add_bos_default(t));
    /* llama.cpp's load log lists EOG tokens 0 <|endoftext|>, 2 <|im_end|>, 4 <reponame> */
    for (int32_t id = -1; id < 40; id++) RQ_CHECK(rq_tokenizer_is_eog(t, id) == (id == 0 || id == 2 || id == 4));
    RQ_CHECK(rq_tokenizer_token_type(t, 1) == RQ_TOKEN_CONTROL && rq_tokenizer_token_type(t, 100) == RQ_TOKEN_NORMAL);
    RQ_CHECK(strcmp(rq_tokenizer_token_text(t, 1), "<|im_start|>") == 0);
    int64_t l;
    const char *p = rq_tokenizer_token_bytes(t, 216, &l); /* "Ġ" */
    RQ_CHECK(l == 1 && p[0] == ' ');

    int n1 = check_small_strings(t, "tests/golden/tokenizer_small_strings.txt", false);
    int n2 = check_small_strings(t, "tests/golden/tokenizer_small_strings_parse_special.txt", true);
    RQ_CHECK(n1 == 31 && n2 == 31);
    RQ_CHECK(check_extra(t, "smollm2") > 60);
    /* special tokens on and off */
    check_encode(t, "<|im_start|>user", 16, false, true, (int32_t[]){1, 4093}, 2, "parse_special on");
    check_encode(t, "<|im_start|>user", 16, false, false, (int32_t[]){44, 108, 306, 79, 3738, 108, 46, 4093}, 8, "parse_special off");
    check_encode(t, "", 0, true, false, (int32_t[]){1}, 1, "empty + bos");
    check_encode(t, "", 0, false, false, NULL, 0, "empty");
    check_wiki(t, "tests/golden/wiki_tokens_sample.txt", false);

    char *chat = NULL;
    RQ_CHECK(rq_chat_format(g, NULL, "What is 2+2?", &chat) == RQ_OK);
    RQ_CHECK(chat && strcmp(chat, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                                  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n") == 0);
    if (chat) {
        int32_t *ids = NULL;
        int64_t n = 0;
        RQ_CHECK(rq_tokenizer_encode(t, chat, (int64_t)strlen(chat), false, true, &ids, &n) == RQ_OK);
        int starts = 0, ends = 0;
        for (int64_t i = 0; i < n; i++) starts += ids[i] == 1, ends += ids[i] == 2;
        RQ_CHECK(n > 10 && ids[0] == 1 && starts == 3 && ends == 2 && ids[n - 1] == 198); /* markers parsed, ends in "\n" */
        rq_free(ids);
    }
    rq_free(chat);
    rq_tokenizer_free(t);
    rq_gguf_close(g);
}

static void test_gemma3(const char *path) {
    rq_gguf *g = NULL;
    rq_tokenizer *t = load_model(path, &g);
    if (!t) return;
    RQ_CHECK(rq_tokenizer_kind_of(t) == RQ_TOKENIZER_SPM);
    RQ_CHECK(rq_tokenizer_n_vocab(t) == 262144);
    RQ_CHECK(rq_tokenizer_bos(t) == 2 && rq_tokenizer_eos(t) == 1 && rq_tokenizer_add_bos_default(t));
    /* llama.cpp's load log lists EOG tokens 1 <eos>, 106 <end_of_turn>, 212 </s> */
    for (int32_t id = 0; id < 300; id++) RQ_CHECK(rq_tokenizer_is_eog(t, id) == (id == 1 || id == 106 || id == 212));
    RQ_CHECK(check_extra(t, "gemma3") > 60);
    check_wiki(t, "tests/golden/gemma3_wiki_tokens_sample.txt", true);
    const char *mix = "  Hello,\tworld!\n\n\n  x  \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 <b>bold</b>";
    check_roundtrip(t, mix, (int64_t)strlen(mix), "gemma mix");
    char *chat = NULL;
    RQ_CHECK(rq_chat_format(g, "Be brief.", "Hi", &chat) == RQ_OK); /* no template: Gemma by architecture */
    RQ_CHECK(chat && strcmp(chat, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n") == 0);
    rq_free(chat);
    rq_tokenizer_free(t);
    rq_gguf_close(g);
}

/* ---- the merge queue (text/heap.h) against a sort ------------------------------------ */

typedef struct heap_item {
    int32_t key, seq; /* ordered by key, then seq (unique): a total order */
    int32_t payload[3];
} heap_item;

static bool heap_item_before(const void *pa, const void *pb) {
    const heap_item *a = pa, *b = pb;
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}
static int heap_item_cmp(const void *pa, const void *pb) {
    return heap_item_before(pa, pb) ? -1 : heap_item_before(pb, pa) ? 1 : 0;
}

/* Random pushes and pops interleaved (keys with many ties, past the first growth): every
 * pop returns the least item present, found by sorting a plain copy of the contents. */
static void test_heap(void) {
    enum { N_OPS = 5000 };
    rq_heap h = {0};
    static heap_item shadow[N_OPS];
    int64_t n_shadow = 0;
    rq_rng r;
    rq_rng_seed(&r, 7);
    int bad = 0;
    for (int op = 0; op < N_OPS; op++) {
        if (n_shadow == 0 || rq_rng_below(&r, 3) != 0) {
            heap_item it = {(int32_t)rq_rng_below(&r, 50), op, {op, -op, 2 * op}};
            RQ_ASSERT(rq_heap_push(&h, &it, sizeof it, heap_item_before) == RQ_OK);
            shadow[n_shadow++] = it;
        } else {
            heap_item got;
            rq_heap_pop(&h, &got, sizeof got, heap_item_before);
            qsort(shadow, (size_t)n_shadow, sizeof shadow[0], heap_item_cmp);
            bad += memcmp(&got, &shadow[0], sizeof got) != 0;
            memmove(shadow, shadow + 1, (size_t)(--n_shadow) * sizeof shadow[0]);
        }
        bad += h.n != n_shadow;
    }
    /* drain: sorted order */
    qsort(shadow, (size_t)n_shadow, sizeof shadow[0], heap_item_cmp);
    for (int64_t i = 0; i < n_shadow; i++) {
        heap_item got;
        rq_heap_pop(&h, &got, sizeof got, heap_item_before);
        bad += memcmp(&got, &shadow[i], sizeof got) != 0;
    }
    RQ_CHECK_MSG(bad == 0 && h.n == 0 && h.cap >= 256, "heap: %d mismatches", bad);
    rq_heap_clear(&h);
    rq_heap_free(&h);
    RQ_CHECK(h.items == NULL && h.n == 0 && h.cap == 0);
}

int main(void) {
    test_heap();
    test_synthetic_bpe();
    test_synthetic_bpe_errors();
    test_synthetic_spm();
    test_gguf_metadata();
    test_chat();
    const char *model = rq_test_model_path();
    if (model) test_smollm2(model);
    else printf("note: default model absent, SmolLM2 checks skipped\n");
    if (rq_test_file_exists(k_gemma)) test_gemma3(k_gemma);
    else printf("note: %s absent, Gemma 3 checks skipped\n", k_gemma);
    if (!model && rq_test_failed == 0) RQ_SKIP("models/ lacks the default model (synthetic checks passed: %d)", rq_test_passed);
    return rq_test_finish();
}

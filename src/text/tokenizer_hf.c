/* rq_tokenizer_hf_to_gguf: tokenizer.json + tokenizer_config.json -> tokenizer.ggml.* keys. */
#include "text/tokenizer_hf.h"

#include "io/file.h"
#include "io/json.h"
#include "text/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Token ids and vocabulary sizes accepted (far above any real vocabulary). */
#define HF_MAX_VOCAB (INT64_C(1) << 24)

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Parse a JSON file; an absent optional file gives *doc = NULL. */
static rq_status read_json(const char *path, bool required, rq_json_doc **doc) {
    *doc = NULL;
    if (!required && !file_exists(path)) return RQ_OK;
    char *text;
    int64_t len;
    RQ_TRY(rq_file_read(path, &text, &len));
    rq_status s = rq_json_parse(text, len, NULL, doc, NULL);
    rq_free(text);
    if (s != RQ_OK) return rq_error_prefix(s, path);
    return RQ_OK;
}

static bool json_str_is(const rq_json *v, const char *s) {
    return v && v->type == RQ_JSON_STRING && (size_t)v->len == strlen(s) && !memcmp(v->str, s, (size_t)v->len);
}

static bool json_true(const rq_json *v) { return v && v->type == RQ_JSON_TRUE; }

/* A token id: a whole number in [0, HF_MAX_VOCAB). */
static bool json_id(const rq_json *v, int64_t *out) {
    if (!v || v->type != RQ_JSON_NUMBER || !(v->number >= 0) || v->number >= (double)HF_MAX_VOCAB ||
        v->number != floor(v->number))
        return false;
    *out = (int64_t)v->number;
    return true;
}

/* The ByteLevel pre-tokenizer with its GPT-2 regex and without a prefix space. */
static bool is_byte_level(const rq_json *p) {
    if (!p || p->type != RQ_JSON_OBJECT || !json_str_is(rq_json_get(p, "type"), "ByteLevel")) return false;
    const rq_json *re = rq_json_get(p, "use_regex"), *sp = rq_json_get(p, "add_prefix_space");
    return (!re || json_true(re)) && !json_true(sp);
}

/* tokenizer.ggml.pre for the pre_tokenizer of tokenizer.json, or NULL. */
static const char *pre_name(const rq_json *p) {
    if (is_byte_level(p)) return "gpt-2";
    if (p && p->type == RQ_JSON_OBJECT && json_str_is(rq_json_get(p, "type"), "Sequence")) {
        const rq_json *l = rq_json_get(p, "pretokenizers");
        if (l && l->type == RQ_JSON_ARRAY && l->len == 2 && l->items[0]->type == RQ_JSON_OBJECT &&
            json_str_is(rq_json_get(l->items[0], "type"), "Digits") &&
            json_true(rq_json_get(l->items[0], "individual_digits")) && is_byte_level(l->items[1]))
            return "smollm";
    }
    return NULL;
}

/* The "▁" (U+2581) of SentencePiece, UTF-8. */
#define SPM_SPACE "\xe2\x96\x81"

/* Normalizer Replace(" " -> "▁"). */
static bool is_space_replace(const rq_json *n) {
    const rq_json *pat = n && n->type == RQ_JSON_OBJECT ? rq_json_get(n, "pattern") : NULL;
    return n && n->type == RQ_JSON_OBJECT && json_str_is(rq_json_get(n, "type"), "Replace") && pat &&
           json_str_is(rq_json_get(pat, "String"), " ") && json_str_is(rq_json_get(n, "content"), SPM_SPACE);
}

/* SentencePiece-style text handling: spaces become "▁", with "▁" prepended to the text
 * or not (*prefix). The forms: normalizer Replace, or Sequence[Prepend("▁"), Replace],
 * with no pre-tokenizer or a Split on " " (nothing left to split after the normalizer);
 * or no normalizer and a Metaspace pre-tokenizer that does not split. */
static bool spm_text(const rq_json *norm, const rq_json *pre, bool *prefix) {
    *prefix = false;
    bool pre_none = !pre || pre->type == RQ_JSON_NULL ||
                    (pre->type == RQ_JSON_OBJECT && json_str_is(rq_json_get(pre, "type"), "Split") &&
                     rq_json_get(pre, "pattern") && json_str_is(rq_json_get(rq_json_get(pre, "pattern"), "String"), " "));
    if (is_space_replace(norm)) return pre_none;
    if (norm && norm->type == RQ_JSON_OBJECT && json_str_is(rq_json_get(norm, "type"), "Sequence")) {
        const rq_json *l = rq_json_get(norm, "normalizers");
        if (l && l->type == RQ_JSON_ARRAY && l->len == 2 && l->items[0]->type == RQ_JSON_OBJECT &&
            json_str_is(rq_json_get(l->items[0], "type"), "Prepend") &&
            json_str_is(rq_json_get(l->items[0], "prepend"), SPM_SPACE) && is_space_replace(l->items[1])) {
            *prefix = true;
            return pre_none;
        }
        return false;
    }
    if ((!norm || norm->type == RQ_JSON_NULL) && pre && pre->type == RQ_JSON_OBJECT &&
        json_str_is(rq_json_get(pre, "type"), "Metaspace") && json_str_is(rq_json_get(pre, "replacement"), SPM_SPACE) &&
        rq_json_get(pre, "split") && rq_json_get(pre, "split")->type == RQ_JSON_FALSE) {
        const rq_json *ps = rq_json_get(pre, "prepend_scheme");
        *prefix = json_str_is(ps, "always") || json_str_is(ps, "first");
        return json_str_is(ps, "always") || json_str_is(ps, "first") || json_str_is(ps, "never");
    }
    return false;
}

/* "<0xNN>": a byte token of SentencePiece's byte fallback. */
static bool is_byte_token(const char *s, int64_t len) {
    return len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789ABCDEF", s[3]) && s[3] &&
           strchr("0123456789ABCDEF", s[4]) && s[4];
}

/* The content of a special token entry of tokenizer_config.json: a string or an object
 * with "content"; NULL when absent or null. */
static const rq_json *special_content(const rq_json *cfg, const char *key) {
    const rq_json *v = rq_json_get(cfg, key);
    if (v && v->type == RQ_JSON_OBJECT) v = rq_json_get(v, "content");
    return v && v->type == RQ_JSON_STRING ? v : NULL;
}

typedef struct {
    const char *path;    /* tokenizer.json, for messages */
    int64_t n;           /* tokens */
    rq_gguf_str *tokens; /* [n] ptr NULL: not given */
    int32_t *types;      /* [n] */
    const rq_json *vocab, *added;
} vocab_ctx;

/* The id of a token given by its text, or -1. */
static int64_t find_id(const vocab_ctx *v, const rq_json *content) {
    int64_t id;
    if (v->added)
        for (int64_t i = 0; i < v->added->len; i++) {
            const rq_json *c = rq_json_get(v->added->items[i], "content");
            if (c && c->len == content->len && !memcmp(c->str, content->str, (size_t)c->len) &&
                json_id(rq_json_get(v->added->items[i], "id"), &id))
                return id;
        }
    if (json_id(rq_json_get_n(v->vocab, content->str, content->len), &id)) return id;
    return -1;
}

static rq_status set_token(vocab_ctx *v, int64_t id, const char *s, int64_t len, int32_t type) {
    if (id >= v->n)
        return rq_errorf(RQ_EFORMAT, "%s: token id %lld is past the vocabulary size %lld", v->path, (long long)id,
                         (long long)v->n);
    rq_gguf_str *t = &v->tokens[id];
    if (t->ptr && (t->len != (uint64_t)len || memcmp(t->ptr, s, (size_t)len)))
        return rq_errorf(RQ_EFORMAT, "%s: token id %lld is given to two different strings", v->path, (long long)id);
    t->ptr = s;
    t->len = (uint64_t)len;
    v->types[id] = type;
    return RQ_OK;
}

/* SentencePiece scores from BPE merges: the piece that merge r makes scores -r (its first
 * merge); llama.cpp's SentencePiece tokenizer merges the highest-scoring pair first, which
 * is the lowest-ranked merge. Pieces no merge makes score below every merge. */
static rq_status spm_scores(const vocab_ctx *v, const rq_gguf_str *merges, int64_t n_merges, float **out) {
    float *sc = rq_alloc(v->n * (int64_t)sizeof(float));
    char *buf = rq_alloc(1 << 16);
    if (!sc || !buf) {
        rq_free(sc), rq_free(buf);
        return rq_error_prefix(RQ_ENOMEM, v->path);
    }
    for (int64_t i = 0; i < v->n; i++) sc[i] = -(float)(n_merges + 1);
    for (int64_t r = n_merges - 1; r >= 0; r--) { /* backwards: the first merge of a piece wins */
        const char *sp = memchr(merges[r].ptr, ' ', merges[r].len);
        if (!sp || merges[r].len >= (1 << 16)) continue;
        int64_t ll = sp - merges[r].ptr, rl = (int64_t)merges[r].len - ll - 1;
        memcpy(buf, merges[r].ptr, (size_t)ll);
        memcpy(buf + ll, sp + 1, (size_t)rl);
        int64_t id;
        if (json_id(rq_json_get_n(v->vocab, buf, ll + rl), &id) && id < v->n) sc[id] = -(float)r;
    }
    rq_free(buf);
    *out = sc;
    return RQ_OK;
}

/* Merges as "left right" strings (the pairs form joined into arena). */
static rq_status read_merges(const char *path, const rq_json *merges, rq_gguf_str **out, char **arena) {
    *out = NULL;
    *arena = NULL;
    int64_t n = merges->len, bytes = 1;
    for (int64_t i = 0; i < n; i++) {
        const rq_json *m = merges->items[i];
        if (m->type == RQ_JSON_ARRAY && m->len == 2 && m->items[0]->type == RQ_JSON_STRING &&
            m->items[1]->type == RQ_JSON_STRING)
            bytes += m->items[0]->len + m->items[1]->len + 1;
        else if (m->type != RQ_JSON_STRING)
            return rq_errorf(RQ_EFORMAT, "%s: model.merges[%lld] is neither a string nor a pair of strings", path,
                             (long long)i);
    }
    rq_gguf_str *ms = rq_alloc((n ? n : 1) * (int64_t)sizeof *ms);
    char *a = rq_alloc(bytes);
    if (!ms || !a) {
        rq_free(ms), rq_free(a);
        return rq_error_prefix(RQ_ENOMEM, path);
    }
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        const rq_json *m = merges->items[i];
        if (m->type == RQ_JSON_STRING) {
            ms[i] = (rq_gguf_str){m->str, (uint64_t)m->len};
            continue;
        }
        const rq_json *l = m->items[0], *r = m->items[1];
        ms[i] = (rq_gguf_str){a + pos, (uint64_t)(l->len + 1 + r->len)};
        memcpy(a + pos, l->str, (size_t)l->len), pos += l->len;
        a[pos++] = ' ';
        memcpy(a + pos, r->str, (size_t)r->len), pos += r->len;
    }
    *out = ms;
    *arena = a;
    return RQ_OK;
}

/* bos/eos/unk/pad ids, add_bos_token and the chat template of tokenizer_config.json. */
static rq_status read_config(const char *dir, const char *cfg_path, const rq_json *cfg, const rq_json *model,
                             const vocab_ctx *v, rq_gguf_writer *w) {
    static const struct { const char *cfg_key, *gguf_key; } ids[] = {
        {"bos_token", "tokenizer.ggml.bos_token_id"},
        {"eos_token", "tokenizer.ggml.eos_token_id"},
        {"unk_token", "tokenizer.ggml.unknown_token_id"},
        {"pad_token", "tokenizer.ggml.padding_token_id"},
    };
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        const rq_json *c = cfg ? special_content(cfg, ids[k].cfg_key) : NULL;
        if (!c && k == 2) c = special_content(model, "unk_token");
        if (!c) continue;
        int64_t id = find_id(v, c);
        if (id < 0 || id >= v->n)
            return rq_errorf(RQ_EFORMAT, "%s: %s '%.64s' is not a token of the vocabulary", cfg ? cfg_path : v->path,
                             ids[k].cfg_key, c->str);
        rq_gguf_writer_set_u32(w, ids[k].gguf_key, (uint32_t)id);
    }
    if (!cfg) return RQ_OK;
    const rq_json *ab = rq_json_get(cfg, "add_bos_token");
    if (ab && ab->type != RQ_JSON_NULL) {
        if (ab->type != RQ_JSON_TRUE && ab->type != RQ_JSON_FALSE)
            return rq_errorf(RQ_EFORMAT, "%s: add_bos_token must be true or false", cfg_path);
        rq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", ab->type == RQ_JSON_TRUE);
    }
    const rq_json *ct = rq_json_get(cfg, "chat_template");
    if (ct && ct->type == RQ_JSON_ARRAY) { /* [{"name": ..., "template": ...}]: the default one */
        const rq_json *found = NULL;
        for (int64_t i = 0; i < ct->len; i++)
            if (json_str_is(rq_json_get(ct->items[i], "name"), "default")) found = rq_json_get(ct->items[i], "template");
        ct = found;
    }
    if (ct && ct->type == RQ_JSON_STRING) {
        if (memchr(ct->str, 0, (size_t)ct->len))
            return rq_errorf(RQ_EFORMAT, "%s: chat_template contains a NUL byte", cfg_path);
        rq_gguf_writer_set_str(w, "tokenizer.chat_template", ct->str);
        return RQ_OK;
    }
    if (ct && ct->type != RQ_JSON_NULL)
        return rq_errorf(RQ_EFORMAT, "%s: chat_template must be a string or a list of named templates", cfg_path);
    /* newer checkpoints keep it in its own file */
    size_t pl = strlen(dir) + 32;
    char *jp = rq_xalloc((int64_t)pl);
    snprintf(jp, pl, "%s/chat_template.jinja", dir);
    rq_status s = RQ_OK;
    if (file_exists(jp)) {
        char *text;
        int64_t len;
        s = rq_file_read(jp, &text, &len);
        if (s == RQ_OK) {
            if ((int64_t)strlen(text) != len) s = rq_errorf(RQ_EFORMAT, "%s: contains a NUL byte", jp);
            else rq_gguf_writer_set_str(w, "tokenizer.chat_template", text);
            rq_free(text);
        }
    }
    rq_free(jp);
    return s;
}

rq_status rq_tokenizer_hf_to_gguf(const char *dir, int64_t n_vocab, rq_gguf_writer *w) {
    if (n_vocab < 0 || n_vocab > HF_MAX_VOCAB)
        return rq_errorf(RQ_EINVAL, "%s: vocabulary size %lld out of range", dir, (long long)n_vocab);
    size_t pl = strlen(dir) + 32;
    char *tok_path = rq_xalloc((int64_t)pl), *cfg_path = rq_xalloc((int64_t)pl);
    snprintf(tok_path, pl, "%s/tokenizer.json", dir);
    snprintf(cfg_path, pl, "%s/tokenizer_config.json", dir);
    rq_json_doc *tdoc = NULL, *cdoc = NULL;
    vocab_ctx v = {.path = tok_path};
    rq_gguf_str *merges = NULL;
    char *arena = NULL, *pads = NULL;
    float *scores = NULL;
    rq_status s = read_json(tok_path, true, &tdoc);
    if (s == RQ_OK) s = read_json(cfg_path, false, &cdoc);
    if (s != RQ_OK) goto done;
    const rq_json *root = rq_json_root(tdoc), *cfg = cdoc ? rq_json_root(cdoc) : NULL;
    if (cfg && cfg->type != RQ_JSON_OBJECT) {
        s = rq_errorf(RQ_EFORMAT, "%s: not a JSON object", cfg_path);
        goto done;
    }
    const rq_json *model = rq_json_get(root, "model");
    if (!model || model->type != RQ_JSON_OBJECT) {
        s = rq_errorf(RQ_EFORMAT, "%s: missing \"model\" object", tok_path);
        goto done;
    }
    const rq_json *type = rq_json_get(model, "type"), *norm = rq_json_get(root, "normalizer");
    if (!json_str_is(type, "BPE")) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: tokenizer model type '%.32s' is not supported (only BPE)", tok_path,
                      type && type->type == RQ_JSON_STRING ? type->str : "?");
        goto done;
    }
    /* byte-level BPE ("gpt2"), or SentencePiece-style BPE with byte fallback ("llama") */
    const bool spm = json_true(rq_json_get(model, "byte_fallback"));
    bool space_prefix = false;
    if (spm && !spm_text(norm, rq_json_get(root, "pre_tokenizer"), &space_prefix)) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: byte-fallback BPE with this normalizer/pre_tokenizer is not supported "
                      "(known: spaces replaced by U+2581, with or without a prefix)", tok_path);
        goto done;
    }
    if (!spm && norm && norm->type != RQ_JSON_NULL) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: a normalizer in byte-level BPE is not supported", tok_path);
        goto done;
    }
    const char *pre = spm ? "default" : pre_name(rq_json_get(root, "pre_tokenizer"));
    if (!pre) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: pre_tokenizer not supported (known: ByteLevel, and Digits(individual) + "
                      "ByteLevel)", tok_path);
        goto done;
    }
    v.vocab = rq_json_get(model, "vocab");
    v.added = rq_json_get(root, "added_tokens");
    const rq_json *mj = rq_json_get(model, "merges");
    if (!v.vocab || v.vocab->type != RQ_JSON_OBJECT || v.vocab->len == 0) {
        s = rq_errorf(RQ_EFORMAT, "%s: missing or empty model.vocab", tok_path);
        goto done;
    }
    if (!mj || mj->type != RQ_JSON_ARRAY) {
        s = rq_errorf(RQ_EFORMAT, "%s: missing model.merges array", tok_path);
        goto done;
    }
    if (v.added && v.added->type == RQ_JSON_NULL) v.added = NULL;
    if (v.added && v.added->type != RQ_JSON_ARRAY) {
        s = rq_errorf(RQ_EFORMAT, "%s: added_tokens must be an array", tok_path);
        goto done;
    }
    /* the vocabulary size: the largest id + 1, or the model's */
    int64_t n_tok = 0, id = 0;
    for (int64_t i = 0; i < v.vocab->len; i++) {
        if (!json_id(v.vocab->members[i].value, &id)) {
            s = rq_errorf(RQ_EFORMAT, "%s: model.vocab '%.64s': the id is not an integer in [0, %lld)", tok_path,
                          v.vocab->members[i].key, (long long)HF_MAX_VOCAB);
            goto done;
        }
        if (id + 1 > n_tok) n_tok = id + 1;
    }
    for (int64_t i = 0; v.added && i < v.added->len; i++) {
        const rq_json *a = v.added->items[i], *c = rq_json_get(a, "content");
        if (a->type != RQ_JSON_OBJECT || !c || c->type != RQ_JSON_STRING || !json_id(rq_json_get(a, "id"), &id)) {
            s = rq_errorf(RQ_EFORMAT, "%s: added_tokens[%lld] needs an integer \"id\" and a string \"content\"",
                          tok_path, (long long)i);
            goto done;
        }
        if (id + 1 > n_tok) n_tok = id + 1;
    }
    if (n_vocab > 0 && n_tok > n_vocab) {
        s = rq_errorf(RQ_EFORMAT, "%s: token id %lld is past the model's vocabulary size %lld (config.json)", tok_path,
                      (long long)(n_tok - 1), (long long)n_vocab);
        goto done;
    }
    v.n = n_vocab > 0 ? n_vocab : n_tok;
    v.tokens = rq_calloc(v.n * (int64_t)sizeof *v.tokens);
    v.types = rq_alloc(v.n * (int64_t)sizeof *v.types);
    pads = rq_alloc(v.n * 20);
    if (!v.tokens || !v.types || !pads) {
        s = rq_error_prefix(RQ_ENOMEM, tok_path);
        goto done;
    }
    for (int64_t i = 0; i < v.vocab->len && s == RQ_OK; i++) {
        json_id(v.vocab->members[i].value, &id);
        s = set_token(&v, id, v.vocab->members[i].key, v.vocab->members[i].key_len, RQ_TOKEN_NORMAL);
    }
    for (int64_t i = 0; v.added && i < v.added->len && s == RQ_OK; i++) {
        const rq_json *a = v.added->items[i], *c = rq_json_get(a, "content");
        json_id(rq_json_get(a, "id"), &id);
        s = set_token(&v, id, c->str, c->len, json_true(rq_json_get(a, "special")) ? RQ_TOKEN_CONTROL
                                                                                   : RQ_TOKEN_USER_DEFINED);
    }
    if (s != RQ_OK) goto done;
    for (int64_t i = 0; i < v.n; i++) /* ids nobody names: llama.cpp's padding tokens */
        if (!v.tokens[i].ptr) {
            char *p = pads + i * 20;
            v.tokens[i] = (rq_gguf_str){p, (uint64_t)snprintf(p, 20, "[PAD%lld]", (long long)i)};
            v.types[i] = RQ_TOKEN_UNUSED;
        }
    if ((s = read_merges(tok_path, mj, &merges, &arena)) != RQ_OK) goto done;
    if (spm) {
        const rq_json *unk = rq_json_get(model, "unk_token");
        for (int64_t i = 0; i < v.n; i++)
            if (v.types[i] == RQ_TOKEN_NORMAL && is_byte_token(v.tokens[i].ptr, (int64_t)v.tokens[i].len))
                v.types[i] = RQ_TOKEN_BYTE;
        if (unk && unk->type == RQ_JSON_STRING && (id = find_id(&v, unk)) >= 0 && v.types[id] == RQ_TOKEN_NORMAL)
            v.types[id] = RQ_TOKEN_UNKNOWN;
        if ((s = spm_scores(&v, merges, mj->len, &scores)) != RQ_OK) goto done;
    }
    rq_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    rq_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v.tokens, (uint64_t)v.n);
    rq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RQ_GGUF_I32, v.types, (uint64_t)v.n);
    if (spm) rq_gguf_writer_set_arr(w, "tokenizer.ggml.scores", RQ_GGUF_F32, scores, (uint64_t)v.n);
    else rq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)mj->len);
    rq_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix);
    s = read_config(dir, cfg_path, cfg, model, &v, w);
done:
    rq_free(scores);
    rq_free(v.tokens);
    rq_free(v.types);
    rq_free(pads);
    rq_free(merges);
    rq_free(arena);
    rq_json_doc_free(tdoc);
    rq_json_doc_free(cdoc);
    rq_free(tok_path);
    rq_free(cfg_path);
    return s;
}

rq_status rq_tokenizer_load_hf(const char *dir, rq_tokenizer **out) {
    *out = NULL;
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf *g = NULL;
    rq_status s = rq_tokenizer_hf_to_gguf(dir, 0, w);
    if (s == RQ_OK) s = rq_gguf_writer_open_image(w, dir, &g);
    rq_gguf_writer_free(w);
    if (s == RQ_OK) s = rq_tokenizer_load(g, out);
    rq_gguf_close(g);
    return s;
}

/* Byte-level BPE (GPT-2 style), as llama.cpp's llm_tokenizer_bpe_session:
 *   1. decode the fragment as UTF-8 the way llama.cpp does (bad bytes -> U+FFFD);
 *   2. split it into words with the pre-tokenizer's regexes (PCRE2, UTF + UCP);
 *   3. map each byte of a word to its GPT-2 "byte character" and merge adjacent symbols,
 *      lowest merge rank first (ties: leftmost), until no pair has a rank;
 *   4. each final symbol is a token; one not in the vocabulary falls back byte by byte.
 *
 * The regexes: llama.cpp runs the GPT-2 split through a hand-written matcher and the
 * \p{N} split through std::regex, both over its own Unicode tables (Unicode 15.1, with
 * whitespace = the White_Space property). The PCRE2 patterns below reproduce them:
 * \s is spelled out as the White_Space set (PCRE2's \s also matches U+180E), and \p{L}
 * and \p{N} are extended by the code points Unicode 15.0-15.1 assigned to them, which the
 * Unicode 14 tables of Debian 12's PCRE2 (10.42) do not know. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/heap.h"
#include "text/tokenizer_impl.h"

#include <stdlib.h>
#include <pthread.h>
#include <string.h>

/* llama.cpp's unicode_set_whitespace (the White_Space property). */
#define WS "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
/* \p{L} plus the letters added in Unicode 15.0 and 15.1 */
#define LETTER                                                                                                  \
    "\\p{L}\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-"     \
    "\\x{13446}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{2B739}" \
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
/* \p{N} plus the numbers added in Unicode 15.0 */
#define NUMBER "\\p{N}\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char k_re_words[] = "'s|'t|'re|'ve|'m|'ll|'d| ?[" LETTER "]+| ?[" NUMBER "]+| ?[^" WS LETTER NUMBER
                                 "]+|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char k_re_digit[] = "[" NUMBER "]";

/* ---- GPT-2 byte <-> unicode ------------------------------------------------------- */

static bool byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The other 68 bytes (0x00-0x20, 0x7F-0xA0, 0xAD) take U+0100, U+0101, ... in byte order. */
uint32_t rq_bpe_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    return 256u + 67; /* 0xAD */
}

int rq_bpe_cpt_to_byte(uint32_t c) {
    if (c < 256) return byte_is_printable((int)c) ? (int)c : -1;
    uint32_t k = c - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + k - 33);
    if (k == 67) return 0xAD;
    return -1;
}

/* ---- set-up ------------------------------------------------------------------------ */

static const char *const k_pre_smollm[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "minerva-7b", NULL};
static const char *const k_pre_gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                                         "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe",
                                         "exaone4", "mpt", "olmo", NULL};

static bool name_in(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

/* The two pre-tokenizer regexes are compiled (and JIT-compiled) once per process and
 * shared by every tokenizer: compiling took most of the time of loading a small
 * vocabulary (the tokenizer fuzzer loads one per input). Matching only reads them. */
static pthread_mutex_t g_re_lock = PTHREAD_MUTEX_INITIALIZER;
static pcre2_code *g_re[2]; /* k_re_words, k_re_digit */

static rq_status compile(int which, struct pcre2_real_code_8 **out) {
    static const char *const patterns[2] = {k_re_words, k_re_digit};
    pthread_mutex_lock(&g_re_lock);
    if (!g_re[which]) {
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)patterns[which], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                       &err, &off, NULL);
        if (!re) {
            pthread_mutex_unlock(&g_re_lock);
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            return rq_errorf(RQ_EUNSUPPORTED, "PCRE2 cannot compile the pre-tokenizer regex at %zu: %s", (size_t)off,
                             (char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
        g_re[which] = re;
    }
    *out = (struct pcre2_real_code_8 *)g_re[which];
    pthread_mutex_unlock(&g_re_lock);
    return RQ_OK;
}

void rq_bpe_free(rq_tokenizer *t) {
    rq_free(t->merges);
    t->merges = NULL;
    t->re_digit = t->re_words = NULL; /* shared, compiled once (compile) */
}

static rq_bpe_merge *merge_slot(const rq_tokenizer *t, uint64_t key) {
    for (int64_t k = (int64_t)(rq_u64_hash(key) & (uint64_t)t->merges_mask);; k = (k + 1) & t->merges_mask) {
        rq_bpe_merge *m = &t->merges[k];
        if (m->rank < 0 || m->key == key) return m;
    }
}

rq_status rq_bpe_init(rq_tokenizer *t, const rq_tokenizer_spec *spec) {
    if (!spec->pre || !spec->pre[0])
        return rq_errorf(RQ_EUNSUPPORTED, "tokenizer.ggml.pre missing: llama.cpp's \"default\" BPE pre-tokenizer is not implemented");
    if (name_in(spec->pre, k_pre_smollm)) t->pre = RQ_BPE_PRE_SMOLLM;
    else if (name_in(spec->pre, k_pre_gpt2)) t->pre = RQ_BPE_PRE_GPT2;
    else return rq_errorf(RQ_EUNSUPPORTED, "tokenizer.ggml.pre = \"%s\": pre-tokenizer not implemented", spec->pre);
    if (spec->n_merges <= 0 || !spec->merges) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges: missing or empty");
    if (spec->n_merges >= INT32_MAX) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges: too many entries");

    int64_t cap = 16;
    while (cap < 2 * spec->n_merges) cap *= 2;
    t->merges = (rq_bpe_merge *)rq_alloc(cap * (int64_t)sizeof(rq_bpe_merge));
    if (!t->merges) return RQ_ENOMEM;
    t->merges_mask = cap - 1;
    for (int64_t k = 0; k < cap; k++) t->merges[k].rank = -1;

    char *cat = NULL;
    int64_t cat_cap = 0;
    for (int64_t r = 0; r < spec->n_merges; r++) {
        const char *m = spec->merges[r];
        if (!m) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges[%lld]: NULL", (long long)r);
        int64_t len = spec->merge_lens ? spec->merge_lens[r] : (int64_t)strlen(m);
        if (len < 0 || len > INT32_MAX / 2) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges[%lld]: bad length", (long long)r);
        /* llama.cpp splits at the first space after the first byte */
        const char *sp = len > 1 ? memchr(m + 1, ' ', (size_t)(len - 1)) : NULL;
        if (!sp) {
            rq_free(cat);
            return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges[%lld] = \"%.*s\": no space between the two parts", (long long)r,
                             (int)(len > 64 ? 64 : len), m);
        }
        int64_t ll = sp - m, rl = len - ll - 1;
        int32_t a = rq_tok_lookup(t, m, ll), b = rq_tok_lookup(t, sp + 1, rl);
        if (a < 0 || b < 0) {
            rq_free(cat);
            return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.merges[%lld] = \"%.*s\": \"%.*s\" is not in the vocabulary", (long long)r,
                             (int)(len > 64 ? 64 : len), m,
                             (int)(a < 0 ? (ll > 64 ? 64 : ll) : (rl > 64 ? 64 : rl)), a < 0 ? m : sp + 1);
        }
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        rq_bpe_merge *slot = merge_slot(t, key);
        if (slot->rank >= 0) continue; /* a repeated pair keeps its first rank, as llama.cpp */
        if (ll + rl > cat_cap) {
            rq_free(cat);
            cat_cap = 2 * (ll + rl) + 64;
            cat = (char *)rq_alloc(cat_cap);
            if (!cat) return RQ_ENOMEM;
        }
        memcpy(cat, m, (size_t)ll);
        memcpy(cat + ll, sp + 1, (size_t)rl);
        slot->key = key;
        slot->rank = (int32_t)r;
        slot->result = rq_tok_lookup(t, cat, ll + rl);
    }
    rq_free(cat);

    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = rq_utf8_encode(rq_bpe_byte_to_cpt((uint8_t)b), u);
        t->byte_sym[b] = rq_tok_lookup(t, u, n);
        char one = (char)b;
        t->single_byte_tok[b] = rq_tok_lookup(t, &one, 1);
    }

    RQ_TRY(compile(0, &t->re_words));
    if (t->pre == RQ_BPE_PRE_SMOLLM) RQ_TRY(compile(1, &t->re_digit));
    return RQ_OK;
}

/* ---- merging one word -------------------------------------------------------------- */

typedef struct sym {
    int32_t id;    /* vocabulary id of the symbol's text, -1 if none */
    int32_t start; /* byte offset in the word */
    int32_t len;   /* bytes; 0 = merged away */
    int32_t prev, next;
} sym;

typedef struct bigram {
    int32_t rank, left, right;
    int32_t id_left, id_right, result;
} bigram;

typedef struct bpe_scratch {
    sym *syms;
    int64_t syms_cap;
    rq_heap heap; /* of bigram, lowest rank first, then leftmost */
} bpe_scratch;

static bool bigram_before(const void *pa, const void *pb) {
    const bigram *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static rq_status bigram_push(rq_heap *h, const bigram *g) { return rq_heap_push(h, g, sizeof *g, bigram_before); }
static bigram bigram_pop(rq_heap *h) {
    bigram g;
    rq_heap_pop(h, &g, sizeof g, bigram_before);
    return g;
}

static rq_status try_bigram(const rq_tokenizer *t, bpe_scratch *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return RQ_OK;
    int32_t a = w->syms[left].id, b = w->syms[right].id;
    if (a < 0 || b < 0) return RQ_OK; /* merge parts are vocabulary tokens */
    const rq_bpe_merge *m = merge_slot(t, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
    if (m->rank < 0) return RQ_OK;
    bigram g = {m->rank, left, right, a, b, m->result};
    return bigram_push(&w->heap, &g);
}

/* A symbol that is not a token: llama.cpp looks up each byte of its byte-level text as a
 * one-byte string and keeps those found. */
static rq_status emit_fallback(const rq_tokenizer *t, const uint8_t *word, int32_t start, int32_t len, rq_ivec *out) {
    for (int32_t i = start; i < start + len; i++) {
        char u[4];
        int n = rq_utf8_encode(rq_bpe_byte_to_cpt(word[i]), u);
        for (int k = 0; k < n; k++) {
            int32_t id = t->single_byte_tok[(uint8_t)u[k]];
            if (id >= 0) RQ_TRY(rq_ivec_push(out, id));
        }
    }
    return RQ_OK;
}

static rq_status bpe_word(const rq_tokenizer *t, bpe_scratch *w, const uint8_t *word, int64_t n, rq_ivec *out) {
    if (n == 1) {
        int32_t id = t->byte_sym[word[0]];
        return id >= 0 ? rq_ivec_push(out, id) : emit_fallback(t, word, 0, 1, out);
    }
    if (n > INT32_MAX / 2) return rq_errorf(RQ_EINVAL, "tokenize: word of %lld bytes too long", (long long)n);
    if (n > w->syms_cap) {
        rq_free(w->syms);
        w->syms_cap = n < 256 ? 256 : 2 * n;
        w->syms = (sym *)rq_alloc(w->syms_cap * (int64_t)sizeof(sym));
        if (!w->syms) {
            w->syms_cap = 0;
            return RQ_ENOMEM;
        }
    }
    sym *s = w->syms;
    for (int32_t i = 0; i < n; i++) {
        s[i].id = t->byte_sym[word[i]];
        s[i].start = i;
        s[i].len = 1;
        s[i].prev = i - 1;
        s[i].next = i + 1 < n ? i + 1 : -1;
    }
    rq_heap_clear(&w->heap);
    for (int32_t i = 1; i < n; i++) RQ_TRY(try_bigram(t, w, i - 1, i));
    while (w->heap.n > 0) {
        bigram g = bigram_pop(&w->heap);
        sym *l = &s[g.left], *r = &s[g.right];
        /* stale: a side was merged away or has changed since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->id != g.id_left || r->id != g.id_right) continue;
        l->len += r->len;
        l->id = g.result;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = g.left;
        RQ_TRY(try_bigram(t, w, l->prev, g.left));
        RQ_TRY(try_bigram(t, w, g.left, l->next));
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (s[i].id >= 0) RQ_TRY(rq_ivec_push(out, s[i].id));
        else RQ_TRY(emit_fallback(t, word, s[i].start, s[i].len, out));
    }
    return RQ_OK;
}

/* ---- fragment ---------------------------------------------------------------------- */

/* Split subject[0..n) with `re`; every match and every gap between matches is a word. */
static rq_status split_words(const rq_tokenizer *t, bpe_scratch *w, const pcre2_code *re, pcre2_match_data *md,
                             const uint8_t *match_buf, const uint8_t *word_buf, int64_t n, rq_ivec *out) {
    PCRE2_SIZE off = 0;
    while ((int64_t)off < n) {
        int rc = pcre2_match(re, match_buf, (PCRE2_SIZE)n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        PCRE2_SIZE ms, me;
        if (rc == PCRE2_ERROR_NOMATCH) {
            ms = me = (PCRE2_SIZE)n;
        } else if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return rq_errorf(RQ_EINVAL, "tokenize: PCRE2 match failed: %s", (char *)msg);
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
            RQ_ASSERT(me > ms); /* no alternative matches the empty string */
        }
        if (ms > off) RQ_TRY(bpe_word(t, w, word_buf + off, (int64_t)(ms - off), out));
        if (me > ms) RQ_TRY(bpe_word(t, w, word_buf + ms, (int64_t)(me - ms), out));
        off = me;
    }
    return RQ_OK;
}

rq_status rq_bpe_encode_fragment(const rq_tokenizer *t, const char *text, int64_t n, rq_ivec *out) {
    /* 1. llama.cpp's view of the bytes, re-encoded canonically: each bad byte becomes
     *    U+FFFD (3 bytes). PCRE2 needs valid UTF-8, so surrogates (which llama.cpp keeps)
     *    are matched as U+E000, a code point of the same class and length. */
    int64_t cap;
    if (!rq_mul_ok(n, 3, &cap)) return rq_errorf(RQ_EINVAL, "tokenize: text too long");
    uint8_t *word_buf = (uint8_t *)rq_alloc(cap + 1);
    if (!word_buf) return RQ_ENOMEM;
    uint8_t *match_buf = word_buf;
    const uint8_t *src = (const uint8_t *)text;
    int64_t m = 0;
    bool surrogates = false;
    for (int64_t i = 0; i < n;) {
        if (src[i] < 0x80) {
            word_buf[m++] = src[i++];
            continue;
        }
        int64_t c = rq_utf8_decode_llama(src, n, &i);
        if (c < 0) c = 0xFFFD;
        if (c >= 0xD800 && c <= 0xDFFF) surrogates = true;
        m += rq_utf8_encode((uint32_t)c, (char *)word_buf + m);
    }
    if (surrogates) {
        match_buf = (uint8_t *)rq_alloc(m + 1);
        if (!match_buf) {
            rq_free(word_buf);
            return RQ_ENOMEM;
        }
        memcpy(match_buf, word_buf, (size_t)m);
        for (int64_t i = 0; i + 2 < m; i++)
            if (match_buf[i] == 0xED && match_buf[i + 1] >= 0xA0 && (match_buf[i + 1] & 0xC0) == 0x80) {
                match_buf[i] = 0xEE;
                match_buf[i + 1] = 0x80;
                match_buf[i + 2] = 0x80;
                i += 2;
            }
    }

    bpe_scratch w = {0};
    rq_status s = RQ_OK;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md) s = rq_errorf(RQ_ENOMEM, "tokenize: out of memory");
    const pcre2_code *words = (const pcre2_code *)t->re_words;
    if (s == RQ_OK && t->pre == RQ_BPE_PRE_SMOLLM) {
        /* 2a. every \p{N} code point is a word of its own; the GPT-2 split runs on the
         *     text between them, each piece as a separate subject (so (?!\S) sees its end) */
        const pcre2_code *digit = (const pcre2_code *)t->re_digit;
        PCRE2_SIZE off = 0;
        while (s == RQ_OK && (int64_t)off < m) {
            int rc = pcre2_match(digit, match_buf, (PCRE2_SIZE)m, off, PCRE2_NO_UTF_CHECK, md, NULL);
            PCRE2_SIZE ms = (PCRE2_SIZE)m, me = (PCRE2_SIZE)m;
            if (rc >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                ms = ov[0];
                me = ov[1];
            } else if (rc != PCRE2_ERROR_NOMATCH) {
                s = rq_errorf(RQ_EINVAL, "tokenize: PCRE2 match failed (%d)", rc);
                break;
            }
            if (ms > off) s = split_words(t, &w, words, md, match_buf + off, word_buf + off, (int64_t)(ms - off), out);
            if (s == RQ_OK && me > ms) s = bpe_word(t, &w, word_buf + ms, (int64_t)(me - ms), out);
            off = me;
        }
    } else if (s == RQ_OK) {
        s = split_words(t, &w, words, md, match_buf, word_buf, m, out);
    }
    if (md) pcre2_match_data_free(md);
    rq_free(w.syms);
    rq_heap_free(&w.heap);
    if (match_buf != word_buf) rq_free(match_buf);
    rq_free(word_buf);
    return s;
}

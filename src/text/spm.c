/* SentencePiece-style tokenizer, as llama.cpp's llm_tokenizer_spm_session:
 *   1. optionally prefix ' ', then replace every ' ' by U+2581;
 *   2. cut the text into symbols by UTF-8 lead byte (no validation);
 *   3. repeatedly merge the adjacent pair whose concatenation is the vocabulary token with
 *      the highest score (ties: leftmost);
 *   4. a final symbol that is a token is emitted, any other as <0xNN> byte tokens.
 * llama.cpp's step 4 first tries to re-split a non-token symbol along a recorded merge of
 * the same text (rev_merge); that never applies: merged symbols are tokens by
 * construction, and an unmerged symbol (one lead-byte-delimited character) is shorter
 * than any pair of symbols, so no merge ever had its text. */
#include "text/heap.h"
#include "text/tokenizer_impl.h"

#include <stdio.h>
#include <string.h>

rq_status rq_spm_init(rq_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = rq_tok_lookup(t, buf, 6);
        if (id < 0) {
            char one = (char)b;
            id = rq_tok_lookup(t, &one, 1);
        }
        t->byte_tok[b] = id;
    }
    return RQ_OK;
}

typedef struct ssym {
    int64_t start; /* byte offset in the escaped text */
    int64_t len;   /* 0 = merged away */
    int64_t prev, next;
} ssym;

typedef struct sbigram {
    float score;
    int64_t left, right;
    int64_t size;
} sbigram;

typedef struct spm_work {
    const rq_tokenizer *t;
    const char *buf;
    ssym *syms;
    rq_heap heap; /* of sbigram, highest score first, then leftmost */
} spm_work;

static bool sbigram_before(const void *pa, const void *pb) {
    const sbigram *a = pa, *b = pb;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static rq_status sbigram_push(rq_heap *h, const sbigram *g) { return rq_heap_push(h, g, sizeof *g, sbigram_before); }
static sbigram sbigram_pop(rq_heap *h) {
    sbigram g;
    rq_heap_pop(h, &g, sizeof g, sbigram_before);
    return g;
}

static rq_status try_bigram(spm_work *w, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return RQ_OK;
    const ssym *l = &w->syms[left], *r = &w->syms[right];
    int64_t size = l->len + r->len;
    int32_t id = rq_tok_lookup(w->t, w->buf + l->start, size);
    if (id < 0) return RQ_OK;
    sbigram g = {w->t->scores[id], left, right, size};
    return sbigram_push(&w->heap, &g);
}

static rq_status emit_symbol(spm_work *w, int64_t start, int64_t len, rq_ivec *out) {
    const rq_tokenizer *t = w->t;
    int32_t id = rq_tok_lookup(t, w->buf + start, len);
    if (id >= 0) return rq_ivec_push(out, id);
    for (int64_t i = start; i < start + len; i++) {
        uint8_t b = (uint8_t)w->buf[i];
        if (t->byte_tok[b] < 0)
            return rq_errorf(RQ_EFORMAT, "tokenize: the vocabulary has no byte token <0x%02X> for a byte it cannot spell", b);
        RQ_TRY(rq_ivec_push(out, t->byte_tok[b]));
    }
    return RQ_OK;
}

static int64_t utf8_len_by_lead(uint8_t c) {
    static const int8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

rq_status rq_spm_encode_fragment(const rq_tokenizer *t, const char *text, int64_t n, bool prefix_space, rq_ivec *out) {
    int64_t cap;
    if (!rq_mul_ok(n + 1, 3, &cap)) return rq_errorf(RQ_EINVAL, "tokenize: text too long");
    char *buf = (char *)rq_alloc(cap);
    if (!buf) return RQ_ENOMEM;
    int64_t m = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (int64_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(buf + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            buf[m++] = text[i];
        }
    }
    if (m == 0) {
        rq_free(buf);
        return RQ_OK;
    }

    spm_work w = {0};
    w.t = t;
    w.buf = buf;
    rq_status s = RQ_OK;
    int64_t n_sym = 0;
    w.syms = (ssym *)rq_alloc(m * (int64_t)sizeof(ssym));
    if (!w.syms) {
        s = RQ_ENOMEM;
        goto done;
    }
    for (int64_t off = 0; off < m;) {
        int64_t l = utf8_len_by_lead((uint8_t)buf[off]);
        if (l > m - off) l = m - off;
        w.syms[n_sym].start = off;
        w.syms[n_sym].len = l;
        w.syms[n_sym].prev = n_sym - 1;
        off += l;
        w.syms[n_sym].next = off == m ? -1 : n_sym + 1;
        n_sym++;
    }
    for (int64_t i = 1; i < n_sym && s == RQ_OK; i++) s = try_bigram(&w, i - 1, i);
    while (s == RQ_OK && w.heap.n > 0) {
        sbigram g = sbigram_pop(&w.heap);
        ssym *l = &w.syms[g.left], *r = &w.syms[g.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != g.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w.syms[r->next].prev = g.left;
        s = try_bigram(&w, l->prev, g.left);
        if (s == RQ_OK) s = try_bigram(&w, g.left, l->next);
    }
    for (int64_t i = 0; s == RQ_OK && i >= 0; i = w.syms[i].next) s = emit_symbol(&w, w.syms[i].start, w.syms[i].len, out);
done:
    rq_free(w.syms);
    rq_heap_free(&w.heap);
    rq_free(buf);
    return s;
}

/* Internals shared by tokenizer.c (vocabulary, special tokens, decode), bpe.c and spm.c.
 * Not part of the public API. */
#ifndef RQ_TEXT_TOKENIZER_IMPL_H
#define RQ_TEXT_TOKENIZER_IMPL_H

#include "text/tokenizer.h"

#include <stdint.h>
#include <string.h>

/* llama.cpp's token attributes (a token may carry several). */
enum {
    RQ_ATTR_UNKNOWN = 1 << 0,
    RQ_ATTR_UNUSED = 1 << 1,
    RQ_ATTR_NORMAL = 1 << 2,
    RQ_ATTR_CONTROL = 1 << 3,
    RQ_ATTR_USER_DEFINED = 1 << 4,
    RQ_ATTR_BYTE = 1 << 5,
};

/* BPE pre-tokenizers (llama.cpp's LLAMA_VOCAB_PRE_TYPE_*). */
typedef enum rq_bpe_pre {
    RQ_BPE_PRE_GPT2 = 1,   /* GPT-2 split */
    RQ_BPE_PRE_SMOLLM = 2, /* \p{N} apart, then the GPT-2 split (also starcoder, refact, ...) */
} rq_bpe_pre;

/* Growable int32 array. */
typedef struct rq_ivec {
    int32_t *v;
    int64_t n, cap;
} rq_ivec;
rq_status rq_ivec_reserve(rq_ivec *a, int64_t cap);
static inline rq_status rq_ivec_push(rq_ivec *a, int32_t x) {
    if (a->n == a->cap) {
        rq_status s = rq_ivec_reserve(a, a->cap < 64 ? 64 : a->cap * 2);
        if (s != RQ_OK) return s;
    }
    a->v[a->n++] = x;
    return RQ_OK;
}

static inline uint64_t rq_text_hash(const void *p, int64_t n) {
    /* FNV-1a, then a final mix so that the low bits spread. */
    const uint8_t *b = (const uint8_t *)p;
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}
static inline uint64_t rq_u64_hash(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

typedef struct rq_bpe_merge {
    uint64_t key;   /* (left id << 32) | right id; 0 never used (empty slot marker is rank < 0) */
    int32_t rank;   /* position in tokenizer.ggml.merges; -1 = empty slot */
    int32_t result; /* id of the concatenation, -1 if not in the vocabulary */
} rq_bpe_merge;

struct pcre2_real_code_8;

struct rq_tokenizer {
    rq_tokenizer_kind kind;
    int32_t n_vocab;

    /* vocabulary: token i's string is text + text_off[i], text_len[i] bytes, NUL after */
    char *text;
    int64_t *text_off;  /* [n_vocab] */
    int32_t *text_len;  /* [n_vocab] */
    float *scores;      /* [n_vocab] */
    uint8_t *attr;      /* [n_vocab] RQ_ATTR_* bits */
    uint8_t *eog;       /* [n_vocab] 1 = end of generation */
    /* string -> id: open addressing, slot = id or -1 */
    int32_t *map;
    int64_t map_mask;

    /* decoded bytes of each token (token_to_piece) */
    char *piece;
    int64_t *piece_off; /* [n_vocab] */
    int32_t *piece_len; /* [n_vocab] */

    int32_t bos, eos, eot, eom, unk;
    bool add_bos;
    bool add_space_prefix;

    /* special tokens (CONTROL | USER_DEFINED | UNKNOWN) in matching priority order:
     * longer first, then lower id */
    int32_t n_special;
    int32_t *special; /* [n_special] token ids */
    bool has_plain_special; /* some special token is split out even without parse_special */
    /* trie over their strings: node 0 is the root; edge (node, byte) -> child in an
     * open-addressing table; node_special[node] = priority index ending there or -1 */
    int32_t n_nodes;
    int32_t *node_special;
    uint64_t *edge_key;  /* (node << 8 | byte) + 1; 0 = empty */
    int32_t *edge_child;
    int64_t edge_mask;

    /* BPE */
    rq_bpe_pre pre;
    rq_bpe_merge *merges; /* hash table */
    int64_t merges_mask;
    int32_t byte_sym[256];        /* id of the byte-level character for each byte, or -1 */
    int32_t single_byte_tok[256]; /* id of the one-byte string, or -1 (llama.cpp's fallback) */
    struct pcre2_real_code_8 *re_digit; /* \p{N} (smollm); shared, not owned (bpe.c) */
    struct pcre2_real_code_8 *re_words; /* GPT-2 split; shared, not owned */

    /* SPM */
    int32_t byte_tok[256]; /* <0xNN>, else the one-byte string, else -1 */
};

/* Vocabulary lookup: id of the string, or -1. */
int32_t rq_tok_lookup(const rq_tokenizer *t, const char *s, int64_t n);

/* Model-specific set-up, called by rq_tokenizer_create once the vocabulary is built. */
rq_status rq_bpe_init(rq_tokenizer *t, const rq_tokenizer_spec *spec);
void rq_bpe_free(rq_tokenizer *t);
rq_status rq_spm_init(rq_tokenizer *t);

/* Tokenize one fragment of raw text (no special tokens inside), appending to out. */
rq_status rq_bpe_encode_fragment(const rq_tokenizer *t, const char *s, int64_t n, rq_ivec *out);
/* prefix_space: prepend ' ' before escaping (SPM add_space_prefix after a special token
 * or at the start). */
rq_status rq_spm_encode_fragment(const rq_tokenizer *t, const char *s, int64_t n, bool prefix_space,
                                 rq_ivec *out);

/* GPT-2 byte <-> unicode mapping. */
uint32_t rq_bpe_byte_to_cpt(uint8_t b);
int rq_bpe_cpt_to_byte(uint32_t cpt); /* -1 if cpt is not the image of a byte */

/* UTF-8 helpers with llama.cpp's semantics. */
int rq_utf8_encode(uint32_t cpt, char *out); /* 1..4 bytes; cpt <= 0x10FFFF */
/* Decode one code point at s[*i] (n bytes in all) as llama.cpp's unicode_cpt_from_utf8
 * does; returns -1 (and advances by one byte) where llama.cpp would replace the byte
 * by U+FFFD. */
int64_t rq_utf8_decode_llama(const uint8_t *s, int64_t n, int64_t *i);

#endif

/* Vocabulary, special tokens, end-of-generation set, token pieces, the special-token
 * split of the input and decoding. The model-specific steps live in bpe.c and spm.c. */
#include "text/tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rq_status rq_ivec_reserve(rq_ivec *a, int64_t cap) {
    if (cap <= a->cap) return RQ_OK;
    int64_t bytes;
    if (!rq_mul_ok(cap, (int64_t)sizeof(int32_t), &bytes)) return rq_errorf(RQ_ENOMEM, "token list too long");
    int32_t *v = (int32_t *)rq_alloc(bytes);
    if (!v) return RQ_ENOMEM;
    if (a->n) memcpy(v, a->v, (size_t)a->n * sizeof(int32_t));
    rq_free(a->v);
    a->v = v;
    a->cap = cap;
    return RQ_OK;
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

int rq_utf8_encode(uint32_t c, char *o) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    RQ_ASSERT(c <= 0x10FFFF);
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* llama.cpp's decoder looks only at the lead byte's length bits and that the following
 * bytes are continuation bytes: overlong forms and surrogates pass. Code points above
 * U+10FFFF make llama.cpp throw later on; we treat their lead byte as invalid. */
int64_t rq_utf8_decode_llama(const uint8_t *s, int64_t n, int64_t *i) {
    int64_t p = *i;
    uint8_t c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    int len;
    uint32_t cpt;
    if (!(c & 0x40)) goto invalid;
    if (!(c & 0x20)) {
        len = 2;
        cpt = c & 0x1F;
    } else if (!(c & 0x10)) {
        len = 3;
        cpt = c & 0x0F;
    } else if (!(c & 0x08)) {
        len = 4;
        cpt = c & 0x07;
    } else {
        goto invalid;
    }
    if (p + len - 1 >= n) goto invalid;
    for (int k = 1; k < len; k++) {
        if ((s[p + k] & 0xC0) != 0x80) goto invalid;
        cpt = (cpt << 6) | (s[p + k] & 0x3F);
    }
    if (cpt > 0x10FFFF) goto invalid;
    *i = p + len;
    return cpt;
invalid:
    *i = p + 1;
    return -1;
}

/* ---- vocabulary map ---------------------------------------------------------------- */

int32_t rq_tok_lookup(const rq_tokenizer *t, const char *s, int64_t n) {
    uint64_t h = rq_text_hash(s, n);
    for (int64_t k = (int64_t)(h & (uint64_t)t->map_mask);; k = (k + 1) & t->map_mask) {
        int32_t id = t->map[k];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text + t->text_off[id], s, (size_t)n) == 0) return id;
    }
}

static int32_t vocab_find_cstr(const rq_tokenizer *t, const char *s) {
    return rq_tok_lookup(t, s, (int64_t)strlen(s));
}

/* ---- special-token trie ------------------------------------------------------------ */

static int32_t trie_child(const rq_tokenizer *t, int32_t node, uint8_t b) {
    uint64_t key = (((uint64_t)node << 8) | b) + 1;
    for (int64_t k = (int64_t)(rq_u64_hash(key) & (uint64_t)t->edge_mask);; k = (k + 1) & t->edge_mask) {
        if (t->edge_key[k] == key) return t->edge_child[k];
        if (t->edge_key[k] == 0) return -1;
    }
}

static void trie_add_edge(rq_tokenizer *t, int32_t node, uint8_t b, int32_t child) {
    uint64_t key = (((uint64_t)node << 8) | b) + 1;
    int64_t k = (int64_t)(rq_u64_hash(key) & (uint64_t)t->edge_mask);
    while (t->edge_key[k] != 0) k = (k + 1) & t->edge_mask;
    t->edge_key[k] = key;
    t->edge_child[k] = child;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static rq_status build_specials(rq_tokenizer *t) {
    int32_t n = 0;
    int64_t total_len = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & (RQ_ATTR_CONTROL | RQ_ATTR_USER_DEFINED | RQ_ATTR_UNKNOWN)) {
            n++;
            total_len += t->text_len[i];
        }
    t->n_special = n;
    t->special = (int32_t *)rq_alloc((int64_t)(n > 0 ? n : 1) * (int64_t)sizeof(int32_t));
    if (!t->special) return RQ_ENOMEM;
    /* longer first; llama.cpp sorts by length only (std::sort, ties in unspecified
     * order), ties are broken here by id: they matter only when two special tokens of
     * equal length overlap in the text */
    uint64_t *keys = (uint64_t *)rq_alloc((int64_t)(n > 0 ? n : 1) * (int64_t)sizeof(uint64_t));
    if (!keys) return RQ_ENOMEM;
    n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & (RQ_ATTR_CONTROL | RQ_ATTR_USER_DEFINED | RQ_ATTR_UNKNOWN)) {
            keys[n++] = ((uint64_t)(uint32_t)(INT32_MAX - t->text_len[i]) << 32) | (uint32_t)i;
            if (!(t->attr[i] & (RQ_ATTR_CONTROL | RQ_ATTR_UNKNOWN))) t->has_plain_special = true;
        }
    qsort(keys, (size_t)n, sizeof(uint64_t), cmp_u64);
    for (int32_t k = 0; k < n; k++) t->special[k] = (int32_t)(keys[k] & 0xFFFFFFFFu);
    rq_free(keys);

    int64_t max_nodes = total_len + 1;
    if (max_nodes > INT32_MAX) return rq_errorf(RQ_EFORMAT, "special tokens too long");
    int64_t cap = 16;
    while (cap < 2 * max_nodes) cap *= 2;
    t->edge_mask = cap - 1;
    t->node_special = (int32_t *)rq_alloc(max_nodes * (int64_t)sizeof(int32_t));
    t->edge_key = (uint64_t *)rq_calloc(cap * (int64_t)sizeof(uint64_t));
    t->edge_child = (int32_t *)rq_alloc(cap * (int64_t)sizeof(int32_t));
    if (!t->node_special || !t->edge_key || !t->edge_child) return RQ_ENOMEM;
    t->n_nodes = 1;
    t->node_special[0] = -1;
    for (int32_t k = 0; k < n; k++) {
        int32_t id = t->special[k];
        const uint8_t *s = (const uint8_t *)t->text + t->text_off[id];
        int32_t node = 0;
        for (int32_t j = 0; j < t->text_len[id]; j++) {
            int32_t c = trie_child(t, node, s[j]);
            if (c < 0) {
                c = t->n_nodes++;
                t->node_special[c] = -1;
                trie_add_edge(t, node, s[j], c);
            }
            node = c;
        }
        /* strings are unique (checked at load) and non-empty, so each ends at its own node */
        RQ_ASSERT(node != 0 && t->node_special[node] == -1);
        t->node_special[node] = k;
    }
    return RQ_OK;
}

/* ---- end-of-generation and llama.cpp's attribute fix-ups ---------------------------- */

static bool in_list(const rq_tokenizer *t, int32_t id, const char *const *list) {
    const char *s = t->text + t->text_off[id];
    for (; *list; list++)
        if ((int64_t)strlen(*list) == t->text_len[id] && memcmp(*list, s, (size_t)t->text_len[id]) == 0) return true;
    return false;
}

/* Lowest id whose text is in `list`, or -1 (llama.cpp takes the first in hash order). */
static int32_t first_in_list(const rq_tokenizer *t, const char *const *list) {
    int32_t best = -1;
    for (; *list; list++) {
        int32_t id = vocab_find_cstr(t, *list);
        if (id >= 0 && (best < 0 || id < best)) best = id;
    }
    return best;
}

static const char *const k_eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                          "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                          "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "<end_of_utterance>", NULL};
static const char *const k_eom_names[] = {"<|eom_id|>", NULL};
static const char *const k_fim_pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                              "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
                                              "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const k_fim_suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                              "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
                                              "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const k_fim_mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                              "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
                                              "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const k_fim_pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const k_fim_rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
static const char *const k_fim_sep_names[] = {"<|file_sep|>", NULL};
static const char *const k_eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                          "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                          "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                          "<turn|>", "<|tool_response>",
                                          "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "[e~[", NULL};
static const char *const k_always_user_defined[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

static void force_control(rq_tokenizer *t, int32_t id) {
    if (id >= 0) t->attr[id] |= RQ_ATTR_CONTROL;
}

static void set_up_eog(rq_tokenizer *t) {
    /* detected by text when the metadata does not name them (llama.cpp's heuristics) */
    if (t->eot < 0) {
        t->eot = first_in_list(t, k_eot_names);
        force_control(t, t->eot);
    }
    if (t->eom < 0) {
        t->eom = first_in_list(t, k_eom_names);
        force_control(t, t->eom);
    }
    force_control(t, first_in_list(t, k_fim_pre_names));
    force_control(t, first_in_list(t, k_fim_suf_names));
    force_control(t, first_in_list(t, k_fim_mid_names));
    int32_t fim_pad = first_in_list(t, k_fim_pad_names);
    int32_t fim_rep = first_in_list(t, k_fim_rep_names);
    int32_t fim_sep = first_in_list(t, k_fim_sep_names);
    force_control(t, fim_pad);
    force_control(t, fim_rep);
    force_control(t, fim_sep);
    /* control tokens with "unused" in their text */
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->attr[i] & RQ_ATTR_CONTROL) && strstr(t->text + t->text_off[i], "unused")) t->attr[i] |= RQ_ATTR_UNUSED;

    if (fim_pad >= 0) t->eog[fim_pad] = 1;
    if (fim_rep >= 0) t->eog[fim_rep] = 1;
    if (fim_sep >= 0) t->eog[fim_sep] = 1;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (in_list(t, i, k_eog_names)) {
            t->eog[i] = 1;
            t->attr[i] |= RQ_ATTR_CONTROL;
        }
    for (const char *const *p = k_always_user_defined; *p; p++) {
        int32_t id = vocab_find_cstr(t, *p);
        if (id >= 0) t->attr[id] = RQ_ATTR_USER_DEFINED;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;

    /* o200k_harmony / solar-open: "<|end|>" is not an end marker there */
    int32_t end_id = vocab_find_cstr(t, "<|end|>");
    int32_t ret = vocab_find_cstr(t, "<|return|>"), call = vocab_find_cstr(t, "<|call|>");
    int32_t calls = vocab_find_cstr(t, "<|calls|>"), flush = vocab_find_cstr(t, "<|flush|>");
    bool has_call = (call >= 0 && t->eog[call]) || (calls >= 0 && t->eog[calls]);
    bool has_ret = ret >= 0 && t->eog[ret], has_flush = flush >= 0 && t->eog[flush];
    if (end_id >= 0 && t->eog[end_id] && ((has_ret && has_call) || (has_call && has_flush))) {
        t->eog[end_id] = 0;
        t->attr[end_id] = RQ_ATTR_USER_DEFINED;
    }
    /* gemma4 / plamo: "</s>" is a normal token there */
    int32_t s_id = vocab_find_cstr(t, "</s>");
    int32_t tr = vocab_find_cstr(t, "<|tool_response>"), pe = vocab_find_cstr(t, "<|plamo:eos|>");
    if (s_id >= 0 && t->eog[s_id] && ((tr >= 0 && t->eog[tr]) || (pe >= 0 && t->eog[pe]))) {
        t->eog[s_id] = 0;
        t->attr[s_id] = RQ_ATTR_NORMAL;
    }
}

/* ---- token pieces ------------------------------------------------------------------ */

/* Bytes of token i (llama.cpp's token_to_piece with special=true) written to dst (room
 * for the bound computed in build_pieces); returns the length. */
static int64_t make_piece(const rq_tokenizer *t, int32_t i, char *dst) {
    const char *s = t->text + t->text_off[i];
    int64_t n = t->text_len[i];
    uint8_t a = t->attr[i];
    if (a & (RQ_ATTR_UNKNOWN | RQ_ATTR_CONTROL | RQ_ATTR_USER_DEFINED)) {
        memcpy(dst, s, (size_t)n);
        return n;
    }
    if (a & RQ_ATTR_NORMAL) {
        int64_t o = 0;
        if (t->kind == RQ_TOKENIZER_SPM) { /* U+2581 -> ' ' */
            for (int64_t k = 0; k < n;) {
                if (k + 2 < n && (uint8_t)s[k] == 0xE2 && (uint8_t)s[k + 1] == 0x96 && (uint8_t)s[k + 2] == 0x81) {
                    dst[o++] = ' ';
                    k += 3;
                } else {
                    dst[o++] = s[k++];
                }
            }
            return o;
        }
        /* byte-level BPE: each code point is the image of one byte */
        for (int64_t k = 0; k < n;) {
            int64_t c = rq_utf8_decode_llama((const uint8_t *)s, n, &k);
            int b = rq_bpe_cpt_to_byte(c < 0 ? 0xFFFD : (uint32_t)c);
            if (b >= 0) {
                dst[o++] = (char)b;
            } else {
                /* llama.cpp writes "[UNK_BYTE_0x<utf8 hex><token text>]" */
                char u[4];
                int ul = rq_utf8_encode(c < 0 ? 0xFFFD : (uint32_t)c, u);
                memcpy(dst + o, "[UNK_BYTE_0x", 12);
                o += 12;
                for (int q = 0; q < ul; q++) o += sprintf(dst + o, "%02x", (uint8_t)u[q]);
                memcpy(dst + o, s, (size_t)n);
                o += n;
                dst[o++] = ']';
            }
        }
        return o;
    }
    if (a & RQ_ATTR_BYTE) {
        /* llama.cpp: strtol(text.substr(3, 2), 16) */
        int v = 0;
        for (int64_t k = 3; k < 5 && k < n; k++) {
            char c = s[k];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (d < 0) break;
            v = v * 16 + d;
        }
        dst[0] = (char)v;
        return 1;
    }
    return 0;
}

static rq_status build_pieces(rq_tokenizer *t) {
    /* scratch for one piece: a NORMAL BPE piece with code points that are no byte's
     * image grows to (text_len + 21) bytes per code point (llama.cpp's [UNK_BYTE_...]) */
    int64_t max_one = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int64_t bound = (int64_t)t->text_len[i] * ((t->attr[i] & RQ_ATTR_NORMAL) && t->kind == RQ_TOKENIZER_BPE ? t->text_len[i] + 24 : 1) + 1;
        if (bound > max_one) max_one = bound;
    }
    char *tmp = (char *)rq_alloc(max_one + 64);
    if (!tmp) return RQ_ENOMEM;
    t->piece_off = (int64_t *)rq_alloc((int64_t)t->n_vocab * (int64_t)sizeof(int64_t));
    t->piece_len = (int32_t *)rq_alloc((int64_t)t->n_vocab * (int64_t)sizeof(int32_t));
    if (!t->piece_off || !t->piece_len) {
        rq_free(tmp);
        return RQ_ENOMEM;
    }
    /* first pass for the exact size */
    int64_t used = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) used += make_piece(t, i, tmp);
    t->piece = (char *)rq_alloc(used + 1);
    if (!t->piece) {
        rq_free(tmp);
        return RQ_ENOMEM;
    }
    int64_t o = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int64_t l = make_piece(t, i, tmp);
        memcpy(t->piece + o, tmp, (size_t)l);
        t->piece_off[i] = o;
        t->piece_len[i] = (int32_t)l;
        o += l;
    }
    t->piece[o] = 0;
    rq_free(tmp);
    return RQ_OK;
}

/* ---- create / free ----------------------------------------------------------------- */

void rq_tokenizer_spec_init(rq_tokenizer_spec *spec) {
    memset(spec, 0, sizeof(*spec));
    spec->bos_id = spec->eos_id = spec->eot_id = spec->eom_id = spec->unk_id = -1;
    spec->add_bos = spec->add_space_prefix = -1;
}

void rq_tokenizer_free(rq_tokenizer *t) {
    if (!t) return;
    rq_bpe_free(t);
    rq_free(t->text);
    rq_free(t->text_off);
    rq_free(t->text_len);
    rq_free(t->scores);
    rq_free(t->attr);
    rq_free(t->eog);
    rq_free(t->map);
    rq_free(t->piece);
    rq_free(t->piece_off);
    rq_free(t->piece_len);
    rq_free(t->special);
    rq_free(t->node_special);
    rq_free(t->edge_key);
    rq_free(t->edge_child);
    rq_free(t);
}

static uint8_t attr_of_type(int32_t type) {
    switch (type) {
    case RQ_TOKEN_NORMAL: return RQ_ATTR_NORMAL;
    case RQ_TOKEN_UNKNOWN: return RQ_ATTR_UNKNOWN;
    case RQ_TOKEN_CONTROL: return RQ_ATTR_CONTROL;
    case RQ_TOKEN_USER_DEFINED: return RQ_ATTR_USER_DEFINED;
    case RQ_TOKEN_UNUSED: return RQ_ATTR_UNUSED;
    case RQ_TOKEN_BYTE: return RQ_ATTR_BYTE;
    default: return 0; /* UNDEFINED */
    }
}

static rq_status create_vocab(rq_tokenizer *t, const rq_tokenizer_spec *spec) {
    int32_t n = t->n_vocab;
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!spec->tokens[i]) return rq_errorf(RQ_EINVAL, "token %d: NULL string", i);
        int64_t l = spec->token_lens ? spec->token_lens[i] : (int64_t)strlen(spec->tokens[i]);
        if (l < 0 || l > INT32_MAX / 8) return rq_errorf(RQ_EFORMAT, "token %d: bad length %lld", i, (long long)l);
        total += (l == 0 ? 24 : l) + 1;
    }
    t->text = (char *)rq_alloc(total);
    t->text_off = (int64_t *)rq_alloc((int64_t)n * (int64_t)sizeof(int64_t));
    t->text_len = (int32_t *)rq_alloc((int64_t)n * (int64_t)sizeof(int32_t));
    t->scores = (float *)rq_alloc((int64_t)n * (int64_t)sizeof(float));
    t->attr = (uint8_t *)rq_alloc(n);
    t->eog = (uint8_t *)rq_calloc(n);
    int64_t cap = 16;
    while (cap < 2 * (int64_t)n) cap *= 2;
    t->map = (int32_t *)rq_alloc(cap * (int64_t)sizeof(int32_t));
    if (!t->text || !t->text_off || !t->text_len || !t->scores || !t->attr || !t->eog || !t->map) return RQ_ENOMEM;
    t->map_mask = cap - 1;
    memset(t->map, 0xFF, (size_t)cap * sizeof(int32_t));

    int64_t o = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t l = spec->token_lens ? spec->token_lens[i] : (int64_t)strlen(spec->tokens[i]);
        t->text_off[i] = o;
        if (l == 0) { /* llama.cpp renames empty tokens */
            l = sprintf(t->text + o, "[EMPTY_%d]", i);
        } else {
            memcpy(t->text + o, spec->tokens[i], (size_t)l);
        }
        t->text[o + l] = 0;
        t->text_len[i] = (int32_t)l;
        o += l + 1;
        t->scores[i] = spec->scores ? spec->scores[i] : 0.0f;
        t->attr[i] = spec->token_types ? attr_of_type(spec->token_types[i]) : RQ_ATTR_NORMAL;

        const char *s = t->text + t->text_off[i];
        uint64_t h = rq_text_hash(s, l);
        int64_t k = (int64_t)(h & (uint64_t)t->map_mask);
        for (;; k = (k + 1) & t->map_mask) {
            int32_t id = t->map[k];
            if (id < 0) break;
            if (t->text_len[id] == l && memcmp(t->text + t->text_off[id], s, (size_t)l) == 0)
                return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.tokens: tokens %d and %d are the same string \"%.*s\"", id, i,
                                 (int)(l > 64 ? 64 : l), s);
        }
        t->map[k] = i;
    }
    return RQ_OK;
}

rq_status rq_tokenizer_create(const rq_tokenizer_spec *spec, rq_tokenizer **out) {
    *out = NULL;
    if (spec->kind != RQ_TOKENIZER_BPE && spec->kind != RQ_TOKENIZER_SPM)
        return rq_errorf(RQ_EUNSUPPORTED, "tokenizer kind %d not supported", (int)spec->kind);
    if (spec->n_vocab <= 0 || spec->n_vocab >= INT32_MAX) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.tokens: bad vocabulary size %lld", (long long)spec->n_vocab);
    if (!spec->tokens) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.tokens: missing");
    rq_tokenizer *t = (rq_tokenizer *)rq_calloc(sizeof(rq_tokenizer));
    if (!t) return RQ_ENOMEM;
    t->kind = spec->kind;
    t->n_vocab = (int32_t)spec->n_vocab;
    rq_status s = create_vocab(t, spec);
    if (s != RQ_OK) goto fail;

    /* llama.cpp's defaults per model type, then the metadata where it names a valid id */
    if (t->kind == RQ_TOKENIZER_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        t->bos = 11, t->eos = 11, t->unk = -1;
        t->add_bos = false;
        t->add_space_prefix = false;
    }
    t->eot = t->eom = -1;
    int32_t *ids[] = {&t->bos, &t->eos, &t->eot, &t->eom, &t->unk};
    const int32_t given[] = {spec->bos_id, spec->eos_id, spec->eot_id, spec->eom_id, spec->unk_id};
    for (int k = 0; k < 5; k++) {
        if (*ids[k] >= t->n_vocab) *ids[k] = -1;
        if (given[k] >= 0 && given[k] < t->n_vocab) *ids[k] = given[k];
    }
    if (spec->add_bos >= 0) t->add_bos = spec->add_bos != 0;
    if (spec->add_space_prefix >= 0) t->add_space_prefix = spec->add_space_prefix != 0;

    s = t->kind == RQ_TOKENIZER_BPE ? rq_bpe_init(t, spec) : rq_spm_init(t);
    if (s != RQ_OK) goto fail;
    set_up_eog(t);
    s = build_specials(t);
    if (s != RQ_OK) goto fail;
    s = build_pieces(t);
    if (s != RQ_OK) goto fail;
    *out = t;
    return RQ_OK;
fail:
    rq_tokenizer_free(t);
    return s;
}

/* ---- accessors --------------------------------------------------------------------- */

rq_tokenizer_kind rq_tokenizer_kind_of(const rq_tokenizer *t) { return t->kind; }
int32_t rq_tokenizer_n_vocab(const rq_tokenizer *t) { return t->n_vocab; }
int32_t rq_tokenizer_bos(const rq_tokenizer *t) { return t->bos; }
int32_t rq_tokenizer_eos(const rq_tokenizer *t) { return t->eos; }
bool rq_tokenizer_add_bos_default(const rq_tokenizer *t) { return t->add_bos; }

bool rq_tokenizer_is_eog(const rq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

rq_token_type rq_tokenizer_token_type(const rq_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return RQ_TOKEN_UNDEFINED;
    uint8_t a = t->attr[id];
    if (a & RQ_ATTR_CONTROL) return RQ_TOKEN_CONTROL;
    if (a & RQ_ATTR_USER_DEFINED) return RQ_TOKEN_USER_DEFINED;
    if (a & RQ_ATTR_UNKNOWN) return RQ_TOKEN_UNKNOWN;
    if (a & RQ_ATTR_BYTE) return RQ_TOKEN_BYTE;
    if (a & RQ_ATTR_NORMAL) return RQ_TOKEN_NORMAL;
    if (a & RQ_ATTR_UNUSED) return RQ_TOKEN_UNUSED;
    return RQ_TOKEN_UNDEFINED;
}

int32_t rq_tokenizer_find(const rq_tokenizer *t, const char *text, int64_t len) {
    if (!text || len < 0) return -1;
    return rq_tok_lookup(t, text, len);
}

const char *rq_tokenizer_token_bytes(const rq_tokenizer *t, int32_t id, int64_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->piece_len[id];
    return t->piece + t->piece_off[id];
}

const char *rq_tokenizer_token_text(const rq_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    return t->text + t->text_off[id];
}

/* ---- encode ------------------------------------------------------------------------ */

typedef struct occ {
    int32_t prio; /* index into t->special */
    int64_t pos;
} occ;

static int cmp_occ(const void *a, const void *b) {
    const occ *x = (const occ *)a, *y = (const occ *)b;
    if (x->prio != y->prio) return x->prio < y->prio ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_occ_pos(const void *a, const void *b) {
    const occ *x = (const occ *)a, *y = (const occ *)b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static bool special_usable(const rq_tokenizer *t, int32_t id, bool parse_special) {
    return parse_special || !(t->attr[id] & (RQ_ATTR_CONTROL | RQ_ATTR_UNKNOWN));
}

/* Growable array of occurrences. */
typedef struct occ_vec {
    occ *v;
    int64_t n, cap;
} occ_vec;

static rq_status occ_push(occ_vec *a, int32_t prio, int64_t pos) {
    if (a->n == a->cap) {
        int64_t nc = a->cap ? a->cap * 2 : 64;
        occ *nv = (occ *)rq_alloc(nc * (int64_t)sizeof(occ));
        if (!nv) return RQ_ENOMEM;
        if (a->n) memcpy(nv, a->v, (size_t)a->n * sizeof(occ));
        rq_free(a->v);
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n].prio = prio;
    a->v[a->n].pos = pos;
    a->n++;
    return RQ_OK;
}

/* Resolve the candidates of one segment (no candidate crosses its ends): in priority
 * order, each candidate whose bytes are all unclaimed is kept and claims them. This is
 * what llama.cpp's tokenizer_st_partition computes by searching the remaining text for
 * each special token in turn, leftmost first, never across an earlier match. */
static rq_status resolve_segment(const rq_tokenizer *t, occ_vec *cand, uint8_t *claimed, int64_t seg_start, int64_t seg_end,
                                 occ_vec *kept) {
    qsort(cand->v, (size_t)cand->n, sizeof(occ), cmp_occ);
    int64_t first = kept->n;
    for (int64_t i = 0; i < cand->n; i++) {
        int64_t len = t->text_len[t->special[cand->v[i].prio]];
        bool free_span = true;
        for (int64_t j = 0; j < len; j++)
            if (claimed[cand->v[i].pos + j]) {
                free_span = false;
                break;
            }
        if (!free_span) continue;
        memset(claimed + cand->v[i].pos, 1, (size_t)len);
        RQ_TRY(occ_push(kept, cand->v[i].prio, cand->v[i].pos));
    }
    memset(claimed + seg_start, 0, (size_t)(seg_end - seg_start));
    qsort(kept->v + first, (size_t)(kept->n - first), sizeof(occ), cmp_occ_pos);
    cand->n = 0;
    return RQ_OK;
}

/* The special tokens cut out of s[0..n), sorted by position (*found: rq_free). All
 * candidate occurrences come from one walk of the trie per position; they are resolved
 * segment by segment, a segment ending where no candidate spans the boundary, so memory
 * stays proportional to the longest run of overlapping candidates. */
static rq_status find_specials(const rq_tokenizer *t, const uint8_t *s, int64_t n, bool parse_special, occ **found,
                               int64_t *n_found) {
    *found = NULL;
    *n_found = 0;
    if (n == 0 || (parse_special ? t->n_special == 0 : !t->has_plain_special)) return RQ_OK;
    occ_vec cand = {0}, kept = {0};
    uint8_t *claimed = NULL;
    int64_t seg_start = 0, reach = 0;
    rq_status st = RQ_OK;
    for (int64_t p = 0; p <= n && st == RQ_OK; p++) {
        if (cand.n > 0 && p >= reach) {
            if (!claimed && !(claimed = (uint8_t *)rq_calloc(n))) {
                st = RQ_ENOMEM;
                break;
            }
            st = resolve_segment(t, &cand, claimed, seg_start, reach, &kept);
        }
        if (p == n || st != RQ_OK) break;
        if (cand.n == 0) seg_start = p;
        int32_t node = 0;
        for (int64_t q = p; q < n; q++) {
            node = trie_child(t, node, s[q]);
            if (node < 0) break;
            int32_t k = t->node_special[node];
            if (k >= 0 && special_usable(t, t->special[k], parse_special)) {
                st = occ_push(&cand, k, p);
                if (st != RQ_OK) break;
                if (q + 1 > reach) reach = q + 1;
            }
        }
    }
    rq_free(cand.v);
    rq_free(claimed);
    if (st != RQ_OK) {
        rq_free(kept.v);
        return st;
    }
    *found = kept.v;
    *n_found = kept.n;
    return RQ_OK;
}

static rq_status encode_raw(const rq_tokenizer *t, const char *s, int64_t n, bool prev_special, rq_ivec *out) {
    if (t->kind == RQ_TOKENIZER_BPE) return rq_bpe_encode_fragment(t, s, n, out);
    return rq_spm_encode_fragment(t, s, n, t->add_space_prefix && prev_special, out);
}

rq_status rq_tokenizer_encode(const rq_tokenizer *t, const char *text, int64_t len, bool add_bos, bool parse_special,
                              int32_t **ids, int64_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (len < 0 || (len > 0 && !text)) return rq_errorf(RQ_EINVAL, "tokenize: bad text (len %lld)", (long long)len);
    if (add_bos && t->bos < 0) return rq_errorf(RQ_EINVAL, "tokenize: BOS requested but the model has no BOS token");
    rq_ivec out = {0};
    rq_status s = rq_ivec_reserve(&out, len / 3 + 16);
    if (s != RQ_OK) return s;
    if (add_bos) rq_ivec_push(&out, t->bos);

    occ *sp = NULL;
    int64_t n_sp = 0;
    s = find_specials(t, (const uint8_t *)text, len, parse_special, &sp, &n_sp);
    bool prev_special = true; /* SPM: a space prefix goes before the first fragment */
    int64_t pos = 0;
    for (int64_t i = 0; s == RQ_OK && i <= n_sp; i++) {
        int64_t end = i < n_sp ? sp[i].pos : len;
        if (end > pos) {
            s = encode_raw(t, text + pos, end - pos, prev_special, &out);
            prev_special = false;
            if (s != RQ_OK) break;
        }
        if (i < n_sp) {
            int32_t id = t->special[sp[i].prio];
            s = rq_ivec_push(&out, id);
            prev_special = true;
            pos = end + t->text_len[id];
        }
    }
    rq_free(sp);
    if (s != RQ_OK) {
        rq_free(out.v);
        return s;
    }
    *ids = out.v;
    *n_ids = out.n;
    return RQ_OK;
}

/* ---- decode ------------------------------------------------------------------------ */

rq_status rq_tokenizer_decode(const rq_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special, char **out,
                              int64_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n < 0 || (n > 0 && !ids)) return rq_errorf(RQ_EINVAL, "detokenize: bad token list (n %lld)", (long long)n);
    bool remove_space = t->add_space_prefix;
    int64_t first = 0;
    if (skip_special && t->add_bos && n > 0 && ids[0] == t->bos) { /* as llama.cpp */
        remove_space = false;
        first = 1;
    }
    int64_t total = 0;
    for (int64_t i = first; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return rq_errorf(RQ_EINVAL, "detokenize: token %lld has id %d, vocabulary size %d", (long long)i, ids[i], t->n_vocab);
        total += t->piece_len[ids[i]];
    }
    char *buf = (char *)rq_alloc(total + 1);
    if (!buf) return RQ_ENOMEM;
    int64_t o = 0;
    for (int64_t i = first; i < n; i++) {
        int32_t id = ids[i];
        const char *p = t->piece + t->piece_off[id];
        int64_t l = t->piece_len[id];
        if (skip_special && (t->attr[id] & (RQ_ATTR_CONTROL | RQ_ATTR_UNKNOWN))) l = 0;
        if (remove_space && l > 0 && p[0] == ' ') {
            p++;
            l--;
        }
        remove_space = false;
        memcpy(buf + o, p, (size_t)l);
        o += l;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return RQ_OK;
}

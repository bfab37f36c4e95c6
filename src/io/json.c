/* Strict RFC 8259 JSON parser: recursive descent over the bytes, tree in an arena. */
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    int64_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

#define CHUNK_MIN (INT64_C(64) << 10)

struct rq_json_doc {
    chunk *chunks;
    rq_json *root;
};

/* The C library's allocators, with the testing hook of base/status.h (rq_alloc_inject) */
static void *j_malloc(size_t n) { return rq_alloc_inject() ? NULL : malloc(n); }
static void *j_realloc(void *p, size_t n) { return rq_alloc_inject() ? NULL : realloc(p, n); }
static void *j_calloc(size_t k, size_t n) { return rq_alloc_inject() ? NULL : calloc(k, n); }

static void *arena_alloc(rq_json_doc *d, int64_t n) {
    n = (n + 15) & ~INT64_C(15);
    chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        int64_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        c = j_malloc(sizeof(chunk) + (size_t)cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = d->chunks;
        d->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void rq_json_doc_free(rq_json_doc *doc) {
    if (!doc) return;
    for (chunk *c = doc->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(doc);
}

const rq_json *rq_json_root(const rq_json_doc *doc) { return doc->root; }

/* ---- parser state ---------------------------------------------------------------------- */

typedef struct {
    const unsigned char *s;
    int64_t n, i;
    int64_t line, line_start; /* current line and the offset where it starts */
    int max_depth;
    rq_json_doc *doc;
    /* scratch stacks for the children of open arrays/objects */
    rq_json **items;
    int64_t n_items, cap_items;
    rq_json_member *mem;
    int64_t *mem_off; /* [cap_mem] offset of each member's key (duplicate-key errors) */
    int64_t n_mem, cap_mem;
    bool failed;
    rq_status status;
    rq_json_error *err;
} parser;

static int64_t column_at(const parser *p, int64_t line_start, int64_t off) {
    int64_t col = 1;
    for (int64_t k = line_start; k < off && k < p->n; k++)
        if ((p->s[k] & 0xC0) != 0x80) col++;
    return col;
}

/* Record the first error at byte offset `off` (on the current line). */
static void fail_at(parser *p, int64_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(parser *p, int64_t off, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = true;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int64_t col = column_at(p, p->line_start, off);
    if (p->err) {
        p->err->line = p->line;
        p->err->column = col;
        snprintf(p->err->msg, sizeof p->err->msg, "%s", msg);
    }
    p->status = rq_errorf(RQ_EFORMAT, "line %lld, column %lld: %s", (long long)p->line, (long long)col, msg);
}

static void fail_nomem(parser *p) {
    if (p->failed) return;
    p->failed = true;
    if (p->err) {
        p->err->line = p->err->column = 0;
        snprintf(p->err->msg, sizeof p->err->msg, "out of memory");
    }
    p->status = rq_errorf(RQ_ENOMEM, "JSON: out of memory");
}

/* A printable description of the byte at i, for "unexpected ..." messages. */
static void describe(const parser *p, int64_t i, char *buf, size_t n) {
    if (i >= p->n) snprintf(buf, n, "end of input");
    else if (p->s[i] >= 0x21 && p->s[i] < 0x7F) snprintf(buf, n, "'%c'", p->s[i]);
    else snprintf(buf, n, "byte 0x%02X", p->s[i]);
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\r') p->i++;
        else if (c == '\n') {
            p->i++;
            p->line++;
            p->line_start = p->i;
        } else break;
    }
}

static rq_json *new_node(parser *p, rq_json_type t, int64_t off) {
    rq_json *v = arena_alloc(p->doc, sizeof *v);
    if (!v) {
        fail_nomem(p);
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->type = t;
    v->line = p->line;
    v->offset = off;
    return v;
}

static bool push_item(parser *p, rq_json *v) {
    if (p->n_items == p->cap_items) {
        int64_t cap = p->cap_items ? 2 * p->cap_items : 64;
        rq_json **it = j_realloc(p->items, (size_t)cap * sizeof *it);
        if (!it) return fail_nomem(p), false;
        p->items = it;
        p->cap_items = cap;
    }
    p->items[p->n_items++] = v;
    return true;
}

static bool push_member(parser *p, const char *key, int64_t key_len, int64_t key_off, rq_json *v) {
    if (p->n_mem == p->cap_mem) {
        int64_t cap = p->cap_mem ? 2 * p->cap_mem : 32;
        rq_json_member *m = j_realloc(p->mem, (size_t)cap * sizeof *m);
        if (!m) return fail_nomem(p), false;
        p->mem = m;
        int64_t *o = j_realloc(p->mem_off, (size_t)cap * sizeof *o);
        if (!o) return fail_nomem(p), false;
        p->mem_off = o;
        p->cap_mem = cap;
    }
    p->mem[p->n_mem] = (rq_json_member){.key = key, .key_len = key_len, .value = v};
    p->mem_off[p->n_mem++] = key_off;
    return true;
}

/* ---- strings --------------------------------------------------------------------------- */

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at i, before `end`; -1 if malformed (error reported at the escape's
 * backslash, at esc). */
static int32_t read_hex4(parser *p, int64_t i, int64_t end, int64_t esc) {
    int32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = i + k < end ? hexval(p->s[i + k]) : -1;
        if (h < 0) {
            fail_at(p, esc, "\\u escape needs 4 hex digits");
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

static int put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at i (Unicode Table 3-7), 0 if ill-formed. */
static int utf8_len(const unsigned char *s, int64_t i, int64_t n) {
    unsigned char c = s[i];
    int len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F; /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F; /* <= U+10FFFF */
    else return 0;
    if (n - i < len) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (int k = 2; k < len; k++)
        if ((s[i + k] & 0xC0) != 0x80) return 0;
    return len;
}

/* String starting at the opening quote p->i; decoded into the arena. */
static bool parse_string(parser *p, const char **out, int64_t *out_len) {
    int64_t start = p->i + 1;
    /* pass 1: find the closing quote (a backslash skips the next byte) */
    int64_t e = start;
    while (e < p->n && p->s[e] != '"') e += p->s[e] == '\\' ? 2 : 1;
    if (e >= p->n) {
        fail_at(p, p->i, "unterminated string");
        return false;
    }
    char *o = arena_alloc(p->doc, e - start + 1);
    if (!o) return fail_nomem(p), false;
    int64_t k = 0;
    for (int64_t i = start; i < e;) {
        unsigned char c = p->s[i];
        if (c == '\\') {
            unsigned char x = p->s[i + 1];
            switch (x) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                int32_t u = read_hex4(p, i + 2, e, i);
                if (u < 0) return false;
                uint32_t cp = (uint32_t)u;
                if (u >= 0xDC00 && u <= 0xDFFF) {
                    fail_at(p, i, "lone low surrogate \\u%04X", (unsigned)u);
                    return false;
                }
                if (u >= 0xD800 && u <= 0xDBFF) {
                    if (e - i < 8 || p->s[i + 6] != '\\' || p->s[i + 7] != 'u') {
                        fail_at(p, i, "high surrogate \\u%04X not followed by a \\u low surrogate", (unsigned)u);
                        return false;
                    }
                    int32_t lo = read_hex4(p, i + 8, e, i + 6);
                    if (lo < 0) return false;
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        fail_at(p, i + 6, "\\u%04X after high surrogate \\u%04X is not a low surrogate", (unsigned)lo,
                                (unsigned)u);
                        return false;
                    }
                    cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    i += 6;
                }
                k += put_utf8(o + k, cp);
                i += 6;
                continue;
            }
            default: {
                char d[32];
                describe(p, i + 1, d, sizeof d);
                fail_at(p, i, "invalid escape \\ followed by %s", d);
                return false;
            }
            }
            i += 2;
        } else if (c < 0x20) {
            fail_at(p, i, "control character 0x%02X in string must be escaped", c);
            return false;
        } else if (c < 0x80) {
            o[k++] = (char)c;
            i++;
        } else {
            int len = utf8_len(p->s, i, e);
            if (!len) {
                fail_at(p, i, "invalid UTF-8 in string (byte 0x%02X)", c);
                return false;
            }
            memcpy(o + k, p->s + i, (size_t)len);
            k += len;
            i += len;
        }
    }
    o[k] = 0;
    *out = o;
    *out_len = k;
    p->i = e + 1;
    return true;
}

/* ---- numbers --------------------------------------------------------------------------- */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static rq_json *parse_number(parser *p) {
    int64_t st = p->i, i = p->i;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n || !is_digit(p->s[i])) {
        fail_at(p, i, "a number needs a digit after '-'");
        return NULL;
    }
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && is_digit(p->s[i])) {
            fail_at(p, st, "leading zeros are not allowed in numbers");
            return NULL;
        }
    } else {
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || !is_digit(p->s[i])) {
            fail_at(p, i, "a digit must follow the decimal point");
            return NULL;
        }
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || !is_digit(p->s[i])) {
            fail_at(p, i, "a digit must follow the exponent marker");
            return NULL;
        }
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    int64_t len = i - st;
    char small[64], *buf = small;
    if (len >= (int64_t)sizeof small && !(buf = j_malloc((size_t)len + 1))) {
        fail_nomem(p);
        return NULL;
    }
    memcpy(buf, p->s + st, (size_t)len);
    buf[len] = 0;
    errno = 0;
    double v = strtod(buf, NULL);
    bool range = errno == ERANGE && isinf(v);
    if (buf != small) free(buf);
    if (range) {
        fail_at(p, st, "number out of the range of a double");
        return NULL;
    }
    rq_json *n = new_node(p, RQ_JSON_NUMBER, st);
    if (!n) return NULL;
    n->number = v;
    p->i = i;
    return n;
}

/* ---- values ---------------------------------------------------------------------------- */

static rq_json *parse_value(parser *p, int depth);

static int cmp_members(const rq_json_member *a, const rq_json_member *b) {
    int64_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, (size_t)m);
    if (c) return c;
    return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

/* Sort member indices by key: a stable merge sort (qsort is neither stable nor given
 * a context pointer). */
static void sort_members(const rq_json_member *m, int64_t *idx, int64_t *tmp, int64_t n) {
    if (n < 2) return;
    int64_t h = n / 2;
    sort_members(m, idx, tmp, h);
    sort_members(m, idx + h, tmp, n - h);
    int64_t a = 0, b = h, k = 0;
    while (a < h && b < n) tmp[k++] = cmp_members(&m[idx[b]], &m[idx[a]]) < 0 ? idx[b++] : idx[a++];
    while (a < h) tmp[k++] = idx[a++];
    while (b < n) tmp[k++] = idx[b++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

static rq_json *parse_array(parser *p, int depth) {
    rq_json *v = new_node(p, RQ_JSON_ARRAY, p->i);
    if (!v) return NULL;
    p->i++; /* [ */
    int64_t base = p->n_items;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return v;
    }
    for (;;) {
        rq_json *x = parse_value(p, depth);
        if (!x || !push_item(p, x)) return NULL;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ']') {
                fail_at(p, p->i, "trailing comma in array");
                return NULL;
            }
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            break;
        }
        char d[32];
        describe(p, p->i, d, sizeof d);
        fail_at(p, p->i, "expected ',' or ']' in array, found %s", d);
        return NULL;
    }
    v->len = p->n_items - base;
    v->items = arena_alloc(p->doc, v->len * (int64_t)sizeof(rq_json *));
    if (!v->items) return fail_nomem(p), NULL;
    memcpy(v->items, p->items + base, (size_t)v->len * sizeof(rq_json *));
    p->n_items = base;
    return v;
}

static rq_json *parse_object(parser *p, int depth) {
    rq_json *v = new_node(p, RQ_JSON_OBJECT, p->i);
    if (!v) return NULL;
    p->i++; /* { */
    int64_t base = p->n_mem;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return v;
    }
    for (;;) {
        if (p->i >= p->n || p->s[p->i] != '"') {
            char d[32];
            describe(p, p->i, d, sizeof d);
            fail_at(p, p->i, "expected a string key in object, found %s", d);
            return NULL;
        }
        int64_t key_off = p->i;
        const char *key;
        int64_t key_len;
        if (!parse_string(p, &key, &key_len)) return NULL;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
            char d[32];
            describe(p, p->i, d, sizeof d);
            fail_at(p, p->i, "expected ':' after object key, found %s", d);
            return NULL;
        }
        p->i++;
        rq_json *x = parse_value(p, depth);
        if (!x || !push_member(p, key, key_len, key_off, x)) return NULL;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == '}') {
                fail_at(p, p->i, "trailing comma in object");
                return NULL;
            }
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        char d[32];
        describe(p, p->i, d, sizeof d);
        fail_at(p, p->i, "expected ',' or '}' in object, found %s", d);
        return NULL;
    }
    int64_t n = p->n_mem - base;
    v->len = n;
    v->members = arena_alloc(p->doc, n * (int64_t)sizeof(rq_json_member));
    v->sorted = arena_alloc(p->doc, n * (int64_t)sizeof(int64_t));
    int64_t *tmp = j_malloc((size_t)n * sizeof(int64_t));
    if (!v->members || !v->sorted || !tmp) {
        free(tmp);
        return fail_nomem(p), NULL;
    }
    memcpy(v->members, p->mem + base, (size_t)n * sizeof(rq_json_member));
    for (int64_t k = 0; k < n; k++) v->sorted[k] = k;
    sort_members(v->members, v->sorted, tmp, n);
    free(tmp);
    for (int64_t k = 1; k < n; k++) {
        const rq_json_member *a = &v->members[v->sorted[k - 1]], *b = &v->members[v->sorted[k]];
        if (cmp_members(a, b) == 0) {
            /* report at the later of the two (sorting is stable: sorted[k] is later) */
            int64_t off = p->mem_off[base + v->sorted[k]];
            /* the key may be on an earlier line than the current one: find its line */
            int64_t line = 1, ls = 0;
            for (int64_t q = 0; q < off; q++)
                if (p->s[q] == '\n') line++, ls = q + 1;
            p->line = line;
            p->line_start = ls;
            fail_at(p, off, "duplicate key \"%.60s\" in object", b->key);
            return NULL;
        }
    }
    p->n_mem = base;
    return v;
}

static bool match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    return p->n - p->i >= (int64_t)n && !memcmp(p->s + p->i, w, n);
}

static rq_json *parse_value(parser *p, int depth) {
    skip_ws(p);
    if (p->i >= p->n) {
        fail_at(p, p->i, "expected a value, found end of input");
        return NULL;
    }
    unsigned char c = p->s[p->i];
    switch (c) {
    case '{':
    case '[':
        if (depth + 1 > p->max_depth) {
            fail_at(p, p->i, "nesting deeper than %d", p->max_depth);
            return NULL;
        }
        return c == '{' ? parse_object(p, depth + 1) : parse_array(p, depth + 1);
    case '"': {
        rq_json *v = new_node(p, RQ_JSON_STRING, p->i);
        if (!v || !parse_string(p, &v->str, &v->len)) return NULL;
        return v;
    }
    case 't':
    case 'f':
    case 'n': {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        if (!match_word(p, w)) break;
        rq_json *v = new_node(p, c == 't' ? RQ_JSON_TRUE : c == 'f' ? RQ_JSON_FALSE : RQ_JSON_NULL, p->i);
        p->i += (int64_t)strlen(w);
        return v;
    }
    default:
        if (c == '-' || is_digit(c)) return parse_number(p);
        break;
    }
    char d[32];
    describe(p, p->i, d, sizeof d);
    fail_at(p, p->i, "expected a value, found %s", d);
    return NULL;
}

rq_status rq_json_parse(const char *text, int64_t len, const rq_json_limits *limits, rq_json_doc **out,
                        rq_json_error *err) {
    *out = NULL;
    if (err) memset(err, 0, sizeof *err);
    rq_json_limits lim = {RQ_JSON_MAX_BYTES_DEFAULT, RQ_JSON_MAX_DEPTH_DEFAULT};
    if (limits) lim = *limits;
    parser p = {.s = (const unsigned char *)text, .n = len, .line = 1, .max_depth = lim.max_depth, .err = err};
    if (len < 0 || (len > 0 && !text)) return rq_errorf(RQ_EINVAL, "JSON: bad input buffer");
    if (lim.max_depth < 1 || lim.max_depth > RQ_JSON_MAX_DEPTH_LIMIT)
        return rq_errorf(RQ_EINVAL, "JSON: max_depth %d out of range [1, %d]", lim.max_depth, RQ_JSON_MAX_DEPTH_LIMIT);
    if (len > lim.max_bytes) {
        if (err) snprintf(err->msg, sizeof err->msg, "input of %lld bytes exceeds the limit of %lld", (long long)len,
                          (long long)lim.max_bytes);
        return rq_errorf(RQ_EFORMAT, "JSON: input of %lld bytes exceeds the limit of %lld", (long long)len,
                         (long long)lim.max_bytes);
    }
    p.doc = j_calloc(1, sizeof *p.doc);
    if (!p.doc) return rq_errorf(RQ_ENOMEM, "JSON: out of memory");
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) fail_at(&p, 0, "byte order mark not allowed");
    rq_json *root = p.failed ? NULL : parse_value(&p, 0);
    if (root) {
        skip_ws(&p);
        if (p.i < p.n) {
            char d[32];
            describe(&p, p.i, d, sizeof d);
            fail_at(&p, p.i, "unexpected %s after the value", d);
        }
    }
    free(p.items);
    free(p.mem);
    free(p.mem_off);
    if (p.failed) {
        rq_json_doc_free(p.doc);
        return p.status;
    }
    p.doc->root = root;
    *out = p.doc;
    return RQ_OK;
}

const rq_json *rq_json_get_n(const rq_json *v, const char *key, int64_t key_len) {
    if (!v || v->type != RQ_JSON_OBJECT) return NULL;
    rq_json_member probe = {.key = key, .key_len = key_len};
    int64_t lo = 0, hi = v->len;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = cmp_members(&v->members[v->sorted[mid]], &probe);
        if (c == 0) return v->members[v->sorted[mid]].value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const rq_json *rq_json_get(const rq_json *v, const char *key) { return rq_json_get_n(v, key, (int64_t)strlen(key)); }

const char *rq_json_type_name(rq_json_type t) {
    switch (t) {
    case RQ_JSON_NULL: return "null";
    case RQ_JSON_FALSE:
    case RQ_JSON_TRUE: return "boolean";
    case RQ_JSON_NUMBER: return "number";
    case RQ_JSON_STRING: return "string";
    case RQ_JSON_ARRAY: return "array";
    case RQ_JSON_OBJECT: return "object";
    }
    return "?";
}

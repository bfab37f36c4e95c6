/* JSON parser: hand-written valid and invalid documents (exact decoded values, exact error
 * positions), the limits, and a randomized round trip: random trees serialized by an
 * independent writer in this file (random whitespace, random choice between raw UTF-8
 * and \u escapes incl. surrogate pairs) must parse back to the same tree. */
#include "testing.h"

#include "base/rng.h"
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rq_json_doc *parse_ok(const char *s) {
    rq_json_doc *d = NULL;
    rq_status st = rq_json_parse(s, (int64_t)strlen(s), NULL, &d, NULL);
    RQ_CHECK_MSG(st == RQ_OK, "parse of [%s] failed: %s", s, rq_last_error());
    return st == RQ_OK ? d : NULL;
}

/* Expect an error at (line, col) whose message contains `what`. */
static void parse_bad(const char *s, int64_t len, int64_t line, int64_t col, const char *what) {
    rq_json_doc *d = NULL;
    rq_json_error e;
    rq_status st = rq_json_parse(s, len, NULL, &d, &e);
    RQ_CHECK_MSG(st == RQ_EFORMAT, "[%.*s] parsed (status %d), expected an error", (int)len, s, (int)st);
    RQ_CHECK(d == NULL);
    if (st != RQ_EFORMAT) {
        rq_json_doc_free(d);
        return;
    }
    RQ_CHECK_MSG(e.line == line && e.column == col, "[%.*s]: error at %lld:%lld, expected %lld:%lld (%s)", (int)len, s,
                 (long long)e.line, (long long)e.column, (long long)line, (long long)col, e.msg);
    RQ_CHECK_MSG(strstr(e.msg, what) != NULL, "[%.*s]: message '%s' lacks '%s'", (int)len, s, e.msg, what);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "line %lld, column %lld: ", (long long)line, (long long)col);
    RQ_CHECK_MSG(strncmp(rq_last_error(), prefix, strlen(prefix)) == 0, "status message '%s'", rq_last_error());
}
#define BAD(s, line, col, what) parse_bad(s, (int64_t)sizeof(s) - 1, line, col, what)

static void test_valid(void) {
    rq_json_doc *d = parse_ok(" \t\r\n{\"a\": [1, -0.5, 2e3, 0, -0, 1E-2, 12345678901234567890, 1e-400],"
                              " \"b\" : {\"c\": true, \"d\": false, \"e\": null}, \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\","
                              " \"\": \"empty key\"}\n");
    if (d) {
        const rq_json *r = rq_json_root(d);
        RQ_CHECK(r->type == RQ_JSON_OBJECT && r->len == 4);
        RQ_CHECK(r->line == 2);
        /* document order kept */
        RQ_CHECK(!strcmp(r->members[0].key, "a") && !strcmp(r->members[1].key, "b") &&
                 !strcmp(r->members[2].key, "s") && r->members[3].key_len == 0);
        const rq_json *a = rq_json_get(r, "a");
        RQ_CHECK(a && a->type == RQ_JSON_ARRAY && a->len == 8);
        if (a && a->len == 8) {
            double want[8] = {1, -0.5, 2000, 0, -0.0, 0.01, 12345678901234567890.0, 0};
            for (int i = 0; i < 8; i++) {
                RQ_CHECK(a->items[i]->type == RQ_JSON_NUMBER);
                RQ_CHECK(a->items[i]->number == want[i]);
            }
            RQ_CHECK(signbit(a->items[4]->number));
        }
        const rq_json *b = rq_json_get(r, "b");
        RQ_CHECK(b && rq_json_get(b, "c")->type == RQ_JSON_TRUE && rq_json_get(b, "d")->type == RQ_JSON_FALSE &&
                 rq_json_get(b, "e")->type == RQ_JSON_NULL);
        RQ_CHECK(rq_json_get(b, "f") == NULL && rq_json_get(a, "c") == NULL);
        const rq_json *s = rq_json_get(r, "s");
        RQ_CHECK(s && s->len == 9 && !memcmp(s->str, "x\"\\/\b\f\n\r\t", 9) && s->str[9] == 0);
        const rq_json *e = rq_json_get(r, "");
        RQ_CHECK(e && e->type == RQ_JSON_STRING && !strcmp(e->str, "empty key"));
        rq_json_doc_free(d);
    }
    /* scalars at the top level */
    const char *scalars[] = {"0", " 7 ", "\"\"", "true", "null", "-1.25e+2"};
    rq_json_type types[] = {RQ_JSON_NUMBER, RQ_JSON_NUMBER, RQ_JSON_STRING, RQ_JSON_TRUE, RQ_JSON_NULL, RQ_JSON_NUMBER};
    for (int i = 0; i < 6; i++) {
        d = parse_ok(scalars[i]);
        if (d) RQ_CHECK(rq_json_root(d)->type == types[i]);
        rq_json_doc_free(d);
    }
    d = parse_ok("-1.25e+2");
    if (d) RQ_CHECK(rq_json_root(d)->number == -125.0);
    rq_json_doc_free(d);
    /* unicode: raw UTF-8 and escapes, surrogate pair, NUL inside a string and a key */
    d = parse_ok("{\"k\\u0000y\": \"\\u00e9\xC3\xA9\\u20AC\xE2\x82\xAC\\uD83D\\uDE00\xF0\x9F\x98\x80\\u0000z\"}");
    if (d) {
        const rq_json *r = rq_json_root(d);
        const rq_json *v = rq_json_get_n(r, "k\0y", 3);
        RQ_CHECK(v && rq_json_get(r, "k") == NULL);
        const char want[] = "\xC3\xA9\xC3\xA9\xE2\x82\xAC\xE2\x82\xAC\xF0\x9F\x98\x80\xF0\x9F\x98\x80\0z";
        RQ_CHECK(v && v->len == (int64_t)sizeof want - 1 && !memcmp(v->str, want, sizeof want));
        rq_json_doc_free(d);
    }
    /* empty containers, nested */
    d = parse_ok("[[], {}, [[{}]]]");
    if (d) {
        const rq_json *r = rq_json_root(d);
        RQ_CHECK(r->len == 3 && r->items[0]->len == 0 && r->items[1]->type == RQ_JSON_OBJECT &&
                 r->items[2]->items[0]->items[0]->type == RQ_JSON_OBJECT);
        rq_json_doc_free(d);
    }
    /* value positions */
    d = parse_ok("{\n  \"x\": [\n    5]}");
    if (d) {
        const rq_json *x = rq_json_get(rq_json_root(d), "x");
        RQ_CHECK(x->line == 2 && x->offset == 9);
        RQ_CHECK(x->items[0]->line == 3 && x->items[0]->offset == 15);
        rq_json_doc_free(d);
    }
}

static void test_invalid(void) {
    BAD("", 1, 1, "end of input");
    BAD("   ", 1, 4, "end of input");
    BAD("{", 1, 2, "string key");
    BAD("[1,]", 1, 4, "trailing comma");
    BAD("{\"a\":1,}", 1, 8, "trailing comma");
    BAD("[1 2]", 1, 4, "expected ',' or ']'");
    BAD("{\"a\" 1}", 1, 6, "expected ':'");
    BAD("{\"a\":1 \"b\":2}", 1, 8, "expected ',' or '}'");
    BAD("{a:1}", 1, 2, "string key");
    BAD("[01]", 1, 2, "leading zeros");
    BAD("[-]", 1, 3, "digit after '-'");
    BAD("[1.]", 1, 4, "decimal point");
    BAD("[.5]", 1, 2, "expected a value");
    BAD("[1e]", 1, 4, "exponent");
    BAD("[+1]", 1, 2, "expected a value");
    BAD("[1e400]", 1, 2, "range of a double");
    BAD("[NaN]", 1, 2, "expected a value");
    BAD("[Infinity]", 1, 2, "expected a value");
    BAD("[tru]", 1, 2, "expected a value");
    BAD("nul", 1, 1, "expected a value");
    BAD("['a']", 1, 2, "expected a value");
    BAD("[1] x", 1, 5, "after the value");
    BAD("[1]]", 1, 4, "after the value");
    BAD("// c\n1", 1, 1, "expected a value");
    BAD("\"abc", 1, 1, "unterminated string");
    BAD("\"a\\", 1, 1, "unterminated string");
    BAD("\"a\\x\"", 1, 3, "invalid escape");
    BAD("\"\\u12G4\"", 1, 2, "4 hex digits");
    BAD("\"\\u12\"", 1, 2, "4 hex digits");
    BAD("\"\\uD83D\\uDE0\"", 1, 8, "4 hex digits");
    BAD("\"\\uDC00\"", 1, 2, "lone low surrogate");
    BAD("\"\\uD800\"", 1, 2, "not followed by a \\u low surrogate");
    BAD("\"\\uD800x\\uDC00\"", 1, 2, "not followed");
    BAD("\"\\uD800\\u0041\"", 1, 8, "not a low surrogate");
    BAD("\"a\tb\"", 1, 3, "control character 0x09");
    BAD("\"a\nb\"", 1, 3, "control character 0x0A");
    BAD("\"\xC0\x80\"", 1, 2, "invalid UTF-8");     /* overlong NUL */
    BAD("\"\xE0\x80\xAF\"", 1, 2, "invalid UTF-8"); /* overlong '/' */
    BAD("\"\xED\xA0\x80\"", 1, 2, "invalid UTF-8"); /* UTF-8-encoded surrogate */
    BAD("\"\xF4\x90\x80\x80\"", 1, 2, "invalid UTF-8"); /* above U+10FFFF */
    BAD("\"\x80\"", 1, 2, "invalid UTF-8");         /* lone continuation byte */
    BAD("\"\xE2\x82\"", 1, 2, "invalid UTF-8");     /* truncated sequence */
    BAD("\"\xFF\"", 1, 2, "invalid UTF-8");
    BAD("\xEF\xBB\xBF{}", 1, 1, "byte order mark");
    BAD("[\x01]", 1, 2, "byte 0x01");
    BAD("[1,\0]", 1, 4, "byte 0x00");
    BAD("{\"a\":1,\n \"b\":2,\n  \"a\":3}", 3, 3, "duplicate key \"a\"");
    /* the column counts characters, not bytes */
    BAD("[\"\xC3\xA9\xE2\x82\xAC\", x]", 1, 8, "expected a value");
    BAD("[\n1,\n\n  ?]", 4, 3, "expected a value");
}

static void test_limits(void) {
    char buf[1024];
    for (int depth = 127; depth <= 129; depth++) {
        int n = 0;
        for (int i = 0; i < depth; i++) buf[n++] = '[';
        for (int i = 0; i < depth; i++) buf[n++] = ']';
        rq_json_doc *d = NULL;
        rq_json_error e;
        rq_status st = rq_json_parse(buf, n, NULL, &d, &e);
        if (depth <= RQ_JSON_MAX_DEPTH_DEFAULT) RQ_CHECK(st == RQ_OK);
        else RQ_CHECK(st == RQ_EFORMAT && e.column == RQ_JSON_MAX_DEPTH_DEFAULT + 1 && strstr(e.msg, "deeper than 128"));
        rq_json_doc_free(d);
    }
    rq_json_limits lim = {.max_bytes = 10, .max_depth = 2};
    rq_json_doc *d = NULL;
    RQ_CHECK(rq_json_parse("[[1]]", 5, &lim, &d, NULL) == RQ_OK);
    rq_json_doc_free(d);
    d = NULL;
    RQ_CHECK(rq_json_parse("[[[1]]]", 7, &lim, &d, NULL) == RQ_EFORMAT && !d);
    RQ_CHECK(rq_json_parse("[1,2,3,4,5]", 11, &lim, &d, NULL) == RQ_EFORMAT && strstr(rq_last_error(), "limit of 10"));
    rq_json_limits deep = {.max_bytes = 10, .max_depth = RQ_JSON_MAX_DEPTH_LIMIT + 1};
    RQ_CHECK(rq_json_parse("1", 1, &deep, &d, NULL) == RQ_EINVAL && !d);
    /* a length, not a terminator, bounds the input: bytes past len are never read */
    RQ_CHECK(rq_json_parse("[1]garbage", 3, NULL, &d, NULL) == RQ_OK);
    rq_json_doc_free(d);
    /* large flat object: lookup of every key */
    enum { NK = 3000 };
    char *big = malloc(NK * 24 + 16);
    int n = 0;
    big[n++] = '{';
    for (int i = 0; i < NK; i++) n += sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", (i * 7919) % NK, i);
    big[n++] = '}';
    d = NULL;
    RQ_CHECK(rq_json_parse(big, n, NULL, &d, NULL) == RQ_OK);
    if (d) {
        int ok = 1;
        for (int i = 0; i < NK; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%d", (i * 7919) % NK);
            const rq_json *v = rq_json_get(rq_json_root(d), k);
            ok &= v && v->number == i;
        }
        RQ_CHECK(ok);
        RQ_CHECK(rq_json_get(rq_json_root(d), "k3000") == NULL);
    }
    rq_json_doc_free(d);
    free(big);
}

/* ---- randomized round trip ----------------------------------------------------------- */

typedef struct gen {
    int type; /* rq_json_type */
    double num;
    uint32_t cps[8]; /* string code points */
    int n_cps;
    struct gen *kids[4];
    int n_kids;
} gen;

static uint32_t random_cp(rq_rng *r) {
    switch (rq_rng_u64(r) % 6) {
    case 0: return (uint32_t)(rq_rng_u64(r) % 32); /* control: must be escaped */
    case 1: return (uint32_t)(0x20 + rq_rng_u64(r) % 95);
    case 2: return (uint32_t)(0x80 + rq_rng_u64(r) % 0x780);
    case 3: {
        uint32_t c = (uint32_t)(0x800 + rq_rng_u64(r) % 0xF800);
        return c >= 0xD800 && c <= 0xDFFF ? 0xE000 : c;
    }
    case 4: return (uint32_t)(0x10000 + rq_rng_u64(r) % 0x100000);
    default: return rq_rng_u64(r) % 2 ? '"' : '\\';
    }
}

static gen *make(rq_rng *r, int depth, int *key_serial) {
    gen *g = calloc(1, sizeof *g);
    int t = (int)(rq_rng_u64(r) % (depth < 4 ? 7 : 5));
    g->type = t;
    if (t == RQ_JSON_NUMBER) {
        int64_t m = (int64_t)(rq_rng_u64(r) % 2000001) - 1000000;
        g->num = (double)m / 64.0; /* exactly representable, printed exactly by %.17g */
    } else if (t == RQ_JSON_STRING) {
        g->n_cps = (int)(rq_rng_u64(r) % 8);
        for (int i = 0; i < g->n_cps; i++) g->cps[i] = random_cp(r);
    } else if (t == RQ_JSON_ARRAY || t == RQ_JSON_OBJECT) {
        g->n_kids = (int)(rq_rng_u64(r) % 5);
        for (int i = 0; i < g->n_kids; i++) g->kids[i] = make(r, depth + 1, key_serial);
        if (t == RQ_JSON_OBJECT) g->num = (*key_serial)++; /* keys "<serial>_<i>" are distinct */
    }
    return g;
}

static void free_gen(gen *g) {
    for (int i = 0; i < g->n_kids; i++) free_gen(g->kids[i]);
    free(g);
}

typedef struct {
    char *s;
    int64_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, int64_t n) {
    while (b->n + n + 1 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->s = realloc(b->s, (size_t)b->cap);
    }
    memcpy(b->s + b->n, s, (size_t)n);
    b->n += n;
}
static void puts_(sbuf *b, const char *s) { put(b, s, (int64_t)strlen(s)); }

static void ws(sbuf *b, rq_rng *r) {
    static const char *w[] = {"", "", " ", "\n", "\t", "\r\n  "};
    puts_(b, w[rq_rng_u64(r) % 6]);
}

static int utf8_of(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 63)), o[2] = (char)(0x80 | (c & 63)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 63)), o[2] = (char)(0x80 | (c >> 6 & 63));
    o[3] = (char)(0x80 | (c & 63));
    return 4;
}

static void write_cp(sbuf *b, rq_rng *r, uint32_t c) {
    char t[16];
    bool esc = c < 0x20 || c == '"' || c == '\\' || rq_rng_u64(r) % 3 == 0;
    if (!esc) {
        put(b, t, utf8_of(c, t));
    } else if (c >= 0x10000) {
        uint32_t v = c - 0x10000;
        snprintf(t, sizeof t, rq_rng_u64(r) % 2 ? "\\u%04X\\u%04X" : "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                 0xDC00 + (v & 0x3FF));
        puts_(b, t);
    } else if (c == '\n' && rq_rng_u64(r) % 2) {
        puts_(b, "\\n");
    } else if (c == '"' && rq_rng_u64(r) % 2) {
        puts_(b, "\\\"");
    } else if (c == '\\' && rq_rng_u64(r) % 2) {
        puts_(b, "\\\\");
    } else {
        snprintf(t, sizeof t, "\\u%04X", c);
        puts_(b, t);
    }
}

static void serialize(sbuf *b, rq_rng *r, const gen *g) {
    char t[64];
    ws(b, r);
    switch (g->type) {
    case RQ_JSON_NULL: puts_(b, "null"); break;
    case RQ_JSON_FALSE: puts_(b, "false"); break;
    case RQ_JSON_TRUE: puts_(b, "true"); break;
    case RQ_JSON_NUMBER:
        snprintf(t, sizeof t, rq_rng_u64(r) % 2 ? "%.17g" : "%.17e", g->num);
        puts_(b, t);
        break;
    case RQ_JSON_STRING:
        puts_(b, "\"");
        for (int i = 0; i < g->n_cps; i++) write_cp(b, r, g->cps[i]);
        puts_(b, "\"");
        break;
    case RQ_JSON_ARRAY:
    case RQ_JSON_OBJECT:
        puts_(b, g->type == RQ_JSON_ARRAY ? "[" : "{");
        for (int i = 0; i < g->n_kids; i++) {
            if (i) puts_(b, ",");
            if (g->type == RQ_JSON_OBJECT) {
                ws(b, r);
                snprintf(t, sizeof t, "\"%d_%d\"", (int)g->num, i);
                puts_(b, t);
                ws(b, r);
                puts_(b, ":");
            }
            serialize(b, r, g->kids[i]);
        }
        ws(b, r);
        puts_(b, g->type == RQ_JSON_ARRAY ? "]" : "}");
        break;
    }
    ws(b, r);
}

static bool same(const gen *g, const rq_json *v) {
    if ((int)v->type != g->type) return false;
    switch (g->type) {
    case RQ_JSON_NUMBER: return v->number == g->num;
    case RQ_JSON_STRING: {
        char t[8 * 4 + 1];
        int n = 0;
        for (int i = 0; i < g->n_cps; i++) n += utf8_of(g->cps[i], t + n);
        return v->len == n && !memcmp(v->str, t, (size_t)n) && v->str[n] == 0;
    }
    case RQ_JSON_ARRAY:
        if (v->len != g->n_kids) return false;
        for (int i = 0; i < g->n_kids; i++)
            if (!same(g->kids[i], v->items[i])) return false;
        return true;
    case RQ_JSON_OBJECT:
        if (v->len != g->n_kids) return false;
        for (int i = 0; i < g->n_kids; i++) {
            char k[32];
            snprintf(k, sizeof k, "%d_%d", (int)g->num, i);
            if (strcmp(v->members[i].key, k) || rq_json_get(v, k) != v->members[i].value) return false;
            if (!same(g->kids[i], v->members[i].value)) return false;
        }
        return true;
    default: return true;
    }
}

static void test_round_trip(void) {
    rq_rng r;
    rq_rng_seed(&r, 42);
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        int serial = 0;
        gen *g = make(&r, 0, &serial);
        sbuf b = {0};
        serialize(&b, &r, g);
        rq_json_doc *d = NULL;
        if (rq_json_parse(b.s, b.n, NULL, &d, NULL) != RQ_OK || !same(g, rq_json_root(d))) {
            if (bad++ < 3) printf("round trip failed on: %.*s (%s)\n", (int)b.n, b.s, rq_last_error());
        }
        /* every strict prefix of a valid document that is not itself a value is an error,
         * and the parser must not read past the given length */
        if (it % 50 == 0)
            for (int64_t k = 0; k < b.n; k++) {
                rq_json_doc *d2 = NULL;
                char *copy = malloc((size_t)(k ? k : 1));
                memcpy(copy, b.s, (size_t)k);
                (void)rq_json_parse(copy, k, NULL, &d2, NULL);
                rq_json_doc_free(d2);
                free(copy);
            }
        rq_json_doc_free(d);
        free(b.s);
        free_gen(g);
    }
    RQ_CHECK_MSG(bad == 0, "%d round trips failed", bad);
}

int main(void) {
    test_valid();
    test_invalid();
    test_limits();
    test_round_trip();
    return rq_test_finish();
}

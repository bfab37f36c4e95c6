/* Task files -> requests (the harness's prompt templates), and the scoring arithmetic. */
#include "eval/tasks.h"

#include "io/file.h"
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *items, *labels;
    bool acc_norm;
} task_table[RQ_TASK_COUNT] = {
    [RQ_TASK_ARC_EASY] = {"arc_easy", "arc_easy/ARC-Easy-Test.jsonl", NULL, true},
    [RQ_TASK_ARC_CHALLENGE] = {"arc_challenge", "arc_challenge/ARC-Challenge-Test.jsonl", NULL, true},
    [RQ_TASK_PIQA] = {"piqa", "piqa/valid.jsonl", "piqa/valid-labels.lst", true},
    [RQ_TASK_WINOGRANDE] = {"winogrande", "winogrande/dev.jsonl", "winogrande/dev-labels.lst", false},
    [RQ_TASK_LAMBADA] = {"lambada", "lambada/lambada_test.jsonl", NULL, false},
    [RQ_TASK_BOOLQ] = {"boolq", "boolq/dev.jsonl", NULL, false},
};

const char *rq_task_name(rq_task_id id) { return id >= 0 && id < RQ_TASK_COUNT ? task_table[id].name : "?"; }

rq_status rq_task_from_name(const char *name, rq_task_id *out) {
    for (int i = 0; i < RQ_TASK_COUNT; i++)
        if (!strcmp(name, task_table[i].name)) return *out = (rq_task_id)i, RQ_OK;
    if (!strcmp(name, "lambada_openai")) return *out = RQ_TASK_LAMBADA, RQ_OK;
    return rq_errorf(RQ_EINVAL,
                     "unknown task '%s' (known: arc_easy, arc_challenge, piqa, winogrande, lambada, boolq)", name);
}

void rq_task_files(rq_task_id id, const char **items, const char **labels) {
    RQ_ASSERT(id >= 0 && id < RQ_TASK_COUNT);
    *items = task_table[id].items;
    *labels = task_table[id].labels;
}

bool rq_task_has_acc_norm(rq_task_id id) { return id >= 0 && id < RQ_TASK_COUNT && task_table[id].acc_norm; }

/* ---- strings ----------------------------------------------------------------------------- */

/* Growable byte string. */
typedef struct {
    char *s;
    int64_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, int64_t n) {
    if (b->n + n + 1 > b->cap) {
        int64_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *t = rq_xalloc(cap);
        if (b->n) memcpy(t, b->s, (size_t)b->n);
        rq_free(b->s);
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, (size_t)n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, (int64_t)strlen(s)); }

/* Take the buffer's string (always allocated, NUL-terminated). */
static char *sb_take(sbuf *b, int64_t *len) {
    if (!b->s) sb_put(b, "", 0);
    char *s = b->s;
    *len = b->n;
    b->s = NULL;
    b->n = b->cap = 0;
    return s;
}

/* Code point of the UTF-8 sequence ending just before s[end] (s is valid UTF-8);
 * *start gets its first byte. */
static uint32_t cp_before(const char *s, int64_t end, int64_t *start) {
    int64_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    *start = i;
    const unsigned char *u = (const unsigned char *)s + i;
    int64_t n = end - i;
    if (n == 1) return u[0];
    if (n == 2) return (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
    if (n == 3) return (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 | (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
}

/* Python's str.isspace() for one code point (the characters str.strip() removes). */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int64_t rq_task_rstrip_len(const char *s, int64_t n) {
    int64_t end = n;
    while (end > 0) {
        int64_t i = end - 1;
        while (i > 0 && end - i < 3 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
        const unsigned char *u = (const unsigned char *)s + i;
        int64_t len = end - i;
        uint32_t c;
        if (len == 1 && u[0] < 0x80) c = u[0];
        else if (len == 2 && (u[0] & 0xE0) == 0xC0) c = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
        else if (len == 3 && (u[0] & 0xF0) == 0xE0)
            c = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
        else break; /* not a whitespace character (no whitespace needs 4 bytes) */
        if (!py_space(c)) break;
        end = i;
    }
    return n - end;
}

/* Bytes of the leading Python whitespace of s[0..n) (valid UTF-8). */
static int64_t leading_space(const char *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + len > n) break;
        int64_t st;
        if (!py_space(cp_before(s, i + len, &st))) break;
        i += len;
    }
    return i;
}

/* Python len() of a valid UTF-8 string: code points. */
static int64_t n_code_points(const char *s, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* ---- building items ---------------------------------------------------------------------- */

typedef struct {
    const char *name; /* file name for messages */
    int64_t line;
} where;

static rq_status bad(where w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rq_status bad(where w, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rq_errorf(RQ_EFORMAT, "%s:%lld: %s", w.name, (long long)w.line, msg);
}

/* The string member `key` of object o (path names the object for messages). */
static rq_status get_str(where w, const rq_json *o, const char *path, const char *key, const rq_json **out) {
    const rq_json *v = rq_json_get(o, key);
    if (!v) return bad(w, "missing field '%s%s'", path, key);
    if (v->type != RQ_JSON_STRING)
        return bad(w, "field '%s%s' is a %s, expected a string", path, key, rq_json_type_name(v->type));
    *out = v;
    return RQ_OK;
}

static void item_alloc(rq_task_item *it, int n_req) {
    it->n_req = n_req;
    it->req = rq_xcalloc(n_req * (int64_t)sizeof(rq_task_request));
    it->norm_len = rq_xcalloc(n_req * (int64_t)sizeof(double));
}

static void set_req(rq_task_request *r, sbuf *ctx, sbuf *cont) {
    r->context = sb_take(ctx, &r->context_len);
    r->continuation = sb_take(cont, &r->continuation_len);
}

/* Multiple choice with one context and the choices as " {choice}" continuations. */
static void mc_item(rq_task_item *it, const char *ctx, int64_t ctx_len, const rq_json *const *choices, int n) {
    item_alloc(it, n);
    for (int k = 0; k < n; k++) {
        sbuf c = {0}, t = {0};
        sb_put(&c, ctx, ctx_len);
        sb_puts(&t, " ");
        sb_put(&t, choices[k]->str, choices[k]->len);
        set_req(&it->req[k], &c, &t);
        it->norm_len[k] = (double)n_code_points(choices[k]->str, choices[k]->len);
    }
}

static rq_status build_arc(where w, const rq_json *o, rq_task_item *it) {
    const rq_json *q = rq_json_get(o, "question");
    if (!q) return bad(w, "missing field 'question'");
    if (q->type != RQ_JSON_OBJECT)
        return bad(w, "field 'question' is a %s, expected an object", rq_json_type_name(q->type));
    const rq_json *stem, *key;
    RQ_TRY(get_str(w, q, "question.", "stem", &stem));
    RQ_TRY(get_str(w, o, "", "answerKey", &key));
    const rq_json *ch = rq_json_get(q, "choices");
    if (!ch) return bad(w, "missing field 'question.choices'");
    if (ch->type != RQ_JSON_ARRAY || ch->len < 1)
        return bad(w, "field 'question.choices' must be a non-empty array");
    if (ch->len > 64) return bad(w, "%lld choices (at most 64)", (long long)ch->len);
    const rq_json *texts[64];
    int gold = -1;
    for (int64_t k = 0; k < ch->len; k++) {
        const rq_json *c = ch->items[k], *text, *label;
        char path[64];
        snprintf(path, sizeof path, "question.choices[%lld].", (long long)k);
        if (c->type != RQ_JSON_OBJECT) return bad(w, "'question.choices[%lld]' is not an object", (long long)k);
        RQ_TRY(get_str(w, c, path, "text", &text));
        RQ_TRY(get_str(w, c, path, "label", &label));
        texts[k] = text;
        if (label->len == key->len && !memcmp(label->str, key->str, (size_t)key->len)) {
            if (gold >= 0) return bad(w, "label '%s' appears twice in question.choices", label->str);
            gold = (int)k;
        }
    }
    if (gold < 0) return bad(w, "answerKey '%.40s' is not the label of any choice", key->str);
    sbuf ctx = {0};
    sb_puts(&ctx, "Question: ");
    sb_put(&ctx, stem->str, stem->len);
    sb_puts(&ctx, "\nAnswer:");
    mc_item(it, ctx.s, ctx.n, texts, (int)ch->len);
    rq_free(ctx.s);
    it->gold = gold;
    return RQ_OK;
}

static rq_status build_piqa(where w, const rq_json *o, rq_task_item *it) {
    const rq_json *goal, *sol[2];
    RQ_TRY(get_str(w, o, "", "goal", &goal));
    RQ_TRY(get_str(w, o, "", "sol1", &sol[0]));
    RQ_TRY(get_str(w, o, "", "sol2", &sol[1]));
    sbuf ctx = {0};
    sb_puts(&ctx, "Question: ");
    sb_put(&ctx, goal->str, goal->len);
    sb_puts(&ctx, "\nAnswer:");
    mc_item(it, ctx.s, ctx.n, sol, 2);
    rq_free(ctx.s);
    it->gold = -1; /* from the label file */
    return RQ_OK;
}

static rq_status build_winogrande(where w, const rq_json *o, rq_task_item *it) {
    const rq_json *sent, *opt[2], *ans;
    RQ_TRY(get_str(w, o, "", "sentence", &sent));
    RQ_TRY(get_str(w, o, "", "option1", &opt[0]));
    RQ_TRY(get_str(w, o, "", "option2", &opt[1]));
    RQ_TRY(get_str(w, o, "", "answer", &ans));
    if (ans->len != 1 || (ans->str[0] != '1' && ans->str[0] != '2'))
        return bad(w, "answer '%.20s' is not \"1\" or \"2\"", ans->str);
    const char *us = memchr(sent->str, '_', (size_t)sent->len);
    if (!us) return bad(w, "sentence has no blank '_'");
    int64_t blank = us - sent->str;
    /* target: everything after the blank, stripped (Python str.strip) */
    const char *rest = sent->str + blank + 1;
    int64_t rest_len = sent->len - blank - 1;
    int64_t lead = leading_space(rest, rest_len);
    int64_t trail = lead < rest_len ? rq_task_rstrip_len(rest + lead, rest_len - lead) : 0;
    item_alloc(it, 2);
    for (int k = 0; k < 2; k++) {
        sbuf c = {0}, t = {0};
        sb_put(&c, sent->str, blank);
        sb_put(&c, opt[k]->str, opt[k]->len);
        sb_puts(&t, " ");
        sb_put(&t, rest + lead, rest_len - lead - trail);
        it->norm_len[k] = (double)n_code_points(c.s, c.n); /* len(choice): the partial context */
        set_req(&it->req[k], &c, &t);
    }
    it->gold = ans->str[0] - '1';
    return RQ_OK;
}

static rq_status build_lambada(where w, const rq_json *o, rq_task_item *it) {
    const rq_json *text;
    RQ_TRY(get_str(w, o, "", "text", &text));
    /* text.split(' '): the context is everything before the last ' ', the target is
     * ' ' + what follows it (the whole text when there is no ' ') */
    int64_t k = text->len - 1;
    while (k >= 0 && text->str[k] != ' ') k--;
    item_alloc(it, 1);
    sbuf c = {0}, t = {0};
    if (k >= 0) sb_put(&c, text->str, k);
    sb_puts(&t, " ");
    sb_put(&t, text->str + k + 1, text->len - k - 1);
    it->norm_len[0] = (double)n_code_points(t.s, t.n);
    set_req(&it->req[0], &c, &t);
    it->gold = 0;
    return RQ_OK;
}

static rq_status build_boolq(where w, const rq_json *o, rq_task_item *it) {
    const rq_json *passage, *question;
    RQ_TRY(get_str(w, o, "", "passage", &passage));
    RQ_TRY(get_str(w, o, "", "question", &question));
    const rq_json *ans = rq_json_get(o, "answer");
    if (!ans) return bad(w, "missing field 'answer'");
    if (ans->type != RQ_JSON_TRUE && ans->type != RQ_JSON_FALSE)
        return bad(w, "field 'answer' is a %s, expected a boolean", rq_json_type_name(ans->type));
    sbuf ctx = {0};
    sb_put(&ctx, passage->str, passage->len);
    sb_puts(&ctx, "\nQuestion: ");
    sb_put(&ctx, question->str, question->len);
    sb_puts(&ctx, "?\nAnswer:");
    static const rq_json no = {.type = RQ_JSON_STRING, .str = "no", .len = 2};
    static const rq_json yes = {.type = RQ_JSON_STRING, .str = "yes", .len = 3};
    const rq_json *choices[2] = {&no, &yes};
    mc_item(it, ctx.s, ctx.n, choices, 2);
    rq_free(ctx.s);
    it->gold = ans->type == RQ_JSON_TRUE ? 1 : 0;
    return RQ_OK;
}

/* ---- files --------------------------------------------------------------------------------- */

static void free_item(rq_task_item *it) {
    for (int k = 0; k < it->n_req; k++) {
        rq_free(it->req[k].context);
        rq_free(it->req[k].continuation);
    }
    rq_free(it->req);
    rq_free(it->norm_len);
}

void rq_task_free(rq_task *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n_items; i++) free_item(&t->items[i]);
    rq_free(t->items);
    rq_free(t);
}

/* Lines of text: calls fn for each line (without its '\n'); the text must end with '\n'
 * or not, either is accepted; a final empty line after the last '\n' is not a line. */
typedef struct {
    const char *s;
    int64_t n, pos, line;
} line_iter;

static bool next_line(line_iter *li, const char **l, int64_t *len) {
    if (li->pos >= li->n) return false;
    const char *nl = memchr(li->s + li->pos, '\n', (size_t)(li->n - li->pos));
    int64_t end = nl ? nl - li->s : li->n;
    *l = li->s + li->pos;
    *len = end - li->pos;
    li->pos = end + 1;
    li->line++;
    return true;
}

rq_status rq_task_parse(rq_task_id id, const char *text, int64_t len, const char *name, const char *labels,
                        int64_t labels_len, const char *labels_name, int64_t limit, rq_task **out) {
    *out = NULL;
    if (id < 0 || id >= RQ_TASK_COUNT) return rq_errorf(RQ_EINVAL, "task id %d out of range", (int)id);
    bool want_labels = task_table[id].labels != NULL;
    if (want_labels && !labels)
        return rq_errorf(RQ_EINVAL, "task %s needs its label file %s", task_table[id].name, task_table[id].labels);
    rq_task *t = rq_xcalloc(sizeof *t);
    t->id = id;
    int64_t cap = 0;
    line_iter li = {.s = text, .n = len};
    const char *l;
    int64_t ll;
    rq_status s = RQ_OK;
    while (next_line(&li, &l, &ll)) {
        where w = {name, li.line};
        if (ll == 0 || (ll == 1 && l[0] == '\r')) {
            s = bad(w, "empty line (one JSON object per line expected)");
            break;
        }
        rq_json_doc *doc;
        rq_json_error je;
        s = rq_json_parse(l, ll, NULL, &doc, &je);
        if (s != RQ_OK) {
            s = s == RQ_EFORMAT ? bad(w, "column %lld: %s", (long long)je.column, je.msg) : s;
            break;
        }
        const rq_json *o = rq_json_root(doc);
        if (o->type != RQ_JSON_OBJECT) {
            s = bad(w, "the line holds a JSON %s, expected an object", rq_json_type_name(o->type));
            rq_json_doc_free(doc);
            break;
        }
        if (t->n_items == cap) {
            cap = cap ? 2 * cap : 1024;
            rq_task_item *items = rq_xcalloc(cap * (int64_t)sizeof *items);
            if (t->n_items) memcpy(items, t->items, (size_t)t->n_items * sizeof *items);
            rq_free(t->items);
            t->items = items;
        }
        rq_task_item *it = &t->items[t->n_items];
        memset(it, 0, sizeof *it);
        it->line = li.line;
        switch (id) {
        case RQ_TASK_ARC_EASY:
        case RQ_TASK_ARC_CHALLENGE: s = build_arc(w, o, it); break;
        case RQ_TASK_PIQA: s = build_piqa(w, o, it); break;
        case RQ_TASK_WINOGRANDE: s = build_winogrande(w, o, it); break;
        case RQ_TASK_LAMBADA: s = build_lambada(w, o, it); break;
        case RQ_TASK_BOOLQ: s = build_boolq(w, o, it); break;
        default: RQ_ASSERT(0);
        }
        rq_json_doc_free(doc);
        if (s != RQ_OK) {
            free_item(it);
            break;
        }
        t->n_items++;
    }
    if (s == RQ_OK && t->n_items == 0) s = rq_errorf(RQ_EFORMAT, "%s: no items", name);
    if (s == RQ_OK && want_labels) {
        /* one label per line, aligned with the items: PIQA 0/1, WinoGrande 1/2 (which
         * must agree with the item's "answer") */
        char lo = id == RQ_TASK_PIQA ? '0' : '1';
        line_iter lj = {.s = labels, .n = labels_len};
        int64_t k = 0;
        while (s == RQ_OK && next_line(&lj, &l, &ll)) {
            where w = {labels_name, lj.line};
            if (k >= t->n_items) {
                s = bad(w, "more labels than the %lld items of %s", (long long)t->n_items, name);
                break;
            }
            if (ll != 1 || (l[0] != lo && l[0] != lo + 1)) {
                s = bad(w, "label '%.*s' is not %c or %c", (int)(ll < 20 ? ll : 20), l, lo, lo + 1);
                break;
            }
            int lab = l[0] - lo;
            rq_task_item *it = &t->items[k];
            if (id == RQ_TASK_PIQA) it->gold = lab;
            else if (it->gold != lab)
                s = bad(w, "label %c disagrees with answer \"%c\" of %s:%lld", l[0], '1' + it->gold, name,
                        (long long)it->line);
            k++;
        }
        if (s == RQ_OK && k < t->n_items)
            s = bad((where){labels_name, lj.line + 1}, "missing label: %s has %lld items, this file %lld labels", name,
                    (long long)t->n_items, (long long)k);
    }
    if (s != RQ_OK) {
        rq_task_free(t);
        return s;
    }
    t->n_file_items = t->n_items;
    if (limit > 0 && limit < t->n_items) {
        for (int64_t i = limit; i < t->n_items; i++) free_item(&t->items[i]);
        t->n_items = limit;
    }
    *out = t;
    return RQ_OK;
}

rq_status rq_task_load(rq_task_id id, const char *data_dir, int64_t limit, rq_task **out) {
    *out = NULL;
    if (id < 0 || id >= RQ_TASK_COUNT) return rq_errorf(RQ_EINVAL, "task id %d out of range", (int)id);
    char path[4096], lpath[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, task_table[id].items);
    char *text = NULL, *lab = NULL;
    int64_t len = 0, lab_len = 0;
    RQ_TRY(rq_file_read(path, &text, &len));
    if (task_table[id].labels) {
        snprintf(lpath, sizeof lpath, "%s/%s", data_dir, task_table[id].labels);
        rq_status s = rq_file_read(lpath, &lab, &lab_len);
        if (s != RQ_OK) {
            rq_free(text);
            return s;
        }
    }
    rq_status s = rq_task_parse(id, text, len, path, lab, lab_len, lpath, limit, out);
    rq_free(text);
    rq_free(lab);
    return s;
}

/* ---- scoring arithmetic ------------------------------------------------------------------ */

int rq_task_argmax(const double *x, int n) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) return i;
        if (x[i] > x[best]) best = i;
    }
    return best;
}

void rq_task_predict(const rq_task_item *it, const double *ll, int *pred, int *pred_norm) {
    RQ_ASSERT(it->n_req >= 1 && it->n_req <= 64);
    double v[64];
    *pred = rq_task_argmax(ll, it->n_req);
    for (int k = 0; k < it->n_req; k++) v[k] = ll[k] / it->norm_len[k];
    *pred_norm = rq_task_argmax(v, it->n_req);
}

double rq_task_stderr(double p, int64_t n) {
    if (n < 2) return 0;
    double v = p * (1 - p) / (double)(n - 1);
    return v > 0 ? sqrt(v) : 0;
}

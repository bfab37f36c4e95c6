/* libFuzzer harness for the JSON parser: parse an arbitrary byte string (with a small
 * depth limit as well as the defaults), then walk the whole tree, looking every object
 * member up by its key. Must never crash, leak or read out of bounds; a parsed document
 * must satisfy the invariants the header promises (strings NUL-terminated, lookups find
 * each member). */
#include "io/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t walk(const rq_json *v, int depth) {
    uint64_t h = (uint64_t)v->type + (uint64_t)v->line;
    if (depth > RQ_JSON_MAX_DEPTH_DEFAULT + 1) abort();
    switch (v->type) {
    case RQ_JSON_STRING:
        if (v->str[v->len] != 0) abort();
        h += v->len ? (uint8_t)v->str[0] : 0;
        break;
    case RQ_JSON_NUMBER:
        h += v->number > 0;
        break;
    case RQ_JSON_ARRAY:
        for (int64_t i = 0; i < v->len; i++) h += walk(v->items[i], depth + 1);
        break;
    case RQ_JSON_OBJECT:
        for (int64_t i = 0; i < v->len; i++) {
            const rq_json_member *m = &v->members[i];
            if (m->key[m->key_len] != 0) abort();
            if (rq_json_get_n(v, m->key, m->key_len) != m->value) abort(); /* keys are unique */
            h += walk(m->value, depth + 1);
        }
        break;
    default:
        break;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* copy so that reading past `size` is caught by ASan (the input is not NUL-terminated) */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    volatile uint64_t sink = 0;
    rq_json_doc *d;
    rq_json_error err;
    if (rq_json_parse(buf, (int64_t)size, NULL, &d, &err) == RQ_OK) {
        sink += walk(rq_json_root(d), 0);
        rq_json_doc_free(d);
    } else if (err.line < 0 || err.column < 0 || !memchr(err.msg, 0, sizeof err.msg)) {
        abort();
    }
    rq_json_limits lim = {.max_bytes = 1 << 20, .max_depth = 3};
    if (rq_json_parse(buf, (int64_t)size, &lim, &d, NULL) == RQ_OK) {
        sink += walk(rq_json_root(d), 0);
        rq_json_doc_free(d);
    }
    (void)sink;
    free(buf);
    return 0;
}

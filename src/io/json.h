/* A strict JSON parser (RFC 8259) for task files and other small documents.
 *
 * Accepted: exactly one value (any type, RFC 8259 allows a scalar at the top level)
 * surrounded by optional whitespace (space, tab, LF, CR). Strings must be well-formed
 * UTF-8 (no overlong forms, no UTF-8-encoded surrogates, nothing above U+10FFFF) with
 * control characters U+0000..U+001F escaped; escapes are \" \\ \/ \b \f \n \r \t \uXXXX,
 * a \u high surrogate must be followed by a \u low surrogate (the pair is combined) and
 * a lone surrogate is an error. Numbers follow the RFC grammar exactly
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?) and must fit a double (1e400 is an
 * error, 1e-400 reads as 0). Rejected as well: a byte order mark, trailing commas,
 * comments, NaN/Infinity, single quotes, duplicate keys in one object, nesting deeper
 * than limits.max_depth, input longer than limits.max_bytes.
 *
 * Errors are RQ_EFORMAT (RQ_ENOMEM for memory) with the message
 * "line L, column C: what" (1-based; the column counts characters, i.e. UTF-8
 * sequences, from the start of the line), also returned piecewise in *err when given.
 *
 * Memory: the parsed tree lives in one rq_json_doc (an arena); every rq_json, string and
 * member array it hands out stays valid until rq_json_doc_free. Worst case about 48
 * bytes of memory per input byte (a document of nested empty arrays). Numbers are
 * converted with strtod in the "C" locale assumption (the library never calls
 * setlocale). The parser is reentrant: documents may be parsed on several threads. */
#ifndef RQ_IO_JSON_H
#define RQ_IO_JSON_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum rq_json_type {
    RQ_JSON_NULL = 0,
    RQ_JSON_FALSE = 1,
    RQ_JSON_TRUE = 2,
    RQ_JSON_NUMBER = 3,
    RQ_JSON_STRING = 4,
    RQ_JSON_ARRAY = 5,
    RQ_JSON_OBJECT = 6,
} rq_json_type;

typedef struct rq_json rq_json;

typedef struct rq_json_member {
    const char *key; /* decoded UTF-8, NUL-terminated (may hold NULs: use key_len) */
    int64_t key_len; /* bytes */
    rq_json *value;
} rq_json_member;

/* A value. Read-only for callers; owned by its rq_json_doc. */
struct rq_json {
    rq_json_type type;
    int64_t line;   /* 1-based line where the value starts */
    int64_t offset; /* byte offset of its first byte in the input */
    double number;  /* NUMBER */
    const char *str;  /* STRING: decoded UTF-8, NUL-terminated (may hold NULs: use len) */
    int64_t len;      /* STRING: bytes; ARRAY: elements; OBJECT: members */
    rq_json **items;  /* ARRAY: [len] */
    rq_json_member *members; /* OBJECT: [len] in document order */
    int64_t *sorted;  /* OBJECT: [len] member indices ordered by key bytes (for lookup) */
};

typedef struct rq_json_limits {
    int64_t max_bytes; /* longest input accepted */
    int max_depth;     /* deepest nesting of arrays/objects (top-level container = 1) */
} rq_json_limits;

#define RQ_JSON_MAX_BYTES_DEFAULT (INT64_C(64) << 20)
#define RQ_JSON_MAX_DEPTH_DEFAULT 128
/* The parser recurses once per level: larger max_depth values are refused (RQ_EINVAL). */
#define RQ_JSON_MAX_DEPTH_LIMIT 4096

typedef struct rq_json_error {
    int64_t line, column; /* 1-based, column in characters; 0 when not about a position */
    char msg[160];        /* what is wrong, without the position */
} rq_json_error;

typedef struct rq_json_doc rq_json_doc;

/* Parse len bytes of text (need not be NUL-terminated). limits NULL = the defaults.
 * On success *out (rq_json_doc_free) holds the tree; on failure *out is NULL, the status
 * message is "line L, column C: what" and, when err is not NULL, *err gets the parts. */
rq_status rq_json_parse(const char *text, int64_t len, const rq_json_limits *limits, rq_json_doc **out,
                        rq_json_error *err);
void rq_json_doc_free(rq_json_doc *doc);
/* The top-level value; owned by the document. */
const rq_json *rq_json_root(const rq_json_doc *doc);

/* Member `key` (NUL-terminated) of an object, by binary search; NULL when v is not an
 * object or has no such key. */
const rq_json *rq_json_get(const rq_json *v, const char *key);
/* Member `key` of `key_len` bytes (may contain NULs). */
const rq_json *rq_json_get_n(const rq_json *v, const char *key, int64_t key_len);

const char *rq_json_type_name(rq_json_type t);

#endif

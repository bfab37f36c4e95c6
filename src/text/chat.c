#include "text/chat.h"

#include "io/gguf.h"

#include <string.h>

/* ---- growable string --------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    int64_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, int64_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        int64_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = (char *)rq_alloc(nc);
        if (!q) {
            b->oom = true;
            return;
        }
        if (b->n) memcpy(q, b->p, (size_t)b->n);
        rq_free(b->p);
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, (int64_t)strlen(s)); }

static rq_status sb_finish(sbuf *b, char **out) {
    if (b->oom) {
        rq_free(b->p);
        return rq_errorf(RQ_ENOMEM, "chat: out of memory");
    }
    if (!b->p) sb_add(b, "", 0);
    if (b->oom) return rq_errorf(RQ_ENOMEM, "chat: out of memory");
    *out = b->p;
    return RQ_OK;
}

/* ---- recognising a template -------------------------------------------------------- */

static const char *find_bytes(const char *hay, int64_t n, const char *needle, int64_t from) {
    int64_t m = (int64_t)strlen(needle);
    for (int64_t i = from; i + m <= n; i++)
        if (memcmp(hay + i, needle, (size_t)m) == 0) return hay + i;
    return NULL;
}

/* The literal text after "<|im_start|>system" + newline (a real one or the two
 * characters \n of a string literal) up to "<|im_end|>", when it is plain text rather
 * than template code. NULL if the template has no such default. */
static char *chatml_default_system(const char *s, int64_t n) {
    static const char head[] = "<|im_start|>system";
    for (const char *p = find_bytes(s, n, head, 0); p; p = find_bytes(s, n, head, p - s + 1)) {
        int64_t i = (p - s) + (int64_t)sizeof(head) - 1;
        bool escaped;
        if (i < n && s[i] == '\n') {
            escaped = false;
            i += 1;
        } else if (i + 1 < n && s[i] == '\\' && s[i + 1] == 'n') {
            escaped = true;
            i += 2;
        } else {
            continue;
        }
        const char *end = find_bytes(s, n, "<|im_end|>", i);
        if (!end || end == s + i) continue;
        bool plain = true;
        for (const char *q = s + i; q < end; q++)
            if (*q == '\'' || *q == '"' || *q == '{' || *q == '}' || *q == '+') plain = false;
        if (!plain) continue;
        char *out = (char *)rq_alloc((end - (s + i)) + 1);
        if (!out) return NULL;
        int64_t o = 0;
        for (const char *q = s + i; q < end; q++) {
            if (escaped && *q == '\\' && q + 1 < end) {
                char c = q[1];
                out[o++] = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                q++;
            } else {
                out[o++] = *q;
            }
        }
        out[o] = 0;
        return out;
    }
    return NULL;
}

rq_status rq_chat_template_parse(const char *text, int64_t len, rq_chat_template *out) {
    memset(out, 0, sizeof(*out));
    if (!text || len < 0) return rq_errorf(RQ_EINVAL, "chat template: bad text");
    if (find_bytes(text, len, "<|im_start|>", 0) && find_bytes(text, len, "<|im_end|>", 0)) {
        out->style = RQ_CHAT_CHATML;
        out->default_system = chatml_default_system(text, len);
        return RQ_OK;
    }
    if (find_bytes(text, len, "<start_of_turn>", 0) && find_bytes(text, len, "<end_of_turn>", 0)) {
        out->style = RQ_CHAT_GEMMA;
        return RQ_OK;
    }
    return rq_errorf(RQ_EUNSUPPORTED, "chat template not recognised (only ChatML and Gemma formats are implemented): \"%.*s...\"",
                     (int)(len < 60 ? len : 60), text);
}

rq_status rq_chat_template_from_gguf(const rq_gguf *g, rq_chat_template *out) {
    memset(out, 0, sizeof(*out));
    const rq_gguf_kv *kv = rq_gguf_find(g, "tokenizer.chat_template");
    if (kv) {
        if (kv->type != RQ_GGUF_STR) return rq_errorf(RQ_EFORMAT, "tokenizer.chat_template: expected a string");
        return rq_chat_template_parse(kv->s.ptr, (int64_t)kv->s.len, out);
    }
    const rq_gguf_kv *arch = rq_gguf_find(g, "general.architecture");
    if (arch && arch->type == RQ_GGUF_STR &&
        (rq_gguf_str_eq(arch->s, "gemma") || rq_gguf_str_eq(arch->s, "gemma2") || rq_gguf_str_eq(arch->s, "gemma3"))) {
        out->style = RQ_CHAT_GEMMA;
        return RQ_OK;
    }
    return rq_errorf(RQ_EUNSUPPORTED, "the model has no tokenizer.chat_template and no known default chat format");
}

void rq_chat_template_clear(rq_chat_template *t) {
    if (!t) return;
    rq_free(t->default_system);
    t->default_system = NULL;
}

/* ---- rendering --------------------------------------------------------------------- */

static bool is_role(const char *r) {
    return r && (strcmp(r, "system") == 0 || strcmp(r, "user") == 0 || strcmp(r, "assistant") == 0);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

rq_status rq_chat_render(const rq_chat_template *t, const rq_chat_message *msgs, int64_t n, bool add_generation_prompt,
                         char **out) {
    *out = NULL;
    if (n < 0 || (n > 0 && !msgs)) return rq_errorf(RQ_EINVAL, "chat: bad message list");
    for (int64_t i = 0; i < n; i++) {
        if (!is_role(msgs[i].role))
            return rq_errorf(RQ_EINVAL, "chat: message %lld has role \"%s\" (expected system, user or assistant)", (long long)i,
                             msgs[i].role ? msgs[i].role : "(null)");
        if (!msgs[i].content) return rq_errorf(RQ_EINVAL, "chat: message %lld has no content", (long long)i);
    }
    sbuf b = {0};
    if (t->style == RQ_CHAT_CHATML) {
        for (int64_t i = 0; i < n; i++) {
            if (i == 0 && strcmp(msgs[0].role, "system") != 0 && t->default_system) {
                sb_str(&b, "<|im_start|>system\n");
                sb_str(&b, t->default_system);
                sb_str(&b, "<|im_end|>\n");
            }
            sb_str(&b, "<|im_start|>");
            sb_str(&b, msgs[i].role);
            sb_str(&b, "\n");
            sb_str(&b, msgs[i].content);
            sb_str(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) sb_str(&b, "<|im_start|>assistant\n");
    } else if (t->style == RQ_CHAT_GEMMA) {
        int64_t first = 0;
        const char *prefix = NULL;
        if (n > 0 && strcmp(msgs[0].role, "system") == 0) {
            prefix = msgs[0].content;
            first = 1;
        }
        for (int64_t i = first; i < n; i++) {
            bool user = strcmp(msgs[i].role, "user") == 0;
            if (user != ((i - first) % 2 == 0)) {
                rq_free(b.p);
                return rq_errorf(RQ_EINVAL, "chat: Gemma conversation roles must alternate user/assistant/user/... (message %lld is %s)",
                                 (long long)i, msgs[i].role);
            }
            sb_str(&b, "<start_of_turn>");
            sb_str(&b, strcmp(msgs[i].role, "assistant") == 0 ? "model" : msgs[i].role);
            sb_str(&b, "\n");
            if (i == first && prefix) {
                sb_str(&b, prefix);
                sb_str(&b, "\n\n");
            }
            const char *c = msgs[i].content;
            int64_t l = (int64_t)strlen(c);
            while (l > 0 && is_space(*c)) c++, l--;
            while (l > 0 && is_space(c[l - 1])) l--;
            sb_add(&b, c, l);
            sb_str(&b, "<end_of_turn>\n");
        }
        if (add_generation_prompt) sb_str(&b, "<start_of_turn>model\n");
    } else {
        return rq_errorf(RQ_EINVAL, "chat: bad template style %d", (int)t->style);
    }
    return sb_finish(&b, out);
}

rq_status rq_chat_format(const rq_gguf *g, const char *system, const char *user, char **out) {
    *out = NULL;
    if (!user) return rq_errorf(RQ_EINVAL, "chat: no user message");
    rq_chat_template t;
    RQ_TRY(rq_chat_template_from_gguf(g, &t));
    rq_chat_message m[2];
    int64_t n = 0;
    if (system) m[n++] = (rq_chat_message){"system", system};
    m[n++] = (rq_chat_message){"user", user};
    rq_status s = rq_chat_render(&t, m, n, true, out);
    rq_chat_template_clear(&t);
    return s;
}

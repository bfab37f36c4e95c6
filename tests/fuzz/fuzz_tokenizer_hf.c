/* libFuzzer harness for Hugging Face tokenizers (text/tokenizer_hf.c): the input is
 * tokenizer.json, optionally followed by a line "\n@@cfg@@\n" and tokenizer_config.json,
 * and by "\n@@jinja@@\n" and chat_template.jinja. They are written to a private directory
 * and read as a checkpoint's tokenizer is; a malformed one must fail cleanly, a loaded one
 * must encode and decode a fixed text (special tokens parsed and not), give ids inside
 * its vocabulary, and render a chat prompt when it has a template we recognise.
 * Must never crash, hang or read out of bounds. */
#include "base/status.h"
#include "io/gguf.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "text/tokenizer_hf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[128];

static void cleanup(void) {
    static const char *names[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    char path[192];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

static void put(const char *name, const uint8_t *b, size_t n) {
    char path[192];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (!b) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(b, 1, n, f) != n) abort();
    fclose(f);
}

static const uint8_t *find(const uint8_t *b, size_t n, const char *sep) {
    size_t k = strlen(sep);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, sep, k)) return b + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "%s/rq_fuzz_tokhf_%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (int)getpid());
        char cmd[160];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
        if (system(cmd) != 0) abort();
        atexit(cleanup);
    }
    static const char CFG[] = "\n@@cfg@@\n", JIN[] = "\n@@jinja@@\n";
    const uint8_t *end = data + size, *c = find(data, size, CFG), *j = find(data, size, JIN);
    const uint8_t *tok_end = c && (!j || c < j) ? c : j ? j : end;
    put("tokenizer.json", data, (size_t)(tok_end - data));
    const uint8_t *cb = c ? c + sizeof CFG - 1 : NULL, *ce = cb && j && j > cb ? j : end;
    put("tokenizer_config.json", cb, cb ? (size_t)(ce - cb) : 0);
    const uint8_t *jb = j ? j + sizeof JIN - 1 : NULL, *je = jb && c && c > jb ? c : end;
    put("chat_template.jinja", jb, jb ? (size_t)(je - jb) : 0);

    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf *g = NULL;
    rq_tokenizer *tok = NULL;
    rq_status s = rq_tokenizer_hf_to_gguf(g_dir, 0, w);
    if (s == RQ_OK) s = rq_gguf_writer_open_image(w, g_dir, &g);
    rq_gguf_writer_free(w);
    if (s == RQ_OK) s = rq_tokenizer_load(g, &tok);
    if (s == RQ_OK) {
        static const char text[] = "Hello world, it's 2026! <|im_start|>user\n\xc3\xa9t\xc3\xa9 \xe6\x97\xa5 <s></s>";
        int64_t nv = rq_tokenizer_n_vocab(tok);
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            int64_t n = 0;
            if (rq_tokenizer_encode(tok, text, (int64_t)sizeof text - 1, special, special, &ids, &n) != RQ_OK) continue;
            for (int64_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= nv) abort(); /* an id outside the vocabulary */
            char *out = NULL;
            int64_t len = 0;
            if (rq_tokenizer_decode(tok, ids, n, special, &out, &len) != RQ_OK) abort(); /* its own ids */
            rq_free(out);
            rq_free(ids);
        }
        rq_chat_template ct;
        if (rq_chat_template_from_gguf(g, &ct) == RQ_OK) {
            rq_chat_message msg = {"user", "Hi"};
            char *r = NULL;
            if (rq_chat_render(&ct, &msg, 1, true, &r) == RQ_OK) rq_free(r);
            rq_chat_template_clear(&ct);
        }
    }
    rq_tokenizer_free(tok);
    rq_gguf_close(g);
    return 0;
}

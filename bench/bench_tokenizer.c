/* Tokenizer speed over wikitext-2 test (1.29 MB): encode and decode, best of a few runs,
 * for the default model and any other GGUF named on the command line.
 *   bench_tokenizer [model.gguf ...]
 * Baseline: if RQ_LLAMA_TOKENIZE names a llama-tokenize binary, it is timed on the same
 * text (its run on an empty file subtracted, so model loading is not counted) and the
 * ratio printed. */
#include "base/timer.h"
#include "io/gguf.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_wiki = "../shared/data/wikitext-2-raw/wiki.test.raw";

static double time_cmd(const char *cmd) {
    double t0 = rq_time_now();
    if (system(cmd) != 0) return -1;
    return rq_time_now() - t0;
}

static void bench(const char *path, const char *text, int64_t len) {
    rq_gguf *g = NULL;
    if (rq_gguf_open(path, &g) != RQ_OK) {
        printf("%s: %s\n", path, rq_last_error());
        return;
    }
    double t0 = rq_time_now();
    rq_tokenizer *t = NULL;
    if (rq_tokenizer_load(g, &t) != RQ_OK) {
        printf("%s: %s\n", path, rq_last_error());
        rq_gguf_close(g);
        return;
    }
    double t_load = rq_time_now() - t0;
    double best_enc = 1e9, best_dec = 1e9;
    int64_t n = 0;
    for (int rep = 0; rep < 5; rep++) {
        int32_t *ids = NULL;
        t0 = rq_time_now();
        RQ_ASSERT(rq_tokenizer_encode(t, text, len, false, false, &ids, &n) == RQ_OK);
        double te = rq_time_now() - t0;
        char *out = NULL;
        int64_t nb = 0;
        t0 = rq_time_now();
        RQ_ASSERT(rq_tokenizer_decode(t, ids, n, false, &out, &nb) == RQ_OK);
        double td = rq_time_now() - t0;
        if (te < best_enc) best_enc = te;
        if (td < best_dec) best_dec = td;
        rq_free(ids);
        rq_free(out);
    }
    printf("%s\n  load %.3f s (vocab %d)\n  encode: %lld tokens in %.3f s = %.2f M tokens/s, %.1f MB/s\n"
           "  decode: %.4f s = %.1f M tokens/s\n",
           path, t_load, rq_tokenizer_n_vocab(t), (long long)n, best_enc, n / best_enc / 1e6, len / best_enc / 1e6, best_dec,
           n / best_dec / 1e6);
    const char *llama = getenv("RQ_LLAMA_TOKENIZE");
    if (llama) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "'%s' -m '%s' -f /dev/null --ids --no-bos --no-escape --no-parse-special --log-disable >/dev/null 2>&1", llama, path);
        double t_empty = time_cmd(cmd);
        snprintf(cmd, sizeof cmd, "'%s' -m '%s' -f '%s' --ids --no-bos --no-escape --no-parse-special --log-disable >/dev/null 2>&1", llama, path, k_wiki);
        double t_full = time_cmd(cmd);
        if (t_empty >= 0 && t_full > t_empty)
            printf("  llama-tokenize (baseline): %.3f s = %.2f M tokens/s; ours is %.1fx faster\n", t_full - t_empty,
                   n / (t_full - t_empty) / 1e6, (t_full - t_empty) / best_enc);
    }
    rq_tokenizer_free(t);
    rq_gguf_close(g);
}

int main(int argc, char **argv) {
    FILE *f = fopen(k_wiki, "rb");
    if (!f) {
        printf("%s absent\n", k_wiki);
        return 0;
    }
    fseek(f, 0, SEEK_END);
    int64_t len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len);
    RQ_ASSERT(fread(text, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    printf("text: %s, %lld bytes\n", k_wiki, (long long)len);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) bench(argv[i], text, len);
    } else {
        bench("models/SmolLM2-135M-Instruct.Q4_1.gguf", text, len);
    }
    free(text);
    return 0;
}

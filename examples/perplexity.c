/* perplexity: the perplexity of a text file under a model, as `rotquant ppl -f` computes it.
 *     perplexity MODEL TEXT_FILE [CTX [CHUNKS [full]]]
 * CTX: window length (default 512, or 2048 with "full"); CHUNKS: at most this many windows
 * (default all); "full": the GPTQ/QuaRot papers' protocol instead of llama-perplexity's.
 * Build against an installed rotquant: cc perplexity.c $(pkg-config --cflags --libs rotquant) */
#include <rotquant.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole file, NUL-terminated (*len bytes), or NULL. */
static char *read_file(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)*len + 1)) && fread(buf, 1, (size_t)*len, f) == (size_t)*len) {
        buf[*len] = 0;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f) fclose(f);
    return buf;
}

/* s as an integer, or exit with a message */
static long long int_arg(const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "error: '%s' is not an integer\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 6 || (argc == 6 && strcmp(argv[5], "full"))) {
        fprintf(stderr, "usage: %s MODEL TEXT_FILE [CTX [CHUNKS [full]]]\n", argv[0]);
        return 2;
    }
    long len = 0;
    char *text = read_file(argv[2], &len);
    if (!text) {
        fprintf(stderr, "error: cannot read %s\n", argv[2]);
        return 1;
    }
    rotquant_ppl_params p = {.size = sizeof p};
    p.ctx = argc > 3 ? int_arg(argv[3]) : 0;
    p.max_chunks = argc > 4 ? int_arg(argv[4]) : 0;
    p.protocol = argc > 5 ? ROTQUANT_PPL_FULL : ROTQUANT_PPL_LLAMACPP;
    rotquant_ppl_result r = {.size = sizeof r};
    rotquant_model *m = NULL;
    rotquant_status s = rotquant_model_open(argv[1], NULL, &m);
    if (s == ROTQUANT_OK) s = rotquant_perplexity(m, text, len, &p, &r);
    if (s == ROTQUANT_OK)
        printf("%lld tokens, %lld chunks, %lld scored\nPPL = %.4f +/- %.5f\n", (long long)r.n_tokens,
               (long long)r.n_chunks, (long long)r.n_scored, r.ppl, r.ppl_stderr);
    else
        fprintf(stderr, "error: %s\n", rotquant_last_error());
    rotquant_model_close(m);
    free(text);
    return s == ROTQUANT_OK ? 0 : 1;
}

/* simple_generate: open a model, put the prompt in its chat format (when it has one), and
 * stream the reply to stdout.
 *     simple_generate MODEL PROMPT [N_PREDICT [TEMPERATURE [SEED]]]
 * TEMPERATURE 0 (the default) is greedy decoding; otherwise top-k 40, top-p 0.95.
 * Build against an installed rotquant: cc simple_generate.c $(pkg-config --cflags --libs rotquant) */
#include <rotquant.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

/* s as a number, or exit with a message */
static float float_arg(const char *s) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) {
        fprintf(stderr, "error: '%s' is not a number\n", s);
        exit(2);
    }
    return v;
}

static int print_piece(void *user, int32_t token, const char *piece, int64_t len) {
    (void)user, (void)token;
    fwrite(piece, 1, (size_t)len, stdout);
    fflush(stdout);
    return 1; /* go on */
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 6) {
        fprintf(stderr, "usage: %s MODEL PROMPT [N_PREDICT [TEMPERATURE [SEED]]]\n", argv[0]);
        return 2;
    }
    int64_t n_predict = argc > 3 ? int_arg(argv[3]) : 64;
    rotquant_sampler_params sp = {.size = sizeof sp};
    sp.temperature = argc > 4 ? float_arg(argv[4]) : 0.0f;
    sp.top_k = 40, sp.top_p = 0.95f;
    sp.seed = argc > 5 ? (uint64_t)int_arg(argv[5]) : 42;

    rotquant_model *m = NULL;
    rotquant_context *ctx = NULL;
    rotquant_sampler *smp = NULL;
    char *chat = NULL;
    int32_t *ids = NULL;
    int64_t n_ids = 0, n_gen = 0;
    rotquant_chat_message msg = {"user", argv[2]};
    rotquant_status s = rotquant_model_open(argv[1], NULL, &m);
    if (s == ROTQUANT_OK && rotquant_chat_apply(m, &msg, 1, 1, &chat) != ROTQUANT_OK)
        fprintf(stderr, "(no chat format: %s; using the raw prompt)\n", rotquant_last_error());
    if (s == ROTQUANT_OK) s = rotquant_tokenize(m, chat ? chat : argv[2], -1, ROTQUANT_BOS_DEFAULT, 1, &ids, &n_ids);
    if (s == ROTQUANT_OK) s = rotquant_context_new(m, NULL, &ctx);
    if (s == ROTQUANT_OK) s = rotquant_sampler_new(m, &sp, &smp);
    if (s == ROTQUANT_OK) s = rotquant_generate(ctx, smp, ids, n_ids, n_predict, 0, print_piece, NULL, &n_gen);
    if (s == ROTQUANT_OK) fprintf(stderr, "\n[%lld prompt tokens, %lld generated]\n", (long long)n_ids, (long long)n_gen);
    else fprintf(stderr, "error: %s\n", rotquant_last_error());
    rotquant_free(ids);
    rotquant_free(chat);
    rotquant_sampler_free(smp);
    rotquant_context_free(ctx);
    rotquant_model_close(m);
    return s == ROTQUANT_OK ? 0 : 1;
}

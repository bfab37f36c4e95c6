/* rotquant run: generate text from a prompt, streaming the tokens to stdout. */
#include "cli.h"

#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"
#include "text/chat.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <string.h>

/* Prompt tokens per forward call of the prefill. */
#define RUN_BATCH 512
/* Context cap when the model file states no context_length. */
#define RUN_CTX_UNKNOWN 4096

static void usage(void) {
    printf("usage: rotquant run -m MODEL (-p PROMPT | -f FILE) [-n N] [--temp T] [--top-k K] [--top-p P]\n"
           "                    [--repeat-penalty X] [--repeat-last-n N] [--seed S] [--chat] [--system TEXT]\n"
           "                    [--ctx N] [--abits 16|8|4] [--a16 exact|q8] [-t N] [-q]\n"
           "  -p PROMPT      prompt text (special tokens such as <|im_start|> are recognised)\n"
           "  -f FILE        read the prompt from a file\n"
           "  -n N           tokens to generate (default 128)\n"
           "  --temp T       temperature, 0 = greedy (default 0.8)\n"
           "  --top-k K      keep the K most likely tokens, 0 = off (default 40)\n"
           "  --top-p P      nucleus sampling mass, 1 = off (default 0.95)\n"
           "  --repeat-penalty X  divide the positive logits (multiply the negative ones) of tokens seen in\n"
           "                 the last --repeat-last-n tokens (default 64) by X, 1 = off (default 1)\n"
           "  --seed S       sampling seed (default 42)\n"
           "  --chat         wrap the prompt in the model's chat template (user turn + assistant prompt)\n"
           "  --system TEXT  system message for --chat (default: the template's own, if any)\n"
           "  --ctx N        context size (default: prompt + N, at most the model's training context;\n"
           "                 a longer prompt is refused unless --ctx N is given)\n"
           "  --abits B      activations of the blocks' linear layers: 16 (float, default), 8 or 4\n"
           "  --a16 M        float activations of packed W2U weights and of the Q8_0 lm_head: exact\n"
           "                 (default) or q8 (int8 per weight group, per 32 for Q8_0, into integer\n"
           "                 kernels: faster decode)\n"
           "  -v             print how the weights are held and the memory used (stderr)\n"
           "  -q, --quiet    no settings or timing lines (only the generated text)\n"
           "  -t N           threads (default: the cores present)\n"
           "The generated text goes to stdout; timings to stderr.\n"
           "Environment: RQ_REF_LINEAR=1 dequantizes a quantized model to float (the reference path).\n");
}

typedef struct {
    const rq_tokenizer *tok;
} print_ctx;

static bool print_token(void *user, int32_t id) {
    const print_ctx *c = user;
    if (rq_tokenizer_is_eog(c->tok, id)) return false;
    int64_t len;
    const char *b = rq_tokenizer_token_bytes(c->tok, id, &len);
    if (b && len > 0) fwrite(b, 1, (size_t)len, stdout);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt_arg = NULL, *prompt_file = NULL, *system_msg = NULL;
    int64_t n_predict = 128, top_k = 40, seed = 42, ctx = 0, threads = 0, last_n = 64;
    int64_t abits = -1; /* -1: not given (the file's setting) */
    double temp = 0.8, top_p = 0.95, penalty = 1.0;
    bool chat = false, verbose = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-p") || !strcmp(a, "-f") || !strcmp(a, "--system")) {
            if (!v) return cli_fail("%s needs a value", a);
            *(a[1] == 'm' ? &model_path : a[1] == 'p' ? &prompt_arg : a[1] == 'f' ? &prompt_file : &system_msg) = v;
            i++;
        } else if (!strcmp(a, "-n")) {
            if (!cli_parse_int(a, v, 0, 1 << 24, &n_predict)) return 1;
            i++;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_parse_float(a, v, 0, 100, &temp)) return 1;
            i++;
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_parse_int(a, v, 0, INT32_MAX, &top_k)) return 1;
            i++;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_parse_float(a, v, 0, 1, &top_p)) return 1;
            i++;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!cli_parse_float(a, v, 0.01, 100, &penalty)) return 1;
            i++;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!cli_parse_int(a, v, 1, 1 << 20, &last_n)) return 1;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int(a, v, 0, INT64_MAX, &seed)) return 1;
            i++;
        } else if (!strcmp(a, "--ctx")) {
            if (!cli_parse_int(a, v, 1, 1 << 24, &ctx)) return 1;
            i++;
        } else if (!strcmp(a, "-t")) {
            if (!cli_parse_int(a, v, 0, 256, &threads)) return 1;
            i++;
        } else if (!strcmp(a, "--abits")) {
            if (!cli_parse_abits(a, v, &abits)) return 1;
            i++;
        } else if (!strcmp(a, "--a16")) {
            if (!cli_parse_a16(a, v)) return 1;
            i++;
        } else if (!strcmp(a, "-v")) {
            verbose = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else {
            return cli_fail("run: unknown argument '%s'", a);
        }
    }
    if (!model_path) return cli_fail("run: -m MODEL is required");
    if (!prompt_arg == !prompt_file) return cli_fail("run: give exactly one of -p PROMPT and -f FILE");
    if (system_msg && !chat) return cli_fail("run: --system needs --chat");
    cli_threads_set(threads);

    int rc = 1;
    rq_gguf *g = NULL;
    rq_model *m = NULL;
    rq_tokenizer *tok = NULL;
    rq_state *st = NULL;
    rq_sampler *smp = NULL;
    char *file_text = NULL, *chat_text = NULL;
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    if (rq_model_open(model_path, &g) != RQ_OK || rq_model_load(g, &m) != RQ_OK ||
        rq_tokenizer_load(g, &tok) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (abits >= 0 && rq_model_set_act_bits(m, (int)abits) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (verbose) {
        char desc[256];
        fprintf(stderr, "model %s: %s; RSS after load %.1f MiB\n", model_path, rq_model_describe(m, desc, sizeof desc),
                (double)rq_rss_bytes() / 1048576.0);
    }
    const char *prompt = prompt_arg;
    int64_t prompt_len = prompt_arg ? (int64_t)strlen(prompt_arg) : 0;
    if (prompt_file) {
        if (!cli_read_file(prompt_file, &file_text, &prompt_len)) goto done;
        prompt = file_text;
    }
    if (chat) {
        if (memchr(prompt, 0, (size_t)prompt_len)) {
            cli_fail("run: the prompt contains a NUL byte");
            goto done;
        }
        if (rq_chat_format(g, system_msg, prompt, &chat_text) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
        prompt = chat_text;
        prompt_len = (int64_t)strlen(chat_text);
    }
    if (rq_tokenizer_encode(tok, prompt, prompt_len, rq_tokenizer_add_bos_default(tok), true, &ids, &n_ids) !=
        RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (n_ids == 0) {
        cli_fail("run: the prompt is empty");
        goto done;
    }
    /* the default context is prompt + N, capped at the model's training context (a prompt
     * file or a chat template's system message can be megabytes); --ctx goes beyond */
    if (ctx == 0) {
        int64_t limit = m->cfg.n_ctx_train > 0 ? m->cfg.n_ctx_train : RUN_CTX_UNKNOWN;
        if (n_ids >= limit) {
            cli_fail("run: the prompt has %lld tokens, the model's context is %lld%s (--ctx N to go beyond it)",
                     (long long)n_ids, (long long)limit, m->cfg.n_ctx_train > 0 ? "" : " (the file gives none)");
            goto done;
        }
        ctx = n_ids + (n_predict > 0 ? n_predict : 1);
        if (ctx > limit) ctx = limit;
    }
    if (n_ids >= ctx) {
        cli_fail("run: the prompt has %lld tokens; --ctx %lld leaves no room to generate", (long long)n_ids,
                 (long long)ctx);
        goto done;
    }
    rq_sampler_params sp = {.temperature = (float)temp, .top_k = (int32_t)top_k, .top_p = (float)top_p,
                            .seed = (uint64_t)seed, .repeat_penalty = (float)penalty,
                            .repeat_last_n = (int32_t)last_n};
    if (rq_state_new(m, ctx, n_ids < RUN_BATCH ? n_ids : RUN_BATCH, false, &st) != RQ_OK ||
        rq_sampler_new(&sp, m->cfg.n_vocab, &smp) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (!quiet) {
        char don[320];
        int64_t kvb = rq_state_kv_bytes_per_token(st);
        const rq_model_config *mc = &m->cfg;
        int64_t kv_f32 = 2 * mc->n_layer * mc->n_head_kv * mc->head_dim * (int64_t)sizeof(float);
        fprintf(stderr, "run: %s; KV cache %lld bytes/token (float32: %lld), %.2f MiB for %lld positions\n",
                rq_online_describe(&m->online.cfg, don, sizeof don), (long long)kvb, (long long)kv_f32,
                (double)(kvb * ctx) / 1048576.0, (long long)ctx);
    }
    print_ctx pc = {.tok = tok};
    rq_generate_stats gs;
    if (rq_generate(st, ids, n_ids, n_predict, smp, print_token, &pc, &gs) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    printf("\n");
    fflush(stdout);
    if (!quiet)
        fprintf(stderr, "prompt: %lld tokens in %.3f s (%.1f tokens/s)\n", (long long)gs.n_prompt, gs.t_prompt,
                gs.t_prompt > 0 ? (double)gs.n_prompt / gs.t_prompt : 0.0);
    if (!quiet)
        fprintf(stderr, "generation: %lld tokens, %lld decode steps in %.3f s (%.1f tokens/s); %d threads\n",
                (long long)gs.n_generated, (long long)gs.n_decoded, gs.t_generate,
                gs.t_generate > 0 ? (double)gs.n_decoded / gs.t_generate : 0.0, rq_threads_get());
    if (verbose)
        fprintf(stderr, "memory: RSS %.1f MiB, peak RSS %.1f MiB\n", (double)rq_rss_bytes() / 1048576.0,
                (double)rq_peak_rss_bytes() / 1048576.0);
    rc = 0;
done:
    rq_sampler_free(smp);
    rq_state_free(st);
    rq_free(ids);
    rq_free(chat_text);
    rq_free(file_text);
    rq_tokenizer_free(tok);
    rq_model_free(m);
    rq_gguf_close(g);
    return rc;
}

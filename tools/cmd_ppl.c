/* rotquant ppl: perplexity of a text file (src/eval/ppl.h). */
#include "cli.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "eval/ppl.h"
#include "format/abits.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    printf("usage: rotquant ppl -m MODEL (-f TEXT | --tokens-file IDS) [--protocol llamacpp|full] [--ctx N]\n"
           "                    [--chunks N] [--abits 16|8|4] [--a16 exact|q8] [-t N] [-q|--quiet]\n"
           "  -f TEXT            text file, tokenized with the model's tokenizer (llamacpp: one trailing\n"
           "                     newline dropped first, as llama-perplexity's -f does)\n"
           "  --tokens-file IDS  already tokenized ids (decimal, separated by blanks/commas/newlines)\n"
           "  --protocol P       llamacpp (default): llama-perplexity's windows, second half scored;\n"
           "                     full: non-overlapping windows, every token after the first scored\n"
           "  --ctx N            window length (default 512 for llamacpp, 2048 for full)\n"
           "  --chunks N         evaluate at most N windows\n"
           "  --abits B          activations of the blocks' linear layers: 16 (float, default), 8 or 4\n"
           "                     (int8/int4 per token; integer kernels for packed W2U/W2L/W4U weights)\n"
           "  --a16 M            float activations of packed W2U weights and of the Q8_0 lm_head:\n"
           "                     exact (float kernels, default) or q8 (int8 per weight group, per\n"
           "                     32 for Q8_0, into integer kernels, as llama.cpp does: faster\n"
           "                     decode, see the README for the PPL change)\n"
           "Environment: RQ_REF_LINEAR=1 dequantizes a quantized model to float (the reference path).\n"
           "  -t N               threads (default: the cores present)\n"
           "  -q, --quiet        no progress lines\n");
}

int cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *ids_path = NULL;
    int64_t ctx = 0, chunks = 0, threads = 0;
    int64_t abits = -1; /* -1: not given (the file's setting) */
    rq_ppl_protocol proto = RQ_PPL_LLAMACPP;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-f") || !strcmp(a, "--tokens-file")) {
            if (!v) return cli_fail("%s needs a value", a);
            *(a[1] == 'm' ? &model_path : a[1] == 'f' ? &text_path : &ids_path) = v;
            i++;
        } else if (!strcmp(a, "--protocol")) {
            if (!v) return cli_fail("--protocol needs a value");
            if (!strcmp(v, "llamacpp")) proto = RQ_PPL_LLAMACPP;
            else if (!strcmp(v, "full")) proto = RQ_PPL_FULL;
            else return cli_fail("--protocol: '%s' is not llamacpp or full", v);
            i++;
        } else if (!strcmp(a, "--ctx")) {
            if (!cli_parse_int(a, v, 4, 1 << 20, &ctx)) return 1;
            i++;
        } else if (!strcmp(a, "--chunks")) {
            if (!cli_parse_int(a, v, 1, INT64_C(1) << 40, &chunks)) return 1;
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
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else {
            return cli_fail("ppl: unknown argument '%s'", a);
        }
    }
    if (!model_path) return cli_fail("ppl: -m MODEL is required");
    if (!text_path == !ids_path) return cli_fail("ppl: give exactly one of -f TEXT and --tokens-file IDS");
    if (ctx == 0) ctx = proto == RQ_PPL_LLAMACPP ? 512 : 2048;
    if (rq_mpi_rank() != 0) quiet = true; /* one rank reports */
    cli_threads_set(threads);

    int rc = 1;
    rq_gguf *g = NULL;
    rq_model *m = NULL;
    rq_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    int64_t n_ids = 0, text_len = 0;
    /* read the input first: a missing file fails before the model loads */
    if (!cli_read_file(text_path ? text_path : ids_path, &text, &text_len)) goto done;
    double t_load = rq_time_now();
    if (rq_model_open(model_path, &g) != RQ_OK || rq_model_load(g, &m) != RQ_OK ||
        rq_tokenizer_load(g, &tok) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    t_load = rq_time_now() - t_load;
    if (!cli_mpi_same_model(g, model_path)) goto done;
    if (abits >= 0 && rq_model_set_act_bits(m, (int)abits) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    bool add_bos = rq_tokenizer_add_bos_default(tok);
    int32_t bos = rq_tokenizer_bos(tok);
    if (text_path) {
        /* as llama-perplexity: its -f drops one trailing newline; BOS at the start iff the
         * model adds one; special tokens tokenized as text */
        if (proto == RQ_PPL_LLAMACPP && text_len > 0 && text[text_len - 1] == '\n') text[--text_len] = 0;
        double t = rq_time_now();
        if (rq_tokenizer_encode(tok, text, text_len, add_bos, false, &ids, &n_ids) != RQ_OK) {
            cli_fail("%s: %s", text_path, rq_last_error());
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "tokenized %s: %lld bytes -> %lld tokens in %.2f s\n", text_path, (long long)text_len,
                    (long long)n_ids, rq_time_now() - t);
    } else {
        if (!cli_parse_ids(ids_path, text, &ids, &n_ids)) goto done;
    }
    rq_ppl_params p = {.protocol = proto, .ctx = ctx, .max_chunks = chunks,
                       .bos = proto == RQ_PPL_LLAMACPP && add_bos ? bos : -1, .progress = !quiet};
    rq_qinfo qi;
    if (rq_qinfo_read(g, &qi) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    char wakv[64], desc[512];
    if (!quiet) {
        fprintf(stderr, "model %s: %lld params, loaded in %.2f s; %d threads%s\n  %s\n", model_path,
                (long long)rq_model_n_params(m), t_load, rq_threads_get(),
                rq_mpi_size() > 1 ? " per rank" : "", rq_model_describe(m, desc, sizeof desc));
        if (qi.present) fprintf(stderr, "quantization: %s\n", rq_qinfo_describe(&qi, desc, sizeof desc));
    }
    /* the configuration in force (--abits may override the file's) */
    qi.abits = (unsigned)rq_bits_from_runtime(m->online.cfg.act.bits);
    qi.kvbits = (unsigned)rq_bits_from_runtime(m->online.cfg.kv_bits);
    rq_ppl_result r;
    if (rq_ppl_eval(m, ids, n_ids, &p, &r) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    printf("protocol %s, ctx %lld, %s: %lld chunks, %lld tokens scored\n",
           proto == RQ_PPL_LLAMACPP ? "llamacpp" : "full", (long long)ctx, rq_qinfo_short(&qi, wakv, sizeof wakv),
           (long long)r.n_chunks, (long long)r.n_scored);
    printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    printf("time %.2f s, %.1f tokens/s, peak RSS %.0f MiB", r.seconds, (double)r.n_evaluated / r.seconds,
           (double)rq_peak_rss_bytes() / (1024.0 * 1024.0));
    if (rq_mpi_size() > 1) printf(" (rank 0; %d ranks)", rq_mpi_size());
    printf("\n");
    rc = 0;
done:
    rq_free(ids);
    rq_free(text);
    rq_tokenizer_free(tok);
    rq_model_free(m);
    rq_gguf_close(g);
    return rc;
}

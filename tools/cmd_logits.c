/* rotquant logits: a debugging/test command (not listed in the help): run the forward
 * pass on given token ids, write every position's logits as raw float32, and/or print a
 * greedy continuation. tests/sh_reference.sh compares it with tests/ref/llama_ref.py. */
#include "cli.h"

#include "base/status.h"
#include "io/atomic_file.h"
#include "model/model.h"

#include <stdio.h>
#include <string.h>

/* Print `greedy` greedy next-token ids after the prompt whose last logits row is `last`
 * (the state holds positions 0..n-1). */
static bool greedy_continue(rq_state *st, const float *last, int64_t n, int64_t greedy) {
    int64_t V = st->model->cfg.n_vocab;
    for (int64_t g = 0; g < greedy; g++) {
        int32_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (last[v] > last[best]) best = (int32_t)v;
        printf("%s%d", g ? " " : "", best);
        if (g + 1 == greedy) break;
        if (rq_model_forward(st, &best, 1, n + g, RQ_LOGITS_LAST) != RQ_OK) return false;
        last = st->logits;
    }
    printf("\n");
    return true;
}

static void usage(void) {
    printf("usage: rotquant logits -m MODEL (--ids 1,2,3 | --ids-file FILE) [-o OUT.f32] [--greedy N]\n"
           "                       [--batch B] [-t N] [-q]\n"
           "       rotquant logits -m MODEL --prompts FILE --greedy N [-t N]\n"
           "  --prompts FILE  one prompt of token ids per line: prints N greedy ids per prompt, a line each\n"
           "  -o FILE       write the logits of every position: raw little-endian float32 [n_ids, n_vocab]\n"
           "  --greedy N    then print N greedy next-token ids (space separated) on stdout\n"
           "  --batch B     feed the ids B at a time (default: all in one batch; 1 = token by token)\n"
           "  -t N          threads (default: the cores present)\n"
           "  -q, --quiet   accepted as by every command (logits prints no progress)\n");
}

static int run_prompts(const char *model_path, const char *prompts, int64_t greedy, int64_t threads) {
    char *text;
    int64_t len;
    if (!cli_read_file(prompts, &text, &len)) return 1;
    cli_threads_set(threads);
    rq_model *m = NULL;
    rq_state *st = NULL;
    int rc = 1;
    if (rq_model_load_file(model_path, &m) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        int32_t *ids;
        int64_t n;
        if (!cli_parse_ids(prompts, line, &ids, &n)) goto done;
        rq_state_free(st);
        st = NULL;
        bool ok = rq_state_new(m, n + greedy, n, false, &st) == RQ_OK &&
                  rq_model_forward(st, ids, n, 0, RQ_LOGITS_LAST) == RQ_OK && greedy_continue(st, st->logits, n, greedy);
        rq_free(ids);
        if (!ok) {
            cli_fail_status();
            goto done;
        }
    }
    rc = 0;
done:
    rq_state_free(st);
    rq_model_free(m);
    rq_free(text);
    return rc;
}

int cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *out_path = NULL, *ids_arg = NULL, *ids_file = NULL, *prompts = NULL;
    int64_t greedy = 0, batch = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m")) {
            if (!v) return cli_fail("-m needs a value");
            model_path = v, i++;
        } else if (!strcmp(a, "-o")) {
            if (!v) return cli_fail("-o needs a value");
            out_path = v, i++;
        } else if (!strcmp(a, "--ids")) {
            if (!v) return cli_fail("--ids needs a value");
            ids_arg = v, i++;
        } else if (!strcmp(a, "--ids-file")) {
            if (!v) return cli_fail("--ids-file needs a value");
            ids_file = v, i++;
        } else if (!strcmp(a, "--prompts")) {
            if (!v) return cli_fail("--prompts needs a value");
            prompts = v, i++;
        } else if (!strcmp(a, "--greedy")) {
            if (!cli_parse_int(a, v, 0, 1 << 20, &greedy)) return 1;
            i++;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int(a, v, 1, 1 << 24, &batch)) return 1;
            i++;
        } else if (!strcmp(a, "-t")) {
            if (!cli_parse_int(a, v, 0, 256, &threads)) return 1;
            i++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            /* logits prints no progress: accepted as by every command */
        } else {
            return cli_fail("logits: unknown argument '%s'", a);
        }
    }
    if (!model_path) return cli_fail("logits: -m MODEL is required");
    if (prompts) {
        if (ids_arg || ids_file || out_path) return cli_fail("logits: --prompts excludes --ids, --ids-file and -o");
        if (greedy < 1) return cli_fail("logits: --prompts needs --greedy N");
        return run_prompts(model_path, prompts, greedy, threads);
    }
    if (!ids_arg == !ids_file) return cli_fail("logits: give exactly one of --ids and --ids-file");
    int32_t *ids = NULL;
    int64_t n = 0;
    if (ids_file) {
        char *text;
        int64_t len;
        if (!cli_read_file(ids_file, &text, &len)) return 1;
        bool ok = cli_parse_ids(ids_file, text, &ids, &n);
        rq_free(text);
        if (!ok) return 1;
    } else if (!cli_parse_ids("--ids", ids_arg, &ids, &n)) {
        return 1;
    }
    if (!cli_check_outputs(&out_path, 1)) {
        rq_free(ids);
        return 1;
    }
    cli_threads_set(threads);

    int rc = 1;
    rq_model *m = NULL;
    rq_state *st = NULL;
    rq_atomic_file af = {0};
    if (rq_model_load_file(model_path, &m) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    int64_t B = batch > 0 ? (batch < n ? batch : n) : n;
    if (rq_state_new(m, n + greedy, B, true, &st) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (out_path && rq_atomic_file_open(&af, out_path) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    int64_t V = m->cfg.n_vocab;
    for (int64_t p = 0; p < n; p += B) {
        int64_t k = n - p < B ? n - p : B;
        if (rq_model_forward(st, ids + p, k, p, RQ_LOGITS_ALL) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
        if (af.f && rq_atomic_file_write(&af, st->logits, (size_t)(k * V) * sizeof(float)) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
    }
    if (af.f && rq_atomic_file_commit(&af) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    /* greedy continuation: last logits row of the prompt, then one token at a time */
    if (greedy && !greedy_continue(st, st->logits + ((n - 1) % B) * V, n, greedy)) {
        cli_fail_status();
        goto done;
    }
    rc = 0;
done:
    rq_atomic_file_abort(&af);
    rq_state_free(st);
    rq_model_free(m);
    rq_free(ids);
    return rc;
}

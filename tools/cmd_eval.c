/* rotquant eval: zero-shot task accuracy (lm-evaluation-harness scoring, docs/tasks.md). */
#include "cli.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "eval/tasks.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "model/model.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DATA "../shared/data/tasks"

static void usage(void) {
    printf("usage: rotquant eval -m MODEL --tasks LIST [--limit N] [--data DIR] [--json FILE] [-t N]\n"
           "  --tasks LIST  comma-separated, from arc_easy,arc_challenge,piqa,winogrande,lambada,boolq;\n"
           "                'all' = all six\n"
           "  --limit N     evaluate the first N items of each task (default: all)\n"
           "  --data DIR    task files (default %s; layout in its README.md)\n"
           "  --json FILE   also write the results as JSON\n"
           "  --batch N     tokens per forward batch (default 512)\n"
           "  --max-len N   the harness's max_length: longer inputs lose context on the left\n"
           "                (default: the model's training context)\n"
           "  -t N          threads (default: the cores present)\n"
           "  -q, --quiet   no progress lines\n"
           "Prompts and metrics follow lm-evaluation-harness; see docs/tasks.md.\n",
           DEFAULT_DATA);
}

/* --dump FILE (testing): one line per request, tab-separated:
 *   task  item  request  loglik  greedy  context-ids  continuation-ids */
static void dump_request(void *user, const rq_task *task, int64_t item, int req, const int32_t *ctx, int64_t n_ctx,
                         const int32_t *cont, int64_t n_cont, double ll, bool greedy) {
    /* a failed write is remembered by the writer and fails its commit */
    rq_atomic_file *f = user;
    rq_atomic_file_printf(f, "%s\t%lld\t%d\t%.9f\t%d\t", rq_task_name(task->id), (long long)item, req, ll,
                          greedy ? 1 : 0);
    for (int64_t i = 0; i < n_ctx; i++) rq_atomic_file_printf(f, "%s%d", i ? " " : "", ctx[i]);
    rq_atomic_file_printf(f, "\t");
    for (int64_t i = 0; i < n_cont; i++) rq_atomic_file_printf(f, "%s%d", i ? " " : "", cont[i]);
    rq_atomic_file_printf(f, "\n");
}

static void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static bool write_json(const char *path, const char *model, int64_t limit, const rq_task_result *res, int n,
                       double total) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return cli_fail("cannot write '%s'", path), false;
    fprintf(f, "{\n  \"model\": ");
    json_escape(f, model);
    fprintf(f, ",\n  \"limit\": %lld,\n  \"threads\": %d,\n  \"total_seconds\": %.3f,\n  \"tasks\": {", (long long)limit,
            rq_threads_get(), total);
    for (int i = 0; i < n; i++) {
        const rq_task_result *r = &res[i];
        fprintf(f, "%s\n    \"%s\": {\"n\": %lld, \"acc\": %.6f, \"acc_stderr\": %.6f", i ? "," : "",
                rq_task_name(r->id), (long long)r->n_items, r->acc, r->acc_stderr);
        if (r->has_acc_norm) fprintf(f, ", \"acc_norm\": %.6f, \"acc_norm_stderr\": %.6f", r->acc_norm, r->acc_norm_stderr);
        if (r->has_ppl) fprintf(f, ", \"perplexity\": %.6f, \"perplexity_stderr\": %.6f", r->ppl, r->ppl_stderr);
        fprintf(f,
                ", \"requests\": %lld, \"tokens\": %lld, \"tokens_without_sharing\": %lld, \"truncated\": %lld, "
                "\"seconds\": %.3f, \"seconds_tokenize\": %.3f, \"items_per_s\": %.3f}",
                (long long)r->n_requests, (long long)r->n_tokens, (long long)r->n_tokens_flat, (long long)r->n_truncated,
                r->seconds, r->seconds_tokenize, r->seconds > 0 ? (double)r->n_items / r->seconds : 0.0);
    }
    fprintf(f, "\n  }\n}\n");
    if (fclose(f) != 0) {
        free(buf);
        return cli_fail("cannot write '%s': out of memory", path), false;
    }
    rq_atomic_file af;
    rq_status s = rq_atomic_file_open(&af, path);
    if (s == RQ_OK) {
        s = rq_atomic_file_write(&af, buf, len);
        if (s == RQ_OK) s = rq_atomic_file_commit(&af);
        else rq_atomic_file_abort(&af);
    }
    free(buf);
    if (s != RQ_OK) return cli_fail_status(), false;
    return true;
}

static bool parse_tasks(const char *list, rq_task_id *ids, int *n) {
    *n = 0;
    if (!strcmp(list, "all")) {
        for (int i = 0; i < RQ_TASK_COUNT; i++) ids[(*n)++] = (rq_task_id)i;
        return true;
    }
    char *copy = rq_strdup(list), *save = NULL;
    bool ok = true;
    for (char *t = strtok_r(copy, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
        rq_task_id id;
        if (rq_task_from_name(t, &id) != RQ_OK) {
            cli_fail("--tasks: %s", rq_last_error());
            ok = false;
            break;
        }
        for (int k = 0; k < *n; k++)
            if (ids[k] == id) {
                cli_fail("--tasks: '%s' given twice", t);
                ok = false;
            }
        if (ok) ids[(*n)++] = id;
    }
    rq_free(copy);
    if (ok && *n == 0) {
        cli_fail("--tasks: no task given");
        ok = false;
    }
    return ok;
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *tasks_arg = NULL, *data = DEFAULT_DATA, *json_path = NULL, *dump_path = NULL;
    int64_t limit = 0, threads = 0, batch = 0, max_len = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--tasks") || !strcmp(a, "--data") || !strcmp(a, "--json") ||
                   !strcmp(a, "--dump")) {
            if (!v) return cli_fail("%s needs a value", a);
            if (!strcmp(a, "-m")) model_path = v;
            else if (!strcmp(a, "--tasks")) tasks_arg = v;
            else if (!strcmp(a, "--data")) data = v;
            else if (!strcmp(a, "--json")) json_path = v;
            else dump_path = v;
            i++;
        } else if (!strcmp(a, "--limit")) {
            if (!cli_parse_int(a, v, 1, INT64_C(1) << 40, &limit)) return 1;
            i++;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int(a, v, 1, 1 << 20, &batch)) return 1;
            i++;
        } else if (!strcmp(a, "--max-len")) {
            if (!cli_parse_int(a, v, 1, 1 << 24, &max_len)) return 1;
            i++;
        } else if (!strcmp(a, "-t")) {
            if (!cli_parse_int(a, v, 0, 256, &threads)) return 1;
            i++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else {
            return cli_fail("eval: unknown argument '%s'", a);
        }
    }
    if (!model_path) return cli_fail("eval: -m MODEL is required");
    if (!tasks_arg) return cli_fail("eval: --tasks LIST is required");
    rq_task_id ids[RQ_TASK_COUNT];
    int n_tasks;
    if (!parse_tasks(tasks_arg, ids, &n_tasks)) return 1;
    const char *outputs[] = {json_path, dump_path};
    if (rq_mpi_rank() == 0 && !cli_check_outputs(outputs, 2)) return 1;
    cli_threads_set(threads);
    if (rq_mpi_rank() != 0) quiet = true; /* one rank reports */

    int rc = 1;
    double t0 = rq_time_now();
    rq_task *tasks[RQ_TASK_COUNT] = {0};
    rq_gguf *g = NULL;
    rq_model *m = NULL;
    rq_tokenizer *tok = NULL;
    rq_atomic_file dump_af = {0}, *dump = NULL;
    rq_task_result res[RQ_TASK_COUNT];
    /* every task file is read and checked before the model is loaded */
    for (int i = 0; i < n_tasks; i++)
        if (rq_task_load(ids[i], data, limit, &tasks[i]) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
    if (rq_model_open(model_path, &g) != RQ_OK || rq_tokenizer_load(g, &tok) != RQ_OK || rq_model_load(g, &m) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (!cli_mpi_same_model(g, model_path)) goto done;
    rq_gguf_close(g);
    g = NULL;
    if (dump_path && rq_mpi_rank() == 0) { /* files: rank 0 */
        if (rq_atomic_file_open(&dump_af, dump_path) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
        dump = &dump_af;
    }
    double t_load = rq_time_now() - t0;
    if (!quiet)
        fprintf(stderr, "eval: %s, %d threads, loaded in %.1f s\n", model_path, rq_threads_get(), t_load);
    printf("%-14s %6s %8s %8s %9s %8s %10s %9s %9s\n", "task", "items", "acc", "±stderr", "acc_norm", "±stderr",
           "ppl", "items/s", "time(s)");
    double t_eval = rq_time_now();
    int64_t total_items = 0, total_tokens = 0, total_flat = 0;
    for (int i = 0; i < n_tasks; i++) {
        rq_task_eval_params p = {.batch_tokens = batch, .max_len = max_len, .progress = !quiet,
                                 .on_request = dump ? dump_request : NULL, .user = dump};
        if (rq_task_eval(m, tok, tasks[i], &p, &res[i]) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
        const rq_task_result *r = &res[i];
        char norm[32] = "-", norm_se[32] = "-", ppl[32] = "-";
        if (r->has_acc_norm) {
            snprintf(norm, sizeof norm, "%.4f", r->acc_norm);
            snprintf(norm_se, sizeof norm_se, "%.4f", r->acc_norm_stderr);
        }
        if (r->has_ppl) snprintf(ppl, sizeof ppl, "%.3f", r->ppl);
        printf("%-14s %6lld %8.4f %8.4f %9s %8s %10s %9.2f %9.1f\n", rq_task_name(r->id), (long long)r->n_items,
               r->acc, r->acc_stderr, norm, norm_se, ppl, r->seconds > 0 ? (double)r->n_items / r->seconds : 0.0,
               r->seconds);
        fflush(stdout);
        if (r->n_truncated && !quiet)
            fprintf(stderr, "eval: %s: %lld requests truncated on the left to --max-len\n", rq_task_name(r->id),
                    (long long)r->n_truncated);
        total_items += r->n_items;
        total_tokens += r->n_tokens;
        total_flat += r->n_tokens_flat;
    }
    double total = rq_time_now() - t_eval;
    printf("suite: %lld items in %.1f s (%.2f items/s); %lld tokens through the model (%lld without context "
           "sharing); load %.1f s\n",
           (long long)total_items, total, (double)total_items / total, (long long)total_tokens, (long long)total_flat,
           t_load);
    if (dump && rq_atomic_file_commit(dump) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (json_path && rq_mpi_rank() == 0 && !write_json(json_path, model_path, limit, res, n_tasks, total)) goto done;
    rc = 0;
done:
    rq_atomic_file_abort(&dump_af);
    for (int i = 0; i < n_tasks; i++) rq_task_free(tasks[i]);
    rq_model_free(m);
    rq_tokenizer_free(tok);
    rq_gguf_close(g);
    return rc;
}

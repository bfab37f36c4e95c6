#include "cli.h"

#include "base/cpu.h"
#include "base/mpi.h"
#include "base/pool.h"
#include "base/status.h"
#include "format/abits.h"
#include "io/atomic_file.h"
#include "io/file.h"
#include "io/gguf_hash.h"
#include "kernels/gemv.h"
#include "model/blas.h"
#include "quant/pipeline.h"

#include <cblas.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *fmt, ...) {
    /* escaped (base/status.h): a message may quote a file's strings */
    char raw[4096], esc[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (rq_mpi_size() > 1) /* which rank failed (tools/rotquant.c then ends the job) */
        fprintf(stderr, "rotquant: error: rank %d: %s\n", rq_mpi_rank(), rq_escape(raw, strlen(raw), esc, sizeof esc));
    else
        fprintf(stderr, "rotquant: error: %s\n", rq_escape(raw, strlen(raw), esc, sizeof esc));
    return 1;
}

int cli_fail_status(void) { return cli_fail("%s", rq_last_error()); }

bool cli_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s) {
        cli_fail("%s needs a value", opt);
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail("%s: '%s' is not an integer in [%lld, %lld]", opt, s, (long long)lo, (long long)hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_abits(const char *opt, const char *s, int64_t *out) {
    if (!cli_parse_int(opt, s, 0, 64, out)) return false;
    if (rq_abits_check(*out, opt) != RQ_OK) return !cli_fail_status();
    return true;
}

bool cli_parse_a16(const char *opt, const char *s) {
    rq_lowbit_tuning t;
    rq_lowbit_tuning_get(&t);
    if (s && !strcmp(s, "exact")) t.a16 = RQ_LOWBIT_A16_EXACT;
    else if (s && !strcmp(s, "q8")) t.a16 = RQ_LOWBIT_A16_Q8;
    else return !cli_fail("%s: '%s' is not exact or q8", opt, s ? s : "(missing)");
    rq_lowbit_tuning_set(&t);
    return true;
}

bool cli_parse_kvbits(const char *opt, const char *s, int64_t *out) {
    if (!cli_parse_int(opt, s, 0, 64, out)) return false;
    if (rq_kvbits_check(*out, opt) != RQ_OK) return !cli_fail_status();
    return true;
}

bool cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) {
        cli_fail("%s needs a value", opt);
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_r1_route(const char *s, int *out) {
    if (!strcmp(s, "residual")) *out = RQ_R1_RESIDUAL;
    else if (!strcmp(s, "linear")) *out = RQ_R1_LINEAR;
    else if (!strcmp(s, "auto")) *out = RQ_R1_AUTO;
    else return !cli_fail("--r1-route: '%s' is not auto, residual or linear", s);
    return true;
}

struct cli_quant_args cli_quant_args_default(rq_quant_opts *o) {
    return (struct cli_quant_args){.o = o, .rotate = "gsr", .rotate2 = "none", .compose = "none", .method = "gptq"};
}

int cli_parse_quant_opt(int argc, char **argv, int *i, struct cli_quant_args *qa) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    rq_quant_opts *o = qa->o;
#define VAL() (v ? ((*i)++, v) : NULL)
    if (!strcmp(a, "--rotate")) { if (!(qa->rotate = VAL())) return -cli_fail("--rotate needs a kind"); }
    else if (!strcmp(a, "--rotate2")) { if (!(qa->rotate2 = VAL())) return -cli_fail("--rotate2 needs a kind"); }
    else if (!strcmp(a, "--rotation-file")) { if (!(o->rotation_file = VAL())) return -cli_fail("--rotation-file needs a file"); }
    else if (!strcmp(a, "--compose")) { if (!(qa->compose = VAL())) return -cli_fail("--compose needs a kind"); }
    else if (!strcmp(a, "--method")) { if (!(qa->method = VAL())) return -cli_fail("--method needs a value"); }
    else if (!strcmp(a, "--calib")) { if (!(o->calib = VAL())) return -cli_fail("--calib needs a value"); }
    else if (!strcmp(a, "--calib-ids")) { if (!(o->calib_ids = VAL())) return -cli_fail("--calib-ids needs a file"); }
    else if (!strcmp(a, "--calib-save")) { if (!(o->calib_save = VAL())) return -cli_fail("--calib-save needs a file"); }
    else if (!strcmp(a, "--block")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o->block)) return -1; }
    else if (!strcmp(a, "--block2")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o->block2)) return -1; }
    else if (!strcmp(a, "--calib-n")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &qa->calib_n)) return -1; }
    else if (!strcmp(a, "--calib-len")) { if (!cli_parse_int(a, VAL(), 2, 1 << 20, &qa->calib_len)) return -1; }
    else if (!strcmp(a, "--seed")) { if (!cli_parse_int(a, VAL(), 0, INT64_MAX, &qa->seed)) return -1; }
    else if (!strcmp(a, "-t")) { if (!cli_parse_int(a, VAL(), 1, 1024, &qa->threads)) return -1; }
    else if (!strcmp(a, "--damp")) { if (!cli_parse_float(a, VAL(), 0, 10, &o->damp)) return -1; }
    else if (!strcmp(a, "--hessian-shrink")) { if (!cli_parse_float(a, VAL(), 0, 1, &o->hshrink)) return -1; }
    else if (!strcmp(a, "--act-order")) o->act_order = 1;
    else if (!strcmp(a, "--no-act-order")) o->act_order = 0;
    else if (!strcmp(a, "--fit-importance")) o->fit_importance = 1;
    else if (!strcmp(a, "--no-fit-importance")) o->fit_importance = 0;
    else return 0;
#undef VAL
    return 1;
}

bool cli_quant_args_finish(const struct cli_quant_args *qa) {
    rq_quant_opts *o = qa->o;
    if (!strcmp(qa->method, "gptq")) o->method = RQ_PTQ_GPTQ;
    else if (!strcmp(qa->method, "rtn")) o->method = RQ_PTQ_RTN;
    else return !cli_fail("--method: '%s' is not rtn or gptq", qa->method);
    rq_rot_kind k2 = RQ_ROT_NONE;
    if (rq_rot_kind_parse(qa->rotate, &o->rotate) != RQ_OK ||
        (strcmp(qa->rotate2, "auto") && rq_rot_kind_parse(qa->rotate2, &k2) != RQ_OK) ||
        rq_rot_kind_parse(qa->compose, &o->compose) != RQ_OK)
        return !cli_fail_status();
    o->rotate2 = strcmp(qa->rotate2, "auto") ? (int)k2 : -1;
    o->calib_n = qa->calib_n, o->calib_len = qa->calib_len, o->seed = (uint64_t)qa->seed;
    return true;
}

int cmd_version(int argc, char **argv) {
    const char *blas = rq_blas_select_kernels();
    printf("rotquant %s (kernels: %s; OpenBLAS: %s)\n", RQ_VERSION, rq_cpu_level_name(rq_cpu_level_get()), blas);
    return 0;
}

void cli_threads_set(int64_t n) {
    rq_blas_select_kernels();
    if (n == 0 && rq_mpi_local_size() > 1) { /* the cores shared by the ranks on this machine */
        rq_threads_set(0);
        n = rq_threads_get() / rq_mpi_local_size();
        if (n < 1) n = 1;
    }
    rq_threads_set((int)n);
    openblas_set_num_threads(rq_threads_get());
}

bool cli_parse_ids(const char *opt, const char *s, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    if (!s) {
        cli_fail("%s needs a value", opt);
        return false;
    }
    int64_t cap = 16, cnt = 0;
    int32_t *v = rq_xalloc(cap * (int64_t)sizeof(int32_t));
    const char *p = s;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX ||
            (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
            cli_fail("%s: '%.20s' is not a token id", opt, p);
            rq_free(v);
            return false;
        }
        if (cnt == cap) {
            int32_t *w = rq_xalloc(2 * cap * (int64_t)sizeof(int32_t));
            memcpy(w, v, (size_t)cnt * sizeof(int32_t));
            rq_free(v);
            v = w;
            cap *= 2;
        }
        v[cnt++] = (int32_t)x;
        p = end;
    }
    if (cnt == 0) {
        cli_fail("%s: no token ids given", opt);
        rq_free(v);
        return false;
    }
    *ids = v;
    *n = cnt;
    return true;
}

bool cli_read_file(const char *path, char **data, int64_t *len) {
    if (rq_file_read(path, data, len) == RQ_OK) return true;
    cli_fail_status();
    return false;
}

bool cli_check_outputs(const char *const *paths, int n) {
    for (int i = 0; i < n; i++) {
        if (!paths[i]) continue;
        for (int j = 0; j < i; j++)
            if (paths[j] && !strcmp(paths[i], paths[j])) {
                cli_fail("'%s' is given as two outputs", paths[i]);
                return false;
            }
        if (rq_atomic_file_check(paths[i]) != RQ_OK) {
            cli_fail_status();
            return false;
        }
    }
    return true;
}

bool cli_read_ids(const char *path, int32_t **ids, int64_t *n) {
    char *text;
    int64_t len;
    if (!cli_read_file(path, &text, &len)) return false;
    bool ok = cli_parse_ids(path, text, ids, n);
    rq_free(text);
    return ok;
}

bool cli_mpi_same_model(const rq_gguf *g, const char *path) {
    if (rq_mpi_size() == 1) return true;
    char what[600];
    snprintf(what, sizeof what, "the model %s", path);
    if (rq_mpi_check_same(rq_gguf_hash(g), what) == RQ_OK) return true;
    cli_fail_status();
    return false;
}

/* Learned rotations stored in a file (rotate/learned.h). */
#include "rotate/learned.h"

#include "format/format.h"
#include "io/gguf.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* largest R1 a file may declare (the dense matrix is allocated from it) */
#define MAX_N (1 << 15)

double rq_rot_learned_orth_error(const float *r, int64_t n) {
    double *d = rq_xalloc(n * n * (int64_t)sizeof(double)), *p = rq_xalloc(n * n * (int64_t)sizeof(double));
    for (int64_t i = 0; i < n * n; i++) d[i] = r[i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, d, (int)n, d, (int)n, 0.0, p,
                (int)n);
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) e += (p[i * n + j] - (i == j)) * (p[i * n + j] - (i == j));
    rq_free(d);
    rq_free(p);
    return sqrt(e);
}

void rq_rot_learned_free(rq_rot_learned *r) {
    rq_free(r->r1);
    rq_free(r->r2);
    memset(r, 0, sizeof *r);
}

void rq_rot_write_keys(rq_gguf_writer *w, const char *prefix, const rq_rotation *r) {
    char key[128];
    snprintf(key, sizeof key, "%s.kind", prefix);
    rq_gguf_writer_set_str(w, key, rq_rot_kind_name(r->kind));
    snprintf(key, sizeof key, "%s.n", prefix);
    rq_gguf_writer_set_u64(w, key, (uint64_t)r->n);
    snprintf(key, sizeof key, "%s.block", prefix);
    rq_gguf_writer_set_u64(w, key, (uint64_t)r->block);
    snprintf(key, sizeof key, "%s.random_signs", prefix);
    rq_gguf_writer_set_bool(w, key, r->random_signs);
    snprintf(key, sizeof key, "%s.seed", prefix);
    rq_gguf_writer_set_u64(w, key, r->seed);
}

rq_status rq_rot_learned_write(const rq_rot_learned *r, const char *path) {
    RQ_ASSERT(r->r1 && r->n >= 1 && (r->n_r2 == 0 || r->r2));
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "rotquant-rotation");
    rq_gguf_writer_set_u32(w, "rotlearn.format_version", RQ_ROT_LEARNED_VERSION);
    rq_gguf_writer_set_u64(w, "rotlearn.n", (uint64_t)r->n);
    rq_gguf_writer_set_u64(w, "rotlearn.block", (uint64_t)r->block);
    rq_gguf_writer_set_u64(w, "rotlearn.head_dim", (uint64_t)r->head_dim);
    rq_gguf_writer_set_u64(w, "rotlearn.n_r2", (uint64_t)r->n_r2);
    rq_rot_write_keys(w, "rotlearn.init1", &r->init1);
    rq_rot_write_keys(w, "rotlearn.init2", &r->init2);
    rq_rot_write_keys(w, "rotlearn.r3", &r->r3);
    rq_rot_write_keys(w, "rotlearn.r4", &r->r4);
    rq_gguf_writer_set_u32(w, "rotlearn.wbits", (uint32_t)r->wbits);
    rq_gguf_writer_set_u64(w, "rotlearn.group", (uint64_t)r->group);
    rq_gguf_writer_set_u32(w, "rotlearn.abits", (uint32_t)r->abits);
    rq_gguf_writer_set_u32(w, "rotlearn.kvbits", (uint32_t)r->kvbits);
    rq_gguf_writer_set_bool(w, "rotlearn.asym", r->asym);
    rq_gguf_writer_set_f32(w, "rotlearn.aclip", r->aclip);
    rq_gguf_writer_set_u64(w, "rotlearn.steps", (uint64_t)r->steps);
    rq_gguf_writer_set_u64(w, "rotlearn.n_seq", (uint64_t)r->n_seq);
    rq_gguf_writer_set_u64(w, "rotlearn.T", (uint64_t)r->T);
    rq_gguf_writer_set_u64(w, "rotlearn.tokens", (uint64_t)r->tokens);
    rq_gguf_writer_set_f32(w, "rotlearn.lr", r->lr);
    rq_gguf_writer_set_u64(w, "rotlearn.seed", r->seed);
    rq_gguf_writer_set_f32(w, "rotlearn.loss_first", (float)r->loss_first);
    rq_gguf_writer_set_f32(w, "rotlearn.loss_last", (float)r->loss_last);
    rq_gguf_writer_set_f32(w, "rotlearn.seconds", (float)r->seconds);
    rq_gguf_writer_set_str(w, "rotlearn.model", r->model);
    int64_t ne1[2] = {r->n, r->n}, ne2[3] = {r->head_dim, r->head_dim, r->n_r2};
    rq_status s = rq_gguf_writer_add_tensor(w, "rotlearn.r1", RQ_TYPE_F32, 2, ne1, r->r1, r->n * r->n * 4);
    if (s == RQ_OK && r->n_r2 > 0)
        s = rq_gguf_writer_add_tensor(w, "rotlearn.r2", RQ_TYPE_F32, 3, ne2, r->r2,
                                      r->n_r2 * r->head_dim * r->head_dim * 4);
    if (s == RQ_OK) s = rq_gguf_writer_write(w, path);
    rq_gguf_writer_free(w);
    return s;
}

/* an optional integer key (absent: 0) that must lie in [0, max] */
static rq_status get_int(const rq_gguf *g, const char *key, int64_t max, int64_t *out) {
    *out = 0;
    if (!rq_gguf_find(g, key)) return RQ_OK;
    RQ_TRY(rq_gguf_get_i64(g, key, out));
    if (*out < 0 || *out > max)
        return rq_errorf(RQ_EFORMAT, "%s: %s = %lld is out of range [0, %lld]", rq_gguf_path(g), key, (long long)*out,
                         (long long)max);
    return RQ_OK;
}

static rq_status get_rot(const rq_gguf *g, const char *prefix, rq_rotation *r) {
    char key[96];
    memset(r, 0, sizeof *r);
    snprintf(key, sizeof key, "rotlearn.%s.kind", prefix);
    rq_gguf_str s;
    if (rq_gguf_get_str(g, key, &s) == RQ_OK) {
        char name[32];
        rq_escape(s.ptr, s.len, name, sizeof name);
        if (rq_rot_kind_parse(name, &r->kind) != RQ_OK)
            return rq_errorf(RQ_EFORMAT, "%s: %s = '%s' is not a rotation kind", rq_gguf_path(g), key, name);
    }
    int64_t v;
    snprintf(key, sizeof key, "rotlearn.%s.n", prefix);
    RQ_TRY(get_int(g, key, MAX_N, &r->n));
    snprintf(key, sizeof key, "rotlearn.%s.block", prefix);
    RQ_TRY(get_int(g, key, MAX_N, &r->block));
    snprintf(key, sizeof key, "rotlearn.%s.seed", prefix);
    RQ_TRY(get_int(g, key, INT64_MAX, &v));
    r->seed = (uint64_t)v;
    snprintf(key, sizeof key, "rotlearn.%s.random_signs", prefix);
    bool b = false;
    r->random_signs = rq_gguf_get_bool(g, key, &b) == RQ_OK && b;
    if (r->kind != RQ_ROT_NONE && rq_rot_validate(r) != RQ_OK)
        return rq_errorf(RQ_EFORMAT, "%s: rotlearn.%s: %s", rq_gguf_path(g), prefix, rq_last_error());
    return RQ_OK;
}

/* a float32 tensor of exactly ne[0..nd) (trailing 1s), copied into a new buffer */
static rq_status get_matrix(const rq_gguf *g, const char *name, int nd, const int64_t *ne, float **out) {
    const char *p = rq_gguf_path(g);
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, name);
    if (!t) return rq_errorf(RQ_EFORMAT, "%s: missing tensor '%s'", p, name);
    if (t->type != RQ_TYPE_F32) return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' is not F32", p, name);
    int64_t n = 1;
    for (int i = 0; i < RQ_GGUF_MAX_DIMS; i++) {
        int64_t want = i < nd ? ne[i] : 1;
        if (t->ne[i] != want)
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has dimension %d of %lld, the keys say %lld", p, name, i,
                             (long long)t->ne[i], (long long)want);
        n *= want;
    }
    float *x = rq_alloc(n * (int64_t)sizeof(float));
    if (!x) return RQ_ENOMEM;
    memcpy(x, t->data, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            rq_free(x);
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' holds a value that is not finite (element %lld)", p, name,
                             (long long)i);
        }
    *out = x;
    return RQ_OK;
}

static rq_status check_orth(const rq_gguf *g, const char *what, const float *r, int64_t n) {
    double e = rq_rot_learned_orth_error(r, n);
    if (!(e <= RQ_ROT_LEARNED_ORTH_TOL))
        return rq_errorf(RQ_EFORMAT, "%s: %s is not orthogonal (||R^T R - I||_F = %.3g, at most %g allowed)",
                         rq_gguf_path(g), what, e, RQ_ROT_LEARNED_ORTH_TOL);
    return RQ_OK;
}

static rq_status read_all(const rq_gguf *g, rq_rot_learned *r) {
    const char *p = rq_gguf_path(g);
    uint32_t ver;
    if (!rq_gguf_find(g, "rotlearn.format_version"))
        return rq_errorf(RQ_EFORMAT, "%s is not a rotation file (no rotlearn.format_version; rotquant rotlearn writes "
                         "one)", p);
    RQ_TRY(rq_gguf_get_u32(g, "rotlearn.format_version", &ver));
    if (ver > RQ_ROT_LEARNED_VERSION)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: rotation file version %u is newer than this build reads (%d)", p, ver,
                         RQ_ROT_LEARNED_VERSION);
    if (ver < 1) return rq_errorf(RQ_EFORMAT, "%s: rotlearn.format_version = %u", p, ver);
    RQ_TRY(get_int(g, "rotlearn.n", MAX_N, &r->n));
    RQ_TRY(get_int(g, "rotlearn.block", MAX_N, &r->block));
    RQ_TRY(get_int(g, "rotlearn.head_dim", 4096, &r->head_dim));
    RQ_TRY(get_int(g, "rotlearn.n_r2", 4096, &r->n_r2));
    if (r->n < 1) return rq_errorf(RQ_EFORMAT, "%s: rotlearn.n is missing or 0", p);
    if (r->block && (r->block > r->n || r->n % r->block))
        return rq_errorf(RQ_EFORMAT, "%s: rotlearn.block = %lld does not divide n = %lld", p, (long long)r->block,
                         (long long)r->n);
    if (r->n_r2 && r->head_dim < 1) return rq_errorf(RQ_EFORMAT, "%s: R2 matrices of size 0", p);
    RQ_TRY(get_rot(g, "init1", &r->init1));
    RQ_TRY(get_rot(g, "init2", &r->init2));
    RQ_TRY(get_rot(g, "r3", &r->r3));
    RQ_TRY(get_rot(g, "r4", &r->r4));
    int64_t v;
    RQ_TRY(get_int(g, "rotlearn.wbits", 16, &v));
    r->wbits = (int)v;
    RQ_TRY(get_int(g, "rotlearn.abits", 16, &v));
    r->abits = (int)v;
    RQ_TRY(get_int(g, "rotlearn.kvbits", 16, &v));
    r->kvbits = (int)v;
    RQ_TRY(get_int(g, "rotlearn.group", MAX_N, &r->group));
    RQ_TRY(get_int(g, "rotlearn.steps", INT64_MAX, &r->steps));
    RQ_TRY(get_int(g, "rotlearn.n_seq", INT64_MAX, &r->n_seq));
    RQ_TRY(get_int(g, "rotlearn.T", INT64_MAX, &r->T));
    RQ_TRY(get_int(g, "rotlearn.tokens", INT64_MAX, &r->tokens));
    RQ_TRY(get_int(g, "rotlearn.seed", INT64_MAX, &v));
    r->seed = (uint64_t)v;
    bool b;
    if (rq_gguf_get_bool(g, "rotlearn.asym", &b) == RQ_OK) r->asym = b;
    float f;
    r->aclip = rq_gguf_get_f32(g, "rotlearn.aclip", &f) == RQ_OK ? f : 1.0f;
    r->lr = rq_gguf_get_f32(g, "rotlearn.lr", &f) == RQ_OK ? f : 0;
    r->loss_first = rq_gguf_get_f32(g, "rotlearn.loss_first", &f) == RQ_OK ? f : 0;
    r->loss_last = rq_gguf_get_f32(g, "rotlearn.loss_last", &f) == RQ_OK ? f : 0;
    r->seconds = rq_gguf_get_f32(g, "rotlearn.seconds", &f) == RQ_OK ? f : 0;
    rq_gguf_str s;
    if (rq_gguf_get_str(g, "rotlearn.model", &s) == RQ_OK) rq_escape(s.ptr, s.len, r->model, sizeof r->model);
    int64_t ne1[2] = {r->n, r->n}, ne2[3] = {r->head_dim, r->head_dim, r->n_r2};
    RQ_TRY(get_matrix(g, "rotlearn.r1", 2, ne1, &r->r1));
    if (r->block)
        for (int64_t i = 0; i < r->n; i++)
            for (int64_t j = 0; j < r->n; j++)
                if (i / r->block != j / r->block && r->r1[i * r->n + j] != 0)
                    return rq_errorf(RQ_EFORMAT, "%s: R1 is declared block-diagonal (block %lld) but element (%lld, "
                                     "%lld) is not 0", p, (long long)r->block, (long long)i, (long long)j);
    RQ_TRY(check_orth(g, "R1", r->r1, r->n));
    if (r->n_r2) {
        RQ_TRY(get_matrix(g, "rotlearn.r2", 3, ne2, &r->r2));
        for (int64_t l = 0; l < r->n_r2; l++) {
            char what[32];
            snprintf(what, sizeof what, "R2[%lld]", (long long)l);
            RQ_TRY(check_orth(g, what, r->r2 + l * r->head_dim * r->head_dim, r->head_dim));
        }
    } else if (rq_gguf_find_tensor(g, "rotlearn.r2")) {
        return rq_errorf(RQ_EFORMAT, "%s: tensor rotlearn.r2 present but rotlearn.n_r2 = 0", p);
    }
    return RQ_OK;
}

rq_status rq_rot_learned_read(const char *path, rq_rot_learned *out) {
    memset(out, 0, sizeof *out);
    rq_gguf *g;
    RQ_TRY(rq_gguf_open(path, &g));
    rq_status s = read_all(g, out);
    rq_gguf_close(g);
    if (s != RQ_OK) rq_rot_learned_free(out);
    return s;
}

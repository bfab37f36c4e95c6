/* Tests of src/io/gguf: writer → reader round trip of every value type, the real model's
 * header, a file of the ggml types rotquant can list but not dequantize (sizes and
 * offsets against ggml's published block sizes, `rotquant info`'s listing, a clean error
 * when values are asked for), and malformed files (each gives a clear error, checked
 * through the library and through the CLI's exit code and message). */
#include "testing.h"

#include "format/format.h"
#include "io/gguf.h"

#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    RQ_ASSERT(f && fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* Run `rotquant info FILE`; return its exit code and put stderr in err. */
static int cli_info(const char *file, char *err, size_t errn) {
    const char *cli = getenv("RQ_CLI");
    if (!cli) return -1;
    char cmd[2048], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' info '%s' >/dev/null 2>'%s'", cli, file, errpath);
    int rc = system(cmd);
    size_t n = 0;
    uint8_t *b = read_file(errpath, &n);
    if (n >= errn) n = errn - 1;
    if (b) memcpy(err, b, n);
    err[n] = 0;
    free(b);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The malformed file must be rejected by the library with a message containing `want`,
 * and by the CLI with a non-zero exit and "rotquant: error: <file>: ..." on stderr. */
static void expect_bad(const char *name, const uint8_t *b, size_t n, const char *want) {
    char *path = tmp_path(name);
    write_file(path, b, n);
    rq_gguf *g = NULL;
    rq_status s = rq_gguf_open(path, &g);
    RQ_CHECK_MSG(s != RQ_OK && g == NULL, "%s: accepted", name);
    const char *msg = rq_last_error();
    /* want == NULL: a truncation, reported as one of these three */
    bool named = want ? strstr(msg, want) != NULL
                      : (strstr(msg, "truncated") || strstr(msg, "exceeds") || strstr(msg, "outside the file"));
    RQ_CHECK_MSG(named, "%s: message '%s' lacks '%s'", name, msg, want ? want : "truncated/exceeds/outside");
    RQ_CHECK_MSG(strstr(rq_last_error(), path) != NULL, "%s: message '%s' does not name the file", name, rq_last_error());
    char err[2048];
    int rc = cli_info(path, err, sizeof err);
    if (rc == -1) return; /* no CLI path: library checks only */
    RQ_CHECK_MSG(rc == 1, "%s: CLI exit code %d", name, rc);
    RQ_CHECK_MSG(strstr(err, "rotquant: error: ") == err && strstr(err, path), "%s: CLI stderr '%s'", name, err);
}

static const float tensor_a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 100.0f}; /* [2, 3] */

/* A small file with every value type and two tensors; returns its path. */
static const char *make_sample(void) {
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "test.u32", 4000000000u);
    rq_gguf_writer_set_i32(w, "test.i32", -7);
    rq_gguf_writer_set_u64(w, "test.u64", 1ull << 40);
    rq_gguf_writer_set_f32(w, "test.f32", 0.125f);
    rq_gguf_writer_set_bool(w, "test.bool", true);
    int32_t arr[5] = {1, -2, 3, -4, 5};
    rq_gguf_writer_set_arr(w, "test.arr_i32", RQ_GGUF_I32, arr, 5);
    rq_gguf_str strs[3] = {{"a", 1}, {"", 0}, {"hello\0x", 7}};
    rq_gguf_writer_set_arr_str(w, "test.arr_str", strs, 3);
    rq_gguf_writer_set_u32(w, "test.replaced", 1);
    rq_gguf_writer_set_u32(w, "test.replaced", 2);
    int64_t ne_a[2] = {3, 2};
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "a", RQ_TYPE_F32, 2, ne_a, tensor_a, sizeof tensor_a) == RQ_OK);
    static uint16_t halfs[32];
    for (int i = 0; i < 32; i++) halfs[i] = rq_fp32_to_fp16((float)i - 16.0f);
    int64_t ne_b[1] = {32};
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "b", RQ_TYPE_F16, 1, ne_b, halfs, sizeof halfs) == RQ_OK);
    /* wrong byte count is refused */
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "c", RQ_TYPE_F16, 1, ne_b, halfs, 10) == RQ_EINVAL);
    const char *path = tmp_path("sample.gguf");
    RQ_CHECK(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    return path;
}

static void test_round_trip(const char *path) {
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(path, &g) == RQ_OK);
    if (!g) return;
    RQ_CHECK(rq_gguf_version(g) == 3);
    uint32_t u32;
    int64_t i64;
    float f;
    bool b;
    rq_gguf_str s;
    RQ_CHECK(rq_gguf_get_u32(g, "test.u32", &u32) == RQ_OK && u32 == 4000000000u);
    RQ_CHECK(rq_gguf_get_i64(g, "test.i32", &i64) == RQ_OK && i64 == -7);
    RQ_CHECK(rq_gguf_get_u32(g, "test.i32", &u32) == RQ_EFORMAT); /* negative into u32 */
    RQ_CHECK(rq_gguf_get_i64(g, "test.u64", &i64) == RQ_OK && i64 == (1ll << 40));
    RQ_CHECK(rq_gguf_get_f32(g, "test.f32", &f) == RQ_OK && f == 0.125f);
    RQ_CHECK(rq_gguf_get_bool(g, "test.bool", &b) == RQ_OK && b);
    RQ_CHECK(rq_gguf_get_str(g, "general.architecture", &s) == RQ_OK && rq_gguf_str_eq(s, "llama"));
    RQ_CHECK(rq_gguf_get_u32(g, "test.replaced", &u32) == RQ_OK && u32 == 2);
    RQ_CHECK(rq_gguf_get_str(g, "test.u32", &s) == RQ_EFORMAT);
    RQ_CHECK(strstr(rq_last_error(), "test.u32") != NULL);
    RQ_CHECK(rq_gguf_get_u32(g, "missing.key", &u32) == RQ_EFORMAT);
    RQ_CHECK(strstr(rq_last_error(), "missing metadata key 'missing.key'") != NULL);
    const rq_gguf_kv *kv;
    RQ_CHECK(rq_gguf_get_arr(g, "test.arr_i32", RQ_GGUF_I32, &kv) == RQ_OK);
    RQ_CHECK(kv->arr_n == 5 && rq_gguf_arr_int(kv, 3) == -4 && rq_gguf_arr_float(kv, 4) == 5.0);
    RQ_CHECK(rq_gguf_get_arr(g, "test.arr_i32", RQ_GGUF_STR, &kv) == RQ_EFORMAT);
    RQ_CHECK(rq_gguf_get_arr(g, "test.arr_str", RQ_GGUF_STR, &kv) == RQ_OK);
    RQ_CHECK(kv->arr_n == 3 && rq_gguf_str_eq(kv->arr_strs[0], "a") && kv->arr_strs[1].len == 0 &&
             kv->arr_strs[2].len == 7 && memcmp(kv->arr_strs[2].ptr, "hello\0x", 7) == 0);
    RQ_CHECK(rq_gguf_n_tensors(g) == 2);
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, "a");
    RQ_CHECK(t && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 && t->type == RQ_TYPE_F32 && t->n_bytes == 24);
    RQ_CHECK(((uintptr_t)t->data - (uintptr_t)rq_gguf_tensor_at(g, 0)->data) % 32 == 0);
    float out[32];
    RQ_CHECK(rq_gguf_tensor_to_f32(t, out) == RQ_OK && memcmp(out, tensor_a, sizeof tensor_a) == 0);
    t = rq_gguf_find_tensor(g, "b");
    RQ_CHECK(t && t->type == RQ_TYPE_F16 && rq_gguf_tensor_to_f32(t, out) == RQ_OK);
    int ok = 1;
    for (int i = 0; i < 32; i++) ok &= out[i] == (float)i - 16.0f;
    RQ_CHECK(ok);
    RQ_CHECK(rq_gguf_find_tensor(g, "c") == NULL);

    /* copy every kv into a new file and read it back identical */
    rq_gguf_writer *w = rq_gguf_writer_new(64);
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) rq_gguf_writer_copy_kv(w, rq_gguf_kv_at(g, i));
    const char *p2 = tmp_path("copy.gguf");
    RQ_CHECK(rq_gguf_writer_write(w, p2) == RQ_OK);
    rq_gguf_writer_free(w);
    rq_gguf *g2;
    RQ_CHECK(rq_gguf_open(p2, &g2) == RQ_OK);
    if (g2) {
        RQ_CHECK(rq_gguf_alignment(g2) == 64);
        for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) {
            const rq_gguf_kv *a = rq_gguf_kv_at(g, i), *c = rq_gguf_find(g2, a->key);
            RQ_CHECK_MSG(c && c->type == a->type && c->u == a->u && c->i == a->i && c->f == a->f &&
                             c->s.len == a->s.len && c->arr_n == a->arr_n,
                         "copied key %s differs", a->key);
        }
        rq_gguf_close(g2);
    }
    rq_gguf_close(g);
}

static void test_real_model(void) {
    const char *mp = rq_test_model_path();
    if (!mp) {
        printf("note: default model absent, real-file checks skipped\n");
        return;
    }
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(mp, &g) == RQ_OK);
    if (!g) return;
    rq_gguf_str arch;
    uint32_t n_embd, n_layer;
    RQ_CHECK(rq_gguf_get_str(g, "general.architecture", &arch) == RQ_OK && rq_gguf_str_eq(arch, "llama"));
    RQ_CHECK(rq_gguf_get_u32(g, "llama.embedding_length", &n_embd) == RQ_OK && n_embd == 576);
    RQ_CHECK(rq_gguf_get_u32(g, "llama.block_count", &n_layer) == RQ_OK && n_layer == 30);
    const rq_gguf_kv *toks;
    RQ_CHECK(rq_gguf_get_arr(g, "tokenizer.ggml.tokens", RQ_GGUF_STR, &toks) == RQ_OK && toks->arr_n == 49152);
    /* 30 layers × 9 tensors + token_embd + output_norm */
    RQ_CHECK(rq_gguf_n_tensors(g) == 272);
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, "token_embd.weight");
    RQ_CHECK(t && t->ne[0] == 576 && t->ne[1] == 49152);
    t = rq_gguf_find_tensor(g, "blk.0.attn_q.weight");
    RQ_CHECK(t && t->type == RQ_TYPE_Q4_1 && t->ne[0] == 576 && t->ne[1] == 576);
    rq_gguf_close(g);
}

/* ---- types rotquant lists but cannot dequantize ---------------------------------- */

/* ggml's published block sizes (ggml/src/ggml-common.h; gguf-py's GGML_QUANT_SIZES):
 * elements per block and bytes per block, written down here as the oracle. */
static const struct sized_tensor {
    const char *name;
    int type;
    const char *type_name;
    int64_t block, bytes; /* published constants */
    int n_dims;
    int64_t ne[3];
} sized_tensors[] = {
    {"w.iq2_xxs", RQ_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, 2, {512, 3, 1}},
    {"w.iq2_xs", RQ_TYPE_IQ2_XS, "IQ2_XS", 256, 74, 2, {256, 2, 1}},
    {"w.iq3_xxs", RQ_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98, 1, {256, 1, 1}},
    {"w.iq1_s", RQ_TYPE_IQ1_S, "IQ1_S", 256, 50, 2, {256, 1, 1}},
    {"w.iq4_nl", RQ_TYPE_IQ4_NL, "IQ4_NL", 32, 18, 2, {96, 5, 1}},
    {"w.iq3_s", RQ_TYPE_IQ3_S, "IQ3_S", 256, 110, 2, {768, 1, 1}},
    {"w.iq2_s", RQ_TYPE_IQ2_S, "IQ2_S", 256, 82, 2, {256, 2, 1}},
    {"w.iq4_xs", RQ_TYPE_IQ4_XS, "IQ4_XS", 256, 136, 2, {256, 3, 1}},
    {"w.iq1_m", RQ_TYPE_IQ1_M, "IQ1_M", 256, 56, 2, {512, 1, 1}},
    {"w.tq1_0", RQ_TYPE_TQ1_0, "TQ1_0", 256, 54, 2, {256, 1, 1}},
    {"w.tq2_0", RQ_TYPE_TQ2_0, "TQ2_0", 256, 66, 2, {256, 1, 1}},
    {"w.mxfp4", RQ_TYPE_MXFP4, "MXFP4", 32, 17, 2, {32, 3, 1}}, /* 51 bytes: odd */
    {"w.nvfp4", RQ_TYPE_NVFP4, "NVFP4", 64, 36, 2, {128, 1, 1}},
    {"w.q1_0", RQ_TYPE_Q1_0, "Q1_0", 128, 18, 2, {128, 2, 1}},
    {"w.q8_k", RQ_TYPE_Q8_K, "Q8_K", 256, 292, 1, {256, 1, 1}},
    {"w.iq4_nl_3d", RQ_TYPE_IQ4_NL, "IQ4_NL", 32, 18, 3, {32, 2, 3}},
    {"w.f32", RQ_TYPE_F32, "F32", 1, 4, 1, {4, 1, 1}}, /* readable, after the odd sizes */
};
#define N_SIZED (sizeof sized_tensors / sizeof sized_tensors[0])
static const float sized_f32[4] = {1.0f, -2.5f, 3.0f, 0.25f};

static int64_t sized_bytes(const struct sized_tensor *t) {
    return t->ne[0] / t->block * t->bytes * t->ne[1] * t->ne[2];
}

/* Offset of tensor i in the data section (i = N_SIZED: the section's size): the
 * tensors lie in order, each start aligned to 32 (the writer's default). */
static int64_t sized_offset(size_t i) {
    int64_t off = 0;
    for (size_t k = 0; k < i; k++) off = (off + sized_bytes(&sized_tensors[k]) + 31) / 32 * 32;
    return off;
}

/* Run `rotquant info FILE`, stdout into out; returns the exit code (-1: no CLI). */
static int cli_info_stdout(const char *file, char *out, size_t outn) {
    const char *cli = getenv("RQ_CLI");
    if (!cli) return -1;
    char cmd[2048], outpath[600];
    snprintf(outpath, sizeof outpath, "%s/stdout.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' info '%s' >'%s' 2>/dev/null", cli, file, outpath);
    int rc = system(cmd);
    size_t n = 0;
    uint8_t *b = read_file(outpath, &n);
    if (n >= outn) n = outn - 1;
    if (b) memcpy(out, b, n);
    out[n] = 0;
    free(b);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static const char *make_sized(void) {
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    static uint8_t data[N_SIZED][1024];
    for (size_t i = 0; i < N_SIZED; i++) {
        const struct sized_tensor *t = &sized_tensors[i];
        RQ_ASSERT(sized_bytes(t) <= (int64_t)sizeof data[i]);
        for (int64_t k = 0; k < sized_bytes(t); k++) data[i][k] = (uint8_t)(k * 7 + i * 31 + 1);
        if (t->type == RQ_TYPE_F32) memcpy(data[i], sized_f32, sizeof sized_f32);
        RQ_CHECK_MSG(rq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data[i], sized_bytes(t)) == RQ_OK,
                     "writer refuses %s", t->name);
    }
    /* the writer checks sizes of these types too: a byte short, a partial block */
    int64_t ne[2] = {256, 1};
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "short", RQ_TYPE_IQ2_XXS, 2, ne, data[0], 65) == RQ_EINVAL);
    ne[0] = 255;
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "partial", RQ_TYPE_IQ2_XXS, 2, ne, data[0], 66) == RQ_EINVAL);
    const char *path = tmp_path("sized.gguf");
    RQ_CHECK(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    /* the data read back below is compared with the pattern regenerated there */
    return path;
}

static void test_sized_types(const char *path) {
    rq_gguf *g;
    RQ_CHECK(rq_gguf_open(path, &g) == RQ_OK);
    if (!g) return;
    RQ_CHECK(rq_gguf_n_tensors(g) == (int64_t)N_SIZED);
    const uint8_t *data0 = rq_gguf_tensor_at(g, 0)->data;
    /* the data section ends the file */
    RQ_CHECK(rq_gguf_file_size(g) == rq_gguf_data_offset(g) + sized_offset(N_SIZED));
    int64_t total_bytes = 0, total_el = 0;
    for (size_t i = 0; i < N_SIZED; i++) {
        const struct sized_tensor *w = &sized_tensors[i];
        const rq_gguf_tensor *t = rq_gguf_find_tensor(g, w->name);
        RQ_CHECK_MSG(t != NULL, "%s missing", w->name);
        if (!t) continue;
        const int64_t nb = sized_bytes(w);
        const uint64_t want_off = (uint64_t)sized_offset(i);
        RQ_CHECK_MSG(t->type == w->type && t->n_dims == w->n_dims && t->ne[0] == w->ne[0] && t->ne[1] == w->ne[1] &&
                         t->ne[2] == w->ne[2] && t->n_elements == w->ne[0] * w->ne[1] * w->ne[2],
                     "%s: type/shape", w->name);
        RQ_CHECK_MSG(t->n_bytes == nb, "%s: %lld bytes, want %lld", w->name, (long long)t->n_bytes, (long long)nb);
        RQ_CHECK_MSG(t->offset == want_off, "%s: offset %llu, want %llu", w->name, (unsigned long long)t->offset,
                     (unsigned long long)want_off);
        RQ_CHECK_MSG((const uint8_t *)t->data - data0 == (ptrdiff_t)want_off, "%s: data pointer", w->name);
        int bad = 0;
        for (int64_t k = 0; k < nb && w->type != RQ_TYPE_F32; k++)
            bad += ((const uint8_t *)t->data)[k] != (uint8_t)(k * 7 + i * 31 + 1);
        RQ_CHECK_MSG(bad == 0, "%s: %d data bytes differ", w->name, bad);
        total_bytes += nb;
        total_el += t->n_elements;

        float out[2048];
        RQ_ASSERT(t->n_elements <= 2048);
        if (w->type == RQ_TYPE_F32) {
            RQ_CHECK(rq_gguf_tensor_to_f32(t, out) == RQ_OK && memcmp(out, sized_f32, sizeof sized_f32) == 0);
            continue;
        }
        if (rq_type_can_dequantize(w->type)) { /* IQ4_NL: dequantized since the export (quant/ggquant.h) */
            RQ_CHECK_MSG(rq_gguf_tensor_to_f32(t, out) == RQ_OK, "%s: no values", w->name);
            continue;
        }
        /* asking for values: a clear error naming the tensor and the type */
        RQ_CHECK_MSG(rq_gguf_tensor_to_f32(t, out) == RQ_EUNSUPPORTED, "%s: values given", w->name);
        const char *e = rq_last_error();
        RQ_CHECK_MSG(strstr(e, w->name) && strstr(e, w->type_name) && strstr(e, "cannot be dequantized"),
                     "%s: message '%s'", w->name, e);
    }
    rq_gguf_close(g);

    /* rotquant info lists every tensor with its type, shape and bytes, and the totals */
    static char out[65536];
    int rc = cli_info_stdout(path, out, sizeof out);
    if (rc == -1) return;
    RQ_CHECK_MSG(rc == 0, "rotquant info exit code %d", rc);
    for (size_t i = 0; i < N_SIZED; i++) {
        const struct sized_tensor *w = &sized_tensors[i];
        char shape[64], want[160];
        if (w->n_dims == 1) snprintf(shape, sizeof shape, "[%lld]", (long long)w->ne[0]);
        else if (w->n_dims == 2) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)w->ne[1], (long long)w->ne[0]);
        else
            snprintf(shape, sizeof shape, "[%lld, %lld, %lld]", (long long)w->ne[2], (long long)w->ne[1],
                     (long long)w->ne[0]);
        snprintf(want, sizeof want, "  %-36s %-8s %-22s %12lld\n", w->name, w->type_name, shape,
                 (long long)sized_bytes(w));
        RQ_CHECK_MSG(strstr(out, want) != NULL, "rotquant info lacks the line '%s'", want);
    }
    char totals[160];
    snprintf(totals, sizeof totals, "%lld weights in %lld bytes: %.4f bits per weight", (long long)total_el,
             (long long)total_bytes, 8.0 * (double)total_bytes / (double)total_el);
    RQ_CHECK_MSG(strstr(out, totals) != NULL, "rotquant info lacks '%s'", totals);
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Offsets of fields in the sample file, found by scanning for known strings. */
static size_t find_bytes(const uint8_t *b, size_t n, const char *s, size_t k) {
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, s, k)) return i;
    RQ_ASSERT(!"pattern not found");
    return 0;
}

static void test_malformed(const char *sample) {
    size_t n;
    uint8_t *orig = read_file(sample, &n);
    uint8_t *b = malloc(n);
    RQ_ASSERT(orig && b);

    /* truncated at 20 offsets spread over header, metadata, tensor infos and data */
    for (int k = 0; k < 20; k++) {
        size_t cut = (size_t)((double)(n - 1) * k / 20.0);
        if (cut < 4) cut = 4 + (size_t)k;
        char name[64];
        snprintf(name, sizeof name, "trunc_%02d.gguf", k);
        expect_bad(name, orig, cut, cut < 24 ? "too small" : NULL);
    }
    memcpy(b, orig, n);
    b[0] = 'X';
    expect_bad("bad_magic.gguf", b, n, "not a GGUF file (bad magic)");

    memcpy(b, orig, n);
    put_u32(b + 4, 99);
    expect_bad("bad_version.gguf", b, n, "unsupported GGUF version 99");

    /* tensor "a": name string "a" is preceded by its u64 length 1; type follows dims */
    size_t name_a = find_bytes(orig, n, "\x01\0\0\0\0\0\0\0a\x02\0\0\0", 13);
    size_t type_off = name_a + 8 + 1 + 4 + 2 * 8;
    memcpy(b, orig, n);
    put_u32(b + type_off, 77);
    expect_bad("bad_type.gguf", b, n, "unknown tensor type 77");

    memcpy(b, orig, n);
    put_u32(b + type_off, RQ_TYPE_Q8_1); /* named by ggml, but no size known here */
    expect_bad("q8_1.gguf", b, n, "tensor type 9 (Q8_1) has no size known to rotquant");

    memcpy(b, orig, n);
    put_u32(b + type_off, 42); /* the first id past RQ_TYPE_Q1_0 */
    expect_bad("type_42.gguf", b, n, "unknown tensor type 42");

    memcpy(b, orig, n);
    put_u64(b + type_off + 4, 1u << 20); /* offset far beyond the end */
    expect_bad("outside.gguf", b, n, "lies outside the file");

    memcpy(b, orig, n);
    put_u64(b + name_a + 8 + 1 + 4, 1ull << 62); /* absurd dimension */
    expect_bad("huge_dim.gguf", b, n, "tensor 'a'");

    /* array length of test.arr_i32: key, u32 type 9, u32 elem type, u64 count */
    size_t key = find_bytes(orig, n, "test.arr_i32", 12);
    memcpy(b, orig, n);
    put_u64(b + key + strlen("test.arr_i32") + 8, 1ull << 61);
    expect_bad("huge_array.gguf", b, n, "array length");

    memcpy(b, orig, n);
    put_u64(b + 16, 1ull << 60); /* metadata count */
    expect_bad("huge_nkv.gguf", b, n, "metadata count");

    memcpy(b, orig, n);
    put_u64(b + key - 8, 1ull << 40); /* key length */
    expect_bad("huge_key.gguf", b, n, "string length");

    /* general.alignment below 8 (found by the fuzzer: an I64 tensor at an odd address) */
    {
        rq_gguf_writer *w = rq_gguf_writer_new(64);
        int64_t ne1[1] = {2};
        static const int64_t i64s[2] = {1, -1};
        RQ_CHECK(rq_gguf_writer_add_tensor(w, "i", RQ_TYPE_I64, 1, ne1, i64s, sizeof i64s) == RQ_OK);
        const char *p64 = tmp_path("align64.gguf");
        RQ_CHECK(rq_gguf_writer_write(w, p64) == RQ_OK);
        rq_gguf_writer_free(w);
        size_t n64;
        uint8_t *a = read_file(p64, &n64);
        put_u32(a + find_bytes(a, n64, "general.alignment", 17) + 17 + 4, 1);
        expect_bad("align1.gguf", a, n64, "general.alignment must be a power-of-two u32 of at least 8");
        free(a);
    }

    /* a metadata key given twice is refused like a tensor name given twice (issue 15,
     * defect 10): test.u32 renamed to test.i32, the key after it */
    memcpy(b, orig, n);
    memcpy(b + find_bytes(orig, n, "test.u32", 8), "test.i32", 8);
    expect_bad("dup_key.gguf", b, n, "duplicate metadata key 'test.i32'");
    memcpy(b, orig, n);
    b[name_a + 8] = 'b'; /* tensor "a" renamed to the name of the next one */
    expect_bad("dup_tensor.gguf", b, n, "duplicate tensor name 'b'");

    free(orig);
    free(b);
}

/* Malformed files with a type known by size only. */
static void test_malformed_sized(const char *sized) {
    size_t n;
    uint8_t *orig = read_file(sized, &n);
    uint8_t *b = malloc(n);
    RQ_ASSERT(orig && b);
    /* tensor info of w.iq2_xxs: u64 name length 9, name, u32 n_dims, ne0, ne1 (u64), type */
    size_t info = find_bytes(orig, n, "\x09\0\0\0\0\0\0\0w.iq2_xxs", 17);
    size_t ne0 = info + 8 + 9 + 4;
    memcpy(b, orig, n);
    put_u64(b + ne0, 300);
    expect_bad("iq2_partial.gguf", b, n, "row length 300 is not a multiple of IQ2_XXS's block size 256");
    /* a huge but whole number of blocks: the size is checked against the file */
    memcpy(b, orig, n);
    put_u64(b + ne0, 1ull << 62);
    put_u64(b + ne0 + 8, 1);
    expect_bad("iq2_huge.gguf", b, n, "tensor 'w.iq2_xxs': data");
    /* Q8_K has more bytes (292) than elements (256) a block: the largest whole number of
     * blocks in a row has a byte count past int64_t, which must be caught */
    info = find_bytes(orig, n, "\x06\0\0\0\0\0\0\0w.q8_k", 14);
    memcpy(b, orig, n);
    put_u64(b + info + 8 + 6 + 4, (uint64_t)(INT64_MAX / 256 * 256));
    expect_bad("q8_k_overflow.gguf", b, n, "tensor 'w.q8_k': size overflows");
    /* a file cut one byte short of the end of the last IQ tensor: its size is checked */
    const size_t last = N_SIZED - 2; /* w.iq4_nl_3d */
    const size_t data = n - (size_t)sized_offset(N_SIZED);
    expect_bad("sized_trunc.gguf", orig, data + (size_t)(sized_offset(last) + sized_bytes(&sized_tensors[last])) - 1,
               "tensor 'w.iq4_nl_3d': data");
    free(orig);
    free(b);
}

/* Count the bytes of a file that a terminal would act on: ESC, BEL, CSI (0x9b). */
static int count_controls(const char *path) {
    size_t n = 0;
    uint8_t *b = read_file(path, &n);
    int k = 0;
    for (size_t i = 0; b && i < n; i++) k += b[i] == 0x1b || b[i] == 0x07 || b[i] == 0x9b;
    free(b);
    return k;
}

/* Strings of a file reach the terminal escaped (issue 15, defect 9): keys, values and
 * tensor names in `info`, the architecture and names in error messages. */
static void test_escapes(void) {
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", "\x1b[5mllama");
    rq_gguf_writer_set_str(w, "evil\x1b[31m.key", "title \x1b]0;pwned\x07 \x9b" "2J");
    int64_t ne[1] = {4};
    static const float v[4] = {1, 2, 3, 4};
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "t\x1b[2J", RQ_TYPE_F32, 1, ne, v, sizeof v) == RQ_OK);
    char path[512]; /* tmp_path's buffers are reused */
    snprintf(path, sizeof path, "%s", tmp_path("escapes.gguf"));
    RQ_CHECK(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    const char *cli = getenv("RQ_CLI");
    if (!cli) return;
    const char *cmds[] = {"info", "ppl -f", "run -p hi -m"};
    for (int i = 0; i < 3; i++) {
        char cmd[2048];
        /* ppl reads its text first: the model file serves as the text */
        snprintf(cmd, sizeof cmd, "'%s' %s '%s' %s%s%s >'%s' 2>'%s'", cli, cmds[i], path, i == 1 ? "-m '" : "",
                 i == 1 ? path : "", i == 1 ? "'" : "", tmp_path("o.txt"), tmp_path("e.txt"));
        int rc = system(cmd);
        RQ_CHECK_MSG(count_controls(tmp_path("o.txt")) == 0 && count_controls(tmp_path("e.txt")) == 0,
                     "%s: a control character reached the output", cmds[i]);
        size_t n = 0;
        uint8_t *o = read_file(tmp_path(i == 0 ? "o.txt" : "e.txt"), &n);
        char *text = calloc(n + 1, 1);
        if (o) memcpy(text, o, n);
        if (i == 0) {
            RQ_CHECK_MSG(rc == 0 && strstr(text, "evil\\x1b[31m.key") && strstr(text, "t\\x1b[2J") &&
                             strstr(text, "\\x1b]0;pwned\\x07 \\x9b2J"),
                         "info output lacks the escaped strings");
        } else {
            RQ_CHECK_MSG(rc != 0 && strstr(text, "unsupported architecture '\\x1b[5mllama'"), "%s: stderr '%s'",
                         cmds[i], text);
        }
        free(text);
        free(o);
    }
    /* the library's messages are escaped too: a duplicate tensor named with ESC */
    w = rq_gguf_writer_new(0);
    RQ_CHECK(rq_gguf_writer_add_tensor(w, "d\x1b[2J", RQ_TYPE_F32, 1, ne, v, sizeof v) == RQ_OK);
    RQ_CHECK(rq_gguf_writer_write(w, path) == RQ_OK);
    rq_gguf_writer_free(w);
    size_t n = 0;
    uint8_t *b = read_file(path, &n);
    rq_gguf *g = NULL;
    /* the same tensor info twice: the header says 2 tensors, the second info is a copy */
    size_t info = find_bytes(b, n, "d\x1b[2J", 5) - 8, info_len = 8 + 5 + 4 + 8 + 4 + 8;
    uint8_t *b2 = calloc(n + info_len + 64, 1);
    memcpy(b2, b, info + info_len);
    memcpy(b2 + info + info_len, b + info, info_len);
    put_u64(b2 + 8, 2);
    RQ_CHECK(rq_gguf_open_memory(b2, info + 2 * info_len, "mem", &g) == RQ_EFORMAT);
    RQ_CHECK_MSG(strstr(rq_last_error(), "duplicate tensor name 'd\\x1b[2J'") && !strchr(rq_last_error(), 0x1b),
                 "message '%s'", rq_last_error());
    free(b);
    free(b2);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_gguf_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    const char *sample = make_sample();
    test_round_trip(sample);
    test_real_model();
    test_malformed(sample);
    test_escapes();
    const char *sized = make_sized();
    test_sized_types(sized);
    test_malformed_sized(sized);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    return rq_test_finish();
}

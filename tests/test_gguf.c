/* Tests of src/io/gguf: writer → reader round trip of every value type, the real model's
 * header, and malformed files (each gives a clear error, checked through the library and
 * through the CLI's exit code and message). */
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

    free(orig);
    free(b);
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
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    return rq_test_finish();
}

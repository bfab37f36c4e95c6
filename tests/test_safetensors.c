/* Tests of src/io/safetensors: a hand-made file read back (dtypes, shapes, values against
 * the bytes written, metadata, lookup), sharded checkpoints through
 * model.safetensors.index.json, and malformed files and indexes (header length past the
 * file, offsets outside the buffer or overlapping, unknown dtype, element count × dtype
 * size ≠ byte length, overflow, bad JSON, bad shard names): each a clear error that names
 * the file. */
#include "testing.h"

#include "base/status.h"
#include "format/format.h"
#include "io/safetensors.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    RQ_ASSERT(f && fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* A safetensors file: header text given as is (hlen: the length field, -1 = the text's
 * length), then n data bytes. */
static void write_st(const char *path, const char *header, int64_t hlen, const void *data, size_t n) {
    size_t hl = strlen(header);
    uint8_t *b = malloc(8 + hl + n + 1);
    uint64_t field = hlen < 0 ? (uint64_t)hl : (uint64_t)hlen;
    memcpy(b, &field, 8);
    memcpy(b + 8, header, hl);
    if (n) memcpy(b + 8 + hl, data, n);
    write_bytes(path, b, 8 + hl + n);
    free(b);
}

/* The file must be refused, with a message naming the file and containing `want`. */
static void expect_bad(const char *name, const char *header, int64_t hlen, const void *data, size_t n,
                       const char *want) {
    char *path = tmp_path(name);
    write_st(path, header, hlen, data, n);
    rq_safetensors *st = (rq_safetensors *)1;
    rq_status s = rq_safetensors_open(path, &st);
    RQ_CHECK_MSG(s == RQ_EFORMAT && st == NULL, "%s: status %d", name, (int)s);
    const char *msg = rq_last_error();
    RQ_CHECK_MSG(strstr(msg, want) != NULL, "%s: message '%s' lacks '%s'", name, msg, want);
    RQ_CHECK_MSG(strstr(msg, path) != NULL, "%s: message '%s' does not name the file", name, msg);
    /* the same bytes from memory give the same refusal */
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 16] __attribute__((aligned(64)));
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    RQ_CHECK_MSG(rq_safetensors_open_memory(buf, got, name, &st) == RQ_EFORMAT && st == NULL, "%s: memory", name);
}

static const float vals_a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 100.0f}; /* [2, 3] F32 */

/* A valid file: a [2, 3] F32, a [4] BF16 and a [1, 2] F16 tensor, an empty I64 [0, 5], the
 * header padded with spaces and the F32 data at an odd offset (unaligned). */
static void test_valid(void) {
    uint8_t data[64];
    size_t n = 0;
    memcpy(data, vals_a, sizeof vals_a), n += sizeof vals_a;
    const float bfv[4] = {1.0f, -3.5f, 0.15625f, 65536.0f}; /* exact in bfloat16 */
    for (int i = 0; i < 4; i++) {
        uint16_t h = rq_fp32_to_bf16(bfv[i]);
        memcpy(data + n, &h, 2), n += 2;
    }
    const float hv[2] = {0.5f, -1024.0f}; /* exact in binary16 */
    for (int i = 0; i < 2; i++) {
        uint16_t h = rq_fp32_to_fp16(hv[i]);
        memcpy(data + n, &h, 2), n += 2;
    }
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
                      "\"b.bf16\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"c\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[32,36]},"
                      "\"empty\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[36,36]}}   ";
    RQ_CHECK(strlen(hdr) % 8 != 0); /* so that the data is unaligned */
    char *path = tmp_path("valid.safetensors");
    write_st(path, hdr, -1, data, n);
    rq_safetensors *st;
    RQ_CHECK(rq_safetensors_open(path, &st) == RQ_OK);
    if (!st) return;
    RQ_CHECK(rq_safetensors_n_tensors(st) == 4);
    RQ_CHECK(!strcmp(rq_safetensors_metadata(st, "format"), "pt") && !strcmp(rq_safetensors_metadata(st, "k"), "v"));
    RQ_CHECK(rq_safetensors_metadata(st, "absent") == NULL);
    RQ_CHECK(!strcmp(rq_safetensors_tensor_at(st, 0)->name, "b.bf16")); /* header order */
    const rq_st_tensor *a = rq_safetensors_find(st, "a");
    RQ_CHECK(a && a->dtype == RQ_ST_F32 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3 &&
             a->n_elements == 6 && a->n_bytes == 24 && a->offset == 8 + (int64_t)strlen(hdr));
    float out[8];
    if (a) {
        RQ_CHECK(rq_safetensors_to_f32(a, out) == RQ_OK && !memcmp(out, vals_a, sizeof vals_a));
    }
    const rq_st_tensor *b = rq_safetensors_find(st, "b.bf16"), *c = rq_safetensors_find(st, "c");
    RQ_CHECK(b && b->dtype == RQ_ST_BF16 && rq_safetensors_to_f32(b, out) == RQ_OK && !memcmp(out, bfv, sizeof bfv));
    RQ_CHECK(c && c->dtype == RQ_ST_F16 && rq_safetensors_to_f32(c, out) == RQ_OK && out[0] == 0.5f && out[1] == -1024.0f);
    const rq_st_tensor *e = rq_safetensors_find(st, "empty");
    RQ_CHECK(e && e->n_elements == 0 && e->n_bytes == 0 && e->dtype == RQ_ST_I64);
    RQ_CHECK(e && rq_safetensors_to_f32(e, out) == RQ_EUNSUPPORTED && strstr(rq_last_error(), "I64"));
    RQ_CHECK(rq_safetensors_find(st, "nope") == NULL && rq_safetensors_find(st, "") == NULL);
    rq_safetensors_close(st);
}

static void test_malformed(void) {
    static const uint8_t z[64];
    const char *ok1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* header length past the end of the file (and absurdly large: no overflow) */
    expect_bad("hlen_past.st", ok1, (int64_t)strlen(ok1) + 9, z, 8, "runs past the end of the file");
    expect_bad("hlen_huge.st", ok1, INT64_MAX, z, 8, "runs past the end of the file");
    expect_bad("empty_header.st", "", 0, "abc", 3, "not a safetensors file");
    char *tiny = tmp_path("tiny.st");
    write_bytes(tiny, "\x02\0\0\0", 4);
    rq_safetensors *st;
    RQ_CHECK(rq_safetensors_open(tiny, &st) == RQ_EFORMAT && strstr(rq_last_error(), "too small"));
    expect_bad("not_json.st", "{\"a\":", -1, z, 8, "line 1");
    expect_bad("not_object.st", "[1,2]", -1, z, 8, "not a JSON object");
    expect_bad("dup_name.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                              "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", -1, z, 2, "duplicate");
    /* offsets outside the buffer, reversed, overlapping */
    expect_bad("out_of_file.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, z, 7,
               "lie outside the data buffer of 7 bytes");
    expect_bad("begin_past.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,9]}}", -1, z, 8,
               "lie outside");
    expect_bad("reversed.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,2]}}", -1, z, 8, "lie outside");
    expect_bad("overlap.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]}}", -1, z, 16,
               "tensors 'a' and 'b' overlap");
    expect_bad("overlap_same.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", -1, z, 16, "overlap");
    /* dtype, shape and size */
    expect_bad("dtype.st", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, z, 8,
               "unknown dtype 'Q4'");
    expect_bad("dtype_num.st", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", -1, z, 8, "\"dtype\"");
    expect_bad("size.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, z, 16,
               "3 elements of F32 need 12 bytes, data_offsets give 8");
    expect_bad("shape_neg.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", -1, z, 8,
               "shape[0] is not a non-negative integer");
    expect_bad("shape_frac.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", -1, z, 8,
               "shape[0]");
    expect_bad("overflow.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}", -1,
               z, 8, "element count overflows");
    expect_bad("overflow_bytes.st", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                                    "\"data_offsets\":[0,8]}}", -1, z, 8, "overflow");
    expect_bad("dims.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", -1, z, 8,
               "9 dimensions");
    expect_bad("offsets3.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", -1, z, 8,
               "data_offsets");
    expect_bad("no_shape.st", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", -1, z, 8, "\"shape\"");
    expect_bad("not_obj_tensor.st", "{\"a\":3}", -1, z, 8, "expected an object");
    expect_bad("meta.st", "{\"__metadata__\":{\"x\":1}}", -1, z, 0, "\"__metadata__\" value 'x' is not a string");
    expect_bad("deep.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[[1]],\"data_offsets\":[0,1]}}", -1, z, 8, "line 1");
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* A sharded checkpoint: two shards and an index; then broken indexes. */
static void test_sharded(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/shards", tmpdir);
    mkdir(dir, 0755);
    char p[700];
    const float one[2] = {1.0f, 2.0f}, two[3] = {3.0f, 4.0f, 5.0f};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, one, 8);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_st(p, "{\"y\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[0,12]},"
                "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[12,12]}}", -1, two, 12);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"metadata\":{\"total_size\":20},\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
                  "\"y\":\"model-00002-of-00002.safetensors\",\"z\":\"model-00002-of-00002.safetensors\"}}");
    rq_safetensors *st;
    RQ_CHECK(rq_safetensors_open_dir(dir, &st) == RQ_OK);
    if (st) {
        RQ_CHECK(rq_safetensors_n_tensors(st) == 3);
        const rq_st_tensor *x = rq_safetensors_find(st, "x"), *y = rq_safetensors_find(st, "y");
        float out[3];
        RQ_CHECK(x && rq_safetensors_to_f32(x, out) == RQ_OK && out[0] == 1.0f && out[1] == 2.0f);
        RQ_CHECK(y && y->shape[0] == 3 && y->shape[1] == 1 && rq_safetensors_to_f32(y, out) == RQ_OK &&
                 out[2] == 5.0f && strstr(y->file, "00002"));
        rq_safetensors_close(st);
    }
    struct { const char *index, *want; } bad[] = {
        {"{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"w\":\"model-00001-of-00002.safetensors\"}}",
         "tensor 'w' listed in the index is in no shard"},
        {"{\"weight_map\":{\"x\":\"model-00002-of-00002.safetensors\",\"y\":\"model-00001-of-00002.safetensors\"}}",
         "tensor 'x' is in"},
        {"{\"weight_map\":{\"x\":\"../model-00001-of-00002.safetensors\"}}", "file name in the same directory"},
        {"{\"weight_map\":{\"x\":\"missing.safetensors\"}}", "cannot open"},
        {"{\"weight_map\":{}}", "weight_map"},
        {"{\"weight_map\":", "line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].index);
        st = (rq_safetensors *)1;
        rq_status s = rq_safetensors_open_dir(dir, &st);
        RQ_CHECK_MSG(s != RQ_OK && st == NULL && strstr(rq_last_error(), bad[i].want), "index %zu: '%s'", i,
                     rq_last_error());
    }
    /* the same name in two shards */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, one, 8);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"q\":\"model-00002-of-00002.safetensors\"}}");
    RQ_CHECK(rq_safetensors_open_dir(dir, &st) == RQ_EFORMAT && strstr(rq_last_error(), "is in both"));
    /* a directory with neither file */
    RQ_CHECK(rq_safetensors_open_dir(tmpdir, &st) == RQ_EIO && strstr(rq_last_error(), "no model.safetensors"));
    /* a directory given as a file */
    RQ_CHECK(rq_safetensors_open(dir, &st) == RQ_EIO && strstr(rq_last_error(), "not a regular file"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq_test_safetensors_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    RQ_ASSERT(system(cmd) == 0);
    test_valid();
    test_malformed();
    test_sharded();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rq_test_finish();
}

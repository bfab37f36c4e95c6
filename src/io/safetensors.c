#include "io/safetensors.h"

#include "format/format.h"
#include "io/file.h"
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The header is an object of objects of arrays: nothing valid nests deeper. */
#define ST_MAX_DEPTH 3
/* Integers in the header must be exact doubles. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

typedef struct st_file {
    char *path;
    const uint8_t *base; /* mapping or caller's memory */
    size_t size;
    bool mapped;
} st_file;

struct rq_safetensors {
    char *path;         /* the file or directory opened */
    st_file *files;     /* [n_files] */
    int64_t n_files;
    rq_st_tensor *tensors; /* [n_tensors] */
    int64_t n_tensors, cap_tensors;
    int64_t *sorted;    /* [n_tensors] indices ordered by name (lookup) */
    char **meta;        /* [2·n_meta] key, value of the first file's __metadata__ */
    int64_t n_meta;
};

static const struct {
    const char *name;
    int64_t size;
} dtypes[RQ_ST_DTYPE_COUNT] = {
    [RQ_ST_F32] = {"F32", 4},  [RQ_ST_F16] = {"F16", 2},   [RQ_ST_BF16] = {"BF16", 2},
    [RQ_ST_F64] = {"F64", 8},  [RQ_ST_I64] = {"I64", 8},   [RQ_ST_I32] = {"I32", 4},
    [RQ_ST_I16] = {"I16", 2},  [RQ_ST_I8] = {"I8", 1},     [RQ_ST_U8] = {"U8", 1},
    [RQ_ST_BOOL] = {"BOOL", 1}, [RQ_ST_U16] = {"U16", 2},  [RQ_ST_U32] = {"U32", 4},
    [RQ_ST_U64] = {"U64", 8},  [RQ_ST_F8_E4M3] = {"F8_E4M3", 1}, [RQ_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *rq_st_dtype_name(rq_st_dtype t) { return (unsigned)t < RQ_ST_DTYPE_COUNT ? dtypes[t].name : "?"; }
int64_t rq_st_dtype_size(rq_st_dtype t) { return (unsigned)t < RQ_ST_DTYPE_COUNT ? dtypes[t].size : 0; }

/* A non-negative integer of the header (a JSON number that is whole and at most 2^53). */
static bool json_uint(const rq_json *v, int64_t *out) {
    if (!v || v->type != RQ_JSON_NUMBER || !(v->number >= 0) || v->number > ST_MAX_INT ||
        v->number != floor(v->number))
        return false;
    *out = (int64_t)v->number;
    return true;
}

/* Print at most 64 bytes of a file's name for messages (rq_errorf escapes the rest). */
#define NAME_FMT "'%.64s%s'"
#define NAME_ARG(s) (s), (strlen(s) > 64 ? "..." : "")

static rq_status add_tensor(rq_safetensors *st, rq_st_tensor **t) {
    if (st->n_tensors == st->cap_tensors) {
        int64_t nc = st->cap_tensors ? 2 * st->cap_tensors : 64;
        rq_st_tensor *n = rq_alloc(nc * (int64_t)sizeof *n);
        if (!n) return rq_error_prefix(RQ_ENOMEM, st->path);
        if (st->n_tensors) memcpy(n, st->tensors, (size_t)st->n_tensors * sizeof *n);
        rq_free(st->tensors);
        st->tensors = n;
        st->cap_tensors = nc;
    }
    *t = &st->tensors[st->n_tensors++];
    memset(*t, 0, sizeof **t);
    return RQ_OK;
}

/* One tensor entry of the header of file f (data buffer [data, data + buf_size)). */
static rq_status parse_tensor(rq_safetensors *st, const st_file *f, const rq_json_member *mem, size_t data,
                              int64_t buf_size) {
    const char *path = f->path;
    if (memchr(mem->key, 0, (size_t)mem->key_len))
        return rq_errorf(RQ_EFORMAT, "%s: a tensor name contains a NUL byte", path);
    const rq_json *v = mem->value;
    if (v->type != RQ_JSON_OBJECT)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": expected an object, found %s", path, NAME_ARG(mem->key),
                         rq_json_type_name(v->type));
    rq_st_tensor *t = NULL;
    RQ_TRY(add_tensor(st, &t));
    t->name = rq_strdup(mem->key);
    t->file = f->path;
    const rq_json *dt = rq_json_get(v, "dtype"), *shape = rq_json_get(v, "shape"), *offs = rq_json_get(v, "data_offsets");
    if (!dt || dt->type != RQ_JSON_STRING)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": missing or non-string \"dtype\"", path, NAME_ARG(t->name));
    int d = -1;
    for (int i = 0; i < RQ_ST_DTYPE_COUNT; i++)
        if ((size_t)dt->len == strlen(dtypes[i].name) && !memcmp(dt->str, dtypes[i].name, (size_t)dt->len)) d = i;
    if (d < 0)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": unknown dtype '%.16s'", path, NAME_ARG(t->name), dt->str);
    t->dtype = (rq_st_dtype)d;
    if (!shape || shape->type != RQ_JSON_ARRAY)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": missing or non-array \"shape\"", path, NAME_ARG(t->name));
    if (shape->len > RQ_SAFETENSORS_MAX_DIMS)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": %lld dimensions (at most %d)", path, NAME_ARG(t->name),
                         (long long)shape->len, RQ_SAFETENSORS_MAX_DIMS);
    t->n_dims = (int)shape->len;
    int64_t nel = 1;
    for (int i = 0; i < RQ_SAFETENSORS_MAX_DIMS; i++) t->shape[i] = 1;
    for (int i = 0; i < t->n_dims; i++) {
        if (!json_uint(shape->items[i], &t->shape[i]))
            return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": shape[%d] is not a non-negative integer", path,
                             NAME_ARG(t->name), i);
        if (!rq_mul_ok(nel, t->shape[i], &nel))
            return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": element count overflows", path, NAME_ARG(t->name));
    }
    t->n_elements = nel;
    int64_t begin, end, nb;
    if (!offs || offs->type != RQ_JSON_ARRAY || offs->len != 2 || !json_uint(offs->items[0], &begin) ||
        !json_uint(offs->items[1], &end))
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": \"data_offsets\" must be two non-negative integers",
                         path, NAME_ARG(t->name));
    if (begin > end || end > buf_size)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": data_offsets [%lld, %lld] lie outside the data "
                         "buffer of %lld bytes", path, NAME_ARG(t->name), (long long)begin, (long long)end,
                         (long long)buf_size);
    if (!rq_mul_ok(nel, dtypes[d].size, &nb))
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": byte size overflows", path, NAME_ARG(t->name));
    if (nb != end - begin)
        return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT ": %lld elements of %s need %lld bytes, data_offsets "
                         "give %lld", path, NAME_ARG(t->name), (long long)nel, dtypes[d].name, (long long)nb,
                         (long long)(end - begin));
    t->n_bytes = nb;
    t->offset = (int64_t)data + begin;
    t->data = f->base + t->offset;
    return RQ_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const rq_st_tensor *x = *(const rq_st_tensor *const *)a, *y = *(const rq_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

/* No two tensors of one file (tensors [first, n_tensors)) share a byte. */
static rq_status check_overlap(rq_safetensors *st, const st_file *f, int64_t first) {
    int64_t n = st->n_tensors - first;
    if (n < 2) return RQ_OK;
    const rq_st_tensor **by = rq_alloc(n * (int64_t)sizeof *by);
    if (!by) return rq_error_prefix(RQ_ENOMEM, f->path);
    for (int64_t i = 0; i < n; i++) by[i] = &st->tensors[first + i];
    qsort(by, (size_t)n, sizeof *by, cmp_offset);
    rq_status s = RQ_OK;
    const rq_st_tensor *prev = NULL;
    for (int64_t i = 0; i < n && s == RQ_OK; i++) {
        if (by[i]->n_bytes == 0) continue;
        if (prev && by[i]->offset < prev->offset + prev->n_bytes)
            s = rq_errorf(RQ_EFORMAT, "%s: tensors " NAME_FMT " and " NAME_FMT " overlap", f->path,
                          NAME_ARG(prev->name), NAME_ARG(by[i]->name));
        prev = by[i];
    }
    rq_free(by);
    return s;
}

static rq_status parse_metadata(rq_safetensors *st, const st_file *f, const rq_json *v) {
    if (v->type != RQ_JSON_OBJECT)
        return rq_errorf(RQ_EFORMAT, "%s: \"__metadata__\" must be an object of strings", f->path);
    for (int64_t i = 0; i < v->len; i++)
        if (v->members[i].value->type != RQ_JSON_STRING)
            return rq_errorf(RQ_EFORMAT, "%s: \"__metadata__\" value " NAME_FMT " is not a string", f->path,
                             NAME_ARG(v->members[i].key));
    if (st->meta) return RQ_OK; /* the first file's is kept */
    st->meta = rq_alloc((2 * v->len + 1) * (int64_t)sizeof(char *));
    if (!st->meta) return rq_error_prefix(RQ_ENOMEM, f->path);
    for (int64_t i = 0; i < v->len; i++) {
        st->meta[2 * i] = rq_strdup(v->members[i].key);
        st->meta[2 * i + 1] = rq_strdup(v->members[i].value->str);
        st->n_meta = i + 1;
    }
    return RQ_OK;
}

/* Parse the header of file f, appending its tensors. */
static rq_status parse_file(rq_safetensors *st, const st_file *f) {
    if (f->size < 8)
        return rq_errorf(RQ_EFORMAT, "%s: truncated file: %zu bytes is too small for a safetensors header", f->path,
                         f->size);
    uint64_t hlen;
    memcpy(&hlen, f->base, 8);
    if (hlen > f->size - 8)
        return rq_errorf(RQ_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", f->path,
                         (unsigned long long)hlen, f->size);
    if (hlen > (uint64_t)RQ_SAFETENSORS_MAX_HEADER)
        return rq_errorf(RQ_EFORMAT, "%s: header length %llu is more than the limit of %lld", f->path,
                         (unsigned long long)hlen, (long long)RQ_SAFETENSORS_MAX_HEADER);
    if (hlen < 2 || f->base[8] != '{')
        return rq_errorf(RQ_EFORMAT, "%s: not a safetensors file (the header is not a JSON object)", f->path);
    rq_json_limits lim = {.max_bytes = (int64_t)hlen, .max_depth = ST_MAX_DEPTH};
    rq_json_doc *doc;
    if (rq_json_parse((const char *)f->base + 8, (int64_t)hlen, &lim, &doc, NULL) != RQ_OK)
        return rq_error_prefix(RQ_EFORMAT, f->path);
    const rq_json *root = rq_json_root(doc);
    rq_status s = RQ_OK;
    const size_t data = 8 + (size_t)hlen;
    const int64_t buf_size = (int64_t)(f->size - data), first = st->n_tensors;
    if (root->type != RQ_JSON_OBJECT)
        s = rq_errorf(RQ_EFORMAT, "%s: not a safetensors file (the header is not a JSON object)", f->path);
    for (int64_t i = 0; s == RQ_OK && i < root->len; i++) {
        const rq_json_member *mem = &root->members[i];
        if (!strcmp(mem->key, "__metadata__") && mem->key_len == 12) s = parse_metadata(st, f, mem->value);
        else s = parse_tensor(st, f, mem, data, buf_size);
    }
    if (s == RQ_OK) s = check_overlap(st, f, first);
    rq_json_doc_free(doc);
    return s;
}

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const rq_st_tensor *ts = ctx;
    return strcmp(ts[*(const int64_t *)a].name, ts[*(const int64_t *)b].name);
}

/* Build the name index; refuse a name found twice (in two shards). */
static rq_status index_names(rq_safetensors *st) {
    st->sorted = rq_alloc((st->n_tensors ? st->n_tensors : 1) * (int64_t)sizeof(int64_t));
    if (!st->sorted) return rq_error_prefix(RQ_ENOMEM, st->path);
    for (int64_t i = 0; i < st->n_tensors; i++) st->sorted[i] = i;
    qsort_r(st->sorted, (size_t)st->n_tensors, sizeof(int64_t), cmp_name_idx, st->tensors);
    for (int64_t i = 1; i < st->n_tensors; i++) {
        const rq_st_tensor *a = &st->tensors[st->sorted[i - 1]], *b = &st->tensors[st->sorted[i]];
        if (!strcmp(a->name, b->name))
            return rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT " is in both %s and %s", st->path, NAME_ARG(a->name),
                             a->file, b->file);
    }
    return RQ_OK;
}

static rq_safetensors *st_new(const char *path, int64_t n_files) {
    rq_safetensors *st = rq_xcalloc(sizeof *st);
    st->path = rq_strdup(path);
    st->files = rq_xcalloc(n_files * (int64_t)sizeof(st_file));
    return st;
}

/* Map one file into slot i of st->files. */
static rq_status map_file(rq_safetensors *st, int64_t i, const char *path) {
    st_file *f = &st->files[i];
    f->path = rq_strdup(path);
    st->n_files = i + 1;
    int fd;
    int64_t size;
    RQ_TRY(rq_file_open_regular(path, -1, &fd, &size)); /* a FIFO is refused, not waited on */
    if (size < 8) {
        close(fd);
        return rq_errorf(RQ_EFORMAT, "%s: truncated file: %lld bytes is too small for a safetensors header", path,
                         (long long)size);
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return rq_errorf(RQ_EIO, "%s: cannot map: %s", path, strerror(errno));
    f->base = m;
    f->size = (size_t)size;
    f->mapped = true;
    return RQ_OK;
}

static rq_status finish(rq_safetensors *st, rq_status s, rq_safetensors **out) {
    if (s == RQ_OK) s = index_names(st);
    if (s != RQ_OK) {
        rq_safetensors_close(st);
        return s;
    }
    *out = st;
    return RQ_OK;
}

rq_status rq_safetensors_open_memory(const void *data, size_t size, const char *name, rq_safetensors **out) {
    *out = NULL;
    rq_safetensors *st = st_new(name ? name : "<memory>", 1);
    st->n_files = 1;
    st->files[0] = (st_file){rq_strdup(st->path), data, size, false};
    return finish(st, parse_file(st, &st->files[0]), out);
}

rq_status rq_safetensors_open(const char *path, rq_safetensors **out) {
    *out = NULL;
    rq_safetensors *st = st_new(path, 1);
    rq_status s = map_file(st, 0, path);
    if (s == RQ_OK) s = parse_file(st, &st->files[0]);
    return finish(st, s, out);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A shard name from the index: a plain file name (no directory part, not . or ..). */
static bool plain_file_name(const rq_json *v) {
    return v->type == RQ_JSON_STRING && v->len > 0 && v->len < 256 && !memchr(v->str, '/', (size_t)v->len) &&
           !memchr(v->str, 0, (size_t)v->len) && strcmp(v->str, ".") && strcmp(v->str, "..");
}

static rq_status open_sharded(const char *dir, const char *index_path, rq_safetensors **out) {
    char *text;
    int64_t len;
    RQ_TRY(rq_file_read(index_path, &text, &len));
    rq_json_doc *doc;
    rq_status s = rq_json_parse(text, len, NULL, &doc, NULL);
    rq_free(text);
    if (s != RQ_OK) return rq_error_prefix(s, index_path);
    const rq_json *wm = rq_json_get(rq_json_root(doc), "weight_map");
    const char **names = NULL;
    int64_t n_names = 0;
    rq_safetensors *st = NULL;
    if (!wm || wm->type != RQ_JSON_OBJECT || wm->len == 0) {
        s = rq_errorf(RQ_EFORMAT, "%s: missing or empty \"weight_map\" object", index_path);
        goto done;
    }
    /* the distinct shard names, sorted */
    names = rq_alloc(wm->len * (int64_t)sizeof(char *));
    if (!names) {
        s = rq_error_prefix(RQ_ENOMEM, index_path);
        goto done;
    }
    for (int64_t i = 0; i < wm->len; i++) {
        const rq_json *v = wm->members[i].value;
        if (!plain_file_name(v)) {
            s = rq_errorf(RQ_EFORMAT, "%s: weight_map entry " NAME_FMT ": the shard must be a file name in the "
                          "same directory", index_path, NAME_ARG(wm->members[i].key));
            goto done;
        }
        names[i] = v->str;
    }
    qsort(names, (size_t)wm->len, sizeof *names, cmp_str);
    for (int64_t i = 0; i < wm->len; i++)
        if (i == 0 || strcmp(names[i], names[n_names - 1])) names[n_names++] = names[i];
    st = st_new(dir, n_names);
    for (int64_t i = 0; i < n_names && s == RQ_OK; i++) {
        size_t pl = strlen(dir) + strlen(names[i]) + 2;
        char *p = rq_xalloc((int64_t)pl);
        snprintf(p, pl, "%s/%s", dir, names[i]);
        s = map_file(st, i, p);
        rq_free(p);
        if (s == RQ_OK) s = parse_file(st, &st->files[i]);
    }
    if (s == RQ_OK) s = index_names(st);
    /* every tensor the index names is in the shard it names */
    for (int64_t i = 0; s == RQ_OK && i < wm->len; i++) {
        const rq_st_tensor *t = rq_safetensors_find(st, wm->members[i].key);
        const char *want = wm->members[i].value->str;
        const char *base = t ? strrchr(t->file, '/') : NULL;
        if (!t)
            s = rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT " listed in the index is in no shard", index_path,
                          NAME_ARG(wm->members[i].key));
        else if (strcmp(base ? base + 1 : t->file, want))
            s = rq_errorf(RQ_EFORMAT, "%s: tensor " NAME_FMT " is in %s, the index says %s", index_path,
                          NAME_ARG(t->name), t->file, want);
    }
done:
    rq_free(names);
    rq_json_doc_free(doc);
    if (s != RQ_OK) {
        rq_safetensors_close(st);
        return s;
    }
    *out = st;
    return RQ_OK;
}

rq_status rq_safetensors_open_dir(const char *dir, rq_safetensors **out) {
    *out = NULL;
    size_t pl = strlen(dir) + 64;
    char *index = rq_xalloc((int64_t)pl), *single = rq_xalloc((int64_t)pl);
    snprintf(index, pl, "%s/model.safetensors.index.json", dir);
    snprintf(single, pl, "%s/model.safetensors", dir);
    rq_status s;
    if (file_exists(index)) s = open_sharded(dir, index, out);
    else if (file_exists(single)) s = rq_safetensors_open(single, out);
    else s = rq_errorf(RQ_EIO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    rq_free(index);
    rq_free(single);
    return s;
}

void rq_safetensors_close(rq_safetensors *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n_tensors; i++) rq_free(st->tensors[i].name);
    for (int64_t i = 0; i < st->n_files; i++) {
        if (st->files[i].mapped) munmap((void *)st->files[i].base, st->files[i].size);
        rq_free(st->files[i].path);
    }
    for (int64_t i = 0; i < 2 * st->n_meta; i++) rq_free(st->meta[i]);
    rq_free(st->meta);
    rq_free(st->files);
    rq_free(st->tensors);
    rq_free(st->sorted);
    rq_free(st->path);
    rq_free(st);
}

const char *rq_safetensors_path(const rq_safetensors *st) { return st->path; }
int64_t rq_safetensors_n_tensors(const rq_safetensors *st) { return st->n_tensors; }

const rq_st_tensor *rq_safetensors_tensor_at(const rq_safetensors *st, int64_t i) {
    RQ_ASSERT(i >= 0 && i < st->n_tensors);
    return &st->tensors[i];
}

const rq_st_tensor *rq_safetensors_find(const rq_safetensors *st, const char *name) {
    int64_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[st->sorted[mid]].name, name);
        if (c == 0) return &st->tensors[st->sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *rq_safetensors_metadata(const rq_safetensors *st, const char *key) {
    for (int64_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

rq_status rq_safetensors_to_f32(const rq_st_tensor *t, float *dst) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case RQ_ST_F32: memcpy(dst, p, (size_t)t->n_bytes); return RQ_OK;
    case RQ_ST_F16:
    case RQ_ST_BF16:
        for (int64_t i = 0; i < t->n_elements; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2); /* the data may be unaligned */
            dst[i] = t->dtype == RQ_ST_F16 ? rq_fp16_to_fp32(h) : rq_bf16_to_fp32(h);
        }
        return RQ_OK;
    default:
        return rq_errorf(RQ_EUNSUPPORTED, "%s: tensor " NAME_FMT ": dtype %s cannot be read as float", t->file,
                         NAME_ARG(t->name), rq_st_dtype_name(t->dtype));
    }
}

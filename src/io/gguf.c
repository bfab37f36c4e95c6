#include "io/gguf.h"

#include "format/format.h"
#include "io/atomic_file.h"
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 4
/* Limits that keep a corrupt header from making us allocate absurd amounts before the
 * size checks fail: every kv/tensor needs at least this many bytes in the file. */
#define GGUF_MIN_KV_BYTES 12
#define GGUF_MIN_TENSOR_BYTES 24

struct rq_gguf {
    char *path;
    const uint8_t *base; /* mapping or caller's memory */
    size_t size;
    bool mapped;
    bool owned; /* base is an rq_alloc'd image (rq_gguf_writer_open_image) */
    uint32_t version, alignment;
    int64_t n_kv, n_tensors, data_offset;
    rq_gguf_kv *kvs;         /* [n_kv] */
    rq_gguf_tensor *tensors; /* [n_tensors] */
};

/* ---- reader ---------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *name;
} cursor;

static size_t vtype_size(rq_gguf_vtype t) {
    switch (t) {
    case RQ_GGUF_U8: case RQ_GGUF_I8: case RQ_GGUF_BOOL: return 1;
    case RQ_GGUF_U16: case RQ_GGUF_I16: return 2;
    case RQ_GGUF_U32: case RQ_GGUF_I32: case RQ_GGUF_F32: return 4;
    case RQ_GGUF_U64: case RQ_GGUF_I64: case RQ_GGUF_F64: return 8;
    default: return 0; /* STR, ARR: variable */
    }
}

const char *rq_gguf_vtype_name(rq_gguf_vtype t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < RQ_GGUF_VTYPE_COUNT ? names[t] : "?";
}

static rq_status need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos)
        return rq_errorf(RQ_EFORMAT, "%s: truncated file: %s at offset %zu needs %zu bytes, %zu left",
                         c->name, what, c->pos, n, c->size - c->pos);
    return RQ_OK;
}

static rq_status rd(cursor *c, void *dst, size_t n, const char *what) {
    RQ_TRY(need(c, n, what));
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return RQ_OK;
}

static rq_status rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static rq_status rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static rq_status rd_str(cursor *c, rq_gguf_str *s, const char *what) {
    uint64_t len;
    RQ_TRY(rd_u64(c, &len, what));
    if (len > c->size - c->pos)
        return rq_errorf(RQ_EFORMAT, "%s: %s: string length %llu at offset %zu exceeds the file size",
                         c->name, what, (unsigned long long)len, c->pos - 8);
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return RQ_OK;
}

/* NUL-terminated copy of a string of the file (NULL with RQ_ENOMEM set on failure) */
static char *str_dup(rq_gguf_str s) {
    char *d = rq_alloc((int64_t)s.len + 1);
    if (!d) return NULL;
    memcpy(d, s.ptr, s.len);
    d[s.len] = 0;
    return d;
}

/* Skip over one value of type t (used for nested arrays, which we do not index). */
static rq_status skip_value(cursor *c, rq_gguf_vtype t, int depth, const char *key) {
    size_t sz = vtype_size(t);
    if (sz) return need(c, sz, key) == RQ_OK ? (c->pos += sz, RQ_OK) : RQ_EFORMAT;
    if (t == RQ_GGUF_STR) {
        rq_gguf_str s;
        return rd_str(c, &s, key);
    }
    if (t != RQ_GGUF_ARR) return rq_errorf(RQ_EFORMAT, "%s: key '%s': unknown value type %u", c->name, key, (unsigned)t);
    if (depth >= GGUF_MAX_ARRAY_DEPTH) return rq_errorf(RQ_EFORMAT, "%s: key '%s': arrays nested too deep", c->name, key);
    uint32_t et;
    uint64_t n;
    RQ_TRY(rd_u32(c, &et, key));
    RQ_TRY(rd_u64(c, &n, key));
    size_t esz = vtype_size((rq_gguf_vtype)et);
    if (esz) {
        if (n > (c->size - c->pos) / esz)
            return rq_errorf(RQ_EFORMAT, "%s: key '%s': array of %llu elements exceeds the file size", c->name, key,
                             (unsigned long long)n);
        c->pos += n * esz;
        return RQ_OK;
    }
    if (et != RQ_GGUF_STR && et != RQ_GGUF_ARR)
        return rq_errorf(RQ_EFORMAT, "%s: key '%s': unknown array element type %u", c->name, key, et);
    if (n > (c->size - c->pos) / 8)
        return rq_errorf(RQ_EFORMAT, "%s: key '%s': array of %llu elements exceeds the file size", c->name, key,
                         (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) RQ_TRY(skip_value(c, (rq_gguf_vtype)et, depth + 1, key));
    return RQ_OK;
}

static rq_status read_kv(cursor *c, rq_gguf_kv *kv) {
    rq_gguf_str key;
    RQ_TRY(rd_str(c, &key, "metadata key"));
    if (!(kv->key = str_dup(key))) return RQ_ENOMEM;
    uint32_t t;
    RQ_TRY(rd_u32(c, &t, kv->key));
    if (t >= RQ_GGUF_VTYPE_COUNT)
        return rq_errorf(RQ_EFORMAT, "%s: key '%s': unknown value type %u", c->name, kv->key, t);
    kv->type = (rq_gguf_vtype)t;
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } v;
    switch (kv->type) {
    case RQ_GGUF_U8: RQ_TRY(rd(c, &v, 1, kv->key)); kv->u = v.u8; kv->i = v.u8; break;
    case RQ_GGUF_I8: RQ_TRY(rd(c, &v, 1, kv->key)); kv->i = v.i8; kv->u = (uint64_t)kv->i; break;
    case RQ_GGUF_U16: RQ_TRY(rd(c, &v, 2, kv->key)); kv->u = v.u16; kv->i = v.u16; break;
    case RQ_GGUF_I16: RQ_TRY(rd(c, &v, 2, kv->key)); kv->i = v.i16; kv->u = (uint64_t)kv->i; break;
    case RQ_GGUF_U32: RQ_TRY(rd(c, &v, 4, kv->key)); kv->u = v.u32; kv->i = v.u32; break;
    case RQ_GGUF_I32: RQ_TRY(rd(c, &v, 4, kv->key)); kv->i = v.i32; kv->u = (uint64_t)kv->i; break;
    case RQ_GGUF_U64: RQ_TRY(rd(c, &v, 8, kv->key)); kv->u = v.u64; kv->i = (int64_t)v.u64; break;
    case RQ_GGUF_I64: RQ_TRY(rd(c, &v, 8, kv->key)); kv->i = v.i64; kv->u = (uint64_t)v.i64; break;
    case RQ_GGUF_F32: RQ_TRY(rd(c, &v, 4, kv->key)); kv->f = v.f32; break;
    case RQ_GGUF_F64: RQ_TRY(rd(c, &v, 8, kv->key)); kv->f = v.f64; break;
    case RQ_GGUF_BOOL:
        RQ_TRY(rd(c, &v, 1, kv->key));
        if (v.u8 > 1) return rq_errorf(RQ_EFORMAT, "%s: key '%s': bool value %u", c->name, kv->key, v.u8);
        kv->u = v.u8;
        kv->i = v.u8;
        break;
    case RQ_GGUF_STR: RQ_TRY(rd_str(c, &kv->s, kv->key)); break;
    case RQ_GGUF_ARR: {
        uint32_t et;
        uint64_t n;
        RQ_TRY(rd_u32(c, &et, kv->key));
        RQ_TRY(rd_u64(c, &n, kv->key));
        if (et >= RQ_GGUF_VTYPE_COUNT)
            return rq_errorf(RQ_EFORMAT, "%s: key '%s': unknown array element type %u", c->name, kv->key, et);
        kv->arr_type = (rq_gguf_vtype)et;
        kv->arr_n = n;
        size_t esz = vtype_size(kv->arr_type);
        size_t left = c->size - c->pos;
        /* every element takes at least esz bytes (8 for a string's length) */
        size_t min_elem = esz ? esz : 8;
        if (n > left / min_elem)
            return rq_errorf(RQ_EFORMAT, "%s: key '%s': array length %llu exceeds the file size", c->name,
                             kv->key, (unsigned long long)n);
        kv->arr_data = c->p + c->pos;
        if (esz) {
            c->pos += n * esz;
        } else if (kv->arr_type == RQ_GGUF_STR) {
            kv->arr_strs = rq_alloc((int64_t)(n ? n : 1) * (int64_t)sizeof(rq_gguf_str));
            if (!kv->arr_strs) return RQ_ENOMEM;
            for (uint64_t i = 0; i < n; i++) RQ_TRY(rd_str(c, &kv->arr_strs[i], kv->key));
        } else {
            for (uint64_t i = 0; i < n; i++) RQ_TRY(skip_value(c, RQ_GGUF_ARR, 1, kv->key));
        }
        break;
    }
    default: return rq_errorf(RQ_EFORMAT, "%s: key '%s': unknown value type %u", c->name, kv->key, t);
    }
    return RQ_OK;
}

static rq_status read_tensor_info(cursor *c, rq_gguf_tensor *t) {
    rq_gguf_str name;
    RQ_TRY(rd_str(c, &name, "tensor name"));
    if (!(t->name = str_dup(name))) return RQ_ENOMEM;
    uint32_t nd;
    RQ_TRY(rd_u32(c, &nd, t->name));
    if (nd < 1 || nd > RQ_GGUF_MAX_DIMS)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': %u dimensions (1..%d allowed)", c->name, t->name, nd,
                         RQ_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t nel = 1;
    for (int d = 0; d < RQ_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        RQ_TRY(rd_u64(c, &ne, t->name));
        if (ne == 0 || ne > (uint64_t)INT64_MAX || !rq_mul_ok(nel, (int64_t)ne, &nel))
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': bad dimension %u = %llu", c->name, t->name, d,
                             (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    t->n_elements = nel;
    uint32_t type;
    RQ_TRY(rd_u32(c, &type, t->name));
    t->type = (int)type;
    const rq_type_traits *tr = rq_type_traits_get((int)type);
    if (!tr && strcmp(rq_type_name((int)type), "unknown") != 0)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: tensor '%s': tensor type %u (%s) has no size known to rotquant",
                         c->name, t->name, type, rq_type_name((int)type));
    if (!tr) return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': unknown tensor type %u", c->name, t->name, type);
    int64_t row_bytes, nb;
    if (t->ne[0] % tr->block_size != 0)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': row length %lld is not a multiple of %s's block size %lld",
                         c->name, t->name, (long long)t->ne[0], tr->name, (long long)tr->block_size);
    if (!rq_type_row_bytes((int)type, t->ne[0], &row_bytes) || !rq_mul_ok(row_bytes, nel / t->ne[0], &nb))
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': size overflows", c->name, t->name);
    t->n_bytes = nb;
    RQ_TRY(rd_u64(c, &t->offset, t->name));
    return RQ_OK;
}

static const char *kv_name(const rq_gguf *g, int64_t i) { return g->kvs[i].key; }
static const char *tensor_name(const rq_gguf *g, int64_t i) { return g->tensors[i].name; }

/* Refuse a name given twice among n (metadata keys or tensor names): a hash table of
 * 2n..4n slots, linear probing (FNV-1a), so that a file with a million names stays fast. */
static rq_status check_unique(const rq_gguf *g, int64_t n, const char *(*name_at)(const rq_gguf *, int64_t),
                              const char *what) {
    int64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    int64_t *slot = rq_alloc(cap * (int64_t)sizeof(int64_t));
    if (!slot) return rq_error_prefix(RQ_ENOMEM, g->path);
    memset(slot, 0xff, (size_t)cap * sizeof(int64_t)); /* -1: empty */
    rq_status s = RQ_OK;
    for (int64_t i = 0; i < n && s == RQ_OK; i++) {
        const char *name = name_at(g, i);
        uint64_t h = 1469598103934665603ull;
        for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
        for (int64_t k = (int64_t)(h & (uint64_t)(cap - 1));; k = (k + 1) & (cap - 1)) {
            if (slot[k] < 0) {
                slot[k] = i;
                break;
            }
            if (!strcmp(name_at(g, slot[k]), name)) {
                s = rq_errorf(RQ_EFORMAT, "%s: duplicate %s '%s'", g->path, what, name);
                break;
            }
        }
    }
    rq_free(slot);
    return s;
}

static rq_status parse(rq_gguf *g) {
    cursor c = {g->base, g->size, 0, g->path};
    uint32_t magic;
    RQ_TRY(rd_u32(&c, &magic, "magic"));
    if (magic != GGUF_MAGIC) return rq_errorf(RQ_EFORMAT, "%s: not a GGUF file (bad magic)", g->path);
    RQ_TRY(rd_u32(&c, &g->version, "version"));
    if (g->version != 2 && g->version != 3)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: unsupported GGUF version %u (2 and 3 are read)", g->path, g->version);
    uint64_t nt, nkv;
    RQ_TRY(rd_u64(&c, &nt, "tensor count"));
    RQ_TRY(rd_u64(&c, &nkv, "metadata count"));
    if (nkv > g->size / GGUF_MIN_KV_BYTES)
        return rq_errorf(RQ_EFORMAT, "%s: metadata count %llu exceeds what the file can hold", g->path,
                         (unsigned long long)nkv);
    if (nt > g->size / GGUF_MIN_TENSOR_BYTES)
        return rq_errorf(RQ_EFORMAT, "%s: tensor count %llu exceeds what the file can hold", g->path,
                         (unsigned long long)nt);
    g->kvs = rq_calloc((int64_t)(nkv ? nkv : 1) * (int64_t)sizeof(rq_gguf_kv));
    g->tensors = rq_calloc((int64_t)(nt ? nt : 1) * (int64_t)sizeof(rq_gguf_tensor));
    if (!g->kvs || !g->tensors) return rq_error_prefix(RQ_ENOMEM, g->path);
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = (int64_t)i + 1; /* so that close() frees what was read */
        RQ_TRY(read_kv(&c, &g->kvs[i]));
    }
    RQ_TRY(check_unique(g, g->n_kv, kv_name, "metadata key"));
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const rq_gguf_kv *al = rq_gguf_find(g, "general.alignment");
    if (al) {
        /* the GGUF specification: a multiple of 8, so that 8-byte types are aligned */
        if (al->type != RQ_GGUF_U32 || al->u < 8 || (al->u & (al->u - 1)) || al->u > (1u << 20))
            return rq_errorf(RQ_EFORMAT, "%s: general.alignment must be a power-of-two u32 of at least 8", g->path);
        g->alignment = (uint32_t)al->u;
    }
    for (uint64_t i = 0; i < nt; i++) {
        g->n_tensors = (int64_t)i + 1;
        RQ_TRY(read_tensor_info(&c, &g->tensors[i]));
    }
    RQ_TRY(check_unique(g, g->n_tensors, tensor_name, "tensor name"));
    size_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (nt > 0 && data > g->size) return rq_errorf(RQ_EFORMAT, "%s: truncated file: no tensor data section", g->path);
    g->data_offset = (int64_t)data;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        rq_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': offset %llu is not aligned to %u", g->path, t->name,
                             (unsigned long long)t->offset, g->alignment);
        uint64_t avail = g->size - data;
        if (t->offset > avail || (uint64_t)t->n_bytes > avail - t->offset)
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s': data [%llu, +%lld) lies outside the file (%zu bytes)",
                             g->path, t->name, (unsigned long long)(data + t->offset), (long long)t->n_bytes, g->size);
        t->data = g->base + data + t->offset;
    }
    return RQ_OK;
}

static rq_status open_common(rq_gguf *g, rq_gguf **out) {
    rq_status s = parse(g);
    if (s != RQ_OK) {
        rq_gguf_close(g);
        return s;
    }
    *out = g;
    return RQ_OK;
}

rq_status rq_gguf_open_memory(const void *data, size_t size, const char *name, rq_gguf **out) {
    *out = NULL;
    RQ_ASSERT(((uintptr_t)data & 7) == 0); /* tensors are 8-byte aligned within the image */
    rq_gguf *g = rq_xcalloc(sizeof *g);
    g->path = rq_strdup(name ? name : "<memory>");
    g->base = data;
    g->size = size;
    return open_common(g, out);
}

rq_status rq_gguf_open(const char *path, rq_gguf **out) {
    *out = NULL;
    int fd;
    int64_t size;
    RQ_TRY(rq_file_open_regular(path, -1, &fd, &size)); /* a FIFO is refused, not waited on */
    if (size < 24) {
        close(fd);
        return rq_errorf(RQ_EFORMAT, "%s: truncated file: %lld bytes is too small for a GGUF header", path,
                         (long long)size);
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return rq_errorf(RQ_EIO, "%s: cannot map: %s", path, strerror(errno));
    rq_gguf *g = rq_xcalloc(sizeof *g);
    g->path = rq_strdup(path);
    g->base = m;
    g->size = (size_t)size;
    g->mapped = true;
    return open_common(g, out);
}

void rq_gguf_close(rq_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        rq_free(g->kvs[i].key);
        rq_free(g->kvs[i].arr_strs);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) rq_free(g->tensors[i].name);
    rq_free(g->kvs);
    rq_free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    if (g->owned) rq_free((void *)g->base);
    rq_free(g->path);
    rq_free(g);
}

/* madvise(DONTNEED) on the whole pages of [begin, end) of the mapping */
static void release_range(const rq_gguf *g, size_t begin, size_t end) {
    long page = sysconf(_SC_PAGESIZE);
    if (!g->mapped || page <= 0) return;
    size_t b = (begin + (size_t)page - 1) / (size_t)page * (size_t)page;
    size_t e = end < g->size ? end / (size_t)page * (size_t)page : g->size;
    if (e > b) madvise((void *)(g->base + b), e - b, MADV_DONTNEED);
}

void rq_gguf_release_pages(const rq_gguf *g) { release_range(g, (size_t)g->data_offset, g->size); }

void rq_gguf_release_tensor(const rq_gguf *g, const rq_gguf_tensor *t) {
    size_t b = (size_t)((const uint8_t *)t->data - g->base);
    release_range(g, b, b + (size_t)t->n_bytes);
}

const char *rq_gguf_path(const rq_gguf *g) { return g->path; }
uint32_t rq_gguf_version(const rq_gguf *g) { return g->version; }
uint32_t rq_gguf_alignment(const rq_gguf *g) { return g->alignment; }
int64_t rq_gguf_file_size(const rq_gguf *g) { return (int64_t)g->size; }
int64_t rq_gguf_data_offset(const rq_gguf *g) { return g->data_offset; }
int64_t rq_gguf_n_kv(const rq_gguf *g) { return g->n_kv; }
const rq_gguf_kv *rq_gguf_kv_at(const rq_gguf *g, int64_t i) {
    RQ_ASSERT(i >= 0 && i < g->n_kv);
    return &g->kvs[i];
}

const rq_gguf_kv *rq_gguf_find(const rq_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key && !strcmp(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

static bool is_int_type(rq_gguf_vtype t) {
    return t == RQ_GGUF_U8 || t == RQ_GGUF_I8 || t == RQ_GGUF_U16 || t == RQ_GGUF_I16 || t == RQ_GGUF_U32 ||
           t == RQ_GGUF_I32 || t == RQ_GGUF_U64 || t == RQ_GGUF_I64;
}
static bool is_signed_type(rq_gguf_vtype t) {
    return t == RQ_GGUF_I8 || t == RQ_GGUF_I16 || t == RQ_GGUF_I32 || t == RQ_GGUF_I64;
}

static rq_status find_typed(const rq_gguf *g, const char *key, const rq_gguf_kv **kv) {
    *kv = rq_gguf_find(g, key);
    if (!*kv) return rq_errorf(RQ_EFORMAT, "%s: missing metadata key '%s'", g->path, key);
    return RQ_OK;
}

static rq_status wrong_type(const rq_gguf *g, const rq_gguf_kv *kv, const char *want) {
    return rq_errorf(RQ_EFORMAT, "%s: metadata key '%s' has type %s, expected %s", g->path, kv->key,
                     rq_gguf_vtype_name(kv->type), want);
}

rq_status rq_gguf_get_i64(const rq_gguf *g, const char *key, int64_t *out) {
    const rq_gguf_kv *kv;
    RQ_TRY(find_typed(g, key, &kv));
    if (!is_int_type(kv->type)) return wrong_type(g, kv, "an integer");
    if (kv->type == RQ_GGUF_U64 && kv->u > (uint64_t)INT64_MAX)
        return rq_errorf(RQ_EFORMAT, "%s: metadata key '%s': value %llu out of range", g->path, key,
                         (unsigned long long)kv->u);
    *out = kv->i;
    return RQ_OK;
}

rq_status rq_gguf_get_u32(const rq_gguf *g, const char *key, uint32_t *out) {
    int64_t v;
    RQ_TRY(rq_gguf_get_i64(g, key, &v));
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return rq_errorf(RQ_EFORMAT, "%s: metadata key '%s': value %lld out of range", g->path, key, (long long)v);
    *out = (uint32_t)v;
    return RQ_OK;
}

rq_status rq_gguf_get_f32(const rq_gguf *g, const char *key, float *out) {
    const rq_gguf_kv *kv;
    RQ_TRY(find_typed(g, key, &kv));
    if (kv->type == RQ_GGUF_F32 || kv->type == RQ_GGUF_F64) *out = (float)kv->f;
    else if (is_int_type(kv->type)) *out = is_signed_type(kv->type) ? (float)kv->i : (float)kv->u;
    else return wrong_type(g, kv, "a number");
    return RQ_OK;
}

rq_status rq_gguf_get_bool(const rq_gguf *g, const char *key, bool *out) {
    const rq_gguf_kv *kv;
    RQ_TRY(find_typed(g, key, &kv));
    if (kv->type != RQ_GGUF_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->u != 0;
    return RQ_OK;
}

rq_status rq_gguf_get_str(const rq_gguf *g, const char *key, rq_gguf_str *out) {
    const rq_gguf_kv *kv;
    RQ_TRY(find_typed(g, key, &kv));
    if (kv->type != RQ_GGUF_STR) return wrong_type(g, kv, "str");
    *out = kv->s;
    return RQ_OK;
}

rq_status rq_gguf_get_arr(const rq_gguf *g, const char *key, rq_gguf_vtype elem, const rq_gguf_kv **out) {
    const rq_gguf_kv *kv;
    RQ_TRY(find_typed(g, key, &kv));
    if (kv->type != RQ_GGUF_ARR) return wrong_type(g, kv, "arr");
    if (elem != RQ_GGUF_VTYPE_COUNT && kv->arr_type != elem)
        return rq_errorf(RQ_EFORMAT, "%s: metadata key '%s' is an array of %s, expected %s", g->path, key,
                         rq_gguf_vtype_name(kv->arr_type), rq_gguf_vtype_name(elem));
    *out = kv;
    return RQ_OK;
}

int64_t rq_gguf_arr_int(const rq_gguf_kv *kv, uint64_t i) {
    RQ_ASSERT(kv->type == RQ_GGUF_ARR && i < kv->arr_n);
    const uint8_t *p = kv->arr_data + i * vtype_size(kv->arr_type);
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; } v;
    memcpy(&v, p, vtype_size(kv->arr_type));
    switch (kv->arr_type) {
    case RQ_GGUF_U8: case RQ_GGUF_BOOL: return v.u8;
    case RQ_GGUF_I8: return v.i8;
    case RQ_GGUF_U16: return v.u16;
    case RQ_GGUF_I16: return v.i16;
    case RQ_GGUF_U32: return v.u32;
    case RQ_GGUF_I32: return v.i32;
    case RQ_GGUF_U64: return (int64_t)v.u64;
    case RQ_GGUF_I64: return v.i64;
    default: RQ_ASSERT(!"not an integer array"); return 0;
    }
}

double rq_gguf_arr_float(const rq_gguf_kv *kv, uint64_t i) {
    RQ_ASSERT(kv->type == RQ_GGUF_ARR && i < kv->arr_n);
    const uint8_t *p = kv->arr_data + i * vtype_size(kv->arr_type);
    if (kv->arr_type == RQ_GGUF_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    if (kv->arr_type == RQ_GGUF_F64) {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    return (double)rq_gguf_arr_int(kv, i);
}

bool rq_gguf_str_eq(rq_gguf_str a, const char *s) {
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

int64_t rq_gguf_n_tensors(const rq_gguf *g) { return g->n_tensors; }
const rq_gguf_tensor *rq_gguf_tensor_at(const rq_gguf *g, int64_t i) {
    RQ_ASSERT(i >= 0 && i < g->n_tensors);
    return &g->tensors[i];
}
const rq_gguf_tensor *rq_gguf_find_tensor(const rq_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

rq_status rq_gguf_tensor_to_f32(const rq_gguf_tensor *t, float *dst) {
    const rq_type_traits *tr = rq_type_traits_get(t->type);
    if (!tr || !tr->to_float)
        return rq_errorf(RQ_EUNSUPPORTED, "tensor '%s': type %s cannot be dequantized by rotquant", t->name,
                         rq_type_name(t->type));
    tr->to_float(t->data, dst, t->n_elements);
    return RQ_OK;
}

/* ---- writer ---------------------------------------------------------------------- */

typedef struct {
    char *key;
    rq_gguf_vtype type;
    uint8_t *blob; /* serialized value (after the type tag) */
    size_t blob_len;
} wkv;

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[RQ_GGUF_MAX_DIMS];
    const void *data;
    int64_t n_bytes;
} wtensor;

struct rq_gguf_writer {
    uint32_t alignment;
    wkv *kvs;
    int64_t n_kv, cap_kv;
    wtensor *ts;
    int64_t n_t, cap_t;
    void **kept; /* buffers freed with the writer (rq_gguf_writer_keep) */
    int64_t n_kept, cap_kept;
};

rq_gguf_writer *rq_gguf_writer_new(uint32_t alignment) {
    rq_gguf_writer *w = rq_xcalloc(sizeof *w);
    w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    RQ_ASSERT((w->alignment & (w->alignment - 1)) == 0 && w->alignment >= 8);
    if (alignment && alignment != GGUF_DEFAULT_ALIGNMENT) rq_gguf_writer_set_u32(w, "general.alignment", alignment);
    return w;
}

void rq_gguf_writer_free(rq_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        rq_free(w->kvs[i].key);
        rq_free(w->kvs[i].blob);
    }
    for (int64_t i = 0; i < w->n_t; i++) rq_free(w->ts[i].name);
    for (int64_t i = 0; i < w->n_kept; i++) rq_free(w->kept[i]);
    rq_free(w->kvs);
    rq_free(w->ts);
    rq_free(w->kept);
    rq_free(w);
}

void *rq_gguf_writer_keep(rq_gguf_writer *w, void *p) {
    if (w->n_kept == w->cap_kept) {
        int64_t nc = w->cap_kept ? w->cap_kept * 2 : 64;
        void **np = rq_xalloc(nc * (int64_t)sizeof(void *));
        if (w->kept) memcpy(np, w->kept, (size_t)w->n_kept * sizeof(void *));
        rq_free(w->kept);
        w->kept = np, w->cap_kept = nc;
    }
    w->kept[w->n_kept++] = p;
    return p;
}

void rq_gguf_writer_remove(rq_gguf_writer *w, const char *key) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            rq_free(w->kvs[i].key);
            rq_free(w->kvs[i].blob);
            memmove(&w->kvs[i], &w->kvs[i + 1], (size_t)(w->n_kv - i - 1) * sizeof(wkv));
            w->n_kv--;
            return;
        }
}

static void grow(void **p, int64_t *cap, int64_t need_n, size_t elem) {
    if (need_n <= *cap) return;
    int64_t nc = *cap ? *cap * 2 : 16;
    while (nc < need_n) nc *= 2;
    void *np = rq_xalloc(nc * (int64_t)elem);
    if (*p) memcpy(np, *p, (size_t)*cap * elem);
    rq_free(*p);
    *p = np;
    *cap = nc;
}

/* Take ownership of blob. */
static void set_kv(rq_gguf_writer *w, const char *key, rq_gguf_vtype type, uint8_t *blob, size_t len) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            rq_free(w->kvs[i].blob);
            w->kvs[i].type = type;
            w->kvs[i].blob = blob;
            w->kvs[i].blob_len = len;
            return;
        }
    grow((void **)&w->kvs, &w->cap_kv, w->n_kv + 1, sizeof(wkv));
    w->kvs[w->n_kv++] = (wkv){rq_strdup(key), type, blob, len};
}

static void set_scalar(rq_gguf_writer *w, const char *key, rq_gguf_vtype t, const void *v) {
    size_t n = vtype_size(t);
    uint8_t *b = rq_xalloc((int64_t)n);
    memcpy(b, v, n);
    set_kv(w, key, t, b, n);
}

void rq_gguf_writer_set_u32(rq_gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, RQ_GGUF_U32, &v); }
void rq_gguf_writer_set_i32(rq_gguf_writer *w, const char *key, int32_t v) { set_scalar(w, key, RQ_GGUF_I32, &v); }
void rq_gguf_writer_set_u64(rq_gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, RQ_GGUF_U64, &v); }
void rq_gguf_writer_set_f32(rq_gguf_writer *w, const char *key, float v) { set_scalar(w, key, RQ_GGUF_F32, &v); }
void rq_gguf_writer_set_bool(rq_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    set_scalar(w, key, RQ_GGUF_BOOL, &b);
}

static size_t put_str(uint8_t *dst, const char *s, uint64_t len) {
    memcpy(dst, &len, 8);
    memcpy(dst + 8, s, len);
    return 8 + len;
}

void rq_gguf_writer_set_str(rq_gguf_writer *w, const char *key, const char *v) {
    uint64_t len = strlen(v);
    uint8_t *b = rq_xalloc((int64_t)len + 8);
    set_kv(w, key, RQ_GGUF_STR, b, put_str(b, v, len));
}

void rq_gguf_writer_set_arr(rq_gguf_writer *w, const char *key, rq_gguf_vtype elem, const void *data, uint64_t n) {
    size_t esz = vtype_size(elem);
    RQ_ASSERT(esz > 0);
    uint8_t *b = rq_xalloc((int64_t)(12 + n * esz));
    uint32_t et = elem;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    if (n) memcpy(b + 12, data, n * esz);
    set_kv(w, key, RQ_GGUF_ARR, b, 12 + n * esz);
}

void rq_gguf_writer_set_arr_str(rq_gguf_writer *w, const char *key, const rq_gguf_str *strs, uint64_t n) {
    size_t len = 12;
    for (uint64_t i = 0; i < n; i++) len += 8 + strs[i].len;
    uint8_t *b = rq_xalloc((int64_t)len);
    uint32_t et = RQ_GGUF_STR;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    size_t pos = 12;
    for (uint64_t i = 0; i < n; i++) pos += put_str(b + pos, strs[i].ptr, strs[i].len);
    set_kv(w, key, RQ_GGUF_ARR, b, len);
}

void rq_gguf_writer_copy_kv(rq_gguf_writer *w, const rq_gguf_kv *kv) {
    switch (kv->type) {
    case RQ_GGUF_STR: {
        uint8_t *b = rq_xalloc((int64_t)kv->s.len + 8);
        set_kv(w, kv->key, RQ_GGUF_STR, b, put_str(b, kv->s.ptr, kv->s.len));
        return;
    }
    case RQ_GGUF_ARR:
        if (kv->arr_type == RQ_GGUF_STR) rq_gguf_writer_set_arr_str(w, kv->key, kv->arr_strs, kv->arr_n);
        else if (vtype_size(kv->arr_type)) rq_gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->arr_data, kv->arr_n);
        /* nested arrays are not copied (none of the models we read has them) */
        return;
    case RQ_GGUF_F32: {
        float f = (float)kv->f;
        set_scalar(w, kv->key, kv->type, &f);
        return;
    }
    case RQ_GGUF_F64: set_scalar(w, kv->key, kv->type, &kv->f); return;
    default: {
        uint64_t u = kv->u; /* little-endian: the low bytes hold the value */
        set_scalar(w, kv->key, kv->type, &u);
        return;
    }
    }
}

rq_status rq_gguf_writer_add_tensor(rq_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                                    const void *data, int64_t n_bytes) {
    if (n_dims < 1 || n_dims > RQ_GGUF_MAX_DIMS) return rq_errorf(RQ_EINVAL, "tensor '%s': bad n_dims %d", name, n_dims);
    int64_t nel = 1, row, total;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || !rq_mul_ok(nel, ne[d], &nel)) return rq_errorf(RQ_EINVAL, "tensor '%s': bad shape", name);
    if (!rq_type_row_bytes(type, ne[0], &row) || !rq_mul_ok(row, nel / ne[0], &total) || total != n_bytes)
        return rq_errorf(RQ_EINVAL, "tensor '%s': %lld bytes do not match type %s and shape", name,
                         (long long)n_bytes, rq_type_name(type));
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->ts[i].name, name)) return rq_errorf(RQ_EINVAL, "duplicate tensor name '%s'", name);
    grow((void **)&w->ts, &w->cap_t, w->n_t + 1, sizeof(wtensor));
    wtensor *t = &w->ts[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = rq_strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < RQ_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->n_bytes = n_bytes;
    return RQ_OK;
}

bool rq_gguf_writer_has_tensor(const rq_gguf_writer *w, const char *name) {
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->ts[i].name, name)) return true;
    return false;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Where the serializer's bytes go: a file being written atomically, or a memory image. */
typedef struct {
    rq_atomic_file *af; /* NULL: memory */
    uint8_t *buf;       /* memory: [cap] */
    uint64_t len, cap;
} sink;

static rq_status sink_write(sink *k, const void *p, size_t n) {
    if (k->af) return rq_atomic_file_write(k->af, p, n);
    RQ_ASSERT(n <= k->cap - k->len); /* the image was sized by gguf_image_size */
    if (n) memcpy(k->buf + k->len, p, n);
    k->len += n;
    return RQ_OK;
}

static rq_status serialize(const rq_gguf_writer *w, sink *k) {
    rq_status s = RQ_OK;
#define W(ptr, n) do { if ((s = sink_write(k, (ptr), (n))) != RQ_OK) return s; } while (0)
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    uint64_t pos = 0;
    W(&magic, 4); W(&version, 4); W(&nt, 8); W(&nkv, 8);
    pos += 24;
    for (int64_t i = 0; i < w->n_kv; i++) {
        uint64_t kl = strlen(w->kvs[i].key);
        uint32_t t = w->kvs[i].type;
        W(&kl, 8); W(w->kvs[i].key, kl); W(&t, 4); W(w->kvs[i].blob, w->kvs[i].blob_len);
        pos += 12 + kl + w->kvs[i].blob_len;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        W(&nl, 8); W(t->name, nl); W(&nd, 4);
        for (int d = 0; d < t->n_dims; d++) {
            uint64_t e = (uint64_t)t->ne[d];
            W(&e, 8);
        }
        W(&ty, 4); W(&off, 8);
        pos += 8 + nl + 4 + 8 * nd + 4 + 8;
        off = align_up(off + (uint64_t)t->n_bytes, w->alignment);
    }
    static const uint8_t zeros[4096];
    uint64_t pad = align_up(pos, w->alignment) - pos;
    W(zeros, pad);
    off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        W(t->data, (size_t)t->n_bytes);
        uint64_t end = off + (uint64_t)t->n_bytes;
        pad = align_up(end, w->alignment) - end;
        W(zeros, pad);
        off = end + pad;
    }
#undef W
    return RQ_OK;
}

rq_status rq_gguf_writer_write(rq_gguf_writer *w, const char *path) {
    rq_atomic_file af;
    RQ_TRY(rq_atomic_file_open(&af, path));
    sink k = {.af = &af};
    rq_status s = serialize(w, &k);
    if (s != RQ_OK) {
        rq_atomic_file_abort(&af);
        return s;
    }
    return rq_atomic_file_commit(&af);
}

/* Bytes of the serialized file (header, padding, aligned tensor data). */
static uint64_t gguf_image_size(const rq_gguf_writer *w) {
    uint64_t pos = 24;
    for (int64_t i = 0; i < w->n_kv; i++) pos += 12 + strlen(w->kvs[i].key) + w->kvs[i].blob_len;
    uint64_t data = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        pos += 8 + strlen(w->ts[i].name) + 4 + 8 * (uint64_t)w->ts[i].n_dims + 4 + 8;
        data = align_up(data + (uint64_t)w->ts[i].n_bytes, w->alignment);
    }
    return align_up(pos, w->alignment) + data;
}

rq_status rq_gguf_writer_open_image(const rq_gguf_writer *w, const char *name, rq_gguf **out) {
    *out = NULL;
    uint64_t size = gguf_image_size(w);
    if (size > (uint64_t)INT64_MAX) return rq_errorf(RQ_ENOMEM, "%s: image of %llu bytes", name, (unsigned long long)size);
    uint8_t *buf = rq_alloc((int64_t)size);
    if (!buf) return rq_error_prefix(RQ_ENOMEM, name);
    sink k = {.buf = buf, .cap = size};
    RQ_ASSERT(serialize(w, &k) == RQ_OK && k.len == size);
    rq_gguf *g = rq_xcalloc(sizeof *g);
    g->path = rq_strdup(name);
    g->base = buf;
    g->size = (size_t)size;
    g->owned = true;
    return open_common(g, out);
}

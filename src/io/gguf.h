/* GGUF v3 (and v2) reader and writer.
 *
 * File layout (little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { str key | u32 value_type | value }         str = u64 len + bytes (no NUL)
 *   n_tensors × { str name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor at data_start + offset (offset a multiple of the alignment)
 * An array value is u32 element_type | u64 count | elements (arrays may nest).
 *
 * The reader maps the file read-only and checks every count, length and offset against
 * the file size before use; a malformed file yields RQ_EFORMAT with a message naming the
 * file and what is wrong. Strings and tensor data point into the mapping: they live as
 * long as the rq_gguf. Keys and tensor names are copied and NUL-terminated. */
#ifndef RQ_IO_GGUF_H
#define RQ_IO_GGUF_H

#include "base/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_GGUF_MAX_DIMS 4

typedef enum rq_gguf_vtype {
    RQ_GGUF_U8 = 0, RQ_GGUF_I8 = 1, RQ_GGUF_U16 = 2, RQ_GGUF_I16 = 3, RQ_GGUF_U32 = 4,
    RQ_GGUF_I32 = 5, RQ_GGUF_F32 = 6, RQ_GGUF_BOOL = 7, RQ_GGUF_STR = 8, RQ_GGUF_ARR = 9,
    RQ_GGUF_U64 = 10, RQ_GGUF_I64 = 11, RQ_GGUF_F64 = 12,
    RQ_GGUF_VTYPE_COUNT
} rq_gguf_vtype;

typedef struct rq_gguf_str {
    const char *ptr; /* not NUL-terminated; points into the mapping */
    uint64_t len;
} rq_gguf_str;

typedef struct rq_gguf_kv {
    char *key;
    rq_gguf_vtype type;
    /* scalars, widened: integers in i (signed types) or u (unsigned, bool), floats in f */
    int64_t i;
    uint64_t u;
    double f;
    rq_gguf_str s;
    /* arrays (type == RQ_GGUF_ARR) */
    rq_gguf_vtype arr_type;    /* element type */
    uint64_t arr_n;            /* element count */
    const uint8_t *arr_data;   /* raw elements (fixed-size element types) */
    rq_gguf_str *arr_strs;     /* [arr_n] when arr_type == RQ_GGUF_STR, else NULL */
} rq_gguf_kv;

typedef struct rq_gguf_tensor {
    char *name;
    int n_dims;
    int64_t ne[RQ_GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused = 1 */
    int type;                     /* ggml type id (rq_type of format/format.h) */
    uint64_t offset;              /* relative to the data section */
    int64_t n_elements;
    int64_t n_bytes;
    const void *data;             /* into the mapping */
} rq_gguf_tensor;

typedef struct rq_gguf rq_gguf;

/* Open and validate a file. On success *out owns the mapping; close with rq_gguf_close. */
rq_status rq_gguf_open(const char *path, rq_gguf **out);
/* Parse an in-memory image (not copied; must outlive the result). `name` is used in
 * error messages. */
rq_status rq_gguf_open_memory(const void *data, size_t size, const char *name, rq_gguf **out);
void rq_gguf_close(rq_gguf *g);
/* Drop the pages of the tensor data section from the process's resident set (a hint,
 * madvise MADV_DONTNEED on the read-only private mapping: nothing is lost, pages touched
 * again are read back from the file). For loaders that have copied what they need. A
 * no-op for in-memory images. */
void rq_gguf_release_pages(const rq_gguf *g);
/* The same for the whole pages inside one tensor's data (a loader that has copied it). */
void rq_gguf_release_tensor(const rq_gguf *g, const rq_gguf_tensor *t);

const char *rq_gguf_path(const rq_gguf *g);
uint32_t rq_gguf_version(const rq_gguf *g);
uint32_t rq_gguf_alignment(const rq_gguf *g);
int64_t rq_gguf_file_size(const rq_gguf *g);
int64_t rq_gguf_data_offset(const rq_gguf *g);

int64_t rq_gguf_n_kv(const rq_gguf *g);
const rq_gguf_kv *rq_gguf_kv_at(const rq_gguf *g, int64_t i);
const rq_gguf_kv *rq_gguf_find(const rq_gguf *g, const char *key); /* NULL if absent */

/* Typed getters: RQ_EFORMAT if the key is absent, has an incompatible type, or (for
 * integers) a value out of the target's range. Any integer type converts to an integer
 * target; F32/F64 convert to float targets. */
rq_status rq_gguf_get_u32(const rq_gguf *g, const char *key, uint32_t *out);
rq_status rq_gguf_get_i64(const rq_gguf *g, const char *key, int64_t *out);
rq_status rq_gguf_get_f32(const rq_gguf *g, const char *key, float *out);
rq_status rq_gguf_get_bool(const rq_gguf *g, const char *key, bool *out);
rq_status rq_gguf_get_str(const rq_gguf *g, const char *key, rq_gguf_str *out);
/* Array of the given element type (any type if elem == RQ_GGUF_VTYPE_COUNT). */
rq_status rq_gguf_get_arr(const rq_gguf *g, const char *key, rq_gguf_vtype elem, const rq_gguf_kv **out);
/* Element i of a numeric array as int64/double (caller checks i < arr_n). */
int64_t rq_gguf_arr_int(const rq_gguf_kv *kv, uint64_t i);
double rq_gguf_arr_float(const rq_gguf_kv *kv, uint64_t i);
/* 1 if the string equals the NUL-terminated s. */
bool rq_gguf_str_eq(rq_gguf_str a, const char *s);
const char *rq_gguf_vtype_name(rq_gguf_vtype t);

int64_t rq_gguf_n_tensors(const rq_gguf *g);
const rq_gguf_tensor *rq_gguf_tensor_at(const rq_gguf *g, int64_t i);
const rq_gguf_tensor *rq_gguf_find_tensor(const rq_gguf *g, const char *name); /* NULL if absent */
/* Dequantize a whole tensor to float32: dst [n_elements]. RQ_EUNSUPPORTED (the message
 * names the tensor and its type) for a type rotquant lists but cannot dequantize. */
rq_status rq_gguf_tensor_to_f32(const rq_gguf_tensor *t, float *dst);

/* ---- writer ---------------------------------------------------------------------- */
typedef struct rq_gguf_writer rq_gguf_writer;

rq_gguf_writer *rq_gguf_writer_new(uint32_t alignment); /* 0 = default 32 */
void rq_gguf_writer_free(rq_gguf_writer *w);
/* Metadata. Setting a key that exists replaces it; keys keep insertion order. Values are
 * copied. */
void rq_gguf_writer_set_u32(rq_gguf_writer *w, const char *key, uint32_t v);
void rq_gguf_writer_set_i32(rq_gguf_writer *w, const char *key, int32_t v);
void rq_gguf_writer_set_u64(rq_gguf_writer *w, const char *key, uint64_t v);
void rq_gguf_writer_set_f32(rq_gguf_writer *w, const char *key, float v);
void rq_gguf_writer_set_bool(rq_gguf_writer *w, const char *key, bool v);
void rq_gguf_writer_set_str(rq_gguf_writer *w, const char *key, const char *v);
/* Array of fixed-size elements (not STR/ARR): n elements of `elem` type from data. */
void rq_gguf_writer_set_arr(rq_gguf_writer *w, const char *key, rq_gguf_vtype elem, const void *data, uint64_t n);
void rq_gguf_writer_set_arr_str(rq_gguf_writer *w, const char *key, const rq_gguf_str *strs, uint64_t n);
/* Copy a key/value read from another file (any type, arrays included). */
void rq_gguf_writer_copy_kv(rq_gguf_writer *w, const rq_gguf_kv *kv);
void rq_gguf_writer_remove(rq_gguf_writer *w, const char *key);
/* Tensor: `data` (n_bytes) is referenced, not copied, and must stay valid until the file
 * is written. n_bytes must equal the size implied by type and shape. */
rq_status rq_gguf_writer_add_tensor(rq_gguf_writer *w, const char *name, int type, int n_dims,
                                    const int64_t *ne, const void *data, int64_t n_bytes);
/* Hand the writer a buffer (rq_alloc'ed) that tensors added to it reference: it is freed
 * with the writer. Returns p. */
void *rq_gguf_writer_keep(rq_gguf_writer *w, void *p);
/* True when a tensor of this name has been added. */
bool rq_gguf_writer_has_tensor(const rq_gguf_writer *w, const char *name);
/* Write to a temporary file beside `path`, then rename onto it: a failure never leaves
 * a half-written file at `path`. */
rq_status rq_gguf_writer_write(rq_gguf_writer *w, const char *path);
/* Serialize into memory and open the image as a file would be opened (`name` is its path
 * in messages): a model built in memory (a Hugging Face checkpoint, model/hf.h) then goes
 * through every GGUF reader. The tensor data is copied: the writer and the data it
 * references may be freed afterwards. *out owns the image (rq_gguf_close). */
rq_status rq_gguf_writer_open_image(const rq_gguf_writer *w, const char *name, rq_gguf **out);

#endif

/* safetensors reader (Hugging Face checkpoints), one file or a sharded checkpoint.
 *
 * File layout:
 *   u64 N (little-endian) | N bytes of JSON header | byte buffer
 * The header is one JSON object: each member but "__metadata__" is a tensor
 *   "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with [begin, end) relative to the byte buffer, row-major (the last dimension
 * contiguous); "__metadata__" (optional) maps strings to strings.
 *
 * The reader maps each file read-only and checks, before any tensor is handed out: the
 * header length against the file size (and RQ_SAFETENSORS_MAX_HEADER), the header's JSON
 * (strict, io/json.h), each tensor's dtype (known), shape (integers, at most
 * RQ_SAFETENSORS_MAX_DIMS dimensions, the element count without overflow), offsets
 * (integers, begin <= end <= the buffer's size), that end - begin equals the element count
 * times the dtype's size, and that no two tensors' bytes overlap. Any failure is
 * RQ_EFORMAT with a message naming the file and the tensor. Tensor data points into the
 * mapping: it lives as long as the rq_safetensors, and may be unaligned (read it with
 * rq_safetensors_to_f32 or memcpy).
 *
 * A checkpoint directory holds either model.safetensors or model.safetensors.index.json
 * ({"weight_map": {"tensor name": "shard file name", ...}, "metadata": {...}}) and the
 * shards it names (plain file names inside the directory); every tensor the index lists
 * must be in the shard it names, and no name may be in two shards. */
#ifndef RQ_IO_SAFETENSORS_H
#define RQ_IO_SAFETENSORS_H

#include "base/status.h"

#include <stddef.h>
#include <stdint.h>

#define RQ_SAFETENSORS_MAX_DIMS 8
/* The longest JSON header read (the JSON parser's default limit; real headers are a few
 * MiB at most, and the parser's memory grows with the header). */
#define RQ_SAFETENSORS_MAX_HEADER (INT64_C(64) << 20)

/* Enums only grow at the end. */
typedef enum rq_st_dtype {
    RQ_ST_F32 = 0,
    RQ_ST_F16 = 1,
    RQ_ST_BF16 = 2,
    RQ_ST_F64 = 3,
    RQ_ST_I64 = 4,
    RQ_ST_I32 = 5,
    RQ_ST_I16 = 6,
    RQ_ST_I8 = 7,
    RQ_ST_U8 = 8,
    RQ_ST_BOOL = 9,
    RQ_ST_U16 = 10,
    RQ_ST_U32 = 11,
    RQ_ST_U64 = 12,
    RQ_ST_F8_E4M3 = 13,
    RQ_ST_F8_E5M2 = 14,
    RQ_ST_DTYPE_COUNT
} rq_st_dtype;

typedef struct rq_st_tensor {
    char *name;           /* NUL-terminated copy */
    rq_st_dtype dtype;
    int n_dims;           /* 0 (a scalar) .. RQ_SAFETENSORS_MAX_DIMS */
    int64_t shape[RQ_SAFETENSORS_MAX_DIMS]; /* row-major: shape[n_dims - 1] is contiguous; unused = 1 */
    int64_t n_elements;
    int64_t n_bytes;
    int64_t offset;       /* of the first byte in its file */
    const void *data;     /* into the mapping; n_bytes bytes, possibly unaligned */
    const char *file;     /* path of the file holding it (owned by the rq_safetensors) */
} rq_st_tensor;

typedef struct rq_safetensors rq_safetensors;

/* Open and validate one file. On success *out owns the mapping: rq_safetensors_close. */
rq_status rq_safetensors_open(const char *path, rq_safetensors **out);
/* Open a checkpoint directory (model.safetensors, or the shards of
 * model.safetensors.index.json). */
rq_status rq_safetensors_open_dir(const char *dir, rq_safetensors **out);
/* Parse an in-memory image (not copied; must outlive the result). `name` is used in
 * error messages. */
rq_status rq_safetensors_open_memory(const void *data, size_t size, const char *name, rq_safetensors **out);
void rq_safetensors_close(rq_safetensors *st);

const char *rq_safetensors_path(const rq_safetensors *st);
/* Tensors of every file, in the order of the files and of each header. */
int64_t rq_safetensors_n_tensors(const rq_safetensors *st);
const rq_st_tensor *rq_safetensors_tensor_at(const rq_safetensors *st, int64_t i);
const rq_st_tensor *rq_safetensors_find(const rq_safetensors *st, const char *name); /* NULL if absent */
/* "__metadata__" of the (first) file: the value of `key`, or NULL. */
const char *rq_safetensors_metadata(const rq_safetensors *st, const char *key);

const char *rq_st_dtype_name(rq_st_dtype t);
int64_t rq_st_dtype_size(rq_st_dtype t);
/* Convert a whole F32, F16 or BF16 tensor to float32: dst [n_elements]. RQ_EUNSUPPORTED
 * (naming the tensor and its dtype) for other dtypes. */
rq_status rq_safetensors_to_f32(const rq_st_tensor *t, float *dst);

#endif

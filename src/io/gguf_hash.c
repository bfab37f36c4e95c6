#include "io/gguf_hash.h"

#include "base/hash.h"

#include <string.h>

uint64_t rq_gguf_hash(const rq_gguf *g) {
    uint64_t h = 0;
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) {
        const rq_gguf_kv *kv = rq_gguf_kv_at(g, i);
        int64_t scal[3] = {(int64_t)kv->type, kv->i, (int64_t)kv->u};
        h = rq_hash64(kv->key, (int64_t)strlen(kv->key), h);
        h = rq_hash64(scal, sizeof scal, h);
        h = rq_hash64(&kv->f, sizeof kv->f, h);
        if (kv->type == RQ_GGUF_STR) h = rq_hash64(kv->s.ptr, (int64_t)kv->s.len, h);
        if (kv->type == RQ_GGUF_ARR) {
            uint64_t a[2] = {(uint64_t)kv->arr_type, kv->arr_n};
            h = rq_hash64(a, sizeof a, h);
        }
    }
    for (int64_t i = 0; i < rq_gguf_n_tensors(g); i++) {
        const rq_gguf_tensor *t = rq_gguf_tensor_at(g, i);
        int64_t shape[RQ_GGUF_MAX_DIMS + 2] = {t->n_dims, t->type};
        memcpy(shape + 2, t->ne, sizeof t->ne);
        h = rq_hash64(t->name, (int64_t)strlen(t->name), h);
        h = rq_hash64(shape, sizeof shape, h);
        h = rq_hash64(t->data, t->n_bytes, h);
    }
    return h;
}

/* libFuzzer harness for the GGUF reader: parse an arbitrary byte string, then touch
 * everything the reader exposes (metadata values, array elements, tensors, and the
 * dequantization of small tensors; the model configuration, rotquant.* metadata and
 * model load built on it). Must never crash or read out of bounds. */
#include "format/format.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/qinfo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rq_gguf *g;
    if (rq_gguf_open_memory(data, size, "fuzz", &g) != RQ_OK) return 0;
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) {
        const rq_gguf_kv *kv = rq_gguf_kv_at(g, i);
        sink += strlen(kv->key) + kv->s.len;
        if (kv->type == RQ_GGUF_ARR) {
            for (uint64_t j = 0; j < kv->arr_n && j < 64; j++) {
                if (kv->arr_type == RQ_GGUF_STR) sink += kv->arr_strs[j].len ? (uint8_t)kv->arr_strs[j].ptr[0] : 0;
                else if (kv->arr_type != RQ_GGUF_ARR) {
                    double v = rq_gguf_arr_float(kv, j);
                    sink += (v > 0 && v < 1e18) ? (uint64_t)v : 1u;
                }
            }
        }
        uint32_t u;
        (void)rq_gguf_get_u32(g, kv->key, &u);
    }
    for (int64_t i = 0; i < rq_gguf_n_tensors(g); i++) {
        const rq_gguf_tensor *t = rq_gguf_tensor_at(g, i);
        if (t->n_elements <= 4096) {
            float *buf = malloc((size_t)t->n_elements * sizeof(float));
            if (buf && rq_gguf_tensor_to_f32(t, buf) == RQ_OK) sink += buf[0] > 0 && buf[0] < 1e18f ? 1u : 2u;
            free(buf);
        }
    }
    /* the model's configuration, rotquant.* keys and, if those hold, the model itself
     * (every size is bounded by the input's: a few KiB) */
    rq_model_config cfg;
    rq_qinfo qi;
    if (rq_model_config_read(g, &cfg) == RQ_OK && rq_qinfo_read(g, &qi) == RQ_OK) {
        rq_model *m = NULL;
        if (rq_model_load(g, &m) == RQ_OK) sink += (uint64_t)m->cfg.n_layer;
        rq_model_free(m);
    }
    (void)sink;
    rq_gguf_close(g);
    return 0;
}

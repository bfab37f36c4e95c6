/* libFuzzer harness for the safetensors reader: parse an arbitrary byte string, then touch
 * everything the reader exposes (each tensor's name, shape and bytes, the lookup by name,
 * the float conversion of small tensors, the metadata). Must never crash or read out of
 * bounds. */
#include "io/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rq_safetensors *st;
    if (rq_safetensors_open_memory(data, size, "fuzz", &st) != RQ_OK) return 0;
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < rq_safetensors_n_tensors(st); i++) {
        const rq_st_tensor *t = rq_safetensors_tensor_at(st, i);
        sink += strlen(t->name) + (uint64_t)t->n_dims;
        if (rq_safetensors_find(st, t->name) != t) abort(); /* names are unique */
        if (t->n_bytes > 0) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->n_bytes - 1];
        if (t->n_elements <= 4096) {
            float *buf = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof(float));
            if (buf && rq_safetensors_to_f32(t, buf) == RQ_OK && t->n_elements)
                sink += buf[0] > 0 && buf[0] < 1e18f ? 1u : 2u;
            free(buf);
        }
    }
    const char *v = rq_safetensors_metadata(st, "format");
    if (v) sink += strlen(v);
    (void)sink;
    rq_safetensors_close(st);
    return 0;
}

/* The slow paths of the binary heap (text/heap.h): growing and freeing the array. */
#include "text/heap.h"

rq_status rq_heap_grow(rq_heap *h, size_t size) {
    int64_t cap, bytes;
    if (!rq_mul_ok(h->cap ? h->cap : 128, 2, &cap) || !rq_mul_ok(cap, (int64_t)size, &bytes)) return RQ_ENOMEM;
    void *items = rq_alloc(bytes);
    if (!items) return RQ_ENOMEM;
    if (h->n) memcpy(items, h->items, (size_t)h->n * size);
    rq_free(h->items);
    h->items = items;
    h->cap = cap;
    return RQ_OK;
}

void rq_heap_free(rq_heap *h) {
    rq_free(h->items);
    *h = (rq_heap){0};
}

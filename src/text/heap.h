/* A binary heap (priority queue) of fixed-size items, for the tokenizers' merge queues
 * (bpe.c, spm.c). Internal to src/text; not part of the public API.
 *
 * The caller's `before(a, b)` orders the items: the item that comes before every other
 * is on top. It must be a strict weak order; items that compare equal come out in an
 * order fixed by the sequence of pushes and pops (the same on every run).
 *
 * Push and pop are static inline and take the item size and the order as arguments, so
 * that at each call site (a constant size, a known function) the compiler copies items
 * as whole structs and calls `before` directly: the merge loops spend much of their time
 * here. Wrap them in a typed one-line helper beside the item type.
 *
 * Ownership: the heap owns its item array (rq_heap_free releases it); items are copied
 * in and out by value. A zeroed rq_heap is empty and ready for use. */
#ifndef RQ_TEXT_HEAP_H
#define RQ_TEXT_HEAP_H

#include "base/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef bool (*rq_heap_before_fn)(const void *a, const void *b);

typedef struct rq_heap {
    void *items; /* [cap] items of the caller's type; [0, n) hold the heap */
    int64_t n, cap;
} rq_heap;

/* Double the array (at least 256 items) for items of `size` bytes. RQ_ENOMEM (heap
 * unchanged) if it cannot. */
rq_status rq_heap_grow(rq_heap *h, size_t size);
/* Release the array; the heap is empty afterwards and may be pushed to again. */
void rq_heap_free(rq_heap *h);
/* Remove every item, keeping the array for reuse. */
static inline void rq_heap_clear(rq_heap *h) { h->n = 0; }

static inline uint8_t *rq_heap_slot_(const rq_heap *h, int64_t i, size_t size) {
    return (uint8_t *)h->items + (size_t)i * size;
}

/* Copy *item (size bytes) in. RQ_ENOMEM (heap unchanged) if the array cannot grow. */
static inline rq_status rq_heap_push(rq_heap *h, const void *item, size_t size, rq_heap_before_fn before) {
    if (h->n == h->cap) RQ_TRY(rq_heap_grow(h, size));
    /* sift up: move the parents that the new item comes before down one level; the
     * children of slot i are 2i + 1 and 2i + 2 */
    int64_t i = h->n++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!before(item, rq_heap_slot_(h, p, size))) break;
        memcpy(rq_heap_slot_(h, i, size), rq_heap_slot_(h, p, size), size);
        i = p;
    }
    memcpy(rq_heap_slot_(h, i, size), item, size);
    return RQ_OK;
}

/* Copy the top item into *out and remove it. The heap must not be empty (asserted). */
static inline void rq_heap_pop(rq_heap *h, void *out, size_t size, rq_heap_before_fn before) {
    RQ_ASSERT(h->n > 0);
    memcpy(out, rq_heap_slot_(h, 0, size), size);
    const int64_t n = --h->n;
    /* the former last item, still in slot n (the moves below write slots < n only),
     * sifts down from the root: the child that comes first moves up while it comes
     * before that item */
    const uint8_t *last = rq_heap_slot_(h, n, size);
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(rq_heap_slot_(h, c + 1, size), rq_heap_slot_(h, c, size))) c++;
        if (!before(rq_heap_slot_(h, c, size), last)) break;
        memcpy(rq_heap_slot_(h, i, size), rq_heap_slot_(h, c, size), size);
        i = c;
    }
    if (n > 0) memcpy(rq_heap_slot_(h, i, size), last, size);
}

#endif
